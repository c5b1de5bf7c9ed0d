"""Caches: read-through Redis caches of database rows (:class:`RowCache`), and a bounded
in-process TTL cache of other services' answers (:class:`TtlCache`).

A cached value is the row exactly as the database holds it (encrypted fields stay encrypted),
serialised with type tags so it comes back with the same Python types. Every write bumps the
key's version and deletes the value after its transaction commits; a reader stores what it
loaded only if the version is still the one it saw before loading, so a load that raced an
update can never put the old row back. A TTL bounds staleness if an invalidation is ever missed.
Losing Redis loses nothing: a failed cache call falls through to the database.

:class:`TtlCache` keeps what the outbound clients (User Service, Booking Service) were told, per
replica: each entry for its own TTL (answers longer, misses and failures shorter, so an outage
costs one slow call per key per short TTL), the least recently used dropped first when full.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


def _encode(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return {"$uuid": str(value)}
    if isinstance(value, dt.datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, decimal.Decimal):
        return {"$dec": str(value)}
    raise TypeError(f"cannot cache {type(value).__name__}")


def _decode(obj: dict) -> Any:
    if len(obj) == 1:
        ((tag, raw),) = obj.items()
        if tag == "$uuid":
            return uuid.UUID(raw)
        if tag == "$dt":
            return dt.datetime.fromisoformat(raw)
        if tag == "$dec":
            return decimal.Decimal(raw)
    return obj


# Store ARGV[2] under KEYS[1] only if the version KEYS[2] still reads ARGV[1].
_SET_IF_VERSION = """
if (redis.call('GET', KEYS[2]) or '0') == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
    return 1
end
return 0
"""


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """A bounded in-process cache whose entries expire, each after the TTL it was stored with."""

    def __init__(self, max_size: int, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.max_size = max_size
        self._now = monotonic
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> tuple[bool, V | None]:
        """``(True, value)`` for a live entry (``value`` may be None: a cached miss), else ``(False, None)``."""
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        expires, value = entry
        if expires <= self._now():
            del self._entries[key]
            return False, None
        self._entries.move_to_end(key)
        return True, value

    def put(self, key: K, value: V, ttl: float) -> None:
        self._entries[key] = (self._now() + ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_size:
            self._entries.popitem(last=False)  # least recently used first

    def __len__(self) -> int:
        return len(self._entries)


class RowCache:
    def __init__(self, redis: aioredis.Redis, prefix: str, ttl_seconds: int = 300):
        self._redis = redis
        self._prefix = prefix
        self._ttl = ttl_seconds
        self._set_if_version = redis.register_script(_SET_IF_VERSION)

    def _key(self, key: Any) -> str:
        return f"cache:{self._prefix}:{key}"

    def _version_key(self, key: Any) -> str:
        return f"cache:{self._prefix}:{key}:version"

    async def get_or_load(self, key: Any, load: Callable[[], Awaitable[dict | None]]) -> dict | None:
        try:
            cached, version = await self._redis.mget(self._key(key), self._version_key(key))
        except RedisError:
            log.warning("cache read failed", exc_info=True)
            return await load()
        if cached is not None:
            return json.loads(cached, object_hook=_decode)
        row = await load()
        if row is not None:
            try:
                await self._set_if_version(
                    keys=[self._key(key), self._version_key(key)],
                    args=[version or "0", json.dumps(row, default=_encode), self._ttl],
                )
            except RedisError:
                log.warning("cache write failed", exc_info=True)
        return row

    async def invalidate(self, key: Any) -> None:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(self._version_key(key))
                pipe.expire(self._version_key(key), 86400)
                pipe.delete(self._key(key))
                await pipe.execute()
        except RedisError:
            log.warning("cache invalidation failed", exc_info=True)
