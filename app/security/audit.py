"""Audit rows, written in the same transaction as the change they record, always with its
events: :func:`record_change` is the one way to write either for a command, so no command records
one without the other (tests/test_architecture.py checks that nothing else writes audit rows)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import asyncpg

from app.auth import Principal, RequestMeta
from app.db import queries
from app.events import EventLog
from app.jsonutil import to_jsonable


@dataclasses.dataclass(frozen=True)
class Event:
    """An event of a change that is about another entity than the audited one (rating a chat
    creates a feedback row: the audit row is about the chat, ``feedback.created`` about the feedback)."""

    type: str
    payload: dict[str, Any]
    entity: str
    entity_id: Any


async def _write_row(
    conn: asyncpg.Connection,
    principal: Principal | None,
    meta: RequestMeta,
    action: str,
    entity: str,
    entity_id: Any,
    changes: dict[str, Any] | None = None,
) -> None:
    await queries.insert_audit(
        conn,
        actor_id=principal.user_id if principal else None,
        actor_role=principal.role if principal else None,
        action=action,
        entity=entity,
        entity_id=str(entity_id) if entity_id is not None else None,
        request_id=meta.request_id,
        ip=meta.ip,
        transport=meta.transport,
        changes=to_jsonable(changes or {}),
    )


async def record_published(conn: asyncpg.Connection, principal: Principal, meta: RequestMeta, event: dict) -> None:
    """The audit row of a peer's event stored by ``publish``: there the event row is the change
    itself (inserted by the caller under the peer's ``event_id``, which decides whether it is new),
    so only its audit row is written here."""
    changes = {k: event[k] for k in ("type", "source", "entity_type", "entity_id", "topic")}
    await _write_row(conn, principal, meta, "event.publish", "event", event["event_id"], changes)


async def record_change(
    conn: asyncpg.Connection,
    events: EventLog,
    principal: Principal | None,
    meta: RequestMeta,
    action: str,
    entity: str,
    entity_id: Any,
    changes: dict[str, Any] | None,
    emitted: Sequence[tuple[str, dict[str, Any]] | Event],
) -> None:
    """One state change recorded whole, in its transaction: the audit row and its events
    (``(type, payload)`` pairs about the same entity, or :class:`Event` about another), so
    neither is written without the other. It is the only writer of audit rows."""
    await _write_row(conn, principal, meta, action, entity, entity_id, changes)
    actor = principal.user_id if principal else None
    for item in emitted:
        if isinstance(item, Event):
            await events.append(conn, item.type, item.entity, item.entity_id, item.payload, actor_id=actor)
        else:
            event_type, payload = item
            await events.append(conn, event_type, entity, entity_id, payload, actor_id=actor)
