"""The Session object of PROTOCOL.md from its row: what both the chat views
(app.services.chat_views) and the queue notifier (which has no context) present."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from app.db import queries
from app.security.encryption import FieldCipher

CUSTOMER_NAME_FIELD = "chat_sessions.customer_name"  # the AES-GCM associated data of that column
PREVIEW_LENGTH = 200  # characters of a waiting customer's first message shown in the queue
SESSION_FIELDS = (
    "id",
    "status",
    "customer_id",
    "agent_id",
    "department",
    "ticket_id",
    "subject",
    "started_at",
    "assigned_at",
    "ended_at",
    "end_reason",
    "duration_seconds",
    "satisfaction_rating",
    "last_seq",
    "customer_last_read_seq",
    "agent_last_read_seq",
)


def session_fields(
    cipher: FieldCipher,
    row: Any,
    agent_name: str | None = None,
    position: int | None = None,
    preview: str | None = None,
) -> dict:
    """The Session object from its row.

    ``preview`` (an addition to PROTOCOL.md's Session): the start of a waiting customer's first
    message, so agents see what they would accept; null once an agent has the chat."""
    session = {f: row[f] for f in SESSION_FIELDS}
    session["session_key"] = row["session_id"]
    session["customer_name"] = cipher.decrypt(row["customer_name"], CUSTOMER_NAME_FIELD)
    session["agent"] = {"id": row["agent_id"], "display_name": agent_name or "Agent"} if row["agent_id"] else None
    session["queue_position"] = position if row["status"] == "queued" else None
    session["preview"] = preview if row["status"] == "queued" else None
    return session


async def queued_sessions(cipher: FieldCipher, conn: asyncpg.Connection, rows: list[Any]) -> list[dict]:
    """Sessions of ``queue_of`` (which carries each one's position), with their previews."""
    shown = await previews(cipher, conn, [r["id"] for r in rows])
    return [session_fields(cipher, r, None, r["position"], shown.get(r["id"])) for r in rows]


async def previews(cipher: FieldCipher, conn: asyncpg.Connection, queued: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The start of each queued session's first customer message."""
    if not queued:
        return {}
    rows = await queries.first_customer_messages(conn, ids=queued)
    return {r["session_id"]: _shorten(cipher.decrypt(r["message"], "chat_messages.message") or "") for r in rows}


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= PREVIEW_LENGTH else text[: PREVIEW_LENGTH - 1].rstrip() + "…"
