"""Canned responses: reusable replies agents insert by shortcut.

Staff (agents, supervisors, admins) read them; supervisors and admins write them. A shortcut is
unique (409 on a clash). Writes are audited and emit ``canned_response.*`` events.
"""

from __future__ import annotations

import uuid

import asyncpg

from app.auth import Principal, RequestMeta
from app.context import AppContext
from app.db import contains_pattern, fetch_page
from app.errors import Conflict, Forbidden, NotFound
from app.security import audit

FIELDS = ("id", "shortcut", "title", "body", "department", "created_by", "created_at", "updated_at")


def _present(row: asyncpg.Record) -> dict:
    return {f: row[f] for f in FIELDS}


def _can_read(principal: Principal) -> None:
    if not (principal.is_staff or principal.role == "service"):
        raise Forbidden("Only staff use canned responses")


def _can_write(principal: Principal) -> None:
    if not principal.sees_all:
        raise Forbidden("Only supervisors and admins manage canned responses")


async def list_canned(ctx: AppContext, principal: Principal, query: dict) -> dict:
    _can_read(principal)
    where = {"department": query.get("department"), "q_pattern": contains_pattern(query.get("q"))}
    async with ctx.db.connection() as conn:
        rows, total = await fetch_page(
            ctx.db.q.list_canned_responses,
            conn,
            **where,
            sort=query["sort"],
            limit=query["limit"],
            offset=query["offset"],
        )
    return {"items": [_present(r) for r in rows], "total": total, "limit": query["limit"], "offset": query["offset"]}


async def get_canned(ctx: AppContext, principal: Principal, canned_id: uuid.UUID) -> dict:
    _can_read(principal)
    async with ctx.db.connection() as conn:
        row = await ctx.db.q.get_canned_response(conn, id=canned_id)
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
                row = await ctx.db.q.insert_canned_response(
                    conn,
                    shortcut=data["shortcut"],
                    title=data["title"],
                    body=data["body"],
                    department=data.get("department"),
                    created_by=principal.user_id,
                    now=now,
                )
        except asyncpg.UniqueViolationError:
            raise _clash(data["shortcut"]) from None
        await audit.record_change(
            conn,
            ctx.events,
            principal,
            meta,
            "canned_response.create",
            "canned_response",
            row["id"],
            {"shortcut": row["shortcut"], "department": row["department"]},
            [
                (
                    "canned_response.created",
                    {"id": row["id"], "shortcut": row["shortcut"], "department": row["department"]},
                )
            ],
        )
    return _present(row)


async def update_canned(
    ctx: AppContext, principal: Principal, meta: RequestMeta, canned_id: uuid.UUID, data: dict
) -> dict:
    _can_write(principal)
    now = ctx.clock.now()
    async with ctx.db.transaction() as conn:
        before = await ctx.db.q.lock_canned_response(conn, id=canned_id)
        if before is None:
            raise NotFound("Canned response not found")
        after = {**dict(before), **data}
        changes = {k: {"from": before[k], "to": after[k]} for k in data if before[k] != after[k]}
        if not changes:
            return _present(before)
        try:
            async with conn.transaction():
                row = await ctx.db.q.update_canned_response(
                    conn,
                    id=canned_id,
                    shortcut=after["shortcut"],
                    title=after["title"],
                    body=after["body"],
                    department=after["department"],
                    now=now,
                )
        except asyncpg.UniqueViolationError:
            raise _clash(after["shortcut"]) from None
        audit_changes = {k: ({"changed": True} if k == "body" else v) for k, v in changes.items()}
        await audit.record_change(
            conn,
            ctx.events,
            principal,
            meta,
            "canned_response.update",
            "canned_response",
            canned_id,
            audit_changes,
            [
                (
                    "canned_response.updated",
                    {
                        "id": canned_id,
                        "shortcut": row["shortcut"],
                        "department": row["department"],
                        "changed": sorted(changes),
                    },
                )
            ],
        )
    return _present(row)


async def delete_canned(ctx: AppContext, principal: Principal, meta: RequestMeta, canned_id: uuid.UUID) -> None:
    _can_write(principal)
    async with ctx.db.transaction() as conn:
        row = await ctx.db.q.delete_canned_response(conn, id=canned_id)
        if row is None:
            raise NotFound("Canned response not found")
        await audit.record_change(
            conn,
            ctx.events,
            principal,
            meta,
            "canned_response.delete",
            "canned_response",
            canned_id,
            {"shortcut": row["shortcut"]},
            [
                (
                    "canned_response.deleted",
                    {"id": canned_id, "shortcut": row["shortcut"], "department": row["department"]},
                )
            ],
        )
