"""Fixtures of the chat test modules (``pytest_plugins = ["chat_fixtures"]``); the helpers they
use are in ``chat_support``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.config import Settings
from app.context import AppContext
from chat_support import Cast, ChatServer, Replica, new_department, replica_env, serve_in_process


@pytest.fixture(scope="module")
async def chat_server(settings: Settings, ctx: AppContext) -> AsyncIterator[ChatServer]:
    async with serve_in_process(settings, ctx) as server:
        yield server


@pytest.fixture
async def cast(chat_server: ChatServer) -> AsyncIterator[Cast]:
    group = Cast(chat_server.url, chat_server.settings.jwt_secret)
    yield group
    await group.close()


@pytest.fixture
def department() -> str:
    return new_department()


@pytest.fixture(scope="module")
def replica_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("replicas")


@pytest.fixture(scope="module")
async def replicas(test_env: dict[str, str], replica_logs: Path) -> AsyncIterator[list[Replica]]:
    """Two `python -m app serve` processes sharing the test database and Redis."""
    group: list[Replica] = []
    try:
        for name in ("A", "B"):
            env = replica_env(test_env)
            replica = Replica(
                name, f"http://127.0.0.1:{env['SERVER_PORT']}", env, log_path=replica_logs / f"replica-{name}.log"
            )
            replica.start()
            group.append(replica)
        await asyncio.gather(*(r.wait_ready() for r in group))
        yield group
    finally:
        for replica in group:
            replica.stop()
