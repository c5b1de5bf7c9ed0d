"""Read-through Redis caches of database rows.

A cached value is the row exactly as the database holds it (encrypted fields stay encrypted),
serialised with type tags so it comes back with the same Python types. Every write deletes the
key after its transaction commits; a TTL bounds staleness if a delete is ever missed.
Losing Redis loses nothing: a failed cache call falls through to the database.
"""
from __future__ import annotations

import datetime as dt
import decimal
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

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


class RowCache:
    def __init__(self, redis: aioredis.Redis, prefix: str, ttl_seconds: int = 300):
        self._redis = redis
        self._prefix = prefix
        self._ttl = ttl_seconds

    def _key(self, key: Any) -> str:
        return f"cache:{self._prefix}:{key}"

    async def get_or_load(self, key: Any, load: Callable[[], Awaitable[dict | None]]) -> dict | None:
        try:
            cached = await self._redis.get(self._key(key))
        except RedisError:
            log.warning("cache read failed", exc_info=True)
            cached = None
        if cached is not None:
            return json.loads(cached, object_hook=_decode)
        row = await load()
        if row is not None:
            try:
                await self._redis.set(self._key(key), json.dumps(row, default=_encode), ex=self._ttl)
            except RedisError:
                log.warning("cache write failed", exc_info=True)
        return row

    async def invalidate(self, key: Any) -> None:
        try:
            await self._redis.delete(self._key(key))
        except RedisError:
            log.warning("cache invalidation failed", exc_info=True)
