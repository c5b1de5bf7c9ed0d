"""Input no transport may pass on to the database: lone UTF-16 surrogates (valid JSON that asyncpg
cannot encode), NUL characters, integers past PostgreSQL's ``integer``, deep nesting. Each is
refused as a validation failure (422 / ``validation_failed``), never a 500 / ``internal``; and a
message the database refuses anyway fails only itself, never the other messages of its batch."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

import pytest
from yarl import URL

from app.logs import ClientErrorsAreNotServerErrors
from app.services.message_writer import MessageWriter, PendingMessage
from chat_support import Cast, new_department
from helpers import TICKETS, fetchval, problem, ticket_body
from rest.middleware import PARSER_LIMITS

pytest_plugins = ["chat_fixtures"]

SURROGATE = "a\ud800b"
TOO_BIG = 2**31
DEEP = {"k": 1}
for _ in range(200):
    DEEP = {"k": DEEP}


# ---------------------------------------------------------------- REST


@pytest.mark.parametrize("field", ["subject", "description", "tags", "metadata"])
async def test_lone_surrogate_in_a_rest_body_is_422(client, users, field):
    _, headers = users.new("supervisor")
    value = {"subject": SURROGATE, "description": SURROGATE, "tags": [SURROGATE], "metadata": {SURROGATE: "v"}}[field]
    body = await problem(
        await client.post(TICKETS, json=ticket_body(customer_id=str(uuid.uuid4()), **{field: value}), headers=headers),
        422,
    )
    assert field in body["errors"] or "_schema" in body["errors"]


async def test_lone_surrogate_in_a_rest_query_is_422(client, users):
    _, headers = users.new("supervisor")
    # CESU-8 / WTF-8 bytes of U+D800, percent-encoded as a hostile client would send them
    response = await client.get(URL(f"{TICKETS}?q=a%ED%A0%80b", encoded=True), headers=headers)
    assert response.status in (200, 400, 422), await response.text()  # never a 500
    body = await response.json()
    assert "items" in body or body["status"] in (400, 422)


async def test_after_seq_past_int4_over_rest_is_422(client, users):
    _, headers = users.new("customer")
    response = await client.post("/api/v1/chat/sessions", json={"department": new_department()}, headers=headers)
    session = await response.json()
    body = await problem(
        await client.get(
            f"/api/v1/chat/sessions/{session['id']}/messages", params={"after_seq": str(TOO_BIG)}, headers=headers
        ),
        422,
    )
    assert "after_seq" in body["errors"]


async def test_deep_metadata_in_a_rest_body_is_422(client, users):
    _, headers = users.new("customer")
    body = await problem(await client.post("/api/v1/chat/sessions", json={"metadata": DEEP}, headers=headers), 422)
    assert "metadata" in body["errors"]


# ---------------------------------------------------------------- Socket.IO


@pytest.mark.parametrize(
    ("event", "payload"),
    [
        ("chat:message", {"client_msg_id": SURROGATE, "message": "hi"}),
        ("chat:message", {"client_msg_id": "c1", "message": SURROGATE}),
        ("chat:message", {"client_msg_id": "c1", "message": "a\x00b"}),
        ("chat:sync", {"after_seq": TOO_BIG}),
        ("chat:read", {"up_to_seq": TOO_BIG}),
        ("chat:read", {"up_to_seq": -1}),
        ("chat:rate", {"rating": 5, "comment": SURROGATE}),
    ],
)
async def test_unstorable_socket_payloads_are_validation_failed(cast: Cast, event, payload):
    customer = await cast.customer()
    session = (await customer.ok("chat:start", {"department": new_department()}))["session"]
    await customer.fails(event, {"session_id": session["id"], **payload}, "validation_failed")


@pytest.mark.parametrize(
    "payload", [{"subject": SURROGATE}, {"metadata": {SURROGATE: 1}}, {"metadata": DEEP}, {"session_id": SURROGATE}]
)
async def test_unstorable_chat_start_is_validation_failed(cast: Cast, payload):
    customer = await cast.customer()
    await customer.fails("chat:start", {"department": new_department(), **payload}, "validation_failed")


# ---------------------------------------------------------------- the message writer's batches


async def test_a_message_the_database_refuses_fails_alone_in_its_batch(ctx, cast: Cast):
    customers = [await cast.customer() for _ in range(3)]
    sessions = [(await c.ok("chat:start", {"department": new_department()}))["session"] for c in customers]
    writer = MessageWriter(ctx.db, ctx.events, ctx.clock)

    def item(session: dict, customer, client_msg_id: str) -> PendingMessage:
        return PendingMessage(
            session_id=uuid.UUID(session["id"]),
            sender_id=customer.user_id,
            sender_type="customer",
            scope="customer",
            client_msg_id=client_msg_id,
            ciphertext=ctx.cipher.encrypt("hello", "chat_messages.message"),
            message_type="text",
        )

    loop = asyncio.get_running_loop()
    batch = [
        (item(sessions[0], customers[0], "good-1"), loop.create_future()),
        (item(sessions[1], customers[1], SURROGATE), loop.create_future()),  # past validation somehow
        (item(sessions[2], customers[2], "good-2"), loop.create_future()),
    ]
    await writer._flush(batch)
    assert batch[0][1].result()["seq"] == 1
    assert batch[2][1].result()["seq"] == 1
    assert batch[1][1].exception() is not None
    stored = await fetchval(
        ctx,
        "SELECT count(*) FROM chat_messages WHERE session_id = ANY($1::uuid[])",
        [uuid.UUID(s["id"]) for s in sessions],
    )
    assert stored == 2


# ---------------------------------------------------------------- who may call comes first


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/escalation-rules"),
        ("PUT", "/api/v1/sla-policies/high"),
        ("POST", "/api/v1/agents"),
        ("POST", "/api/v1/canned-responses"),
        ("POST", "/api/v1/automation/priority-rules"),
        ("GET", "/api/v1/audit?nonsense=1"),
        ("GET", "/api/v1/notifications?nonsense=1"),
    ],
)
async def test_a_role_that_may_not_call_gets_403_before_validation(client, users, method, path):
    _, headers = users.new("customer")
    response = await client.request(method, path, json={} if method != "GET" else None, headers=headers)
    body = await problem(response, 403)
    assert "errors" not in body


async def test_put_on_agents_me_is_405_with_allow(client, users):
    _, headers = users.new("admin")
    response = await client.put("/api/v1/agents/me", json={"max_chats": 3}, headers=headers)
    await problem(response, 405)
    assert response.headers["Allow"] == "GET"


# ---------------------------------------------------------------- headers


@pytest.mark.parametrize(
    "path", ["/api/v1/tickets", "/api/v1/kb/search?q=x", "/api/v1/nothing-here", "/health", "/api/openapi.json"]
)
async def test_every_response_says_nosniff(client, users, path):
    _, headers = users.new("customer")
    response = await client.get(path, headers=headers)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    if path.startswith("/api/v1/"):
        assert response.headers["X-Frame-Options"] == "DENY"


# ---------------------------------------------------------------- contract details (issue 17, defect 11)


async def test_put_without_a_body_is_400(client, users):
    _, headers = users.new("admin")
    response = await client.post(TICKETS, json=ticket_body(customer_id=str(uuid.uuid4())), headers=headers)
    ticket = await response.json()
    await problem(await client.put(f"{TICKETS}/{ticket['id']}", headers=headers), 400)


@pytest.mark.parametrize("value", [0, 1, "1", "yes"])
async def test_only_true_and_false_are_booleans(client, users, value):
    _, headers = users.new("customer")
    body = await problem(
        await client.post(f"/api/v1/kb/articles/{uuid.uuid4()}/vote", json={"helpful": value}, headers=headers), 422
    )
    assert "helpful" in body["errors"]


async def test_list_envelopes_of_rules_and_sla_policies(client, users):
    _, headers = users.new("admin")
    for path in ("/api/v1/escalation-rules", "/api/v1/sla-policies"):
        body = await (await client.get(path, headers=headers)).json()
        assert {"items", "total", "limit", "offset"} <= set(body), (path, body)


async def test_the_document_names_the_200s_of_creates_that_may_return_an_existing_resource(client):
    spec = await (await client.get("/api/openapi.json")).json()
    assert "200" in spec["paths"]["/api/v1/chat/sessions"]["post"]["responses"]
    assert "200" in spec["paths"]["/api/v1/chat/sessions/{id}/messages"]["post"]["responses"]
    errors = spec["components"]["schemas"]["Problem"]["properties"]["errors"]["additionalProperties"]
    assert {"type": "object"} in errors["anyOf"]  # list fields report their items by index


async def raw_request(client, head: str) -> tuple[int, dict[str, str], bytes]:
    """Sends ``head`` as it is over a fresh connection (no client library shortens or checks it)
    and returns the status, the headers (lower-case names) and the body of the answer."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        writer.write(head.encode("latin-1"))
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)  # every refusal closes the connection
    finally:
        writer.close()
    header_block, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = header_block.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


