"""The console's Bookings panels in Chromium (issue 15): beside the chat and in the ticket view,
with a real local gRPC Booking Service (``booking_support``) present, and with it absent or too
slow, when the console degrades to one quiet "Bookings unavailable" line. axe-core finds no
serious WCAG 2 A/AA problem in either.

The module runs its own server and context, so it can plug the Booking Service in and out."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from booking_support import Bookings, booking_service
from playwright.async_api import Page, expect

from app.auth import issue_token
from app.clients.booking_service import BookingDirectory
from app.config import Settings
from app.context import open_context
from browser_support import UI_TIMEOUT_MS, accessibility_violations, open_console, screenshot
from chat_support import Cast, ChatServer, make_agent, serve_in_process

pytest_plugins = ["chat_fixtures", "browser_fixtures"]


@pytest.fixture(autouse=True, scope="module")
def patient_expect() -> Iterator[None]:
    expect.set_options(timeout=UI_TIMEOUT_MS)
    yield
    expect.set_options(timeout=5_000)


@pytest.fixture(scope="module")
async def service() -> AsyncIterator[tuple[Bookings, str]]:
    async with booking_service() as running:
        yield running


@pytest.fixture(scope="module")
async def chat_server(settings: Settings, service) -> AsyncIterator[ChatServer]:
    """This module's own server (and context), its Booking Service set per test."""
    configured = dataclasses.replace(settings, grpc_booking_service_url=service[1])
    async with open_context(configured) as ctx, serve_in_process(configured, ctx) as server:
        yield server


@pytest.fixture
async def bookings(chat_server, service) -> AsyncIterator[Bookings]:
    """The Booking Service answering (a fresh client: nothing cached from another test)."""
    ctx = chat_server.ctx
    previous, ctx.bookings = ctx.bookings, BookingDirectory(service[1])
    yield service[0]
    await ctx.bookings.close()
    ctx.bookings = previous


async def as_agent(server: ChatServer, method: str, path: str, agent_id: uuid.UUID, payload: dict) -> dict:
    headers = {"Authorization": f"Bearer {issue_token(server.settings.jwt_secret, agent_id, 'agent')}"}
    async with aiohttp.ClientSession(server.url) as http:
        async with http.request(method, path, json=payload, headers=headers) as response:
            assert response.status in (200, 201), await response.text()
            return await response.json()


async def chat_with(page: Page, cast: Cast, department: str) -> tuple[uuid.UUID, str]:
    """A customer starts a chat and the console's agent accepts it: (customer id, session id)."""
    customer = await cast.customer()
    session = (
        await customer.ok(
            "chat:start",
            {"department": department, "subject": "My stay", "message": "Hello", "client_msg_id": uuid.uuid4().hex},
        )
    )["session"]
    item = page.locator(f'[data-testid="queue-item"][data-session-id="{session["id"]}"]')
    await item.get_by_test_id("accept").click()
    await expect(page.locator(f'[data-testid="chat-pane"][data-session-id="{session["id"]}"]')).to_be_visible()
    return customer.user_id, session["id"]


