"""Ticket conversations in the widget (issue 14): "My tickets" rows open a ticket with its
messages (never internal notes), its status, a reply box (a reply reopens a resolved ticket),
live updates and an unread mark when an agent replied since the customer last looked."""

from __future__ import annotations

import uuid

import aiohttp
from playwright.async_api import expect

from browser_support import PHONE, UI_TIMEOUT_MS, demo_url, screenshot, token
from chat_support import make_agent

pytest_plugins = ["chat_fixtures", "browser_fixtures"]
LIVE = {"timeout": UI_TIMEOUT_MS}  # pushes come through the ticket event feed (the event log)


class Rest:
    def __init__(self, base: str, secret: str):
        self.base, self.secret = base, secret

    async def __call__(
        self, method: str, path: str, user_id: uuid.UUID, role: str, body: dict | None = None, status: int = 200
    ) -> dict:
        headers = {"Authorization": f"Bearer {token(self.secret, user_id, role, role.title())}"}
        async with aiohttp.ClientSession(self.base) as http:
            async with http.request(method, path, json=body, headers=headers) as resp:
                assert resp.status == status, await resp.text()
                return await resp.json()


async def test_a_ticket_conversation_in_the_widget_with_live_agent_replies(
    chat_server, department, open_page, screenshot_dir
):
    ctx, base, secret = chat_server.ctx, chat_server.url, chat_server.settings.jwt_secret
    rest = Rest(base, secret)
    customer_id, agent_id, supervisor = uuid.uuid4(), await make_agent(ctx, department, name="Bea Agent"), uuid.uuid4()
    ticket = await rest(
        "POST",
        "/api/v1/tickets",
        customer_id,
        "customer",
        {"subject": "Refund for BK-1042", "description": "Cancelled last week, no refund yet.", "category": department},
        status=201,
    )
    quiet = await rest(
        "POST",
        "/api/v1/tickets",
        customer_id,
        "customer",
        {"subject": "Parking", "description": "Is there parking?", "category": department},
        status=201,
    )
    tid = ticket["id"]
    for assigned in (tid, quiet["id"]):
        await rest("PUT", f"/api/v1/tickets/{assigned}", supervisor, "supervisor", {"agent_id": str(agent_id)})
    await rest(
        "POST",
        f"/api/v1/tickets/{tid}/messages",
        agent_id,
        "agent",
        {"message": "Thanks, I am checking with the payment provider."},
        status=201,
    )
    await rest(
        "POST",
        f"/api/v1/tickets/{tid}/messages",
        agent_id,
        "agent",
        {"message": "Internal: provider ticket PX-77", "is_internal": True},
        status=201,
    )

    page = await open_page(demo_url(base, secret, customer_id, department), viewport=PHONE)
    await page.get_by_test_id("launcher").click()
    await page.get_by_test_id("tab-tickets").click()
    rows = page.get_by_test_id("ticket-item")
    row = rows.filter(has_text="Refund for BK-1042")
    await expect(row).to_have_attribute("data-unread", "true")  # an agent replied, not yet seen
    await expect(rows.filter(has_text="Parking")).to_have_attribute("data-unread", "false")
    await screenshot(page, "widget-tickets-phone", screenshot_dir)

    await row.click()
    view = page.get_by_test_id("ticket-view")
    await expect(view).to_contain_text("Refund for BK-1042")
    await expect(page.get_by_test_id("ticket-view-status")).to_have_text("open")
    texts = page.get_by_test_id("ticket-message")
    await expect(texts.filter(has_text="checking with the payment provider")).to_have_count(1)
    await expect(page.get_by_test_id("ticket-description")).to_contain_text("Cancelled last week, no refund yet.")
    await expect(page.get_by_text("PX-77")).to_have_count(0)  # internal notes never reach customers
    count = await texts.count()

    await page.get_by_test_id("ticket-reply").fill("It was booking BK-1042, paid by card.")
    await page.get_by_test_id("ticket-send").click()
    await expect(texts).to_have_count(count + 1)
    await expect(texts.last).to_have_attribute("data-sender", "customer")
    await expect(texts.last).to_have_attribute("data-state", "sent")  # "sending" until the server has it
    stored = await rest("GET", f"/api/v1/tickets/{tid}/messages", agent_id, "agent")
    assert stored["items"][-1]["message"] == "It was booking BK-1042, paid by card."

    await rest(
        "POST",
        f"/api/v1/tickets/{tid}/messages",
        agent_id,
        "agent",
        {"message": "Found it: the refund went out today."},
        status=201,
    )
    await expect(texts.last).to_contain_text("the refund went out today", **LIVE)  # live, no reload
    await expect(texts).to_have_count(count + 2)
    await rest("PATCH", f"/api/v1/tickets/{tid}/status", agent_id, "agent", {"status": "resolved"})
    await expect(page.get_by_test_id("ticket-view-status")).to_have_text("resolved", **LIVE)
    await expect(page.get_by_test_id("ticket-reopen-hint")).to_be_visible()
    await screenshot(page, "widget-ticket-phone", screenshot_dir)

    await page.get_by_test_id("ticket-reply").fill("It has not arrived yet.")
    await page.get_by_test_id("ticket-send").click()
    await expect(page.get_by_test_id("ticket-view-status")).to_have_text("open", **LIVE)  # the reply reopened it
    assert (await rest("GET", f"/api/v1/tickets/{tid}", customer_id, "customer"))["status"] == "open"

    await page.get_by_test_id("ticket-back").click()
    await expect(row).to_have_attribute("data-unread", "false")  # seen while it was open
    await rest(
        "POST",
        f"/api/v1/tickets/{quiet['id']}/messages",
        agent_id,
        "agent",
        {"message": "Yes, free parking behind the house."},
        status=201,
    )
    await expect(rows.filter(has_text="Parking")).to_have_attribute("data-unread", "true", **LIVE)  # a live mark

    await page.reload()  # the marks are kept per ticket
    await page.get_by_test_id("launcher").click()
    await page.get_by_test_id("tab-tickets").click()
    await expect(rows.filter(has_text="Parking")).to_have_attribute("data-unread", "true")
    await expect(row).to_have_attribute("data-unread", "false")
