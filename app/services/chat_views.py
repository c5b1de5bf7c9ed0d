"""Chat sessions as clients see them (PROTOCOL.md "Objects"), and who may see which."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from app.auth import Principal, is_party
from app.context import AppContext
from app.errors import Forbidden, NotFound
from app.services import attachments
from app.services.session_fields import previews, queued_sessions, session_fields


def summary(row: Any) -> dict:
    """The non-sensitive fields a chat event carries."""
    return {
        "session_id": row["id"],
        "session_key": row["session_id"],
        "customer_id": row["customer_id"],
        "agent_id": row["agent_id"],
        "department": row["department"],
        "status": row["status"],
    }


def present_session(
    ctx: AppContext, row: Any, agent_name: str | None = None, position: int | None = None, preview: str | None = None
) -> dict:
    return session_fields(ctx.cipher, row, agent_name, position, preview)


async def session_view(ctx: AppContext, conn: asyncpg.Connection, row: Any) -> dict:
    """The Session object of PROTOCOL.md, with its agent's name and queue position."""
    return (await session_views(ctx, conn, [row]))[0]


async def session_views(ctx: AppContext, conn: asyncpg.Connection, rows: list[Any]) -> list[dict]:
    """Session objects of several rows, their agents' names read in one query."""
    agent_ids = list({r["agent_id"] for r in rows if r["agent_id"]})
    names = (
        {n["user_id"]: n["display_name"] for n in await ctx.db.q.agent_names(conn, user_ids=agent_ids)}
        if agent_ids
        else {}
    )
    shown = await previews(ctx.cipher, conn, [r["id"] for r in rows if r["status"] == "queued"])
    views = []
    for row in rows:
        position = await ctx.db.q.position_of(conn, id=row["id"]) if row["status"] == "queued" else None
        views.append(present_session(ctx, row, names.get(row["agent_id"]), position, shown.get(row["id"])))
    return views


async def queue_views(ctx: AppContext, conn: asyncpg.Connection, rows: list[Any]) -> list[dict]:
    """Sessions of ``queue_of`` (which carries each one's position), with their previews."""
    return await queued_sessions(ctx.cipher, conn, rows)


def present_message(ctx: AppContext, row: Any, plaintext: str | None = None) -> dict:
    """A message as clients see it; ``plaintext``: its text when the caller has it already (the
    sender's own new message), which spares decrypting what was just encrypted."""
    return {
        "id": row["id"],
        "session_id": row["session_id"],
        "seq": row["seq"],
        "client_msg_id": row["client_msg_id"],
        "sender_type": row["sender_type"],
        "sender_id": row["sender_id"],
        "message_type": row["message_type"],
        "message": plaintext if plaintext is not None else ctx.cipher.decrypt(row["message"], "chat_messages.message"),
        "attachments": attachments.present_refs(ctx, row.get("attachments")) or [],
        "created_at": row["created_at"],
        **_parts_of(row),
    }


def _parts_of(row: Any) -> dict:
    """``parts`` only on messages that have them (automatic ones), so other payloads keep their shape."""
    parts = row["parts"] if "parts" in row.keys() else None
    return {"parts": parts} if parts else {}


def present_note(ctx: AppContext, row: Any) -> dict:
    return {
        "id": row["id"],
        "session_id": row["session_id"],
        "sender_id": row["sender_id"],
        "message": ctx.cipher.decrypt(row["message"], "chat_notes.message"),
        "created_at": row["created_at"],
    }


async def find_session(ctx: AppContext, conn: asyncpg.Connection, ref: Any, *, lock: bool = False) -> Any:
    try:
        session_id = ref if isinstance(ref, uuid.UUID) else uuid.UUID(str(ref))
    except ValueError:
        row = await ctx.db.q.get_session_by_key(conn, session_key=str(ref))
        if row is None or not lock:
            return row
        session_id = row["id"]
    if lock:
        return await ctx.db.q.lock_session(conn, id=session_id)
    return await ctx.db.q.get_session(conn, id=session_id)


async def visible_session(
    ctx: AppContext, conn: asyncpg.Connection, principal: Principal, ref: Any, *, lock: bool = False
) -> Any:
    """The session if the caller may see it; otherwise it does not exist for them (404)."""
    row = await find_session(ctx, conn, ref, lock=lock)
    if row is None or not is_party(principal, row):
        raise NotFound("Chat session not found")
    return row


async def participant_session(
    ctx: AppContext, conn: asyncpg.Connection, principal: Principal, ref: Any, *, lock: bool = False
) -> Any:
    """The session if the caller may act in it (write, type, read, end, note, transfer).

    Customers: their own; anyone else's does not exist for them (404). Agents: one assigned to
    them; a chat that is someone else's is ``forbidden`` (staff know chats exist, the queue shows
    them; they may not act in one that is not theirs). Supervisors, admins and services: any.
    """
    row = await find_session(ctx, conn, ref, lock=lock)
    if row is None or (not principal.is_staff and not is_party(principal, row)):
        raise NotFound("Chat session not found")
    if not is_party(principal, row):
        raise Forbidden("Only the assigned agent (or a supervisor) may act in this chat")
    return row