async def test_bookings_show_beside_the_chat_and_link_to_the_ticket(
    chat_server, cast, open_page, department, bookings, screenshot_dir
):
    agent_id = await make_agent(chat_server.ctx, department, name="Ada Agent")
    page = await open_console(open_page, chat_server.url, chat_server.settings.jwt_secret, agent_id)
    customer = await cast.customer()
    bookings.add(
        customer.user_id,
        reference="BK-1042",
        property_name="Harbour View Apartment",
        check_in="2026-08-02",
        check_out="2026-08-09",
        total_amount="980.50",
        currency="EUR",
        status="completed",
    )
    latest = bookings.add(
        customer.user_id,
        reference="BK-2210",
        property_name="Seaside Loft",
        check_in="2026-12-24",
        check_out="2026-12-27",
        total_amount="420.00",
        currency="EUR",
        status="confirmed",
    )
    session = (
        await customer.ok(
            "chat:start",
            {
                "department": department,
                "subject": "Late check-in",
                "message": "Can I arrive after midnight?",
                "client_msg_id": uuid.uuid4().hex,
            },
        )
    )["session"]
    await (
        page.locator(f'[data-testid="queue-item"][data-session-id="{session["id"]}"]').get_by_test_id("accept").click()
    )

    panel = page.get_by_test_id("customer-bookings")
    items = panel.get_by_test_id("booking")
    await expect(items).to_have_count(2)
    await expect(items.get_by_test_id("booking-reference")).to_have_text(["BK-2210", "BK-1042"])  # newest first
    first = items.first
    await expect(first.get_by_test_id("booking-property")).to_have_text("Seaside Loft")
    await expect(first.get_by_test_id("booking-status")).to_have_text("Confirmed")
    await expect(first.get_by_test_id("booking-dates")).to_contain_text("2026")
    await expect(first.get_by_test_id("booking-amount")).to_contain_text("420.00")
    await expect(panel.get_by_test_id("booking-link")).to_have_count(0)  # linking is on the ticket
    await screenshot(page, "console-bookings-chat-desktop", screenshot_dir)
    assert await accessibility_violations(page) == []

    ticket = await as_agent(
        chat_server,
        "POST",
        "/api/v1/tickets",
        agent_id,
        {
            "subject": "Late check-in at Seaside Loft",
            "description": "Arrives after midnight.",
            "category": department,
            "customer_id": str(customer.user_id),
        },
    )
    related = page.locator(f'[data-testid="customer-ticket"][data-ticket-id="{ticket["id"]}"]')
    await related.click()
    view = page.get_by_test_id("ticket-view")
    await expect(view.get_by_test_id("ticket-booking")).to_have_text("No booking linked.")
    listed = view.locator(f'[data-testid="booking"][data-booking-id="{latest.id}"]')
    await listed.get_by_test_id("booking-link").click()
    await expect(view.get_by_test_id("ticket-booking")).to_have_text("Linked: BK-2210")
    await expect(listed.get_by_test_id("booking-unlink")).to_be_visible()
    await expect(view.get_by_test_id("booking-link")).to_have_count(1)  # the other booking
    history = view.get_by_test_id("history-item")
    await expect(history.filter(has_text="Booking BK-2210 linked")).to_have_count(1)
    stored = await as_agent(chat_server, "GET", f"/api/v1/tickets/{ticket['id']}", agent_id, None)
    assert stored["metadata"]["booking_reference"] == "BK-2210"
    await screenshot(page, "console-bookings-ticket-desktop", screenshot_dir)
    assert await accessibility_violations(page) == []

    await listed.get_by_test_id("booking-unlink").click()
    await expect(view.get_by_test_id("ticket-booking")).to_have_text("No booking linked.")
    await expect(view.get_by_test_id("booking-link")).to_have_count(2)
    await expect(history.filter(has_text="Booking unlinked")).to_have_count(1)


async def test_without_the_booking_service_the_panels_say_bookings_unavailable(
    chat_server, cast, open_page, department, service, screenshot_dir
):
    ctx = chat_server.ctx
    agent_id = await make_agent(ctx, department, name="Ada Agent")
    page = await open_console(open_page, chat_server.url, chat_server.settings.jwt_secret, agent_id)
    ctx.bookings = None  # not configured
    customer_id, _ = await chat_with(page, cast, department)
    panel = page.get_by_test_id("customer-bookings")
    await expect(panel.get_by_test_id("bookings-unavailable")).to_have_text("Bookings unavailable")
    await expect(panel.get_by_test_id("booking")).to_have_count(0)
    await expect(page.get_by_test_id("toast")).to_have_count(0)  # quietly: no error toast
    assert await accessibility_violations(page) == []

    # configured but slower than the deadline: the ticket view says the same
    fake, target = service
    fake.add(customer_id)
    fake.slow.add(str(customer_id))
    ctx.bookings = BookingDirectory(target, timeout=0.3)
    try:
        ticket = await as_agent(
            chat_server,
            "POST",
            "/api/v1/tickets",
            agent_id,
            {
                "subject": "Where is my booking?",
                "description": "It vanished.",
                "category": department,
                "customer_id": str(customer_id),
            },
        )
        await page.locator(f'[data-testid="customer-ticket"][data-ticket-id="{ticket["id"]}"]').click()
        view = page.get_by_test_id("ticket-view")
        await expect(view.get_by_test_id("bookings-unavailable")).to_have_text("Bookings unavailable")
        await expect(view.get_by_test_id("ticket-booking")).to_have_text("No booking linked.")
        await expect(view.get_by_test_id("ticket-error")).to_be_hidden()
        assert await accessibility_violations(page) == []
    finally:
        await ctx.bookings.close()
        ctx.bookings = None
