"""Admin CRUD over ``categorization_rules`` and ``priority_rules`` (see app.services.automation)."""
from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from app.auth import Principal, RequestMeta
from app.context import AppContext
from app.errors import Forbidden, NotFound
from app.security import audit

# kind -> (table, entity name, columns a write may set)
KINDS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "categorization": ("categorization_rules", "categorization_rule", ("keywords", "category", "priority", "is_active")),
    "priority": ("priority_rules", "priority_rule", ("conditions", "set_priority", "priority", "is_active")),
}


def _admin(principal: Principal) -> None:
    if principal.role != "admin":
        raise Forbidden("Only admins manage automation rules")


def _present(row: asyncpg.Record) -> dict:
    return dict(row)


async def list_rules(ctx: AppContext, principal: Principal, kind: str, query: dict) -> dict:
    _admin(principal)
    table = KINDS[kind][0]
    async with ctx.db.connection() as conn:
        rows = await conn.fetch(
            f"SELECT * FROM {table} WHERE ($1::boolean IS NULL OR is_active = $1) "
            f"ORDER BY priority DESC, created_at, id LIMIT $2 OFFSET $3",
            query.get("active"), query["limit"], query["offset"])
        total = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE ($1::boolean IS NULL OR is_active = $1)",
                                    query.get("active"))
    return {"items": [_present(r) for r in rows], "total": total,
            "limit": query["limit"], "offset": query["offset"]}


async def get_rule(ctx: AppContext, principal: Principal, kind: str, rule_id: uuid.UUID) -> dict:
    _admin(principal)
    async with ctx.db.connection() as conn:
        row = await conn.fetchrow(f"SELECT * FROM {KINDS[kind][0]} WHERE id = $1", rule_id)
    if row is None:
        raise NotFound("Rule not found")
    return _present(row)


async def create_rule(ctx: AppContext, principal: Principal, meta: RequestMeta, kind: str, data: dict) -> dict:
    _admin(principal)
    table, entity, columns = KINDS[kind]
    cols = [c for c in columns if c in data]
    now = ctx.clock.now()
    placeholders = ", ".join(f"${i}" for i in range(1, len(cols) + 1))
    async with ctx.db.transaction() as conn:
        row = await conn.fetchrow(
            f"INSERT INTO {table} ({', '.join(cols)}, created_at, updated_at) "
            f"VALUES ({placeholders}, ${len(cols) + 1}, ${len(cols) + 1}) RETURNING *",
            *[data[c] for c in cols], now)
        await _record(ctx, conn, principal, meta, entity, "create", row["id"], {c: data[c] for c in cols})
    return _present(row)


async def update_rule(ctx: AppContext, principal: Principal, meta: RequestMeta, kind: str,
                      rule_id: uuid.UUID, data: dict) -> dict:
    _admin(principal)
    table, entity, columns = KINDS[kind]
    cols = [c for c in columns if c in data]
    now = ctx.clock.now()
    async with ctx.db.transaction() as conn:
        before = await conn.fetchrow(f"SELECT * FROM {table} WHERE id = $1 FOR UPDATE", rule_id)
        if before is None:
            raise NotFound("Rule not found")
        if not cols:
            return _present(before)
        sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(cols, start=2))
        row = await conn.fetchrow(
            f"UPDATE {table} SET {sets}, updated_at = ${len(cols) + 2} WHERE id = $1 RETURNING *",
            rule_id, *[data[c] for c in cols], now)
        changes = {c: {"from": before[c], "to": row[c]} for c in cols if before[c] != row[c]}
        await _record(ctx, conn, principal, meta, entity, "update", rule_id, changes)
    return _present(row)


async def delete_rule(ctx: AppContext, principal: Principal, meta: RequestMeta, kind: str,
                      rule_id: uuid.UUID) -> None:
    _admin(principal)
    table, entity, _ = KINDS[kind]
    async with ctx.db.transaction() as conn:
        row = await conn.fetchrow(f"DELETE FROM {table} WHERE id = $1 RETURNING id", rule_id)
        if row is None:
            raise NotFound("Rule not found")
        await _record(ctx, conn, principal, meta, entity, "delete", rule_id, {})


async def _record(ctx: AppContext, conn: asyncpg.Connection, principal: Principal, meta: RequestMeta,
                  entity: str, verb: str, rule_id: Any, changes: dict) -> None:
    await audit.record(conn, principal, meta, f"{entity}.{verb}", entity, rule_id, changes)
    await ctx.events.append(conn, f"{entity}.{verb}d", entity, rule_id,
                            {"id": rule_id, "changes": changes}, actor_id=principal.user_id)
