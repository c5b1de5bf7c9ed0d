#!/usr/bin/env python
"""Chat load generator: R rooms, each one customer and one agent on real Socket.IO clients.

Every client is a python-socketio ``AsyncClient`` on the websocket transport. Per room: the
agent connects to ``/agent`` and sends ``agent:status online``; the customer connects to
``/customer`` and sends ``chat:start`` in the run's department; once the chat is assigned both
sides send ``chat:message`` (unique ``client_msg_id``) at ``--rate`` messages per second per room,
alternating customer and agent. Each receiver records when the other side's message arrives live;
at the end both sides ``chat:sync`` from seq 0 and every acknowledged message must be there
exactly once with consecutive seqs. Then the chats are ended and the clients disconnect.

Prints ONE JSON line on stdout (progress goes to stderr)::

    {replicas, rooms, rate, duration, connections_per_s, connect_seconds, sent, delivered,
     delivered_per_s, latency_ms: {p50, p95, p99}, ack_ms: {p50, p95, p99}, lost, duplicates,
     errors, ...diagnostics}

- ``latency_ms``: from the sender's emit to the other party's ``chat:message`` (both clients of
  a room live in the same process, so one monotonic clock measures both ends).
- ``ack_ms``: from the emit to the sender's ack (the server acks after the commit).
- ``lost``: acknowledged messages that the other party did not receive live although its socket
  stayed connected, or that are missing from either side's ``chat:sync``. A client the server
  dropped (``clients_dropped``, e.g. a missed ping under overload) reconnects as the same user
  for its sync, as a real client would; what it missed live is ``undelivered_dropped``, not lost,
  but it must be in the sync. ``duplicates``: live deliveries beyond the first plus repeated ids
  in a sync. ``lost`` and ``duplicates`` must be 0; anything else is a server bug.
- Before the clock starts the generator waits until the set-up's broadcasts stop arriving
  (``--settle``): every agent status change is pushed to every agent, so R agents coming online
  cost the server O(R²) packets (``setup_broadcasts_received``) and that backlog must not be
  measured as message latency.
- ``sent``/``delivered``/latencies count messages emitted after the warm-up; loss and duplicate
  checks cover every message, warm-up included.

Replicas: ``--url`` takes one or more comma-separated base URLs. Rooms are spread round-robin
over them; with two or more URLs the agent of a room is on the next replica after its customer's.
To make that hold whatever agent the router picks, a department is made per (worker, agent
replica): ``bench-<run id>-w<worker>-r<replica>``; all its agents are on one replica and all its
customers on another. Agents (max_chats=1) are inserted into ``support_agents`` directly.

``--workers N`` splits the rooms over N processes (one event loop each); both clients of a room
always live in the same worker. The JSON has ``client_cpu`` (CPU seconds per wall second of each
worker): near 1.0 means the generator, not the server, is the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import gc
import json
import math
import multiprocessing as mp
import os
import random
import secrets
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CUSTOMER_NS = "/customer"
AGENT_NS = "/agent"
SYNC_PAGE = 1000


def log(*parts: Any) -> None:
    print(f"[chat_load {time.strftime('%H:%M:%S')}]", *parts, file=sys.stderr, flush=True)


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))], 2)

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": round(ordered[-1], 2)}


# ---------------------------------------------------------------- parent: setup


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--url", required=True, help="base URL(s) of the replicas, comma-separated")
    p.add_argument("--rooms", type=int, default=100, help="rooms (one customer + one agent each)")
    p.add_argument("--rate", type=float, default=1.0, help="messages per second per room (both sides together)")
    p.add_argument("--duration", type=float, default=20.0, help="measured seconds of messaging")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds of messaging before measuring")
    p.add_argument("--secret", default=os.environ.get("JWT_SECRET"), help="JWT_SECRET of the server (HS256)")
    p.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="the server's database, to create the benchmark's agents",
    )
    p.add_argument("--path", default="/ws/chat", help="WEBSOCKET_ENDPOINT of the server")
    p.add_argument("--workers", type=int, default=1, help="generator processes (rooms are split over them)")
    p.add_argument("--connect-concurrency", type=int, default=64, help="connects in flight (over all workers)")
    p.add_argument("--message-bytes", type=int, default=120, help="approximate message body size")
    p.add_argument("--ack-timeout", type=float, default=30.0, help="seconds to wait for an ack")
    p.add_argument("--assign-timeout", type=float, default=120.0, help="seconds to wait until every chat is assigned")
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=15.0,
        help="seconds after the last send to wait for outstanding deliveries",
    )
    p.add_argument(
        "--settle",
        type=float,
        default=2.0,
        help="after set-up, wait until no broadcast has arrived for this many seconds",
    )
    p.add_argument("--settle-max", type=float, default=120.0, help="longest wait for the set-up to settle")
    p.add_argument(
        "--self-test-drop",
        type=float,
        default=0.0,
        help="ignore this fraction of live deliveries, to check that the loss detector reports them",
    )
    p.add_argument("--keep-agents", action="store_true", help="do not delete the benchmark's agent rows at the end")
    p.add_argument("--label", default=None, help="free text copied into the JSON line")
    p.add_argument(
        "--move",
        action="store_true",
        help="clients the server disconnects move to the next replica that answers and sync what they "
        "missed; failed sends are resent with the same client_msg_id until acked (a rolling restart)",
    )
    p.add_argument("--move-timeout", type=float, default=60.0, help="with --move: how long a send may keep retrying")
    p.add_argument("--samples", default=None, help="write one JSON line per message (send time, ack, latency) here")
    args = p.parse_args(argv)
    args.urls = [u.strip().rstrip("/") for u in args.url.split(",") if u.strip()]
    if not args.urls:
        p.error("--url needs at least one URL")
    for u in args.urls:
        host = u.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
        if host not in ("127.0.0.1", "localhost", "::1"):
            p.error(f"load only targets this machine (127.0.0.1); got {u}")
    if not args.secret:
        p.error("--secret (or JWT_SECRET) is required")
    if not args.database_url:
        p.error("--database-url (or DATABASE_URL) is required")
    if args.rooms < 1 or args.rate <= 0 or args.duration <= 0 or args.workers < 1:
        p.error("--rooms, --rate, --duration and --workers must be positive")
    args.workers = min(args.workers, args.rooms)
    return args


def plan_rooms(args: argparse.Namespace, run_id: str) -> list[list[dict]]:
    """Room specs per worker: users, tokens, replicas and department."""
    from app.auth import issue_token

    n = len(args.urls)
    ttl = int(args.assign_timeout + args.warmup + args.duration + args.drain_timeout + 3600)
    per_worker: list[list[dict]] = [[] for _ in range(args.workers)]
    for i in range(args.rooms):
        worker = i % args.workers
        c_rep = i % n
        a_rep = (c_rep + 1) % n if n > 1 else c_rep
        customer, agent = uuid.uuid4(), uuid.uuid4()
        per_worker[worker].append(
            {
                "index": i,
                "department": f"bench-{run_id}-w{worker}-r{a_rep}",
                "customer_id": str(customer),
                "agent_id": str(agent),
                "customer_url": args.urls[c_rep],
                "agent_url": args.urls[a_rep],
                "customer_token": issue_token(args.secret, customer, "customer", ttl=ttl, name=f"Bench customer {i}"),
                "agent_token": issue_token(args.secret, agent, "agent", ttl=ttl, name=f"Bench agent {i}"),
            }
        )
    return per_worker


async def create_agents(dsn: str, rooms: list[dict]) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.executemany(
            """INSERT INTO support_agents (user_id, display_name, role, department, max_chats, status,
                                           is_online, is_available)
               VALUES ($1, $2, 'agent', $3, 1, 'offline', FALSE, TRUE)""",
            [(uuid.UUID(r["agent_id"]), f"Bench agent {r['index']}", r["department"]) for r in rooms],
        )
    finally:
        await conn.close()


async def delete_agents(dsn: str, run_id: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        status = await conn.execute("DELETE FROM support_agents WHERE department LIKE $1", f"bench-{run_id}-%")
        return int(status.split()[-1])
    finally:
        await conn.close()


# ---------------------------------------------------------------- worker


class Sent:
    __slots__ = (
        "room",
        "side",
        "t_send",
        "t_wall",
        "warm",
        "t_ack",
        "seq",
        "id",
        "deliveries",
        "t_deliv",
        "recovered",
        "attempts",
    )

    def __init__(self, room: "Room", side: str, warm: bool):
        self.room, self.side, self.warm = room, side, warm
        self.t_send = self.t_ack = self.t_deliv = self.t_wall = 0.0
        self.seq = self.id = None
        self.deliveries = 0
        self.recovered = False  # not pushed live; the receiver got it by chat:sync after a move or chat:resync
        self.attempts = 0


class Room:
    __slots__ = ("spec", "customer", "agent", "serving", "session_id", "assigned", "cust_sync", "agent_sync")

    def __init__(self, spec: dict):
        self.spec = spec
        self.customer = self.agent = None
        self.serving = None  # the agent client that got this room's chat (maybe another room's agent)
        self.session_id: str | None = None
        self.assigned = asyncio.Event()
        self.cust_sync: list | None = None
        self.agent_sync: list | None = None


class Worker:
    def __init__(self, wid: int, args: dict, specs: list[dict], pipe: Any):
        self.wid, self.args, self.pipe = wid, args, pipe
        self.rooms = [Room(s) for s in specs]
        self.sent: dict[str, Sent] = {}
        self.errors: collections.Counter = collections.Counter()
        self.unexpected = 0
        self.echoes = 0
        self.rooms_by_session: dict[str, Room] = {}
        self.agent_sessions: dict[int, str] = {}  # room index of the agent -> session it got
        self.pending: set[asyncio.Task] = set()
        self.measuring = False
        self.disconnects_during_run = 0
        self.disconnects: collections.Counter = collections.Counter()  # phase:reason -> count
        self.dropped: set[int] = set()  # id() of clients the server disconnected
        self.origin: dict[int, tuple] = {}  # id(client) -> (url, token, namespace)
        self.phase = "setup"
        self.control_events: collections.Counter = collections.Counter()
        self.last_control = time.monotonic()
        self.lags: list[float] = []
        self.pad = "x" * max(0, int(args["message_bytes"]) - 60)
        self.drop_rate = float(args.get("self_test_drop") or 0.0)
        # --move: the client each original client has become (id(original) -> client), moves
        self.move = bool(args.get("move"))
        self.live: dict[int, Any] = {}
        self.moving: set[int] = set()
        self.moves = 0
        self.move_ms: list[float] = []
        self.resyncs = 0
        self.seen: dict[tuple[int, str], int] = {}  # (id(original client), session) -> highest seq had

    # -------------------------------------------------- plumbing

    async def recv(self) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, self.pipe.recv)

    def make_client(self, session: Any) -> Any:
        import socketio

        return socketio.AsyncClient(reconnection=False, handle_sigint=False, http_session=session, request_timeout=30)

    async def lag_monitor(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(0.05)
            if self.measuring:
                self.lags.append(max(0.0, (loop.time() - t - 0.05) * 1000))

    # -------------------------------------------------- connecting

    def cur(self, client: Any) -> Any:
        """With --move, the socket an original client has moved to (itself until it moves)."""
        return self.live.get(id(client), client)

    def wire(self, room: Room, client: Any, side: str, identity: Any = None) -> None:
        ns = CUSTOMER_NS if side == "customer" else AGENT_NS
        identity = client if identity is None else identity  # the original client this socket stands for

        def on_message(data: Any) -> None:
            now = time.perf_counter()
            rec = self.sent.get(data.get("client_msg_id")) if isinstance(data, dict) else None
            if rec is None:
                self.unexpected += 1
                return
            key = (id(identity), data.get("session_id"))
            if isinstance(data.get("seq"), int) and data["seq"] > self.seen.get(key, 0):
                self.seen[key] = data["seq"]
            if rec.side == side:
                self.echoes += 1  # a sender must not hear its own message back on the same socket
                return
            if self.drop_rate and random.random() < self.drop_rate:
                return  # --self-test-drop: pretend it never arrived
            rec.deliveries += 1
            if rec.deliveries == 1:
                rec.t_deliv = now

        def on_assigned(data: Any) -> None:
            session = (data or {}).get("session") or {}
            if side == "agent":
                self.agent_sessions[room.spec["index"]] = session.get("id")
                other = self.rooms_by_session.get(session.get("id"))
                if other is not None:
                    other.assigned.set()
            elif room.session_id and session.get("id") == room.session_id:
                room.assigned.set()

        def on_disconnect(reason: Any = None) -> None:
            if self.phase == "teardown" or self.cur(identity) is not client:
                return
            self.dropped.add(id(identity))
            self.disconnects[f"{self.phase}:{reason}"] += 1
            if self.measuring:
                self.disconnects_during_run += 1
            if self.move and self.phase in ("warmup", "measure", "drain") and id(identity) not in self.moving:
                self.moving.add(id(identity))
                task = asyncio.create_task(self.move_client(room, identity, side))
                self.pending.add(task)
                task.add_done_callback(self.pending.discard)

        def on_resync(data: Any = None) -> None:
            self.resyncs += 1
            ids = (data or {}).get("session_ids") or [] if isinstance(data, dict) else []
            for session_id in ids:
                task = asyncio.create_task(self.recover(client, ns, side, session_id, identity))
                self.pending.add(task)
                task.add_done_callback(self.pending.discard)

        def on_other(event: str, *_: Any) -> None:
            # presence:updated, queue:updated, chat:session, ...: counted, and their end marks
            # the end of the set-up storm (see settle)
            self.control_events[event] += 1
            self.last_control = time.monotonic()

        client.on("chat:message", on_message, namespace=ns)
        client.on("chat:assigned", on_assigned, namespace=ns)
        client.on("disconnect", on_disconnect, namespace=ns)
        client.on("chat:resync", on_resync, namespace=ns)
        client.on("*", on_other, namespace=ns)

    async def connect_one(self, session: Any, sem: asyncio.Semaphore, room: Room, side: str) -> float | None:
        ns = CUSTOMER_NS if side == "customer" else AGENT_NS
        client = self.make_client(session)
        self.wire(room, client, side)
        async with sem:
            t = time.perf_counter()
            try:
                await client.connect(
                    room.spec[f"{side}_url"],
                    namespaces=[ns],
                    transports=["websocket"],
                    socketio_path=self.args["path"],
                    auth={"token": room.spec[f"{side}_token"]},
                    wait_timeout=30,
                    retry=False,
                )
            except Exception as exc:
                self.errors[f"connect:{type(exc).__name__}:{str(exc)[:60]}"] += 1
                return None
            elapsed = time.perf_counter() - t
        setattr(room, side, client)
        self.origin[id(client)] = (room.spec[f"{side}_url"], room.spec[f"{side}_token"], ns)
        return elapsed

    async def move_client(self, room: Room, identity: Any, side: str) -> None:
        """--move: what the widget and console do when their replica goes: reconnect at once to the
        next replica that answers (round robin from the one that went), then chat:sync every chat
        of this client to pick up what it missed."""
        ns = CUSTOMER_NS if side == "customer" else AGENT_NS
        t0 = time.perf_counter()
        url, token, _ = self.origin[id(identity)]
        urls = self.args["urls"]
        start = (urls.index(url) + 1) % len(urls) if url in urls else 0
        order = urls[start:] + urls[:start]
        deadline = t0 + self.args["move_timeout"]
        try:
            while time.perf_counter() < deadline and self.phase in ("warmup", "measure", "drain"):
                for target in order:
                    fresh = self.make_client(self.http)
                    self.wire(room, fresh, side, identity)
                    try:
                        await fresh.connect(
                            target,
                            namespaces=[ns],
                            transports=["websocket"],
                            socketio_path=self.args["path"],
                            auth={"token": token},
                            wait_timeout=5,
                            retry=False,
                        )
                    except Exception as exc:
                        self.errors[f"move:{type(exc).__name__}"] += 1
                        continue
                    self.live[id(identity)] = fresh
                    self.origin[id(identity)] = (target, token, ns)
                    self.moves += 1
                    self.move_ms.append((time.perf_counter() - t0) * 1000)
                    for r, serving in self.active:
                        if r.customer is identity or serving is identity:
                            await self.recover(fresh, ns, side, r.session_id, identity)
                    return
                await asyncio.sleep(0.2)
            self.errors["move:gave_up"] += 1
        finally:
            self.moving.discard(id(identity))

    async def recover(self, client: Any, ns: str, side: str, session_id: str, identity: Any) -> None:
        """chat:sync a chat from the last seq this client had, after a move or a chat:resync: the
        other side's messages it has not had live count as delivered now (``recovered``)."""
        key = (id(identity), session_id)
        messages = await self.sync_all(client, ns, session_id, self.seen.get(key, 0))
        now = time.perf_counter()
        for m in messages or ():
            if m.get("seq", 0) > self.seen.get(key, 0):
                self.seen[key] = m["seq"]
            rec = self.sent.get(m.get("client_msg_id"))
            if rec is not None and rec.side != side and rec.deliveries == 0 and not rec.recovered:
                rec.recovered, rec.t_deliv = True, now

    async def call(self, client: Any, event: str, data: dict, ns: str, timeout: float | None = None) -> dict | None:
        return (await self.call_ex(client, event, data, ns, timeout))[0]

    async def call_ex(
        self, client: Any, event: str, data: dict, ns: str, timeout: float | None = None
    ) -> tuple[dict | None, dict]:
        """(data, {}) on success, (None, the ack's error or {}) otherwise; failures counted by code."""
        try:
            resp = await client.call(event, data, namespace=ns, timeout=timeout or self.args["ack_timeout"])
        except Exception as exc:
            self.errors[f"{event}:{type(exc).__name__}"] += 1
            return None, {}
        if not isinstance(resp, dict) or not resp.get("ok"):
            error = (resp or {}).get("error") or {} if isinstance(resp, dict) else {}
            self.errors[f"{event}:{error.get('code', 'bad_ack')}"] += 1
            return None, error if isinstance(error, dict) else {}
        return resp["data"], {}

    async def setup(self) -> dict:
        import aiohttp

        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=False))
        sem = asyncio.Semaphore(max(1, self.args["connect_concurrency"] // self.args["workers"]))
        t_connect_start = time.time()
        durations = await asyncio.gather(
            *[self.connect_one(self.http, sem, r, side) for r in self.rooms for side in ("agent", "customer")]
        )
        t_connect_end = time.time()
        connect_ms = [d * 1000 for d in durations if d is not None]
        # agents online, then customers start chats
        t_assign_start = time.time()
        sem = asyncio.Semaphore(64)

        async def online(room: Room) -> None:
            if room.agent is not None:
                async with sem:
                    await self.call(room.agent, "agent:status", {"status": "online"}, AGENT_NS)

        await asyncio.gather(*[online(r) for r in self.rooms])

        async def start(room: Room) -> None:
            if room.customer is None:
                return
            async with sem:
                data = await self.call(
                    room.customer, "chat:start", {"department": room.spec["department"]}, CUSTOMER_NS
                )
            if data is None:
                return
            session = data["session"]
            room.session_id = session["id"]
            self.rooms_by_session[session["id"]] = room
            if session.get("status") == "active" or session["id"] in self.agent_sessions.values():
                room.assigned.set()

        await asyncio.gather(*[start(r) for r in self.rooms])
        waiting = [r for r in self.rooms if r.session_id]
        try:
            await asyncio.wait_for(
                asyncio.gather(*[r.assigned.wait() for r in waiting]), timeout=self.args["assign_timeout"]
            )
        except asyncio.TimeoutError:
            pass
        # wait until every agent has heard of its chat too (the agent's chat:assigned)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(self.agent_sessions) < len(waiting):
            await asyncio.sleep(0.05)
        agent_of = {sid: idx for idx, sid in self.agent_sessions.items()}
        by_index = {r.spec["index"]: r for r in self.rooms}
        self.active: list[tuple[Room, Any]] = []  # (room of the customer, agent client serving it)
        for room in waiting:
            idx = agent_of.get(room.session_id)
            if room.assigned.is_set() and idx is not None and by_index[idx].agent is not None:
                room.serving = by_index[idx].agent
                self.active.append((room, room.serving))
            else:
                self.errors["unassigned"] += 1
        t_assign_end = time.time()
        settle = await self.settle()
        return {
            "t_connect_start": t_connect_start,
            "t_connect_end": t_connect_end,
            "connected": len(connect_ms),
            "connect_ms": connect_ms,
            "assign_seconds": t_assign_end - t_assign_start,
            "settle_seconds": settle,
            "active": len(self.active),
            "control_events": dict(self.control_events),
        }

    async def settle(self) -> float:
        """Wait until the set-up's broadcasts (presence:updated to every agent per status change,
        queue:updated, chat:session) stop arriving, so the measured window does not include the
        server working off that backlog. Quiet for ``settle`` seconds, at most ``settle_max``."""
        t0 = time.monotonic()
        quiet, limit = self.args["settle"], t0 + self.args["settle_max"]
        while time.monotonic() < limit:
            if time.monotonic() - self.last_control >= quiet:
                break
            await asyncio.sleep(0.1)
        else:
            self.errors["settle_timeout"] += 1
        return time.monotonic() - t0

    # -------------------------------------------------- messaging

    async def send(self, room: Room, client: Any, side: str, k: int, warm: bool) -> None:
        ns = CUSTOMER_NS if side == "customer" else AGENT_NS
        cmid = f"{self.args['run_id']}-{room.spec['index']}-{k}"
        rec = Sent(room, side, warm)
        self.sent[cmid] = rec
        text = f"bench {cmid} {side} t={time.time():.6f} {self.pad}"
        rec.t_send, rec.t_wall = time.perf_counter(), time.time()
        payload = {"session_id": room.session_id, "client_msg_id": cmid, "message": text}
        deadline = rec.t_send + self.args["move_timeout"]
        backoff = 0.2
        while True:
            current = self.cur(client)
            if not current.connected:  # moving: resend once the client is on another replica
                data = None
                if not self.move or time.perf_counter() > deadline:
                    break
                await asyncio.sleep(0.05)
                continue
            rec.attempts += 1
            data, error = await self.call_ex(current, "chat:message", payload, ns)
            if data is not None or not self.move or time.perf_counter() > deadline:
                break
            # resent with the same client_msg_id, as the widget does: after retry_after_ms when the
            # server gives one, else a doubling back-off with jitter (no retry storm)
            hint = ((error.get("details") or {}).get("retry_after_ms") or 0) / 1000
            await asyncio.sleep(max(hint, backoff) * (0.5 + random.random()))
            backoff = min(backoff * 2, 5.0)
        if data is None:
            return
        rec.t_ack = time.perf_counter()
        rec.seq, rec.id = data["message"]["seq"], data["message"]["id"]

    async def room_loop(self, room: Room, agent: Any, t0: float, t_warm: float, t_end: float) -> None:
        interval = 1.0 / self.args["rate"]
        t = t0 + random.random() * interval
        k = 0
        while t < t_end:
            delay = t - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            side = "customer" if k % 2 == 0 else "agent"
            task = asyncio.create_task(
                self.send(room, room.customer if side == "customer" else agent, side, k, t < t_warm)
            )
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)
            k += 1
            t += interval

    async def run(self, start_wall: float) -> dict:
        gc.collect()
        gc.freeze()  # the generator's own pauses must not look like server latency
        gc.set_threshold(50_000, 50, 100)
        lag_task = asyncio.create_task(self.lag_monitor())
        await asyncio.sleep(max(0.0, start_wall - time.time()))
        t0 = time.perf_counter()
        t_warm, t_end = t0 + self.args["warmup"], t0 + self.args["warmup"] + self.args["duration"]
        self.phase = "warmup"
        loops = [asyncio.create_task(self.room_loop(r, a, t0, t_warm, t_end)) for r, a in self.active]
        await asyncio.sleep(max(0.0, t_warm - time.perf_counter()))
        self.measuring = True
        self.phase = "measure"
        cpu_m0, wall_m0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*loops)
        cpu_m1, wall_m1 = time.process_time(), time.perf_counter()
        self.measuring = False
        self.phase = "drain"
        # outstanding acks, then outstanding live deliveries
        if self.pending:  # with --move a send may retry for move_timeout
            await asyncio.wait(
                set(self.pending),
                timeout=self.args["ack_timeout"] + 5 + (self.args["move_timeout"] if self.move else 0),
            )
        deadline = time.perf_counter() + self.args["drain_timeout"]
        while time.perf_counter() < deadline:
            if all(r.deliveries for r in self.sent.values() if r.id is not None):
                break
            await asyncio.sleep(0.1)
        drain_s = time.perf_counter() - wall_m1
        lag_task.cancel()
        self.phase = "verify"
        checks = await self.verify()
        self.phase = "teardown"
        await self.finish()
        return self.summarise(checks, drain_s, (cpu_m1 - cpu_m0) / max(1e-9, wall_m1 - wall_m0))

    # -------------------------------------------------- verification and teardown

    async def sync_all(self, client: Any, ns: str, session_id: str, after: int = 0) -> list | None:
        messages: list = []
        while True:
            data = await self.call(client, "chat:sync", {"session_id": session_id, "after_seq": after}, ns, timeout=60)
            if data is None:
                return None
            page = data["messages"]
            messages.extend(page)
            if len(page) < SYNC_PAGE:
                return messages
            after = page[-1]["seq"]

    async def verify(self) -> dict:
        sem = asyncio.Semaphore(32)

        async def synced(client: Any, ns: str, session_id: str) -> list | None:
            current = self.cur(client)
            if (id(client) not in self.dropped or current is not client) and current.connected:
                return await self.sync_all(current, ns, session_id)
            # the server dropped this client: reconnect as the same user, then sync (the recovery
            # path a real client takes)
            url, token, ns = self.origin[id(client)]
            fresh = self.make_client(self.http)
            try:
                await fresh.connect(
                    url,
                    namespaces=[ns],
                    transports=["websocket"],
                    socketio_path=self.args["path"],
                    auth={"token": token},
                    wait_timeout=30,
                    retry=False,
                )
            except Exception as exc:
                self.errors[f"reconnect:{type(exc).__name__}"] += 1
                return None
            try:
                return await self.sync_all(fresh, ns, session_id)
            finally:
                with contextlib.suppress(Exception):
                    await fresh.disconnect()

        async def one(room: Room, agent: Any) -> None:
            async with sem:
                room.cust_sync = await synced(room.customer, CUSTOMER_NS, room.session_id)
                room.agent_sync = await synced(agent, AGENT_NS, room.session_id)

        await asyncio.gather(*[one(r, a) for r, a in self.active])
        seq_errors = sync_duplicates = missing_in_sync = lost = lost_live = unacked_stored = 0
        undelivered_dropped = sync_failed = 0
        acked_by_room: dict[int, list[Sent]] = collections.defaultdict(list)
        for rec in self.sent.values():
            if rec.id is not None:
                acked_by_room[rec.room.spec["index"]].append(rec)
        for room, _ in self.active:
            counters = []
            for messages in (room.cust_sync, room.agent_sync):
                counter: collections.Counter = collections.Counter()
                if messages is not None:
                    seqs = [m["seq"] for m in messages]
                    if seqs != list(range(1, len(seqs) + 1)):
                        seq_errors += 1
                    counter.update(m["id"] for m in messages)
                    sync_duplicates += sum(c - 1 for c in counter.values() if c > 1)
                else:
                    sync_failed += 1
                counters.append((messages is not None, counter))
            acked_ids = set()
            for rec in acked_by_room.get(room.spec["index"], ()):
                acked_ids.add(rec.id)
                missing = sum(1 for ok, c in counters if ok and c[rec.id] == 0)
                missing_in_sync += missing
                receiver = room.serving if rec.side == "customer" else room.customer
                receiver_dropped = id(receiver) in self.dropped
                delivered = rec.deliveries > 0 or rec.recovered
                if not delivered and receiver_dropped:
                    undelivered_dropped += 1  # expected: the receiver recovers it with chat:sync
                elif not delivered:
                    lost_live += 1
                if (not delivered and not receiver_dropped) or missing:
                    lost += 1
            if counters and counters[0][0]:
                unacked_stored += sum(1 for mid in counters[0][1] if mid not in acked_ids)
        live_dups = sum(r.deliveries - 1 for r in self.sent.values() if r.deliveries > 1)
        return {
            "seq_errors": seq_errors,
            "sync_duplicates": sync_duplicates,
            "missing_in_sync": missing_in_sync,
            "lost": lost,
            "lost_live": lost_live,
            "live_duplicates": live_dups,
            "unacked_stored": unacked_stored,
            "undelivered_dropped": undelivered_dropped,
            "sync_failed": sync_failed,
        }

    async def finish(self) -> None:
        sem = asyncio.Semaphore(64)

        async def end(room: Room) -> None:
            async with sem:
                if room.customer is not None and room.session_id:
                    await self.call(
                        self.cur(room.customer), "chat:end", {"session_id": room.session_id}, CUSTOMER_NS, timeout=30
                    )

        errors_before = sum(self.errors.values())
        await asyncio.gather(*[end(r) for r in self.rooms])
        self.end_errors = sum(self.errors.values()) - errors_before

        async def close(client: Any) -> None:
            try:
                await asyncio.wait_for(client.disconnect(), 10)
            except Exception:
                pass

        await asyncio.gather(*[close(self.cur(c)) for r in self.rooms for c in (r.customer, r.agent) if c is not None])
        await self.http.close()

    def summarise(self, checks: dict, drain_s: float, cpu_fraction: float) -> dict:
        measured = [r for r in self.sent.values() if not r.warm]
        return {
            "sent": len(measured),
            "acked": sum(1 for r in measured if r.id is not None),
            "delivered": sum(1 for r in measured if r.deliveries or r.recovered),
            "latency_ms": [(r.t_deliv - r.t_send) * 1000 for r in measured if r.deliveries or r.recovered],
            "ack_ms": [(r.t_ack - r.t_send) * 1000 for r in measured if r.id is not None],
            "sent_total": len(self.sent),
            "errors": dict(self.errors),
            "unexpected": self.unexpected,
            "echoes": self.echoes,
            "disconnects": self.disconnects_during_run,
            "disconnect_kinds": dict(self.disconnects),
            "clients_dropped": len(self.dropped),
            "lag_ms": self.lags,
            "cpu_fraction": cpu_fraction,
            "drain_seconds": drain_s,
            "moves": self.moves,
            "move_ms": self.move_ms,
            "resyncs": self.resyncs,
            "recovered": sum(1 for r in self.sent.values() if r.recovered),
            "resent": sum(1 for r in self.sent.values() if r.attempts > 1),
            "samples": [
                [
                    round(r.t_wall, 3),
                    round((r.t_ack - r.t_send) * 1000, 2) if r.id is not None else None,
                    round((r.t_deliv - r.t_send) * 1000, 2) if (r.deliveries or r.recovered) else None,
                    r.attempts,
                    r.side,
                ]
                for r in self.sent.values()
            ]
            if self.args.get("samples")
            else [],
            **checks,
        }


