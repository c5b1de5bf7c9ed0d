"""Canned responses: reusable replies agents insert by shortcut.

Staff (agents, supervisors, admins) read them; supervisors and admins write them. A shortcut is
unique (409 on a clash). Writes are audited and emit ``canned_response.*`` events.
"""
from __future__ import annotations

import uuid

import asyncpg

from app.auth import Principal, RequestMeta
from app.context import AppContext
from app.errors import Conflict, Forbidden, NotFound
from app.security import audit

FIELDS = ("id", "shortcut", "title", "body", "department", "created_by", "created_at", "updated_at")
_SORTS = {"shortcut": "shortcut", "title": "title", "created_at": "created_at"}


def _present(row: asyncpg.Record) -> dict:
    return {f: row[f] for f in FIELDS}


def _can_read(principal: Principal) -> None:
    if not (principal.is_staff or principal.role == "service"):
        raise Forbidden("Only staff use canned responses")


def _can_write(principal: Principal) -> None:
    if not principal.sees_all:
        raise Forbidden("Only supervisors and admins manage canned responses")


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def list_canned(ctx: AppContext, principal: Principal, query: dict) -> dict:
    _can_read(principal)
    sort = query["sort"]
    column = _SORTS[sort.lstrip("-")]
    direction = "DESC" if sort.startswith("-") else "ASC"
    q = query.get("q")
    async with ctx.db.connection() as conn:
        rows = await conn.fetch(
            f"SELECT *, count(*) OVER () AS total FROM canned_responses "
            f"WHERE ($1::text IS NULL OR department = $1 OR department IS NULL) "
            f"AND ($2::text IS NULL OR shortcut ILIKE $2 OR title ILIKE $2 OR body ILIKE $2) "
            f"ORDER BY {column} {direction}, id LIMIT $3 OFFSET $4",
            query.get("department"), f"%{_escape_like(q)}%" if q else None, query["limit"], query["offset"])
        if rows:
            total = rows[0]["total"]
        else:
            total = await conn.fetchval(
                "SELECT count(*) FROM canned_responses "
                "WHERE ($1::text IS NULL OR department = $1 OR department IS NULL) "
                "AND ($2::text IS NULL OR shortcut ILIKE $2 OR title ILIKE $2 OR body ILIKE $2)",
                query.get("department"), f"%{_escape_like(q)}%" if q else None) if query["offset"] else 0
    return {"items": [_present(r) for r in rows], "total": total,
            "limit": query["limit"], "offset": query["offset"]}


async def get_canned(ctx: AppContext, principal: Principal, canned_id: uuid.UUID) -> dict:
    _can_read(principal)
    async with ctx.db.connection() as conn:
        row = await conn.fetchrow("SELECT * FROM canned_responses WHERE id = $1", canned_id)
    if row is None:
        raise NotFound("Canned response not found")
    return _present(row)


def _clash(shortcut: str) -> Conflict:
    return Conflict(f"The shortcut {shortcut!r} is taken", details={"shortcut": shortcut})


async def create_canned(ctx: AppContext, principal: Principal, meta: RequestMeta, data: dict) -> dict:
    _can_write(principal)
    now = ctx.clock.now()
    async with ctx.db.transaction() as conn:
        try:
            async with conn.transaction():
                row = await conn.fetchrow(
                    "INSERT INTO canned_responses (shortcut, title, body, department, created_by, created_at, updated_at) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING *",
                    data["shortcut"], data["title"], data["body"], data.get("department"), principal.user_id, now)
        except asyncpg.UniqueViolationError:
            raise _clash(data["shortcut"]) from None
        await audit.record(conn, principal, meta, "canned_response.create", "canned_response", row["id"],
                           {"shortcut": row["shortcut"], "department": row["department"]})
        await ctx.events.append(conn, "canned_response.created", "canned_response", row["id"],
                                {"id": row["id"], "shortcut": row["shortcut"], "department": row["department"]},
                                actor_id=principal.user_id)
    return _present(row)


async def update_canned(ctx: AppContext, principal: Principal, meta: RequestMeta, canned_id: uuid.UUID,
                        data: dict) -> dict:
    _can_write(principal)
    now = ctx.clock.now()
    async with ctx.db.transaction() as conn:
        before = await conn.fetchrow("SELECT * FROM canned_responses WHERE id = $1 FOR UPDATE", canned_id)
        if before is None:
            raise NotFound("Canned response not found")
        after = {**dict(before), **data}
        changes = {k: {"from": before[k], "to": after[k]} for k in data if before[k] != after[k]}
        if not changes:
            return _present(before)
        try:
            async with conn.transaction():
                row = await conn.fetchrow(
                    "UPDATE canned_responses SET shortcut = $2, title = $3, body = $4, department = $5, "
                    "updated_at = $6 WHERE id = $1 RETURNING *",
                    canned_id, after["shortcut"], after["title"], after["body"], after["department"], now)
        except asyncpg.UniqueViolationError:
            raise _clash(after["shortcut"]) from None
        audit_changes = {k: ({"changed": True} if k == "body" else v) for k, v in changes.items()}
        await audit.record(conn, principal, meta, "canned_response.update", "canned_response", canned_id,
                           audit_changes)
        await ctx.events.append(conn, "canned_response.updated", "canned_response", canned_id,
                                {"id": canned_id, "shortcut": row["shortcut"], "department": row["department"],
                                 "changed": sorted(changes)}, actor_id=principal.user_id)
    return _present(row)


async def delete_canned(ctx: AppContext, principal: Principal, meta: RequestMeta, canned_id: uuid.UUID) -> None:
    _can_write(principal)
    async with ctx.db.transaction() as conn:
        row = await conn.fetchrow("DELETE FROM canned_responses WHERE id = $1 RETURNING *", canned_id)
        if row is None:
            raise NotFound("Canned response not found")
        await audit.record(conn, principal, meta, "canned_response.delete", "canned_response", canned_id,
                           {"shortcut": row["shortcut"]})
        await ctx.events.append(conn, "canned_response.deleted", "canned_response", canned_id,
                                {"id": canned_id, "shortcut": row["shortcut"], "department": row["department"]},
                                actor_id=principal.user_id)
