"""The one follower of ``support_events`` in a replica, and the listeners it drives.

The replica's :class:`~app.leader.Leader` connection LISTENs on the channel (one LISTEN
connection per replica); every NOTIFY wakes every listener. A listener is an object with

- ``name``: its role, and the name of its advisory lock;
- ``leader``: True when one replica at a time runs it (the ticket live feed, the Kafka relay,
  search sync), False when every replica does (the subscriptions hub);
- ``wake``: a :class:`Wake` the follower sets on every notification;
- ``follow()``: reads the log from its own cursor, in commit-safe ``(txid, position)`` order
  (sql/queries/event_stream.sql), waiting on ``wake`` between reads with a timeout as a safety
  net; it returns or raises only when it fails;
- optionally ``notified(payload)`` (the NOTIFY payload: a position), ``retry_seconds`` (how
  often a follower tries to lead) and ``backoff`` (min, max seconds after a failure).

A leader listener follows only while it holds its lease; when the lease is lost (the Leader's
connection broke) its ``follow()`` is cancelled and it tries to lead again.

Reading from a cursor is written once, here: a :data:`Cursor` is ``(txid, position)``,
:func:`log_head` is the cursor of "now", :func:`events_after` reads every event after a cursor
batch by batch (a pool connection only while a batch is read), and a leader listener keeps its
cursor in Redis with :class:`StoredCursor`, so the next leader, on any replica, carries on from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

import asyncpg
import redis.asyncio as aioredis

from app.db import Database
from app.leader import Leader, while_held
from app.tasks import stop_tasks

log = logging.getLogger(__name__)

# A notified row may not be readable yet: readers see only rows below every running transaction
# (another transaction anywhere in the cluster can hold that back), so after a NOTIFY each
# listener is woken again after these delays, sooner than its safety-net read.
ECHO_SECONDS = (0.5, 2.0)

Cursor = tuple[int, int]  # (txid, position): the order of sql/queries/event_stream.sql
ORIGIN: Cursor = (0, 0)
BATCH = 500


def cursor_of(row: Any) -> Cursor:
    """The cursor just after an event row (or a ``stream_head`` row)."""
    return int(row["txid"]), int(row["position"])


async def log_head(db: Database, conn: asyncpg.Connection) -> Cursor:
    """The cursor of "now": after the last event no running transaction can precede."""
    row = await db.q.stream_head(conn)
    return cursor_of(row) if row else ORIGIN


async def events_after(
    db: Database,
    cursor: Cursor,
    *,
    entity_type: str | None = None,
    type_patterns: list[str] | None = None,
    batch: int = BATCH,
) -> AsyncIterator[list[asyncpg.Record]]:
    """Every event committed after ``cursor`` (optionally of one entity type and of types
    matching LIKE patterns), in commit-safe order, ``batch`` at a time; the next batch starts
    after the last row handed out."""
    while True:
        async with db.connection() as conn:
            rows = await db.q.stream_after(
                conn,
                after_txid=str(cursor[0]),
                after_position=cursor[1],
                type_patterns=type_patterns,
                topics=None,
                entity_type=entity_type,
                entity_id=None,
                limit=batch,
            )
        if rows:
            yield rows
            cursor = cursor_of(rows[-1])
        if len(rows) < batch:
            return


class StoredCursor:
    """A leader listener's cursor, kept in Redis under ``key`` as ``"txid:position"``."""

    def __init__(self, redis: aioredis.Redis, key: str):
        self.redis = redis
        self.key = key

    async def get(self) -> Cursor | None:
        """The stored cursor, or None (never stored, or Redis lost it)."""
        stored = await self.redis.get(self.key)
        if stored is None:
            return None
        txid, position = (stored.decode() if isinstance(stored, bytes) else str(stored)).split(":")
        return int(txid), int(position)

    async def set(self, cursor: Cursor) -> None:
        await self.redis.set(self.key, f"{cursor[0]}:{cursor[1]}")


