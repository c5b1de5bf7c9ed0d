#!/usr/bin/env python
"""Bare python-socketio relay: the floor the chat server is compared against (issue 12).

    .venv/bin/python bench/bare_relay.py --port 18190 [--max-chats 10]

The same stack as a replica (python-socketio on aiohttp, uvloop) and the same events the load
generator uses, with nothing behind them: no database, no Redis, no validation, no auth check.

- ``/agent`` ``agent:status {status: "online"}``: the agent takes chats (up to ``--max-chats``)
  of the department named in its connect ``auth`` (``{token, department}``; the server ignores
  that key), so a generator's departments keep both ends of a chat in one worker.
- ``/customer`` ``chat:start {department}``: pairs the customer with an online agent of that
  department that has room (round robin), or queues it until one comes online; both sides get
  ``chat:assigned {session}``.
- ``chat:message`` (both namespaces): acked ``{ok: true, data: {message}}`` with the next ``seq``
  and forwarded to the peer socket as ``chat:message``; a repeated ``client_msg_id`` returns the
  same message.
- ``chat:sync``: the session's messages after ``after_seq``, from memory. ``chat:end``: acked.

The user id is read from the JWT's payload without verifying it (the relay measures relaying,
not auth).
"""

from __future__ import annotations

import argparse
import base64
import collections
import datetime
import itertools
import json
import uuid

import socketio
from aiohttp import web
from engineio.async_drivers import aiohttp as eio_aiohttp

CUSTOMER_NS, AGENT_NS = "/customer", "/agent"
SYNC_LIMIT = 1000


def user_of(auth: object) -> str:
    """The ``sub`` of the JWT in the connect packet, unverified; a random id without one."""
    token = auth.get("token") if isinstance(auth, dict) else None
    try:
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"]
    except Exception:
        return str(uuid.uuid4())


class Session:
    __slots__ = ("id", "customer_sid", "agent_sid", "customer_id", "agent_id", "messages", "by_client_id")

    def __init__(self, customer_sid: str, customer_id: str):
        self.id = str(uuid.uuid4())
        self.customer_sid, self.customer_id = customer_sid, customer_id
        self.agent_sid: str | None = None
        self.agent_id: str | None = None
        self.messages: list[dict] = []
        self.by_client_id: dict[str, dict] = {}

    def public(self) -> dict:
        active = self.agent_sid is not None
        return {
            "id": self.id,
            "status": "active" if active else "queued",
            "customer_id": self.customer_id,
            "agent_id": self.agent_id,
            "last_seq": len(self.messages),
        }


def websocket_class(compress: bool) -> type:
    """engine.io's aiohttp websocket with permessage-deflate as a choice, as the server has it
    (WEBSOCKET_COMPRESSION, off by default). aiohttp negotiates deflate whenever the client offers
    it, and Node's client does: a zlib context pair per socket (~85 KB) and a deflate per frame."""

    class WebSocket(eio_aiohttp.WebSocket):
        async def __call__(self, environ: dict) -> web.WebSocketResponse:
            self._sock = web.WebSocketResponse(max_msg_size=self.server.max_http_buffer_size, compress=compress)
            await self._sock.prepare(environ["aiohttp.request"])
            self.environ = environ
            await self.handler(self)
            return self._sock

    return WebSocket


