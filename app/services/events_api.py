"""The event log for other services: publish into it, subscribe to it as a live stream.

- :func:`publish` (gRPC ``PublishSupportEvent``) and :func:`ingest` (the Kafka consumer) store an
  event another service produced, idempotently on its ``event_id``, then hand it to the
  automation hooks (:func:`register_hook`).
- :class:`EventHub` follows the log for this process: the replica's one LISTEN connection on
  the ``support_events`` channel (app/leader.py) wakes it, it reads new rows once in commit-safe order and hands
  each to the :class:`Subscription` or :class:`Watch` whose filter matches.
- A :class:`Subscription` (``SubscribeToSupportEvents``) reads the log itself from its cursor
  until it has caught up, then takes rows from the hub through a bounded queue. A subscriber
  too slow for the queue loses nothing: the queue is dropped and it catches up from the table
  again, so memory per subscriber stays bounded whatever the traffic.

Cursors are ``(txid, position)`` and rows are read in that order below the snapshot's xmin
(sql/queries/event_stream.sql), so no row can commit behind a cursor already handed out.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime as dt
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from app.auth import Principal, RequestMeta
from app.context import AppContext
from app.errors import Conflict, Forbidden, NotFound, ValidationFailed
from app.follower import ORIGIN, Cursor, EventFollower, Wake, cursor_of, following, log_head
from app.jsonutil import dumps, to_jsonable
from app.security import audit

log = logging.getLogger(__name__)

PUBLISHERS = frozenset({"service", "admin"})
SUBSCRIBERS = frozenset({"service", "admin", "supervisor"})
# Event types this service writes itself: peers may not publish under them (readers such as the
# ticket live feed trust their payloads).
RESERVED_PREFIXES = frozenset(
    {"ticket", "chat", "agent", "feedback", "kb", "article", "escalation", "automation", "audit", "sla"}
)
TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
TYPE_FILTER = re.compile(r"^(\*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*)?)$")
ENTITY_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_FILTERS = 50

Hook = Callable[[AppContext, dict], Awaitable[None]]
_HOOKS: list[Hook] = []


def register_hook(hook: Hook) -> None:
    """Run ``hook(ctx, event)`` for every event another service publishes (after it is stored)."""
    _HOOKS.append(hook)


def unregister_hook(hook: Hook) -> None:
    with contextlib.suppress(ValueError):
        _HOOKS.remove(hook)


async def _run_hooks(ctx: AppContext, event: dict) -> None:
    for hook in list(_HOOKS):
        try:
            await hook(ctx, event)
        except Exception:  # one failing hook must not lose the event for the others
            log.exception("event hook failed", extra={"event_id": str(event["event_id"]), "hook": repr(hook)})


# ---------------------------------------------------------------- validation


def _uuid(value: Any, field: str, errors: dict[str, list[str]], *, required: bool) -> uuid.UUID | None:
    if value in (None, ""):
        if required:
            errors[field] = ["Missing data for required field."]
        return None
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        errors[field] = ["Not a valid UUID."]
        return None


def _text(
    value: Any,
    field: str,
    errors: dict[str, list[str]],
    *,
    maximum: int,
    pattern: re.Pattern[str] | None = None,
    required: bool = True,
) -> str | None:
    if value in (None, ""):
        if required:
            errors[field] = ["Missing data for required field."]
        return None
    if not isinstance(value, str):
        errors[field] = ["Not a valid string."]
    elif len(value) > maximum:
        errors[field] = [f"Longer than maximum length {maximum}."]
    elif "\x00" in value:
        errors[field] = ["Contains a NUL character."]
    elif pattern is not None and not pattern.match(value):
        errors[field] = ["Not in the expected format."]
    else:
        return value
    return None


def validate_external(ctx: AppContext, data: dict, *, topic: str | None = None) -> dict:
    """An event produced by another service, checked and normalised for ``insert_external_event``;
    raises :class:`ValidationFailed` naming every bad field."""
    errors: dict[str, list[str]] = {}
    event_id = _uuid(data.get("event_id"), "event_id", errors, required=True)
    event_type = _text(data.get("type"), "type", errors, maximum=64, pattern=TYPE)
    if event_type and event_type.split(".", 1)[0] in RESERVED_PREFIXES:
        errors["type"] = [f"'{event_type.split('.', 1)[0]}.*' events are written by the support service only."]
        event_type = None
    entity_type = _text(data.get("entity_type"), "entity_type", errors, maximum=32, pattern=ENTITY_TYPE)
    entity_id = _text(data.get("entity_id"), "entity_id", errors, maximum=64)
    source = _text(data.get("source"), "source", errors, maximum=64)
    if source == ctx.events.source:
        errors["source"] = ["Events of this service are not published from outside."]
    topics = {
        ctx.settings.kafka_topic_support_events,
        ctx.settings.kafka_topic_ticket_events,
        ctx.settings.kafka_topic_chat_events,
    }
    chosen = topic or data.get("topic") or (ctx.events.topic_for(event_type) if event_type else None)
    if chosen is not None and chosen not in topics:
        errors["topic"] = [f"Must be one of: {', '.join(sorted(topics))}."]
    actor_id = _uuid(data.get("actor_id"), "actor_id", errors, required=False)
    payload = data.get("payload")
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        errors["payload"] = ["Not a valid object."]
    else:
        try:
            encoded = dumps(payload)
        except (TypeError, ValueError):
            errors["payload"] = ["Not valid JSON."]
        else:
            if len(encoded.encode()) > MAX_PAYLOAD_BYTES:
                errors["payload"] = [f"Larger than {MAX_PAYLOAD_BYTES} bytes."]
            elif "\\u0000" in encoded:
                errors["payload"] = ["Contains a NUL character."]
    created_at = data.get("created_at")
    if created_at is not None:
        created_at = _aware(created_at, errors)
    if errors:
        raise ValidationFailed("The event has invalid fields", details=errors)
    return {
        "event_id": event_id,
        "type": event_type,
        "topic": chosen,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "source": source,
        "actor_id": actor_id,
        "payload": to_jsonable(payload),
        "created_at": created_at,
    }


def _aware(value: Any, errors: dict[str, list[str]]) -> dt.datetime | None:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            errors["created_at"] = ["Not a valid datetime."]
            return None
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        errors["created_at"] = ["Not a valid aware datetime."]
        return None
    return value


def event_view(row: Any) -> dict:
    """An event as peers see it (gRPC SupportEvent, the Kafka message value)."""
    return {
        "event_id": row["event_id"],
        "type": row["type"],
        "topic": row["topic"],
        "entity_type": row["entity_type"],
        "entity_id": row["entity_id"],
        "source": row["source"],
        "actor_id": row["actor_id"],
        "payload": row["payload"],
        "created_at": row["created_at"],
        "position": row["position"],
    }


# ---------------------------------------------------------------- publish and ingest


async def publish(ctx: AppContext, principal: Principal, meta: RequestMeta, data: dict) -> dict:
    """Append a peer's event; returns ``{"event", "duplicate"}``. The relay sends it to Kafka."""
    if principal.role not in PUBLISHERS:
        raise Forbidden("Only services and admins publish events")
    event = validate_external(ctx, {**data, "actor_id": data.get("actor_id") or principal.user_id})
    async with ctx.db.transaction() as conn:
        row = await ctx.db.q.insert_external_event(conn, **event, published_at=None)
        if row is None:
            return {
                "event": _same_event(await ctx.db.q.event_by_event_id(conn, event_id=event["event_id"]), event),
                "duplicate": True,
            }
        await audit.record_published(conn, principal, meta, event)
    stored = dict(row)
    await _run_hooks(ctx, stored)
    return {"event": stored, "duplicate": False}


