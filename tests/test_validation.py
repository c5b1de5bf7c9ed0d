"""Input that cannot be read (400) or does not validate (422), path ids that name nothing (404),
and proof that a refused request changes nothing."""

from __future__ import annotations

import uuid

import pytest

from helpers import PROBLEM_JSON, TICKETS, create_for, create_ticket, fetchval, problem, ticket_body

# ---------------------------------------------------------------- 400 malformed JSON


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("POST", ""), ("PUT", "/{id}"), ("PATCH", "/{id}/status"), ("POST", "/{id}/escalate"), ("POST", "/{id}/messages")],
)
async def test_malformed_json_is_400_problem(client, users, method, suffix):
    _, headers = users.new("admin")
    ticket = await create_for(client, headers, uuid.uuid4())
    path = TICKETS + suffix.format(id=ticket["id"])
    response = await client.request(
        method, path, data='{"subject": "unterminated', headers={**headers, "Content-Type": "application/json"}
    )
    body = await problem(response, 400)
    assert response.content_type == PROBLEM_JSON
    assert "errors" not in body


async def test_body_that_is_not_json_is_400(client, users):
    _, headers = users.new("customer")
    response = await client.post(
        TICKETS,
        data="subject=hi&description=there",
        headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    await problem(response, 400)


_UNREPRESENTABLE = {
    "nan": '{"subject": "s", "description": "d", "metadata": {"k": NaN}}',
    "infinity": '{"subject": "s", "description": "d", "metadata": {"k": -Infinity}}',
    "float_overflow": '{"subject": "s", "description": "d", "metadata": {"k": 1e400}}',
    "huge_integer": '{"subject": "s", "description": "d", "metadata": {"k": ' + "9" * 5000 + "}}",
    "deep_nesting": '{"subject": "s", "description": "d", "metadata": {"k": ' + "[" * 100_000 + "]" * 100_000 + "}}",
    "bad_utf8": b'{"subject": "\xff\xfe", "description": "d"}',
}


@pytest.mark.parametrize("case", list(_UNREPRESENTABLE))
async def test_json_that_python_cannot_represent_is_400(client, users, ctx, case):
    customer_id, headers = users.new("customer")
    response = await client.post(
        TICKETS, data=_UNREPRESENTABLE[case], headers={**headers, "Content-Type": "application/json"}
    )
    await problem(response, 400)
    assert await fetchval(ctx, "SELECT count(*) FROM support_tickets WHERE customer_id = $1", customer_id) == 0


# ---------------------------------------------------------------- 422 per-field errors


async def _invalid(client, headers, body: dict, *fields: str, path: str = TICKETS, method: str = "POST") -> dict:
    response = await client.request(method, path, json=body, headers=headers)
    problem_body = await problem(response, 422)
    assert set(problem_body["errors"]) == set(fields), problem_body["errors"]
    assert all(isinstance(m, (list, dict)) and m for m in problem_body["errors"].values())
    return problem_body


async def test_unknown_field_is_422(client, users):
    _, headers = users.new("supervisor")
    body = await _invalid(client, headers, ticket_body(customer_id=str(uuid.uuid4()), colour="red"), "colour")
    assert body["errors"]["colour"] == ["Unknown field."]


async def test_missing_required_fields_are_422(client, users):
    _, headers = users.new("customer")
    await _invalid(client, headers, {}, "subject", "description")


async def test_wrong_types_are_422(client, users):
    _, headers = users.new("supervisor")
    await _invalid(
        client,
        headers,
        ticket_body(subject=42, tags="vip", metadata=["x"], customer_id=str(uuid.uuid4())),
        "subject",
        "tags",
        "metadata",
    )


async def test_bad_enum_values_are_422(client, users):
    _, headers = users.new("supervisor")
    await _invalid(
        client,
        headers,
        ticket_body(priority="critical", channel="fax", customer_id=str(uuid.uuid4())),
        "priority",
        "channel",
    )


async def test_subject_longer_than_255_is_422(client, users):
    _, headers = users.new("customer")
    await _invalid(client, headers, ticket_body(subject="x" * 256), "subject")


async def test_subject_of_255_is_accepted(client, users):
    _, headers = users.new("customer")
    ticket = await create_ticket(client, headers, subject="x" * 255)
    assert len(ticket["subject"]) == 255


async def test_empty_subject_is_422(client, users):
    _, headers = users.new("customer")
    await _invalid(client, headers, ticket_body(subject=""), "subject")


async def test_description_longer_than_20000_is_422(client, users):
    _, headers = users.new("customer")
    await _invalid(client, headers, ticket_body(description="y" * 20_001), "description")


async def test_description_of_20000_is_accepted(client, users):
    _, headers = users.new("customer")
    ticket = await create_ticket(client, headers, description="y" * 20_000)
    assert len(ticket["description"]) == 20_000


async def test_bad_uuid_in_body_is_422(client, users):
    _, headers = users.new("supervisor")
    await _invalid(client, headers, ticket_body(customer_id="customer-7", agent_id="12345"), "customer_id", "agent_id")


async def test_bad_email_in_body_is_422(client, users):
    _, headers = users.new("supervisor")
    await _invalid(
        client, headers, ticket_body(customer_id=str(uuid.uuid4()), customer_email="not an email"), "customer_email"
    )


async def test_json_array_body_is_422(client, users):
    _, headers = users.new("customer")
    response = await client.post(TICKETS, json=[ticket_body()], headers=headers)
    await problem(response, 422)


async def test_put_refuses_unknown_and_invalid_fields(client, users):
    _, headers = users.new("supervisor")
    ticket = await create_for(client, headers, uuid.uuid4())
    await _invalid(
        client,
        headers,
        {"status": "done", "ticket_number": "TKT-1", "subject": "z" * 256},
        "status",
        "ticket_number",
        "subject",
        path=f"{TICKETS}/{ticket['id']}",
        method="PUT",
    )


async def test_put_refuses_null_for_required_columns(client, users):
    _, headers = users.new("supervisor")
    ticket = await create_for(client, headers, uuid.uuid4())
    await _invalid(
        client,
        headers,
        {"subject": None, "priority": None},
        "subject",
        "priority",
        path=f"{TICKETS}/{ticket['id']}",
        method="PUT",
    )


async def test_status_body_needs_status(client, users):
    _, headers = users.new("supervisor")
    ticket = await create_for(client, headers, uuid.uuid4())
    await _invalid(
        client, headers, {"reason": "because"}, "status", path=f"{TICKETS}/{ticket['id']}/status", method="PATCH"
    )


async def test_escalate_refuses_unknown_fields(client, users):
    _, headers = users.new("supervisor")
    ticket = await create_for(client, headers, uuid.uuid4())
    await _invalid(client, headers, {"level": 5}, "level", path=f"{TICKETS}/{ticket['id']}/escalate")


async def test_message_validation_is_per_field(client, users):
    _, headers = users.new("customer")
    ticket = await create_ticket(client, headers)
    await _invalid(
        client,
        headers,
        {"message": "", "is_internal": "maybe", "message_type": "video"},
        "message",
        "is_internal",
        "message_type",
        path=f"{TICKETS}/{ticket['id']}/messages",
    )


async def test_message_longer_than_20000_is_422(client, users):
    _, headers = users.new("customer")
    ticket = await create_ticket(client, headers)
    await _invalid(client, headers, {"message": "m" * 20_001}, "message", path=f"{TICKETS}/{ticket['id']}/messages")


async def test_attachment_with_non_http_url_is_422(client, users):
    _, headers = users.new("customer")
    ticket = await create_ticket(client, headers)
    body = await _invalid(
        client,
        headers,
        {"message": "see file", "attachments": [{"name": "a", "url": "file:///etc/passwd"}]},
        "attachments",
        path=f"{TICKETS}/{ticket['id']}/messages",
    )
    assert "url" in body["errors"]["attachments"]["0"]


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("customer_id", "nope"),
        ("agent_id", "123"),
        ("priority", "critical"),
        ("offset", "-1"),
        ("limit", "ten"),
        ("created_before", "yesterday"),
    ],
)
async def test_bad_list_query_parameter_is_422(client, users, param, value):
    _, headers = users.new("supervisor")
    body = await problem(await client.get(TICKETS, params={param: value}, headers=headers), 422)
    assert param in body["errors"]


