"""Two real replicas (``python -m app serve`` processes) sharing PostgreSQL and Redis behave as one
server: messages cross replicas both ways, routing under a burst never overfills an agent nor
gives a chat twice, clients that drop (or whose replica dies) recover with ``chat:sync``, resends
and racing starts are single, and freed capacity on one replica serves the queue at once."""

from __future__ import annotations

import asyncio
import collections
import time
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest

from app.context import AppContext
from chat_support import Cast, Peer, Replica, for_session, make_agent, new_department, spare_replica
from helpers import fetch, fetchval

pytest_plugins = ["chat_fixtures"]


@pytest.fixture
async def cast(replicas: list[Replica], settings) -> AsyncIterator[Cast]:
    group = Cast(replicas[0].url, settings.jwt_secret)
    yield group
    await group.close()


def message_ids(peer: Peer, session_id: str) -> list[str]:
    return [m["id"] for m in peer.seen("chat:message", for_session(session_id))]


async def say(peer: Peer, session_id: str, text: str, client_msg_id: str | None = None) -> dict:
    return (
        await peer.ok(
            "chat:message",
            {"session_id": session_id, "message": text, "client_msg_id": client_msg_id or uuid.uuid4().hex},
        )
    )["message"]


async def chat_across(
    cast: Cast, ctx: AppContext, a: Replica, b: Replica, department: str, **agent_options
) -> tuple[Peer, Peer, dict]:
    """An agent online on ``b`` and a customer on ``a`` in an active chat."""
    agent = await cast.staff(await make_agent(ctx, department, **agent_options), url=b.url)
    customer = await cast.customer(url=a.url)
    session = (await customer.ok("chat:start", {"department": department}))["session"]
    assert session["status"] == "active" and session["agent_id"] == str(agent.user_id)
    await agent.expect("chat:assigned", for_session(session["id"]))
    return customer, agent, session


def check_transcript(session_id: str, last_seq: int, copies: list[dict]) -> None:
    """Every seq 1..last_seq arrived (by push or sync); all copies of a seq are the same message."""
    by_seq: dict[int, set[str]] = collections.defaultdict(set)
    for message in copies:
        assert message["session_id"] == session_id
        by_seq[message["seq"]].add(message["id"])
    assert sorted(by_seq) == list(range(1, last_seq + 1)), f"gaps: {set(range(1, last_seq + 1)) - set(by_seq)}"
    assert all(len(ids) == 1 for ids in by_seq.values()), "one seq carried two different messages"


async def check_stored(ctx: AppContext, session_id: str, count: int) -> None:
    rows = await fetch(ctx, "SELECT seq FROM chat_messages WHERE session_id = $1 ORDER BY seq", uuid.UUID(session_id))
    assert [r["seq"] for r in rows] == list(range(1, count + 1))


# ------------------------------------------------------------------ messages across replicas


async def test_a_customer_and_an_agent_on_different_replicas_talk_both_ways(
    cast: Cast, replicas: list[Replica], ctx: AppContext, department: str
) -> None:
    a, b = replicas
    customer, agent, session = await chat_across(cast, ctx, a, b, department)
    sid = session["id"]
    assert (await customer.expect("chat:assigned", for_session(sid)))["session"]["agent_id"] == str(agent.user_id)

    question = await say(customer, sid, "Hello from replica A")
    assert await agent.expect("chat:message", for_session(sid)) == question
    answer = await say(agent, sid, "Hello from replica B")
    assert await customer.expect("chat:message", for_session(sid)) == answer
    await customer.ok("chat:typing", {"session_id": sid, "typing": True})
    assert (await agent.expect("chat:typing", for_session(sid)))["sender_type"] == "customer"
    await agent.ok("chat:read", {"session_id": sid, "up_to_seq": 1})
    assert (await customer.expect("chat:read", for_session(sid)))["up_to_seq"] == 1
    note = (await agent.ok("chat:note", {"session_id": sid, "message": "internal"}))["note"]
    await agent.ok("chat:end", {"session_id": sid})
    ended = await customer.expect("chat:ended", for_session(sid))
    assert ended["reason"] == "agent"
    assert customer.seen("chat:note") == [] and note["id"]


# ------------------------------------------------------------------ a burst of starts