def worker_main(wid: int, args: dict, specs: list[dict], pipe: Any) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    async def main() -> None:
        w = Worker(wid, args, specs, pipe)
        setup = await w.setup()
        pipe.send(("ready", setup))
        kind, start_wall = await w.recv()
        if kind != "go":
            await w.finish()
            return
        pipe.send(("done", await w.run(start_wall)))

    try:
        asyncio.run(main())
    except Exception as exc:  # report instead of hanging the parent
        import traceback

        traceback.print_exc()
        pipe.send(("failed", f"{type(exc).__name__}: {exc}"))


# ---------------------------------------------------------------- parent: orchestration


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run_id = secrets.token_hex(4)
    per_worker = plan_rooms(args, run_id)
    all_rooms = [r for rooms in per_worker for r in rooms]
    asyncio.run(create_agents(args.database_url, all_rooms))
    log(
        f"run {run_id}: {args.rooms} rooms x {args.rate} msg/s over {len(args.urls)} replica(s), "
        f"{args.workers} worker(s); {args.warmup}s warm-up + {args.duration}s measured"
    )
    shared = {
        "path": args.path,
        "ack_timeout": args.ack_timeout,
        "assign_timeout": args.assign_timeout,
        "drain_timeout": args.drain_timeout,
        "rate": args.rate,
        "warmup": args.warmup,
        "duration": args.duration,
        "message_bytes": args.message_bytes,
        "run_id": run_id,
        "connect_concurrency": args.connect_concurrency,
        "workers": args.workers,
        "settle": args.settle,
        "settle_max": args.settle_max,
        "self_test_drop": args.self_test_drop,
        "move": args.move,
        "move_timeout": args.move_timeout,
        "samples": bool(args.samples),
        "urls": args.urls,
    }
    ctx = mp.get_context("spawn")
    procs, pipes = [], []
    for wid, specs in enumerate(per_worker):
        parent_end, child_end = ctx.Pipe()
        proc = ctx.Process(target=worker_main, args=(wid, shared, specs, child_end), daemon=True)
        proc.start()
        procs.append(proc)
        pipes.append(parent_end)
    hard_deadline = time.time() + args.assign_timeout + args.settle_max + 120 + args.rooms / 20

    def receive(pipe: Any, deadline: float) -> tuple:
        while time.time() < deadline:
            if pipe.poll(0.5):
                return pipe.recv()
        return ("failed", "timed out")

    try:
        setups = [receive(p, hard_deadline) for p in pipes]
        failed = [s[1] for s in setups if s[0] != "ready"]
        if failed:
            raise SystemExit(f"chat_load: a worker failed during setup: {failed}")
        setups = [s[1] for s in setups]
        active = sum(s["active"] for s in setups)
        log(f"connected {sum(s['connected'] for s in setups)}/{2 * args.rooms} sockets, {active} chats active")
        start_wall = time.time() + 0.5
        for p in pipes:
            p.send(("go", start_wall))
        # machine-readable: the measured window in epoch seconds (run_chat_bench.py samples CPU in it)
        log(f"CHAT_LOAD_WINDOW {start_wall + args.warmup:.3f} {start_wall + args.warmup + args.duration:.3f}")
        run_deadline = start_wall + args.warmup + args.duration + 2 * args.ack_timeout + args.drain_timeout + 300
        results = [receive(p, run_deadline) for p in pipes]
        failed = [r[1] for r in results if r[0] != "done"]
        if failed:
            raise SystemExit(f"chat_load: a worker failed: {failed}")
        results = [r[1] for r in results]
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.terminate()
        if not args.keep_agents:
            try:
                asyncio.run(delete_agents(args.database_url, run_id))
            except Exception as exc:
                log(f"could not delete the benchmark's agents: {exc}")

    connect_seconds = max(s["t_connect_end"] for s in setups) - min(s["t_connect_start"] for s in setups)
    connected = sum(s["connected"] for s in setups)
    errors: collections.Counter = collections.Counter()
    for r in results:
        errors.update(r["errors"])
    total = lambda key: sum(r[key] for r in results)  # noqa: E731
    latency = [x for r in results for x in r["latency_ms"]]
    acks = [x for r in results for x in r["ack_ms"]]
    lags = [x for r in results for x in r["lag_ms"]]
    lost = total("lost")
    duplicates = total("live_duplicates") + total("sync_duplicates")
    error_count = (
        sum(errors.values()) + total("echoes") + total("seq_errors") + total("clients_dropped") + total("sync_failed")
    )
    out = {
        "replicas": len(args.urls),
        "rooms": args.rooms,
        "rate": args.rate,
        "duration": args.duration,
        "connections_per_s": round(connected / connect_seconds, 1) if connect_seconds > 0 else None,
        "connect_seconds": round(connect_seconds, 2),
        "sent": total("sent"),
        "delivered": total("delivered"),
        "delivered_per_s": round(total("delivered") / args.duration, 1),
        "latency_ms": {k: v for k, v in percentiles(latency).items()},
        "ack_ms": {k: v for k, v in percentiles(acks).items()},
        "lost": lost,
        "duplicates": duplicates,
        "errors": error_count,
        # diagnostics
        "offered_per_s": round(args.rooms * args.rate, 1),
        "sent_per_s": round(total("sent") / args.duration, 1),
        "acked": total("acked"),
        "active_chats": sum(s["active"] for s in setups),
        "connect_ms": percentiles([x for s in setups for x in s["connect_ms"]]),
        "assign_seconds": round(max(s["assign_seconds"] for s in setups), 2),
        "settle_seconds": round(max(s["settle_seconds"] for s in setups), 2),
        "setup_broadcasts_received": dict(
            sum((collections.Counter(s["control_events"]) for s in setups), collections.Counter())
        ),
        "lost_live": total("lost_live"),
        "missing_in_sync": total("missing_in_sync"),
        "seq_errors": total("seq_errors"),
        "live_duplicates": total("live_duplicates"),
        "sync_duplicates": total("sync_duplicates"),
        "unacked_stored": total("unacked_stored"),
        "echoes": total("echoes"),
        "unexpected": total("unexpected"),
        "disconnects": total("disconnects"),
        "clients_dropped": total("clients_dropped"),
        "undelivered_dropped": total("undelivered_dropped"),
        "sync_failed": total("sync_failed"),
        "moves": total("moves"),
        "move_ms": percentiles([x for r in results for x in r["move_ms"]]),
        "resyncs_received": total("resyncs"),
        "recovered_by_sync": total("recovered"),
        "resent": total("resent"),
        "disconnect_kinds": dict(
            sum((collections.Counter(r["disconnect_kinds"]) for r in results), collections.Counter())
        ),
        "error_kinds": dict(errors),
        "messages_total": total("sent_total"),
        "drain_seconds": round(max(r["drain_seconds"] for r in results), 2),
        "workers": args.workers,
        "client_cpu": [round(r["cpu_fraction"], 2) for r in results],
        "client_loop_lag_ms": percentiles(lags),
        "warmup": args.warmup,
        "message_bytes": args.message_bytes,
        "run_id": run_id,
        "urls": args.urls,
        "label": args.label,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if args.samples:
        with open(args.samples, "w") as fh:
            for r in results:
                for row in r["samples"]:
                    fh.write(json.dumps(row) + "\n")
    if lost or duplicates:
        log(f"!!! {lost} LOST and {duplicates} DUPLICATED messages: these are server bugs")
    print(json.dumps(out), flush=True)
    return 1 if (lost or duplicates) else 0


if __name__ == "__main__":
    sys.exit(main())
