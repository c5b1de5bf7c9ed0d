"""Audit rows, written in the same transaction as the change they record (with its events:
:func:`record_change`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from app.auth import Principal, RequestMeta
from app.db import queries
from app.events import EventLog
from app.jsonutil import to_jsonable


async def record(
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


async def record_change(
    conn: asyncpg.Connection,
    events: EventLog,
    principal: Principal | None,
    meta: RequestMeta,
    action: str,
    entity: str,
    entity_id: Any,
    changes: dict[str, Any] | None,
    emitted: Sequence[tuple[str, dict[str, Any]]],
) -> None:
    """One state change recorded whole, in its transaction: the audit row and its events
    (``(type, payload)`` pairs about the same entity), so neither is written without the other."""
    await record(conn, principal, meta, action, entity, entity_id, changes)
    actor = principal.user_id if principal else None
    for event_type, payload in emitted:
        await events.append(conn, event_type, entity, entity_id, payload, actor_id=actor)
