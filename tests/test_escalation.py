"""Escalation rules: CRUD and validation, each condition and action, the default timeout rule,
once-only escalation, the sweep, the update hook and manual escalation through the rules.

Every test works in categories of its own (the sweep sees the shared database's tickets too)
and moves a FrozenClock instead of sleeping."""

from __future__ import annotations

import uuid
from typing import Any

from app.services import escalation, tickets
from tests.escalation_support import (
    ADMIN,
    META,
    SUPERVISOR,
    escalations,
    events,
    frozen,
    new_ticket,
    row,
    unique,
)
from tests.helpers import problem

RULES = "/api/v1/escalation-rules"
TAG_ACTION = {"add_tags": ["escalated-by-rule"]}


async def rule(ctx: Any, conditions: dict, actions: dict | None = None, priority: int = 100) -> dict:
    return await escalation.create_rule(
        ctx,
        ADMIN,
        META,
        {"rule_name": unique("rule"), "conditions": conditions, "actions": actions or TAG_ACTION, "priority": priority},
    )


# ---------------------------------------------------------------- CRUD, validation, RBAC


async def test_rule_crud_validation_and_rbac(client, users):
    _, admin = users.new("admin")
    _, supervisor = users.new("supervisor")
    _, agent = users.new("agent")
    body = {
        "rule_name": "VIP waits",
        "conditions": {"category": [unique()], "hours_since_created": 2, "sla_breached": True, "tags_any": ["vip"]},
        "actions": {
            "raise_priority": True,
            "increase_level": True,
            "reassign_to": {"role": "supervisor"},
            "notify": ["supervisors", "customer"],
            "add_tags": ["escalated"],
        },
        "priority": 50,
    }
    response = await client.post(RULES, json=body, headers=admin)
    assert response.status == 201, await response.text()
    created = await response.json()
    assert created["conditions"] == body["conditions"] and created["is_active"] and not created["is_default"]
    assert response.headers["Location"] == f"{RULES}/{created['id']}"

    listed = await (await client.get(RULES, headers=admin)).json()
    assert any(r["is_default"] for r in listed["items"])
    assert [r["priority"] for r in listed["items"]] == sorted((r["priority"] for r in listed["items"]), reverse=True)

    bad = [
        {**body, "conditions": {"colour": ["red"]}},
        {**body, "conditions": {"priority": ["critical"]}},
        {**body, "conditions": {"status": ["lost"]}},
        {**body, "conditions": {"sla_breached": "yes"}},
        {**body, "actions": {"notify": ["boss"]}},
        {**body, "actions": {"reassign_to": {"role": "admin"}}},
        {**body, "actions": {"reassign_to": {"role": "supervisor", "department": "x"}}},
        {**body, "actions": {"set_priority": "urgent", "raise_priority": True}},
        {**body, "actions": {"launch": True}},
        {**body, "actions": {}},
        {**body, "extra": 1},
    ]
    for payload in bad:
        await problem(await client.post(RULES, json=payload, headers=admin), 422)

    for headers in (supervisor, agent):
        await problem(await client.post(RULES, json=body, headers=headers), 403)
        await problem(await client.get(RULES, headers=headers), 403)

    response = await client.put(f"{RULES}/{created['id']}", json={"is_active": False, "priority": 7}, headers=admin)
    assert response.status == 200, await response.text()
    changed = await response.json()
    assert changed["is_active"] is False and changed["priority"] == 7 and changed["actions"] == body["actions"]
    await problem(await client.put(f"{RULES}/{created['id']}", json={"actions": {"notify": []}}, headers=admin), 422)

    assert (await client.delete(f"{RULES}/{created['id']}", headers=admin)).status == 204
    await problem(await client.get(f"{RULES}/{created['id']}", headers=admin), 404)
    await problem(await client.delete(f"{RULES}/{uuid.uuid4()}", headers=admin), 404)


# ---------------------------------------------------------------- conditions


def tagged(ticket_row: dict) -> bool:
    return "escalated-by-rule" in ticket_row["tags"]


async def test_condition_category(settings):
    async with frozen(settings) as (ctx, _):
        cat, other = unique(), unique()
        await rule(ctx, {"category": [cat]})
        hit, miss = await new_ticket(ctx, cat), await new_ticket(ctx, other)
        await escalation.evaluate_ticket(ctx, hit["id"])
        await escalation.evaluate_ticket(ctx, miss["id"])
        assert tagged(await row(ctx, hit["id"])) and not tagged(await row(ctx, miss["id"]))


