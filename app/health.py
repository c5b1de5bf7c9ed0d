"""Readiness: each component reports its status and latency; required ones decide 200 or 503.

Components register themselves (database and Redis here; Kafka, Elasticsearch, websocket and
gRPC add theirs when they run).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

Check = Callable[[], Awaitable[dict | None]]


@dataclasses.dataclass
class Component:
    name: str
    check: Check
    required: bool = True


class Health:
    def __init__(self, timeout: float = 2.0):
        self._components: dict[str, Component] = {}
        self._timeout = timeout

    def register(self, name: str, check: Check, *, required: bool = True) -> None:
        self._components[name] = Component(name, check, required)

    async def _run(self, component: Component) -> dict:
        started = time.perf_counter()
        try:
            details = await asyncio.wait_for(component.check(), self._timeout)
            status = "up"
        except Exception as exc:  # a failed check is a report, not an error of ours
            details, status = {"error": f"{type(exc).__name__}: {exc}"[:300]}, "down"
        report = {
            "status": status,
            "required": component.required,
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        }
        report.update(details or {})
        return report

    async def report(self) -> tuple[bool, dict]:
        names = list(self._components)
        results = await asyncio.gather(*(self._run(self._components[n]) for n in names))
        components = dict(zip(names, results, strict=True))
        ready = all(r["status"] == "up" for r in components.values() if r["required"])
        return ready, {"status": "up" if ready else "down", "components": components}


# The replica's readiness checks as aiohttp app state (set by app/server.py).
HEALTH = web.AppKey("health", Health)
