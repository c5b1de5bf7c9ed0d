"""Shedding load past capacity: answer ``unavailable`` at once rather than queue work that
cannot finish in time.

Two signals, both cheap: events being handled at once on this replica (bounded), and the
event loop's own lag. When the loop runs late, frames wait in socket buffers before any handler
sees them, so a count of in-flight events alone notices overload too late; a sampler that
expects to wake every ``interval`` seconds measures how late it wakes. While the lag is above
``max_lag`` seconds, new events are answered ``unavailable`` with ``retry_after_ms`` (refusing
costs far less than serving, so the backlog drains and the lag falls within a few samples).
"""

from __future__ import annotations

import asyncio
import time

from app.tasks import stop_tasks


class LoopLag:
    """How late the event loop runs, sampled every ``interval`` seconds."""

    def __init__(self, interval: float = 0.025, max_lag: float = 0.05) -> None:
        self.interval = interval
        self.max_lag = max_lag
        self.lag = 0.0  # seconds, last sample
        self._task: asyncio.Task | None = None

    @property
    def behind(self) -> bool:
        return self.lag > self.max_lag

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._sample(), name="loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            await stop_tasks([self._task])
            self._task = None

    async def _sample(self) -> None:
        while True:
            expected = time.monotonic() + self.interval
            await asyncio.sleep(self.interval)
            self.lag = max(0.0, time.monotonic() - expected)
