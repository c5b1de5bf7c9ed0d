"""Fault injection on two replicas (``python -m app serve`` processes) with a Redis and a
PostgreSQL this module owns, under chat load in both directions across the replicas.

For every fault: no acknowledged message is lost or stored twice (each session's seqs are
1..n without gaps, and the acked ``client_msg_id``s are exactly the stored ones); every acked
message reaches the other party live or, when the fan-out was interrupted, through the
``chat:resync`` → ``chat:sync`` path; the only refusals are ``unavailable`` (never
``internal``); and sending works again within seconds of the dependency returning.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
import socketio

from app.embedded import EmbeddedPostgres
from app.migrate import migrate
from chat_support import Cast, Peer, Replica, free_port, make_agent, new_department, replica_env
from app.config import Settings
from app.context import open_context

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
OUTAGE_SECONDS = float(os.environ.get("FAULT_OUTAGE_SECONDS", "10"))
SETTLE_TIMEOUT = 30.0  # how long delivery may take after a dependency returns before the test fails


class OwnRedis:
    """A redis-server child on a fixed port, stopped (SIGKILL: nothing is saved) and started at will."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    async def start(self) -> None:
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        client = aioredis.Redis(port=self.port)
        try:
            for _ in range(500):
                with contextlib.suppress(Exception):
                    await client.ping()
                    return
                await asyncio.sleep(0.01)
            raise RuntimeError("redis-server did not start")
        finally:
            await client.aclose()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@dataclasses.dataclass
class Stack:
    redis: OwnRedis
    pg: EmbeddedPostgres
    dsn: str
    replicas: list[Replica]
    settings: Settings
    ctx: Any
    flows: list = dataclasses.field(default_factory=list)  # the running load's flows
    tasks: set = dataclasses.field(default_factory=set)  # its resync syncs


