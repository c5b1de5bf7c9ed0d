"""The grpc.aio server of one replica: the three support.v1 services, health, reflection.

It runs on the process's event loop beside aiohttp (app/server.py starts and stops it with the
app). Options come from the GRPC_* settings. ``grpc.health.v1`` answers SERVING while the
database answers and NOT_SERVING while it does not (checked every few seconds), so
``grpc_health_probe`` and load balancers see the truth. Shutdown drains: health goes
NOT_SERVING, open streams are ended with UNAVAILABLE (clients resume from their last event id or
seq), unary calls in flight get ``grace`` seconds to finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from app.config import Settings
from app.context import AppContext
from app.services.events_api import EventHub
from grpc_server.chat import ChatServicer
from grpc_server.events import SupportEventServicer
from support_stubs.support.v1 import chat_pb2, chat_pb2_grpc, events_pb2, events_pb2_grpc, support_pb2, support_pb2_grpc
from grpc_server.interceptors import interceptors
from grpc_server.support import SupportServicer

log = logging.getLogger("support.grpc")
SERVICES = tuple(
    module.DESCRIPTOR.services_by_name[name].full_name
    for module, name in (
        (support_pb2, "SupportService"),
        (events_pb2, "SupportEventService"),
        (chat_pb2, "ChatService"),
    )
)
DbCheck = Callable[[], Awaitable[object]]


def server_options(s: Settings) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", s.grpc_max_receive_message_size),
        ("grpc.max_send_message_length", s.grpc_max_send_message_size),
        ("grpc.keepalive_time_ms", s.grpc_keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", s.grpc_keepalive_timeout_ms),
        # Let clients keep idle connections alive with pings as often as we ping them.
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", min(s.grpc_keepalive_time_ms, 10_000)),
        ("grpc.http2.max_pings_without_data", 0),
        # A second process on the same port must fail to start, not share it silently.
        ("grpc.so_reuseport", 0),
    ]


class GrpcServer:
    def __init__(
        self,
        ctx: AppContext,
        *,
        settings: Settings | None = None,
        host: str = "0.0.0.0",
        port: int | None = None,
        grace: float = 10.0,
        health_interval: float = 5.0,
        db_check: DbCheck | None = None,
        hub: EventHub | None = None,
    ):
        """``hub``: the replica's subscriptions hub (a listener of its event follower); without
        one the server runs a hub of its own."""
        self.ctx = ctx
        self.settings = settings or ctx.settings
        self.host = host
        self.requested_port = self.settings.grpc_server_port if port is None else port
        self.port: int | None = None
        self.grace = grace
        self.health_interval = health_interval
        self.db_check = db_check or self._database_answers
        self.draining = asyncio.Event()
        self._own_hub = hub is None
        self.hub = hub or EventHub(ctx)
        self.health = health.aio.HealthServicer()
        self.serving = False
        self._server: grpc.aio.Server | None = None
        self._watcher: asyncio.Task | None = None

    async def _database_answers(self) -> None:
        async with self.ctx.db.connection() as conn:
            await conn.fetchval("SELECT 1")

    async def start(self) -> int:
        server = grpc.aio.server(interceptors=interceptors(self.ctx), options=server_options(self.settings))
        support_pb2_grpc.add_SupportServiceServicer_to_server(SupportServicer(self.ctx), server)
        events_pb2_grpc.add_SupportEventServiceServicer_to_server(
            SupportEventServicer(self.ctx, self.hub, self.draining), server
        )
        chat_pb2_grpc.add_ChatServiceServicer_to_server(ChatServicer(self.ctx, self.hub, self.draining), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection((*SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        address = f"{self.host}:{self.requested_port}"
        try:
            self.port = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise RuntimeError(f"gRPC cannot listen on {address}: {exc}") from exc
        if self._own_hub:
            await self.hub.start()
        await server.start()
        self._server = server
        await self._check_health()
        self._watcher = asyncio.create_task(self._watch_health(), name="grpc-health")
        log.info("gRPC listening", extra={"port": self.port})
        return self.port

    async def _check_health(self) -> None:
        try:
            await asyncio.wait_for(self.db_check(), self.health_interval)
            serving = True
        except asyncio.CancelledError:
            raise
        except Exception:
            serving = False
        if serving != self.serving or self._watcher is None:
            status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
            for service in ("", *SERVICES):
                await self.health.set(service, status)
            if serving != self.serving and self._watcher is not None:
                log.warning("gRPC health changed", extra={"serving": serving})
        self.serving = serving

    async def _watch_health(self) -> None:
        while True:
            await asyncio.sleep(self.health_interval)  # the probe period
            await self._check_health()

    async def stop(self, grace: float | None = None) -> None:
        """Drain: NOT_SERVING, end the streams (UNAVAILABLE), let unary calls finish, stop."""
        if self._server is None:
            return
        await self.health.enter_graceful_shutdown()
        self.serving = False
        self.draining.set()
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await self._server.stop(self.grace if grace is None else grace)
        await self.hub.stop()
        self._server = None

    async def report(self) -> dict:
        """The ``grpc`` readiness component: down unless listening and serving."""
        if self._server is None or not self.serving:
            raise RuntimeError("gRPC is not serving")
        return {
            "port": self.port,
            "event_hub": "listening" if self.hub.connected else "reconnecting",
            "subscribers": self.hub.listeners,
        }


@contextlib.asynccontextmanager
async def serving(ctx: AppContext, **options: object) -> AsyncIterator[GrpcServer]:
    server = GrpcServer(ctx, **options)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
