"""Fixtures of the gRPC test modules (``pytest_plugins = ["grpc_fixtures"]``): the whole replica
(REST, Socket.IO, gRPC on a free port) in-process on the shared ``ctx``, a real grpc.aio channel
to it, stubs and per-role call metadata."""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from aiohttp import web

from app.config import Settings
from app.context import AppContext
from support_stubs.support.v1 import chat_pb2_grpc, events_pb2_grpc, support_pb2_grpc


@dataclasses.dataclass
class Replica:
    """One replica on 127.0.0.1: ``http`` base URL, ``grpc`` address, the app and its context."""

    http: str
    grpc: str
    app: web.Application
    ctx: AppContext
    settings: Settings


@dataclasses.dataclass
class Stubs:
    support: support_pb2_grpc.SupportServiceStub
    events: events_pb2_grpc.SupportEventServiceStub
    chat: chat_pb2_grpc.ChatServiceStub
    channel: grpc.aio.Channel


class Callers:
    """gRPC metadata (``authorization: Bearer <JWT>``) for new users of each role."""

    def __init__(self, users: Any):
        self.users = users

    def new(self, role: str, **claims: str) -> tuple[uuid.UUID, tuple[tuple[str, str], ...]]:
        user_id, headers = self.users.new(role, **claims)
        return user_id, self.metadata(headers)

    def of(self, user_id: uuid.UUID, role: str, **claims: str) -> tuple[tuple[str, str], ...]:
        return self.metadata(self.users.headers(user_id, role, **claims))

    @staticmethod
    def metadata(headers: dict[str, str]) -> tuple[tuple[str, str], ...]:
        return (("authorization", headers["Authorization"]),)


@contextlib.asynccontextmanager
async def serve_replica(settings: Settings, ctx: AppContext) -> AsyncIterator[Replica]:
    """``app.server.build`` on free ports (HTTP and gRPC) over real sockets."""
    from app.server import GRPC, build

    local = dataclasses.replace(settings, grpc_server_port=0)
    app = build(local, context=ctx)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        yield Replica(f"http://127.0.0.1:{port}", f"127.0.0.1:{app[GRPC].port}", app, ctx, local)
    finally:
        await runner.cleanup()
        await _stop_socketio_manager(app)


@pytest.fixture(scope="module")
async def replica(settings: Settings, ctx: AppContext) -> AsyncIterator[Replica]:
    async with serve_replica(settings, ctx) as running:
        yield running


async def _stop_socketio_manager(app: web.Application) -> None:
    """python-socketio's Redis manager keeps a listener task and connection past the app's
    cleanup; stop them so no socket outlives the test module (ResourceWarning is an error)."""
    from sockets.server import SOCKETS

    manager = app[SOCKETS].manager
    thread = getattr(manager, "thread", None)
    if thread is not None:
        thread.cancel()
        with contextlib.suppress(BaseException):
            await thread
    for name in ("pubsub", "redis"):
        resource = getattr(manager, name, None)
        if resource is not None:
            with contextlib.suppress(Exception):
                await resource.aclose()


@pytest.fixture(scope="module")
async def stubs(replica: Replica) -> AsyncIterator[Stubs]:
    channel = grpc.aio.insecure_channel(replica.grpc)
    try:
        yield Stubs(
            support_pb2_grpc.SupportServiceStub(channel),
            events_pb2_grpc.SupportEventServiceStub(channel),
            chat_pb2_grpc.ChatServiceStub(channel),
            channel,
        )
    finally:
        await channel.close()


@pytest.fixture(scope="session")
def callers(users: Any) -> Callers:
    return Callers(users)
