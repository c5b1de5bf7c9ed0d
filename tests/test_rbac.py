"""Who may do what: authentication failures, ticket visibility per role, the agents roster and
the audit log. Every rule has its negative case."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest

from helpers import TICKETS, create_for, create_ticket, problem, set_status, start_active_chat, ticket_body

AGENTS = "/api/v1/agents"
AUDIT = "/api/v1/audit"


def _token(secret: str, **claims) -> str:
    now = int(time.time())
    return jwt.encode(
        {"sub": str(uuid.uuid4()), "role": "customer", "iat": now, "exp": now + 600, **claims},
        secret,
        algorithm="HS256",
    )


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---------------------------------------------------------------- authentication


async def _unauthorized(response) -> dict:
    body = await problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    return body


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", TICKETS),
        ("POST", TICKETS),
        ("GET", f"{TICKETS}/{uuid.uuid4()}"),
        ("PUT", f"{TICKETS}/{uuid.uuid4()}"),
        ("DELETE", f"{TICKETS}/{uuid.uuid4()}"),
        ("PATCH", f"{TICKETS}/{uuid.uuid4()}/status"),
        ("POST", f"{TICKETS}/{uuid.uuid4()}/escalate"),
        ("GET", f"{TICKETS}/{uuid.uuid4()}/messages"),
        ("POST", f"{TICKETS}/{uuid.uuid4()}/messages"),
        ("GET", f"{TICKETS}/{uuid.uuid4()}/history"),
        ("GET", AGENTS),
        ("GET", f"{AGENTS}/me"),
        ("GET", AUDIT),
    ],
)
async def test_missing_token_is_401(client, method, path):
    await _unauthorized(await client.request(method, path, json={}))


async def test_garbage_token_is_401(client):
    await _unauthorized(await client.get(TICKETS, headers=_bearer("not.a.jwt")))


async def test_non_bearer_scheme_is_401(client, settings):
    await _unauthorized(await client.get(TICKETS, headers={"Authorization": f"Basic {_token(settings.jwt_secret)}"}))


async def test_expired_token_is_401(client, settings):
    past = int(time.time()) - 3600
    token = _token(settings.jwt_secret, iat=past - 60, exp=past)
    body = await _unauthorized(await client.get(TICKETS, headers=_bearer(token)))
    assert "expired" in body["detail"].lower()


async def test_token_signed_with_another_secret_is_401(client):
    token = _token("another-secret-that-is-long-enough-for-hs256!!")
    await _unauthorized(await client.get(TICKETS, headers=_bearer(token)))


async def test_unsigned_token_is_401(client):
    now = int(time.time())
    token = jwt.encode({"sub": str(uuid.uuid4()), "role": "admin", "exp": now + 600}, key=None, algorithm="none")
    await _unauthorized(await client.get(TICKETS, headers=_bearer(token)))


async def test_token_without_expiry_is_401(client, settings):
    token = jwt.encode({"sub": str(uuid.uuid4()), "role": "admin"}, settings.jwt_secret, algorithm="HS256")
    await _unauthorized(await client.get(TICKETS, headers=_bearer(token)))


async def test_token_with_non_uuid_subject_is_401(client, settings):
    await _unauthorized(await client.get(TICKETS, headers=_bearer(_token(settings.jwt_secret, sub="user-42"))))


@pytest.mark.parametrize("role", ["superuser", "Admin", None])
async def test_token_with_unknown_role_is_403(client, settings, role):
    await problem(await client.get(TICKETS, headers=_bearer(_token(settings.jwt_secret, role=role))), 403)


async def test_valid_hand_made_token_is_accepted(client, settings):
    # The negative cases above differ from this one only in the defect under test.
    response = await client.get(TICKETS, headers=_bearer(_token(settings.jwt_secret)))
    assert response.status == 200


# ---------------------------------------------------------------- customers


async def test_customer_cannot_read_another_customers_ticket(client, users):
    _, owner = users.new("customer")
    _, other = users.new("customer")
    ticket = await create_ticket(client, owner)
    await problem(await client.get(f"{TICKETS}/{ticket['id']}", headers=other), 404)
    await problem(await client.get(f"{TICKETS}/{ticket['id']}/messages", headers=other), 404)
    await problem(await client.get(f"{TICKETS}/{ticket['id']}/history", headers=other), 404)


async def test_customer_cannot_update_another_customers_ticket(client, users):
    _, owner = users.new("customer")
    _, other = users.new("customer")
    ticket = await create_ticket(client, owner, subject="Original")
    url = f"{TICKETS}/{ticket['id']}"
    await problem(await client.put(url, json={"subject": "Hijacked"}, headers=other), 404)
    await problem(await set_status(client, other, ticket["id"], "closed"), 404)
    await problem(await client.post(f"{url}/messages", json={"message": "hi"}, headers=other), 404)
    stored = await (await client.get(url, headers=owner)).json()
    assert (stored["subject"], stored["status"]) == ("Original", "open")


async def test_customer_list_shows_only_own_tickets(client, users):
    _, owner = users.new("customer")
    other_id, other = users.new("customer")
    theirs = await create_ticket(client, owner)
    mine = await create_ticket(client, other)
    page = await (await client.get(TICKETS, params={"limit": "100"}, headers=other)).json()
    ids = {t["id"] for t in page["items"]}
    assert mine["id"] in ids
    assert theirs["id"] not in ids
    assert all(t["customer_id"] == str(other_id) for t in page["items"])


async def test_customer_filtering_by_another_customer_sees_nothing(client, users):
    owner_id, owner = users.new("customer")
    _, other = users.new("customer")
    await create_ticket(client, owner)
    page = await (await client.get(TICKETS, params={"customer_id": str(owner_id)}, headers=other)).json()
    assert page["items"] == [] and page["total"] == 0


# ---------------------------------------------------------------- agents and tickets


async def test_agent_cannot_read_unassigned_ticket(client, users):
    _, customer = users.new("customer")
    _, agent = users.new("agent")
    ticket = await create_ticket(client, customer)
    await problem(await client.get(f"{TICKETS}/{ticket['id']}", headers=agent), 404)
    await problem(await client.get(f"{TICKETS}/{ticket['id']}/messages", headers=agent), 404)
    await problem(await client.get(f"{TICKETS}/{ticket['id']}/history", headers=agent), 404)


async def test_agent_cannot_change_unassigned_ticket(client, users):
    _, customer = users.new("customer")
    _, agent = users.new("agent")
    ticket = await create_ticket(client, customer)
    url = f"{TICKETS}/{ticket['id']}"
    await problem(await client.put(url, json={"priority": "high"}, headers=agent), 404)
    await problem(await set_status(client, agent, ticket["id"], "in_progress"), 404)
    await problem(await client.post(f"{url}/escalate", json={}, headers=agent), 404)
    await problem(await client.post(f"{url}/messages", json={"message": "hi"}, headers=agent), 404)


async def test_agent_list_excludes_unassigned_tickets(client, users):
    customer_id, customer = users.new("customer")
    _, agent = users.new("agent")
    await create_ticket(client, customer)
    page = await (await client.get(TICKETS, params={"customer_id": str(customer_id)}, headers=agent)).json()
    assert page["items"] == [] and page["total"] == 0


async def test_agent_reads_ticket_after_supervisor_assigns_it(client, users):
    customer_id, customer = users.new("customer")
    agent_id, agent = users.new("agent")
    _, supervisor = users.new("supervisor")
    ticket = await create_ticket(client, customer)
    url = f"{TICKETS}/{ticket['id']}"
    await problem(await client.get(url, headers=agent), 404)
    assert (await client.put(url, json={"agent_id": str(agent_id)}, headers=supervisor)).status == 200
    response = await client.get(url, headers=agent)
    assert response.status == 200
    assert (await response.json())["agent_id"] == str(agent_id)
    page = await (await client.get(TICKETS, params={"customer_id": str(customer_id)}, headers=agent)).json()
    assert [t["id"] for t in page["items"]] == [ticket["id"]]


async def test_agent_loses_access_when_unassigned(client, users):
    customer_id, _ = users.new("customer")
    agent_id, agent = users.new("agent")
    _, supervisor = users.new("supervisor")
    ticket = await create_for(client, supervisor, customer_id, agent_id=str(agent_id))
    url = f"{TICKETS}/{ticket['id']}"
    assert (await client.get(url, headers=agent)).status == 200
    assert (await client.put(url, json={"agent_id": None}, headers=supervisor)).status == 200
    await problem(await client.get(url, headers=agent), 404)


async def test_agent_reads_tickets_of_customer_in_active_chat(client, users, ctx):
    customer_id, customer = users.new("customer")
    agent_id, agent = users.new("agent")
    ticket = await create_ticket(client, customer)
    await problem(await client.get(f"{TICKETS}/{ticket['id']}", headers=agent), 404)
    await start_active_chat(ctx, customer_id, agent_id)
    response = await client.get(f"{TICKETS}/{ticket['id']}", headers=agent)
    assert response.status == 200
    assert (await client.get(f"{TICKETS}/{ticket['id']}/history", headers=agent)).status == 200
    page = await (await client.get(TICKETS, params={"customer_id": str(customer_id)}, headers=agent)).json()
    assert [t["id"] for t in page["items"]] == [ticket["id"]]


async def test_agent_cannot_update_ticket_of_customer_in_active_chat(client, users, ctx):
    customer_id, customer = users.new("customer")
    agent_id, agent = users.new("agent")
    ticket = await create_ticket(client, customer, subject="Unchanged")
    await start_active_chat(ctx, customer_id, agent_id)
    url = f"{TICKETS}/{ticket['id']}"
    await problem(await client.put(url, json={"subject": "Changed"}, headers=agent), 403)
    await problem(await set_status(client, agent, ticket["id"], "in_progress"), 403)
    await problem(await client.post(f"{url}/escalate", json={}, headers=agent), 403)
    await problem(await client.post(f"{url}/messages", json={"message": "hi"}, headers=agent), 403)
    stored = await (await client.get(url, headers=customer)).json()
    assert (stored["subject"], stored["status"], stored["escalation_level"]) == ("Unchanged", "open", 0)


async def test_ended_chat_gives_agent_no_access(client, users, ctx):
    customer_id, customer = users.new("customer")
    agent_id, agent = users.new("agent")
    ticket = await create_ticket(client, customer)
    await ctx.db.pool.execute(
        "INSERT INTO chat_sessions (session_id, customer_id, agent_id, status) VALUES ($1, $2, $3, 'ended')",
        f"test-{uuid.uuid4().hex}",
        customer_id,
        agent_id,
    )
    await problem(await client.get(f"{TICKETS}/{ticket['id']}", headers=agent), 404)


async def test_another_agents_chat_gives_agent_no_access(client, users, ctx):
    customer_id, customer = users.new("customer")
    other_agent_id, _ = users.new("agent")
    _, agent = users.new("agent")
    ticket = await create_ticket(client, customer)
    await start_active_chat(ctx, customer_id, other_agent_id)
    await problem(await client.get(f"{TICKETS}/{ticket['id']}", headers=agent), 404)


async def test_agent_cannot_assign_tickets(client, users):
    customer_id, _ = users.new("customer")
    agent_id, agent = users.new("agent")
    other_agent_id, _ = users.new("agent")
    _, supervisor = users.new("supervisor")
    ticket = await create_for(client, supervisor, customer_id, agent_id=str(agent_id))
    url = f"{TICKETS}/{ticket['id']}"
    await problem(await client.put(url, json={"agent_id": str(other_agent_id)}, headers=agent), 403)
    await problem(await client.put(url, json={"agent_id": None}, headers=agent), 403)
    stored = await (await client.get(url, headers=agent)).json()
    assert stored["agent_id"] == str(agent_id)


async def test_customer_cannot_assign_tickets(client, users):
    agent_id, _ = users.new("agent")
    _, customer = users.new("customer")
    ticket = await create_ticket(client, customer)
    await problem(
        await client.put(f"{TICKETS}/{ticket['id']}", json={"agent_id": str(agent_id)}, headers=customer), 403
    )


@pytest.mark.parametrize("role", ["supervisor", "admin"])
async def test_overseers_see_every_ticket(client, users, role):
    customer_id, customer = users.new("customer")
    _, headers = users.new(role)
    ticket = await create_ticket(client, customer)
    assert (await client.get(f"{TICKETS}/{ticket['id']}", headers=headers)).status == 200
    assert (await client.get(f"{TICKETS}/{ticket['id']}/messages", headers=headers)).status == 200
    page = await (await client.get(TICKETS, params={"customer_id": str(customer_id)}, headers=headers)).json()
    assert [t["id"] for t in page["items"]] == [ticket["id"]]


@pytest.mark.parametrize("role", ["supervisor", "admin"])
async def test_overseers_change_any_ticket(client, users, role):
    _, customer = users.new("customer")
    _, headers = users.new(role)
    ticket = await create_ticket(client, customer)
    response = await client.put(f"{TICKETS}/{ticket['id']}", json={"priority": "urgent"}, headers=headers)
    assert response.status == 200
    assert (await response.json())["priority"] == "urgent"


# ---------------------------------------------------------------- service role


async def test_service_creates_ticket_for_customer(client, users):
    customer_id, customer = users.new("customer")
    _, service = users.new("service")
    ticket = await create_for(client, service, customer_id)
    assert ticket["customer_id"] == str(customer_id)
    assert (await client.get(f"{TICKETS}/{ticket['id']}", headers=customer)).status == 200


async def test_service_must_name_the_customer(client, users):
    _, service = users.new("service")
    body = await problem(await client.post(TICKETS, json=ticket_body(), headers=service), 422)
    assert "customer_id" in body["errors"]


async def test_service_reads_any_ticket(client, users):
    customer_id, customer = users.new("customer")
    _, service = users.new("service")
    ticket = await create_ticket(client, customer)
    assert (await client.get(f"{TICKETS}/{ticket['id']}", headers=service)).status == 200
    page = await (await client.get(TICKETS, params={"customer_id": str(customer_id)}, headers=service)).json()
    assert [t["id"] for t in page["items"]] == [ticket["id"]]


async def test_service_cannot_write_internal_notes(client, users):
    _, customer = users.new("customer")
    _, service = users.new("service")
    ticket = await create_ticket(client, customer)
    await problem(
        await client.post(
            f"{TICKETS}/{ticket['id']}/messages", json={"message": "x", "is_internal": True}, headers=service
        ),
        403,
    )


async def test_service_messages_are_from_a_bot(client, users):
    _, customer = users.new("customer")
    _, service = users.new("service")
    ticket = await create_ticket(client, customer)
    response = await client.post(f"{TICKETS}/{ticket['id']}/messages", json={"message": "auto"}, headers=service)
    assert response.status == 201
    assert (await response.json())["sender_type"] == "bot"


async def test_service_cannot_delete_tickets(client, users):
    _, customer = users.new("customer")
    _, service = users.new("service")
    ticket = await create_ticket(client, customer)
    await problem(await client.delete(f"{TICKETS}/{ticket['id']}", headers=service), 403)


# ---------------------------------------------------------------- agents roster


def _agent_body(user_id: uuid.UUID, **fields) -> dict:
    return {"user_id": str(user_id), "display_name": "Ada Agent", "department": "general", **fields}


async def _create_agent(client, headers, user_id: uuid.UUID, **fields) -> dict:
    response = await client.post(AGENTS, json=_agent_body(user_id, **fields), headers=headers)
    assert response.status == 201, await response.text()
    return await response.json()


@pytest.mark.parametrize("role", ["agent", "customer", "service"])
async def test_non_managers_cannot_list_agents(client, users, role):
    _, headers = users.new(role)
    await problem(await client.get(AGENTS, headers=headers), 403)


@pytest.mark.parametrize("role", ["agent", "customer", "service"])
async def test_non_managers_cannot_create_agents(client, users, ctx, role):
    caller_id, headers = users.new(role)
    await problem(await client.post(AGENTS, json=_agent_body(caller_id), headers=headers), 403)
    assert await ctx.db.pool.fetchval("SELECT count(*) FROM support_agents WHERE user_id = $1", caller_id) == 0


@pytest.mark.parametrize("role", ["agent", "customer"])
async def test_non_managers_cannot_read_update_or_delete_agents(client, users, role):
    _, supervisor = users.new("supervisor")
    agent = await _create_agent(client, supervisor, uuid.uuid4(), display_name="Keep")
    _, headers = users.new(role)
    url = f"{AGENTS}/{agent['id']}"
    await problem(await client.get(url, headers=headers), 403)
    await problem(await client.put(url, json={"display_name": "Changed"}, headers=headers), 403)
    await problem(await client.delete(url, headers=headers), 403)
    stored = await (await client.get(url, headers=supervisor)).json()
    assert stored["display_name"] == "Keep"


@pytest.mark.parametrize("role", ["supervisor", "admin"])
async def test_managers_create_read_update_and_delete_agents(client, users, role):
    _, headers = users.new(role)
    user_id = uuid.uuid4()
    department = f"dept-{uuid.uuid4().hex[:8]}"
    agent = await _create_agent(client, headers, user_id, skills=["billing"], department=department)
    assert agent["user_id"] == str(user_id) and agent["skills"] == ["billing"]
    url = f"{AGENTS}/{agent['id']}"
    assert (await (await client.get(url, headers=headers)).json())["user_id"] == str(user_id)
    updated = await client.put(url, json={"max_chats": 5}, headers=headers)
    assert updated.status == 200 and (await updated.json())["max_chats"] == 5
    listed = await (await client.get(AGENTS, params={"department": department}, headers=headers)).json()
    assert [a["id"] for a in listed["items"]] == [agent["id"]] and listed["total"] == 1
    assert (await client.delete(url, headers=headers)).status == 204
    await problem(await client.get(url, headers=headers), 404)


async def test_duplicate_agent_user_is_409(client, users):
    _, supervisor = users.new("supervisor")
    user_id = uuid.uuid4()
    await _create_agent(client, supervisor, user_id)
    await problem(await client.post(AGENTS, json=_agent_body(user_id), headers=supervisor), 409)


async def test_agent_without_profile_gets_404_on_me(client, users):
    _, agent = users.new("agent")
    await problem(await client.get(f"{AGENTS}/me", headers=agent), 404)
    await problem(await client.patch(f"{AGENTS}/me/status", json={"status": "online"}, headers=agent), 404)


async def test_customer_gets_403_on_agents_me(client, users):
    _, customer = users.new("customer")
    await problem(await client.get(f"{AGENTS}/me", headers=customer), 403)
    await problem(await client.patch(f"{AGENTS}/me/status", json={"status": "online"}, headers=customer), 403)


async def test_agent_reads_own_profile(client, users):
    agent_id, agent = users.new("agent")
    _, supervisor = users.new("supervisor")
    created = await _create_agent(client, supervisor, agent_id)
    response = await client.get(f"{AGENTS}/me", headers=agent)
    assert response.status == 200
    me = await response.json()
    assert (me["id"], me["user_id"]) == (created["id"], str(agent_id))


async def test_agent_sets_own_status(client, users):
    agent_id, agent = users.new("agent")
    _, supervisor = users.new("supervisor")
    created = await _create_agent(client, supervisor, agent_id)
    assert created["status"] == "offline"
    response = await client.patch(f"{AGENTS}/me/status", json={"status": "online"}, headers=agent)
    assert response.status == 200
    assert (await response.json())["status"] == "online"
    assert (await (await client.get(f"{AGENTS}/me", headers=agent)).json())["status"] == "online"
    away = await client.patch(f"{AGENTS}/me/status", json={"status": "away"}, headers=agent)
    assert (await away.json())["status"] == "away"


async def test_agent_status_must_be_known(client, users):
    agent_id, agent = users.new("agent")
    _, supervisor = users.new("supervisor")
    await _create_agent(client, supervisor, agent_id)
    body = await problem(await client.patch(f"{AGENTS}/me/status", json={"status": "busy"}, headers=agent), 422)
    assert "status" in body["errors"]


# ---------------------------------------------------------------- audit endpoint


@pytest.mark.parametrize("role", ["supervisor", "agent", "customer", "service"])
async def test_audit_log_is_admin_only(client, users, role):
    _, headers = users.new(role)
    await problem(await client.get(AUDIT, headers=headers), 403)


async def test_admin_reads_audit_log_filtered_by_actor(client, users):
    customer_id, customer = users.new("customer")
    _, admin = users.new("admin")
    ticket = await create_ticket(client, customer)
    response = await client.get(AUDIT, params={"actor_id": str(customer_id)}, headers=admin)
    assert response.status == 200
    page = await response.json()
    assert page["total"] == 1
    entry = page["items"][0]
    assert (entry["action"], entry["entity"], entry["entity_id"]) == ("ticket.create", "ticket", ticket["id"])
    assert (entry["actor_id"], entry["actor_role"]) == (str(customer_id), "customer")


async def test_admin_filters_audit_log_by_entity_and_action(client, users):
    _, customer = users.new("customer")
    _, admin = users.new("admin")
    ticket = await create_ticket(client, customer)
    await set_status(client, admin, ticket["id"], "closed")
    everything = await (
        await client.get(AUDIT, params={"entity": "ticket", "entity_id": ticket["id"]}, headers=admin)
    ).json()
    assert [e["action"] for e in everything["items"]] == ["ticket.status_change", "ticket.create"]
    only_status = await (
        await client.get(AUDIT, params={"entity_id": ticket["id"], "action": "ticket.status_change"}, headers=admin)
    ).json()
    assert [e["action"] for e in only_status["items"]] == ["ticket.status_change"]
