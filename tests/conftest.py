"""Fixtures handing out real services: a fresh PostgreSQL database, Redis, a running app, tokens.

PostgreSQL and Redis come from TEST_DATABASE_URL / TEST_REDIS_URL when set, else the machine's
local servers (127.0.0.1:5432 db `test`, 127.0.0.1:6379), else embedded ones started here.
Each test run works in its own new database, dropped at the end.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from app.auth import issue_token
from app.config import Settings
from app.context import AppContext, open_context
from app.migrate import migrate
from app.security.encryption import generate_key_spec
from hang_guard import pytest_runtest_call, pytest_runtest_setup, pytest_runtest_teardown  # noqa: F401

LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/test"
LOCAL_REDIS = "redis://127.0.0.1:6379/15"


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def service_urls() -> Iterator[tuple[str, str]]:
    """(admin DSN of a PostgreSQL server, Redis URL), embedded when nothing local answers."""
    stack = []
    pg = os.environ.get("TEST_DATABASE_URL") or (LOCAL_PG if _answers("127.0.0.1", 5432) else None)
    rd = os.environ.get("TEST_REDIS_URL") or (LOCAL_REDIS if _answers("127.0.0.1", 6379) else None)
    tmp = Path(tempfile.mkdtemp(prefix="support-test-"))
    if pg is None or rd is None:
        from app.embedded import EmbeddedPostgres, EmbeddedRedis

        if pg is None:
            server = EmbeddedPostgres(tmp / "pg", ephemeral=True)
            pg = server.start()
            stack.append(server)
        if rd is None:
            server = EmbeddedRedis(tmp / "redis")
            rd = server.start()
            stack.append(server)
    yield pg, rd
    for server in reversed(stack):
        server.stop()


@pytest.fixture(scope="session")
def test_env(service_urls: tuple[str, str]) -> Iterator[dict[str, str]]:
    """Environment for a fresh, migrated database of this run (dropped afterwards)."""
    admin_dsn, redis_url = service_urls
    name = f"support_test_{uuid.uuid4().hex[:10]}"

    async def create() -> str:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        base, _, _ = admin_dsn.rpartition("/")
        dsn = f"{base}/{name}"
        await migrate(dsn)
        client = aioredis.Redis.from_url(redis_url)
        await client.flushdb()
        await client.aclose()
        return dsn

    async def drop() -> None:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    dsn = asyncio.run(create())
    host, _, rest = redis_url.removeprefix("redis://").partition(":")
    port, _, db = rest.partition("/")
    yield {
        "DATABASE_URL": dsn,
        "REDIS_HOST": host,
        "REDIS_PORT": port,
        "REDIS_DATABASE": db or "0",
        "JWT_SECRET": secrets.token_urlsafe(48),
        "DATA_ENCRYPTION_KEYS": generate_key_spec("t1"),
        "CORS_ALLOWED_ORIGINS": "https://shop.example",
        # Generous, so the suite's own traffic is never limited; limit tests set their own.
        "RATE_LIMIT_REQUESTS_PER_MINUTE": "100000",
        "CHAT_RATE_LIMIT_MESSAGES_PER_MINUTE": "100000",
        "LOG_LEVEL": "WARNING",
        "GRPC_SERVER_PORT": "0",  # any free port: never clash with a running dev server
        "ATTACHMENT_STORAGE_DIR": tempfile.mkdtemp(prefix="support-test-files-"),
        # Automation off by default so the suite keeps its expectations; automation tests open
        # their own context with these on.
        "TICKET_AUTO_ASSIGNMENT": "false",
        "AUTO_RESPONSE_ENABLED": "false",
        # Queue alerts only where a test sets a department's queue_alert_minutes: chats other tests
        # leave queued would otherwise alert every supervisor console of the suite.
        "QUEUE_ALERT_MINUTES": "0",
        # In-process servers share the event loop with the tests driving them (browsers, fuzzers):
        # shedding by loop lag is tested on its own (test_chat_socket), not left to chance.
        "SOCKET_SHED_LAG_MS": "0",
    }
    asyncio.run(drop())


@pytest.fixture(scope="session")
def settings(test_env: dict[str, str]) -> Settings:
    return Settings.from_env(test_env)


@pytest.fixture(scope="session")
async def ctx(settings: Settings) -> AsyncIterator[AppContext]:
    async with open_context(settings) as context:
        yield context


@pytest.fixture(scope="session")
async def client(settings: Settings, ctx: AppContext) -> AsyncIterator[TestClient]:
    from app.server import build_rest

    async with TestClient(TestServer(build_rest(settings, context=ctx))) as test_client:
        yield test_client


class Users:
    """Mints users of each role with real signed tokens."""

    def __init__(self, secret: str):
        self.secret = secret

    def new(self, role: str, **claims: str) -> tuple[uuid.UUID, dict[str, str]]:
        user_id = uuid.uuid4()
        return user_id, self.headers(user_id, role, **claims)

    def headers(self, user_id: uuid.UUID, role: str, **claims: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_token(self.secret, user_id, role, **claims)}"}


@pytest.fixture(scope="session")
def users(settings: Settings) -> Users:
    return Users(settings.jwt_secret)
