"""Rate limits kept in Redis, so every replica counts against the same budget (``limits``).

While Redis is out of reach the replica counts in its own memory instead (each replica then
allows the budget on its own): limits keep holding, and Redis is never a hard dependency of a
request or a chat message."""

from __future__ import annotations

from typing import Any

import dataclasses
import logging
import math
import time

from limits import RateLimitItemPerMinute
from redis.asyncio import ConnectionPool
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from app.errors import RateLimited
from app.outage import is_outage

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int

    @property
    def retry_after_ms(self) -> int:
        return max(1, self.reset_seconds) * 1000


class RateLimiter:
    def __init__(self, redis_url: str, pool: ConnectionPool | None = None):
        options: dict[str, Any] = {"connection_pool": pool} if pool is not None else {}
        self._storage = RedisStorage("async+" + redis_url, implementation="redispy", key_prefix="support-rl", **options)
        self._limiter = SlidingWindowCounterRateLimiter(self._storage)
        self._local_storage = MemoryStorage()
        self._local = SlidingWindowCounterRateLimiter(self._local_storage)
        self.degraded = False  # counting locally because Redis failed last time

    async def _limiter_call(self, method: str, *args: Any) -> Any:
        try:
            result = await getattr(self._limiter, method)(*args)
        except Exception as exc:
            if not is_outage(exc):
                raise
            if not self.degraded:
                log.warning("rate limits counted on this replica while Redis is out of reach: %s", exc)
            self.degraded = True
            return await getattr(self._local, method)(*args)
        if self.degraded:
            log.warning("rate limits counted in Redis again")
        self.degraded = False
        return result

    async def hit(self, scope: str, key: str, per_minute: int) -> Verdict:
        item = RateLimitItemPerMinute(per_minute)
        allowed = await self._limiter_call("hit", item, scope, key)
        stats = await self._limiter_call("get_window_stats", item, scope, key)
        reset = max(0, math.ceil(stats.reset_time - time.time()))
        return Verdict(allowed, per_minute, stats.remaining, reset)

    async def check(self, scope: str, key: str, per_minute: int) -> None:
        """Count one hit (one round trip when allowed); raise :class:`RateLimited` when over budget."""
        item = RateLimitItemPerMinute(per_minute)
        if await self._limiter_call("hit", item, scope, key):
            return
        stats = await self._limiter_call("get_window_stats", item, scope, key)
        raise RateLimited(max(1000, math.ceil((stats.reset_time - time.time()) * 1000)))

    async def reset(self) -> None:
        await self._storage.reset()
        await self._local_storage.reset()
