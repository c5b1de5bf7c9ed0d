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


class Budget:
    """A token bucket: ``rate`` events a second on average, bursts up to ``burst``."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst, self.tokens, self.stamp = rate, burst, burst, time.monotonic()

    def take(self) -> int:
        """0 when an event may run now, else the milliseconds until one may."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0
        return max(1, math.ceil((1 - self.tokens) / self.rate * 1000))


class LocalBudgets:
    """A :class:`Budget` per key in this process's memory, ``per_minute`` at once and refilled at
    ``per_minute`` a minute: for a caller pinned to this replica (a socket's sender), where a
    Redis round trip per event would cost more than the event itself."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._budgets: dict[Any, Budget] = {}
        self._max_keys = max_keys

    def take(self, key: Any, per_minute: int) -> int:
        """0 when one more is allowed now (and counts it), else the milliseconds to wait."""
        budget = self._budgets.get(key)
        if budget is None:
            if len(self._budgets) >= self._max_keys:
                self._forget_idle()
            budget = self._budgets[key] = Budget(per_minute / 60.0, float(per_minute))
        return budget.take()

    def _forget_idle(self) -> None:
        """Drop the budgets idle for a minute: they have refilled and would start full anyway."""
        horizon = time.monotonic() - 60.0
        for key in [k for k, budget in self._budgets.items() if budget.stamp <= horizon]:
            del self._budgets[key]

    def clear(self) -> None:
        self._budgets.clear()


class RateLimiter:
    def __init__(self, redis_url: str, pool: ConnectionPool | None = None):
        options: dict[str, Any] = {"connection_pool": pool} if pool is not None else {}
        self._storage = RedisStorage("async+" + redis_url, implementation="redispy", key_prefix="support-rl", **options)
        self._limiter = SlidingWindowCounterRateLimiter(self._storage)
        self._local_storage = MemoryStorage()
        self._local = SlidingWindowCounterRateLimiter(self._local_storage)
        self.degraded = False  # counting locally because Redis failed last time
        self.here = LocalBudgets()  # budgets of callers pinned to this replica (check_here)

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

    def check_here(self, scope: str, key: Any, per_minute: int) -> None:
        """Like :meth:`check`, counted in this replica's memory: for a caller pinned to this
        replica (a socket), so no Redis round trip per event. Raises :class:`RateLimited`."""
        wait_ms = self.here.take((scope, key), per_minute)
        if wait_ms:
            raise RateLimited(max(1000, wait_ms))

    async def reset(self) -> None:
        self.here.clear()
        await self._storage.reset()
        await self._local_storage.reset()
