"""Periodic duties that must run once per cluster, not once per replica.

Each tick tries a transaction-scoped advisory lock for the duty; the replica that gets it does
the work, the others skip that tick. A replica that dies mid-tick releases the lock with its
connection, so the next tick elsewhere takes over.
"""
from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Awaitable, Callable

from app.context import AppContext
from app.db import unlock_or_discard

log = logging.getLogger(__name__)
Duty = Callable[[AppContext], Awaitable[object]]


def _lock_key(name: str) -> int:
    return zlib.crc32(f"support-service:duty:{name}".encode())


async def run_once(ctx: AppContext, name: str, duty: Duty) -> bool:
    """Run ``duty`` if no other replica is running it now; True when this replica ran it."""
    async with ctx.db.connection() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _lock_key(name)):
            return False
        try:
            await duty(ctx)
        finally:
            await unlock_or_discard(conn, _lock_key(name))
    return True


async def run_forever(ctx: AppContext, name: str, duty: Duty, interval: float) -> None:
    while True:
        try:
            await run_once(ctx, name, duty)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("duty failed", extra={"duty": name})
        await asyncio.sleep(interval)   # a period between ticks, not a wait for an event
