"""Audit rows, written in the same transaction as the change they record."""
from __future__ import annotations

from typing import Any

import asyncpg

from app.auth import Principal, RequestMeta
from app.db import queries
from app.jsonutil import to_jsonable


async def record(conn: asyncpg.Connection, principal: Principal | None, meta: RequestMeta,
                 action: str, entity: str, entity_id: Any, changes: dict[str, Any] | None = None) -> None:
    await queries.insert_audit(
        conn, actor_id=principal.user_id if principal else None,
        actor_role=principal.role if principal else None, action=action, entity=entity,
        entity_id=str(entity_id) if entity_id is not None else None,
        request_id=meta.request_id, ip=meta.ip, transport=meta.transport, changes=to_jsonable(changes or {}))