@pytest.mark.parametrize("field", ["subject", "category", "tags", "metadata"])
async def test_nul_character_in_stored_text_is_422(client, users, field):
    # PostgreSQL text and jsonb cannot hold U+0000; the request must be refused, not crash (500).
    _, headers = users.new("supervisor")
    value = {"subject": "a\x00b", "category": "a\x00b", "tags": ["a\x00b"], "metadata": {"k": "a\x00b"}}[field]
    body = await problem(
        await client.post(TICKETS, json=ticket_body(customer_id=str(uuid.uuid4()), **{field: value}), headers=headers),
        422,
    )
    assert field in body["errors"]


@pytest.mark.parametrize("param", ["q", "category"])
async def test_nul_character_in_list_filter_is_422(client, users, param):
    _, headers = users.new("supervisor")
    body = await problem(await client.get(TICKETS, params={param: "a\x00b"}, headers=headers), 422)
    assert param in body["errors"]


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00"])
async def test_datetime_filter_outside_postgres_range_is_422(client, users, value):
    # Valid ISO 8601 that overflows once moved to UTC must be a 422, not a 500.
    _, headers = users.new("supervisor")
    body = await problem(await client.get(TICKETS, params={"created_after": value}, headers=headers), 422)
    assert "created_after" in body["errors"]


