"""/api/v1/tickets end to end: create, read, list, update, status machine, escalation, delete,
messages and history, against the real app, database and Redis."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid

import pytest

from helpers import TICKETS, create_for, create_ticket, fetchval, problem, set_status, ticket_body

# ---------------------------------------------------------------- create


async def test_customer_creates_ticket_with_201_and_location(client, users):
    customer_id, headers = users.new("customer")
    response = await client.post(TICKETS, json=ticket_body(subject="Refund please"), headers=headers)
    assert response.status == 201
    ticket = await response.json()
    assert response.headers["Location"] == f"{TICKETS}/{ticket['id']}"
    assert ticket["subject"] == "Refund please"
    assert ticket["status"] == "open"
    assert ticket["priority"] == "medium"
    assert ticket["channel"] == "web"
    assert ticket["category"] == "general"
    assert ticket["department"] == "general"
    assert ticket["escalation_level"] == 0
    assert ticket["agent_id"] is None
    located = await client.get(response.headers["Location"], headers=headers)
    assert located.status == 200
    assert (await located.json())["id"] == ticket["id"]


async def test_ticket_numbers_are_human_readable_and_unique(client, users):
    _, headers = users.new("customer")
    created = await asyncio.gather(*(create_ticket(client, headers) for _ in range(8)))
    numbers = [t["ticket_number"] for t in created]
    assert all(re.fullmatch(r"TKT-\d{6,}", n) for n in numbers), numbers
    assert len(set(numbers)) == len(numbers)


async def test_customer_ticket_belongs_to_token_subject_with_contact_from_claims(client, users):
    customer_id, headers = users.new("customer", email="ann@example.com", name="Ann Lee")
    ticket = await create_ticket(client, headers)
    assert ticket["customer_id"] == str(customer_id)
    assert ticket["customer_email"] == "ann@example.com"
    assert ticket["customer_name"] == "Ann Lee"


async def test_customer_cannot_create_ticket_for_another_customer(client, users, ctx):
    _, headers = users.new("customer")
    other_id, _ = users.new("customer")
    response = await client.post(TICKETS, json=ticket_body(customer_id=str(other_id)), headers=headers)
    await problem(response, 403)
    assert await fetchval(ctx, "SELECT count(*) FROM support_tickets WHERE customer_id = $1", other_id) == 0


async def test_customer_may_name_themselves_as_customer_id(client, users):
    customer_id, headers = users.new("customer", email="me@example.com")
    response = await client.post(TICKETS, json=ticket_body(customer_id=str(customer_id)), headers=headers)
    assert response.status == 201, await response.text()
    ticket = await response.json()
    assert ticket["customer_id"] == str(customer_id) and ticket["customer_email"] == "me@example.com"
    other_id, _ = users.new("customer")
    body = await problem(await client.post(TICKETS, json=ticket_body(customer_id=str(other_id)), headers=headers), 403)
    assert "customer_id" in body["detail"]


async def test_the_403_names_every_staff_field_a_customer_sent(client, users):
    customer_id, headers = users.new("customer")
    body = await problem(
        await client.post(
            TICKETS,
            json=ticket_body(customer_id=str(customer_id), priority="urgent", tags=["vip"], agent_id=str(uuid.uuid4())),
            headers=headers,
        ),
        403,
    )
    assert body["detail"] == "Customers may not set agent_id, priority, tags"
    ticket = await create_ticket(client, headers)
    body = await problem(
        await client.put(f"{TICKETS}/{ticket['id']}", json={"priority": "urgent", "tags": ["x"]}, headers=headers), 403
    )
    assert body["detail"] == "Customers may not change priority, tags"


async def test_customer_cannot_override_contact_details_from_token(client, users, ctx):
    customer_id, headers = users.new("customer", email="real@example.com")
    response = await client.post(TICKETS, json=ticket_body(customer_email="fake@example.com"), headers=headers)
    await problem(response, 403)
    assert await fetchval(ctx, "SELECT count(*) FROM support_tickets WHERE customer_id = $1", customer_id) == 0


async def test_agent_creating_ticket_needs_customer_id(client, users):
    _, headers = users.new("agent")
    body = await problem(await client.post(TICKETS, json=ticket_body(), headers=headers), 422)
    assert "customer_id" in body["errors"]


async def test_agent_creates_ticket_on_behalf_of_customer(client, users):
    customer_id, _ = users.new("customer")
    agent_id, headers = users.new("agent")
    ticket = await create_for(
        client,
        headers,
        customer_id,
        customer_email="c@example.com",
        customer_name="Cy",
        priority="high",
        channel="email",
    )
    assert ticket["customer_id"] == str(customer_id)
    assert ticket["agent_id"] == str(agent_id)  # the creating agent works it
    assert ticket["assigned_at"] is not None
    assert (await client.get(f"{TICKETS}/{ticket['id']}", headers=headers)).status == 200
    assert ticket["customer_email"] == "c@example.com"
    assert ticket["customer_name"] == "Cy"
    assert ticket["priority"] == "high"
    assert ticket["channel"] == "email"


async def test_agent_cannot_assign_ticket_to_another_agent_at_creation(client, users):
    customer_id, _ = users.new("customer")
    other_agent_id, _ = users.new("agent")
    _, headers = users.new("agent")
    response = await client.post(
        TICKETS, json=ticket_body(customer_id=str(customer_id), agent_id=str(other_agent_id)), headers=headers
    )
    await problem(response, 403)


async def test_supervisor_assigns_ticket_at_creation(client, users):
    customer_id, _ = users.new("customer")
    agent_id, agent_headers = users.new("agent")
    _, headers = users.new("supervisor")
    ticket = await create_for(client, headers, customer_id, agent_id=str(agent_id))
    assert ticket["agent_id"] == str(agent_id)
    assert ticket["assigned_at"] is not None
    assert (await client.get(f"{TICKETS}/{ticket['id']}", headers=agent_headers)).status == 200


async def test_service_ticket_defaults_to_api_channel(client, users):
    customer_id, _ = users.new("customer")
    _, headers = users.new("service")
    ticket = await create_for(client, headers, customer_id)
    assert ticket["channel"] == "api"


async def test_ticket_gets_sla_due_times_from_its_priority(client, users):
    customer_id, _ = users.new("customer")
    _, headers = users.new("supervisor")
    ticket = await create_for(client, headers, customer_id, priority="urgent")
    created = dt.datetime.fromisoformat(ticket["created_at"])
    assert dt.datetime.fromisoformat(ticket["first_response_due_at"]) - created == dt.timedelta(minutes=30)
    assert dt.datetime.fromisoformat(ticket["resolution_due_at"]) - created == dt.timedelta(minutes=240)


# ---------------------------------------------------------------- read


async def test_get_ticket_returns_it_to_its_customer(client, users):
    _, headers = users.new("customer")
    ticket = await create_ticket(client, headers, description="Card declined twice")
    response = await client.get(f"{TICKETS}/{ticket['id']}", headers=headers)
    assert response.status == 200
    got = await response.json()
    assert got["id"] == ticket["id"]
    assert got["description"] == "Card declined twice"


async def test_get_unknown_ticket_is_404(client, users):
    _, headers = users.new("admin")
    await problem(await client.get(f"{TICKETS}/{uuid.uuid4()}", headers=headers), 404)


# ---------------------------------------------------------------- list


async def _list(client, headers, **params) -> dict:
    response = await client.get(TICKETS, params={k: str(v) for k, v in params.items()}, headers=headers)
    assert response.status == 200, await response.text()
    return await response.json()


async def test_list_has_page_envelope_and_default_limit(client, users):
    _, headers = users.new("customer")
    await create_ticket(client, headers)
    page = await _list(client, headers)
    assert set(page) == {"items", "total", "limit", "offset"}
    assert page["limit"] == 20 and page["offset"] == 0
    assert page["total"] == 1 and len(page["items"]) == 1


async def test_list_pages_with_limit_and_offset(client, users):
    customer_id, headers = users.new("customer")
    for _ in range(5):
        await create_ticket(client, headers)
    first = await _list(client, headers, limit=2, offset=0, sort="created_at")
    second = await _list(client, headers, limit=2, offset=2, sort="created_at")
    last = await _list(client, headers, limit=2, offset=4, sort="created_at")
    assert [first["total"], second["total"], last["total"]] == [5, 5, 5]
    assert [len(first["items"]), len(second["items"]), len(last["items"])] == [2, 2, 1]
    ids = [t["id"] for page in (first, second, last) for t in page["items"]]
    assert len(set(ids)) == 5


async def test_list_offset_past_the_end_still_reports_total(client, users):
    _, headers = users.new("customer")
    for _ in range(3):
        await create_ticket(client, headers)
    page = await _list(client, headers, offset=10)
    assert page["items"] == []
    assert page["total"] == 3


@pytest.mark.parametrize("limit", [1, 100])
async def test_list_accepts_limit_at_bounds(client, users, limit):
    _, headers = users.new("customer")
    await create_ticket(client, headers)
    await create_ticket(client, headers)
    page = await _list(client, headers, limit=limit)
    assert page["limit"] == limit
    assert len(page["items"]) == min(limit, 2)


@pytest.mark.parametrize("limit", [0, 101, -1])
async def test_list_refuses_limit_outside_1_to_100(client, users, limit):
    _, headers = users.new("customer")
    body = await problem(await client.get(TICKETS, params={"limit": str(limit)}, headers=headers), 422)
    assert "limit" in body["errors"]


async def test_list_sorts_by_subject_both_ways(client, users):
    customer_id, headers = users.new("customer")
    for subject in ("bravo", "alpha", "charlie"):
        await create_ticket(client, headers, subject=subject)
    up = await _list(client, headers, sort="subject")
    down = await _list(client, headers, sort="-subject")
    assert [t["subject"] for t in up["items"]] == ["alpha", "bravo", "charlie"]
    assert [t["subject"] for t in down["items"]] == ["charlie", "bravo", "alpha"]


async def test_list_sorts_by_priority_by_rank_not_alphabet(client, users):
    customer_id, _ = users.new("customer")
    _, headers = users.new("supervisor")
    for priority in ("medium", "urgent", "low", "high"):
        await create_for(client, headers, customer_id, priority=priority)
    page = await _list(client, headers, customer_id=customer_id, sort="-priority")
    assert [t["priority"] for t in page["items"]] == ["urgent", "high", "medium", "low"]


async def test_list_sorts_newest_first_by_default(client, users):
    _, headers = users.new("customer")
    made = [await create_ticket(client, headers) for _ in range(3)]
    page = await _list(client, headers)
    assert [t["id"] for t in page["items"]] == [t["id"] for t in reversed(made)]


async def test_list_refuses_unknown_sort_field(client, users):
    _, headers = users.new("customer")
    body = await problem(await client.get(TICKETS, params={"sort": "description"}, headers=headers), 422)
    assert "sort" in body["errors"]


async def test_list_filters_by_comma_separated_statuses(client, users):
    customer_id, _ = users.new("customer")
    _, headers = users.new("supervisor")
    opened = await create_for(client, headers, customer_id)
    pending = await create_for(client, headers, customer_id)
    closed = await create_for(client, headers, customer_id)
    assert (await set_status(client, headers, pending["id"], "pending")).status == 200
    assert (await set_status(client, headers, closed["id"], "closed")).status == 200
    page = await _list(client, headers, customer_id=customer_id, status="open,pending")
    assert {t["id"] for t in page["items"]} == {opened["id"], pending["id"]}
    assert page["total"] == 2
    only_closed = await _list(client, headers, customer_id=customer_id, status="closed")
    assert [t["id"] for t in only_closed["items"]] == [closed["id"]]


async def test_list_filters_by_priority(client, users):
    customer_id, _ = users.new("customer")
    _, headers = users.new("supervisor")
    low = await create_for(client, headers, customer_id, priority="low")
    high = await create_for(client, headers, customer_id, priority="high")
    await create_for(client, headers, customer_id, priority="medium")
    page = await _list(client, headers, customer_id=customer_id, priority="low,high")
    assert {t["id"] for t in page["items"]} == {low["id"], high["id"]}


async def test_list_filters_by_category(client, users):
    customer_id, _ = users.new("customer")
    _, headers = users.new("supervisor")
    billing = await create_for(client, headers, customer_id, category="billing")
    await create_for(client, headers, customer_id, category="technical")
    page = await _list(client, headers, customer_id=customer_id, category="billing")
    assert [t["id"] for t in page["items"]] == [billing["id"]]


async def test_list_filters_by_agent_id(client, users):
    customer_id, _ = users.new("customer")
    agent_id, _ = users.new("agent")
    _, headers = users.new("supervisor")
    assigned = await create_for(client, headers, customer_id, agent_id=str(agent_id))
    await create_for(client, headers, customer_id)
    page = await _list(client, headers, agent_id=agent_id)
    assert [t["id"] for t in page["items"]] == [assigned["id"]]


async def test_list_filters_by_customer_id(client, users):
    customer_a, _ = users.new("customer")
    customer_b, _ = users.new("customer")
    _, headers = users.new("supervisor")
    mine = await create_for(client, headers, customer_a)
    await create_for(client, headers, customer_b)
    page = await _list(client, headers, customer_id=customer_a)
    assert [t["id"] for t in page["items"]] == [mine["id"]]


async def test_list_q_matches_subject_substring_case_insensitively(client, users):
    _, headers = users.new("customer")
    hit = await create_ticket(client, headers, subject="Cannot LOGIN to my account")
    await create_ticket(client, headers, subject="Refund for order")
    page = await _list(client, headers, q="login")
    assert [t["id"] for t in page["items"]] == [hit["id"]]


async def test_list_q_treats_percent_literally(client, users):
    _, headers = users.new("customer")
    hit = await create_ticket(client, headers, subject="Discount 100% off failed")
    await create_ticket(client, headers, subject="Discount 1000 off failed")
    page = await _list(client, headers, q="100%")
    assert [t["id"] for t in page["items"]] == [hit["id"]]


async def test_list_q_treats_underscore_literally(client, users):
    _, headers = users.new("customer")
    hit = await create_ticket(client, headers, subject="error code E_42")
    await create_ticket(client, headers, subject="error code EX42")
    page = await _list(client, headers, q="E_42")
    assert [t["id"] for t in page["items"]] == [hit["id"]]


async def test_list_q_treats_backslash_literally(client, users):
    _, headers = users.new("customer")
    hit = await create_ticket(client, headers, subject=r"path C:\temp broken")
    await create_ticket(client, headers, subject="path C:temp broken")
    page = await _list(client, headers, q="C:\\temp")
    assert [t["id"] for t in page["items"]] == [hit["id"]]


async def test_list_filters_by_created_after_and_before(client, users):
    _, headers = users.new("customer")
    first, second, third = [await create_ticket(client, headers) for _ in range(3)]
    after = await _list(client, headers, created_after=second["created_at"])
    assert {t["id"] for t in after["items"]} == {second["id"], third["id"]}
    before = await _list(client, headers, created_before=second["created_at"])
    assert [t["id"] for t in before["items"]] == [first["id"]]


async def test_list_refuses_naive_created_after(client, users):
    _, headers = users.new("customer")
    body = await problem(
        await client.get(TICKETS, params={"created_after": "2024-01-01T00:00:00"}, headers=headers), 422
    )
    assert "created_after" in body["errors"]


async def test_list_refuses_unknown_status_in_filter(client, users):
    _, headers = users.new("customer")
    body = await problem(await client.get(TICKETS, params={"status": "open,bogus"}, headers=headers), 422)
    assert "status" in body["errors"]


# ---------------------------------------------------------------- PUT partial update


async def test_put_changes_only_given_fields(client, users):
    customer_id, _ = users.new("customer")
    _, headers = users.new("supervisor")
    ticket = await create_for(client, headers, customer_id, subject="Old subject", tags=["a"], description="Keep me")
    response = await client.put(f"{TICKETS}/{ticket['id']}", json={"priority": "high"}, headers=headers)
    assert response.status == 200
    updated = await response.json()
    assert updated["priority"] == "high"
    assert updated["subject"] == "Old subject"
    assert updated["description"] == "Keep me"
    assert updated["tags"] == ["a"]
    assert updated["updated_at"] > ticket["updated_at"]


async def test_put_category_moves_department(client, users, ctx):
    customer_id, _ = users.new("customer")
    _, headers = users.new("admin")
    department = f"dept-{uuid.uuid4().hex[:8]}"
    await ctx.db.pool.execute(
        "INSERT INTO departments (name, categories) VALUES ($1, $2)", department, ["refunds-" + department]
    )
    ticket = await create_for(client, headers, customer_id)
    response = await client.put(
        f"{TICKETS}/{ticket['id']}", json={"category": "refunds-" + department}, headers=headers
    )
    assert response.status == 200
    assert (await response.json())["department"] == department


async def test_customer_updates_own_subject_and_description(client, users):
    _, headers = users.new("customer")
    ticket = await create_ticket(client, headers)
    response = await client.put(
        f"{TICKETS}/{ticket['id']}", json={"subject": "Better subject", "description": "More detail"}, headers=headers
    )
    assert response.status == 200
    updated = await response.json()
    assert (updated["subject"], updated["description"]) == ("Better subject", "More detail")


async def test_customer_cannot_change_priority(client, users):
    _, headers = users.new("customer")
    ticket = await create_ticket(client, headers)
    await problem(await client.put(f"{TICKETS}/{ticket['id']}", json={"priority": "urgent"}, headers=headers), 403)
    got = await (await client.get(f"{TICKETS}/{ticket['id']}", headers=headers)).json()
    assert got["priority"] == "medium"


async def test_supervisor_assigns_and_unassigns_with_put(client, users):
    customer_id, _ = users.new("customer")
    agent_id, _ = users.new("agent")
    _, headers = users.new("supervisor")
    ticket = await create_for(client, headers, customer_id)
    assigned = await (
        await client.put(f"{TICKETS}/{ticket['id']}", json={"agent_id": str(agent_id)}, headers=headers)
    ).json()
    assert assigned["agent_id"] == str(agent_id)
    assert assigned["assigned_at"] is not None
    unassigned = await (await client.put(f"{TICKETS}/{ticket['id']}", json={"agent_id": None}, headers=headers)).json()
    assert unassigned["agent_id"] is None
    assert unassigned["assigned_at"] is None


async def test_assigned_agent_updates_ticket(client, users):
    customer_id, _ = users.new("customer")
    agent_id, agent_headers = users.new("agent")
    _, headers = users.new("supervisor")
    ticket = await create_for(client, headers, customer_id, agent_id=str(agent_id))
    response = await client.put(
        f"{TICKETS}/{ticket['id']}", json={"tags": ["vip"], "subcategory": "cards"}, headers=agent_headers
    )
    assert response.status == 200
    updated = await response.json()
    assert updated["tags"] == ["vip"] and updated["subcategory"] == "cards"


async def test_put_unknown_ticket_is_404(client, users):
    _, headers = users.new("admin")
    await problem(await client.put(f"{TICKETS}/{uuid.uuid4()}", json={"priority": "low"}, headers=headers), 404)


# ---------------------------------------------------------------- status machine

LEGAL = [
    ("open", "in_progress"),
    ("open", "pending"),
    ("open", "resolved"),
    ("open", "closed"),
    ("in_progress", "pending"),
    ("in_progress", "resolved"),
    ("in_progress", "closed"),
    ("pending", "in_progress"),
    ("pending", "resolved"),
    ("pending", "closed"),
    ("resolved", "closed"),
    ("resolved", "open"),
    ("closed", "open"),
]
ILLEGAL = [
    ("in_progress", "open"),
    ("pending", "open"),
    ("resolved", "in_progress"),
    ("resolved", "pending"),
    ("closed", "in_progress"),
    ("closed", "pending"),
    ("closed", "resolved"),
]


async def _ticket_in(client, headers, customer_id, status: str) -> dict:
    ticket = await create_for(client, headers, customer_id)
    if status != "open":
        response = await set_status(client, headers, ticket["id"], status)
        assert response.status == 200, await response.text()
        ticket = await response.json()
    assert ticket["status"] == status
    return ticket


@pytest.mark.parametrize(("source", "target"), LEGAL, ids=[f"{a}->{b}" for a, b in LEGAL])
async def test_legal_status_transition_succeeds(client, users, source, target):
    customer_id, _ = users.new("customer")
    _, headers = users.new("supervisor")
    ticket = await _ticket_in(client, headers, customer_id, source)
    response = await set_status(client, headers, ticket["id"], target)
    assert response.status == 200, await response.text()
    assert (await response.json())["status"] == target
    stored = await (await client.get(f"{TICKETS}/{ticket['id']}", headers=headers)).json()
    assert stored["status"] == target


@pytest.mark.parametrize(("source", "target"), ILLEGAL, ids=[f"{a}->{b}" for a, b in ILLEGAL])
async def test_illegal_status_transition_is_409(client, users, source, target):
    customer_id, _ = users.new("customer")
    _, headers = users.new("supervisor")
    ticket = await _ticket_in(client, headers, customer_id, source)
    body = await problem(await set_status(client, headers, ticket["id"], target), 409)
    assert body["from"] == source and body["to"] == target
    assert target not in body["allowed"]
    stored = await (await client.get(f"{TICKETS}/{ticket['id']}", headers=headers)).json()
    assert stored["status"] == source


async def test_put_with_illegal_status_is_409(client, users):
    customer_id, _ = users.new("customer")
    _, headers = users.new("supervisor")
    ticket = await _ticket_in(client, headers, customer_id, "closed")
    await problem(await client.put(f"{TICKETS}/{ticket['id']}", json={"status": "resolved"}, headers=headers), 409)


async def test_resolving_sets_resolved_at_and_reopening_clears_it(client, users):
    customer_id, _ = users.new("customer")
    _, headers = users.new("supervisor")
    ticket = await create_for(client, headers, customer_id)
    assert ticket["resolved_at"] is None
    resolved = await (await set_status(client, headers, ticket["id"], "resolved")).json()
    assert resolved["resolved_at"] is not None
    reopened = await (await set_status(client, headers, ticket["id"], "open")).json()
    assert reopened["resolved_at"] is None
    assert reopened["reopened_count"] == 1


async def test_closing_sets_closed_at_and_reopening_clears_it(client, users):
    customer_id, _ = users.new("customer")
    _, headers = users.new("supervisor")
    ticket = await create_for(client, headers, customer_id)
    closed = await (await set_status(client, headers, ticket["id"], "closed")).json()
    assert closed["closed_at"] is not None
    reopened = await (await set_status(client, headers, ticket["id"], "open")).json()
    assert reopened["closed_at"] is None
    assert reopened["reopened_count"] == 1


async def test_status_change_requires_known_status(client, users):
    customer_id, _ = users.new("customer")
    _, headers = users.new("supervisor")
    ticket = await create_for(client, headers, customer_id)
    body = await problem(await set_status(client, headers, ticket["id"], "done"), 422)
    assert "status" in body["errors"]


async def test_customer_may_close_and_reopen_own_ticket(client, users):
    _, headers = users.new("customer")
    ticket = await create_ticket(client, headers)
    assert (await set_status(client, headers, ticket["id"], "closed")).status == 200
    response = await set_status(client, headers, ticket["id"], "open")
    assert response.status == 200
    assert (await response.json())["status"] == "open"


async def test_customer_cannot_resolve_own_ticket(client, users):
    _, headers = users.new("customer")
    ticket = await create_ticket(client, headers)
    await problem(await set_status(client, headers, ticket["id"], "resolved"), 403)


async def test_status_change_of_unknown_ticket_is_404(client, users):
    _, headers = users.new("admin")
    await problem(await set_status(client, headers, str(uuid.uuid4()), "closed"), 404)


# ---------------------------------------------------------------- escalation


@pytest.mark.parametrize(
    ("before", "after"), [("low", "medium"), ("medium", "high"), ("high", "urgent"), ("urgent", "urgent")]
)
async def test_escalation_raises_level_and_priority_one_step(client, users, ctx, before, after):
    customer_id, _ = users.new("customer")
    _, headers = users.new("supervisor")
    ticket = await create_for(client, headers, customer_id, priority=before)
    response = await client.post(f"{TICKETS}/{ticket['id']}/escalate", json={"reason": "angry"}, headers=headers)
    assert response.status == 200, await response.text()
    result = await response.json()
    assert result["ticket"]["escalation_level"] == 1
    assert result["ticket"]["priority"] == after
    assert result["ticket"]["escalated_at"] is not None
    escalation = result["escalation"]
    assert (escalation["from_level"], escalation["to_level"]) == (0, 1)
    assert (escalation["from_priority"], escalation["to_priority"]) == (before, after)
    assert escalation["trigger"] == "manual" and escalation["reason"] == "angry"
    assert (
        await fetchval(ctx, "SELECT count(*) FROM ticket_escalations WHERE ticket_id = $1", uuid.UUID(ticket["id"]))
        == 1
    )


async def test_escalating_twice_reaches_level_two(client, users):
    customer_id, _ = users.new("customer")
    _, headers = users.new("admin")
    ticket = await create_for(client, headers, customer_id, priority="low")
    await client.post(f"{TICKETS}/{ticket['id']}/escalate", headers=headers)
    result = await (await client.post(f"{TICKETS}/{ticket['id']}/escalate", headers=headers)).json()
    assert result["ticket"]["escalation_level"] == 2
    assert result["ticket"]["priority"] == "high"


@pytest.mark.parametrize("status", ["resolved", "closed"])
async def test_escalating_finished_ticket_is_409(client, users, status):
    customer_id, _ = users.new("customer")
    _, headers = users.new("supervisor")
    ticket = await _ticket_in(client, headers, customer_id, status)
    await problem(await client.post(f"{TICKETS}/{ticket['id']}/escalate", json={}, headers=headers), 409)
    stored = await (await client.get(f"{TICKETS}/{ticket['id']}", headers=headers)).json()
    assert stored["escalation_level"] == 0


async def test_customer_cannot_escalate(client, users):
    _, headers = users.new("customer")
    ticket = await create_ticket(client, headers)
    await problem(await client.post(f"{TICKETS}/{ticket['id']}/escalate", json={}, headers=headers), 403)
    stored = await (await client.get(f"{TICKETS}/{ticket['id']}", headers=headers)).json()
    assert stored["escalation_level"] == 0


async def test_assigned_agent_escalates_ticket(client, users):
    customer_id, _ = users.new("customer")
    agent_id, agent_headers = users.new("agent")
    _, headers = users.new("supervisor")
    ticket = await create_for(client, headers, customer_id, agent_id=str(agent_id))
    response = await client.post(f"{TICKETS}/{ticket['id']}/escalate", json={}, headers=agent_headers)
    assert response.status == 200
    assert (await response.json())["ticket"]["escalation_level"] == 1


async def test_escalating_unknown_ticket_is_404(client, users):
    _, headers = users.new("admin")
    await problem(await client.post(f"{TICKETS}/{uuid.uuid4()}/escalate", json={}, headers=headers), 404)


# ---------------------------------------------------------------- delete


@pytest.mark.parametrize("role", ["supervisor", "admin"])
async def test_delete_removes_ticket_and_its_messages(client, users, ctx, role):
    customer_id, customer_headers = users.new("customer")
    _, headers = users.new(role)
    ticket = await create_ticket(client, customer_headers)
    ticket_id = uuid.UUID(ticket["id"])
    posted = await client.post(
        f"{TICKETS}/{ticket['id']}/messages", json={"message": "hello"}, headers=customer_headers
    )
    assert posted.status == 201
    assert await fetchval(ctx, "SELECT count(*) FROM ticket_messages WHERE ticket_id = $1", ticket_id) == 1
    response = await client.delete(f"{TICKETS}/{ticket['id']}", headers=headers)
    assert response.status == 204
    assert await response.read() == b""
    assert await fetchval(ctx, "SELECT count(*) FROM support_tickets WHERE id = $1", ticket_id) == 0
    assert await fetchval(ctx, "SELECT count(*) FROM ticket_messages WHERE ticket_id = $1", ticket_id) == 0
    await problem(await client.get(f"{TICKETS}/{ticket['id']}", headers=headers), 404)
    await problem(await client.get(f"{TICKETS}/{ticket['id']}", headers=customer_headers), 404)


@pytest.mark.parametrize("role", ["agent", "customer"])
async def test_delete_is_403_for_agents_and_customers(client, users, ctx, role):
    customer_id, customer_headers = users.new("customer")
    caller_id, caller_headers = users.new(role)
    _, supervisor = users.new("supervisor")
    # The caller is as close to the ticket as they can be: its customer, or its assigned agent.
    if role == "customer":
        ticket = await create_ticket(client, caller_headers)
    else:
        ticket = await create_for(client, supervisor, customer_id, agent_id=str(caller_id))
    await problem(await client.delete(f"{TICKETS}/{ticket['id']}", headers=caller_headers), 403)
    assert await fetchval(ctx, "SELECT count(*) FROM support_tickets WHERE id = $1", uuid.UUID(ticket["id"])) == 1


async def test_delete_unknown_ticket_is_404(client, users):
    _, headers = users.new("admin")
    await problem(await client.delete(f"{TICKETS}/{uuid.uuid4()}", headers=headers), 404)


# ---------------------------------------------------------------- messages


async def test_customer_posts_message_with_201_and_location(client, users):
    customer_id, headers = users.new("customer")
    ticket = await create_ticket(client, headers)
    response = await client.post(f"{TICKETS}/{ticket['id']}/messages", json={"message": "Any news?"}, headers=headers)
    assert response.status == 201
    message = await response.json()
    assert response.headers["Location"] == f"{TICKETS}/{ticket['id']}/messages/{message['id']}"
    assert message["message"] == "Any news?"
    assert message["sender_type"] == "customer"
    assert message["sender_id"] == str(customer_id)
    assert message["is_internal"] is False
    assert message["message_type"] == "text"


async def test_message_location_names_a_readable_resource(client, users):
    _, headers = users.new("customer")
    ticket = await create_ticket(client, headers)
    response = await client.post(
        f"{TICKETS}/{ticket['id']}/messages", json={"message": "Where is it?"}, headers=headers
    )
    assert response.status == 201
    located = await client.get(response.headers["Location"], headers=headers)
    assert located.status == 200
    assert (await located.json())["message"] == "Where is it?"


async def test_messages_are_listed_oldest_first(client, users):
    customer_id, customer_headers = users.new("customer")
    agent_id, agent_headers = users.new("agent")
    _, supervisor = users.new("supervisor")
    ticket = await create_for(client, supervisor, customer_id, agent_id=str(agent_id))
    url = f"{TICKETS}/{ticket['id']}/messages"
    for text, headers in (("one", customer_headers), ("two", agent_headers), ("three", customer_headers)):
        assert (await client.post(url, json={"message": text}, headers=headers)).status == 201
    page = await (await client.get(url, headers=customer_headers)).json()
    assert [m["message"] for m in page["items"]] == ["one", "two", "three"]
    assert [m["sender_type"] for m in page["items"]] == ["customer", "agent", "customer"]
    assert page["total"] == 3


async def test_messages_page_with_limit_and_offset(client, users):
    _, headers = users.new("customer")
    ticket = await create_ticket(client, headers)
    url = f"{TICKETS}/{ticket['id']}/messages"
    for i in range(3):
        await client.post(url, json={"message": f"m{i}"}, headers=headers)
    page = await (await client.get(url, params={"limit": "2", "offset": "1"}, headers=headers)).json()
    assert [m["message"] for m in page["items"]] == ["m1", "m2"]
    assert (page["total"], page["limit"], page["offset"]) == (3, 2, 1)


async def test_messages_offset_past_the_end_still_reports_total(client, users):
    _, headers = users.new("customer")
    ticket = await create_ticket(client, headers)
    url = f"{TICKETS}/{ticket['id']}/messages"
    for i in range(2):
        await client.post(url, json={"message": f"m{i}"}, headers=headers)
    page = await (await client.get(url, params={"offset": "5"}, headers=headers)).json()
    assert page["items"] == []
    assert page["total"] == 2


async def test_customer_cannot_post_internal_note(client, users, ctx):
    _, headers = users.new("customer")
    ticket = await create_ticket(client, headers)
    response = await client.post(
        f"{TICKETS}/{ticket['id']}/messages", json={"message": "psst", "is_internal": True}, headers=headers
    )
    await problem(response, 403)
    assert (
        await fetchval(ctx, "SELECT count(*) FROM ticket_messages WHERE ticket_id = $1", uuid.UUID(ticket["id"])) == 0
    )


async def test_customer_never_sees_internal_notes_in_messages(client, users):
    customer_id, customer_headers = users.new("customer")
    agent_id, agent_headers = users.new("agent")
    _, supervisor = users.new("supervisor")
    ticket = await create_for(client, supervisor, customer_id, agent_id=str(agent_id))
    url = f"{TICKETS}/{ticket['id']}/messages"
    await client.post(url, json={"message": "public reply"}, headers=agent_headers)
    note = await client.post(url, json={"message": "customer is rude", "is_internal": True}, headers=agent_headers)
    assert note.status == 201
    assert (await note.json())["is_internal"] is True
    seen_by_customer = await (await client.get(url, headers=customer_headers)).json()
    assert [m["message"] for m in seen_by_customer["items"]] == ["public reply"]
    assert seen_by_customer["total"] == 1
    seen_by_agent = await (await client.get(url, headers=agent_headers)).json()
    assert [m["message"] for m in seen_by_agent["items"]] == ["public reply", "customer is rude"]


async def test_customer_never_sees_internal_notes_in_history(client, users):
    customer_id, customer_headers = users.new("customer")
    agent_id, agent_headers = users.new("agent")
    _, supervisor = users.new("supervisor")
    ticket = await create_for(client, supervisor, customer_id, agent_id=str(agent_id))
    url = f"{TICKETS}/{ticket['id']}"
    await client.post(f"{url}/messages", json={"message": "note", "is_internal": True}, headers=agent_headers)
    await client.post(f"{url}/messages", json={"message": "reply"}, headers=agent_headers)
    staff = await (await client.get(f"{url}/history", headers=agent_headers)).json()
    customer = await (await client.get(f"{url}/history", headers=customer_headers)).json()
    staff_messages = [e for e in staff["items"] if e["type"] == "ticket.message_added"]
    customer_messages = [e for e in customer["items"] if e["type"] == "ticket.message_added"]
    assert [e["payload"]["is_internal"] for e in staff_messages] == [True, False]
    assert [e["payload"]["is_internal"] for e in customer_messages] == [False]
    assert not any(e["payload"].get("is_internal") for e in customer["items"])


async def test_customer_reply_reopens_resolved_ticket(client, users):
    _, customer_headers = users.new("customer")
    _, supervisor = users.new("supervisor")
    ticket = await create_ticket(client, customer_headers)
    assert (await set_status(client, supervisor, ticket["id"], "resolved")).status == 200
    response = await client.post(
        f"{TICKETS}/{ticket['id']}/messages", json={"message": "Still broken"}, headers=customer_headers
    )
    assert response.status == 201
    reopened = await (await client.get(f"{TICKETS}/{ticket['id']}", headers=customer_headers)).json()
    assert reopened["status"] == "open"
    assert reopened["resolved_at"] is None
    assert reopened["reopened_count"] == 1


async def test_agent_reply_does_not_reopen_resolved_ticket(client, users):
    customer_id, _ = users.new("customer")
    _, supervisor = users.new("supervisor")
    ticket = await create_for(client, supervisor, customer_id)
    assert (await set_status(client, supervisor, ticket["id"], "resolved")).status == 200
    assert (
        await client.post(f"{TICKETS}/{ticket['id']}/messages", json={"message": "FYI"}, headers=supervisor)
    ).status == 201
    stored = await (await client.get(f"{TICKETS}/{ticket['id']}", headers=supervisor)).json()
    assert stored["status"] == "resolved"


async def test_closed_ticket_refuses_messages(client, users, ctx):
    _, headers = users.new("customer")
    ticket = await create_ticket(client, headers)
    assert (await set_status(client, headers, ticket["id"], "closed")).status == 200
    await problem(await client.post(f"{TICKETS}/{ticket['id']}/messages", json={"message": "hi"}, headers=headers), 409)
    assert (
        await fetchval(ctx, "SELECT count(*) FROM ticket_messages WHERE ticket_id = $1", uuid.UUID(ticket["id"])) == 0
    )


async def test_first_public_agent_reply_sets_first_response_at(client, users):
    customer_id, _ = users.new("customer")
    agent_id, agent_headers = users.new("agent")
    _, supervisor = users.new("supervisor")
    ticket = await create_for(client, supervisor, customer_id, agent_id=str(agent_id))
    url = f"{TICKETS}/{ticket['id']}"
    await client.post(f"{url}/messages", json={"message": "note", "is_internal": True}, headers=agent_headers)
    after_note = await (await client.get(url, headers=agent_headers)).json()
    assert after_note["first_response_at"] is None
    reply = await (await client.post(f"{url}/messages", json={"message": "On it"}, headers=agent_headers)).json()
    after_reply = await (await client.get(url, headers=agent_headers)).json()
    assert after_reply["first_response_at"] == reply["created_at"]
    await client.post(f"{url}/messages", json={"message": "Update"}, headers=agent_headers)
    after_second = await (await client.get(url, headers=agent_headers)).json()
    assert after_second["first_response_at"] == reply["created_at"]


async def test_customer_message_does_not_set_first_response_at(client, users):
    _, headers = users.new("customer")
    ticket = await create_ticket(client, headers)
    await client.post(f"{TICKETS}/{ticket['id']}/messages", json={"message": "hello?"}, headers=headers)
    stored = await (await client.get(f"{TICKETS}/{ticket['id']}", headers=headers)).json()
    assert stored["first_response_at"] is None


async def test_message_with_attachments_round_trips(client, users):
    _, headers = users.new("customer")
    ticket = await create_ticket(client, headers)
    attachment = {
        "name": "shot.png",
        "url": "https://files.example/shot.png",
        "content_type": "image/png",
        "size": 1200,
    }
    response = await client.post(
        f"{TICKETS}/{ticket['id']}/messages",
        json={"message": "see screenshot", "attachments": [attachment]},
        headers=headers,
    )
    assert response.status == 201
    page = await (await client.get(f"{TICKETS}/{ticket['id']}/messages", headers=headers)).json()
    assert page["items"][0]["attachments"] == [attachment]


async def test_messages_of_unknown_ticket_are_404(client, users):
    _, headers = users.new("admin")
    await problem(await client.get(f"{TICKETS}/{uuid.uuid4()}/messages", headers=headers), 404)
    await problem(await client.post(f"{TICKETS}/{uuid.uuid4()}/messages", json={"message": "x"}, headers=headers), 404)


# ---------------------------------------------------------------- history


async def test_history_is_the_ticket_timeline_in_order(client, users):
    customer_id, customer_headers = users.new("customer")
    agent_id, _ = users.new("agent")
    supervisor_id, supervisor = users.new("supervisor")
    ticket = await create_ticket(client, customer_headers)
    url = f"{TICKETS}/{ticket['id']}"
    await client.put(url, json={"agent_id": str(agent_id)}, headers=supervisor)
    await set_status(client, supervisor, ticket["id"], "in_progress")
    await client.post(f"{url}/escalate", json={}, headers=supervisor)
    await client.post(f"{url}/messages", json={"message": "hi"}, headers=customer_headers)
    response = await client.get(f"{url}/history", headers=customer_headers)
    assert response.status == 200
    items = (await response.json())["items"]
    types = [e["type"] for e in items]
    assert types == [
        "ticket.created",
        "ticket.updated",
        "ticket.assigned",
        "ticket.updated",
        "ticket.status_changed",
        "ticket.escalated",
        "ticket.message_added",
    ]
    assert items[0]["actor_id"] == str(customer_id)
    assert items[2]["actor_id"] == str(supervisor_id)
    assert items[2]["payload"]["agent_id"] == str(agent_id)
    assert (items[4]["payload"]["from"], items[4]["payload"]["to"]) == ("open", "in_progress")
    assert all(set(e) == {"event_id", "type", "actor_id", "payload", "created_at"} for e in items)


async def test_history_of_unknown_ticket_is_404(client, users):
    _, headers = users.new("admin")
    await problem(await client.get(f"{TICKETS}/{uuid.uuid4()}/history", headers=headers), 404)
