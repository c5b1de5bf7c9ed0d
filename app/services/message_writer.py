"""Chat message writes, batched under load without acknowledging anything early.

Senders await :meth:`MessageWriter.write`; at most ``max_in_flight`` statements run at once, and
everything that arrives while they run goes into the next one (one round trip and one commit
for up to ``max_batch`` messages). An idle server writes each message at once, so batching adds
no latency; a busy one writes many per commit: while messages keep coming (the last statement
ended less than ``STREAM_SECONDS`` ago) a drain first waits ``linger`` seconds for more, since a
commit costs PostgreSQL far more than a row. A future resolves only after its statement has
committed, so an acknowledgement always means the message is durable.

The writer keeps the tasks it starts; :meth:`MessageWriter.aclose` (when the context closes)
refuses new writes, lets the running statements finish and writes what is still pending, and
fails whatever it could not write in time with ``unavailable`` (nothing is left unanswered).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import uuid
from typing import Any

import asyncpg

from app.clock import Clock
from app.db import Database
from app.errors import Unavailable
from app.events import EventLog
from app.outage import is_outage
from app.tasks import stop_tasks

log = logging.getLogger(__name__)
LINGER_SECONDS = 0.002  # how long a drain gathers messages while a stream is flowing
STREAM_SECONDS = 0.02  # a statement ended this recently: messages are streaming in


@dataclasses.dataclass
class PendingMessage:
    session_id: uuid.UUID
    sender_id: uuid.UUID | None  # None: a system message
    sender_type: str
    scope: str  # 'customer' | 'agent' | 'all': who may write in the session
    client_msg_id: str | None
    ciphertext: str
    message_type: str
    attachments: str | None = None  # JSON text: the message's file references
    parts: list[dict] | None = None  # structured parts (automatic messages), stored as JSONB
    id: uuid.UUID = dataclasses.field(default_factory=uuid.uuid4)

    @property
    def key(self) -> tuple:
        """Same key = the same message (a resend); no key = always a new message."""
        if self.client_msg_id is None:
            return (self.id,)
        return (self.session_id, self.sender_id, self.client_msg_id)


class MessageWriter:
    def __init__(
        self,
        db: Database,
        events: EventLog,
        clock: Clock,
        *,
        max_batch: int = 256,
        max_in_flight: int = 1,
        linger: float = LINGER_SECONDS,
    ):
        self._db = db
        self._events = events
        self._clock = clock
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._linger = linger
        self._last_flush = float("-inf")  # loop time the last statement ended
        self._pending: list[tuple[PendingMessage, asyncio.Future]] = []
        self._in_flight = 0  # drains running (counted inside them: no gap at their end)
        self._tasks: set[asyncio.Task] = set()
        self._closed = False

    async def write(self, item: PendingMessage) -> Any:
        """The stored (or earlier identical) message row, or None when it may not be stored."""
        if self._closed:
            raise Unavailable("The server is shutting down; send the message again")
        future = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._in_flight < self._max_in_flight:
            self._start_drain()
        return await future

    @staticmethod
    def _loop_time() -> float:
        return asyncio.get_running_loop().time()

    def _start_drain(self) -> None:
        self._in_flight += 1
        task = asyncio.create_task(self._drain(), name="message-writer")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self, timeout: float = 5.0) -> None:
        """Write what is pending (at most ``timeout`` seconds), then fail the rest with
        ``unavailable``."""
        self._closed = True
        if self._pending and not self._in_flight:
            self._start_drain()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
        await stop_tasks(list(self._tasks))
        pending, self._pending = self._pending, []
        for _, future in pending:
            if not future.done():
                future.set_exception(Unavailable("The server is shutting down; send the message again"))

    async def _drain(self) -> None:
        try:
            if self._linger and self._loop_time() - self._last_flush < STREAM_SECONDS:
                await asyncio.sleep(self._linger)  # a steady stream: gather a batch first
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                try:
                    await self._flush(batch)
                    self._last_flush = self._loop_time()
                except asyncio.CancelledError:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(Unavailable("The server is shutting down; send the message again"))
                    raise
        finally:
            self._in_flight -= 1

    async def _flush(self, batch: list[tuple[PendingMessage, asyncio.Future]]) -> None:
        unique: dict[tuple, PendingMessage] = {}
        for item, _ in batch:
            unique.setdefault(item.key, item)
        items = list(unique.values())
        by_key: dict[tuple, dict] = {}
        failed: dict[tuple, BaseException] = {}
        try:
            rows = await self._store(items)
            by_key = {items[row["ord"] - 1].key: dict(row) for row in rows}
        except Exception as exc:
            if len(items) == 1 or is_outage(exc):
                if not is_outage(exc):
                    log.exception("chat message failed", extra={"size": len(items)})
                failed = {item.key: exc for item in items}
            else:
                # One sender's bad item must not fail anyone else's message: store each alone,
                # so only the item the database refuses fails.
                log.warning("chat message batch failed; storing its %d items one by one", len(items), exc_info=True)
                by_key, failed = await self._store_each(items)
        for key, error in failed.items():
            for item, future in batch:
                if item.key == key and not future.done():
                    future.set_exception(error)
        answered: set[tuple] = set()
        for item, future in batch:
            row = by_key.get(item.key)
            if row is not None and item.key in answered:
                row = {**row, "duplicate": True}  # a resend inside the same batch
            answered.add(item.key)
            if not future.done():
                future.set_result(row)

    async def _store_each(self, items: list[PendingMessage]) -> tuple[dict[tuple, dict], dict[tuple, BaseException]]:
        stored: dict[tuple, dict] = {}
        failed: dict[tuple, BaseException] = {}
        for item in items:
            try:
                rows = await self._store([item])
            except Exception as exc:
                if not is_outage(exc):
                    log.exception("chat message failed", extra={"size": 1})
                failed[item.key] = exc
            else:
                if rows:  # one row: the stored message, or the earlier one of a resend
                    stored[item.key] = dict(rows[0])
        return stored, failed

    async def _store(self, items: list[PendingMessage]) -> list[asyncpg.Record]:
        params = dict(
            ids=[i.id for i in items],
            session_ids=[i.session_id for i in items],
            sender_ids=[i.sender_id for i in items],
            sender_types=[i.sender_type for i in items],
            scopes=[i.scope for i in items],
            client_msg_ids=[i.client_msg_id for i in items],
            bodies=[i.ciphertext for i in items],
            message_types=[i.message_type for i in items],
            attachments=[i.attachments for i in items],
            parts=[None if i.parts is None else json.dumps(i.parts) for i in items],
            topic=self._events.topic_for("chat.message"),
            now=self._clock.now(),
        )
        for attempt in (1, 2, 3):
            try:
                async with self._db.connection() as conn:
                    return await self._db.q.insert_messages(conn, **params)
            except (asyncpg.UniqueViolationError, asyncpg.DeadlockDetectedError):
                # A concurrent batch stored the same resend first (the retry finds it as
                # earlier), or lost a lock race; nothing of the failed statement was stored.
                if attempt == 3:
                    raise
        raise AssertionError("unreachable")