# ---------------------------------------------------------------- non-UUID path ids


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("GET", ""),
        ("PUT", ""),
        ("DELETE", ""),
        ("PATCH", "/status"),
        ("POST", "/escalate"),
        ("GET", "/messages"),
        ("POST", "/messages"),
        ("GET", "/history"),
    ],
)
async def test_non_uuid_ticket_id_is_404(client, users, method, suffix):
    _, headers = users.new("admin")
    bodies = {"PUT": {"priority": "low"}, "PATCH": {"status": "closed"}, "POST": {"message": "x"}}
    response = await client.request(method, f"{TICKETS}/TKT-000001{suffix}", json=bodies.get(method), headers=headers)
    await problem(response, 404)


async def test_non_uuid_agent_id_is_404(client, users):
    _, headers = users.new("admin")
    await problem(await client.get("/api/v1/agents/42", headers=headers), 404)


# ---------------------------------------------------------------- refused requests change nothing


async def _footprint(ctx, actor_id: uuid.UUID, ticket_id: uuid.UUID | None = None) -> tuple:
    """What the actor has caused so far (tickets they own, audit rows, events) and the ticket's state."""
    tickets = await fetchval(ctx, "SELECT count(*) FROM support_tickets WHERE customer_id = $1", actor_id)
    audits = await fetchval(ctx, "SELECT count(*) FROM audit_log WHERE actor_id = $1", actor_id)
    events = await fetchval(ctx, "SELECT count(*) FROM support_events WHERE actor_id = $1", actor_id)
    state = None
    if ticket_id is not None:
        row = await fetchval(ctx, "SELECT row_to_json(t)::text FROM support_tickets t WHERE id = $1", ticket_id)
        messages = await fetchval(ctx, "SELECT count(*) FROM ticket_messages WHERE ticket_id = $1", ticket_id)
        ticket_events = await fetchval(ctx, "SELECT count(*) FROM support_events WHERE entity_id = $1", str(ticket_id))
        ticket_audits = await fetchval(ctx, "SELECT count(*) FROM audit_log WHERE entity_id = $1", str(ticket_id))
        escalations = await fetchval(ctx, "SELECT count(*) FROM ticket_escalations WHERE ticket_id = $1", ticket_id)
        state = (row, messages, ticket_events, ticket_audits, escalations)
    return tickets, audits, events, state


