"""Departments: where tickets and chats go, whose agents serve them, and when they are open.

Rules:
- a department's ``name`` is the string agents, chats and tickets carry; it never changes (a
  rename would strand them), and a department named by an agent, chat or ticket that has no row
  yet is created with defaults on first use (``ensure``), so all of them agree on where work goes;
- a ticket's department is its category unless a department lists that category among its
  ``categories`` (``for_category``); a category is served by at most one department, and a
  category may not be the name of another department (409 otherwise);
- admins write; staff and services read everything; customers read the public subset of the
  departments marked ``is_public`` (with whether someone can chat now);
- a department still holding agents, open chats or unresolved tickets, and ``general`` (where
  work without a department goes), cannot be deleted;
- writes are audited and emit ``department.created/updated/deleted`` events.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg

from app.auth import Principal, RequestMeta, require_role
from app.context import AppContext
from app.db import contains_pattern, fetch_page
from app.errors import Conflict, NotFound
from app.security import audit

log = logging.getLogger(__name__)

DEFAULT = "general"
FIELDS = (
    "id",
    "name",
    "display_name",
    "description",
    "categories",
    "business_hours",
    "time_zone",
    "offline_message",
    "is_public",
    "queue_timeout_minutes",
    "greeting",
    "queue_alert_minutes",
    "queue_alert_raised_at",
    "created_at",
    "updated_at",
)
PUBLIC_FIELDS = ("name", "display_name", "business_hours", "time_zone", "offline_message")
MUTABLE = (
    "display_name",
    "description",
    "categories",
    "business_hours",
    "time_zone",
    "offline_message",
    "is_public",
    "queue_timeout_minutes",
    "greeting",
    "queue_alert_minutes",
)
SYSTEM = RequestMeta(transport="system")


def default_display_name(name: str) -> str:
    """``billing-de`` reads "Billing De" until an admin names it (as migration 0008 does)."""
    return " ".join(word.capitalize() for word in name.replace("-", " ").replace("_", " ").split()) or name


def present(row: Any) -> dict:
    return {f: row[f] for f in FIELDS}


# ---------------------------------------------------------------- first use and routing


async def ensure(
    ctx: AppContext,
    conn: asyncpg.Connection,
    name: str,
    *,
    principal: Principal | None = None,
    meta: RequestMeta | None = None,
) -> str:
    """The department's row exists when this returns (in the caller's transaction); a new one
    is audited and announced like one an admin created."""
    row = await ctx.db.q.ensure_department(
        conn, name=name, display_name=default_display_name(name), now=ctx.clock.now()
    )
    if row is not None:
        await _record(ctx, conn, principal, meta or SYSTEM, "create", row, {"name": name, "created_on_first_use": True})
    return name


async def for_category(
    ctx: AppContext,
    conn: asyncpg.Connection,
    category: str | None,
    *,
    principal: Principal | None = None,
    meta: RequestMeta | None = None,
) -> str:
    """The department that serves a ticket category (its row created if this is its first use)."""
    name = await ctx.db.q.department_for_category(conn, category=category)
    return await ensure(ctx, conn, name, principal=principal, meta=meta)


async def display_names(ctx: AppContext, conn: asyncpg.Connection, names: list[str]) -> dict[str, str]:
    rows = await ctx.db.q.department_display_names(conn, names=sorted(set(names)))
    return {r["name"]: r["display_name"] for r in rows}


# ---------------------------------------------------------------- reading


def _can_read_all(principal: Principal) -> bool:
    return principal.is_staff or principal.role == "service"


async def list_departments(ctx: AppContext, principal: Principal, query: dict) -> dict:
    """Staff get every field of every department; customers the public subset of public ones,
    with their chat availability (the widget's "what is it about?" choice)."""
    public_only = not _can_read_all(principal)
    async with ctx.db.connection() as conn:
        rows, total = await fetch_page(
            ctx.db.q.list_departments,
            conn,
            public_only=public_only,
            category=query.get("category"),
            q_pattern=contains_pattern(query.get("q")),
            sort=query["sort"],
            limit=query["limit"],
            offset=query["offset"],
        )
    items = [present(r) for r in rows]
    if public_only:
        items = await _public(ctx, items)
    return {"items": items, "total": total, "limit": query["limit"], "offset": query["offset"]}


async def get_department(ctx: AppContext, principal: Principal, ref: str) -> dict:
    async with ctx.db.connection() as conn:
        row = await _find(ctx, conn, ref)
    if row is None or not (_can_read_all(principal) or row["is_public"]):
        raise NotFound("Department not found")
    item = present(row)
    return item if _can_read_all(principal) else (await _public(ctx, [item]))[0]


async def _public(ctx: AppContext, items: list[dict]) -> list[dict]:
    live = {d["name"]: d for d in (await availability(ctx, None))["departments"]}
    return [
        {
            **{f: item[f] for f in PUBLIC_FIELDS},
            "open_now": live[item["name"]]["open_now"],
            "available": live[item["name"]]["available"],
        }
        for item in items
        if item["name"] in live
    ]


async def _find(ctx: AppContext, conn: asyncpg.Connection, ref: str, *, lock: bool = False) -> Any:
    """A department by its id or its name (paths take either, like chat sessions' keys)."""
    try:
        dept_id = uuid.UUID(ref)
    except ValueError:
        row = await ctx.db.q.get_department_by_name(conn, name=ref)
        if row is None or not lock:
            return row
        dept_id = row["id"]
    return await (ctx.db.q.lock_department if lock else ctx.db.q.get_department)(conn, id=dept_id)


# ---------------------------------------------------------------- availability


async def availability(ctx: AppContext, department: str | None) -> dict:
    """Who can chat now, per department: the widget offers a chat when ``available`` (within
    business hours, and an agent online and connected; a full team still queues), else its
    "leave a message" form with the department's offline message and business hours."""
    async with ctx.db.connection() as conn:
        rows = await ctx.db.q.chat_availability(conn, department=department)
    now = ctx.clock.now()
    departments = []
    for r in rows:
        row = dict(r)
        row["display_name"] = row["display_name"] or default_display_name(row["name"])  # no row yet
        row["open_now"] = within_business_hours(row["business_hours"], row["time_zone"], now)
        row["available"] = row["open_now"] and row["online_agents"] > 0
        departments.append(row)
    return {"departments": departments}


def within_business_hours(hours: Any, zone: str | None, now: dt.datetime) -> bool:
    """``hours`` is ``{"mon": [["09:00", "17:00"]], ...}`` in the department's time zone; None
    means always open, and a day it does not name is closed."""
    if hours is None:
        return True
    try:
        local = now.astimezone(ZoneInfo(zone or "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        local = now.astimezone(dt.timezone.utc)
    clock = local.strftime("%H:%M")
    day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[local.weekday()]
    try:  # ranges are "HH:MM" strings, end excluded; one over midnight is written as two
        return any(start <= clock < end for start, end in hours.get(day, []))
    except (AttributeError, TypeError, ValueError):
        log.warning("unreadable business hours; treating the department as open", extra={"hours": hours})
        return True


# ---------------------------------------------------------------- writing


def require_writer(principal: Principal) -> None:
    require_role(principal, "admin")


async def create_department(ctx: AppContext, principal: Principal, meta: RequestMeta, data: dict) -> dict:
    require_writer(principal)
    fields: dict[str, Any] = {f: data.get(f) for f in MUTABLE}
    fields["display_name"] = data.get("display_name") or default_display_name(data["name"])
    fields["categories"] = data.get("categories") or []
    fields["time_zone"] = data.get("time_zone") or "UTC"
    fields["is_public"] = data.get("is_public", True)
    async with ctx.db.transaction() as conn:
        await ctx.db.q.lock_department_catalogue(conn)
        await _refuse_clashes(ctx, conn, None, data["name"], fields["categories"])
        try:
            async with conn.transaction():
                row = await ctx.db.q.insert_department(conn, name=data["name"], **fields, now=ctx.clock.now())
        except asyncpg.UniqueViolationError:
            raise Conflict(
                f"A department named {data['name']!r} exists already", details={"name": data["name"]}
            ) from None
        await _record(
            ctx,
            conn,
            principal,
            meta,
            "create",
            row,
            {k: row[k] for k in ("name", "display_name", "categories", "is_public")},
        )
    return present(row)


async def update_department(ctx: AppContext, principal: Principal, meta: RequestMeta, ref: str, data: dict) -> dict:
    require_writer(principal)
    async with ctx.db.transaction() as conn:
        before = await _lock_for_write(ctx, conn, ref)
        after = {**{f: before[f] for f in MUTABLE}, **data}
        changes = {k: {"from": before[k], "to": after[k]} for k in data if before[k] != after[k]}
        if not changes:
            return present(before)
        if "categories" in changes:
            await _refuse_clashes(ctx, conn, before["id"], before["name"], after["categories"])
        row = await ctx.db.q.update_department(conn, id=before["id"], **after, now=ctx.clock.now())
        await _record(ctx, conn, principal, meta, "update", row, changes)
    return present(row)


async def delete_department(ctx: AppContext, principal: Principal, meta: RequestMeta, ref: str) -> None:
    require_writer(principal)
    async with ctx.db.transaction() as conn:
        row = await _lock_for_write(ctx, conn, ref)
        if row["name"] == DEFAULT:
            raise Conflict("The general department takes work no other department serves; it stays")
        use = dict(await ctx.db.q.department_in_use(conn, name=row["name"]))
        if any(use.values()):
            raise Conflict("Move this department's agents, open chats and unresolved tickets first", details=use)
        await ctx.db.q.delete_department(conn, id=row["id"])
        await _record(ctx, conn, principal, meta, "delete", row, {"name": row["name"]})


async def _lock_for_write(ctx: AppContext, conn: asyncpg.Connection, ref: str) -> Any:
    """The department, locked, with the catalogue of names and categories held for this transaction."""
    await ctx.db.q.lock_department_catalogue(conn)
    row = await _find(ctx, conn, ref, lock=True)
    if row is None:
        raise NotFound("Department not found")
    return row


async def _refuse_clashes(
    ctx: AppContext, conn: asyncpg.Connection, dept_id: uuid.UUID | None, name: str, categories: list[str]
) -> None:
    """A category served by another department, or naming one, would make routing ambiguous."""
    clashes = await ctx.db.q.category_clashes(conn, id=dept_id, names=[name, *categories])
    taken = {}
    for clash in clashes:
        for category in clash["served"]:
            taken[category] = clash["name"]
        if clash["named"] and clash["name"] in categories:
            taken[clash["name"]] = clash["name"]
    if taken:
        words = ", ".join(f"{c!r} ({d})" for c, d in sorted(taken.items()))
        raise Conflict(f"Categories already served by another department: {words}", details={"categories": taken})


async def _record(
    ctx: AppContext,
    conn: asyncpg.Connection,
    principal: Principal | None,
    meta: RequestMeta,
    verb: str,
    row: Any,
    changes: dict,
) -> None:
    payload = {"id": row["id"], "name": row["name"], "display_name": row["display_name"]}
    if verb == "update":
        payload["changed"] = sorted(changes)
    elif changes.get("created_on_first_use"):
        payload["created_on_first_use"] = True
    await audit.record_change(
        conn,
        ctx.events,
        principal,
        meta,
        f"department.{verb}",
        "department",
        row["id"],
        changes,
        [(f"department.{verb}d", payload)],
    )
