"""Bookings beside the chat and ticket (issue 15): the Booking Service client against a real local
gRPC server implementing the assumed ``booking.v1`` contract (deadline, cache, quiet degrading),
the REST endpoints (who sees whose bookings, the list envelope with ``available``), linking a
booking to a ticket (verification, audit, event, the ``has_booking`` priority rule) and the API
document. The module runs its own app and context, so it can plug the service in and out."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from booking_support import Bookings, booking_service
from helpers import TICKETS, create_for, create_ticket, fetch, problem, start_active_chat

from app.clients.booking_service import BookingDirectory
from app.config import Settings
from app.context import AppContext, open_context
from app.server import build_rest

PRIO_RULES = "/api/v1/automation/priority-rules"
UNREACHABLE = "127.0.0.1:1"


def bookings_path(customer_id: object) -> str:
    return f"/api/v1/customers/{customer_id}/bookings"


def word() -> str:
    return "zq" + "".join(chr(97 + int(c, 16) % 26) for c in uuid.uuid4().hex[:10])


@pytest.fixture(scope="module")
async def service() -> AsyncIterator[tuple[Bookings, str]]:
    async with booking_service() as running:
        yield running


@pytest.fixture(scope="module")
async def app(settings: Settings, service) -> AsyncIterator[tuple[AppContext, TestClient]]:
    async with open_context(settings) as ctx, TestClient(TestServer(build_rest(settings, context=ctx))) as client:
        yield ctx, client


@pytest.fixture
def fake(service) -> Bookings:
    return service[0]


@pytest.fixture
async def client(app, service) -> AsyncIterator[TestClient]:
    """The app with the Booking Service plugged in (a fresh directory: an empty cache)."""
    ctx, test_client = app
    ctx.bookings = BookingDirectory(service[1], timeout=0.5)
    yield test_client
    await ctx.bookings.close()
    ctx.bookings = None


@pytest.fixture
def ctx(app) -> AppContext:
    return app[0]


@pytest.fixture
def no_service(app) -> Iterator[TestClient]:
    """The app without GRPC_BOOKING_SERVICE_URL."""
    app[0].bookings = None
    yield app[1]


# ---------------------------------------------------------------- the client


async def test_lists_and_lookups_are_cached(fake, service):
    customer = uuid.uuid4()
    older, newer = fake.add(customer, reference="BK-1"), fake.add(customer, reference="BK-2")
    directory = BookingDirectory(service[1], timeout=0.5)
    try:
        first = await directory.customer_bookings(customer)
        assert first.available and [b["reference"] for b in first.bookings] == ["BK-2", "BK-1"]
        assert first.bookings[0] == {
            "id": newer.id,
            "reference": "BK-2",
            "customer_id": str(customer),
            "status": "confirmed",
            "property_name": "Seaside Loft",
            "check_in": "2026-12-24",
            "check_out": "2026-12-27",
            "total_amount": "420.00",
            "currency": "EUR",
            "created_at": newer.created_at.ToDatetime(tzinfo=first.bookings[0]["created_at"].tzinfo),
        }
        assert await directory.customer_bookings(str(customer)) == first  # from the cache
        assert fake.requests.count(("list", str(customer))) == 1

        found = await directory.booking(older.id)
        assert found.available and found.booking["reference"] == "BK-1"
        missing = str(uuid.uuid4())
        unknown = await directory.booking(missing)
        assert unknown.available and unknown.booking is None  # NOT_FOUND
        assert (await directory.booking(missing)) == unknown  # cached too
        assert fake.requests.count(("get", missing)) == 1

        nobody = await directory.customer_bookings(uuid.uuid4())
        assert nobody.available and nobody.bookings == ()
    finally:
        await directory.close()


async def test_expiry_size_bound_and_shorter_negative_ttl(fake, service):
    now = [0.0]
    customer, other = uuid.uuid4(), uuid.uuid4()
    missing = str(uuid.uuid4())
    directory = BookingDirectory(service[1], ttl=60, negative_ttl=15, max_size=2, monotonic=lambda: now[0])
    try:
        await directory.booking(missing)  # unknown: cached for 15 s
        await directory.customer_bookings(customer)  # an empty list is an answer: 60 s
        now[0] = 16
        await directory.booking(missing)  # asked again after the negative TTL
        await directory.customer_bookings(customer)  # still fresh
        assert fake.requests.count(("get", missing)) == 2
        assert fake.requests.count(("list", str(customer))) == 1
        await directory.customer_bookings(other)  # size 2: evicts the least recently used
        await directory.booking(missing)
        await directory.customer_bookings(customer)
        assert fake.requests.count(("list", str(customer))) == 2
        now[0] = 16 + 61
        await directory.customer_bookings(customer)  # expired
        assert fake.requests.count(("list", str(customer))) == 3
    finally:
        await directory.close()


async def test_a_service_slower_than_the_deadline_answers_unavailable_once(fake, service):
    customer = uuid.uuid4()
    fake.add(customer)
    fake.slow.add(str(customer))
    booking = fake.add(uuid.uuid4())
    fake.slow.add(booking.id)
    directory = BookingDirectory(service[1], timeout=0.2)
    try:
        answer = await directory.customer_bookings(customer)
        assert not answer.available and answer.bookings == ()
        assert not (await directory.booking(booking.id)).available
        assert not (await directory.customer_bookings(customer)).available  # the failure is cached
        assert fake.requests.count(("list", str(customer))) == 1
    finally:
        await directory.close()


async def test_an_absent_service_answers_unavailable():
    directory = BookingDirectory(UNREACHABLE, timeout=0.5)
    try:
        assert (await directory.customer_bookings(uuid.uuid4())).available is False
        lookup = await directory.booking("BK-1")
        assert lookup.available is False and lookup.booking is None
    finally:
        await directory.close()


@pytest.mark.parametrize("configured", [True, False])
async def test_the_context_holds_a_directory_only_when_configured(settings, configured):
    import dataclasses

    url = UNREACHABLE if configured else None
    async with open_context(dataclasses.replace(settings, grpc_booking_service_url=url)) as opened:
        assert (opened.bookings is not None) is configured


# ---------------------------------------------------------------- reading a customer's bookings


async def test_a_customer_reads_their_own_bookings_and_not_anothers(client, users, fake):
    customer_id, customer = users.new("customer")
    fake.add(customer_id, reference="BK-OWN")
    other_id = uuid.uuid4()
    fake.add(other_id)
    page = await (await client.get(bookings_path(customer_id), headers=customer)).json()
    assert page["available"] is True and page["total"] == 1 and page["limit"] == 20 and page["offset"] == 0
    assert page["items"][0]["reference"] == "BK-OWN" and page["items"][0]["customer_id"] == str(customer_id)
    await problem(await client.get(bookings_path(other_id), headers=customer), 404)
    assert ("list", str(other_id)) not in fake.requests  # refused before asking the service


async def test_an_agent_sees_bookings_of_customers_they_serve_only(client, users, ctx, fake):
    customer_id, _ = users.new("customer")
    fake.add(customer_id)
    agent_id, agent = users.new("agent")
    await problem(await client.get(bookings_path(customer_id), headers=agent), 404)  # unrelated

    _, supervisor = users.new("supervisor")
    await create_for(client, supervisor, customer_id, agent_id=str(agent_id))  # holds a ticket
    assert (await client.get(bookings_path(customer_id), headers=agent)).status == 200

    chatting_id, chatting = users.new("agent")
    await start_active_chat(ctx, customer_id, chatting_id)  # in a chat
    assert (await client.get(bookings_path(customer_id), headers=chatting)).status == 200
    for role in ("supervisor", "admin", "service"):
        _, headers = users.new(role)
        page = await (await client.get(bookings_path(customer_id), headers=headers)).json()
        assert page["total"] == 1, role


async def test_the_list_pages_and_validates(client, users, fake):
    customer_id, customer = users.new("customer")
    for n in range(3):
        fake.add(customer_id, reference=f"BK-{n}")
    page = await (
        await client.get(bookings_path(customer_id), params={"limit": "2", "offset": "1"}, headers=customer)
    ).json()
    assert [b["reference"] for b in page["items"]] == ["BK-1", "BK-0"]
    assert (page["total"], page["limit"], page["offset"]) == (3, 2, 1)
    await problem(await client.get(bookings_path(customer_id), params={"limit": "0"}, headers=customer), 422)
    await problem(await client.get("/api/v1/customers/nope/bookings", headers=customer), 404)
    await problem(await client.get(bookings_path(customer_id)), 401)


async def test_without_the_service_the_list_is_empty_and_unavailable(no_service, users):
    customer_id, customer = users.new("customer")
    response = await no_service.get(bookings_path(customer_id), headers=customer)
    assert response.status == 200
    assert await response.json() == {"items": [], "total": 0, "limit": 20, "offset": 0, "available": False}


async def test_an_unreachable_or_slow_service_answers_unavailable(app, users, fake, service):
    ctx, client = app
    customer_id, customer = users.new("customer")
    fake.add(customer_id)
    for target, slow in ((UNREACHABLE, False), (service[1], True)):
        if slow:
            fake.slow.add(str(customer_id))
        ctx.bookings = BookingDirectory(target, timeout=0.2)
        try:
            response = await client.get(bookings_path(customer_id), headers=customer)
            assert response.status == 200
            assert (await response.json())["available"] is False and (await response.json())["items"] == []
        finally:
            await ctx.bookings.close()
            ctx.bookings = None


# ---------------------------------------------------------------- linking a booking to a ticket


async def events_of(ctx: AppContext, ticket_id: str) -> list:
    return await fetch(
        ctx, "SELECT type, payload FROM support_events WHERE entity_id = $1 ORDER BY position", ticket_id
    )


async def test_linking_stores_the_reference_audits_and_raises_priority_by_the_has_booking_rule(
    client, users, ctx, fake
):
    _, admin = users.new("admin")
    customer_id, customer = users.new("customer")
    kw = word()
    rule = await (
        await client.post(
            PRIO_RULES,
            headers=admin,
            json={"conditions": {"has_booking": True, "keywords_any": [kw]}, "set_priority": "urgent", "priority": 50},
        )
    ).json()
    try:
        ticket = await create_ticket(client, customer, subject=f"About my stay {kw}")
        assert ticket["priority"] == "medium"  # no booking yet
        booking = fake.add(customer_id, reference="BK-4242")
        _, supervisor = users.new("supervisor")
        response = await client.put(
            f"{TICKETS}/{ticket['id']}/booking", json={"booking_id": booking.id}, headers=supervisor
        )
        assert response.status == 200, await response.text()
        linked = await response.json()
        assert linked["metadata"] == {
            "booking_id": booking.id,
            "booking_reference": "BK-4242",
            "booking_verified": True,
        }
        assert linked["priority"] == "urgent"  # the has_booking rule now holds
        assert ("get", booking.id) in fake.requests
        again = await (await client.get(f"{TICKETS}/{ticket['id']}", headers=customer)).json()
        assert again["metadata"]["booking_reference"] == "BK-4242"  # the cached ticket was refreshed

        [row] = await fetch(
            ctx,
            "SELECT action, actor_role, changes FROM audit_log WHERE entity_id = $1 AND action LIKE 'ticket.booking%'",
            ticket["id"],
        )
        assert row["action"] == "ticket.booking_link" and row["actor_role"] == "supervisor"
        assert row["changes"]["priority"] == {"from": "medium", "to": "urgent"}
        assert row["changes"]["booking_reference"] == "BK-4242"
        updated = [e for e in await events_of(ctx, ticket["id"]) if e["type"] == "ticket.updated"]
        assert updated[-1]["payload"]["booking_reference"] == "BK-4242"
        assert set(updated[-1]["payload"]["changes"]) == {"metadata", "priority"}

        response = await client.delete(f"{TICKETS}/{ticket['id']}/booking", headers=supervisor)
        assert response.status == 204
        unlinked = await (await client.get(f"{TICKETS}/{ticket['id']}", headers=supervisor)).json()
        assert unlinked["metadata"] == {} and unlinked["priority"] == "urgent"  # never lowered
        actions = [
            r["action"]
            for r in await fetch(ctx, "SELECT action FROM audit_log WHERE entity_id = $1 ORDER BY id", ticket["id"])
        ]
        assert actions[-2:] == ["ticket.booking_link", "ticket.booking_unlink"]
    finally:
        await client.delete(f"{PRIO_RULES}/{rule['id']}", headers=admin)


async def test_linking_keeps_other_metadata_and_never_lowers_a_priority(client, users, fake):
    customer_id, _ = users.new("customer")
    _, supervisor = users.new("supervisor")
    ticket = await create_for(client, supervisor, customer_id, priority="urgent", metadata={"channel_ref": "x"})
    booking = fake.add(customer_id)
    linked = await (
        await client.put(f"{TICKETS}/{ticket['id']}/booking", json={"booking_id": booking.id}, headers=supervisor)
    ).json()
    assert linked["priority"] == "urgent" and linked["metadata"]["channel_ref"] == "x"
    assert linked["metadata"]["booking_id"] == booking.id


async def test_an_unknown_booking_is_a_404_and_another_customers_a_422(client, users, fake):
    customer_id, _ = users.new("customer")
    _, supervisor = users.new("supervisor")
    ticket = await create_for(client, supervisor, customer_id)
    body = await problem(
        await client.put(
            f"{TICKETS}/{ticket['id']}/booking", json={"booking_id": "no-such-booking"}, headers=supervisor
        ),
        404,
    )
    assert "Booking" in body["detail"]
    theirs = fake.add(uuid.uuid4())
    body = await problem(
        await client.put(f"{TICKETS}/{ticket['id']}/booking", json={"booking_id": theirs.id}, headers=supervisor), 422
    )
    assert "booking_id" in body["errors"]
    unchanged = await (await client.get(f"{TICKETS}/{ticket['id']}", headers=supervisor)).json()
    assert unchanged["metadata"] == {} and unchanged["updated_at"] == ticket["updated_at"]


async def test_with_the_service_down_a_link_is_stored_unverified(app, users, fake):
    ctx, client = app
    customer_id, _ = users.new("customer")
    _, supervisor = users.new("supervisor")
    ticket = await create_for(client, supervisor, customer_id)
    for directory in (None, BookingDirectory(UNREACHABLE, timeout=0.5)):
        ctx.bookings = directory
        try:
            response = await client.put(
                f"{TICKETS}/{ticket['id']}/booking", json={"booking_id": "BK-TOLD-US"}, headers=supervisor
            )
            assert response.status == 200, await response.text()
            assert (await response.json())["metadata"] == {
                "booking_id": "BK-TOLD-US",
                "booking_reference": None,
                "booking_verified": False,
            }
        finally:
            if directory is not None:
                await directory.close()
            ctx.bookings = None


async def test_who_may_link(client, users, ctx, fake):
    customer_id, customer = users.new("customer")
    agent_id, agent = users.new("agent")
    _, supervisor = users.new("supervisor")
    ticket = await create_for(client, supervisor, customer_id)
    booking = fake.add(customer_id)
    path = f"{TICKETS}/{ticket['id']}/booking"
    await problem(await client.put(path, json={"booking_id": booking.id}, headers=customer), 403)
    await problem(await client.put(path, json={"colour": 1}, headers=customer), 403)  # 403 before validation
    await problem(await client.delete(path, headers=customer), 403)
    await problem(await client.put(path, json={"booking_id": booking.id}, headers=agent), 404)  # not theirs
    await start_active_chat(ctx, customer_id, agent_id)
    asked = len(fake.requests)
    await problem(await client.put(path, json={"booking_id": booking.id}, headers=agent), 403)  # reads, not writes
    assert len(fake.requests) == asked  # refused before asking the service
    await problem(await client.put(path, json={"booking_id": ""}, headers=supervisor), 422)
    await problem(await client.put(path, json={"booking_id": booking.id, "x": 1}, headers=supervisor), 422)
    await problem(
        await client.put(f"{TICKETS}/{uuid.uuid4()}/booking", json={"booking_id": booking.id}, headers=supervisor), 404
    )
    _, service_headers = users.new("service")
    assert (await client.put(path, json={"booking_id": booking.id}, headers=service_headers)).status == 200
    assert_ticket = await (await client.get(f"{TICKETS}/{ticket['id']}", headers=customer)).json()
    assert assert_ticket["metadata"]["booking_id"] == booking.id  # customers see what is linked


# ---------------------------------------------------------------- the API document


async def test_the_api_document_describes_the_bookings_endpoints(client):
    """(tests/test_kb_api.py validates the whole document of the same app.)"""
    from rest.openapi import build_spec

    spec = build_spec(client.server.app)
    paths, schemas = spec["paths"], spec["components"]["schemas"]
    listing = paths["/api/v1/customers/{customer_id}/bookings"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {"limit", "offset"}
    assert "available: false" in listing["description"]
    page = schemas["BookingPage"]["properties"]
    assert {"items", "total", "limit", "offset", "available"} <= set(page)
    assert set(schemas["Booking"]["properties"]) >= {
        "reference",
        "property_name",
        "check_in",
        "check_out",
        "status",
        "total_amount",
        "currency",
    }
    link = paths["/api/v1/tickets/{id}/booking"]
    assert set(link) >= {"put", "delete"}
    assert "unverified" in link["put"]["description"]
    assert {"403", "404", "422"} <= set(link["put"]["responses"])
