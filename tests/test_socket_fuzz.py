"""Socket fuzzing: every client event of both namespaces with wrong types, huge and deeply nested
values, lone surrogates, NULs, out-of-range integers, unknown fields and non-object payloads. The
server answers every call (never ``internal``, never silence) and stays up for everyone."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from chat_support import Cast, ChatServer, Peer, make_agent, new_department
from sockets import agent as agent_ns
from sockets import customer as customer_ns
from sockets.server import STATE

pytest_plugins = ["chat_fixtures"]

NESTED: Any = "leaf"
for _ in range(60):
    NESTED = {"k": NESTED}
HOSTILE_VALUES: list[Any] = [
    None,
    0,
    -1,
    2**31,
    -(2**31) - 1,
    2**63,
    1e308,
    True,
    "",
    "x" * 200_000,
    "a\ud800b",
    "\udfff",
    "a\x00b",
    [],
    {},
    [1, [2, [3]]],
    NESTED,
    {"$ne": 1},
]
NON_OBJECTS: list[Any] = [1, "text", [], [{}], True, 1.5]
ANSWERS = {
    "validation_failed",
    "not_found",
    "forbidden",
    "invalid_state",
    "conflict",
    "unavailable",
    "unknown_event",
    "unauthorized",
}


def events(namespace: str) -> dict[str, Any]:
    module = customer_ns if namespace == "/customer" else agent_ns
    found = {name: schema for name, (schema, _) in module.EVENTS.items()}
    found["auth:refresh"] = None
    return found


def fields_of(schema: Any) -> list[str]:
    return sorted(schema.fields) if schema is not None else ["token"]


@pytest.fixture
async def roomy(chat_server: ChatServer):
    """Budgets out of the way: this module sends far more than a person would."""
    state = chat_server.app[STATE]
    saved = state.events_per_second, state.event_burst
    state.events_per_second, state.event_burst = 1e6, 1e6
    state.budgets.clear()
    yield
    state.events_per_second, state.event_burst = saved
    state.budgets.clear()


async def check_answered(peer: Peer, event: str, payload: Any) -> dict:
    ack = await peer.call(event, payload, timeout=20)
    assert isinstance(ack, dict) and isinstance(ack.get("ok"), bool), (event, payload, ack)
    if not ack["ok"]:
        assert ack["error"]["code"] in ANSWERS, (event, str(payload)[:200], ack)
    return ack


async def fuzz(peer: Peer, session_id: str) -> int:
    calls = 0
    for event, schema in events(peer.namespace).items():
        for payload in NON_OBJECTS:
            await check_answered(peer, event, payload)
            calls += 1
        for field in fields_of(schema) + ["unknown_field"]:
            for value in HOSTILE_VALUES:
                payload = {"session_id": session_id, field: value}
                await check_answered(peer, event, payload)
                calls += 1
    return calls


async def test_every_customer_event_answers_hostile_payloads(cast: Cast, roomy):
    customer = await cast.customer()
    session = (await customer.ok("chat:start", {"department": new_department()}))["session"]
    calls = await fuzz(customer, session["id"])
    assert calls > 500
    await customer.ok("chat:sync", {"session_id": session["id"], "after_seq": 0})  # still serving


async def test_every_agent_event_answers_hostile_payloads(cast: Cast, ctx, roomy):
    department = new_department()
    supervisor = await cast.staff(await make_agent(ctx, department, role="supervisor"), role="supervisor")
    customer = await cast.customer()
    session = (await customer.ok("chat:start", {"department": department}))["session"]
    calls = await fuzz(supervisor, session["id"])
    assert calls > 500
    await supervisor.ok("queue:snapshot", {})


@pytest.mark.parametrize("namespace", ["/customer", "/agent"])
async def test_the_other_namespaces_events_and_nonsense_names_are_unknown_event(cast: Cast, ctx, namespace, roomy):
    peer = (
        await cast.customer() if namespace == "/customer" else await cast.staff(await make_agent(ctx, new_department()))
    )
    other = events("/agent" if namespace == "/customer" else "/customer")
    mine = events(namespace)
    for event in [e for e in other if e not in mine] + ["", " ", "chat:" + "x" * 300, "a\ud800b", "__proto__"]:
        await peer.fails(event, {"session_id": str(uuid.uuid4())}, "unknown_event")
