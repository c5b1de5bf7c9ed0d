"""Stopping background tasks without ever hanging a shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

log = logging.getLogger(__name__)


async def stop_tasks(tasks: Iterable[asyncio.Task], timeout: float = 5.0) -> None:
    """Cancel ``tasks`` and wait for them at most ``timeout`` seconds; a task that does not end
    in time is logged and left behind rather than blocking the stop."""
    tasks = [t for t in tasks if not t.done()]
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    _, stuck = await asyncio.wait(tasks, timeout=timeout)
    for task in stuck:
        log.error("background task did not stop in time", extra={"task": task.get_name()})
