"""The outbox: every state change appends its event in the writer's transaction.

Rows land in ``support_events`` and are the event log; the relay (app/kafka/relay.py) publishes
them to Kafka when configured, and readers resume in commit-safe (txid, position) order (see
sql/queries/event_stream.sql).
Payloads carry ids, types and changed non-sensitive fields, never the encrypted free text.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from app.db import queries
from app.jsonutil import to_jsonable


class EventLog:
    def __init__(self, *, support_topic: str, ticket_topic: str, chat_topic: str, source: str = "support-service"):
        self._topics = {"ticket": ticket_topic, "chat": chat_topic}
        self._default_topic = support_topic
        self.source = source

    def topic_for(self, event_type: str) -> str:
        return self._topics.get(event_type.split(".", 1)[0], self._default_topic)

    async def append(
        self,
        conn: asyncpg.Connection,
        event_type: str,
        entity_type: str,
        entity_id: Any,
        payload: dict[str, Any],
        *,
        actor_id: Any = None,
    ) -> dict:
        return dict(
            await queries.insert_event(
                conn,
                event_id=uuid.uuid4(),
                type=event_type,
                topic=self.topic_for(event_type),
                entity_type=entity_type,
                entity_id=str(entity_id),
                source=self.source,
                actor_id=actor_id,
                payload=to_jsonable(payload),
            )
        )