async def test_fifty_customers_at_once_fill_five_agents_and_queue_the_rest_in_order(
    cast: Cast, replicas: list[Replica], ctx: AppContext, department: str
) -> None:
    a, b = replicas
    agent_ids = [await make_agent(ctx, department, max_chats=2) for _ in range(5)]
    agents = list(
        await asyncio.gather(*(cast.staff(uid, url=(a if i < 3 else b).url) for i, uid in enumerate(agent_ids)))
    )
    customers = list(await asyncio.gather(*(cast.customer(url=(a if i % 2 else b).url) for i in range(50))))

    acks = await asyncio.gather(*(c.ok("chat:start", {"department": department}) for c in customers))
    sessions = [ack["session"] for ack in acks]
    assert len({s["id"] for s in sessions}) == 50
    active = [s for s in sessions if s["status"] == "active"]
    queued = [s for s in sessions if s["status"] == "queued"]
    assert (len(active), len(queued)) == (10, 40)

    # every assignment was announced to exactly one agent, and nobody got more than 2
    assigned = await asyncio.gather(
        *(asyncio.gather(*(agent.expect("chat:assigned") for _ in range(2))) for agent in agents)
    )
    await asyncio.gather(*(agent.catch_up() for agent in agents))
    announced = collections.Counter(e["session"]["id"] for agent in agents for e in agent.seen("chat:assigned"))
    assert set(announced) == {s["id"] for s in active} and set(announced.values()) == {1}
    for agent, events in zip(agents, assigned, strict=False):
        assert all(e["session"]["agent_id"] == str(agent.user_id) for e in events)

    rows = await fetch(
        ctx, "SELECT user_id, active_chats, max_chats FROM support_agents WHERE department = $1", department
    )
    held = collections.Counter(
        r["agent_id"]
        for r in await fetch(
            ctx, "SELECT agent_id FROM chat_sessions WHERE department = $1 AND status = 'active'", department
        )
    )
    for row in rows:
        assert row["active_chats"] == held[row["user_id"]] == 2 <= row["max_chats"]

    supervisor = await cast.staff(
        await make_agent(ctx, new_department(), role="supervisor"), role="supervisor", status=None, url=b.url
    )
    snapshot = await supervisor.ok("queue:snapshot", {"department": department})
    assert [s["queue_position"] for s in snapshot["queued"]] == list(range(1, 41))
    assert {s["id"] for s in snapshot["queued"]} == {s["id"] for s in queued}
    started = [s["started_at"] for s in snapshot["queued"]]
    assert started == sorted(started)  # oldest first


# ------------------------------------------------------------------ recovering from drops


async def test_a_client_that_drops_mid_conversation_recovers_with_sync(
    cast: Cast, replicas: list[Replica], ctx: AppContext, department: str
) -> None:
    a, b = replicas
    customer, agent, session = await chat_across(cast, ctx, a, b, department)
    sid = session["id"]
    total = 30
    halfway = asyncio.Event()

    async def agent_talks() -> None:
        for i in range(total):
            await say(agent, sid, f"agent line {i}")
            if i == 5:
                halfway.set()

    talking = asyncio.create_task(agent_talks())
    await asyncio.wait_for(halfway.wait(), 10)
    before = customer.seen("chat:message", for_session(sid))
    await customer.disconnect()
    await say(agent, sid, "while you were away")  # certainly missed
    await customer.reconnect(a.url)
    back = await customer.expect("chat:session", lambda s: s["id"] == sid)
    assert back["status"] == "active"
    contiguous = max([0] + [m["seq"] for m in before])
    synced = (await customer.ok("chat:sync", {"session_id": sid, "after_seq": contiguous}))["messages"]
    assert [m["seq"] for m in synced] == list(range(contiguous + 1, contiguous + 1 + len(synced)))
    mine = await say(customer, sid, "back again")
    await asyncio.wait_for(talking, 20)

    final = (await customer.ok("chat:sync", {"session_id": sid, "after_seq": 0}))["messages"]
    last_seq = total + 2
    assert [m["seq"] for m in final] == list(range(1, last_seq + 1))
    check_transcript(sid, last_seq, before + synced + customer.seen("chat:message", for_session(sid)) + [mine])
    await check_stored(ctx, sid, last_seq)


async def test_a_client_whose_replica_is_killed_recovers_on_the_other(
    cast: Cast, replicas: list[Replica], ctx: AppContext, test_env: dict[str, str], replica_logs, department: str
) -> None:
    a, b = replicas
    doomed = spare_replica(test_env, replica_logs, "C")
    doomed.start()
    try:
        await doomed.wait_ready()
        customer, agent, session = await chat_across(cast, ctx, doomed, a, department)
        sid = session["id"]
        sent = []
        for i in range(5):
            sent.append(await say(customer, sid, f"customer line {i}"))
            await say(agent, sid, f"agent line {i}")
        await customer.expect("chat:message", lambda m: m.get("seq") == 10)
        before = customer.seen("chat:message", for_session(sid))

        doomed.kill()
        for i in range(5):
            await say(agent, sid, f"while your server was down {i}")
        await customer.reconnect(b.url)
        back = await customer.expect("chat:session", lambda s: s["id"] == sid)
        assert back["status"] == "active" and back["last_seq"] == 15
        contiguous = max(m["seq"] for m in before)
        synced = (await customer.ok("chat:sync", {"session_id": sid, "after_seq": contiguous}))["messages"]
        assert [m["seq"] for m in synced] == list(range(contiguous + 1, 16))
        check_transcript(sid, 15, sent + before + synced + customer.seen("chat:message", for_session(sid)))

        latest = await say(customer, sid, "I'm back")  # and the chat goes on
        assert latest["seq"] == 16
        assert (await agent.expect("chat:message", lambda m: m.get("seq") == 16))["id"] == latest["id"]
        await check_stored(ctx, sid, 16)
    finally:
        doomed.stop()


