"""Cross-cutting guarantees: encryption at rest and key rotation, the audit log, the outbox, the
ticket cache, rate limits, health, metrics, CORS and request ids."""

from __future__ import annotations

import base64
import json
import re
import uuid

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from app.auth import Principal, RequestMeta
from app.config import Settings, parse_encryption_keys
from app.context import open_context
from app.security.encryption import DecryptionError, FieldCipher, generate_key_spec
from app.services import tickets as ticket_service
from helpers import PROBLEM_JSON, TICKETS, create_for, create_ticket, fetch, fetchval, problem, set_status
from app.server import build_rest

SECRET_DESCRIPTION = "My card 4111-1111-1111-1111 was charged twice"
SECRET_MESSAGE = "My passport number is X1234567"
SECRET_NOTE = "Customer sounds like a fraudster"

# ---------------------------------------------------------------- encryption at rest


async def test_ticket_pii_is_encrypted_at_rest(client, users, ctx):
    _, headers = users.new("customer", email="secret.person@example.com", name="Secret Person")
    ticket = await create_ticket(client, headers, description=SECRET_DESCRIPTION)
    row = (
        await fetch(
            ctx,
            "SELECT description, customer_email, customer_name FROM support_tickets WHERE id = $1",
            uuid.UUID(ticket["id"]),
        )
    )[0]
    for column, plaintext in (
        ("description", SECRET_DESCRIPTION),
        ("customer_email", "secret.person@example.com"),
        ("customer_name", "Secret Person"),
    ):
        assert row[column].startswith("enc:v1:"), column
        assert plaintext not in row[column]
        assert plaintext.encode() not in base64.b64decode(row[column].rsplit(":", 1)[1])


async def test_api_returns_decrypted_ticket_fields(client, users):
    _, headers = users.new("customer", email="secret.person@example.com", name="Secret Person")
    ticket = await create_ticket(client, headers, description=SECRET_DESCRIPTION)
    got = await (await client.get(f"{TICKETS}/{ticket['id']}", headers=headers)).json()
    assert got["description"] == SECRET_DESCRIPTION
    assert got["customer_email"] == "secret.person@example.com"
    assert got["customer_name"] == "Secret Person"


async def test_updated_description_is_encrypted_at_rest(client, users, ctx):
    _, headers = users.new("customer")
    ticket = await create_ticket(client, headers)
    response = await client.put(f"{TICKETS}/{ticket['id']}", json={"description": SECRET_DESCRIPTION}, headers=headers)
    assert (await response.json())["description"] == SECRET_DESCRIPTION
    stored = await fetchval(ctx, "SELECT description FROM support_tickets WHERE id = $1", uuid.UUID(ticket["id"]))
    assert stored.startswith("enc:v1:") and SECRET_DESCRIPTION not in stored


async def test_ticket_messages_are_encrypted_at_rest(client, users, ctx):
    _, headers = users.new("customer")
    ticket = await create_ticket(client, headers)
    posted = await client.post(f"{TICKETS}/{ticket['id']}/messages", json={"message": SECRET_MESSAGE}, headers=headers)
    message = await posted.json()
    stored = await fetchval(ctx, "SELECT message FROM ticket_messages WHERE id = $1", uuid.UUID(message["id"]))
    assert stored.startswith("enc:v1:")
    assert SECRET_MESSAGE not in stored
    page = await (await client.get(f"{TICKETS}/{ticket['id']}/messages", headers=headers)).json()
    assert page["items"][0]["message"] == SECRET_MESSAGE


async def test_ciphertext_is_bound_to_its_column(client, users, ctx):
    _, headers = users.new("customer", email="bound@example.com")
    ticket = await create_ticket(client, headers)
    email = await fetchval(ctx, "SELECT customer_email FROM support_tickets WHERE id = $1", uuid.UUID(ticket["id"]))
    assert ctx.cipher.decrypt(email, "support_tickets.customer_email") == "bound@example.com"
    with pytest.raises(DecryptionError):
        ctx.cipher.decrypt(email, "support_tickets.description")