async def test_condition_priority_and_status(settings):
    async with frozen(settings) as (ctx, _):
        cat = unique()
        await rule(ctx, {"category": [cat], "priority": ["high"], "status": ["pending"]})
        hit = await new_ticket(ctx, cat, priority="high", status="pending")
        wrong_priority = await new_ticket(ctx, cat, priority="low", status="pending")
        wrong_status = await new_ticket(ctx, cat, priority="high")
        for t in (hit, wrong_priority, wrong_status):
            await escalation.evaluate_ticket(ctx, t["id"])
        assert tagged(await row(ctx, hit["id"]))
        assert not tagged(await row(ctx, wrong_priority["id"]))
        assert not tagged(await row(ctx, wrong_status["id"]))


async def test_condition_hours_since_created(settings):
    async with frozen(settings) as (ctx, clock):
        cat = unique()
        await rule(ctx, {"category": [cat], "hours_since_created": 2})
        ticket = await new_ticket(ctx, cat)
        clock.advance(hours=1, minutes=59)
        assert await escalation.evaluate_ticket(ctx, ticket["id"]) == 0
        clock.advance(minutes=2)
        assert await escalation.evaluate_ticket(ctx, ticket["id"]) == 1
        assert tagged(await row(ctx, ticket["id"]))


async def test_condition_hours_without_agent_response(settings):
    async with frozen(settings) as (ctx, clock):
        cat = unique()
        await rule(ctx, {"category": [cat], "hours_without_agent_response": 1})
        answered, silent = await new_ticket(ctx, cat), await new_ticket(ctx, cat)
        clock.advance(minutes=50)
        await tickets.add_message(ctx, ADMIN, META, answered["id"], {"message": "Looking into it."})
        clock.advance(minutes=20)  # 70 min since creation, 20 since the agent's reply
        await escalation.evaluate_ticket(ctx, answered["id"])
        await escalation.evaluate_ticket(ctx, silent["id"])
        assert not tagged(await row(ctx, answered["id"])) and tagged(await row(ctx, silent["id"]))
        clock.advance(minutes=41)  # now an hour since the reply
        await escalation.evaluate_ticket(ctx, answered["id"])
        assert tagged(await row(ctx, answered["id"]))


async def test_condition_sla_breached_records_sla_trigger(settings):
    async with frozen(settings) as (ctx, _):
        cat = unique()
        created = await rule(ctx, {"category": [cat], "sla_breached": True}, {"increase_level": True})
        breached, fine = await new_ticket(ctx, cat), await new_ticket(ctx, cat)
        async with ctx.db.pool.acquire() as conn:
            await conn.execute("UPDATE support_tickets SET sla_breached = TRUE WHERE id = $1", breached["id"])
        await escalation.evaluate_ticket(ctx, breached["id"])
        await escalation.evaluate_ticket(ctx, fine["id"])
        [record] = await escalations(ctx, breached["id"])
        assert record["trigger"] == "sla" and record["rule_id"] == created["id"]
        assert await escalations(ctx, fine["id"]) == []


async def test_condition_escalation_level_below_and_tags_any(settings):
    async with frozen(settings) as (ctx, _):
        cat = unique()
        await rule(ctx, {"category": [cat], "escalation_level_below": 1, "tags_any": ["vip", "press"]})
        hit = await new_ticket(ctx, cat, tags=["press"])
        untagged = await new_ticket(ctx, cat, tags=["other"])
        high_level = await new_ticket(ctx, cat)  # tagged below, together with its level
        async with ctx.db.pool.acquire() as conn:
            await conn.execute(
                "UPDATE support_tickets SET escalation_level = 1, tags = '{vip}' WHERE id = $1", high_level["id"]
            )
        await ctx.ticket_cache.invalidate(high_level["id"])
        for t in (hit, untagged, high_level):
            await escalation.evaluate_ticket(ctx, t["id"])
        assert tagged(await row(ctx, hit["id"]))
        assert not tagged(await row(ctx, untagged["id"])) and not tagged(await row(ctx, high_level["id"]))


async def test_resolved_tickets_are_not_escalated(settings):
    async with frozen(settings) as (ctx, _):
        cat = unique()
        await rule(ctx, {"category": [cat]})
        ticket = await new_ticket(ctx, cat, status="resolved")
        assert await escalation.evaluate_ticket(ctx, ticket["id"]) == 0