def _same_event(existing: Any, event: dict) -> dict:
    """A resend must be the same event; another event under a used id is a conflict."""
    keys = ("type", "entity_type", "entity_id", "source")
    if existing is None or any(existing[k] != event[k] for k in keys):
        raise Conflict(
            "This event_id was already used for a different event", details={"event_id": str(event["event_id"])}
        )
    return dict(existing)


async def ingest(ctx: AppContext, data: dict, *, topic: str) -> dict | None:
    """Store an event consumed from Kafka unless its event_id was seen; returns the new row or
    None for a duplicate. It is marked published, so the relay never sends it back."""
    event = validate_external(ctx, data, topic=topic)
    async with ctx.db.connection() as conn:
        row = await ctx.db.q.insert_external_event(conn, **event, published_at=ctx.clock.now())
    if row is None:
        return None
    stored = dict(row)
    await _run_hooks(ctx, stored)
    return stored


# ---------------------------------------------------------------- subscriptions


@dataclasses.dataclass(frozen=True)
class EventFilter:
    types: tuple[str, ...] = ()  # exact types or "prefix.*"; empty: all
    topics: tuple[str, ...] = ()
    entity_type: str | None = None
    entity_id: str | None = None

    def matches(self, row: Any) -> bool:
        if self.entity_id is not None and row["entity_id"] != self.entity_id:
            return False
        if self.entity_type is not None and row["entity_type"] != self.entity_type:
            return False
        if self.topics and row["topic"] not in self.topics:
            return False
        return not self.types or any(_type_matches(t, row["type"]) for t in self.types)

    def type_patterns(self) -> list[str] | None:
        if not self.types or "*" in self.types:
            return None
        return [_like(t) for t in self.types]


