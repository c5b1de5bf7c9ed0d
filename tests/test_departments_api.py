"""Departments (/api/v1/departments, API.md "Departments"): CRUD with the list conventions, who
may read and write, validation of hours and time zones, one department per category, creation on
first use, and routing of tickets and chats to agents of a department created over the API."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from helpers import create_for, fetch, fetchval, problem

from app.auth import Principal, RequestMeta
from app.clock import FrozenClock
from app.config import Settings
from app.context import AppContext, open_context
from app.services import chat, chat_timers
from chat_support import make_agent
from app.server import build_rest

pytest_plugins = ["chat_fixtures"]
DEPARTMENTS = "/api/v1/departments"


def name() -> str:
    return f"dep-{uuid.uuid4().hex[:8]}"


async def create(client: TestClient, admin: dict, **fields) -> dict:
    response = await client.post(DEPARTMENTS, json={"name": name(), **fields}, headers=admin)
    assert response.status == 201, await response.text()
    return await response.json()


@pytest.fixture
def admin(users) -> dict:
    return users.new("admin")[1]


async def events_of(ctx: AppContext, dept_id: str) -> list[tuple[str, dict]]:
    rows = await fetch(
        ctx,
        "SELECT type, payload FROM support_events WHERE entity_type = 'department' "
        "AND entity_id = $1 ORDER BY position",
        dept_id,
    )
    return [(r["type"], r["payload"]) for r in rows]


# ------------------------------------------------------------------ CRUD


async def test_admin_creates_a_department_with_201_location_and_defaults(client, admin):
    dept_name = f"billing-{uuid.uuid4().hex[:6]}"
    response = await client.post(
        DEPARTMENTS, json={"name": dept_name, "categories": [f"refund-{dept_name}"]}, headers=admin
    )
    assert response.status == 201
    dept = await response.json()
    assert response.headers["Location"] == f"{DEPARTMENTS}/{dept['id']}"
    assert dept["name"] == dept_name
    assert dept["display_name"] == f"Billing {dept_name.split('-')[1].capitalize()}"
    assert dept["categories"] == [f"refund-{dept_name}"]
    assert (dept["time_zone"], dept["business_hours"], dept["is_public"]) == ("UTC", None, True)
    assert (dept["queue_timeout_minutes"], dept["greeting"], dept["offline_message"]) == (None, None, None)
    assert (dept["queue_alert_minutes"], dept["queue_alert_raised_at"]) == (None, None)
    by_id = await client.get(response.headers["Location"], headers=admin)
    by_name = await client.get(f"{DEPARTMENTS}/{dept_name}", headers=admin)
    assert await by_id.json() == await by_name.json() == dept


async def test_list_has_the_envelope_filters_and_sort(client, admin):
    marker = uuid.uuid4().hex[:6]
    made = [await create(client, admin, name=f"zz-{marker}-{i}", display_name=f"Team {2 - i}") for i in range(3)]
    response = await client.get(DEPARTMENTS, params={"q": marker, "sort": "-name", "limit": 2}, headers=admin)
    body = await response.json()
    assert (body["total"], body["limit"], body["offset"]) == (3, 2, 0)
    assert [d["name"] for d in body["items"]] == [made[2]["name"], made[1]["name"]]
    by_display = await (
        await client.get(DEPARTMENTS, params={"q": marker, "sort": "display_name"}, headers=admin)
    ).json()
    assert [d["display_name"] for d in by_display["items"]] == ["Team 0", "Team 1", "Team 2"]
    served = await create(client, admin, categories=[f"cat-{marker}"])
    by_category = await (await client.get(DEPARTMENTS, params={"category": f"cat-{marker}"}, headers=admin)).json()
    assert [d["id"] for d in by_category["items"]] == [served["id"]]
    await problem(await client.get(DEPARTMENTS, params={"sort": "secret"}, headers=admin), 422)


async def test_put_is_partial_and_the_name_cannot_change(client, admin):
    dept = await create(client, admin, offline_message="Back soon", categories=["x-" + uuid.uuid4().hex[:6]])
    response = await client.put(
        f"{DEPARTMENTS}/{dept['id']}", json={"display_name": "Billing (DE)", "queue_timeout_minutes": 7}, headers=admin
    )
    assert response.status == 200
    changed = await response.json()
    assert changed["display_name"] == "Billing (DE)" and changed["queue_timeout_minutes"] == 7
    assert changed["offline_message"] == "Back soon" and changed["categories"] == dept["categories"]
    refused = await problem(await client.put(f"{DEPARTMENTS}/{dept['id']}", json={"name": "other"}, headers=admin), 422)
    assert "name" in refused["errors"]
    assert (await (await client.get(f"{DEPARTMENTS}/{dept['id']}", headers=admin)).json())["name"] == dept["name"]


async def test_delete_answers_204_then_404(client, admin):
    dept = await create(client, admin)
    assert (await client.delete(f"{DEPARTMENTS}/{dept['id']}", headers=admin)).status == 204
    await problem(await client.get(f"{DEPARTMENTS}/{dept['id']}", headers=admin), 404)
    await problem(await client.delete(f"{DEPARTMENTS}/{dept['id']}", headers=admin), 404)
    await problem(await client.get(f"{DEPARTMENTS}/no-such-{uuid.uuid4().hex}", headers=admin), 404)


async def test_a_department_in_use_and_general_cannot_be_deleted(client, admin, ctx):
    dept = await create(client, admin)
    await make_agent(ctx, dept["name"])
    refused = await problem(await client.delete(f"{DEPARTMENTS}/{dept['id']}", headers=admin), 409)
    assert (refused["agents"], refused["open_chats"], refused["open_tickets"]) == (1, 0, 0)
    await problem(await client.delete(f"{DEPARTMENTS}/general", headers=admin), 409)
    assert await fetchval(ctx, "SELECT count(*) FROM departments WHERE name = 'general'") == 1


# ------------------------------------------------------------------ who may read and write


@pytest.mark.parametrize("role", ["customer", "agent", "supervisor", "service"])
async def test_only_admins_write_and_are_asked_before_the_body_is_read(client, users, role, admin):
    _, headers = users.new(role)
    await problem(await client.post(DEPARTMENTS, json={}, headers=headers), 403)  # 403, not 422
    dept = await create(client, admin)
    await problem(await client.put(f"{DEPARTMENTS}/{dept['id']}", json={"display_name": "Mine"}, headers=headers), 403)
    await problem(await client.delete(f"{DEPARTMENTS}/{dept['id']}", headers=headers), 403)
    await problem(await client.get(DEPARTMENTS), 401)


@pytest.mark.parametrize("role", ["agent", "supervisor", "service"])
async def test_staff_and_services_read_every_field(client, users, admin, role):
    dept = await create(client, admin, is_public=False, greeting="Moin!")
    _, headers = users.new(role)
    seen = await (await client.get(f"{DEPARTMENTS}/{dept['id']}", headers=headers)).json()
    assert seen == dept


async def test_customers_read_the_public_subset_of_public_departments_with_availability(client, users, admin, ctx):
    shown = await create(
        client,
        admin,
        offline_message="Mail us",
        categories=["c-" + uuid.uuid4().hex[:6]],
        greeting="Hi",
        business_hours={"mon": [["00:00", "24:00"]]},
        time_zone="Europe/Berlin",
    )
    hidden = await create(client, admin, is_public=False)
    _, customer = users.new("customer")
    mine = await (await client.get(f"{DEPARTMENTS}/{shown['name']}", headers=customer)).json()
    assert mine == {
        "name": shown["name"],
        "display_name": shown["display_name"],
        "business_hours": {"mon": [["00:00", "24:00"]]},
        "time_zone": "Europe/Berlin",
        "offline_message": "Mail us",
        "open_now": mine["open_now"],
        "available": False,
    }
    assert isinstance(mine["open_now"], bool)
    await problem(await client.get(f"{DEPARTMENTS}/{hidden['id']}", headers=customer), 404)
    listed = await (await client.get(DEPARTMENTS, params={"limit": 100}, headers=customer)).json()
    names = {d["name"] for d in listed["items"]}
    assert shown["name"] in names or listed["total"] > 100
    assert hidden["name"] not in names
    assert all(set(d) == set(mine) for d in listed["items"])


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    "hours",
    [
        {"monday": [["09:00", "17:00"]]},
        {"mon": [["17:00", "09:00"]]},
        {"mon": [["9:00", "17:00"]]},
        {"mon": [["09:00", "25:00"]]},
        {"mon": [["24:00", "24:00"]]},
        {"mon": ["09:00-17:00"]},
        {"mon": "always"},
        ["mon"],
    ],
)
async def test_bad_business_hours_are_422_and_create_nothing(client, admin, ctx, hours):
    dept_name = name()
    body = await problem(
        await client.post(DEPARTMENTS, json={"name": dept_name, "business_hours": hours}, headers=admin), 422
    )
    assert "business_hours" in body["errors"]
    assert await fetchval(ctx, "SELECT count(*) FROM departments WHERE name = $1", dept_name) == 0


@pytest.mark.parametrize(
    "fields",
    [
        {"time_zone": "Mars/Olympus"},
        {"time_zone": ""},
        {"name": ""},
        {"name": "a/b"},
        {"name": " padded"},
        {"name": "x" * 101},
        {"categories": ["a", "a"]},
        {"queue_timeout_minutes": 0},
        {"is_public": "maybe"},
        {"colour": "red"},
    ],
)
async def test_other_bad_fields_are_422(client, admin, fields):
    body = await problem(await client.post(DEPARTMENTS, json={"name": name(), **fields}, headers=admin), 422)
    assert set(fields) <= set(body["errors"])


async def test_valid_hours_are_kept_in_day_order(client, admin):
    hours = {"sun": [["10:00", "14:00"]], "mon": [["09:00", "12:00"], ["13:00", "24:00"]]}
    dept = await create(client, admin, business_hours=hours, time_zone="America/New_York")
    assert list(dept["business_hours"]) == ["mon", "sun"]
    assert dept["business_hours"] == hours


# ------------------------------------------------------------------ one department per category


async def test_a_category_has_one_department(client, admin, ctx):
    category = f"refund-{uuid.uuid4().hex[:6]}"
    first = await create(client, admin, categories=[category])
    clash = await problem(
        await client.post(DEPARTMENTS, json={"name": name(), "categories": [category, "fine"]}, headers=admin), 409
    )
    assert first["name"] in clash["detail"]
    other = await create(client, admin)
    await problem(await client.put(f"{DEPARTMENTS}/{other['id']}", json={"categories": [category]}, headers=admin), 409)
    # A category may not name another department, nor a new department a served category.
    await problem(
        await client.put(f"{DEPARTMENTS}/{other['id']}", json={"categories": [first["name"]]}, headers=admin), 409
    )
    await problem(await client.post(DEPARTMENTS, json={"name": category}, headers=admin), 409)
    await problem(await client.post(DEPARTMENTS, json={"name": first["name"]}, headers=admin), 409)
    # The owner may keep or change its own categories.
    kept = await client.put(
        f"{DEPARTMENTS}/{first['id']}", json={"categories": [category, "extra-" + category]}, headers=admin
    )
    assert kept.status == 200
    assert await fetchval(ctx, "SELECT count(*) FROM departments WHERE $1 = ANY(categories)", category) == 1


# ------------------------------------------------------------------ audit and events


async def test_changes_are_audited_and_announced(client, admin, ctx):
    dept = await create(client, admin)
    await client.put(f"{DEPARTMENTS}/{dept['id']}", json={"offline_message": "Closed"}, headers=admin)
    await client.put(f"{DEPARTMENTS}/{dept['id']}", json={"offline_message": "Closed"}, headers=admin)  # no change
    await client.delete(f"{DEPARTMENTS}/{dept['id']}", headers=admin)
    events = await events_of(ctx, dept["id"])
    assert [t for t, _ in events] == ["department.created", "department.updated", "department.deleted"]
    assert events[1][1]["changed"] == ["offline_message"]
    assert all(p["name"] == dept["name"] for _, p in events)
    actions = [
        r["action"]
        for r in await fetch(
            ctx, "SELECT action FROM audit_log WHERE entity = 'department' AND entity_id = $1 ORDER BY id", dept["id"]
        )
    ]
    assert actions == ["department.create", "department.update", "department.delete"]


# ------------------------------------------------------------------ first use


async def test_an_agent_a_chat_and_a_ticket_create_their_department_on_first_use(client, users, ctx, cast):
    for_agent, for_chat, for_ticket = name(), name(), f"billing-de-{uuid.uuid4().hex[:6]}"
    await make_agent(ctx, for_agent)
    customer = await cast.customer()
    await customer.ok("chat:start", {"department": for_chat, "message": "hello"})
    _, staff = users.new("admin")
    ticket = await create_for(client, staff, uuid.uuid4(), category=for_ticket)
    assert ticket["department"] == for_ticket  # a category nothing maps is its own department
    for dept_name in (for_agent, for_chat, for_ticket):
        rows = await fetch(ctx, "SELECT id, display_name FROM departments WHERE name = $1", dept_name)
        assert len(rows) == 1, dept_name
        events = await events_of(ctx, str(rows[0]["id"]))
        assert [(t, p.get("created_on_first_use")) for t, p in events] == [("department.created", True)]
    again = await create_for(client, staff, uuid.uuid4(), category=for_ticket)
    assert again["department"] == for_ticket
    assert await fetchval(ctx, "SELECT count(*) FROM departments WHERE name = $1", for_ticket) == 1


async def test_a_mapped_category_goes_to_its_department(client, users, admin):
    dept = await create(client, admin, categories=[f"payments-{uuid.uuid4().hex[:6]}"])
    _, staff = users.new("admin")
    ticket = await create_for(client, staff, uuid.uuid4(), category=dept["categories"][0])
    assert ticket["department"] == dept["name"]


# ------------------------------------------------------------------ routing, hours, queue settings


@pytest.fixture(scope="module")
async def assigning(test_env: dict[str, str]) -> AsyncIterator[TestClient]:
    settings = Settings.from_env({**test_env, "TICKET_AUTO_ASSIGNMENT": "true"})
    async with open_context(settings) as actx, TestClient(TestServer(build_rest(settings, context=actx))) as c:
        yield c


async def test_a_ticket_reaches_an_agent_of_a_department_created_by_api(assigning, users, ctx):
    _, admin = users.new("admin")
    category = f"billing-de-{uuid.uuid4().hex[:6]}"
    dept = await create(assigning, admin, name=f"team-{category}", categories=[category])
    agent_id = await make_agent(ctx, dept["name"])
    await ctx.db.pool.execute("UPDATE support_agents SET status = 'online' WHERE user_id = $1", agent_id)
    ticket = await create_for(assigning, admin, uuid.uuid4(), category=category)
    assert (ticket["department"], ticket["agent_id"]) == (dept["name"], str(agent_id))


async def test_an_unmapped_category_reaches_an_agent_of_the_department_of_that_name(assigning, users, ctx):
    _, admin = users.new("admin")
    category = f"billing-de-{uuid.uuid4().hex[:6]}"
    agent_id = await make_agent(ctx, category)  # the agent's department exists from here on
    await ctx.db.pool.execute("UPDATE support_agents SET status = 'online' WHERE user_id = $1", agent_id)
    ticket = await create_for(assigning, admin, uuid.uuid4(), category=category)
    assert (ticket["department"], ticket["agent_id"]) == (category, str(agent_id))


async def test_a_chat_reaches_an_agent_of_a_department_created_by_api(client, admin, cast, chat_server):
    dept = await create(client, admin)
    agent = await cast.staff(await make_agent(chat_server.ctx, dept["name"]))
    customer = await cast.customer()
    started = await customer.ok("chat:start", {"department": dept["name"], "message": "Hallo"})
    assigned = await agent.expect("chat:assigned")
    assert assigned["session"]["id"] == started["session"]["id"]
    assert assigned["session"]["department"] == dept["name"]


async def test_business_hours_set_over_the_api_decide_availability(client, admin, users, cast, chat_server):
    dept = await create(client, admin, business_hours={}, offline_message="Closed today")  # never open
    await cast.staff(await make_agent(chat_server.ctx, dept["name"]))
    _, customer = users.new("customer")
    seen = await (
        await client.get("/api/v1/chat/availability", params={"department": dept["name"]}, headers=customer)
    ).json()
    assert seen["departments"][0] | {"online_agents": None} == {
        "name": dept["name"],
        "display_name": dept["display_name"],
        "description": None,
        "offline_message": "Closed today",
        "business_hours": {},
        "time_zone": "UTC",
        "online_agents": None,
        "free_places": 2,
        "queued": 0,
        "open_now": False,
        "available": False,
    }
    await client.put(f"{DEPARTMENTS}/{dept['id']}", json={"business_hours": None}, headers=admin)
    seen = await (await client.get(f"{DEPARTMENTS}/{dept['id']}", headers=customer)).json()
    assert (seen["open_now"], seen["available"]) == (True, True)


async def test_a_department_queue_timeout_overrides_the_configured_one(settings, client, admin, users):
    quick, slow = await create(client, admin, queue_timeout_minutes=1), await create(client, admin)
    clock = FrozenClock(dt.datetime.now(dt.timezone.utc))
    async with open_context(settings, clock=clock) as tctx:
        sessions = {}
        for dept in (quick, slow):
            customer = Principal(uuid.uuid4(), "customer")
            started = await chat.start_chat(tctx, customer, RequestMeta(), {"department": dept["name"]})
            sessions[dept["name"]] = started["session"]["id"]
        clock.advance(minutes=2)  # past 1 minute, within CHAT_QUEUE_TIMEOUT_MINUTES (5)
        await chat_timers.sweep_queue_timeouts(tctx)
        statuses = {
            d: await fetchval(tctx, "SELECT status FROM chat_sessions WHERE id = $1", uuid.UUID(str(s)))
            for d, s in sessions.items()
        }
    assert statuses == {quick["name"]: "timed_out", slow["name"]: "queued"}
    assert settings.chat_queue_timeout_minutes > 2


async def test_a_department_greeting_opens_the_automatic_greeting(test_env, users):
    settings = Settings.from_env({**test_env, "AUTO_RESPONSE_ENABLED": "true"})
    async with open_context(settings) as actx, TestClient(TestServer(build_rest(settings, context=actx))) as c:
        _, admin = users.new("admin")
        dept = await create(c, admin, greeting="Moin! Thanks for writing to Billing.")
        started = await chat.start_chat(
            actx,
            Principal(uuid.uuid4(), "customer"),
            RequestMeta(),
            {"department": dept["name"], "message": "Where is my invoice?"},
        )
        rows = await fetch(
            actx,
            "SELECT message FROM chat_messages WHERE session_id = $1 AND sender_type = 'system'",
            uuid.UUID(str(started["session"]["id"])),
        )
        texts = [actx.cipher.decrypt(r["message"], "chat_messages.message") for r in rows]
    assert len(texts) == 1
    assert texts[0].startswith("Moin! Thanks for writing to Billing. You are in the queue")


async def test_analytics_of_a_department_count_the_tickets_its_categories_route_to_it(client, users, admin):
    category = f"invoices-{uuid.uuid4().hex[:6]}"
    dept = await create(client, admin, categories=[category])
    _, staff = users.new("admin")
    for _ in range(2):
        await create_for(client, staff, uuid.uuid4(), category=category)
    await create_for(client, staff, uuid.uuid4(), category=dept["name"])  # its own name routes there too
    now = dt.datetime.now(dt.timezone.utc)
    window = {
        "from": (now - dt.timedelta(hours=1)).isoformat(),
        "to": (now + dt.timedelta(hours=1)).isoformat(),
        "department": dept["name"],
    }
    report = await (await client.get("/api/v1/analytics/tickets", params=window, headers=admin)).json()
    assert report["totals"]["created"] == 3
    assert report["by_category"] == {category: 2, dept["name"]: 1}