# ---------------------------------------------------------------- actions


async def agent_row(ctx: Any, department: str, role: str = "agent") -> uuid.UUID:
    user_id = uuid.uuid4()
    async with ctx.db.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO support_agents (user_id, display_name, role, department, max_tickets)"
            " VALUES ($1, $2, $3, $4, 50)",
            user_id,
            f"{role} {user_id.hex[:6]}",
            role,
            department,
        )
    return user_id


async def test_priority_level_and_tag_actions_are_recorded(settings):
    async with frozen(settings) as (ctx, _):
        cat = unique()
        created = await rule(
            ctx,
            {"category": [cat], "tags_any": ["a"]},
            {
                "raise_priority": True,
                "increase_level": True,
                "add_tags": ["b"],
                "notify": ["supervisors", "agent", "customer"],
            },
        )
        setter = await rule(ctx, {"category": [cat], "tags_any": ["s"]}, {"set_priority": "urgent"})
        raised = await new_ticket(ctx, cat, priority="medium", tags=["a"])
        await escalation.evaluate_ticket(ctx, raised["id"])
        after = await row(ctx, raised["id"])
        assert after["priority"] == "high" and after["escalation_level"] == 1 and after["tags"] == ["a", "b"]
        assert after["escalated_at"] is not None
        [record] = await escalations(ctx, raised["id"])
        assert (
            record["rule_id"],
            record["trigger"],
            record["from_level"],
            record["to_level"],
            record["from_priority"],
            record["to_priority"],
        ) == (created["id"], "rule", 0, 1, "medium", "high")
        [event] = await events(ctx, raised["id"], "ticket.escalated")
        assert event["payload"]["notify"] == ["supervisors", "agent", "customer"]
        assert event["payload"]["escalation_id"] == str(record["id"]) and event["payload"]["trigger"] == "rule"

        set_to = await new_ticket(ctx, cat, priority="low", tags=["s"])
        await escalation.evaluate_ticket(ctx, set_to["id"])
        after = await row(ctx, set_to["id"])
        assert after["priority"] == "urgent" and after["escalation_level"] == 0
        assert (await escalations(ctx, set_to["id"]))[0]["rule_id"] == setter["id"]


async def test_reassign_actions(settings):
    async with frozen(settings) as (ctx, _):
        cat, target_department = unique(), unique("dept")
        async with ctx.db.pool.acquire() as conn:
            await conn.execute("INSERT INTO departments (name) VALUES ($1), ($2)", cat, target_department)
        supervisor = await agent_row(ctx, cat, "supervisor")
        in_target = await agent_row(ctx, target_department)
        named = await agent_row(ctx, unique("dept"))
        await rule(ctx, {"category": [cat], "tags_any": ["to-sup"]}, {"reassign_to": {"role": "supervisor"}})
        await rule(
            ctx, {"category": [cat], "tags_any": ["to-dept"]}, {"reassign_to": {"department": target_department}}
        )
        await rule(ctx, {"category": [cat], "tags_any": ["to-agent"]}, {"reassign_to": {"agent_id": str(named)}})
        to_sup = await new_ticket(ctx, cat, tags=["to-sup"])
        to_dept = await new_ticket(ctx, cat, tags=["to-dept"])
        to_agent = await new_ticket(ctx, cat, tags=["to-agent"])
        for t in (to_sup, to_dept, to_agent):
            await escalation.evaluate_ticket(ctx, t["id"])
        assert (await row(ctx, to_sup["id"]))["agent_id"] == supervisor
        moved = await row(ctx, to_dept["id"])
        assert moved["department"] == target_department and moved["agent_id"] == in_target
        assert (await row(ctx, to_agent["id"]))["agent_id"] == named
        [record] = await escalations(ctx, to_agent["id"])
        assert record["to_agent_id"] == named and record["from_agent_id"] == to_agent["agent_id"]
        assert len(await events(ctx, to_agent["id"], "ticket.assigned")) >= 1


# ---------------------------------------------------------------- default rule, once only, sweep, hook


