"""The shared state every transport hands to the services: settings, database, Redis, keys, clock.

One :class:`AppContext` per process, opened once and shared by REST, Socket.IO and gRPC.
"""
from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.auth import TokenVerifier
from app.cache import RowCache
from app.clock import Clock
from app.config import Settings
from app.db import Database
from app.events import EventLog
from app.live import Live
from app.security.encryption import FieldCipher
from app.security.ratelimit import RateLimiter


@dataclasses.dataclass
class AppContext:
    settings: Settings
    db: Database
    redis: aioredis.Redis
    cipher: FieldCipher
    verifier: TokenVerifier
    limiter: RateLimiter
    events: EventLog
    clock: Clock
    ticket_cache: RowCache
    live: Live
    queue_notifier: Any = None   # app.services.routing.QueueNotifier, set once the context exists
    message_writer: Any = None   # app.services.message_writer.MessageWriter, likewise
    search: Any = None           # app.search.SearchBackend (PostgreSQL or Elasticsearch), likewise
    users: Any = None            # app.clients.user_service.UserDirectory when GRPC_USER_SERVICE_URL is set
    bookings: Any = None         # app.clients.booking_service.BookingDirectory when GRPC_BOOKING_SERVICE_URL is set
    files: Any = None            # app.storage.BlobStore (local directory or S3) for attachments


# A connection a Redis restart left stale is found before use (PING when idle for a few seconds)
# and a command that meets a broken connection is retried once on a fresh one; while Redis is
# down, connecting gives up quickly so callers can answer `unavailable` at once.
REDIS_RESILIENCE: dict[str, Any] = dict(
    health_check_interval=5, socket_keepalive=True, socket_connect_timeout=2, socket_timeout=5,
    retry=Retry(NoBackoff(), 1), retry_on_error=[RedisConnectionError, RedisTimeoutError])


@contextlib.asynccontextmanager
async def open_context(settings: Settings, *, clock: Clock | None = None) -> AsyncIterator[AppContext]:
    db = await Database.connect(settings.dsn, max_size=settings.database_pool_size)
    # One bounded pool: under a burst, callers wait for a connection instead of failing.
    pool = aioredis.BlockingConnectionPool.from_url(settings.redis_url, decode_responses=True,
                                                    max_connections=64, timeout=10, **REDIS_RESILIENCE)
    redis = aioredis.Redis(connection_pool=pool)
    search = users = bookings = files = None
    try:
        ctx = AppContext(
            settings=settings,
            db=db,
            redis=redis,
            cipher=FieldCipher(settings.data_encryption_keys or ()),
            verifier=TokenVerifier(settings.jwt_secret, settings.jwt_public_key),
            limiter=RateLimiter(settings.redis_url, pool),
            events=EventLog(support_topic=settings.kafka_topic_support_events,
                            ticket_topic=settings.kafka_topic_ticket_events,
                            chat_topic=settings.kafka_topic_chat_events),
            clock=clock or Clock(),
            ticket_cache=RowCache(redis, "ticket"),
            live=Live(redis, presence_ttl_seconds=max(10.0, 3 * settings.websocket_heartbeat_interval / 1000)),
        )
        from app.services.message_writer import MessageWriter   # services import this module
        from app.services.routing import QueueNotifier
        ctx.queue_notifier = QueueNotifier(ctx)
        ctx.message_writer = MessageWriter(ctx)
        from app.search import create_backend
        ctx.search = search = create_backend(settings, db)
        from app.storage import create_store
        ctx.files = files = await create_store(settings)
        if settings.grpc_user_service_url:
            from app.clients.user_service import UserDirectory
            ctx.users = users = UserDirectory(settings.grpc_user_service_url)
        if settings.grpc_booking_service_url:
            from app.clients.booking_service import BookingDirectory
            ctx.bookings = bookings = BookingDirectory(settings.grpc_booking_service_url)
        yield ctx
    finally:
        if bookings is not None:
            await bookings.close()
        if users is not None:
            await users.close()
        if search is not None:
            await search.close()
        if files is not None:
            await files.close()
        await redis.aclose()
        await pool.aclose()
        await db.close()
