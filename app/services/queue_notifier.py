"""Queue pushes, coalesced: at most one ``queue:updated`` per department per interval to agents,
and a ``chat:queue_position`` only to customers whose position changed.

Availability too: after an agent's presence changed, at most one ``chat:availability`` per
department per interval, to the widgets watching that department (``chat:watch_availability``
puts them in its ``availability:<name>`` room); nobody watching costs one Redis publish."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from app import metrics
from app.clock import Clock
from app.db import Database
from app.live import CUSTOMER_NS, Live, availability_room
from app.security.encryption import FieldCipher
from app.services.session_fields import queued_sessions
from app.tasks import stop_tasks

log = logging.getLogger(__name__)
Availability = Callable[[str], Awaitable[dict]]  # a department's chat:availability (app.services.departments)


class QueueNotifier:
    """Coalesces queue changes: at most one ``queue:updated`` per department per interval, and a
    ``chat:queue_position`` only to customers whose position changed (remembered in Redis)."""

    def __init__(
        self,
        db: Database,
        redis: aioredis.Redis,
        live: Live,
        clock: Clock,
        cipher: FieldCipher,
        *,
        interval: float = 0.2,
    ):
        self._db = db
        self._redis = redis
        self._live = live
        self._clock = clock
        self._cipher = cipher
        self._interval = interval
        self._dirty: set[str] = set()
        self._dirty_availability: set[str] = set()
        self._availability: Availability | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._users = 0

    def mark(self, department: str) -> None:
        self._dirty.add(department)
        self._wake.set()

    def mark_availability(self, department: str | None) -> None:
        if department:
            self._dirty_availability.add(department)
            self._wake.set()

    async def start(self, availability: Availability | None = None) -> None:
        """Push from now on (the live runtime of a replica serving sockets, app/server.py);
        ``availability`` tells what a department's ``chat:availability`` is. Apps sharing one
        context (tests) share its notifier: it runs until the last one closes it."""
        self._availability = availability or self._availability
        self._users += 1
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="queue-notifier")

    async def aclose(self) -> None:
        self._users = max(0, self._users - 1)
        if self._users == 0 and self._task is not None:
            task, self._task = self._task, None
            await stop_tasks([task])

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self._interval)  # coalescing window, not a wait for an event
            await self.flush()

    async def flush(self) -> None:
        queues, self._dirty = self._dirty, set()
        for department in queues:
            try:
                await self._flush_department(department)
            except Exception:
                log.exception("queue notification failed", extra={"department": department})
        watched, self._dirty_availability = self._dirty_availability, set()
        for department in watched:
            if self._availability is None:
                continue
            try:
                data = await self._availability(department)
                await self._live.emit(
                    "chat:availability", data, to=availability_room(department), namespace=CUSTOMER_NS
                )
            except Exception:
                log.exception("availability notification failed", extra={"department": department})

    async def _flush_department(self, department: str) -> None:
        db = self._db
        now = self._clock.now()
        async with db.connection() as conn:
            rows = await db.q.queue_of(conn, department=department)
            rate = await db.q.queue_rate(conn, department=department, since=now - dt.timedelta(minutes=30), now=now)
            views = await queued_sessions(self._cipher, conn, rows)
        metrics.CHAT_QUEUE_LENGTH.labels(department=department).set(len(rows))
        await self._live.to_agents("queue:updated", {"department": department, "queued": views}, department=department)
        key = f"queue:positions:{department}"
        previous = await self._redis.hgetall(key)
        for r in rows:
            if previous.get(str(r["id"])) != str(r["position"]):
                await self._live.to_customer(
                    r["customer_id"],
                    "chat:queue_position",
                    {
                        "session_id": r["id"],
                        "queue_position": r["position"],
                        "estimated_wait_seconds": round(r["position"] / rate) if rate else None,
                    },
                )
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            if rows:
                pipe.hset(key, mapping={str(r["id"]): str(r["position"]) for r in rows})
                pipe.expire(key, 86400)
            await pipe.execute()