async def test_an_over_long_url_is_414_problem_json_and_no_error_log(client, caplog):
    target = "/api/v1/kb/search?q=" + "x" * 20_000
    with caplog.at_level(logging.INFO):
        status, headers, body = await raw_request(
            client, f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
    assert status == 414, body
    assert headers["content-type"].startswith("application/problem+json")
    problem_body = json.loads(body)
    assert problem_body["status"] == 414 and problem_body["type"].endswith("/uri_too_long")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_an_over_large_header_is_431_problem_json(client):
    head = f"GET /api/v1/kb/search?q=x HTTP/1.1\r\nHost: x\r\nX-Big: {'y' * 20_000}\r\nConnection: close\r\n\r\n"
    status, headers, body = await raw_request(client, head)
    assert status == 431, body
    assert headers["content-type"].startswith("application/problem+json")
    assert json.loads(body)["status"] == 431


async def test_a_url_past_the_http_parser_is_400_and_logged_as_info_not_error(client, caplog):
    """Past the parser's own limit aiohttp answers before any handler; it is still no server error."""
    server_log = logging.getLogger("aiohttp.server")
    quiet = ClientErrorsAreNotServerErrors()
    server_log.addFilter(quiet)  # what logs.configure installs in serve and dev
    try:
        with caplog.at_level(logging.INFO):
            target = "/api/v1/kb/search?q=" + "x" * (PARSER_LIMITS["max_line_size"] + 1000)
            status, _, _ = await raw_request(client, f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    finally:
        server_log.removeFilter(quiet)
    assert status == 400
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("refused a malformed request" in r.getMessage() for r in caplog.records)