async def test_default_rule_follows_the_timeout_setting(settings):
    async with frozen(settings, ticket_escalation_timeout_hours=3) as (ctx, clock):
        ticket = await new_ticket(ctx, unique(), priority="low")
        clock.advance(hours=2, minutes=59)
        assert await escalation.evaluate_ticket(ctx, ticket["id"]) == 0
        clock.advance(minutes=2)
        assert await escalation.evaluate_ticket(ctx, ticket["id"]) == 1
        after = await row(ctx, ticket["id"])
        assert after["escalation_level"] == 1 and after["priority"] == "medium"
        [record] = await escalations(ctx, ticket["id"])
        async with ctx.db.pool.acquire() as conn:
            default_id = await conn.fetchval("SELECT id FROM escalation_rules WHERE is_default")
        assert record["rule_id"] == default_id and record["trigger"] == "rule"
        clock.advance(hours=30)
        assert await escalation.evaluate_ticket(ctx, ticket["id"]) == 0


async def test_a_rule_escalates_a_ticket_once_per_level(settings):
    async with frozen(settings) as (ctx, clock):
        cat = unique()
        await rule(ctx, {"category": [cat]}, {"increase_level": True})
        await rule(ctx, {"category": [cat]}, {"add_tags": ["seen"]}, priority=10)
        ticket = await new_ticket(ctx, cat)  # the rules run on the new ticket at once
        assert len(await escalations(ctx, ticket["id"])) == 2
        for _ in range(3):
            clock.advance(hours=1)
            assert await escalation.evaluate_ticket(ctx, ticket["id"]) == 0
        assert (await row(ctx, ticket["id"]))["escalation_level"] == 1
        assert len(await escalations(ctx, ticket["id"])) == 2
        assert len(await events(ctx, ticket["id"], "ticket.escalated")) == 2


async def test_sweep_and_update_hook_run_the_rules(settings):
    async with frozen(settings) as (ctx, clock):
        cat = unique()
        await rule(ctx, {"category": [cat], "hours_since_created": 1}, {"increase_level": True})
        await rule(ctx, {"category": [cat], "status": ["pending"]}, {"add_tags": ["waiting"]})
        old = await new_ticket(ctx, cat)
        clock.advance(hours=2)
        await escalation.sweep(ctx)
        assert (await row(ctx, old["id"]))["escalation_level"] == 1
        await escalation.sweep(ctx)
        assert (await row(ctx, old["id"]))["escalation_level"] == 1

        fresh = await new_ticket(ctx, cat)
        await tickets.update_ticket(ctx, ADMIN, META, fresh["id"], {"status": "pending"})
        assert "waiting" in (await row(ctx, fresh["id"]))["tags"]


async def test_manual_escalation_runs_matching_rules_else_the_default_step(settings, client, users):
    async with frozen(settings) as (ctx, _):
        cat = unique()
        ticket = await new_ticket(ctx, cat)  # created before the rule, so it has not run on it yet
        created = await rule(
            ctx, {"category": [cat]}, {"set_priority": "urgent", "add_tags": ["vip"], "notify": ["supervisors"]}
        )
        assert ticket["priority"] != "urgent"
        result = await tickets.escalate_ticket(ctx, SUPERVISOR, META, ticket["id"], "customer is upset")
        assert result["ticket"]["priority"] == "urgent" and "vip" in result["ticket"]["tags"]
        assert result["ticket"]["escalation_level"] == 0
        assert result["escalation"]["trigger"] == "manual" and result["escalation"]["reason"] == "customer is upset"
        [record] = await escalations(ctx, ticket["id"])
        assert record["rule_id"] == created["id"] and record["actor_id"] == SUPERVISOR.user_id

        plain = await new_ticket(ctx, unique())
        result = await tickets.escalate_ticket(ctx, SUPERVISOR, META, plain["id"], None)
        assert result["ticket"]["escalation_level"] == 1
        assert (
            result["ticket"]["priority"]
            == {"low": "medium", "medium": "high", "high": "urgent", "urgent": "urgent"}[plain["priority"]]
        )
        assert (await escalations(ctx, plain["id"]))[0]["rule_id"] is None

    _, customer = users.new("customer")
    _, supervisor = users.new("supervisor")
    response = await client.post(
        "/api/v1/tickets", json={"subject": "s", "description": "d", "category": cat}, headers=customer
    )
    assert response.status == 201
    ticket_id = (await response.json())["id"]
    response = await client.post(f"/api/v1/tickets/{ticket_id}/escalate", json={"reason": "manual"}, headers=supervisor)
    assert response.status in (200, 201), await response.text()
    assert (await row(ctx_of(client), ticket_id))["priority"] == "urgent"


def ctx_of(client: Any) -> Any:
    from rest.common import CONTEXT

    return client.server.app[CONTEXT]