async def test_new_first_key_still_decrypts_values_of_old_key(client, users, ctx, test_env):
    _, headers = users.new("customer")
    ticket = await create_ticket(client, headers, description=SECRET_DESCRIPTION)
    stored = await fetchval(ctx, "SELECT description FROM support_tickets WHERE id = $1", uuid.UUID(ticket["id"]))
    old_keys = parse_encryption_keys(test_env["DATA_ENCRYPTION_KEYS"])
    rotated = FieldCipher(parse_encryption_keys(generate_key_spec("t2")) + old_keys)
    assert rotated.key_id_of(stored) == "t1"
    assert rotated.decrypt(stored, "support_tickets.description") == SECRET_DESCRIPTION
    fresh = rotated.encrypt("after rotation", "support_tickets.description")
    assert rotated.key_id_of(fresh) == "t2"
    assert rotated.decrypt(fresh, "support_tickets.description") == "after rotation"
    with pytest.raises(DecryptionError):  # the old key alone cannot read what the new key wrote
        FieldCipher(old_keys).decrypt(fresh, "support_tickets.description")


async def test_cipher_without_the_old_key_cannot_read_old_values(client, users, ctx):
    _, headers = users.new("customer")
    ticket = await create_ticket(client, headers, description=SECRET_DESCRIPTION)
    stored = await fetchval(ctx, "SELECT description FROM support_tickets WHERE id = $1", uuid.UUID(ticket["id"]))
    with pytest.raises(DecryptionError):
        FieldCipher(parse_encryption_keys(generate_key_spec("t2"))).decrypt(stored, "support_tickets.description")


async def test_app_with_rotated_keys_serves_old_tickets(client, users, test_env):
    _, headers = users.new("customer")
    ticket = await create_ticket(client, headers, description=SECRET_DESCRIPTION)
    rotated_env = {**test_env, "DATA_ENCRYPTION_KEYS": f"{generate_key_spec('t9')},{test_env['DATA_ENCRYPTION_KEYS']}"}
    rotated = Settings.from_env(rotated_env)
    async with open_context(rotated) as rotated_ctx:
        async with TestClient(TestServer(build_rest(rotated, context=rotated_ctx))) as other:
            response = await other.get(f"{TICKETS}/{ticket['id']}", headers=headers)
            assert response.status == 200
            assert (await response.json())["description"] == SECRET_DESCRIPTION
            new = await create_ticket(other, headers)
            raw = await rotated_ctx.db.pool.fetchval(
                "SELECT description FROM support_tickets WHERE id = $1", uuid.UUID(new["id"])
            )
            assert raw.startswith("enc:v1:t9:")


# ---------------------------------------------------------------- audit log


async def _audit_rows(ctx, ticket_id: str) -> list:
    return await fetch(ctx, "SELECT * FROM audit_log WHERE entity = 'ticket' AND entity_id = $1 ORDER BY id", ticket_id)


async def test_every_ticket_change_is_audited_with_actor_role_request_and_ip(client, users, ctx):
    customer_id, customer = users.new("customer")
    supervisor_id, supervisor = users.new("supervisor")
    admin_id, admin = users.new("admin")

    def rid(name: str) -> dict:
        return {"X-Request-ID": f"req-{name}-{uuid.uuid4().hex[:12]}"}

    steps = []
    create_rid = rid("create")
    created = await client.post(
        TICKETS, json={"subject": "Audit me", "description": SECRET_DESCRIPTION}, headers={**customer, **create_rid}
    )
    ticket = await created.json()
    url = f"{TICKETS}/{ticket['id']}"
    steps.append(("ticket.create", customer_id, "customer", create_rid, created))
    for action, actor_id, role, headers, method, path, body in (
        ("ticket.update", supervisor_id, "supervisor", supervisor, "PUT", url, {"priority": "high"}),
        (
            "ticket.status_change",
            supervisor_id,
            "supervisor",
            supervisor,
            "PATCH",
            f"{url}/status",
            {"status": "in_progress"},
        ),
        ("ticket.escalate", supervisor_id, "supervisor", supervisor, "POST", f"{url}/escalate", {"reason": "vip"}),
        (
            "ticket.message_add",
            customer_id,
            "customer",
            customer,
            "POST",
            f"{url}/messages",
            {"message": SECRET_MESSAGE},
        ),
        ("ticket.delete", admin_id, "admin", admin, "DELETE", url, None),
    ):
        request_id = rid(action.split(".")[1])
        response = await client.request(method, path, json=body, headers={**headers, **request_id})
        assert response.status < 300, await response.text()
        steps.append((action, actor_id, role, request_id, response))

    rows = await _audit_rows(ctx, ticket["id"])
    assert [r["action"] for r in rows] == [s[0] for s in steps]
    for row, (action, actor_id, role, request_id, response) in zip(rows, steps, strict=True):
        assert response.headers["X-Request-ID"] == request_id["X-Request-ID"]
        assert row["request_id"] == request_id["X-Request-ID"], action
        assert row["actor_id"] == actor_id, action
        assert row["actor_role"] == role, action
        assert row["ip"] == "127.0.0.1", action
        assert row["transport"] == "rest", action
        assert SECRET_DESCRIPTION not in json.dumps(row["changes"])
        assert SECRET_MESSAGE not in json.dumps(row["changes"])