def _type_matches(wanted: str, actual: str) -> bool:
    if wanted == "*":
        return True
    if wanted.endswith(".*"):
        return actual.startswith(wanted[:-1])
    return actual == wanted


def _like(wanted: str) -> str:
    if wanted.endswith(".*"):
        return wanted[:-1].replace("_", "\\_") + "%"
    return wanted.replace("_", "\\_")


async def prepare_subscription(ctx: AppContext, principal: Principal, data: dict) -> tuple[EventFilter, Cursor]:
    """Check who may subscribe and the request; returns the filter and the starting cursor."""
    if principal.role not in SUBSCRIBERS:
        raise Forbidden("Only supervisors, admins and services subscribe to events")
    errors: dict[str, list[str]] = {}
    types = tuple(data.get("types") or ())
    topics = tuple(data.get("topics") or ())
    if len(types) > MAX_FILTERS or any(not TYPE_FILTER.match(t) or len(t) > 64 for t in types):
        errors["types"] = ["Each type is a dotted lower-case name, optionally ending in .* (at most 50)."]
    if len(topics) > MAX_FILTERS or any(not t or len(t) > 100 for t in topics):
        errors["topics"] = ["Each topic is 1-100 characters (at most 50)."]
    entity_type = _text(data.get("entity_type"), "entity_type", errors, maximum=32, required=False)
    entity_id = _text(data.get("entity_id"), "entity_id", errors, maximum=64, required=False)
    after = _uuid(data.get("after_event_id"), "after_event_id", errors, required=False)
    if errors:
        raise ValidationFailed("The subscription has invalid fields", details=errors)
    async with ctx.db.connection() as conn:
        if after is not None:
            row = await ctx.db.q.stream_cursor_of(conn, event_id=after)
            if row is None:
                raise NotFound(
                    "No such event in the log (it may have been pruned); subscribe without "
                    "after_event_id or from_beginning"
                )
            cursor = cursor_of(row)
        elif data.get("from_beginning"):
            cursor = ORIGIN
        else:
            cursor = await head(ctx, conn)
    return EventFilter(types, topics, entity_type, entity_id), cursor


async def head(ctx: AppContext, conn: asyncpg.Connection) -> Cursor:
    return await log_head(ctx.db, conn)


async def read_after(ctx: AppContext, cursor: Cursor, flt: EventFilter, limit: int) -> list[asyncpg.Record]:
    async with ctx.db.connection() as conn:
        return await ctx.db.q.stream_after(
            conn,
            after_txid=str(cursor[0]),
            after_position=cursor[1],
            type_patterns=flt.type_patterns(),
            topics=list(flt.topics) or None,
            entity_type=flt.entity_type,
            entity_id=flt.entity_id,
            limit=limit,
        )


class _Listener:
    def __init__(self, flt: EventFilter):
        self.filter = flt

    def deliver(self, row: asyncpg.Record) -> None:
        raise NotImplementedError


class Watch(_Listener):
    """Wakes its owner when a matching event commits (the owner then reads what it needs)."""

    def __init__(self, flt: EventFilter):
        super().__init__(flt)
        self.event = asyncio.Event()
        self.types_seen: set[str] = set()

    def deliver(self, row: asyncpg.Record) -> None:
        self.types_seen.add(row["type"])
        self.event.set()


class Subscription(_Listener):
    """Matching events from a cursor on, in commit order, each once; see the module docstring."""

    def __init__(self, hub: EventHub, flt: EventFilter, cursor: Cursor, *, queue_size: int, page: int):
        super().__init__(flt)
        self._hub = hub
        self.cursor = cursor
        self._queue: collections.deque[asyncpg.Record] = collections.deque()
        self._queue_size = queue_size
        self._page = page
        self._buffer: collections.deque[asyncpg.Record] = collections.deque()
        self._catching_up = True
        self._overflowed = False
        self._ready = asyncio.Event()
        self.overflows = 0

    def deliver(self, row: asyncpg.Record) -> None:
        if self._overflowed:
            return
        if len(self._queue) >= self._queue_size:
            # Too slow for the live queue: forget it and catch up from the table later.
            self._queue.clear()
            self._overflowed = True
            self.overflows += 1
        else:
            self._queue.append(row)
        self._ready.set()

    @property
    def buffered(self) -> int:
        return len(self._queue) + len(self._buffer)

    async def next(self, stop: asyncio.Event | None = None) -> asyncpg.Record | None:
        """The next event, waiting for one to commit; None once ``stop`` is set."""
        while True:
            if stop is not None and stop.is_set():
                return None
            if self._buffer:
                row = self._buffer.popleft()
                self.cursor = cursor_of(row)
                return row
            if self._catching_up or self._overflowed:
                self._overflowed = False
                self._catching_up = True
                rows = await read_after(self._hub.ctx, self.cursor, self.filter, self._page)
                if rows:
                    self._buffer.extend(rows)
                else:
                    self._catching_up = False
                continue
            while self._queue:
                row = self._queue.popleft()
                if cursor_of(row) > self.cursor:
                    self.cursor = cursor_of(row)
                    return row
            self._ready.clear()
            waits = [asyncio.ensure_future(self._ready.wait())]
            if stop is not None:
                waits.append(asyncio.ensure_future(stop.wait()))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waits:
                    waiter.cancel()

    def close(self) -> None:
        self._hub.detach(self)
        self._queue.clear()
        self._buffer.clear()