class Wake:
    """A wake-up call that is not lost when it comes while the listener is busy reading.

    A listener is woken at most once every ``min_interval`` seconds: under a stream of commits
    (chat messages commit many times a second) the wakes that arrive meanwhile fold into one read
    of many rows, instead of one read of the log per commit on every replica."""

    MIN_INTERVAL = 0.025

    def __init__(self, min_interval: float = MIN_INTERVAL) -> None:
        self._event = asyncio.Event()
        self._min_interval = min_interval
        self._last = 0.0

    def set(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> bool:
        """Wait for a wake-up at most ``timeout`` seconds; True when woken."""
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except asyncio.TimeoutError:
            self._event.clear()
            self._last = loop.time()
            return False
        pause = self._last + self._min_interval - loop.time()
        if pause > 0:
            await asyncio.sleep(pause)  # wakes arriving meanwhile are covered by the read that follows
        self._event.clear()
        self._last = loop.time()
        return True


class Listener(Protocol):
    name: str
    leader: bool
    wake: Wake

    async def follow(self) -> None: ...


class EventFollower:
    def __init__(
        self,
        leader: Leader,
        listeners: Sequence[Listener],
        *,
        retry_seconds: float = 5.0,
        backoff: tuple[float, float] = (0.5, 30.0),
    ):
        self.leader = leader
        self.listeners = list(listeners)
        self.retry_seconds = retry_seconds
        self.backoff = backoff
        self._tasks: list[asyncio.Task] = []
        self._echoes: list[asyncio.TimerHandle] = []
        leader.on_notify(self._notified)

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._keep(listener), name=f"follower:{listener.name}") for listener in self.listeners
        ]

    async def aclose(self) -> None:
        self._cancel_echoes()
        await stop_tasks(self._tasks)
        self._tasks = []

    def _notified(self, payload: str) -> None:
        for listener in self.listeners:
            notified = getattr(listener, "notified", None)
            if notified is not None:
                notified(payload)
            listener.wake.set()
        self._cancel_echoes()  # the latest notification's echoes cover the earlier ones
        loop = asyncio.get_running_loop()
        self._echoes = [loop.call_later(delay, self._wake_all) for delay in ECHO_SECONDS]

    def _wake_all(self) -> None:
        for listener in self.listeners:
            listener.wake.set()

    def _cancel_echoes(self) -> None:
        for handle in self._echoes:
            handle.cancel()
        self._echoes = []

    async def _keep(self, listener: Listener) -> None:
        retry = getattr(listener, "retry_seconds", self.retry_seconds)
        low, high = getattr(listener, "backoff", self.backoff)
        delay = low
        while True:
            try:
                if listener.leader:
                    async with self.leader.leading(listener.name) as lease:
                        if lease is not None:
                            await while_held(lease, listener.follow())
                    if lease is not None:
                        delay = low
                        continue  # the lease was lost: try again at once (try_lead waits for the connection)
                else:
                    await listener.follow()
                delay = low
                await asyncio.sleep(retry)  # another replica leads: try again later
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "event follower failed; retrying",
                    extra={"listener": listener.name, "error": f"{type(exc).__name__}: {exc}", "retry_in_s": delay},
                )
                await asyncio.sleep(delay)  # back-off while its target (Kafka, the index) is down
                delay = min(delay * 2, high)


@contextlib.asynccontextmanager
async def following(dsn: str, listeners: Sequence[Listener], **kwargs: float) -> AsyncIterator[EventFollower]:
    """A Leader connection and a follower of its own, for listeners run on their own (tools, tests)."""
    leader = Leader(dsn)
    follower = EventFollower(leader, listeners, **kwargs)  # type: ignore[arg-type]
    await leader.start()
    await follower.start()
    try:
        yield follower
    finally:
        await follower.aclose()
        await leader.aclose()
