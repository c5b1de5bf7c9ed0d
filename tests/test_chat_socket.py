"""The Socket.IO contract (../shared/PROTOCOL.md) against one in-process replica over real websockets:
connecting, every client event with its acknowledgement and error codes, and the pushes each
party (and only that party) receives. Every test works in its own department."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import socketio

from app.auth import issue_token
from app.config import Settings
from app.context import open_context
from chat_support import (
    Cast,
    ChatServer,
    Peer,
    connect_refusal,
    for_session,
    make_agent,
    new_department,
    serve_in_process,
)
from helpers import fetch, fetchval

pytest_plugins = ["chat_fixtures"]


# ------------------------------------------------------------------ helpers


async def online_agent(cast: Cast, ctx, department: str, **kw) -> Peer:
    return await cast.staff(await make_agent(ctx, department, **kw))


async def active_chat(cast: Cast, ctx, department: str) -> tuple[Peer, Peer, dict]:
    """A customer and an online agent of ``department`` in an active chat."""
    agent = await online_agent(cast, ctx, department)
    customer = await cast.customer()
    session = (await customer.ok("chat:start", {"department": department}))["session"]
    assert session["status"] == "active", session
    await agent.expect("chat:assigned", for_session(session["id"]))
    await customer.expect("chat:assigned", for_session(session["id"]))
    return customer, agent, session


async def say(peer: Peer, session_id: str, text: str, client_msg_id: str | None = None) -> dict:
    data = await peer.ok(
        "chat:message", {"session_id": session_id, "message": text, "client_msg_id": client_msg_id or uuid.uuid4().hex}
    )
    return data["message"]


async def settle(sender: Peer, receiver: Peer, session_id: str) -> None:
    """Make sure every push ``sender``'s earlier events caused has reached ``receiver``: a typing
    signal sent now is pushed after them, so once it arrives they would have arrived too."""
    receiver.forget("chat:typing")
    await sender.ok("chat:typing", {"session_id": session_id, "typing": True})
    await receiver.expect("chat:typing", lambda d: d["session_id"] == session_id)


async def agent_row(ctx, user_id: uuid.UUID) -> dict:
    rows = await fetch(ctx, "SELECT * FROM support_agents WHERE user_id = $1", user_id)
    return dict(rows[0])


async def session_row(ctx, session_id: str) -> dict:
    rows = await fetch(ctx, "SELECT * FROM chat_sessions WHERE id = $1", uuid.UUID(session_id))
    return dict(rows[0])


# ------------------------------------------------------------------ connecting


async def test_connect_without_a_token_is_refused_as_unauthorized(chat_server: ChatServer) -> None:
    refusal = await connect_refusal(chat_server.url, "/customer", None)
    assert refusal["data"]["code"] == "unauthorized"
    assert refusal["message"]


async def test_connect_with_a_bad_token_is_refused_as_unauthorized(chat_server: ChatServer) -> None:
    forged = issue_token("another-secret-of-at-least-32-bytes!!", uuid.uuid4(), "customer")
    expired = issue_token(chat_server.settings.jwt_secret, uuid.uuid4(), "customer", ttl=-60)
    for token in ("not-a-jwt", forged, expired):
        refusal = await connect_refusal(chat_server.url, "/customer", {"token": token})
        assert refusal["data"]["code"] == "unauthorized", (token, refusal)


async def test_customer_token_on_the_agent_namespace_is_forbidden(chat_server: ChatServer) -> None:
    token = issue_token(chat_server.settings.jwt_secret, uuid.uuid4(), "customer")
    refusal = await connect_refusal(chat_server.url, "/agent", {"token": token})
    assert refusal["data"]["code"] == "forbidden"


async def test_staff_token_on_the_customer_namespace_is_forbidden(chat_server: ChatServer) -> None:
    token = issue_token(chat_server.settings.jwt_secret, uuid.uuid4(), "agent")
    refusal = await connect_refusal(chat_server.url, "/customer", {"token": token})
    assert refusal["data"]["code"] == "forbidden"


async def test_agent_without_an_agent_profile_is_forbidden(chat_server: ChatServer) -> None:
    token = issue_token(chat_server.settings.jwt_secret, uuid.uuid4(), "agent")
    refusal = await connect_refusal(chat_server.url, "/agent", {"token": token})
    assert refusal["data"]["code"] == "forbidden"


async def test_a_full_replica_refuses_with_server_full(test_env: dict[str, str]) -> None:
    tight = Settings.from_env({**test_env, "WEBSOCKET_MAX_SESSIONS": "1"})
    async with open_context(tight) as ctx, serve_in_process(tight, ctx) as server:
        first = await Cast(server.url, tight.jwt_secret).customer()
        try:
            token = issue_token(tight.jwt_secret, uuid.uuid4(), "customer")
            refusal = await connect_refusal(server.url, "/customer", {"token": token})
            assert refusal["data"]["code"] == "server_full"
        finally:
            await first.disconnect()


async def test_bearer_header_is_accepted_instead_of_auth(chat_server: ChatServer) -> None:
    client = socketio.AsyncClient(reconnection=False)
    token = issue_token(chat_server.settings.jwt_secret, uuid.uuid4(), "customer")
    await client.connect(
        chat_server.url,
        headers={"Authorization": f"Bearer {token}"},
        namespaces=["/customer"],
        socketio_path="/ws/chat",
        transports=["websocket"],
        wait_timeout=5,
    )
    try:
        ack = await client.call(
            "chat:sync", {"session_id": str(uuid.uuid4()), "after_seq": 0}, namespace="/customer", timeout=5
        )
        assert ack["error"]["code"] == "not_found"  # connected and authenticated
    finally:
        await client.disconnect()


async def test_customer_gets_its_open_session_on_connect(cast: Cast, department: str) -> None:
    customer = await cast.customer()
    session = (await customer.ok("chat:start", {"department": department}))["session"]
    again = await cast.customer(user_id=customer.user_id)
    pushed = await again.expect("chat:session", for_session(session["id"]))
    assert pushed["status"] == "queued" and pushed["session_key"] == session["session_key"]


# ------------------------------------------------------------------ starting and routing


async def test_start_without_an_online_agent_queues_the_session(cast: Cast, department: str) -> None:
    customer = await cast.customer()
    data = await customer.ok("chat:start", {"department": department, "subject": "Card declined"})
    session = data["session"]
    assert session["status"] == "queued"
    assert session["queue_position"] == 1
    assert session["agent_id"] is None and session["agent"] is None
    assert session["customer_id"] == str(customer.user_id)
    assert session["department"] == department
    assert session["session_key"] and session["session_key"] != session["id"]
    assert session["last_seq"] == 0 and session["started_at"]
    pushed = await customer.expect("chat:session", for_session(session["id"]))
    assert pushed["status"] == "queued"


async def test_second_start_returns_the_same_open_session(cast: Cast, chat_server: ChatServer, department: str) -> None:
    customer = await cast.customer()
    first = (await customer.ok("chat:start", {"department": department}))["session"]
    second = (await customer.ok("chat:start", {"department": department}))["session"]
    assert second["id"] == first["id"]
    count = await fetchval(
        chat_server.ctx, "SELECT count(*) FROM chat_sessions WHERE customer_id = $1", customer.user_id
    )
    assert count == 1


async def test_start_with_a_first_message_stores_it_as_seq_1(cast: Cast, department: str) -> None:
    customer = await cast.customer()
    data = await customer.ok("chat:start", {"department": department, "message": "Hello?", "client_msg_id": "first-1"})
    assert data["message"]["seq"] == 1 and data["message"]["message"] == "Hello?"
    assert data["message"]["client_msg_id"] == "first-1"
    assert data["session"]["last_seq"] == 1


async def test_start_assigns_to_an_online_agent(cast: Cast, chat_server: ChatServer, department: str) -> None:
    agent = await online_agent(cast, chat_server.ctx, department, name="Dana")
    customer = await cast.customer()
    session = (await customer.ok("chat:start", {"department": department}))["session"]
    assert session["status"] == "active"
    assert session["agent_id"] == str(agent.user_id)
    assert session["agent"] == {"id": str(agent.user_id), "display_name": "Dana"}
    assert session["queue_position"] is None and session["assigned_at"]
    for peer in (agent, customer):
        assigned = await peer.expect("chat:assigned", for_session(session["id"]))
        assert assigned["session"]["agent_id"] == str(agent.user_id)
        assert assigned["session"]["status"] == "active"
    pushed = await customer.expect("chat:session", lambda s: s["id"] == session["id"] and s["status"] == "active")
    assert pushed["agent"]["display_name"] == "Dana"
    assert (await agent_row(chat_server.ctx, agent.user_id))["active_chats"] == 1


async def test_the_least_loaded_agent_gets_the_next_chat(cast: Cast, chat_server: ChatServer, department: str) -> None:
    ctx = chat_server.ctx
    busy = await online_agent(cast, ctx, department, max_chats=3)
    first = await cast.customer()
    s1 = (await first.ok("chat:start", {"department": department}))["session"]
    assert s1["agent_id"] == str(busy.user_id)
    idle = await online_agent(cast, ctx, department, max_chats=3)
    second = await cast.customer()
    s2 = (await second.ok("chat:start", {"department": department}))["session"]
    assert s2["agent_id"] == str(idle.user_id)


# ------------------------------------------------------------------ messages


async def test_message_ack_has_id_and_seq_and_reaches_only_the_other_party(
    cast: Cast, chat_server: ChatServer, department: str
) -> None:
    customer, agent, session = await active_chat(cast, chat_server.ctx, department)
    sid = session["id"]
    sent = await say(customer, sid, "My order is late", "c-1")
    assert sent["seq"] == 1 and uuid.UUID(sent["id"])
    assert sent["sender_type"] == "customer" and sent["sender_id"] == str(customer.user_id)
    assert sent["message"] == "My order is late" and sent["message_type"] == "text"
    assert sent["session_id"] == sid and sent["client_msg_id"] == "c-1" and sent["created_at"]
    assert await agent.expect("chat:message", for_session(sid)) == sent

    reply = await say(agent, sid, "Let me check", "a-1")
    assert reply["seq"] == 2 and reply["sender_type"] == "agent"
    assert await customer.expect("chat:message", for_session(sid)) == reply

    await settle(agent, customer, sid)
    await settle(customer, agent, sid)
    assert [m["seq"] for m in customer.seen("chat:message")] == [2]  # never its own message back
    assert [m["seq"] for m in agent.seen("chat:message")] == [1]


async def test_resending_a_client_msg_id_returns_the_first_message_and_stores_one(
    cast: Cast, chat_server: ChatServer, department: str
) -> None:
    customer, agent, session = await active_chat(cast, chat_server.ctx, department)
    sid = session["id"]
    first = await say(customer, sid, "Refund please", "dup-1")
    again = await say(customer, sid, "Refund please", "dup-1")
    assert again == first
    rows = await fetchval(chat_server.ctx, "SELECT count(*) FROM chat_messages WHERE session_id = $1", uuid.UUID(sid))
    assert rows == 1
    await settle(customer, agent, sid)
    assert [m["id"] for m in agent.seen("chat:message")] == [first["id"]]  # no second broadcast
    assert (await session_row(chat_server.ctx, sid))["last_seq"] == 1  # no seq spent


async def test_a_resend_racing_the_first_send_is_stored_and_broadcast_once(
    cast: Cast, chat_server: ChatServer, department: str
) -> None:
    customer, agent, session = await active_chat(cast, chat_server.ctx, department)
    sid = session["id"]
    other_tab = await cast.customer(user_id=customer.user_id)
    body = {"session_id": sid, "client_msg_id": "race-1", "message": "Anyone?"}
    acks = await asyncio.gather(*(tab.ok("chat:message", body) for tab in (customer, other_tab) * 4))
    assert all(ack == acks[0] for ack in acks)
    assert (
        await fetchval(chat_server.ctx, "SELECT count(*) FROM chat_messages WHERE session_id = $1", uuid.UUID(sid)) == 1
    )
    await settle(customer, agent, sid)
    assert [m["id"] for m in agent.seen("chat:message")] == [acks[0]["message"]["id"]]


async def test_same_client_msg_id_from_both_parties_are_two_messages(
    cast: Cast, chat_server: ChatServer, department: str
) -> None:
    customer, agent, session = await active_chat(cast, chat_server.ctx, department)
    mine = await say(customer, session["id"], "hi", "m-1")
    theirs = await say(agent, session["id"], "hello", "m-1")
    assert mine["id"] != theirs["id"] and (mine["seq"], theirs["seq"]) == (1, 2)


async def test_sync_returns_everything_after_seq_in_order(cast: Cast, chat_server: ChatServer, department: str) -> None:
    customer, agent, session = await active_chat(cast, chat_server.ctx, department)
    sid = session["id"]
    sent = []
    for i in range(5):
        sent.append(await say(customer if i % 2 == 0 else agent, sid, f"message {i}"))
    note = (await agent.ok("chat:note", {"session_id": sid, "message": "VIP customer"}))["note"]

    synced = await customer.ok("chat:sync", {"session_id": sid, "after_seq": 2})
    assert synced["messages"] == sent[2:]
    assert [m["seq"] for m in synced["messages"]] == [3, 4, 5]
    assert synced["session"]["id"] == sid and synced["session"]["last_seq"] == 5
    assert "notes" not in synced  # customers never see notes

    everything = await agent.ok("chat:sync", {"session_id": sid, "after_seq": 0})
    assert everything["messages"] == sent
    assert everything["notes"] == [note]
    assert (await customer.ok("chat:sync", {"session_id": sid, "after_seq": 5}))["messages"] == []
    by_key = await customer.ok("chat:sync", {"session_id": session["session_key"], "after_seq": 4})
    assert by_key["messages"] == sent[4:]


async def test_typing_reaches_the_other_party(cast: Cast, chat_server: ChatServer, department: str) -> None:
    customer, agent, session = await active_chat(cast, chat_server.ctx, department)
    sid = session["id"]
    assert await customer.ok("chat:typing", {"session_id": sid, "typing": True}) == {}
    assert await agent.expect("chat:typing", for_session(sid)) == {
        "session_id": sid,
        "sender_type": "customer",
        "typing": True,
    }
    await agent.ok("chat:typing", {"session_id": sid, "typing": False})
    assert await customer.expect("chat:typing", for_session(sid)) == {
        "session_id": sid,
        "sender_type": "agent",
        "typing": False,
    }
    assert customer.seen("chat:typing", lambda d: d["sender_type"] == "customer") == []


async def test_read_receipts_reach_the_other_party_and_are_stored(
    cast: Cast, chat_server: ChatServer, department: str
) -> None:
    customer, agent, session = await active_chat(cast, chat_server.ctx, department)
    sid = session["id"]
    await say(agent, sid, "one")
    await say(agent, sid, "two")
    assert await customer.ok("chat:read", {"session_id": sid, "up_to_seq": 2}) == {}
    assert await agent.expect("chat:read", for_session(sid)) == {
        "session_id": sid,
        "reader_type": "customer",
        "up_to_seq": 2,
    }
    await agent.ok("chat:read", {"session_id": sid, "up_to_seq": 1})
    assert (await customer.expect("chat:read", for_session(sid)))["reader_type"] == "agent"
    row = await session_row(chat_server.ctx, sid)
    assert (row["customer_last_read_seq"], row["agent_last_read_seq"]) == (2, 1)
    # a cursor never moves back, nor past the last message
    await customer.ok("chat:read", {"session_id": sid, "up_to_seq": 1})
    await customer.ok("chat:read", {"session_id": sid, "up_to_seq": 99})
    synced = await customer.ok("chat:sync", {"session_id": sid, "after_seq": 0})
    assert synced["session"]["customer_last_read_seq"] == 2


async def test_notes_reach_agents_and_never_the_customer(cast: Cast, chat_server: ChatServer, department: str) -> None:
    customer, agent, session = await active_chat(cast, chat_server.ctx, department)
    sid = session["id"]
    second_tab = await cast.staff(agent.user_id, status=None)
    note = (await agent.ok("chat:note", {"session_id": sid, "message": "Refund approved by Sam"}))["note"]
    assert note["message"] == "Refund approved by Sam" and note["sender_id"] == str(agent.user_id)
    assert note["session_id"] == sid and "seq" not in note
    assert await second_tab.expect("chat:note", for_session(sid)) == note
    await settle(agent, customer, sid)
    assert customer.seen("chat:note") == []
    assert all(name != "chat:message" for name, _ in customer.received)
    stored = await fetchval(chat_server.ctx, "SELECT message FROM chat_notes WHERE id = $1", uuid.UUID(note["id"]))
    assert stored.startswith("enc:v1:")
    assert (await session_row(chat_server.ctx, sid))["last_seq"] == 0  # notes take no seq


# ------------------------------------------------------------------ ending, rating, offline messages


async def test_customer_ending_a_chat_tells_both_and_frees_the_agent(
    cast: Cast, chat_server: ChatServer, department: str
) -> None:
    ctx = chat_server.ctx
    customer, agent, session = await active_chat(cast, ctx, department)
    sid = session["id"]
    await say(customer, sid, "thanks, bye")
    ended = (await customer.ok("chat:end", {"session_id": sid}))["session"]
    assert ended["status"] == "ended" and ended["ended_at"]
    assert ended["duration_seconds"] is not None and ended["duration_seconds"] >= 0
    for peer in (customer, agent):
        pushed = await peer.expect("chat:ended", for_session(sid))
        assert pushed["reason"] == "customer" and pushed["session"]["status"] == "ended"
    row = await session_row(ctx, sid)
    assert row["end_reason"] == "customer" and row["duration_seconds"] is not None
    assert (await agent_row(ctx, agent.user_id))["active_chats"] == 0
    # the transcript stays
    assert len((await customer.ok("chat:sync", {"session_id": sid, "after_seq": 0}))["messages"]) == 1
    await customer.fails(
        "chat:message", {"session_id": sid, "client_msg_id": "late", "message": "hello?"}, "invalid_state"
    )
    await customer.fails("chat:end", {"session_id": sid}, "invalid_state")


async def test_agent_ending_a_chat_gives_reason_agent(cast: Cast, chat_server: ChatServer, department: str) -> None:
    customer, agent, session = await active_chat(cast, chat_server.ctx, department)
    await agent.ok("chat:end", {"session_id": session["id"]})
    assert (await customer.expect("chat:ended", for_session(session["id"])))["reason"] == "agent"


async def test_ending_a_queued_chat_abandons_it(cast: Cast, department: str) -> None:
    customer = await cast.customer()
    session = (await customer.ok("chat:start", {"department": department}))["session"]
    ended = (await customer.ok("chat:end", {"session_id": session["id"]}))["session"]
    assert ended["status"] == "abandoned"
    assert (await customer.expect("chat:ended", for_session(session["id"])))["reason"] == "customer"
    # a new start opens a new session
    fresh = (await customer.ok("chat:start", {"department": department}))["session"]
    assert fresh["id"] != session["id"]


async def test_rating_stores_the_rating_and_a_feedback_row_once(
    cast: Cast, chat_server: ChatServer, department: str
) -> None:
    ctx = chat_server.ctx
    customer, agent, session = await active_chat(cast, ctx, department)
    sid = session["id"]
    await customer.ok("chat:end", {"session_id": sid})
    data = await customer.ok("chat:rate", {"session_id": sid, "rating": 4, "comment": "Quick and kind"})
    feedback = await fetch(ctx, "SELECT * FROM feedback WHERE id = $1", uuid.UUID(data["feedback_id"]))
    assert len(feedback) == 1
    row = feedback[0]
    assert (row["chat_session_id"], row["customer_id"], row["agent_id"], row["rating"]) == (
        uuid.UUID(sid),
        customer.user_id,
        agent.user_id,
        4,
    )
    assert row["comment"].startswith("enc:v1:")
    assert (await session_row(ctx, sid))["satisfaction_rating"] == 4
    again = await customer.fails("chat:rate", {"session_id": sid, "rating": 1}, "conflict")
    assert again["message"]
    assert await fetchval(ctx, "SELECT count(*) FROM feedback WHERE chat_session_id = $1", uuid.UUID(sid)) == 1


async def test_rating_a_chat_no_agent_joined_is_invalid_state(cast: Cast, department: str) -> None:
    customer = await cast.customer()
    session = (await customer.ok("chat:start", {"department": department}))["session"]
    await customer.fails("chat:rate", {"session_id": session["id"], "rating": 5}, "invalid_state")


async def test_leaving_a_message_creates_a_chat_ticket_linked_to_the_session(
    cast: Cast, chat_server: ChatServer, department: str
) -> None:
    ctx = chat_server.ctx
    customer = await cast.customer()
    session = (await customer.ok("chat:start", {"department": department}))["session"]
    data = await customer.ok(
        "chat:leave_message",
        {
            "session_id": session["id"],
            "subject": "Nobody answered",
            "message": "Please call me back.",
            "email": "kim@example.com",
        },
    )
    ticket = data["ticket"]
    assert ticket["channel"] == "chat" and ticket["category"] == department
    assert ticket["customer_id"] == str(customer.user_id) and ticket["subject"] == "Nobody answered"
    assert ticket["metadata"] == {"source": "chat_offline_message", "session_id": session["id"]}  # API.md's name
    assert (await session_row(ctx, session["id"]))["ticket_id"] == uuid.UUID(ticket["id"])
    synced = await customer.ok("chat:sync", {"session_id": session["id"], "after_seq": 0})
    assert synced["session"]["ticket_id"] == ticket["id"]


async def test_ticket_events_reach_the_customer_and_supervisors_live(cast: Cast, chat_server: ChatServer) -> None:
    customer = await cast.customer()
    supervisor = await cast.staff(
        await make_agent(chat_server.ctx, new_department(), role="supervisor"), role="supervisor", status=None
    )
    ticket = (await customer.ok("chat:leave_message", {"subject": "Live?", "message": "Hi"}))["ticket"]
    for peer in (customer, supervisor):
        # The feed reads the event log in commit order: it waits while any older transaction of the
        # PostgreSQL server is still open, so it gets more time than a direct push.
        pushed = await peer.expect("ticket:created", lambda d: d["ticket"]["id"] == ticket["id"], timeout=15)
        assert pushed["ticket"]["subject"] == "Live?"


async def test_leaving_a_message_without_a_session_files_a_general_ticket(cast: Cast) -> None:
    customer = await cast.customer()
    ticket = (await customer.ok("chat:leave_message", {"subject": "After hours", "message": "Hi"}))["ticket"]
    assert ticket["channel"] == "chat" and ticket["category"] == "general"


# ------------------------------------------------------------------ agents: accept, transfer, queue, status


async def test_an_agent_accepts_a_queued_chat_and_a_second_taker_gets_conflict(
    cast: Cast, chat_server: ChatServer, department: str
) -> None:
    ctx = chat_server.ctx
    first = await cast.staff(await make_agent(ctx, department), status="away")
    second = await cast.staff(await make_agent(ctx, department), status="away")
    customer = await cast.customer()
    session = (await customer.ok("chat:start", {"department": department}))["session"]
    assert session["status"] == "queued"  # away agents get no chats by themselves

    taken = (await first.ok("chat:accept", {"session_id": session["id"]}))["session"]
    assert taken["status"] == "active" and taken["agent_id"] == str(first.user_id)
    assert (await customer.expect("chat:assigned", for_session(session["id"])))["session"]["agent_id"] == str(
        first.user_id
    )
    await first.expect("chat:assigned", for_session(session["id"]))
    await second.fails("chat:accept", {"session_id": session["id"]}, "conflict")
    assert (await agent_row(ctx, first.user_id))["active_chats"] == 1
    assert (await agent_row(ctx, second.user_id))["active_chats"] == 0
    # the accepting agent is in the session's room
    await say(customer, session["id"], "hi")
    await first.expect("chat:message", for_session(session["id"]))
    await second.fails("chat:accept", {"session_id": str(uuid.uuid4())}, "not_found")


async def test_transfer_to_another_agent_tells_everyone_and_moves_capacity(
    cast: Cast, chat_server: ChatServer, department: str
) -> None:
    ctx = chat_server.ctx
    customer, old, session = await active_chat(cast, ctx, department)
    sid = session["id"]
    new = await cast.staff(await make_agent(ctx, department, name="Noor"), status="away")
    moved = (await old.ok("chat:transfer", {"session_id": sid, "to_agent_id": str(new.user_id)}))["session"]
    assert moved["status"] == "active" and moved["agent_id"] == str(new.user_id)
    assert moved["agent"]["display_name"] == "Noor"
    for peer in (customer, old, new):
        event = await peer.expect("chat:transferred", for_session(sid))
        assert event["from_agent_id"] == str(old.user_id) and event["to_agent_id"] == str(new.user_id)
        assert event["session"]["agent_id"] == str(new.user_id)
    assert (await agent_row(ctx, old.user_id))["active_chats"] == 0
    assert (await agent_row(ctx, new.user_id))["active_chats"] == 1
    # the new agent now hears the customer, the old one does not
    text = await say(customer, sid, "still there?")
    assert (await new.expect("chat:message", for_session(sid)))["id"] == text["id"]
    await say(new, sid, "I'm taking over")
    await old.fails("chat:message", {"session_id": sid, "client_msg_id": "x", "message": "me too"}, "forbidden")
    assert old.seen("chat:message") == []
    assert len(new.seen("chat:transferred", for_session(sid))) == 1  # told once


async def test_transfer_needs_a_free_online_target(cast: Cast, chat_server: ChatServer, department: str) -> None:
    ctx = chat_server.ctx
    customer, agent, session = await active_chat(cast, ctx, department)
    sid = session["id"]
    offline = await make_agent(ctx, department)
    await agent.fails("chat:transfer", {"session_id": sid, "to_agent_id": str(offline)}, "unavailable")
    await agent.fails("chat:transfer", {"session_id": sid, "to_agent_id": str(uuid.uuid4())}, "not_found")
    await agent.fails("chat:transfer", {"session_id": sid, "department": new_department()}, "unavailable")
    error = await agent.fails("chat:transfer", {"session_id": sid}, "validation_failed")
    assert "to_agent_id" in error["details"]


async def test_transfer_to_a_department_picks_a_free_agent_there(
    cast: Cast, chat_server: ChatServer, department: str
) -> None:
    ctx = chat_server.ctx
    customer, agent, session = await active_chat(cast, ctx, department)
    billing = new_department()
    target = await online_agent(cast, ctx, billing)
    moved = (await agent.ok("chat:transfer", {"session_id": session["id"], "department": billing}))["session"]
    assert moved["department"] == billing and moved["agent_id"] == str(target.user_id)
    await target.expect("chat:transferred", for_session(session["id"]))


async def test_queue_snapshot_lists_the_queue_my_chats_and_the_agents(
    cast: Cast, chat_server: ChatServer, department: str
) -> None:
    ctx = chat_server.ctx
    customer, agent, session = await active_chat(cast, ctx, department)
    await agent.ok("agent:status", {"status": "away"})
    waiting = [await cast.customer() for _ in range(3)]
    ids = [(await c.ok("chat:start", {"department": department}))["session"]["id"] for c in waiting]

    snap = await agent.ok("queue:snapshot", {})
    assert [s["id"] for s in snap["queued"]] == ids
    assert [s["queue_position"] for s in snap["queued"]] == [1, 2, 3]
    assert all(s["status"] == "queued" and s["department"] == department for s in snap["queued"])
    mine = [s["id"] for s in snap["mine"]]
    assert mine == [session["id"]] and snap["mine"][0]["agent_id"] == str(agent.user_id)
    roster = {a["id"]: a for a in snap["agents"]}
    assert roster[str(agent.user_id)]["status"] == "away"
    assert roster[str(agent.user_id)]["capacity"] == 2
    assert roster[str(agent.user_id)]["active_chats"] == len(mine)
    assert set(roster[str(agent.user_id)]) == {"id", "display_name", "status", "active_chats", "capacity"}

    supervisor_id = await make_agent(ctx, new_department(), role="supervisor")
    supervisor = await cast.staff(supervisor_id, role="supervisor", status=None)
    theirs = await supervisor.ok("queue:snapshot", {"department": department})
    assert [s["id"] for s in theirs["queued"]] == ids
    everything = await supervisor.ok("queue:snapshot", {})
    assert set(ids) <= {s["id"] for s in everything["queued"]}


async def test_an_away_agent_gets_no_new_chats_and_going_online_drains_the_queue(
    cast: Cast, chat_server: ChatServer, department: str
) -> None:
    ctx = chat_server.ctx
    agent = await online_agent(cast, ctx, department)
    away = await agent.ok("agent:status", {"status": "away"})
    assert away["agent"]["status"] == "away" and away["agent"]["id"] == str(agent.user_id)
    customers = [await cast.customer() for _ in range(3)]
    sessions = [(await c.ok("chat:start", {"department": department}))["session"] for c in customers]
    assert [s["status"] for s in sessions] == ["queued"] * 3
    assert [s["queue_position"] for s in sessions] == [1, 2, 3]

    back = await agent.ok("agent:status", {"status": "online"})
    assert back["agent"]["status"] == "online"
    for s in sessions[:2]:  # capacity 2, oldest first
        await agent.expect("chat:assigned", for_session(s["id"]))
    assert (await customers[0].expect("chat:assigned", for_session(sessions[0]["id"])))["session"]["status"] == "active"
    third = await customers[2].expect("chat:queue_position", lambda d: d["queue_position"] == 1)
    assert third["session_id"] == sessions[2]["id"]
    assert (await agent_row(ctx, agent.user_id))["active_chats"] == 2


async def test_going_offline_hands_the_agents_chats_back_to_the_queue(
    cast: Cast, chat_server: ChatServer, department: str
) -> None:
    ctx = chat_server.ctx
    customer, agent, session = await active_chat(cast, ctx, department)
    sid = session["id"]
    await agent.ok("agent:status", {"status": "offline"})
    event = await customer.expect("chat:transferred", for_session(sid))
    assert event["to_agent_id"] is None and event["session"]["status"] == "queued"
    assert event["session"]["queue_position"] == 1
    assert (await agent_row(ctx, agent.user_id))["active_chats"] == 0
    helper = await online_agent(cast, ctx, department)
    assert (await helper.expect("chat:assigned", for_session(sid)))["session"]["agent_id"] == str(helper.user_id)


async def test_queue_position_pushes_follow_the_queue(cast: Cast, department: str) -> None:
    first, second = await cast.customer(), await cast.customer()
    s1 = (await first.ok("chat:start", {"department": department}))["session"]
    s2 = (await second.ok("chat:start", {"department": department}))["session"]
    pushed = await second.expect("chat:queue_position", lambda d: d["session_id"] == s2["id"])
    assert pushed["queue_position"] == 2 and "estimated_wait_seconds" in pushed
    await first.ok("chat:end", {"session_id": s1["id"]})
    moved = await second.expect("chat:queue_position", lambda d: d["session_id"] == s2["id"])
    assert moved["queue_position"] == 1


async def test_queue_updates_reach_the_departments_agents_and_supervisors(
    cast: Cast, chat_server: ChatServer, department: str
) -> None:
    ctx = chat_server.ctx
    agent = await cast.staff(await make_agent(ctx, department), status="away")
    supervisor = await cast.staff(
        await make_agent(ctx, new_department(), role="supervisor"), role="supervisor", status=None
    )
    outsider = await cast.staff(await make_agent(ctx, new_department()), status="away")
    customer = await cast.customer()
    session = (await customer.ok("chat:start", {"department": department}))["session"]

    def has_session(data: dict) -> bool:
        return data["department"] == department and any(s["id"] == session["id"] for s in data["queued"])

    for peer in (agent, supervisor):
        update = await peer.expect("queue:updated", has_session)
        assert update["queued"][0]["queue_position"] == 1
    await outsider.ok("queue:snapshot", {})  # anything pushed to it before this ack has arrived
    assert outsider.seen("queue:updated", lambda d: d["department"] == department) == []


async def test_presence_updates_reach_other_agents(cast: Cast, chat_server: ChatServer, department: str) -> None:
    ctx = chat_server.ctx
    watcher = await online_agent(cast, ctx, department)
    other = await online_agent(cast, ctx, department, max_chats=4)
    await other.ok("agent:status", {"status": "away"})
    update = await watcher.expect(
        "presence:updated", lambda d: d["agent_id"] == str(other.user_id) and d["status"] == "away"
    )
    assert update == {"agent_id": str(other.user_id), "status": "away", "active_chats": 0, "capacity": 4}


# ------------------------------------------------------------------ error codes


async def test_invalid_payloads_are_validation_failed_with_details(
    cast: Cast, chat_server: ChatServer, department: str
) -> None:
    customer, agent, session = await active_chat(cast, chat_server.ctx, department)
    sid = session["id"]
    error = await customer.fails("chat:message", {"session_id": sid}, "validation_failed")
    assert {"client_msg_id", "message"} <= set(error["details"])
    error = await customer.fails(
        "chat:message", {"session_id": sid, "client_msg_id": "v", "message": ""}, "validation_failed"
    )
    assert list(error["details"]) == ["message"]
    error = await customer.fails(
        "chat:message", {"session_id": sid, "client_msg_id": "v", "message": "x" * 5001}, "validation_failed"
    )
    assert "message" in error["details"]
    error = await customer.fails("chat:rate", {"session_id": sid, "rating": 6}, "validation_failed")
    assert "rating" in error["details"]
    error = await customer.fails("chat:start", {"department": department, "colour": "red"}, "validation_failed")
    assert "colour" in error["details"]
    await customer.fails("chat:sync", "not an object", "validation_failed")
    error = await agent.fails("agent:status", {"status": "busy"}, "validation_failed")
    assert "status" in error["details"]
    error = await customer.fails("chat:read", {"session_id": sid, "up_to_seq": -1}, "validation_failed")
    assert "up_to_seq" in error["details"]
    assert (
        await fetchval(chat_server.ctx, "SELECT count(*) FROM chat_messages WHERE session_id = $1", uuid.UUID(sid)) == 0
    )


async def test_another_customers_session_is_not_found(cast: Cast, chat_server: ChatServer, department: str) -> None:
    owner, agent, session = await active_chat(cast, chat_server.ctx, department)
    sid = session["id"]
    stranger = await cast.customer()
    for event, data in (
        ("chat:message", {"session_id": sid, "client_msg_id": "s", "message": "hi"}),
        ("chat:sync", {"session_id": sid, "after_seq": 0}),
        ("chat:typing", {"session_id": sid, "typing": True}),
        ("chat:read", {"session_id": sid, "up_to_seq": 0}),
        ("chat:end", {"session_id": sid}),
        ("chat:rate", {"session_id": sid, "rating": 3}),
        ("chat:leave_message", {"session_id": sid, "subject": "x", "message": "y"}),
    ):
        await stranger.fails(event, data, "not_found")
    await stranger.fails("chat:sync", {"session_id": session["session_key"], "after_seq": 0}, "not_found")
    await stranger.fails("chat:sync", {"session_id": "chat_doesnotexist", "after_seq": 0}, "not_found")
    assert (await session_row(chat_server.ctx, sid))["status"] == "active"


async def test_an_agent_may_not_write_in_a_chat_assigned_to_someone_else(
    cast: Cast, chat_server: ChatServer, department: str
) -> None:
    ctx = chat_server.ctx
    customer, agent, session = await active_chat(cast, ctx, department)
    sid = session["id"]
    colleague = await online_agent(cast, ctx, department)
    await colleague.fails("chat:message", {"session_id": sid, "client_msg_id": "c", "message": "hi"}, "forbidden")
    await colleague.fails("chat:end", {"session_id": sid}, "forbidden")
    await colleague.fails("chat:transfer", {"session_id": sid, "to_agent_id": str(colleague.user_id)}, "forbidden")
    assert await fetchval(ctx, "SELECT count(*) FROM chat_messages WHERE session_id = $1", uuid.UUID(sid)) == 0
    assert (await session_row(ctx, sid))["status"] == "active"


async def test_an_admin_without_an_agent_profile_may_not_accept(cast: Cast, department: str) -> None:
    customer = await cast.customer()
    session = (await customer.ok("chat:start", {"department": department}))["session"]
    admin = await cast.staff(uuid.uuid4(), role="admin", status=None)
    await admin.fails("chat:accept", {"session_id": session["id"]}, "forbidden")


async def test_an_unexpected_error_is_internal_without_details(
    cast: Cast, chat_server: ChatServer, department: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.services import chat

    async def broken(*args, **kwargs):
        raise RuntimeError("database exploded at /srv/app/secret.py line 3")

    customer, agent, session = await active_chat(cast, chat_server.ctx, department)
    monkeypatch.setattr(chat, "typing", broken)
    error = await customer.fails("chat:typing", {"session_id": session["id"], "typing": True}, "internal")
    assert "exploded" not in error["message"] and error["details"] == {}


# ------------------------------------------------------------------ rate limit


@pytest.fixture(scope="module")
async def limited_server(test_env: dict[str, str]) -> AsyncIterator[ChatServer]:
    settings = Settings.from_env({**test_env, "CHAT_RATE_LIMIT_MESSAGES_PER_MINUTE": "3"})
    async with open_context(settings) as ctx, serve_in_process(settings, ctx) as server:
        yield server


async def test_messages_over_the_rate_limit_are_refused_and_not_stored(
    limited_server: ChatServer, department: str
) -> None:
    ctx = limited_server.ctx
    cast = Cast(limited_server.url, limited_server.settings.jwt_secret)
    try:
        customer, agent, session = await active_chat(cast, ctx, department)
        sid = session["id"]
        for i in range(3):
            await say(customer, sid, f"message {i}")
        error = await customer.fails(
            "chat:message", {"session_id": sid, "client_msg_id": "over", "message": "one too many"}, "rate_limited"
        )
        assert 0 < error["details"]["retry_after_ms"] <= 60_000
        assert await fetchval(ctx, "SELECT count(*) FROM chat_messages WHERE session_id = $1", uuid.UUID(sid)) == 3
        await settle(customer, agent, sid)
        assert len(agent.seen("chat:message")) == 3
        # the limit is per sender: the agent may still answer
        await say(agent, sid, "I'm here")
    finally:
        await cast.close()


# ------------------------------------------------------------------ storage and events


async def test_messages_are_encrypted_at_rest(cast: Cast, chat_server: ChatServer, department: str) -> None:
    customer, agent, session = await active_chat(cast, chat_server.ctx, department)
    sent = await say(customer, session["id"], "My card number is 4111 1111 1111 1111")
    raw = await fetchval(chat_server.ctx, "SELECT message FROM chat_messages WHERE id = $1", uuid.UUID(sent["id"]))
    assert raw.startswith("enc:v1:") and "4111" not in raw


async def test_every_state_change_writes_its_event(cast: Cast, chat_server: ChatServer, department: str) -> None:
    ctx = chat_server.ctx
    customer, agent, session = await active_chat(cast, ctx, department)
    sid = session["id"]
    await say(customer, sid, "hello")
    other = await online_agent(cast, ctx, department)
    await agent.ok("chat:transfer", {"session_id": sid, "to_agent_id": str(other.user_id)})
    await other.ok("chat:end", {"session_id": sid})
    rows = await fetch(
        ctx,
        "SELECT type, payload FROM support_events WHERE entity_type = 'chat_session' "
        "AND entity_id = $1 ORDER BY created_at, type",
        sid,
    )
    types = {r["type"] for r in rows}
    assert {
        "chat.started",
        "chat.queued",
        "chat.assigned",
        "chat.message",
        "chat.transferred",
        "chat.ended",
    } <= types, types
    for row in rows:
        assert "message" not in row["payload"] and "hello" not in str(row["payload"])  # no free text
    agent_ids = [r["id"] for r in await fetch(ctx, "SELECT id FROM support_agents WHERE user_id = $1", agent.user_id)]
    status_events = await fetchval(
        ctx,
        "SELECT count(*) FROM support_events WHERE type = 'agent.status_changed' AND entity_id = $1",
        str(agent_ids[0]),
    )
    assert status_events >= 1


async def test_sync_pages_a_long_history_with_has_more(chat_server, cast, department, monkeypatch):
    from app.services import chat as chat_service

    monkeypatch.setattr(chat_service, "SYNC_LIMIT", 3)  # a small page, so the paging shows
    customer = await cast.customer()
    session = (await customer.ok("chat:start", {"department": department}))["session"]
    for i in range(5):
        await customer.ok("chat:message", {"session_id": session["id"], "client_msg_id": f"p{i}", "message": f"m{i}"})
    first = await customer.ok("chat:sync", {"session_id": session["id"], "after_seq": 0})
    assert [m["seq"] for m in first["messages"]] == [1, 2, 3] and first["has_more"] is True
    rest = await customer.ok("chat:sync", {"session_id": session["id"], "after_seq": 3})
    assert [m["seq"] for m in rest["messages"]] == [4, 5] and rest["has_more"] is False


async def test_busy_replica_answers_unavailable_at_once_and_stores_nothing(chat_server, cast, department, monkeypatch):
    from sockets.server import STATE

    customer = await cast.customer()
    session = (await customer.ok("chat:start", {"department": department}))["session"]
    monkeypatch.setattr(chat_server.app[STATE], "max_in_flight", 0)
    error = await customer.fails(
        "chat:message", {"session_id": session["id"], "client_msg_id": "busy", "message": "hello"}, "unavailable"
    )
    assert error["details"]["retry_after_ms"] > 0
    monkeypatch.undo()
    synced = await customer.ok("chat:sync", {"session_id": session["id"], "after_seq": 0})
    assert synced["messages"] == []


async def test_a_replica_whose_event_loop_runs_late_sheds_events_then_recovers(chat_server, cast, department):
    from sockets.server import STATE

    state = chat_server.app[STATE]
    customer = await cast.customer()
    session = (await customer.ok("chat:start", {"department": department}))["session"]
    state.lag.max_lag = 0.05
    try:
        time.sleep(0.2)  # the in-process replica's loop is blocked: what an overloaded CPU does to it
        while not state.lag.behind:
            await asyncio.sleep(0)  # the lag sampler wakes late and records it
        error = await customer.fails(
            "chat:message", {"session_id": session["id"], "client_msg_id": "late", "message": "hello"}, "unavailable"
        )
        assert 0 < error["details"]["retry_after_ms"] <= 1000
        while state.lag.behind:
            await asyncio.sleep(state.lag.interval)  # the next sample finds the loop on time again
        sent = await customer.ok(
            "chat:message", {"session_id": session["id"], "client_msg_id": "late", "message": "hello"}
        )
        assert sent["message"]["seq"] == 1  # the refused try stored nothing; the retry is the first
    finally:
        state.lag.max_lag = float("inf")