class EventHub:
    """Follows the event log for this process and fans rows out to listeners (module docstring):
    an every-replica listener of the replica's event follower (app/follower.py).

    Reads only while someone listens; a NOTIFY wakes it, and a row whose transaction is not yet
    below xmin is looked for again shortly (back-off from 20 ms to 1 s), with a slow safety-net
    read every ``idle_seconds`` in case a notification was missed (e.g. while reconnecting).
    """

    name = "event-hub"
    leader = False

    def __init__(self, ctx: AppContext, *, queue_size: int = 256, page: int = 500, idle_seconds: float = 5.0):
        self.ctx = ctx
        self.queue_size = queue_size
        self.page = page
        self.idle_seconds = idle_seconds
        self._listeners: list[_Listener] = []
        self._cursor: Cursor | None = None
        self._lock = asyncio.Lock()
        self.wake = Wake()
        self._pending: dict[int, float] = {}  # notified positions not read yet -> when notified
        self.follower: EventFollower | None = None  # the replica's, set by app/server.py
        self._own: Any = None
        self._standalone: EventFollower | None = None

    @property
    def listeners(self) -> int:
        return len(self._listeners)

    async def start(self) -> None:
        """Follow on its own (a Leader connection of its own), for a hub that no replica's event
        follower drives (tools, tests); a replica's hub is a listener of its follower instead."""
        self._own = following(self.ctx.settings.dsn, [self])
        self._standalone = await self._own.__aenter__()

    async def stop(self) -> None:
        if self._own is not None:
            own, self._own, self._standalone = self._own, None, None
            await own.__aexit__(None, None, None)

    @property
    def connected(self) -> bool:
        follower = self._standalone or self.follower
        return follower is not None and follower.leader.connected

    async def subscribe(self, flt: EventFilter, cursor: Cursor) -> Subscription:
        sub = Subscription(self, flt, cursor, queue_size=self.queue_size, page=min(self.page, 200))
        await self._attach(sub)
        return sub

    async def watch(self, flt: EventFilter) -> Watch:
        watch = Watch(flt)
        await self._attach(watch)
        return watch

    async def _attach(self, listener: _Listener) -> None:
        # The hub's cursor must be set before the listener reads the table itself, so that what
        # the listener reads and what the hub hands it later leave no gap between them.
        async with self._lock:
            if self._cursor is None:
                async with self.ctx.db.connection() as conn:
                    self._cursor = await head(self.ctx, conn)
            self._listeners.append(listener)
        self.wake.set()

    def detach(self, listener: _Listener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)
        if not self._listeners:
            self._cursor = None  # nobody listens: stop reading until someone does

    def notified(self, payload: str) -> None:
        with contextlib.suppress(ValueError):
            if len(self._pending) < 10_000:
                self._pending[int(payload)] = time.monotonic()

    async def follow(self) -> None:
        recheck = 0.02
        while True:
            timeout = recheck if self._pending and self._listeners else self.idle_seconds
            await self.wake.wait(timeout)
            if not self._listeners:
                self._pending.clear()
                continue
            await self._read()
            if self._pending:
                recheck = min(recheck * 2, 1.0)
            else:
                recheck = 0.02

    async def _read(self) -> None:
        async with self._lock:
            if self._cursor is None:
                return
            everything = EventFilter()
            while True:
                rows = await read_after(self.ctx, self._cursor, everything, self.page)
                for row in rows:
                    self._pending.pop(row["position"], None)
                    for listener in list(self._listeners):
                        if listener.filter.matches(row):
                            listener.deliver(row)
                if rows:
                    self._cursor = cursor_of(rows[-1])
                if len(rows) < self.page:
                    break
            # A notified row that stays unreadable this long was rolled into an older read or
            # pruned; the safety-net read covers the rest.
            stale = time.monotonic() - 10.0
            for position in [p for p, at in self._pending.items() if at < stale]:
                del self._pending[position]
