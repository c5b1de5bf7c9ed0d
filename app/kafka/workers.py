"""The Kafka side of a replica (with ``KAFKA_BOOTSTRAP_SERVERS``): relay, consumer, readiness."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka.client import AIOKafkaClient

from app.context import AppContext
from app.tasks import stop_tasks
from app.kafka.consumer import EventConsumer
from app.kafka.relay import OutboxRelay, update_backlog_metrics

log = logging.getLogger(__name__)


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


class KafkaWorkers:
    """What a replica runs when ``KAFKA_BOOTSTRAP_SERVERS`` is set, put in place by app/server.py:
    the outbox relay (a leader listener of the replica's event follower), the consumer (every
    replica, one group; it keeps its own task from :meth:`start` to :meth:`aclose`) and the
    ``kafka`` readiness component (not required: while Kafka is down the outbox keeps every
    event and the service goes on). Relay-lag metrics and retention are duties (app/duties.py)."""

    def __init__(self, ctx: AppContext):
        self.ctx = ctx
        self.relay = OutboxRelay(ctx)
        self.consumer = EventConsumer(ctx)
        self.probe = KafkaProbe(ctx.settings.kafka_bootstrap_servers or "")
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.consumer.run(), name="event-consumer")

    async def aclose(self) -> None:
        if self._task is not None:
            await stop_tasks([self._task])
            self._task = None
        await self.probe.close()

    async def health(self) -> dict:
        brokers = await self.probe.brokers()
        return {
            "brokers": brokers,
            "relay_leader": self.relay.leading,
            "consumer_running": self.consumer.running,
            **await update_backlog_metrics(self.ctx),
        }
