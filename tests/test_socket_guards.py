"""What every socket event meets before its handler: an answer for events nobody handles, one
payload argument, bounded nesting, a per-socket budget, a live token (``token_expired``,
``auth:refresh``), and ``unavailable`` (never ``internal``) while a dependency is down."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid

import pytest

from app.auth import issue_token
from chat_support import Cast, ChatServer, Peer, new_department
from sockets import server as socket_server
from sockets.server import STATE

pytest_plugins = ["chat_fixtures"]


def socket_state(chat_server: ChatServer):
    return chat_server.app[STATE]


def server_sid(peer: Peer) -> str:
    return peer.sio.get_sid(peer.namespace)


# ------------------------------------------------------------------ events nobody handles


@pytest.mark.parametrize(
    "event", ["no:such:event", "chat:accept", "queue:snapshot", "connect", "disconnect", "x" * 500]
)
async def test_an_event_the_customer_namespace_does_not_know_is_unknown_event(cast: Cast, event):
    customer = await cast.customer()
    await customer.fails(event, {}, "unknown_event")
    await customer.ok("chat:start", {"department": new_department()})  # and the socket still works


async def test_a_customer_event_on_the_agent_namespace_is_unknown_event(cast: Cast, ctx):
    from chat_support import make_agent

    agent = await cast.staff(await make_agent(ctx, new_department()))
    await agent.fails("chat:rate", {"session_id": str(uuid.uuid4()), "rating": 5}, "unknown_event")


async def test_extra_arguments_are_validation_failed(cast: Cast):
    customer = await cast.customer()
    ack = await customer.sio.call(
        "chat:start", ({"department": new_department()}, "extra"), namespace="/customer", timeout=10
    )
    assert ack["ok"] is False and ack["error"]["code"] == "validation_failed", ack


@pytest.mark.parametrize("depth", [40, 5000, 100_000])
async def test_a_payload_nested_too_deep_is_validation_failed_before_decoding(cast: Cast, depth):
    customer = await cast.customer()
    text = "[" * depth + "1" + "]" * depth
    # send the raw packet text: the client's own encoder would exhaust its recursion limit
    ack = await asyncio.wait_for(_raw_call(customer, "chat:start", '{"metadata":{"k":' + text + "}}"), 10)
    assert ack["ok"] is False and ack["error"]["code"] == "validation_failed", ack
    await customer.ok("chat:start", {"department": new_department()})


async def _raw_call(peer: Peer, event: str, payload_json: str) -> dict:
    """Emit ``event`` with a payload given as JSON text (a Socket.IO EVENT packet asking for an
    ack, written by hand), and await its ack."""
    client = peer.sio
    future = asyncio.get_running_loop().create_future()
    ack_id = client._generate_ack_id(peer.namespace, lambda *args: future.set_result(args[0] if args else None))
    await client.eio.send(f'2{peer.namespace},{ack_id}["{event}",{payload_json}]')
    return await future


# ------------------------------------------------------------------ per-socket budgets


async def test_a_flooding_socket_is_rate_limited_and_its_neighbour_is_not(cast: Cast, chat_server: ChatServer):
    flooder, neighbour = await cast.customer(), await cast.customer()
    session = (await flooder.ok("chat:start", {"department": new_department()}))["session"]
    state = socket_state(chat_server)
    acks = await asyncio.gather(
        *(
            flooder.call("chat:typing", {"session_id": session["id"], "typing": True})
            for _ in range(int(state.event_burst) + 80)
        )
    )
    limited = [a for a in acks if not a["ok"]]
    assert limited, "no event was limited"
    assert {a["error"]["code"] for a in limited} == {"rate_limited"}
    assert all(a["error"]["details"]["retry_after_ms"] > 0 for a in limited)
    await neighbour.ok("chat:start", {"department": new_department()})


# ------------------------------------------------------------------ token lifetime


async def test_events_after_the_token_expires_are_token_expired_until_auth_refresh(cast: Cast, chat_server):
    customer = await cast.customer()
    state = socket_state(chat_server)
    sid = server_sid(customer)
    namespace, principal = state.sockets[sid]
    state.sockets[sid] = (namespace, dataclasses.replace(principal, expires_at=time.time() - 1))
    await customer.fails("chat:start", {"department": new_department()}, "token_expired")

    other = issue_token(chat_server.settings.jwt_secret, uuid.uuid4(), "customer")
    await customer.fails("auth:refresh", {"token": other}, "unauthorized")
    await customer.fails("auth:refresh", {"token": "not-a-jwt"}, "unauthorized")
    await customer.fails("auth:refresh", {}, "validation_failed")
    fresh = issue_token(chat_server.settings.jwt_secret, customer.user_id, "customer", ttl=600)
    data = await customer.ok("auth:refresh", {"token": fresh})
    assert data["expires_at"]
    await customer.ok("chat:start", {"department": new_department()})


async def test_a_socket_is_ended_when_its_token_expires(cast: Cast, chat_server, monkeypatch):
    monkeypatch.setattr(socket_server, "TOKEN_GRACE_SECONDS", 0.0)
    peer = Peer(chat_server.url, chat_server.settings.jwt_secret, "customer", "/customer")
    cast.peers.append(peer)
    gone = asyncio.Event()
    peer.sio.on("disconnect", lambda *a: gone.set(), namespace="/customer")
    token = issue_token(chat_server.settings.jwt_secret, peer.user_id, "customer", ttl=2)
    await peer.sio.connect(
        chat_server.url,
        auth={"token": token},
        namespaces=["/customer"],
        socketio_path="ws/chat",
        transports=["websocket"],
        wait_timeout=10,
    )
    expired = await peer.expect("auth:expired", timeout=15)
    assert expired["code"] == "token_expired"
    await asyncio.wait_for(gone.wait(), 10)


# ------------------------------------------------------------------ outages


async def test_a_database_outage_is_unavailable_not_internal(cast: Cast, chat_server, monkeypatch):
    customer = await cast.customer()

    def down(*args, **kwargs):
        raise ConnectionRefusedError(111, "Connect call failed")

    monkeypatch.setattr(chat_server.ctx.db, "connection", down)
    error = await customer.fails("chat:start", {"department": new_department()}, "unavailable")
    assert error["details"]["retry_after_ms"] > 0


# ------------------------------------------------------------------ departments


async def test_an_agent_neither_sees_nor_takes_another_departments_queue(cast: Cast, ctx):
    from chat_support import make_agent

    mine, theirs = new_department(), new_department()
    agent = await cast.staff(await make_agent(ctx, mine))
    customer = await cast.customer()
    session = (await customer.ok("chat:start", {"department": theirs}))["session"]
    assert session["status"] == "queued"
    await agent.fails("queue:snapshot", {"department": theirs}, "forbidden")
    await agent.fails("chat:accept", {"session_id": session["id"]}, "forbidden")
    assert (await agent.ok("queue:snapshot", {"department": mine}))["queued"] == []
    supervisor = await cast.staff(await make_agent(ctx, mine, role="supervisor"), role="supervisor")
    snapshot = await supervisor.ok("queue:snapshot", {"department": theirs})
    assert [s["id"] for s in snapshot["queued"]] == [session["id"]]
    await supervisor.ok("chat:accept", {"session_id": session["id"]})