def _raw(headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "Content-Type": "application/json"}


async def test_refused_create_changes_nothing(client, users, ctx):
    customer_id, headers = users.new("customer")
    await create_ticket(client, headers)
    before = await _footprint(ctx, customer_id)
    assert before[:3] == (1, 1, 1)  # the footprint sees what a successful create leaves
    refusals = [
        ({"data": "{", "headers": _raw(headers)}, 400),
        ({"json": ticket_body(subject="s" * 300), "headers": headers}, 422),
        ({"json": ticket_body(extra=True), "headers": headers}, 422),
        ({"json": ticket_body(priority="urgent"), "headers": headers}, 403),  # customers may not set it
        ({"json": ticket_body(customer_id=str(uuid.uuid4())), "headers": headers}, 403),
    ]
    for kwargs, status in refusals:
        response = await client.post(TICKETS, **kwargs)
        assert response.status == status, await response.text()
    assert await _footprint(ctx, customer_id) == before


async def test_refused_updates_change_nothing(client, users, ctx):
    customer_id, headers = users.new("customer")
    ticket = await create_ticket(client, headers)
    ticket_id = uuid.UUID(ticket["id"])
    url = f"{TICKETS}/{ticket['id']}"
    before = await _footprint(ctx, customer_id, ticket_id)
    refusals = [
        ("PUT", url, {"data": "{", "headers": _raw(headers)}, 400),
        ("PUT", url, {"json": {"subject": ""}, "headers": headers}, 422),
        ("PUT", url, {"json": {"subject": "new", "bogus": 1}, "headers": headers}, 422),
        ("PUT", url, {"json": {"subject": "new", "priority": "urgent"}, "headers": headers}, 403),
        ("PATCH", f"{url}/status", {"json": {"status": "resolved"}, "headers": headers}, 403),
        ("PATCH", f"{url}/status", {"json": {"status": "closed", "x": 1}, "headers": headers}, 422),
        ("POST", f"{url}/escalate", {"json": {}, "headers": headers}, 403),
        ("POST", f"{url}/messages", {"json": {"message": "note", "is_internal": True}, "headers": headers}, 403),
        ("POST", f"{url}/messages", {"json": {"message": ""}, "headers": headers}, 422),
        ("DELETE", url, {"headers": headers}, 403),
    ]
    for method, path, kwargs, status in refusals:
        response = await client.request(method, path, **kwargs)
        assert response.status == status, (method, path, await response.text())
    assert await _footprint(ctx, customer_id, ticket_id) == before


async def test_conflicts_change_nothing(client, users, ctx):
    supervisor_id, headers = users.new("supervisor")
    ticket = await create_for(client, headers, uuid.uuid4())
    ticket_id = uuid.UUID(ticket["id"])
    url = f"{TICKETS}/{ticket['id']}"
    assert (await client.patch(f"{url}/status", json={"status": "closed"}, headers=headers)).status == 200
    before = await _footprint(ctx, supervisor_id, ticket_id)
    assert before[1:3] == (2, 3)  # audited: create, close; events: created, updated, status_changed
    conflicts = [
        ("PUT", url, {"subject": "Renamed", "priority": "urgent", "status": "resolved"}),
        ("PATCH", f"{url}/status", {"status": "pending"}),
        ("POST", f"{url}/escalate", {"reason": "too late"}),
        ("POST", f"{url}/messages", {"message": "hello"}),
    ]
    for method, path, body in conflicts:
        response = await client.request(method, path, json=body, headers=headers)
        await problem(response, 409)
    assert await _footprint(ctx, supervisor_id, ticket_id) == before


async def test_unknown_query_parameter_is_422_naming_it(client, users):
    _, headers = users.new("supervisor")
    body = await problem(await client.get(f"{TICKETS}?colour=red", headers=headers), 422)
    assert "colour" in body["errors"]
