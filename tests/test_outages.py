"""A dependency that is down is an outage, not a bug: REST answers 503 problem+json with
``Retry-After``, rate limits keep holding on the replica while Redis is away, and a Redis
restart leaves no stale pooled connection behind."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid

import pytest
import redis.asyncio as aioredis

from app.context import REDIS_RESILIENCE
from app.errors import RateLimited
from app.security.ratelimit import RateLimiter
from chat_support import free_port
from helpers import TICKETS, problem

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


async def test_a_database_outage_is_503_with_retry_after(client, users, ctx, monkeypatch):
    _, headers = users.new("customer")

    def down(*args, **kwargs):
        raise ConnectionRefusedError(111, "Connect call failed")

    monkeypatch.setattr(ctx.db, "connection", down)
    response = await client.get(TICKETS, headers=headers)
    body = await problem(response, 503)
    assert int(response.headers["Retry-After"]) >= 1
    assert body["retry_after_ms"] > 0


async def test_rate_limits_hold_on_the_replica_while_redis_is_down():
    limiter = RateLimiter(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    key = uuid.uuid4().hex
    for _ in range(3):
        verdict = await limiter.hit("rest", key, 3)
        assert verdict.allowed
    assert not (await limiter.hit("rest", key, 3)).allowed
    await limiter.check("chat", key, 1)
    with pytest.raises(RateLimited):
        await limiter.check("chat", key, 1)
    assert limiter.degraded


@pytest.fixture
async def own_redis():
    """A redis-server this test owns (and restarts)."""
    port = free_port()
    args = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    procs = [subprocess.Popen(args, stdout=subprocess.DEVNULL)]

    async def ready() -> None:
        client = aioredis.Redis(port=port)
        try:
            for _ in range(200):
                try:
                    await client.ping()
                    return
                except Exception:
                    await asyncio.sleep(0.02)
        finally:
            await client.aclose()

    async def restart() -> None:
        procs[-1].kill()
        procs[-1].wait()
        procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL))
        await ready()

    await ready()
    yield port, restart
    for proc in procs:
        proc.kill()
        proc.wait()


async def test_pooled_connections_survive_a_redis_restart(own_redis):
    port, restart = own_redis
    pool = aioredis.BlockingConnectionPool.from_url(
        f"redis://127.0.0.1:{port}/0", decode_responses=True, max_connections=8, timeout=5, **REDIS_RESILIENCE
    )
    client = aioredis.Redis(connection_pool=pool)
    try:
        # several connections in the pool, all of them left stale by the restart
        await asyncio.gather(*(client.blpop(f"k{i}", timeout=0.05) for i in range(5)))
        await restart()
        results = await asyncio.gather(*(client.set(f"k{i}", "v") for i in range(8)), return_exceptions=True)
        assert results == [True] * 8, results
    finally:
        await client.aclose()
        await pool.aclose()
