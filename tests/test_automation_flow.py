"""Issue 7 ticket automation on its own app with TICKET_AUTO_ASSIGNMENT and AUTO_RESPONSE_ENABLED
on: categorisation and priority rules, least-loaded skilled auto-assignment with its capacity
ceiling, exact counters under concurrent creation on two app instances, pick-up when capacity
frees, auto-responses on tickets and the chat greeting. Every test uses its own department."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from helpers import (
    TICKETS,
    create_for,
    create_ticket,
    execute,
    fetch,
    fetchval,
    problem,
    set_status,
)

from app.config import Settings
from app.context import AppContext, open_context
from app.services import automation
from app.server import build_rest

CAT_RULES = "/api/v1/automation/categorization-rules"
PRIO_RULES = "/api/v1/automation/priority-rules"
CEILING = 4  # MAX_TICKETS_PER_AGENT of these apps


def word() -> str:
    """A unique lowercase word (letters only, so full-text search keeps it whole)."""
    return "zq" + "".join(chr(97 + int(c, 16) % 26) for c in uuid.uuid4().hex[:10])


def auto_settings(test_env: dict[str, str], ceiling: int = CEILING) -> Settings:
    return Settings.from_env(
        {
            **test_env,
            "TICKET_AUTO_ASSIGNMENT": "true",
            "AUTO_RESPONSE_ENABLED": "true",
            "MAX_TICKETS_PER_AGENT": str(ceiling),
        }
    )


@pytest.fixture(scope="module")
async def auto(test_env: dict[str, str]) -> AsyncIterator[tuple[AppContext, TestClient]]:
    settings = auto_settings(test_env)
    async with open_context(settings) as ctx, TestClient(TestServer(build_rest(settings, context=ctx))) as client:
        yield ctx, client


async def department(ctx: AppContext) -> str:
    name = f"dept-{word()}"
    await execute(ctx, "INSERT INTO departments (name) VALUES ($1)", name)
    return name


async def agent(
    ctx: AppContext,
    dept: str,
    *,
    skills: list[str] | None = None,
    max_tickets: int = 10,
    current: int = 0,
    status: str = "online",
    available: bool = True,
) -> uuid.UUID:
    user_id = uuid.uuid4()
    await execute(
        ctx,
        "INSERT INTO support_agents (user_id, display_name, department, skills, max_tickets, "
        "current_tickets, status, is_online, is_available) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        user_id,
        f"Agent {user_id.hex[:6]}",
        dept,
        skills or [],
        max_tickets,
        current,
        status,
        status != "offline",
        available,
    )
    return user_id


async def load(ctx: AppContext, user_id: uuid.UUID) -> int:
    return await fetchval(ctx, "SELECT current_tickets FROM support_agents WHERE user_id = $1", user_id)


async def held(ctx: AppContext, user_id: uuid.UUID) -> int:
    return await fetchval(
        ctx,
        "SELECT count(*) FROM support_tickets WHERE agent_id = $1 AND status NOT IN ('resolved', 'closed')",
        user_id,
    )


# ---------------------------------------------------------------- categorisation and priority


async def test_categorisation_rules_pick_the_highest_priority_match(auto, users):
    ctx, client = auto
    _, admin = users.new("admin")
    _, customer = users.new("customer")
    kw1, kw2 = word(), word()
    low_dept, high_dept = await department(ctx), await department(ctx)
    r = await client.post(
        CAT_RULES, json={"keywords": [kw1.upper()], "category": low_dept, "priority": 1}, headers=admin
    )
    assert r.status == 201, await r.text()
    low = await r.json()
    r = await client.post(
        CAT_RULES, json={"keywords": [kw2, "never-" + kw2], "category": high_dept, "priority": 5}, headers=admin
    )
    high = await r.json()
    try:
        ticket = await create_ticket(client, customer, description=f"About {kw1} please")
        assert (ticket["category"], ticket["department"]) == (low_dept, low_dept)
        ticket = await create_ticket(client, customer, subject=f"{kw1} and {kw2.upper()}")
        assert ticket["category"] == high_dept
        ticket = await create_ticket(client, customer, category="billing", subject=kw2)
        assert ticket["category"] == "billing"  # a given category is kept
        assert (await create_ticket(client, customer))["category"] == "general"
        # inactive rules do not apply
        r = await client.put(f"{CAT_RULES}/{high['id']}", json={"is_active": False}, headers=admin)
        assert r.status == 200 and (await r.json())["is_active"] is False
        assert (await create_ticket(client, customer, subject=f"{kw1} {kw2}"))["category"] == low_dept
    finally:
        for rule in (low, high):
            await client.delete(f"{CAT_RULES}/{rule['id']}", headers=admin)
    assert (await client.get(f"{CAT_RULES}/{low['id']}", headers=admin)).status == 404


async def test_rule_endpoints_are_for_admins_and_validated(auto, users):
    _, client = auto
    _, admin = users.new("admin")
    _, supervisor = users.new("supervisor")
    await problem(await client.get(CAT_RULES, headers=supervisor), 403)
    await problem(
        await client.post(
            PRIO_RULES, json={"conditions": {"has_booking": True}, "set_priority": "high"}, headers=supervisor
        ),
        403,
    )
    await problem(
        await client.post(CAT_RULES, json={"keywords": ["x"], "category": "c", "colour": 1}, headers=admin), 422
    )
    await problem(await client.post(CAT_RULES, json={"keywords": [], "category": "c"}, headers=admin), 422)
    await problem(
        await client.post(PRIO_RULES, json={"conditions": {"vip": True}, "set_priority": "high"}, headers=admin), 422
    )
    await problem(await client.post(PRIO_RULES, json={"conditions": {}, "set_priority": "high"}, headers=admin), 422)
    await problem(
        await client.post(
            PRIO_RULES, json={"conditions": {"has_booking": True}, "set_priority": "asap"}, headers=admin
        ),
        422,
    )
    r = await client.get(PRIO_RULES, headers=admin)
    assert r.status == 200 and "items" in await r.json()


async def test_priority_rules_keywords_tier_and_booking(auto, users):
    _, client = auto
    _, admin = users.new("admin")
    _, customer = users.new("customer")
    kw, tier, tier2 = word(), word(), word()
    bodies = [
        {"conditions": {"keywords_any": [kw, "x" + kw]}, "set_priority": "urgent", "priority": 10},
        {"conditions": {"customer_tier": [tier]}, "set_priority": "high", "priority": 5},
        {"conditions": {"customer_tier": [tier2], "has_booking": True}, "set_priority": "low", "priority": 1},
    ]
    rules = []
    for b in bodies:
        r = await client.post(PRIO_RULES, json=b, headers=admin)
        assert r.status == 201, await r.text()
        rules.append(await r.json())
    try:
        assert (await create_ticket(client, customer, description=f"{kw.upper()}!"))["priority"] == "urgent"
        assert (await create_ticket(client, customer, metadata={"customer_tier": tier}))["priority"] == "high"
        assert (await create_ticket(client, customer, subject=kw, metadata={"customer_tier": tier}))[
            "priority"
        ] == "urgent"
        assert (await create_ticket(client, customer, metadata={"customer_tier": tier2}))["priority"] == "medium"
        assert (await create_ticket(client, customer, metadata={"customer_tier": tier2, "booking_id": "B-1"}))[
            "priority"
        ] == "low"
        assert (await create_ticket(client, customer))["priority"] == "medium"
        _, staff = users.new("supervisor")
        given = await create_for(client, staff, uuid.uuid4(), subject=kw, priority="low")
        assert given["priority"] == "low"  # a given priority is kept
    finally:
        for rule in rules:
            await client.delete(f"{PRIO_RULES}/{rule['id']}", headers=admin)


# ---------------------------------------------------------------- auto-assignment


async def test_least_loaded_skilled_available_agent_gets_the_ticket(auto, users):
    ctx, client = auto
    _, customer = users.new("customer")
    dept = await department(ctx)
    busy = await agent(ctx, dept, skills=[dept], current=2)
    skilled = await agent(ctx, dept, skills=["Refunds", dept.upper()], current=1)
    unskilled = await agent(ctx, dept, skills=[], current=0)
    await agent(ctx, dept, skills=[dept], status="offline")
    await agent(ctx, dept, skills=[dept], available=False)
    ticket = await create_ticket(client, customer, category=dept)
    assert ticket["agent_id"] == str(skilled)
    assert ticket["assigned_at"] is not None
    assert await load(ctx, skilled) == 2
    events = await fetch(
        ctx, "SELECT payload FROM support_events WHERE type = 'ticket.assigned' AND entity_id = $1", ticket["id"]
    )
    assert len(events) == 1 and events[0]["payload"]["agent_id"] == str(skilled)
    # a tie on load between skilled agents: either; then the unskilled one only when no skilled fits
    second = await create_ticket(client, customer, category=dept)
    assert second["agent_id"] in (str(skilled), str(busy))
    await execute(
        ctx, "UPDATE support_agents SET is_available = false WHERE user_id = ANY($1::uuid[])", [busy, skilled]
    )
    third = await create_ticket(client, customer, category=dept)
    assert third["agent_id"] == str(unskilled)
    assert await load(ctx, unskilled) == 1


async def test_capacity_ceiling_and_pick_up_when_capacity_frees(auto, users):
    ctx, client = auto
    _, customer = users.new("customer")
    _, supervisor = users.new("supervisor")
    dept = await department(ctx)
    small = await agent(ctx, dept, max_tickets=2)
    big = await agent(ctx, dept, max_tickets=50)  # capped by MAX_TICKETS_PER_AGENT
    tickets = [await create_ticket(client, customer, category=dept) for _ in range(CEILING + 2 + 2)]
    assigned = [t for t in tickets if t["agent_id"]]
    waiting = [t for t in tickets if not t["agent_id"]]
    assert len(assigned) == CEILING + 2 and len(waiting) == 2
    assert (await load(ctx, small), await load(ctx, big)) == (2, CEILING)
    assert all(t["status"] == "open" for t in waiting)
    # resolving one of small's tickets frees capacity: the oldest waiting ticket is picked up at once
    mine = next(t for t in assigned if t["agent_id"] == str(small))
    r = await set_status(client, supervisor, mine["id"], "resolved")
    assert r.status == 200, await r.text()
    got = await (await client.get(f"{TICKETS}/{waiting[0]['id']}", headers=supervisor)).json()
    assert got["agent_id"] == str(small) and got["assigned_at"] is not None
    assert await load(ctx, small) == 2 == await held(ctx, small)
    # reopening goes back over the agent's load (manual work is never refused) ...
    r = await set_status(client, supervisor, mine["id"], "open")
    assert r.status == 200
    assert await load(ctx, small) == 3 == await held(ctx, small)
    # ... deleting and reassigning count too; the sweep (the cluster duty) picks up the rest
    await client.delete(f"{TICKETS}/{mine['id']}", headers=supervisor)
    assert await load(ctx, small) == 2 == await held(ctx, small)
    other = await agent(ctx, "elsewhere-" + dept)
    r = await client.put(f"{TICKETS}/{got['id']}", json={"agent_id": str(other)}, headers=supervisor)
    assert r.status == 200, await r.text()
    assert (await load(ctx, small), await load(ctx, other)) == (2, 1)
    still = await (await client.get(f"{TICKETS}/{waiting[1]['id']}", headers=supervisor)).json()
    assert still["agent_id"] == str(small)  # picked up when the reassignment freed capacity
    await execute(ctx, "UPDATE support_agents SET max_tickets = 3 WHERE user_id = $1", small)
    extra = await create_ticket(client, customer, category=dept)
    assert extra["agent_id"] == str(small)
    late = await create_ticket(client, customer, category=dept)
    assert late["agent_id"] is None
    await execute(ctx, "UPDATE support_agents SET max_tickets = 4 WHERE user_id = $1", small)
    assert await automation.assign_waiting(ctx, dept) == 1
    got = await (await client.get(f"{TICKETS}/{late['id']}", headers=supervisor)).json()
    assert got["agent_id"] == str(small)
    assert await load(ctx, small) == 4 == await held(ctx, small)
    assert await load(ctx, big) == CEILING == await held(ctx, big)


async def test_concurrent_creation_on_two_instances_never_exceeds_capacity(test_env, users):
    settings = auto_settings(test_env, ceiling=15)
    async with (
        open_context(settings) as ctx,
        open_context(settings) as ctx2,
        TestClient(TestServer(build_rest(settings, context=ctx))) as client,
        TestClient(TestServer(build_rest(settings, context=ctx2))) as client2,
    ):
        dept = await department(ctx)
        agents = [await agent(ctx, dept, max_tickets=5, skills=[dept]) for _ in range(2)]

        async def one(i: int) -> dict:
            _, customer = users.new("customer")
            c = client if i % 2 else client2
            r = await c.post(
                TICKETS, json={"subject": f"Concurrent {i}", "description": "x", "category": dept}, headers=customer
            )
            assert r.status == 201, await r.text()
            return await r.json()

        created = await asyncio.gather(*(one(i) for i in range(30)))
        assigned = [t for t in created if t["agent_id"]]
        assert len(assigned) == 10
        for a in agents:
            assert sum(t["agent_id"] == str(a) for t in created) == 5
            assert await load(ctx, a) == 5 == await held(ctx, a)


# ---------------------------------------------------------------- auto-responses


async def test_new_ticket_gets_a_system_auto_response_with_kb_articles(auto, users):
    _, client = auto
    _, author = users.new("agent")
    _, customer = users.new("customer")
    kw = word()
    titles = []
    for n in range(4):
        r = await client.post(
            "/api/v1/kb/articles",
            json={
                "title": f"Guide {n} {kw}",
                "content": f"How to solve {kw} issues.",
                "category": "help",
                "tags": [],
                "is_published": True,
            },
            headers=author,
        )
        assert r.status == 201, await r.text()
        titles.append((await r.json())["title"])
    r = await client.post(
        "/api/v1/kb/articles",
        json={"title": f"Draft {kw}", "content": kw, "category": "help", "tags": [], "is_published": False},
        headers=author,
    )
    assert r.status == 201
    ticket = await create_ticket(client, customer, subject=f"Trouble with {kw} today")
    r = await client.get(f"{TICKETS}/{ticket['id']}/messages", headers=customer)
    messages = (await r.json())["items"]
    assert len(messages) == 1
    message = messages[0]
    assert message["sender_type"] == "system" and message["is_internal"] is False
    text = message["message"]
    assert ticket["ticket_number"] in text
    assert "respond within" in text
    listed = [t for t in titles if t in text]
    assert len(listed) == 3 and "Draft" not in text
    assert ticket["first_response_at"] is None  # a system message is not the agent's first response


async def test_a_chat_routed_at_once_is_greeted_after_the_first_message_naming_the_agent(auto, users):
    ctx, client = auto
    _, customer = users.new("customer")
    dept = await department(ctx)
    agent_id = await agent(ctx, dept)  # online and connected, with free chat places
    r = await client.post(
        "/api/v1/chat/sessions", json={"department": dept, "message": "Is breakfast included?"}, headers=customer
    )
    assert r.status == 201, await r.text()
    session = await r.json()
    assert session["agent_id"] == str(agent_id)
    rows = await fetch(
        ctx, "SELECT seq, sender_type, message FROM chat_messages WHERE session_id = $1 ORDER BY seq", session["id"]
    )
    assert [(r["seq"], r["sender_type"]) for r in rows] == [(1, "customer"), (2, "system")]
    greeting = ctx.cipher.decrypt(rows[1]["message"], "chat_messages.message")
    assert greeting.startswith(f"Hello! Thanks for reaching out. Agent {agent_id.hex[:6]} will reply in a moment.")
    assert "queue" not in greeting


async def test_chat_start_greets_the_queued_customer(auto, users):
    ctx, client = auto
    _, customer = users.new("customer")
    _, author = users.new("agent")
    kw = word()
    r = await client.post(
        "/api/v1/kb/articles",
        json={
            "title": f"Chat help {kw}",
            "content": f"About {kw}.",
            "category": "help",
            "tags": [],
            "is_published": True,
        },
        headers=author,
    )
    assert r.status == 201
    dept = await department(ctx)  # no agents: the chat stays queued
    r = await client.post(
        "/api/v1/chat/sessions", json={"department": dept, "subject": f"Question on {kw}"}, headers=customer
    )
    assert r.status in (200, 201), await r.text()
    session = await r.json()
    rows = await fetch(ctx, "SELECT sender_type, message FROM chat_messages WHERE session_id = $1", session["id"])
    assert [r["sender_type"] for r in rows] == ["system"]
    text = ctx.cipher.decrypt(rows[0]["message"], "chat_messages.message")
    assert "queue" in text and f"Chat help {kw}" in text