class Relay:
    def __init__(self, max_chats: int, compress: bool = False):
        # the engine settings of the server's replicas (sockets/server.py), so the two compare
        self.sio = socketio.AsyncServer(
            async_mode="aiohttp",
            cors_allowed_origins="*",
            ping_interval=30,
            ping_timeout=15,
            max_http_buffer_size=1_000_000,
            http_compression=compress,
        )
        self.sio.eio._async = {**self.sio.eio._async, "websocket": websocket_class(compress)}
        self.max_chats = max_chats
        self.users: dict[str, str] = {}  # sid -> user id
        self.sessions: dict[str, Session] = {}
        self.customer_session: dict[str, Session] = {}  # customer sid -> open session
        self.load: dict[str, int] = {}  # online agent sid -> chats held
        self.department: dict[str, str | None] = {}  # agent sid -> its department
        self.queues: dict[str | None, collections.deque[Session]] = collections.defaultdict(collections.deque)
        self.turn = itertools.count()
        for ns in (CUSTOMER_NS, AGENT_NS):
            self.sio.on("connect", self.connect, namespace=ns)
            self.sio.on("disconnect", self.disconnect, namespace=ns)
            self.sio.on("chat:message", self.message, namespace=ns)
            self.sio.on("chat:sync", self.sync, namespace=ns)
            self.sio.on("chat:end", self.end, namespace=ns)
        self.sio.on("chat:start", self.start, namespace=CUSTOMER_NS)
        self.sio.on("agent:status", self.status, namespace=AGENT_NS)

    async def connect(self, sid: str, environ: dict, auth: object = None) -> None:
        self.users[sid] = user_of(auth)
        if isinstance(auth, dict):
            self.department[sid] = auth.get("department")

    async def disconnect(self, sid: str, *_: object) -> None:
        self.users.pop(sid, None)
        self.load.pop(sid, None)
        self.department.pop(sid, None)

    # ---------------------------------------------------------------- pairing

    def free_agent(self, department: str | None) -> str | None:
        """An online agent of the department with room, taking turns so chats spread like the
        server's router."""
        free = [s for s, n in self.load.items() if n < self.max_chats and self.department.get(s) == department]
        return free[next(self.turn) % len(free)] if free else None

    async def assign(self, session: Session, agent_sid: str) -> None:
        session.agent_sid, session.agent_id = agent_sid, self.users.get(agent_sid)
        self.load[agent_sid] += 1
        payload = {"session": session.public()}
        await self.sio.emit("chat:assigned", payload, to=session.customer_sid, namespace=CUSTOMER_NS)
        await self.sio.emit("chat:assigned", payload, to=agent_sid, namespace=AGENT_NS)

    async def status(self, sid: str, data: dict) -> dict:
        if data.get("status") == "online":
            self.load.setdefault(sid, 0)
            queue = self.queues[self.department.get(sid)]
            while queue and self.load[sid] < self.max_chats:
                await self.assign(queue.popleft(), sid)
        else:
            self.load.pop(sid, None)
        return {"ok": True, "data": {"agent": {"id": self.users.get(sid), "status": data.get("status")}}}

    async def start(self, sid: str, data: dict) -> dict:
        session = self.customer_session.get(sid)
        if session is None:
            session = Session(sid, self.users.get(sid, ""))
            self.sessions[session.id] = session
            self.customer_session[sid] = session
            agent = self.free_agent(data.get("department"))
            if agent is None:
                self.queues[data.get("department")].append(session)
            else:
                await self.assign(session, agent)
        return {"ok": True, "data": {"session": session.public()}}

    # ---------------------------------------------------------------- messages

    def peer(self, session: Session, sid: str) -> tuple[str | None, str, str]:
        """(peer sid, peer namespace, sender type) for a message sent by ``sid``."""
        if sid == session.customer_sid:
            return session.agent_sid, AGENT_NS, "customer"
        return session.customer_sid, CUSTOMER_NS, "agent"

    async def message(self, sid: str, data: dict) -> dict:
        session = self.sessions.get(data.get("session_id"))
        if session is None:
            return {"ok": False, "error": {"code": "not_found", "message": "no such session"}}
        client_id = data.get("client_msg_id")
        if client_id in session.by_client_id:
            return {"ok": True, "data": {"message": session.by_client_id[client_id]}}
        peer_sid, peer_ns, sender_type = self.peer(session, sid)
        msg = {
            "id": str(uuid.uuid4()),
            "session_id": session.id,
            "seq": len(session.messages) + 1,
            "client_msg_id": client_id,
            "sender_type": sender_type,
            "sender_id": self.users.get(sid),
            "message_type": "text",
            "message": data.get("message"),
            "created_at": datetime.datetime.now(datetime.UTC).isoformat(),
        }
        session.messages.append(msg)
        session.by_client_id[client_id] = msg
        if peer_sid is not None:
            await self.sio.emit("chat:message", msg, to=peer_sid, namespace=peer_ns)
        return {"ok": True, "data": {"message": msg}}

    async def sync(self, sid: str, data: dict) -> dict:
        session = self.sessions.get(data.get("session_id"))
        if session is None:
            return {"ok": False, "error": {"code": "not_found", "message": "no such session"}}
        after = int(data.get("after_seq") or 0)
        page = session.messages[after : after + SYNC_LIMIT]
        more = len(session.messages) > after + SYNC_LIMIT
        return {"ok": True, "data": {"session": session.public(), "messages": page, "has_more": more}}

    async def end(self, sid: str, data: dict) -> dict:
        session = self.sessions.pop(data.get("session_id"), None)
        if session is not None:
            self.customer_session.pop(session.customer_sid, None)
            if session.agent_sid in self.load:
                self.load[session.agent_sid] -= 1
        return {"ok": True, "data": {"session": session.public() if session else None}}


async def ready(_: web.Request) -> web.Response:
    return web.json_response({"status": "ready"})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=18190)
    p.add_argument("--path", default="/ws/chat", help="the Socket.IO path, as WEBSOCKET_ENDPOINT")
    p.add_argument("--max-chats", type=int, default=10, help="chats per online agent")
    p.add_argument("--compress", action="store_true", help="permessage-deflate (the server's default is off)")
    args = p.parse_args()
    relay = Relay(args.max_chats, args.compress)
    app = web.Application()
    relay.sio.attach(app, socketio_path=args.path)
    app.router.add_get("/health/ready", ready)
    import uvloop

    uvloop.install()  # as the server does
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
