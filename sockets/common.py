"""The shape every Socket.IO handler shares: authenticate once at connect, validate the payload,
call one service function, answer ``{"ok": true, "data"}`` or ``{"ok": false, "error"}``."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import marshmallow as ma
import orjson
import socketio
import socketio.packet

from app import metrics
from app.auth import Principal, RequestMeta
from app.context import AppContext
from app.errors import DomainError
from app.jsonutil import json_default, orjson_default
from app.logs import request_id_var
from app.outage import RETRY_AFTER_MS, is_outage
from app.security.ratelimit import Budget
from sockets.overload import LoopLag
from app.validation import DEPTH_MESSAGE, MAX_DEPTH, json_depth_exceeds

log = logging.getLogger("support.sockets")

Handler = Callable[[AppContext, Principal, str, dict], Awaitable[Any]]
EVENTS_PER_SECOND = 30.0  # per socket, on average (a person types and sends far less)
EVENT_BURST = 120.0  # per socket, at once (a reconnect's syncs, a paste of messages)
# Events handled at once on a replica: at 4 000 messages a second, 100 ms of work; beyond it
# an event would wait longer than a client should, so it is answered `unavailable` at once.
MAX_IN_FLIGHT = 400
BUSY_RETRY_MS = 500


class SocketState:
    """Per-replica socket bookkeeping: the AppContext, who each local socket is, its event
    budget and the timer that ends it when its token expires."""

    def __init__(
        self,
        max_in_flight: int = MAX_IN_FLIGHT,
        *,
        events_per_second: float = EVENTS_PER_SECOND,
        event_burst: float = EVENT_BURST,
    ) -> None:
        self.ctx: AppContext | None = None
        self.sockets: dict[str, tuple[str, Principal]] = {}  # sid -> (namespace, principal)
        # Events being handled at once on this replica; past the bound the server answers
        # `unavailable` at once instead of queueing work it cannot finish in time.
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.lag = LoopLag()  # started with the replica (sockets/server.py serving)
        # One flooding socket must not slow its neighbours: every event of a socket draws on
        # its own budget (typing and sync included); past it the answer is `rate_limited`.
        self.events_per_second = events_per_second
        self.event_burst = event_burst
        self.budgets: dict[str, Budget] = {}
        self.expiry: dict[str, asyncio.TimerHandle] = {}

    def count(self) -> int:
        return len(self.sockets)

    def busy(self) -> bool:
        """Past capacity: too many events in flight, or the event loop running late."""
        return self.in_flight >= self.max_in_flight or self.lag.behind

    def heartbeat_entries(self) -> list[tuple[str, Any, str]]:
        return [(ns, p.user_id, sid) for sid, (ns, p) in self.sockets.items()]

    def spend(self, sid: str) -> int:
        budget = self.budgets.get(sid)
        if budget is None:
            budget = self.budgets[sid] = Budget(self.events_per_second, self.event_burst)
        return budget.take()

    def forget(self, sid: str) -> None:
        self.budgets.pop(sid, None)
        timer = self.expiry.pop(sid, None)
        if timer is not None:
            timer.cancel()


def ok(data: Any = None) -> dict:
    """The success ack; UUIDs, times and decimals are left to the packet encoder (PacketJson)."""
    return {"ok": True, "data": data if data is not None else {}}


def error(code: str, message: str, details: dict | None = None) -> dict:
    return {"ok": False, "error": {"code": code, "message": message, "details": details or {}}}


def meta(sid: str) -> RequestMeta:
    return RequestMeta(request_id=f"sio-{sid}", transport="socketio")


def refuse(message: str, code: str) -> socketio.exceptions.ConnectionRefusedError:
    return socketio.exceptions.ConnectionRefusedError(message, {"code": code})


def check_call(state: SocketState, sid: str, args: tuple) -> tuple[tuple[str, Principal] | None, dict | None]:
    """The socket's entry, or the error answer an event gets before any validation: not
    connected, over its budget, token expired, extra arguments, a payload nested too deep."""
    entry = state.sockets.get(sid)
    if entry is None or state.ctx is None:
        return None, error("unauthorized", "Not connected")
    wait_ms = state.spend(sid)
    if wait_ms:
        return None, error(
            "rate_limited", "Too many events from this connection; slow down", {"retry_after_ms": wait_ms}
        )
    expires_at = entry[1].expires_at
    if expires_at is not None and time.time() >= expires_at:
        return None, error("token_expired", "Your token has expired; send auth:refresh with a new one")
    if len(args) > 1:
        return None, error(
            "validation_failed",
            "An event takes one payload object",
            {"_schema": [f"Expected one argument, got {len(args)}."]},
        )
    if args and isinstance(args[0], TooDeep):
        return None, error("validation_failed", "The payload is nested too deeply", {"_schema": [DEPTH_MESSAGE]})
    return entry, None


def register(
    sio: socketio.AsyncServer,
    state: SocketState,
    namespace: str,
    event: str,
    schema: ma.Schema | None,
    handler: Handler,
) -> None:
    """Wire ``event`` in ``namespace`` to ``handler`` with validation and error acks."""
    observe = metrics.SOCKET_ACK_LATENCY.labels(event=event).observe
    fast_load = getattr(schema, "fast_load", None)  # the hot events' microsecond check

    async def on_event(sid: str, *args: Any) -> dict:
        started = time.perf_counter()
        token = request_id_var.set(f"sio-{sid}")
        try:
            entry, refusal = check_call(state, sid, args)
            if refusal is not None:
                return refusal
            if state.busy():
                metrics.SOCKET_SHED.inc()
                return error("unavailable", "The server is busy; retry shortly", {"retry_after_ms": BUSY_RETRY_MS})
            data = args[0] if args else None
            try:
                payload = fast_load(data) if fast_load is not None else None
                if payload is None:
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
        except Exception as exc:
            if is_outage(exc):  # a dependency is down: never `internal`
                log.warning(
                    "socket event failed: a backing service is out of reach: %s: %s",
                    type(exc).__name__,
                    exc,
                    extra={"event": event},
                )
                return error(
                    "unavailable",
                    "A backing service is out of reach; retry shortly",
                    {"retry_after_ms": RETRY_AFTER_MS},
                )
            log.exception("socket event failed", extra={"event": event})
            return error("internal", "Something went wrong; try again")
        finally:
            request_id_var.reset(token)
            observe(time.perf_counter() - started)

    sio.on(event, on_event, namespace=namespace)


def register_unknown(sio: socketio.AsyncServer, state: SocketState, namespace: str) -> None:
    """Any event ``namespace`` has no handler for (the other namespace's included) is answered
    ``unknown_event`` when an ack is asked."""

    async def on_unknown(event: Any, sid: str, *args: Any) -> dict:
        if sid in state.sockets and state.spend(sid):
            return error("rate_limited", "Too many events from this connection; slow down", {"retry_after_ms": 1000})
        name = event if isinstance(event, str) and len(event) <= 100 else "?"
        return error("unknown_event", f"{namespace} has no event {name!r}")

    sio.on("*", on_unknown, namespace=namespace)


class TooDeep:
    """A payload refused before decoding because it nests too deeply (see :class:`PacketJson`)."""


_EVENT_NAME = re.compile(r'^\[\s*"((?:[^"\\]|\\.){0,200})"')


class PacketJson:
    """The ``json`` python-socketio decodes packets with: a document nested deeper than
    :data:`app.validation.MAX_DEPTH` (plus the packet's own array) is never handed to the decoder
    (which would exhaust the recursion limit); its event gets a :class:`TooDeep` payload and is
    answered ``validation_failed``. Encoding and decoding go through orjson (UUIDs and times
    included), with the standard library as the fallback for what orjson refuses (a lone
    surrogate escape, an integer beyond 64 bits, NaN), so what is accepted stays the same."""

    @staticmethod
    def dumps(obj: Any, *args: Any, **kwargs: Any) -> str:
        try:
            return orjson.dumps(obj, default=orjson_default, option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError:
            return json.dumps(obj, default=json_default, separators=(",", ":"))

    @staticmethod
    def loads(text: Any, *args: Any, **kwargs: Any) -> Any:
        if json_depth_exceeds(text, MAX_DEPTH + 2):
            found = _EVENT_NAME.match(text if isinstance(text, str) else text.decode("utf-8", "replace"))
            return [json.loads(f'"{found.group(1)}"') if found else "?", TooDeep()]
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            return json.loads(text)


def _field_errors(exc: ma.ValidationError) -> dict:
    messages = exc.normalized_messages()
    return messages if isinstance(messages, dict) else {"_schema": messages}


class SocketPacket(socketio.packet.Packet):
    """Socket.IO packets of this server, decoded with :class:`PacketJson`."""

    json = PacketJson


class SocketServer(socketio.AsyncServer):
    """python-socketio's server, except that a client cannot fire the server's own lifecycle
    handlers: an EVENT packet named ``connect`` or ``disconnect`` would otherwise run them (a
    second connect with other credentials, or a disconnect that forgets a live socket). Such
    events, and ones that are not a name at all, are answered ``unknown_event``."""

    async def emit_in_namespaces(
        self, event: str, data: Any, *, to: str, namespaces: list[str], skip_sid: Any = None
    ) -> None:
        """``emit`` to the room ``to`` of each namespace as one push (see ReplicaFanout)."""
        await self.manager.emit_in_namespaces(event, data, namespaces, to, skip_sid)

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: Any, data: Any) -> None:
        if not data or not isinstance(data[0], str) or data[0] in self.reserved_events:
            if id is not None:
                answer = error("unknown_event", "Not an event a client may send")
                await self._send_packet(
                    eio_sid, self.packet_class(socketio.packet.ACK, namespace=namespace or "/", id=id, data=[answer])
                )
            return
        await super()._handle_event(eio_sid, namespace, id, data)
