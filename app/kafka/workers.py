"""The event workers of one replica, started and stopped with the app (app/server.py):

- with ``KAFKA_BOOTSTRAP_SERVERS``: the outbox relay (one leader in the cluster), the consumer
  (every replica, one group), relay-lag metrics, and a ``kafka`` readiness component (not
  required: while Kafka is down the outbox keeps every event and the service goes on);
- always: retention, a cluster-once duty pruning events older than ``EVENT_RETENTION_DAYS``
  that the relay has published (every old event when no relay runs).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiokafka.client import AIOKafkaClient

from app import duties
from app.context import AppContext
from app.tasks import stop_tasks
from app.kafka.consumer import EventConsumer
from app.kafka.relay import OutboxRelay, prune, update_backlog_metrics

log = logging.getLogger(__name__)
Register = Callable[..., None]   # Health.register(name, check, required=...)
RETENTION_FIRST_RUN_SECONDS = 60.0
RETENTION_INTERVAL_SECONDS = 3600.0
BACKLOG_INTERVAL_SECONDS = 5.0


class KafkaProbe:
    """The ``kafka`` readiness check: broker metadata over one long-lived client."""

    def __init__(self, bootstrap_servers: str):
        self.bootstrap_servers = bootstrap_servers
        self._client: AIOKafkaClient | None = None

    async def brokers(self) -> int:
        if self._client is None:
            client = AIOKafkaClient(bootstrap_servers=self.bootstrap_servers, client_id="support-service-health")
            try:
                await client.bootstrap()
            except BaseException:
                await client.close()
                raise
            self._client = client
        try:
            metadata = await self._client.fetch_all_metadata()
        except Exception:
            await self.close()
            raise
        return len(metadata.brokers())

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            with contextlib.suppress(Exception):
                await client.close()


async def _every(interval: float, job: Callable[[], Awaitable[object]], *, first: float = 0.0,
                 name: str) -> None:
    await asyncio.sleep(first)
    while True:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("periodic job failed", extra={"job": name}, exc_info=True)
        await asyncio.sleep(interval)   # the period of the job, not a wait for an event


@contextlib.asynccontextmanager
async def event_workers(ctx: AppContext, register: Register) -> AsyncIterator[None]:
    settings = ctx.settings
    kafka = bool(settings.kafka_bootstrap_servers)
    tasks: list[asyncio.Task] = []
    probe: KafkaProbe | None = None

    async def retention(ctx: AppContext) -> None:
        await prune(ctx, include_unpublished=not kafka)

    tasks.append(asyncio.create_task(
        _every(RETENTION_INTERVAL_SECONDS, lambda: duties.run_once(ctx, "event-retention", retention),
               first=RETENTION_FIRST_RUN_SECONDS, name="event-retention"), name="event-retention"))
    if kafka:
        relay, consumer = OutboxRelay(ctx), EventConsumer(ctx)
        probe = KafkaProbe(settings.kafka_bootstrap_servers)
        tasks += [asyncio.create_task(relay.run(), name="outbox-relay"),
                  asyncio.create_task(consumer.run(), name="event-consumer"),
                  asyncio.create_task(_every(BACKLOG_INTERVAL_SECONDS, lambda: update_backlog_metrics(ctx),
                                             name="relay-backlog"), name="relay-backlog")]

        async def kafka_health() -> dict:
            brokers = await probe.brokers()
            return {"brokers": brokers, "relay_leader": relay.leading, "consumer_running": consumer.running,
                    **await update_backlog_metrics(ctx)}

        register("kafka", kafka_health, required=False)
    try:
        yield
    finally:
        await stop_tasks(tasks)
        if probe is not None:
            await probe.close()