# ------------------------------------------------------------------ idempotency and races


async def test_resending_a_client_msg_id_through_both_replicas_stores_one_message(
    cast: Cast, replicas: list[Replica], ctx: AppContext, department: str
) -> None:
    a, b = replicas
    customer, agent, session = await chat_across(cast, ctx, a, b, department)
    sid = session["id"]
    other_tab = await cast.customer(url=b.url, user_id=customer.user_id)
    body = {"session_id": sid, "client_msg_id": "retry-1", "message": "Are you there?"}
    acks = await asyncio.gather(customer.ok("chat:message", body), other_tab.ok("chat:message", body))
    assert acks[0]["message"] == acks[1]["message"]
    again = await other_tab.ok("chat:message", body)
    assert again["message"] == acks[0]["message"]
    assert await fetchval(ctx, "SELECT count(*) FROM chat_messages WHERE session_id = $1", uuid.UUID(sid)) == 1
    await customer.ok("chat:typing", {"session_id": sid, "typing": True})
    await agent.expect("chat:typing", for_session(sid))
    await other_tab.ok("chat:typing", {"session_id": sid, "typing": False})
    await agent.expect("chat:typing", lambda d: d["session_id"] == sid and d["typing"] is False)
    assert message_ids(agent, sid) == [acks[0]["message"]["id"]]  # broadcast once


async def test_simultaneous_starts_on_two_replicas_open_one_session(
    cast: Cast, replicas: list[Replica], ctx: AppContext, department: str
) -> None:
    a, b = replicas
    for _ in range(5):
        on_a = await cast.customer(url=a.url)
        on_b = await cast.customer(url=b.url, user_id=on_a.user_id)
        first, second = await asyncio.gather(
            on_a.call("chat:start", {"department": department}), on_b.call("chat:start", {"department": department})
        )
        assert first["ok"] and second["ok"], (first, second)
        assert first["data"]["session"]["id"] == second["data"]["session"]["id"]
        assert await fetchval(ctx, "SELECT count(*) FROM chat_sessions WHERE customer_id = $1", on_a.user_id) == 1


# ------------------------------------------------------------------ capacity freed elsewhere


async def test_a_queued_chat_is_assigned_within_a_second_of_capacity_freeing_on_the_other_replica(
    cast: Cast, replicas: list[Replica], ctx: AppContext, department: str
) -> None:
    a, b = replicas
    first, agent, session = await chat_across(cast, ctx, a, b, department, max_chats=1)
    waiting = await cast.customer(url=a.url)
    queued = (await waiting.ok("chat:start", {"department": department}))["session"]
    assert queued["status"] == "queued"

    started = time.monotonic()
    await agent.ok("chat:end", {"session_id": session["id"]})
    assigned = await waiting.expect("chat:assigned", for_session(queued["id"]), timeout=1.0)
    assert time.monotonic() - started < 1.0
    assert assigned["session"]["agent_id"] == str(agent.user_id)
    await agent.expect("chat:assigned", for_session(queued["id"]), timeout=1.0)


# ------------------------------------------------------------------ fan-out only where needed


async def pubsub_intake(replica: Replica) -> float:
    """Cross-replica Socket.IO messages ``replica`` has received from Redis so far."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{replica.url}/metrics") as resp:
            text = await resp.text()
    for line in text.splitlines():
        if line.startswith("support_pubsub_received_messages_total "):
            return float(line.split()[1])
    raise AssertionError("support_pubsub_received_messages_total is not exported")


async def test_a_replica_receives_only_the_traffic_of_rooms_it_has_members_in(
    cast: Cast, replicas: list[Replica], ctx: AppContext, department: str
) -> None:
    a, b = replicas
    agent = await cast.staff(await make_agent(ctx, department), url=a.url)
    customer = await cast.customer(url=a.url)
    session = (await customer.ok("chat:start", {"department": department}))["session"]
    await agent.expect("chat:assigned", for_session(session["id"]))
    before = await pubsub_intake(b)
    for n in range(10):
        await say(customer, session["id"], f"local {n}")
        await say(agent, session["id"], f"local reply {n}")
    await agent.catch_up()
    local_intake = await pubsub_intake(b) - before

    other_department = new_department()
    remote_agent = await cast.staff(await make_agent(ctx, other_department), url=b.url)
    remote_customer = await cast.customer(url=a.url)
    crossing = (await remote_customer.ok("chat:start", {"department": other_department}))["session"]
    await remote_agent.expect("chat:assigned", for_session(crossing["id"]))
    before = await pubsub_intake(b)
    for n in range(10):
        await say(remote_customer, crossing["id"], f"crossing {n}")
    await remote_agent.catch_up()
    assert len(message_ids(remote_agent, crossing["id"])) >= 10
    crossing_intake = await pubsub_intake(b) - before

    # Python-socketio's Redis manager sent B every push of A's chat (40 messages here, two
    # namespaces per message); now B hears nothing of a chat it has no member of.
    assert local_intake == 0, local_intake
    assert 10 <= crossing_intake <= 20, crossing_intake
