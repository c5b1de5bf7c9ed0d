"""The shape every Socket.IO handler shares: authenticate once at connect, validate the payload,
call one service function, answer ``{"ok": true, "data"}`` or ``{"ok": false, "error"}``."""
from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import marshmallow as ma
import socketio

from app import metrics
from app.auth import Principal, RequestMeta
from app.context import AppContext
from app.errors import DomainError
from app.jsonutil import to_jsonable
from app.logs import request_id_var

log = logging.getLogger("support.sockets")

Handler = Callable[[AppContext, Principal, str, dict], Awaitable[Any]]


class SocketState:
    """Per-replica socket bookkeeping: the AppContext, and who each local socket is."""

    def __init__(self, max_in_flight: int = 2000) -> None:
        self.ctx: AppContext | None = None
        self.sockets: dict[str, tuple[str, Principal]] = {}   # sid -> (namespace, principal)
        # Events being handled at once on this replica; past the bound the server answers
        # `unavailable` at once instead of queueing work it cannot finish in time.
        self.max_in_flight = max_in_flight
        self.in_flight = 0

    def count(self) -> int:
        return len(self.sockets)

    def heartbeat_entries(self) -> list[tuple[str, Any, str]]:
        return [(ns, p.user_id, sid) for sid, (ns, p) in self.sockets.items()]


def ok(data: Any = None) -> dict:
    return {"ok": True, "data": to_jsonable(data if data is not None else {})}


def error(code: str, message: str, details: dict | None = None) -> dict:
    return {"ok": False, "error": {"code": code, "message": message, "details": details or {}}}


def meta(sid: str) -> RequestMeta:
    return RequestMeta(request_id=f"sio-{sid}", transport="socketio")


def refuse(message: str, code: str) -> socketio.exceptions.ConnectionRefusedError:
    return socketio.exceptions.ConnectionRefusedError(message, {"code": code})


def register(sio: socketio.AsyncServer, state: SocketState, namespace: str, event: str,
             schema: ma.Schema | None, handler: Handler) -> None:
    """Wire ``event`` in ``namespace`` to ``handler`` with validation and error acks."""

    async def on_event(sid: str, data: Any = None) -> dict:
        started = time.perf_counter()
        token = request_id_var.set(f"sio-{sid}")
        try:
            entry = state.sockets.get(sid)
            if entry is None or state.ctx is None:
                return error("unauthorized", "Not connected")
            if state.in_flight >= state.max_in_flight:
                return error("unavailable", "The server is busy; retry shortly", {"retry_after_ms": 1000})
            try:
                payload = schema.load(data if data is not None else {}) if schema is not None else {}
            except ma.ValidationError as exc:
                return error("validation_failed", "The event has invalid fields", _field_errors(exc))
            except TypeError:
                return error("validation_failed", "The payload must be an object", {})
            state.in_flight += 1
            try:
                return ok(await handler(state.ctx, entry[1], sid, payload))
            finally:
                state.in_flight -= 1
        except DomainError as exc:
            return error(exc.code, exc.detail, exc.details)
        except Exception:
            log.exception("socket event failed", extra={"event": event})
            return error("internal", "Something went wrong; try again")
        finally:
            request_id_var.reset(token)
            metrics.SOCKET_ACK_LATENCY.labels(event=event).observe(time.perf_counter() - started)

    sio.on(event, on_event, namespace=namespace)


def _field_errors(exc: ma.ValidationError) -> dict:
    messages = exc.normalized_messages()
    return messages if isinstance(messages, dict) else {"_schema": messages}
