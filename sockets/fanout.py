"""Cross-replica Socket.IO fan-out in which a replica hears only the rooms it has members in.

python-socketio's Redis manager publishes every emit on one channel that every replica decodes
(its own echo included), so each replica pays for the whole cluster's traffic and the cluster
can carry no more than one replica can receive. Here:

- each replica listens on a channel of its own (``<prefix>:replica:<id>``);
- a registry in Redis, one hash per room (``<prefix>:room:<namespace>:<room>`` → ``{replica: 1}``),
  says which replicas have members of a room;
- an emit goes to this replica's members directly, and through one Redis script to the channels
  of the *other* replicas listed for its rooms: none at all when a chat's customer and agent are
  on the same replica;
- socket ids carry their replica's id, so an operation on a remote socket (enter or leave a room,
  disconnect, an emit to that socket) goes to that replica's channel alone.

Ordering and no lost pushes: every Redis command goes through one ordered publisher task, so a
replica's pushes reach each other replica in the order they were made (an ``enter_room`` stays
ahead of the emit that follows it). A replica registers a room *before* its ``enter_room``
returns, and a replica that adds a remote socket to a room registers that socket's replica
itself, so every emit made after a join reaches the joined socket; anything committed before
the join the client reads with ``chat:sync`` when it opens the chat. When the subscription comes
back after a Redis failure, the replica rewrites its registrations (Redis may have lost them)
and then tells its sockets in chats to ``chat:resync``.

Stale entries (a replica killed without leaving its rooms) cost only a publish to a channel
nobody hears; they expire with the room hash (renewed while in use) or go when the room empties.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Iterable
from typing import Any

import orjson
import redis.asyncio as aioredis
import socketio
from bidict import ValueDuplicationError
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from app import metrics
from app.jsonutil import orjson_default

log = logging.getLogger("support.sockets")

LISTEN_RETRY_FIRST_SECONDS = 0.1  # the listener's back-off after Redis fails...
LISTEN_RETRY_MAX_SECONDS = 2.0  # ...doubling up to this, so it is back within ~2 s of Redis
REGISTER_WAIT_SECONDS = 1.0  # an enter_room waits this long for a failing Redis, then goes on
REGISTER_WAIT_LONGEST = 15.0  # ...and at most this long for a reachable one (a starved replica)
REGISTRY_CHECK_SECONDS = 1.0  # how often a replica checks that Redis still has its registry
ROOM_TTL_SECONDS = 7 * 24 * 3600  # a room hash outlives a crashed replica's entry by at most this
RENEW_SECONDS = 3600  # a replica renews its entries' expiry this often
OUTBOX_LIMIT = 100_000
SESSION_ROOM_PREFIX = "session:"
REPLICA_ID_LENGTH = 12  # hex digits; a socket id is "<replica>.<engine.io id>"

# KEYS: room hashes; ARGV: this replica, the channel prefix, the payload. Publishes the payload
# once to every other replica that has members of any of the rooms.
FANOUT_SCRIPT = """
local seen, sent = {}, 0
for _, key in ipairs(KEYS) do
  for _, replica in ipairs(redis.call('HKEYS', key)) do
    if replica ~= ARGV[1] and not seen[replica] then
      seen[replica] = true
      sent = sent + redis.call('PUBLISH', ARGV[2] .. replica, ARGV[3])
    end
  end
