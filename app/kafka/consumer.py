"""Events other services publish on ``KAFKA_TOPIC_SUPPORT_EVENTS``, into the event log.

Every replica consumes in group ``KAFKA_GROUP_ID`` (Kafka spreads the partitions). Each message
is stored in ``support_events`` unless its event id is already there (the unique ``event_id`` is
the de-duplication, so a redelivery or this service's own relayed events change nothing), then
handed to the automation hooks (:func:`app.services.events_api.register_hook`). Offsets are
committed after a batch is stored; a failure restarts from the last commit. A message that is
not a valid event is counted, logged and skipped, so one bad message cannot stop the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer

from app import metrics
from app.context import AppContext
from app.errors import ValidationFailed
from app.services import events_api

log = logging.getLogger(__name__)
ConsumerFactory = Callable[[], Any]


def decode(value: bytes | None, headers: Any) -> dict:
    """The event in a Kafka message: a JSON object; the ``event_id`` header fills a missing id."""
    data = json.loads(value) if value else None
    if not isinstance(data, dict):
        raise ValueError("the message value is not a JSON object")
    for key, raw in headers or ():
        if key == "event_id" and not data.get("event_id"):
            data["event_id"] = raw.decode()
    return data


class EventConsumer:
    def __init__(
        self,
        ctx: AppContext,
        *,
        bootstrap_servers: str | None = None,
        group_id: str | None = None,
        topic: str | None = None,
        consumer_factory: ConsumerFactory | None = None,
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 3_000,
        backoff: tuple[float, float] = (0.5, 30.0),
    ):
        settings = ctx.settings
        self.ctx = ctx
        self.bootstrap_servers = bootstrap_servers or settings.kafka_bootstrap_servers
        self.group_id = group_id or settings.kafka_group_id
        self.topic = topic or settings.kafka_topic_support_events
        self.session_timeout_ms = session_timeout_ms
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.backoff = backoff
        self._consumer_factory = consumer_factory or self._default_consumer
        self.running = False

    def _default_consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.bootstrap_servers,
            group_id=self.group_id,
            client_id="support-service-consumer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=self.heartbeat_interval_ms,
        )

    async def run(self) -> None:
        delay = self.backoff[0]
        while True:
            consumer = self._consumer_factory()
            try:
                await consumer.start()
                self.running = True
                delay = self.backoff[0]
                await self._consume(consumer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "event consumer failed; restarting from the last committed offset",
                    extra={"error": f"{type(exc).__name__}: {exc}", "retry_in_s": delay},
                )
            finally:
                self.running = False
                with contextlib.suppress(Exception):
                    await consumer.stop()
            await asyncio.sleep(delay)  # back-off while Kafka (or the database) is down
            delay = min(delay * 2, self.backoff[1])

    async def _consume(self, consumer: Any) -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=1000, max_records=500)
            for records in batch.values():
                for record in records:
                    await self.handle(record.value, record.headers)
            if batch:
                await consumer.commit()

    async def handle(self, value: bytes | None, headers: Any = ()) -> str:
        """Store one message; returns the outcome (stored, duplicate, own, invalid)."""
        try:
            data = decode(value, headers)
        except (ValueError, UnicodeDecodeError) as exc:
            return self._count("invalid", {"error": str(exc)})
        if data.get("source") == self.ctx.events.source:
            return self._count("own")  # our relay's output coming back: already in the log
        try:
            stored = await events_api.ingest(self.ctx, data, topic=self.topic)
        except ValidationFailed as exc:
            return self._count("invalid", {"event_id": str(data.get("event_id")), "errors": exc.details})
        return self._count("stored" if stored is not None else "duplicate")

    @staticmethod
    def _count(outcome: str, details: dict | None = None) -> str:
        metrics.EVENTS_CONSUMED.labels(outcome=outcome).inc()
        if outcome == "invalid":
            log.warning("skipped an invalid event from Kafka", extra=details or {})
        return outcome
