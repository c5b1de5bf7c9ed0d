"""The outbox relay: ``support_events`` rows to Kafka, in order per entity, never lost.

One replica at a time relays: the relay is a leader listener of the replica's event follower
(app/follower.py), leading under an advisory lock on the replica's Leader connection (a replica
that dies releases it with its connection). It is woken by NOTIFY on ``support_events``, reads unpublished rows in commit-safe order
(sql/queries/relay.sql), sends each to its row's topic keyed by entity id (so one ticket's
events land in one partition, in order) with the event id in a header, waits for ``acks=all``
and only then marks the rows published. A crash between sending and marking sends those rows
again on restart: delivery is at least once, and consumers de-duplicate by event id. While
Kafka is down the relay backs off and retries; the rows wait in the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaProducer

from app import metrics
from app.context import AppContext
from app.jsonutil import dumps
from app.follower import Wake, following
from app.services.events_api import event_view

log = logging.getLogger(__name__)
ProducerFactory = Callable[[], Any]


def message_value(row: Any) -> bytes:
    """The Kafka message value: the event as JSON (README "Events")."""
    return dumps(event_view(row)).encode()


def message_headers(row: Any) -> list[tuple[str, bytes]]:
    return [
        ("event_id", str(row["event_id"]).encode()),
        ("event_type", row["type"].encode()),
        ("source", row["source"].encode()),
        ("content-type", b"application/json"),
    ]


class OutboxRelay:
    name = "outbox-relay"
    leader = True

    def __init__(
        self,
        ctx: AppContext,
        *,
        bootstrap_servers: str | None = None,
        enable_idempotence: bool | None = None,
        batch_size: int = 500,
        producer_factory: ProducerFactory | None = None,
        idle_seconds: float = 5.0,
        backoff: tuple[float, float] = (0.5, 30.0),
        follower_retry_seconds: float = 5.0,
    ):
        settings = ctx.settings
        self.ctx = ctx
        self.bootstrap_servers = bootstrap_servers or settings.kafka_bootstrap_servers
        self.enable_idempotence = (
            settings.kafka_enable_idempotence if enable_idempotence is None else enable_idempotence
        )
        self.batch_size = batch_size
        self._producer_factory = producer_factory or self._default_producer
        self.idle_seconds = idle_seconds
        self.backoff = backoff
        self.retry_seconds = follower_retry_seconds  # how often a follower tries to lead
        self.leading = False
        self.producer: Any = None
        self.wake = Wake()

    def _default_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            client_id="support-service-relay",
            acks="all",
            enable_idempotence=self.enable_idempotence,
            linger_ms=5,
            request_timeout_ms=15_000,
            retry_backoff_ms=200,
        )

    async def run(self) -> None:
        """Relay on its own (with a Leader connection of its own) until cancelled; a replica runs
        the relay as a listener of its one event follower instead (app/server.py)."""
        async with following(self.ctx.settings.dsn, [self]):
            await asyncio.Future()  # until cancelled

    async def follow(self) -> None:
        """While leading: send what is pending, then wait for NOTIFY (or ``idle_seconds``, which
        also picks up rows that were not yet below xmin when notified: a long transaction
        elsewhere). Raises when Kafka (or the database) fails; the follower backs off."""
        producer = self._producer_factory()
        try:
            await producer.start()
            self.producer, self.leading = producer, True
            metrics.RELAY_LEADER.set(1)
            while True:
                sent = await self.publish_pending(producer)
                if sent >= self.batch_size:
                    continue  # more waiting: no pause
                await self.wake.wait(self.idle_seconds if not sent else 1.0)
        except asyncio.CancelledError:
            raise
        except Exception:
            metrics.RELAY_ERRORS.inc()
            raise
        finally:
            self.producer, self.leading = None, False
            metrics.RELAY_LEADER.set(0)
            with contextlib.suppress(Exception):
                await producer.stop()

    async def publish_pending(self, producer: Any) -> int:
        """Send one batch of unpublished events and mark those Kafka acknowledged; returns how
        many were published. Raises (after marking the acknowledged ones) when a send failed."""
        async with self.ctx.db.connection() as conn:
            rows = await self.ctx.db.q.relay_unpublished(conn, limit=self.batch_size)
        if not rows:
            return 0
        sent: list[tuple[Any, asyncio.Future]] = []
        failure: BaseException | None = None
        try:
            for row in rows:
                future = await producer.send(
                    row["topic"], value=message_value(row), key=row["entity_id"].encode(), headers=message_headers(row)
                )
                sent.append((row, future))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the ones already handed to the producer may still succeed
            failure = exc
        results = await asyncio.gather(*(f for _, f in sent), return_exceptions=True)
        done = [row for (row, _), result in zip(sent, results, strict=True) if not isinstance(result, BaseException)]
        failure = failure or next((r for r in results if isinstance(r, BaseException)), None)
        if done:
            async with self.ctx.db.connection() as conn:
                await self.ctx.db.q.relay_mark_published(
                    conn, positions=[r["position"] for r in done], now=self.ctx.clock.now()
                )
            for row in done:
                metrics.RELAY_PUBLISHED.labels(topic=row["topic"]).inc()
        if failure is not None:
            raise failure
        return len(done)


async def update_backlog_metrics(ctx: AppContext) -> dict:
    async with ctx.db.connection() as conn:
        row = await ctx.db.q.relay_backlog(conn, now=ctx.clock.now())
    metrics.RELAY_PENDING.set(row["pending"])
    metrics.RELAY_LAG.set(row["lag_seconds"])
    return {"pending": row["pending"], "lag_seconds": round(row["lag_seconds"], 3)}


async def prune(ctx: AppContext, *, include_unpublished: bool, batch: int = 5000) -> int:
    """Retention: delete events older than EVENT_RETENTION_DAYS that the relay is done with."""
    cutoff = ctx.clock.now() - dt.timedelta(days=ctx.settings.event_retention_days)
    total = 0
    while True:
        async with ctx.db.connection() as conn:
            deleted = await ctx.db.q.prune_events(
                conn, cutoff=cutoff, include_unpublished=include_unpublished, limit=batch
            )
        total += deleted
        if deleted < batch:
            break
    if total:
        metrics.EVENTS_PRUNED.inc(total)
        log.info("events pruned", extra={"count": total, "cutoff": cutoff.isoformat()})
    return total