async def test_audit_records_what_changed_but_not_sensitive_values(client, users, ctx):
    customer_id, _ = users.new("customer")
    _, supervisor = users.new("supervisor")
    ticket = await create_for(client, supervisor, customer_id, priority="low")
    await client.put(
        f"{TICKETS}/{ticket['id']}", json={"priority": "urgent", "description": SECRET_DESCRIPTION}, headers=supervisor
    )
    row = (await _audit_rows(ctx, ticket["id"]))[-1]
    assert row["action"] == "ticket.update"
    assert row["changes"]["priority"] == {"from": "low", "to": "urgent"}
    assert row["changes"]["description"] == {"changed": True}
    assert SECRET_DESCRIPTION not in json.dumps(row["changes"])


async def test_invalid_request_id_is_replaced(client, users, ctx):
    _, headers = users.new("customer")
    response = await client.post(
        TICKETS, json={"subject": "s", "description": "d"}, headers={**headers, "X-Request-ID": "bad id with spaces"}
    )
    generated = response.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    row = (await _audit_rows(ctx, (await response.json())["id"]))[0]
    assert row["request_id"] == generated


@pytest.mark.parametrize(
    "statement", ["UPDATE audit_log SET action = 'tampered' WHERE id = $1", "DELETE FROM audit_log WHERE id = $1"]
)
async def test_audit_log_is_append_only(client, users, ctx, statement):
    _, headers = users.new("customer")
    ticket = await create_ticket(client, headers)
    row = (await _audit_rows(ctx, ticket["id"]))[0]
    async with ctx.db.pool.acquire() as conn:
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute(statement, row["id"])
    assert (await _audit_rows(ctx, ticket["id"]))[0]["action"] == "ticket.create"


async def test_audit_log_refuses_truncate(ctx):
    async with ctx.db.pool.acquire() as conn, conn.transaction():
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("TRUNCATE audit_log")


# ---------------------------------------------------------------- outbox


async def _events(ctx, ticket_id: str) -> list:
    rows = await fetch(
        ctx, "SELECT * FROM support_events WHERE entity_type = 'ticket' AND entity_id = $1 ORDER BY position", ticket_id
    )
    return rows


async def test_every_ticket_change_writes_its_outbox_event(client, users, ctx):
    customer_id, customer = users.new("customer", email="outbox@example.com", name="Olive Outbox")
    supervisor_id, supervisor = users.new("supervisor")
    ticket = await create_ticket(client, customer, description=SECRET_DESCRIPTION)
    url = f"{TICKETS}/{ticket['id']}"
    assert (
        await client.put(url, json={"description": SECRET_DESCRIPTION + " and more", "tags": ["x"]}, headers=supervisor)
    ).status == 200
    assert (await set_status(client, supervisor, ticket["id"], "pending")).status == 200
    assert (await client.post(f"{url}/escalate", json={}, headers=supervisor)).status == 200
    assert (await client.post(f"{url}/messages", json={"message": SECRET_MESSAGE}, headers=customer)).status == 201
    assert (
        await client.post(f"{url}/messages", json={"message": SECRET_NOTE, "is_internal": True}, headers=supervisor)
    ).status == 201
    assert (await client.delete(url, headers=supervisor)).status == 204

    events = await _events(ctx, ticket["id"])
    types = [e["type"] for e in events]
    assert types == [
        "ticket.created",
        "ticket.updated",
        "ticket.updated",
        "ticket.status_changed",
        "ticket.escalated",
        "ticket.message_added",
        "ticket.message_added",
        "ticket.deleted",
    ]
    assert all(e["topic"] == "ticket-events" for e in events)
    assert len({e["event_id"] for e in events}) == len(events)
    assert events[0]["actor_id"] == customer_id and events[-1]["actor_id"] == supervisor_id
    assert events[1]["payload"]["changes"]["description"] == {"changed": True}
    assert events[1]["payload"]["changes"]["tags"] == {"from": [], "to": ["x"]}
    assert (events[3]["payload"]["from"], events[3]["payload"]["to"]) == ("open", "pending")
    assert events[4]["payload"]["escalation_level"] == 1
    for event in events:
        payload = json.dumps(event["payload"])
        for secret in (SECRET_DESCRIPTION, SECRET_MESSAGE, SECRET_NOTE, "outbox@example.com", "Olive Outbox"):
            assert secret not in payload, (event["type"], secret)