end
return sent
"""


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=orjson_default, option=orjson.OPT_NON_STR_KEYS)


class ReplicaFanout(socketio.AsyncManager):
    """A python-socketio client manager: python-socketio's local room bookkeeping, plus the
    cross-replica fan-out described in the module docstring."""

    def __init__(self, redis_url: str, *, prefix: str, redis_options: dict | None = None) -> None:
        super().__init__()
        self.replica = secrets.token_hex(REPLICA_ID_LENGTH // 2)
        self.prefix = prefix
        self.channel = self._channel_of(self.replica)
        self._redis_url = redis_url
        self._redis_options = redis_options or {}
        self._client: aioredis.Redis | None = None
        self._script: Any = None
        self._subscription: Any = None
        self._outbox: asyncio.Queue = asyncio.Queue(maxsize=OUTBOX_LIMIT)
        self._tasks: set[asyncio.Task] = set()
        self._publisher: asyncio.Task | None = None
        self._listener: asyncio.Task | None = None
        self._watcher: asyncio.Task | None = None
        self._redis_back = asyncio.Event()  # set while Redis answers; cleared by a failed publish

    # ------------------------------------------------------------ names

    def _channel_of(self, replica: str) -> str:
        return f"{self.prefix}:replica:{replica}"

    def _room_key(self, namespace: str, room: Any) -> str:
        return f"{self.prefix}:room:{namespace}:{room}"

    @property
    def _everyone_key(self) -> str:
        """The registry entry every replica has: where a broadcast to a whole namespace goes."""
        return f"{self.prefix}:replicas"

    def replica_of(self, sid: Any) -> str | None:
        """The replica a socket id was made on (None: not one of ours)."""
        if isinstance(sid, str) and len(sid) > REPLICA_ID_LENGTH and sid[REPLICA_ID_LENGTH] == ".":
            replica = sid[:REPLICA_ID_LENGTH]
            if all(c in "0123456789abcdef" for c in replica):
                return replica
        return None

    def _is_local(self, sid: Any, namespace: str) -> bool:
        return self.is_connected(sid, namespace) or self.is_pre_connected(sid, namespace)

    def _redis(self) -> aioredis.Redis:
        if self._client is None:
            self._client = aioredis.Redis.from_url(self._redis_url, **self._redis_options)
            self._script = self._client.register_script(FANOUT_SCRIPT)
        return self._client

    # ------------------------------------------------------------ lifetime

    def start(self, sio: socketio.AsyncServer) -> None:
        """Listen and publish from the replica's start, not from the first socket connection."""
        if not sio.manager_initialized:
            sio.manager_initialized = True
            self.initialize()
        loop = asyncio.get_running_loop()
        if self._publisher is None:
            self._publisher = loop.create_task(self._run_publisher(), name="sio-publisher")
        if self._listener is None:
            self._listener = loop.create_task(self._run_listener(), name="sio-listener")
        registered = self._queue(("hset", self._everyone_key))
        self._watcher = loop.create_task(self._watch_registry(registered), name="sio-registry-watch")

    async def aclose(self, timeout: float = 2.0) -> None:
        """Leave the registry (best effort, bounded), then stop listening and publishing."""
        if self._publisher is not None and not self._publisher.done():
            self._queue(("hdel", self._everyone_key))
            for namespace, rooms in list(self.rooms.items()):
                for room in rooms:
                    if self._registered(namespace, room):
                        self._queue(("hdel", self._room_key(namespace, room)))
            done = self._queue(("flush",))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(done), timeout)
        for task in (self._watcher, self._listener, self._publisher, *self._tasks):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.aclose()
        if self._client is not None:
            await self._client.aclose()

    # ------------------------------------------------------------ socket ids

    async def pre_connect(self, eio_sid: str, namespace: str) -> str | None:
        """python-socketio's pre-connect, with a socket id that names this replica."""
        sid = f"{self.replica}.{self.server.eio.generate_id()}"
        try:
            self.basic_enter_room(sid, namespace, None, eio_sid=eio_sid)
        except ValueDuplicationError:  # this Engine.IO session is connected to the namespace already
            return None
        self.basic_enter_room(sid, namespace, sid, eio_sid=eio_sid)
        self.pending_connect.setdefault(namespace, []).append(sid)
        return sid

    # ------------------------------------------------------------ rooms

    def _registered(self, namespace: str, room: Any) -> bool:
        """Rooms in the registry: named rooms, not the per-socket ones."""
        return room is not None and not self.is_sid_room(namespace, room)

    async def enter_room(self, sid: str, namespace: str, room: Any, eio_sid: str | None = None) -> None:
        if self._is_local(sid, namespace):
            first = room not in self.rooms.get(namespace, {})
            self.basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
            if first and self._registered(namespace, room):
                await self._register(self._room_key(namespace, room), self.replica)
            return
        replica = self.replica_of(sid)
        if replica is None or replica == self.replica:
            return  # a socket of this replica that has gone, or not a socket id at all
        # Registered here, before the emit that follows this join, so that emit reaches it.
        await self._register(self._room_key(namespace, room), replica)
        self._send_to(replica, {"m": "enter", "sid": sid, "n": namespace, "r": room})

    async def leave_room(self, sid: str, namespace: str, room: Any) -> None:
        if self._is_local(sid, namespace):
            self.basic_leave_room(sid, namespace, room)
            self._unregister_if_empty(namespace, [room])
            return
        replica = self.replica_of(sid)
        if replica is not None and replica != self.replica:
            self._send_to(replica, {"m": "leave", "sid": sid, "n": namespace, "r": room})

    async def close_room(self, room: Any, namespace: str) -> None:
        self.basic_close_room(room, namespace)
        self._unregister_if_empty(namespace, [room])
        self._fanout([self._room_key(namespace, room)], {"m": "close", "n": namespace, "r": room})

    async def can_disconnect(self, sid: str, namespace: str) -> bool:
        if self._is_local(sid, namespace):
            return True
        replica = self.replica_of(sid)
        if replica is not None and replica != self.replica:
            self._send_to(replica, {"m": "disconnect", "sid": sid, "n": namespace})
        return False

    async def disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        rooms = [room for room in self.get_rooms(sid, namespace) if room != sid]
        self.basic_disconnect(sid, namespace, **kwargs)
        self._unregister_if_empty(namespace, rooms)

    def _unregister_if_empty(self, namespace: str, rooms: Iterable[Any]) -> None:
        local = self.rooms.get(namespace, {})
        for room in rooms:
            if room is not None and room not in local:
                self._queue(("hdel", self._room_key(namespace, room)))

    async def _register(self, key: str, replica: str) -> None:
        """Add ``replica`` to a room's registry and wait until Redis has it, so that pushes
        made after the join reach it (a starved replica may take seconds). While Redis is known
        to be failing the wait is short: a join does not hang on an outage, and the restore
        rewrites the registry and resyncs the clients when Redis is back."""
        done = self._queue(("hset", key, replica))
        reachable = self._redis_back.is_set()
        await asyncio.wait([done], timeout=REGISTER_WAIT_SECONDS if not reachable else REGISTER_WAIT_LONGEST)

    # ------------------------------------------------------------ emits

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        room = to or room
        if callback is not None:  # an ack asked of a client: this replica's sockets only
            await super().emit(event, data, namespace, room=room, skip_sid=skip_sid, callback=callback)
            return
        await self._emit_local(event, data, namespace, room, skip_sid)
        if kwargs.get("ignore_queue"):
            return
        message = {"m": "emit", "e": event, "d": data, "n": namespace, "r": room, "s": skip_sid}
        self._route(namespace, room, message)

    async def emit_in_namespaces(
        self, event: str, data: Any, namespaces: list[str], room: str, skip_sid: Any = None
    ) -> None:
        """One push to a room of the same name in several namespaces (a chat session's customer
        and staff sides) with one fan-out: one encoding and one Redis call, not one per namespace."""
        for namespace in namespaces:
            await self._emit_local(event, data, namespace, room, skip_sid)
        keys = [self._room_key(namespace, room) for namespace in namespaces]
        self._fanout(keys, {"m": "emit", "e": event, "d": data, "n": namespaces, "r": room, "s": skip_sid})

    def _route(self, namespace: str, room: Any, message: dict) -> None:
        """Send an emit on to the other replicas that have members of its room(s)."""
        if room is None:
            self._fanout([self._everyone_key], message)
            return
        keys = []
        for name in room if isinstance(room, (list, tuple, set)) else [room]:
            if self.is_sid_room(namespace, name):
                continue  # a socket of this replica: delivered already
            replica = self.replica_of(name)
            if replica is None:
                keys.append(self._room_key(namespace, name))
            elif replica != self.replica:
                self._send_to(replica, {**message, "r": name})
        if keys:
            self._fanout(keys, message)

    async def _emit_local(self, event: str, data: Any, namespace: str, room: Any, skip_sid: Any) -> None:
        """python-socketio's local emit, written to each member in turn instead of through a
        task per member (one or two members is the usual room here)."""
        if namespace not in self.rooms:
            return
        skip = skip_sid if isinstance(skip_sid, (list, tuple, set)) else (skip_sid,)
        members = [eio_sid for sid, eio_sid in self.get_participants(namespace, room) if sid not in skip]
        if not members:
            return
        args = list(data) if isinstance(data, tuple) else ([] if data is None else [data])
        encoded = self.server.packet_class(sio_packet.EVENT, namespace=namespace, data=[event, *args]).encode()
        frames = [
            eio_packet.Packet(eio_packet.MESSAGE, part)
            for part in (encoded if isinstance(encoded, list) else [encoded])
        ]
        for eio_sid in members:
            for frame in frames:
                with contextlib.suppress(Exception):  # a socket closing meanwhile
                    await self.server._send_eio_packet(eio_sid, frame)

    # ------------------------------------------------------------ the publisher

    def _queue(self, command: tuple) -> asyncio.Future:
        """Hand a Redis command to the ordered publisher; the future resolves once it ran."""
        done = asyncio.get_running_loop().create_future()
        try:
            self._outbox.put_nowait((command, done))
        except asyncio.QueueFull:
            metrics.SOCKET_BROADCASTS_DROPPED.inc()
            log.error("socket fan-out dropped: the publish queue is full (Redis unreachable?)")
            done.set_result(None)
        return done

    def _send_to(self, replica: str, message: dict) -> None:
        self._queue(("publish", self._channel_of(replica), dumps(message)))

    def _fanout(self, keys: list[str], message: dict) -> None:
        self._queue(("fanout", keys, dumps(message)))

    async def _run_publisher(self) -> None:
        backoff = 0.05
        while True:
            batch = [await self._outbox.get()]
            while not self._outbox.empty() and len(batch) < 500:
                batch.append(self._outbox.get_nowait())
            while True:
                try:
                    await self._execute([command for command, _ in batch])
                    self._redis_back.set()
                    backoff = 0.05
                    break
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # Retried until Redis answers: a push arrives at least once (clients
                    # de-duplicate by message id / seq, and chat:sync fills any gap). The
                    # listener cuts the back-off short when it reaches Redis again.
                    log.warning("socket fan-out publish failed; retrying", exc_info=True)
                    self._redis_back.clear()
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._redis_back.wait(), backoff)
                    backoff = min(backoff * 2, 2.0)
            for _, done in batch:
                if not done.done():
                    done.set_result(None)

    async def _execute(self, commands: list[tuple]) -> None:
        client = self._redis()
        async with client.pipeline(transaction=False) as pipe:
            for command in commands:
                kind = command[0]
                if kind == "publish":
                    pipe.publish(command[1], command[2])
                elif kind == "fanout":
                    await self._script(
                        keys=command[1], args=[self.replica, f"{self.prefix}:replica:", command[2]], client=pipe
                    )
                elif kind == "hset":
                    replica = command[2] if len(command) > 2 else self.replica
                    pipe.hset(command[1], replica, 1)
                    pipe.expire(command[1], ROOM_TTL_SECONDS)
                elif kind == "hdel":
                    pipe.hdel(command[1], self.replica)
            await pipe.execute()

    # ------------------------------------------------------------ the listener

    async def _run_listener(self) -> None:
        """Hear this replica's channel. After a failure the subscription is renewed with a short
        back-off, the registry rewritten and the sockets in chats told to resync."""
        delay = LISTEN_RETRY_FIRST_SECONDS
        lost = False
        while True:
            subscription = self._subscription = self._redis().pubsub(ignore_subscribe_messages=True)
            try:
                await subscription.subscribe(self.channel)
                self._redis_back.set()
                if lost:
                    log.warning("socket fan-out subscription restored; re-registering rooms, resyncing clients")
                    self._restore_soon()
                lost = False
                delay = LISTEN_RETRY_FIRST_SECONDS
                async for message in subscription.listen():
                    if message.get("type") == "message":
                        await self._handle(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not lost:
                    log.warning("socket fan-out subscription lost (%s: %s); retrying", type(exc).__name__, exc)
                lost = True
                metrics.SOCKET_FANOUT_INTERRUPTIONS.inc()
                with contextlib.suppress(Exception):
                    await subscription.aclose()
                await asyncio.sleep(delay)
                delay = min(delay * 2, LISTEN_RETRY_MAX_SECONDS)

    async def _handle(self, raw: bytes) -> None:
        metrics.PUBSUB_RECEIVED_MESSAGES.inc()
        metrics.PUBSUB_RECEIVED_BYTES.inc(len(raw))
        try:
            message = orjson.loads(raw)
            kind, namespace = message["m"], message["n"]
            if kind == "emit":
                for name in namespace if isinstance(namespace, list) else [namespace]:
                    await self._emit_local(message["e"], message["d"], name, message["r"], message.get("s"))
            elif kind == "enter" and self._is_local(message["sid"], namespace):
                await self.enter_room(message["sid"], namespace, message["r"])
            elif kind == "leave" and self._is_local(message["sid"], namespace):
                await self.leave_room(message["sid"], namespace, message["r"])
            elif kind == "disconnect" and self._is_local(message["sid"], namespace):
                await self.server.disconnect(message["sid"], namespace=namespace, ignore_queue=True)
            elif kind == "close":
                self.basic_close_room(message["r"], namespace)
                self._unregister_if_empty(namespace, [message["r"]])
        except Exception:
            log.exception("socket fan-out message not handled")

    async def _watch_registry(self, registered: asyncio.Future) -> None:
        """Redis may lose the registry without this replica's subscription ever failing (a fast
        restart that redis-py reconnects through, a failover, a flush): every
        REGISTRY_CHECK_SECONDS check that this replica's entry is still there, and restore when
        it is gone (pushes missed meanwhile are fetched by the clients on chat:resync)."""
        await registered
        renewed = asyncio.get_running_loop().time()
        while True:
            await asyncio.sleep(REGISTRY_CHECK_SECONDS)
            if asyncio.get_running_loop().time() - renewed > RENEW_SECONDS:
                renewed = asyncio.get_running_loop().time()
                self._register_all()  # renews the room hashes' expiry while they are in use
            try:
                present = await self._redis().hexists(self._everyone_key, self.replica)
            except asyncio.CancelledError:
                raise
            except Exception:
                continue  # Redis away: the listener notices too; check again on the next round
            if not present:
                log.warning("socket fan-out registry lost in Redis; re-registering rooms, resyncing clients")
                self._redis_back.set()
                await self._restore()

    def _restore_soon(self) -> None:
        task = asyncio.get_running_loop().create_task(self._restore())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _restore(self) -> None:
        """Rewrite this replica's registry entries, and only once Redis has them, tell the
        sockets in chats to resync: every push fanned out after that reaches this replica, and
        every message committed before it is in the clients' chat:sync."""
        await asyncio.gather(*self._register_all())  # resolved when the publisher ran them (it retries)
        await self.resync_local_sessions()

    def _register_all(self) -> list[asyncio.Future]:
        """(Re)write this replica's entries: the everyone hash and every room it has members in."""
        waits = [self._queue(("hset", self._everyone_key))]
        waits += [
            self._queue(("hset", self._room_key(ns, room)))
            for ns, rooms in list(self.rooms.items())
            for room in list(rooms)
            if self._registered(ns, room)
        ]
        return waits

    async def resync_local_sessions(self) -> int:
        """``chat:resync {session_ids}`` to every socket of this replica in a session room (sent
        locally); returns how many sockets were told."""
        told = 0
        for namespace, rooms in list(self.rooms.items()):
            per_socket: dict[str, list[str]] = {}
            for room, members in list(rooms.items()):
                if isinstance(room, str) and room.startswith(SESSION_ROOM_PREFIX):
                    for sid in list(members):
                        per_socket.setdefault(sid, []).append(room[len(SESSION_ROOM_PREFIX) :])
            for sid, session_ids in per_socket.items():
                with contextlib.suppress(Exception):
                    await self._emit_local("chat:resync", {"session_ids": sorted(session_ids)}, namespace, sid, None)
                    told += 1
        metrics.SOCKET_RESYNCS.inc(told)
        return told
