"""Support agents: the roster supervisors manage, and each agent's own profile and status."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from app.auth import Principal, RequestMeta, require_role
from app.context import AppContext
from app.db import fetch_page
from app.errors import Conflict, NotFound
from app.security import audit
from app.services import departments

FIELDS = (
    "id",
    "user_id",
    "display_name",
    "role",
    "department",
    "skills",
    "max_tickets",
    "current_tickets",
    "max_chats",
    "active_chats",
    "status",
    "is_online",
    "is_available",
    "performance_score",
    "last_seen_at",
    "created_at",
    "updated_at",
)
MUTABLE = (
    "display_name",
    "role",
    "department",
    "skills",
    "max_tickets",
    "max_chats",
    "status",
    "is_available",
    "performance_score",
)


def present(row: Any) -> dict:
    agent = {f: row[f] for f in FIELDS}
    if agent["performance_score"] is not None:
        agent["performance_score"] = float(agent["performance_score"])
    return agent


def _require_manager(principal: Principal) -> None:
    require_role(principal, "supervisor", "admin")


async def create_agent(ctx: AppContext, principal: Principal, meta: RequestMeta, data: dict) -> dict:
    _require_manager(principal)
    async with ctx.db.transaction() as conn:
        await departments.ensure(ctx, conn, data["department"], principal=principal, meta=meta)
        try:
            row = await ctx.db.q.insert_agent(
                conn,
                **{
                    k: data.get(k)
                    for k in (
                        "user_id",
                        "display_name",
                        "role",
                        "department",
                        "skills",
                        "max_tickets",
                        "max_chats",
                        "is_available",
                        "performance_score",
                    )
                },
            )
        except asyncpg.UniqueViolationError as exc:
            raise Conflict("An agent with this user_id already exists") from exc
        agent = present(row)
        await audit.record_change(
            conn,
            ctx.events,
            principal,
            meta,
            "agent.create",
            "agent",
            agent["id"],
            {k: agent[k] for k in ("user_id", "display_name", "role", "department")},
            [("agent.created", _summary(agent))],
        )
    return agent


def _summary(agent: dict) -> dict:
    return {
        k: agent[k]
        for k in (
            "id",
            "user_id",
            "display_name",
            "role",
            "department",
            "status",
            "max_chats",
            "max_tickets",
            "is_available",
        )
    }


async def get_agent(ctx: AppContext, principal: Principal, agent_id: uuid.UUID) -> dict:
    _require_manager(principal)
    async with ctx.db.connection() as conn:
        row = await ctx.db.q.get_agent(conn, id=agent_id)
    if row is None:
        raise NotFound("Agent not found")
    return present(row)


async def get_me(ctx: AppContext, principal: Principal) -> dict:
    require_role(principal, "agent", "supervisor", "admin")
    async with ctx.db.connection() as conn:
        row = await ctx.db.q.get_agent_by_user(conn, user_id=principal.user_id)
    if row is None:
        raise NotFound("You have no agent profile; ask a supervisor to create one")
    return present(row)


async def list_agents(ctx: AppContext, principal: Principal, query: dict) -> dict:
    _require_manager(principal)
    async with ctx.db.connection() as conn:
        rows, total = await fetch_page(
            ctx.db.q.list_agents,
            conn,
            department=query.get("department"),
            role=query.get("role"),
            status=query.get("status"),
            is_available=query.get("is_available"),
            limit=query["limit"],
            offset=query["offset"],
        )
    return {"items": [present(r) for r in rows], "total": total, "limit": query["limit"], "offset": query["offset"]}


async def _update(
    ctx: AppContext,
    principal: Principal,
    meta: RequestMeta,
    conn: asyncpg.Connection,
    before: Any,
    data: dict,
    action: str,
) -> dict:
    values = {k: data.get(k, before[k]) for k in MUTABLE}
    changes = {k: {"from": before[k], "to": v} for k, v in values.items() if before[k] != v}
    if not changes:
        return present(before)
    if "department" in changes:
        await departments.ensure(ctx, conn, values["department"], principal=principal, meta=meta)
    row = await ctx.db.q.update_agent(conn, id=before["id"], **values, now=ctx.clock.now())
    agent = present(row)
    emitted: list[tuple[str, dict]] = [("agent.updated", {**_summary(agent), "changes": changes})]
    if "status" in changes:
        emitted.append(("agent.status_changed", {**_summary(agent), "from": before["status"]}))
    await audit.record_change(conn, ctx.events, principal, meta, action, "agent", agent["id"], changes, emitted)
    return agent


async def update_agent(
    ctx: AppContext, principal: Principal, meta: RequestMeta, agent_id: uuid.UUID, data: dict
) -> dict:
    _require_manager(principal)
    async with ctx.db.transaction() as conn:
        before = await ctx.db.q.lock_agent(conn, id=agent_id)
        if before is None:
            raise NotFound("Agent not found")
        return await _update(ctx, principal, meta, conn, before, data, "agent.update")


async def set_my_status(ctx: AppContext, principal: Principal, meta: RequestMeta, status: str) -> dict:
    require_role(principal, "agent", "supervisor", "admin")
    async with ctx.db.transaction() as conn:
        row = await ctx.db.q.get_agent_by_user(conn, user_id=principal.user_id)
        if row is None:
            raise NotFound("You have no agent profile; ask a supervisor to create one")
        before = await ctx.db.q.lock_agent(conn, id=row["id"])
        return await _update(ctx, principal, meta, conn, before, {"status": status}, "agent.status_change")


async def delete_agent(ctx: AppContext, principal: Principal, meta: RequestMeta, agent_id: uuid.UUID) -> None:
    _require_manager(principal)
    async with ctx.db.transaction() as conn:
        row = await ctx.db.q.lock_agent(conn, id=agent_id)
        if row is None:
            raise NotFound("Agent not found")
        await ctx.db.q.delete_agent(conn, id=agent_id)
        await audit.record_change(
            conn,
            ctx.events,
            principal,
            meta,
            "agent.delete",
            "agent",
            agent_id,
            {"user_id": str(row["user_id"]), "display_name": row["display_name"]},
            [("agent.deleted", _summary(present(row)))],
        )


async def stats(ctx: AppContext, principal: Principal, query: dict) -> dict:
    """The supervisor's team view: each agent's status and load, and today's (or the window's)
    chats, average first response and handle time, and ratings."""
    _require_manager(principal)
    now = ctx.clock.now()
    until = query.get("until") or now
    since = query.get("since") or now.astimezone(ZoneInfo(query["tz"])).replace(
        hour=0, minute=0, second=0, microsecond=0
    ).astimezone(dt.timezone.utc)
    async with ctx.db.connection() as conn:
        rows, total = await fetch_page(
            ctx.db.q.agent_stats,
            conn,
            department=query.get("department"),
            since=since,
            until=until,
            limit=query["limit"],
            offset=query["offset"],
        )
    return {
        "items": [_stats_view(r) for r in rows],
        "total": total,
        "limit": query["limit"],
        "offset": query["offset"],
        "from": since,
        "to": until,
    }


def _stats_view(row: Any) -> dict:
    def average(value: Any, count: Any) -> dict:
        return {"avg": round(float(value), 1) if value is not None else None, "count": count or 0}

    return {
        **{
            k: row[k]
            for k in (
                "id",
                "user_id",
                "display_name",
                "department",
                "role",
                "status",
                "is_online",
                "active_chats",
                "max_chats",
            )
        },
        "chats": row["chats"] or 0,
        "first_response_seconds": average(row["first_response_avg"], row["first_response_count"]),
        "handle_seconds": average(row["handle_avg"], row["handle_count"]),
        "ratings": {
            "avg": round(float(row["rating_avg"]), 2) if row["rating_avg"] is not None else None,
            "count": row["ratings"] or 0,
        },
    }