async def test_assignment_writes_assigned_event(client, users, ctx):
    customer_id, _ = users.new("customer")
    agent_id, _ = users.new("agent")
    _, supervisor = users.new("supervisor")
    ticket = await create_for(client, supervisor, customer_id)
    await client.put(f"{TICKETS}/{ticket['id']}", json={"agent_id": str(agent_id)}, headers=supervisor)
    assigned = [e for e in await _events(ctx, ticket["id"]) if e["type"] == "ticket.assigned"]
    assert len(assigned) == 1
    assert assigned[0]["payload"]["agent_id"] == str(agent_id)
    assert assigned[0]["payload"]["from_agent_id"] is None


async def test_unchanged_update_writes_no_event_or_audit(client, users, ctx):
    customer_id, _ = users.new("customer")
    _, supervisor = users.new("supervisor")
    ticket = await create_for(client, supervisor, customer_id, priority="high")
    before = (len(await _events(ctx, ticket["id"])), len(await _audit_rows(ctx, ticket["id"])))
    response = await client.put(f"{TICKETS}/{ticket['id']}", json={"priority": "high"}, headers=supervisor)
    assert response.status == 200
    assert (len(await _events(ctx, ticket["id"])), len(await _audit_rows(ctx, ticket["id"]))) == before


# ---------------------------------------------------------------- ticket cache


async def test_get_caches_ticket_in_redis_still_encrypted(client, users, ctx):
    _, headers = users.new("customer", email="cached@example.com")
    ticket = await create_ticket(client, headers, description=SECRET_DESCRIPTION)
    key = f"cache:ticket:{ticket['id']}"
    assert await ctx.redis.exists(key) == 0
    assert (await client.get(f"{TICKETS}/{ticket['id']}", headers=headers)).status == 200
    assert await ctx.redis.exists(key) == 1
    assert 0 < await ctx.redis.ttl(key) <= 300
    cached = await ctx.redis.get(key)
    assert SECRET_DESCRIPTION not in cached and "cached@example.com" not in cached
    assert "enc:v1:" in cached


async def test_update_invalidates_cached_ticket(client, users, ctx):
    _, headers = users.new("customer")
    ticket = await create_ticket(client, headers, subject="Before")
    url = f"{TICKETS}/{ticket['id']}"
    assert (await (await client.get(url, headers=headers)).json())["subject"] == "Before"
    assert (await client.put(url, json={"subject": "After"}, headers=headers)).status == 200
    assert await ctx.redis.exists(f"cache:ticket:{ticket['id']}") == 0
    assert (await (await client.get(url, headers=headers)).json())["subject"] == "After"


@pytest.mark.parametrize("change", ["status", "escalate", "message", "delete"])
async def test_other_writes_invalidate_cached_ticket(client, users, ctx, change):
    customer_id, _ = users.new("customer")
    _, supervisor = users.new("supervisor")
    ticket = await create_for(client, supervisor, customer_id)
    url = f"{TICKETS}/{ticket['id']}"
    await client.get(url, headers=supervisor)
    key = f"cache:ticket:{ticket['id']}"
    assert await ctx.redis.exists(key) == 1
    if change == "status":
        await set_status(client, supervisor, ticket["id"], "resolved")
        expected = ("status", "resolved")
    elif change == "escalate":
        await client.post(f"{url}/escalate", json={}, headers=supervisor)
        expected = ("escalation_level", 1)
    elif change == "message":
        await client.post(f"{url}/messages", json={"message": "first reply"}, headers=supervisor)
        expected = None
    else:
        await client.delete(url, headers=supervisor)
        expected = None
    assert await ctx.redis.exists(key) == 0
    response = await client.get(url, headers=supervisor)
    if change == "delete":
        assert response.status == 404
    elif change == "message":
        assert (await response.json())["first_response_at"] is not None
    else:
        assert (await response.json())[expected[0]] == expected[1]


