"""The shared state every transport hands to the services: settings, database, Redis, keys, clock.

One :class:`AppContext` per process, opened once and shared by REST, Socket.IO and gRPC.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.auth import TokenVerifier
from app.cache import RowCache
from app.clients.booking_service import BookingDirectory
from app.clients.user_service import UserDirectory
from app.clock import Clock
from app.config import Settings
from app.db import Database
from app.events import EventLog
from app.live import Live
from app.search import create_backend
from app.search.base import SearchBackend
from app.security.encryption import FieldCipher
from app.security.ratelimit import RateLimiter
from app.storage import create_store
from app.storage.base import BlobStore
from app.services.message_writer import MessageWriter
from app.services.queue_notifier import QueueNotifier


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
    queue_notifier: QueueNotifier
    message_writer: MessageWriter
    search: SearchBackend  # PostgreSQL or Elasticsearch (app.search.create_backend)
    files: BlobStore  # attachments: a local directory or S3 (app.storage.create_store)
    users: UserDirectory | None = None  # when GRPC_USER_SERVICE_URL is set
    bookings: BookingDirectory | None = None  # when GRPC_BOOKING_SERVICE_URL is set


# The context as aiohttp app state: the one AppKey every transport reads (set by app/server.py).
CONTEXT = web.AppKey("context", AppContext)


# A connection a Redis restart left stale is found before use (PING when idle for a few seconds)
# and a command that meets a broken connection is retried once on a fresh one; while Redis is
# down, connecting gives up quickly so callers can answer `unavailable` at once.
REDIS_RESILIENCE: dict[str, Any] = dict(
    health_check_interval=5,
    socket_keepalive=True,
    socket_connect_timeout=2,
    socket_timeout=5,
    retry=Retry(NoBackoff(), 1),
    retry_on_error=[RedisConnectionError, RedisTimeoutError],
)


@contextlib.asynccontextmanager
async def open_context(settings: Settings, *, clock: Clock | None = None) -> AsyncIterator[AppContext]:
    db = await Database.connect(settings.dsn, max_size=settings.database_pool_size)
    # One bounded pool: under a burst, callers wait for a connection instead of failing.
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url, decode_responses=True, max_connections=64, timeout=10, **REDIS_RESILIENCE
    )
    redis = aioredis.Redis(connection_pool=pool)
    search: SearchBackend | None = None
    files: BlobStore | None = None
    users: UserDirectory | None = None
    bookings: BookingDirectory | None = None
    writer: MessageWriter | None = None
    try:
        events = EventLog(
            support_topic=settings.kafka_topic_support_events,
            ticket_topic=settings.kafka_topic_ticket_events,
            chat_topic=settings.kafka_topic_chat_events,
        )
        clock = clock or Clock()
        cipher = FieldCipher(settings.data_encryption_keys or ())
        live = Live(redis, presence_ttl_seconds=max(10.0, 3 * settings.websocket_heartbeat_interval / 1000))
        search = create_backend(settings, db)
        files = await create_store(settings)
        if settings.grpc_user_service_url:
            users = UserDirectory(settings.grpc_user_service_url)
        if settings.grpc_booking_service_url:
            bookings = BookingDirectory(settings.grpc_booking_service_url)
        writer = MessageWriter(db, events, clock)
        yield AppContext(
            settings=settings,
            db=db,
            redis=redis,
            cipher=cipher,
            verifier=TokenVerifier(settings.jwt_secret, settings.jwt_public_key),
            limiter=RateLimiter(settings.redis_url, pool),
            events=events,
            clock=clock,
            ticket_cache=RowCache(redis, "ticket"),
            live=live,
            queue_notifier=QueueNotifier(db, redis, live, clock, cipher),
            message_writer=writer,
            search=search,
            files=files,
            users=users,
            bookings=bookings,
        )
    finally:
        if writer is not None:
            await writer.aclose()
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