@pytest.fixture(scope="module")
async def stack(test_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    base = tmp_path_factory.mktemp("faults")
    redis_server = OwnRedis()
    await redis_server.start()
    pg = EmbeddedPostgres(base / "pg", port=free_port())  # restarts keep the data; removed at the end
    replicas: list[Replica] = []
    try:
        dsn = await asyncio.to_thread(pg.start)
        await migrate(dsn)
        env = {
            **test_env,
            "DATABASE_URL": dsn,
            "REDIS_HOST": "127.0.0.1",
            "REDIS_PORT": str(redis_server.port),
            "REDIS_DATABASE": "0",
        }
        for name in ("A", "B"):
            renv = replica_env(env)
            replica = Replica(
                name, f"http://127.0.0.1:{renv['SERVER_PORT']}", renv, log_path=base / f"replica-{name}.log"
            )
            replica.start()
            replicas.append(replica)
        await asyncio.gather(*(r.wait_ready() for r in replicas))
        settings = Settings.from_env(env)
        async with open_context(settings) as ctx:
            yield Stack(redis_server, pg, dsn, replicas, settings, ctx)
    finally:
        for replica in replicas:
            replica.stop()
        redis_server.stop()
        await asyncio.to_thread(pg.stop)
        await asyncio.to_thread(pg.remove_data)


# ------------------------------------------------------------------ chat load


@dataclasses.dataclass
class Flow:
    """One direction of one chat: ``sender`` writes, ``receiver`` must see every acked message."""

    sender: Peer
    receiver: Peer
    session_id: str
    acked: dict[str, dict] = dataclasses.field(default_factory=dict)  # client_msg_id -> message
    refusals: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    synced: dict[str, dict] = dataclasses.field(default_factory=dict)  # id -> message, via chat:sync
    resyncs: int = 0

    def live(self) -> dict[str, dict]:
        return {m["id"]: m for m in self.receiver.seen("chat:message", lambda d: d["session_id"] == self.session_id)}

    def missing(self) -> set[str]:
        seen = self.live().keys() | self.synced.keys()
        return {m["id"] for m in self.acked.values()} - seen


def follow_resyncs(flow: Flow, tasks: set[asyncio.Task]) -> None:
    """What the widget and console do on ``chat:resync``: ``chat:sync`` the named sessions."""
    peer = flow.receiver

    async def sync() -> None:
        after_seq = 0
        for _ in range(40):
            ack = await peer.call("chat:sync", {"session_id": flow.session_id, "after_seq": after_seq})
            if ack.get("ok"):
                messages = ack["data"]["messages"]
                flow.synced.update({m["id"]: m for m in messages})
                if not ack["data"]["has_more"]:
                    return
                after_seq = messages[-1]["seq"]  # a long chat comes in pages, as the clients read it
                continue
            await asyncio.sleep(0.5)  # the server said unavailable: back off like a client

    async def on_resync(data: Any = None) -> None:
        peer.received.append(("chat:resync", data))
        if flow.session_id in (data or {}).get("session_ids", []):
            flow.resyncs += 1
            task = asyncio.create_task(sync())
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    peer.sio.on("chat:resync", on_resync, namespace=peer.namespace)


async def send_until_stopped(flow: Flow, stop: asyncio.Event) -> None:
    """Send messages one after another; an unanswered or refused one is resent with the same
    client_msg_id until acknowledged (as the widget does)."""
    n = 0
    while not stop.is_set():
        n += 1
        client_msg_id = f"{flow.sender.role}-{n}"
        while True:
            try:
                ack = await flow.sender.call(
                    "chat:message",
                    {"session_id": flow.session_id, "message": f"m{n}", "client_msg_id": client_msg_id},
                    timeout=5,
                )
            except socketio.exceptions.TimeoutError:
                flow.refusals["timeout"] += 1
                continue
            except (socketio.exceptions.BadNamespaceError, socketio.exceptions.DisconnectedError):
                flow.refusals["disconnected"] += 1  # its replica went: wait for the reconnect, resend
                await flow.sender.reconnected.wait()
                if not flow.sender.sio.connected:
                    await asyncio.sleep(0.1)  # not moved yet: back off (never spin the loop)
                continue
            if ack.get("ok"):
                flow.acked[client_msg_id] = ack["data"]["message"]
                break
            code = ack["error"]["code"]
            flow.refusals[code] += 1
            if code not in ("unavailable", "rate_limited"):
                return  # a refusal a client cannot retry: the test fails on it below
            await asyncio.sleep(min(2.0, ack["error"]["details"].get("retry_after_ms", 500) / 1000))


async def chat_flows(stack: Stack, cast: Cast, pairs: int) -> list[Flow]:
    """``pairs`` chats, each with its customer on replica A and its agent on B; every chat is
    two flows (customer → agent and agent → customer), so both replicas send and receive."""
    a, b = stack.replicas
    flows: list[Flow] = []
    department = new_department()
    for _ in range(pairs):
        agent = await cast.staff(await make_agent(stack.ctx, department, max_chats=1), url=b.url)
        customer = await cast.customer(url=a.url)
        session = (await customer.ok("chat:start", {"department": department}))["session"]
        assert session["status"] == "active", session
        await agent.expect("chat:assigned", lambda d, s=session: d["session"]["id"] == s["id"])
        flows += [Flow(customer, agent, session["id"]), Flow(agent, customer, session["id"])]
    return flows


async def run_load(stack: Stack, cast: Cast, fault: Any, pairs: int = 3) -> list[Flow]:
    flows = await chat_flows(stack, cast, pairs)
    tasks: set[asyncio.Task] = set()
    for flow in flows:
        flow.sender.reconnected = asyncio.Event()
        follow_resyncs(flow, tasks)
    stack.flows, stack.tasks = flows, tasks
    stop = asyncio.Event()
    senders = [asyncio.create_task(send_until_stopped(flow, stop)) for flow in flows]
    await _load_while(1.0)
    await fault()
    await _load_while(2.0)
    stop.set()
    await asyncio.gather(*senders)
    await settle(flows)
    await asyncio.gather(*tasks)
    return flows


async def _load_while(seconds: float) -> None:
    await asyncio.sleep(seconds)  # the load runs meanwhile: this is its duration, not a wait for a result


async def settle(flows: list[Flow]) -> None:
    """Wait until every acked message reached its receiver (live or synced), or fail."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while any(flow.missing() for flow in flows):
        if time.monotonic() > deadline:
            report = {f.session_id[:8]: (len(f.missing()), f.resyncs) for f in flows if f.missing()}
            raise AssertionError(f"acked messages never delivered (missing, resyncs): {report}")
        await asyncio.sleep(0.1)


async def check_stored(stack: Stack, flows: list[Flow]) -> int:
    """0 lost, 0 duplicated: the stored messages are exactly the acked ones, seqs 1..n."""
    total = 0
    conn = await asyncpg.connect(stack.dsn)
    try:
        for session_id in {f.session_id for f in flows}:
            rows = await conn.fetch(
                "SELECT seq, sender_id, client_msg_id FROM chat_messages WHERE session_id = $1 "
                "AND sender_type <> 'system' ORDER BY seq",
                uuid.UUID(session_id),
            )
            all_seqs = await conn.fetch(
                "SELECT seq FROM chat_messages WHERE session_id = $1 ORDER BY seq", uuid.UUID(session_id)
            )
            assert [r["seq"] for r in all_seqs] == list(range(1, len(all_seqs) + 1)), "seq gap"
            stored = [(r["sender_id"], r["client_msg_id"]) for r in rows]
            assert len(stored) == len(set(stored)), "a message was stored twice"
            acked = {(f.sender.user_id, cid) for f in flows if f.session_id == session_id for cid in f.acked}
            assert set(stored) == acked, (
                f"stored but not acked: {set(stored) - acked}; acked but not stored: {acked - set(stored)}"
            )
            total += len(stored)
    finally:
        await conn.close()
    return total


def check_refusals(flows: list[Flow]) -> collections.Counter:
    refusals: collections.Counter = sum((f.refusals for f in flows), collections.Counter())
    assert set(refusals) <= {"unavailable", "rate_limited", "timeout", "disconnected"}, refusals
    return refusals


@pytest.fixture
async def cast(stack: Stack) -> AsyncIterator[Cast]:
    group = Cast(stack.replicas[0].url, stack.settings.jwt_secret)
    yield group
    await group.close()


# ------------------------------------------------------------------ the faults


async def test_a_redis_restart_and_outage_lose_nothing_and_pushes_resume_or_resync(stack: Stack, cast: Cast):
    async def restart_then_outage() -> None:
        stack.redis.stop()
        await stack.redis.start()  # a restart: the fan-out breaks for a moment
        await _load_while(2.0)
        stack.redis.stop()
        await _load_while(OUTAGE_SECONDS)  # an outage: sends go on, pushes cannot cross
        await stack.redis.start()

    flows = await run_load(stack, cast, restart_then_outage)
    stored = await check_stored(stack, flows)
    refusals = check_refusals(flows)
    assert stored > 0
    assert any(f.resyncs for f in flows), "no client was told to resync after the outage"
    print(
        f"redis: {stored} messages stored and delivered, refusals {dict(refusals)}, "
        f"resyncs {sum(f.resyncs for f in flows)}"
    )


async def test_a_postgres_restart_and_outage_answer_unavailable_and_lose_nothing(stack: Stack, cast: Cast):
    async def restart_then_outage() -> None:
        await asyncio.to_thread(stack.pg.stop)
        await asyncio.to_thread(stack.pg.start)  # a fast restart
        await _load_while(2.0)
        await asyncio.to_thread(stack.pg.stop)
        await _load_while(OUTAGE_SECONDS)  # an outage: sends are refused `unavailable`
        await asyncio.to_thread(stack.pg.start)

    flows = await run_load(stack, cast, restart_then_outage)
    stored = await check_stored(stack, flows)
    refusals = check_refusals(flows)
    assert refusals["unavailable"] > 0, "nothing was refused while PostgreSQL was down"
    print(f"postgres: {stored} messages stored and delivered, refusals {dict(refusals)}")


def leaving(stack: Stack, gone: Replica) -> None:
    """Before a replica goes: its clients will wait for their move (see :func:`move_clients`)."""
    for flow in stack.flows:
        if flow.sender.url == gone.url:
            flow.sender.reconnected.clear()


async def move_clients(stack: Stack, gone: Replica, to: Replica) -> None:
    """What the widget and console do when their replica goes: reconnect (to one that answers),
    then sync every chat they are in, and resend what was not acknowledged."""
    moved = {f.sender for f in stack.flows if f.sender.url == gone.url}
    for peer in moved:
        await peer.reconnect(to.url)
        for flow in stack.flows:
            if flow.receiver is peer:
                follow_resyncs(flow, stack.tasks)
                ack = await peer.call("chat:sync", {"session_id": flow.session_id, "after_seq": 0})
                flow.synced.update({m["id"]: m for m in ack["data"]["messages"]})
        peer.reconnected.set()


async def test_a_replica_killed_with_sigkill_loses_nothing_its_clients_move_over(stack: Stack, cast: Cast):
    a, b = stack.replicas

    async def kill_a_and_move_its_clients() -> None:
        leaving(stack, a)
        a.kill()
        await move_clients(stack, a, b)

    try:
        flows = await run_load(stack, cast, kill_a_and_move_its_clients)
        stored = await check_stored(stack, flows)
        refusals = check_refusals(flows)
        print(f"kill -9: {stored} messages stored and delivered, refusals {dict(refusals)}")
    finally:
        a.start()
        await a.wait_ready()


async def test_a_rolling_restart_under_load_loses_nothing(stack: Stack, cast: Cast):
    """Every replica in turn: SIGTERM (graceful drain), its clients move to the other, it comes
    back; then the next one."""
    a, b = stack.replicas

    async def roll() -> None:
        for gone, other in ((a, b), (b, a)):
            leaving(stack, gone)
            await asyncio.to_thread(gone.stop)
            await move_clients(stack, gone, other)
            gone.start()
            await gone.wait_ready()

    flows = await run_load(stack, cast, roll)
    stored = await check_stored(stack, flows)
    refusals = check_refusals(flows)
    print(f"rolling restart: {stored} messages stored and delivered, refusals {dict(refusals)}")


async def test_a_sigterm_sends_the_replicas_sockets_away_at_once(stack: Stack, cast: Cast):
    """Graceful drain: at SIGTERM aiohttp stops reading every connection, so a socket left open
    would sit deaf until the shutdown timeout (its events unanswered for 20 s, measured before
    the fix). The replica disconnects its sockets first, so their clients move at once."""
    a, _ = stack.replicas
    peer = Peer(a.url, stack.settings.jwt_secret, "customer", "/customer")
    gone = asyncio.Event()
    peer.sio.on("disconnect", lambda *_: gone.set(), namespace="/customer")
    await peer.connect()
    try:
        assert a.proc is not None
        started = time.monotonic()
        a.proc.terminate()
        await asyncio.wait_for(gone.wait(), 3)
        told = time.monotonic() - started
        await asyncio.to_thread(a.proc.wait, 15)
        exited = time.monotonic() - started
        print(f"SIGTERM: sockets told to go after {told:.2f} s, replica exited after {exited:.1f} s")
        assert told < 2
    finally:
        await peer.disconnect()
        a.start()
        await a.wait_ready()