async def test_cache_load_racing_an_update_leaves_no_stale_entry(client, users, ctx):
    """A read that loaded the row just before an update committed must not cache the old row
    after the update's invalidation: visibility checks (agent_id) are made from cached rows."""
    customer_id, _ = users.new("customer")
    agent_id, agent = users.new("agent")
    supervisor_id, supervisor = users.new("supervisor")
    ticket = await create_for(client, supervisor, customer_id, agent_id=str(agent_id))
    ticket_id = uuid.UUID(ticket["id"])

    async def load_then_lose_the_race() -> dict:
        async with ctx.db.connection() as conn:
            row = dict(await ctx.db.q.get_ticket(conn, id=ticket_id))
        # The supervisor unassigns the agent; the update commits and invalidates the key
        # while this read is still on its way to the cache.
        await ticket_service.update_ticket(
            ctx, Principal(supervisor_id, "supervisor"), RequestMeta(), ticket_id, {"agent_id": None}
        )
        return row

    await ctx.ticket_cache.get_or_load(ticket_id, load_then_lose_the_race)
    await problem(await client.get(f"{TICKETS}/{ticket['id']}", headers=agent), 404)


# ---------------------------------------------------------------- rate limiting


async def test_rate_limit_refuses_the_request_over_budget(users, test_env):
    low = Settings.from_env({**test_env, "RATE_LIMIT_REQUESTS_PER_MINUTE": "3"})
    _, limited = users.new("customer")
    _, other = users.new("customer")
    async with open_context(low) as low_ctx:
        async with TestClient(TestServer(build_rest(low, context=low_ctx))) as low_client:
            remaining = []
            for _ in range(3):
                response = await low_client.get(TICKETS, headers=limited)
                assert response.status == 200
                assert response.headers["RateLimit-Limit"] == "3"
                remaining.append(int(response.headers["RateLimit-Remaining"]))
            assert remaining == [2, 1, 0]
            refused = await low_client.get(TICKETS, headers=limited)
            body = await problem(refused, 429)
            assert refused.content_type == PROBLEM_JSON
            assert int(refused.headers["Retry-After"]) >= 1
            assert refused.headers["RateLimit-Limit"] == "3"
            assert refused.headers["RateLimit-Remaining"] == "0"
            assert int(refused.headers["RateLimit-Reset"]) >= 0
            assert "3" in body["detail"]
            # Another caller has a budget of their own.
            unaffected = await low_client.get(TICKETS, headers=other)
            assert unaffected.status == 200
            assert unaffected.headers["RateLimit-Remaining"] == "2"
            # Health and metrics are never limited.
            for _ in range(5):
                assert (await low_client.get("/health")).status == 200


async def test_refused_request_over_budget_changes_nothing(users, test_env):
    low = Settings.from_env({**test_env, "RATE_LIMIT_REQUESTS_PER_MINUTE": "2"})
    customer_id, limited = users.new("customer")
    async with open_context(low) as low_ctx:
        async with TestClient(TestServer(build_rest(low, context=low_ctx))) as low_client:
            for _ in range(2):
                assert (await low_client.get(TICKETS, headers=limited)).status == 200
            refused = await low_client.post(TICKETS, json={"subject": "s", "description": "d"}, headers=limited)
            await problem(refused, 429)
            count = await low_ctx.db.pool.fetchval(
                "SELECT count(*) FROM support_tickets WHERE customer_id = $1", customer_id
            )
            assert count == 0


# ---------------------------------------------------------------- health, metrics


async def test_liveness_is_public_and_up(client):
    response = await client.get("/health")
    assert response.status == 200
    assert (await response.json())["status"] == "up"


@pytest.mark.parametrize("path", ["/health/ready", "/actuator/health"])
async def test_readiness_reports_database_and_redis(client, path):
    response = await client.get(path)
    assert response.status == 200
    report = await response.json()
    assert report["status"] == "up"
    for component in ("database", "redis"):
        assert report["components"][component]["status"] == "up"
        assert report["components"][component]["required"] is True
        assert report["components"][component]["latency_ms"] >= 0
    assert report["components"]["database"]["pool_size"] >= 1


