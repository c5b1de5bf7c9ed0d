"""Shared real-time state: room names, socket presence in Redis, and pushes to clients.

Every replica sees the same presence (Redis sorted sets of socket ids with expiry scores) and
reaches every client through the Socket.IO Redis manager, so a push from any replica lands on
whichever replica holds the socket. ``emitter`` is the Socket.IO server once sockets are attached;
without it (a process with no sockets) pushes are skipped.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Protocol

import redis.asyncio as aioredis


CUSTOMER_NS = "/customer"
AGENT_NS = "/agent"
SUPERVISORS = "supervisors"
AGENTS = "agents"


class Emitter(Protocol):
    async def emit(
        self, event: str, data: Any = None, *, to: Any = None, namespace: str | None = None, skip_sid: Any = None
    ) -> None: ...

    async def enter_room(self, sid: str, room: str, namespace: str | None = None) -> None: ...

    async def leave_room(self, sid: str, room: str, namespace: str | None = None) -> None: ...


def session_room(session_id: Any) -> str:
    return f"session:{session_id}"


def customer_room(user_id: Any) -> str:
    return f"customer:{user_id}"


def agent_room(user_id: Any) -> str:
    return f"agent:{user_id}"


def department_room(name: str) -> str:
    return f"department:{name}"


def availability_room(name: str) -> str:
    """Widgets (customer sockets) watching a department's chat availability."""
    return f"availability:{name}"


class Live:
    def __init__(self, redis: aioredis.Redis, *, presence_ttl_seconds: float = 30.0):
        self.redis = redis
        self.emitter: Emitter | None = None
        self.presence_ttl = presence_ttl_seconds
        self._local: dict[str, tuple[str, Any]] = {}  # this process's sockets: sid -> (namespace, user_id)

    # ------------------------------------------------------------ presence

    @staticmethod
    def _presence_key(namespace: str, user_id: Any) -> str:
        return f"presence:{namespace.strip('/')}:{user_id}"

    async def register_socket(self, namespace: str, user_id: Any, sid: str) -> None:
        key = self._presence_key(namespace, user_id)
        self._local[sid] = (namespace, user_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(key, {sid: time.time() + self.presence_ttl})
            pipe.expire(key, int(self.presence_ttl * 4))
            await pipe.execute()

    async def unregister_socket(self, namespace: str, user_id: Any, sid: str) -> None:
        self._local.pop(sid, None)
        await self.redis.zrem(self._presence_key(namespace, user_id), sid)

    def local_sockets(self) -> list[tuple[str, Any, str]]:
        """(namespace, user_id, sid) of the sockets registered in this process: what its
        presence heartbeat (app/duties.py) refreshes."""
        return [(ns, user_id, sid) for sid, (ns, user_id) in self._local.items()]

    async def heartbeat(self, sockets: list[tuple[str, Any, str]]) -> None:
        """Refresh the expiry of this replica's sockets ((namespace, user_id, sid) triples)."""
        if not sockets:
            return
        expiry = time.time() + self.presence_ttl
        async with self.redis.pipeline(transaction=False) as pipe:
            for namespace, user_id, sid in sockets:
                key = self._presence_key(namespace, user_id)
                pipe.zadd(key, {sid: expiry})
                pipe.expire(key, int(self.presence_ttl * 4))
            await pipe.execute()

    async def sockets_of(self, namespace: str, user_id: Any) -> list[str]:
        """Live socket ids of a user on every replica (expired entries are dropped)."""
        key = self._presence_key(namespace, user_id)
        now = time.time()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(key, "-inf", now)
            pipe.zrange(key, 0, -1)
            _, sids = await pipe.execute()
        return list(sids)

    async def is_connected(self, namespace: str, user_id: Any) -> bool:
        return bool(await self.sockets_of(namespace, user_id))

    # ------------------------------------------------------------ pushes

    async def emit(self, event: str, data: Any, *, to: Any, namespace: str, skip_sid: str | None = None) -> None:
        if self.emitter is not None:
            # UUIDs, times and decimals are left to the encoders (orjson in sockets/).
            await self.emitter.emit(event, data, to=to, namespace=namespace, skip_sid=skip_sid)

    async def to_session(self, session_id: uuid.UUID, event: str, data: Any, *, skip_sid: str | None = None) -> None:
        """Both parties (and supervisors watching) of a session, on every replica."""
        room = session_room(session_id)
        both = getattr(self.emitter, "emit_in_namespaces", None)  # one push for both sides
        if both is not None:
            await both(event, data, to=room, namespaces=[CUSTOMER_NS, AGENT_NS], skip_sid=skip_sid)
            return
        await self.emit(event, data, to=room, namespace=CUSTOMER_NS, skip_sid=skip_sid)
        await self.emit(event, data, to=room, namespace=AGENT_NS, skip_sid=skip_sid)

    async def to_customer(self, user_id: Any, event: str, data: Any) -> None:
        await self.emit(event, data, to=customer_room(user_id), namespace=CUSTOMER_NS)

    async def to_agent(self, user_id: Any, event: str, data: Any) -> None:
        await self.emit(event, data, to=agent_room(user_id), namespace=AGENT_NS)

    async def to_agents(self, event: str, data: Any, *, department: str | None = None) -> None:
        """Agents of a department and all supervisors, or every agent when no department."""
        rooms = [department_room(department), SUPERVISORS] if department else [AGENTS]
        await self.emit(event, data, to=rooms, namespace=AGENT_NS)

    async def join(self, namespace: str, user_id: Any, room: str) -> None:
        """Put every socket of the user, on any replica, into ``room``."""
        if self.emitter is None:
            return
        for sid in await self.sockets_of(namespace, user_id):
            await self.emitter.enter_room(sid, room, namespace=namespace)

    async def leave(self, namespace: str, user_id: Any, room: str) -> None:
        if self.emitter is None:
            return
        for sid in await self.sockets_of(namespace, user_id):
            await self.emitter.leave_room(sid, room, namespace=namespace)
