"""Chat timers (app/services/chat_timers.py) on a frozen clock: queue timeouts, inactivity, agents
whose sockets are gone past the grace period, and presence left behind by a dead replica.

The server of this module runs on a context with a :class:`FrozenClock`; the test holds the
cluster-wide ``chat-timers`` duty lock so the server's own timer loop never runs, and calls the
sweeps itself after moving the clock."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from app import duties
from app.auth import Principal, RequestMeta
from app.clock import FrozenClock
from app.config import Settings
from app.context import AppContext, open_context
from app.live import AGENT_NS
from app.services import chat_timers, routing
from chat_support import Cast, ChatServer, for_session, make_agent, new_department, serve_in_process
from helpers import fetch

pytest_plugins = ["chat_fixtures"]


@pytest.fixture(scope="module")
def frozen() -> FrozenClock:
    return FrozenClock(dt.datetime.now(dt.timezone.utc).replace(microsecond=0))


@pytest.fixture(scope="module")
async def timer_server(settings: Settings, frozen: FrozenClock) -> AsyncIterator[ChatServer]:
    holder = await asyncpg.connect(settings.dsn)
    try:
        # Hold the duty's lock: no replica's timer loop runs while this module moves the clock.
        assert await holder.fetchval("SELECT pg_try_advisory_lock($1)", duties._lock_key("chat-timers"))
        async with open_context(settings, clock=frozen) as ctx, serve_in_process(settings, ctx) as server:
            yield server
    finally:
        await holder.close()


@pytest.fixture
async def cast(timer_server: ChatServer) -> AsyncIterator[Cast]:
    group = Cast(timer_server.url, timer_server.settings.jwt_secret)
    yield group
    await group.close()


@pytest.fixture
def tctx(timer_server: ChatServer) -> AppContext:
    return timer_server.ctx


async def session_row(ctx: AppContext, session_id: str) -> dict:
    return dict((await fetch(ctx, "SELECT * FROM chat_sessions WHERE id = $1", uuid.UUID(session_id)))[0])


async def agent_row(ctx: AppContext, user_id: uuid.UUID) -> dict:
    return dict((await fetch(ctx, "SELECT * FROM support_agents WHERE user_id = $1", user_id))[0])


# ------------------------------------------------------------------ queue timeout


async def test_a_chat_queued_past_the_timeout_ends_and_the_customer_can_leave_a_message(
    cast: Cast, tctx: AppContext, frozen: FrozenClock, department: str
) -> None:
    customer = await cast.customer()
    session = (await customer.ok("chat:start", {"department": department}))["session"]
    timeout = dt.timedelta(minutes=tctx.settings.chat_queue_timeout_minutes)

    frozen.advance(seconds=timeout.total_seconds() - 1)
    await chat_timers.sweep_queue_timeouts(tctx)
    assert (await session_row(tctx, session["id"]))["status"] == "queued"  # not yet

    frozen.advance(seconds=2)
    assert await chat_timers.sweep_queue_timeouts(tctx) >= 1
    row = await session_row(tctx, session["id"])
    assert (row["status"], row["end_reason"]) == ("timed_out", "queue_timeout")
    assert row["ended_at"] == frozen.now()
    ended = await customer.expect("chat:ended", for_session(session["id"]))
    assert ended["reason"] == "queue_timeout" and ended["session"]["status"] == "timed_out"
    await customer.expect("chat:session", lambda s: s["id"] == session["id"] and s["status"] == "timed_out")

    ticket = (
        await customer.ok(
            "chat:leave_message", {"session_id": session["id"], "subject": "No one came", "message": "Please email me."}
        )
    )["ticket"]
    assert ticket["channel"] == "chat" and ticket["category"] == department
    assert (await session_row(tctx, session["id"]))["ticket_id"] == uuid.UUID(ticket["id"])
    # and the customer may start again
    again = (await customer.ok("chat:start", {"department": department}))["session"]
    assert again["id"] != session["id"] and again["status"] == "queued"


async def test_an_active_chat_never_times_out_in_the_queue(
    cast: Cast, tctx: AppContext, frozen: FrozenClock, department: str
) -> None:
    agent = await cast.staff(await make_agent(tctx, department))
    customer = await cast.customer()
    session = (await customer.ok("chat:start", {"department": department}))["session"]
    assert session["status"] == "active"
    frozen.advance(minutes=tctx.settings.chat_queue_timeout_minutes + 1)
    await chat_timers.sweep_queue_timeouts(tctx)
    assert (await session_row(tctx, session["id"]))["status"] == "active"
    await agent.ok("chat:end", {"session_id": session["id"]})


# ------------------------------------------------------------------ inactivity


async def test_an_active_chat_without_messages_ends_for_inactivity(
    cast: Cast, tctx: AppContext, frozen: FrozenClock, department: str
) -> None:
    agent = await cast.staff(await make_agent(tctx, department))
    customer = await cast.customer()
    session = (await customer.ok("chat:start", {"department": department}))["session"]
    sid = session["id"]
    idle = dt.timedelta(minutes=tctx.settings.chat_inactivity_timeout_minutes)

    frozen.advance(seconds=idle.total_seconds() / 2)
    await customer.ok("chat:message", {"session_id": sid, "client_msg_id": "m1", "message": "still there?"})
    frozen.advance(seconds=idle.total_seconds() - 1)  # idle, measured from the last message
    await chat_timers.sweep_inactive(tctx)
    assert (await session_row(tctx, sid))["status"] == "active"

    frozen.advance(seconds=2)
    assert await chat_timers.sweep_inactive(tctx) >= 1
    row = await session_row(tctx, sid)
    assert (row["status"], row["end_reason"]) == ("ended", "inactivity")
    assert row["duration_seconds"] == int((frozen.now() - row["started_at"]).total_seconds())
    for peer in (customer, agent):
        assert (await peer.expect("chat:ended", for_session(sid)))["reason"] == "inactivity"
    assert (await agent_row(tctx, agent.user_id))["active_chats"] == 0


# ------------------------------------------------------------------ agents who lapsed


async def test_an_agent_gone_past_the_grace_goes_offline_and_their_chat_goes_to_the_head_of_the_queue(
    cast: Cast, tctx: AppContext, frozen: FrozenClock, department: str
) -> None:
    grace = tctx.settings.agent_disconnect_grace_seconds
    watcher = await cast.staff(
        await make_agent(tctx, new_department(), role="supervisor"), role="supervisor", status=None
    )
    gone = await cast.staff(await make_agent(tctx, department, max_chats=1))
    first = await cast.customer()
    s1 = (await first.ok("chat:start", {"department": department}))["session"]
    assert s1["agent_id"] == str(gone.user_id)
    waiting = await cast.customer()
    s2 = (await waiting.ok("chat:start", {"department": department}))["session"]
    assert s2["status"] == "queued"

    await watcher.catch_up()
    await gone.disconnect()
    await watcher.expect("presence:updated", lambda d: d["agent_id"] == str(gone.user_id))  # seen as gone
    row = await agent_row(tctx, gone.user_id)
    assert row["is_online"] is False and row["status"] == "online" and row["last_seen_at"] == frozen.now()

    frozen.advance(seconds=grace - 1)
    await chat_timers.sweep_lapsed_agents(tctx)
    assert (await agent_row(tctx, gone.user_id))["status"] == "online"  # still within grace
    assert (await session_row(tctx, s1["id"]))["agent_id"] == gone.user_id

    frozen.advance(seconds=2)
    assert await chat_timers.sweep_lapsed_agents(tctx) >= 1
    row = await agent_row(tctx, gone.user_id)
    assert (row["status"], row["active_chats"]) == ("offline", 0)
    requeued = await session_row(tctx, s1["id"])
    assert (requeued["status"], requeued["agent_id"], requeued["queue_priority"]) == ("queued", None, 1)
    told = await first.expect("chat:transferred", for_session(s1["id"]))
    assert told["from_agent_id"] == str(gone.user_id) and told["to_agent_id"] is None
    back = await first.expect("chat:session", lambda s: s["id"] == s1["id"] and s["status"] == "queued")
    assert back["queue_position"] == 1  # ahead of the older s2
    await waiting.expect("chat:queue_position", lambda d: d["session_id"] == s2["id"] and d["queue_position"] == 2)
    events = await fetch(
        tctx,
        "SELECT payload FROM support_events WHERE type = 'agent.status_changed' AND entity_id = $1",
        str(row["id"]),
    )
    assert any(e["payload"].get("reason") == "disconnected" for e in events)

    helper = await cast.staff(await make_agent(tctx, department, max_chats=1))
    assigned = await helper.expect("chat:assigned", for_session(s1["id"]))
    assert assigned["session"]["agent_id"] == str(helper.user_id)
    assert (await first.expect("chat:assigned", for_session(s1["id"])))["session"]["status"] == "active"
    assert (await session_row(tctx, s2["id"]))["status"] == "queued"  # s2 still waits


async def test_an_agent_who_reconnects_within_the_grace_keeps_their_chats(
    cast: Cast, tctx: AppContext, frozen: FrozenClock, department: str
) -> None:
    agent = await cast.staff(await make_agent(tctx, department))
    customer = await cast.customer()
    session = (await customer.ok("chat:start", {"department": department}))["session"]
    await agent.disconnect()
    frozen.advance(seconds=tctx.settings.agent_disconnect_grace_seconds - 5)
    await agent.reconnect()
    frozen.advance(seconds=60)
    await chat_timers.sweep_lapsed_agents(tctx)
    row = await agent_row(tctx, agent.user_id)
    assert (row["status"], row["is_online"], row["active_chats"]) == ("online", True, 1)
    assert (await session_row(tctx, session["id"]))["agent_id"] == agent.user_id
    # the reconnected socket is back in the session's room
    await customer.ok("chat:message", {"session_id": session["id"], "client_msg_id": "r1", "message": "hi"})
    await agent.expect("chat:message", for_session(session["id"]))


async def test_presence_left_by_a_dead_replica_is_reconciled(
    cast: Cast, tctx: AppContext, frozen: FrozenClock, department: str
) -> None:
    orphan = await make_agent(tctx, department)
    await routing.agent_connected(tctx, orphan)  # marked connected, but no socket anywhere
    await routing.set_status(tctx, Principal(orphan, "agent"), RequestMeta(), "online")
    live = await cast.staff(await make_agent(tctx, department))
    assert not await tctx.live.is_connected(AGENT_NS, orphan)

    await chat_timers.reconcile_presence(tctx)
    assert (await agent_row(tctx, orphan))["is_online"] is False
    assert (await agent_row(tctx, orphan))["last_seen_at"] == frozen.now()
    assert (await agent_row(tctx, live.user_id))["is_online"] is True

    frozen.advance(seconds=tctx.settings.agent_disconnect_grace_seconds + 1)
    await chat_timers.sweep_lapsed_agents(tctx)
    assert (await agent_row(tctx, orphan))["status"] == "offline"
    assert (await agent_row(tctx, live.user_id))["status"] == "online"
