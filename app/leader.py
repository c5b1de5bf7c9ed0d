"""One replica's own line to PostgreSQL for coordinating with the others: LISTEN on
``support_events``, and the session advisory locks through which it leads cluster duties and
event followers.

It is a connection of its own, not one of the pool: a lock is never held on a connection lent to
the work it guards (that work takes pool connections as it needs them, for as long as it needs
them), and when the connection is lost every lock it held goes with it. A :class:`Lease` tells
its holder so (``lost``), and the holder stops: another replica may lead from then on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg

from app.tasks import stop_tasks

log = logging.getLogger(__name__)

CHANNEL = "support_events"
Notified = Callable[[str], None]  # called with each NOTIFY payload (an event position)


def lock_key(name: str) -> int:
    """The advisory lock of a cluster role (a duty or a follower) named ``name``."""
    return zlib.crc32(f"support-service:duty:{name}".encode())


class Lease:
    """Leadership of one role while the connection that holds its lock lives."""

    def __init__(self, name: str, lost: asyncio.Event):
        self.name = name
        self.lost = lost


class Leader:
    """Keeps the connection (reconnecting with back-off), fans NOTIFY payloads out to
    :meth:`on_notify` callbacks, and takes and releases role locks on it."""

    def __init__(self, dsn: str, *, keepalive_seconds: float = 5.0, backoff: tuple[float, float] = (0.5, 10.0)):
        self.dsn = dsn
        self.keepalive_seconds = keepalive_seconds
        self.backoff = backoff
        self._conn: asyncpg.Connection | None = None
        self._io = asyncio.Lock()  # one statement at a time on the connection
        self._lost = asyncio.Event()  # set when the current connection is gone
        self._up = asyncio.Event()  # set while connected
        self._callbacks: list[Notified] = []
        self._task: asyncio.Task | None = None
        self._closing = False

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    def on_notify(self, callback: Notified) -> None:
        self._callbacks.append(callback)

    async def start(self) -> None:
        self._closing = False
        self._task = asyncio.create_task(self._run(), name="leader-connection")

    async def aclose(self) -> None:
        """Stop the connection task. ``_closing`` ends its loop even if a cancellation is lost
        on the way (before Python 3.12, ``asyncio.wait_for`` swallowed one that arrived as the
        awaited thing finished), and the wait is bounded: a shutdown never hangs on it."""
        task, self._task = self._task, None
        if task is None:
            return
        self._closing = True
        self._lost.set()  # wakes the keepalive
        task.cancel()
        await stop_tasks([task])

    async def wait_connected(self) -> None:
        await self._up.wait()

    # ------------------------------------------------------------ the connection

    async def _run(self) -> None:
        delay = self.backoff[0]
        while not self._closing:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self.dsn)
                await conn.add_listener(CHANNEL, self._notified)
                self._conn, self._lost = conn, asyncio.Event()
                self._up.set()
                delay = self.backoff[0]
                self._wake_all("")  # read whatever committed while nobody listened
                await self._keepalive(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "leader connection lost; reconnecting",
                    extra={"error": f"{type(exc).__name__}: {exc}", "retry_in_s": delay},
                )
            finally:
                self._up.clear()
                self._lost.set()
                self._conn = None
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.shield(conn.close(timeout=2))
            if self._closing:
                return
            await asyncio.sleep(delay)  # reconnect back-off
            delay = min(delay * 2, self.backoff[1])

    async def _keepalive(self, conn: asyncpg.Connection) -> None:
        """Return when the connection is gone (a failed probe raises)."""
        while not conn.is_closed():
            # asyncio.timeout, not wait_for: a cancellation arriving as the loss is signalled
            # must not be swallowed (it was by wait_for before Python 3.12).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.keepalive_seconds):
                    await self._lost.wait()
            if self._lost.is_set():
                return
            async with self._io:  # a slow answer under load is not a dead connection
                await conn.fetchval("SELECT 1", timeout=max(30.0, self.keepalive_seconds))

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self._wake_all(payload)

    def _wake_all(self, payload: str) -> None:
        for callback in list(self._callbacks):
            try:
                callback(payload)
            except Exception:
                log.exception("event notification callback failed")

    # ------------------------------------------------------------ role locks

    async def try_lead(self, name: str, *, connect_timeout: float = 5.0) -> Lease | None:
        """The role's lease when no other replica holds it; None otherwise, or when not connected
        within ``connect_timeout`` seconds."""
        if not self._up.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(connect_timeout):
                    await self._up.wait()
        conn, lost = self._conn, self._lost
        if conn is None or conn.is_closed():
            return None
        try:
            async with self._io:
                got = await conn.fetchval("SELECT pg_try_advisory_lock($1)", lock_key(name))
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError):
            self._lost.set()
            return None
        return Lease(name, lost) if got else None

    async def release(self, lease: Lease) -> None:
        conn = self._conn
        if lease.lost.is_set() or conn is None:
            return  # the lock went with its connection
        try:
            async with self._io:
                await asyncio.shield(conn.execute("SELECT pg_advisory_unlock($1)", lock_key(lease.name)))
        except BaseException:
            # Never leave a lock behind on a connection that lives on: drop the connection.
            self._lost.set()
            with contextlib.suppress(Exception):
                conn.terminate()
            raise

    @contextlib.asynccontextmanager
    async def leading(self, name: str) -> AsyncIterator[Lease | None]:
        lease = await self.try_lead(name)
        try:
            yield lease
        finally:
            if lease is not None:
                await self.release(lease)


async def while_held(lease: Lease, work: Any) -> None:
    """Run the coroutine ``work`` until it ends or the lease is lost (then it is cancelled)."""
    task = asyncio.ensure_future(work)
    lost = asyncio.ensure_future(lease.lost.wait())
    try:
        await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        lost.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.done() and not task.cancelled():
        task.result()  # re-raise a failure of the work