def _sample(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(match[1]) if match else 0.0


async def test_metrics_expose_http_ticket_and_pool_figures(client, users):
    before = await (await client.get("/metrics")).text()
    _, headers = users.new("customer")
    await create_ticket(client, headers)
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    text = await response.text()
    for name in (
        "support_http_requests_total",
        "support_tickets_created_total",
        "support_db_pool_connections_in_use",
        "support_http_request_duration_seconds",
    ):
        assert f"# TYPE {name.removesuffix('_total')}" in text, name
    created = '{channel="web"}'
    assert (
        _sample(text, "support_tickets_created_total", created)
        == _sample(before, "support_tickets_created_total", created) + 1
    )
    posted = '{method="POST",route="/api/v1/tickets",status="201"}'
    assert (
        _sample(text, "support_http_requests_total", posted)
        >= _sample(before, "support_http_requests_total", posted) + 1
    )
    assert re.search(r"^support_db_pool_connections_in_use [0-9.]+$", text, re.MULTILINE)


# ---------------------------------------------------------------- CORS and request ids


async def test_cors_allows_configured_origin(client, users):
    _, headers = users.new("customer")
    response = await client.get(TICKETS, headers={**headers, "Origin": "https://shop.example"})
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert "Origin" in response.headers["Vary"]
    assert "X-Request-ID" in response.headers["Access-Control-Expose-Headers"]


async def test_cors_ignores_other_origins(client, users):
    _, headers = users.new("customer")
    response = await client.get(TICKETS, headers={**headers, "Origin": "https://evil.example"})
    assert response.status == 200
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_cors_headers_on_error_responses(client):
    response = await client.get(TICKETS, headers={"Origin": "https://shop.example"})
    assert response.status == 401
    assert response.headers["Access-Control-Allow-Origin"] == "https://shop.example"


async def test_cors_preflight_from_allowed_origin_is_204(client):
    response = await client.options(
        TICKETS,
        headers={
            "Origin": "https://shop.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Content-Type",
        },
    )
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]


async def test_cors_preflight_from_other_origin_is_refused(client):
    response = await client.options(
        TICKETS, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "DELETE"}
    )
    assert response.status == 403
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_request_id_is_generated_when_absent(client):
    first = await client.get("/health")
    second = await client.get("/health")
    assert re.fullmatch(r"[0-9a-f]{32}", first.headers["X-Request-ID"])
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]


async def test_request_id_is_echoed_when_given(client):
    response = await client.get("/health", headers={"X-Request-ID": "trace-123.abc"})
    assert response.headers["X-Request-ID"] == "trace-123.abc"


async def test_request_id_is_on_error_responses(client):
    response = await client.get(TICKETS, headers={"X-Request-ID": "trace-err-1"})
    assert response.status == 401
    assert response.headers["X-Request-ID"] == "trace-err-1"


# ---------------------------------------------------------------- routes that do not exist


async def test_an_unknown_route_is_a_404_problem_naming_it(client, users):
    _, headers = users.new("agent")
    for path in ("/api/v1/nope", "/api/v1/tickets/x/y/z", "/nothing-here"):
        response = await client.get(path, headers=headers)
        body = await problem(response, 404)
        assert body["type"] == "https://support-service.dev/problems/not_found"
        assert body["detail"] == f"No such endpoint: GET {path}" and body["title"] == "Not found"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    body = await problem(await client.post("/api/v1/nope", json={}), 404)  # no token needed to learn that
    assert body["detail"] == "No such endpoint: POST /api/v1/nope"


async def test_a_wrong_method_is_a_405_problem_with_allow(client, users):
    _, headers = users.new("agent")
    response = await client.patch("/api/v1/kb/suggest", json={}, headers=headers)
    body = await problem(response, 405)
    assert body["type"] == "https://support-service.dev/problems/method_not_allowed"
    assert body["title"] == "Method not allowed"
    assert set(response.headers["Allow"].split(", ")) >= {"GET"}
    assert body["detail"] == f"PATCH is not allowed on /api/v1/kb/suggest; allowed: {response.headers['Allow']}"
    response = await client.delete("/api/v1/tickets", headers=headers)
    body = await problem(response, 405)
    assert {"GET", "POST"} <= set(response.headers["Allow"].split(", "))
    assert "DELETE is not allowed on /api/v1/tickets" in body["detail"]


async def test_missing_static_files_and_pages_are_404_problems(client):
    body = await problem(await client.get("/static/no-such-file.js"), 404)
    assert body["detail"] == "No such file: /static/no-such-file.js"
    assert body["type"] == "https://support-service.dev/problems/not_found"
    body = await problem(await client.get("/help/articles/not-an-id"), 404)
    assert body["detail"] == "No such endpoint: GET /help/articles/not-an-id"
    body = await problem(await client.post("/console"), 405)
    assert "allowed: " in body["detail"]
