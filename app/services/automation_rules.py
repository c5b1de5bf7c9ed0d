"""Admin CRUD over ``categorization_rules`` and ``priority_rules`` (see app.services.automation)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from app.auth import Principal, RequestMeta
from app.context import AppContext
from app.db import fetch_page
from app.errors import Forbidden, NotFound
from app.security import audit

# kind -> (table, entity name, columns a write may set); each table has its own named queries
# list_/get_/lock_/insert_/update_/delete_<table> (update writes every column).
KINDS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "categorization": (
        "categorization_rules",
        "categorization_rule",
        ("keywords", "category", "priority", "is_active"),
    ),
    "priority": ("priority_rules", "priority_rule", ("conditions", "set_priority", "priority", "is_active")),
}


def _admin(principal: Principal) -> None:
    if principal.role != "admin":
        raise Forbidden("Only admins manage automation rules")


def _present(row: asyncpg.Record) -> dict:
    return {k: v for k, v in dict(row).items() if k != "total"}  # list rows carry the page total


def _query(ctx: AppContext, verb: str, kind: str) -> Any:
    """The named query ``<verb>_<table>`` (``<verb>_<entity>`` for one row) of the kind."""
    table, entity, _ = KINDS[kind]
    return getattr(ctx.db.q, f"{verb}_{table if verb == 'list' else entity}")


async def list_rules(ctx: AppContext, principal: Principal, kind: str, query: dict) -> dict:
    _admin(principal)
    async with ctx.db.connection() as conn:
        rows, total = await fetch_page(
            _query(ctx, "list", kind), conn, active=query.get("active"), limit=query["limit"], offset=query["offset"]
        )
    return {"items": [_present(r) for r in rows], "total": total, "limit": query["limit"], "offset": query["offset"]}


async def get_rule(ctx: AppContext, principal: Principal, kind: str, rule_id: uuid.UUID) -> dict:
    _admin(principal)
    async with ctx.db.connection() as conn:
        row = await _query(ctx, "get", kind)(conn, id=rule_id)
    if row is None:
        raise NotFound("Rule not found")
    return _present(row)


async def create_rule(ctx: AppContext, principal: Principal, meta: RequestMeta, kind: str, data: dict) -> dict:
    _admin(principal)
    _, entity, columns = KINDS[kind]
    async with ctx.db.transaction() as conn:
        row = await _query(ctx, "insert", kind)(conn, **{c: data.get(c) for c in columns}, now=ctx.clock.now())
        await _record(
            ctx, conn, principal, meta, entity, "create", row["id"], {c: data[c] for c in columns if c in data}
        )
    return _present(row)


async def update_rule(
    ctx: AppContext, principal: Principal, meta: RequestMeta, kind: str, rule_id: uuid.UUID, data: dict
) -> dict:
    _admin(principal)
    _, entity, columns = KINDS[kind]
    cols = [c for c in columns if c in data]
    now = ctx.clock.now()
    async with ctx.db.transaction() as conn:
        before = await _query(ctx, "lock", kind)(conn, id=rule_id)
        if before is None:
            raise NotFound("Rule not found")
        if not cols:
            return _present(before)
        row = await _query(ctx, "update", kind)(
            conn, id=rule_id, **{c: data.get(c, before[c]) for c in columns}, now=now
        )
        changes = {c: {"from": before[c], "to": row[c]} for c in cols if before[c] != row[c]}
        await _record(ctx, conn, principal, meta, entity, "update", rule_id, changes)
    return _present(row)


async def delete_rule(ctx: AppContext, principal: Principal, meta: RequestMeta, kind: str, rule_id: uuid.UUID) -> None:
    _admin(principal)
    entity = KINDS[kind][1]
    async with ctx.db.transaction() as conn:
        row = await _query(ctx, "delete", kind)(conn, id=rule_id)
        if row is None:
            raise NotFound("Rule not found")
        await _record(ctx, conn, principal, meta, entity, "delete", rule_id, {})


async def _record(
    ctx: AppContext,
    conn: asyncpg.Connection,
    principal: Principal,
    meta: RequestMeta,
    entity: str,
    verb: str,
    rule_id: Any,
    changes: dict,
) -> None:
    await audit.record_change(
        conn,
        ctx.events,
        principal,
        meta,
        f"{entity}.{verb}",
        entity,
        rule_id,
        changes,
        [(f"{entity}.{verb}d", {"id": rule_id, "changes": changes})],
    )
