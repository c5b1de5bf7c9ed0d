"""What a customer meets first in the widget (issue 14): the widget's own department (embed,
else a "what is it about?" choice), that department's offline text and hours, availability that
changes live, automatic messages as article cards and local times, the README's "chat with
yourself" flow on the demo data, and the small things (scroll position after a reload, the
character counter, "End chat" asking first, the launcher icon, how automatic messages and the
end of a chat look). Real browser, real server; agents are socket clients unless the console
is the point."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from urllib.parse import urlsplit

import dataclasses
from collections.abc import Iterator

import aiohttp
import pytest
from playwright.async_api import Page, expect

from app.auth import RequestMeta
from app.context import AppContext
from app.services import kb
from browser_support import DESKTOP, PHONE, demo_url, screenshot, token
from chat_support import ADMIN, make_agent, new_department

pytest_plugins = ["chat_fixtures", "browser_fixtures"]


@pytest.fixture(scope="module", autouse=True)
def auto_responses(ctx: AppContext) -> Iterator[None]:
    """As `make run` has it: automatic greetings and ticket replies on (AUTO_RESPONSE_ENABLED),
    for this module's tests only (the shared context is restored after them)."""
    before = ctx.settings
    ctx.settings = dataclasses.replace(before, auto_response_enabled=True)
    yield
    ctx.settings = before


async def create_department(base: str, secret: str, **fields) -> dict:
    headers = {"Authorization": f"Bearer {token(secret, uuid.uuid4(), 'admin', 'Ada Admin')}"}
    async with aiohttp.ClientSession(base) as http:
        async with http.post("/api/v1/departments", json=fields, headers=headers) as resp:
            assert resp.status == 201, await resp.text()
            return await resp.json()


async def open_launcher(page: Page) -> None:
    await page.get_by_test_id("launcher").click()
    await expect(page.get_by_test_id("panel")).to_be_visible()


def messages(page: Page):
    return page.get_by_test_id("messages").get_by_test_id("message")


# ------------------------------------------------------------------ departments and availability


async def test_the_widget_shows_its_own_departments_offline_text_and_hours(chat_server, open_page, screenshot_dir):
    base, secret = chat_server.url, chat_server.settings.jwt_secret
    # Another department, first by name, with an offline text of its own: never shown here.
    other = await create_department(
        base, secret, name="aaa-" + new_department(), offline_message="Billing answers on weekdays only."
    )
    mine = await create_department(
        base,
        secret,
        name=new_department(),
        display_name="Lost and found",
        offline_message="Lost and found answers within a day. Leave us a message.",
        business_hours={"mon": [["09:00", "17:00"]], "tue": [["09:00", "17:00"]], "sat": [["10:00", "12:00"]]},
        time_zone="Europe/Lisbon",
    )
    customer_id = uuid.uuid4()
    page = await open_page(demo_url(base, secret, customer_id, mine["name"]), viewport=PHONE)
    await open_launcher(page)
    await expect(page.get_by_test_id("offline-reason")).to_have_text(
        "Lost and found answers within a day. Leave us a message."
    )
    await expect(page.get_by_test_id("offline-hours")).to_have_text(
        "Opening hours: Mon–Tue 09:00–17:00; Sat 10:00–12:00 (Europe/Lisbon)"
    )
    await expect(page.get_by_text(other["offline_message"])).to_have_count(0)
    await page.get_by_test_id("offline-subject").fill("Left my umbrella")
    await page.get_by_test_id("offline-message").fill("Room 12, a blue one.")
    await screenshot(page, "widget-offline-phone", screenshot_dir)
    await page.get_by_test_id("offline-submit").click()
    await expect(page.get_by_test_id("offline-done")).to_contain_text(re.compile(r"ticket TKT-\d+"))

    async with chat_server.ctx.db.connection() as conn:
        ticket = await conn.fetchrow("SELECT department FROM support_tickets WHERE customer_id = $1", customer_id)
    assert ticket["department"] == mine["name"]  # chat:leave_message named the widget's department


async def test_the_topic_choice_and_availability_follow_agents_live_but_never_leave_my_tickets(
    chat_server, cast, open_page, screenshot_dir
):
    base, secret, ctx = chat_server.url, chat_server.settings.jwt_secret, chat_server.ctx
    stays = await create_department(
        base, secret, name=new_department(), display_name="Stays", offline_message="Stays: nobody is here right now."
    )
    billing = await create_department(
        base, secret, name=new_department(), display_name="Payments", offline_message="Payments answers on weekdays."
    )
    agent_id = await make_agent(ctx, stays["name"], name="Alex Agent")
    url = demo_url(base, secret, uuid.uuid4(), "") + f"&departments={stays['name']},{billing['name']}"
    page = await open_page(url)
    await open_launcher(page)

    choices = page.get_by_test_id("topic-choice")
    await expect(choices.locator(".topic-name")).to_have_text(["Payments", "Stays"])
    await expect(choices.get_by_test_id("topic-state")).to_have_text(["Leave a message", "Leave a message"])
    agent = await cast.staff(agent_id)  # Alex comes online: live
    await expect(choices.get_by_test_id("topic-state")).to_have_text(["Leave a message", "Chat now"])
    await screenshot(page, "widget-topic-desktop", screenshot_dir)

    await choices.filter(has_text="Payments").click()
    await expect(page.get_by_test_id("offline-reason")).to_have_text("Payments answers on weekdays.")
    await page.get_by_test_id("change-topic").click()
    await choices.filter(has_text="Stays").click()
    await expect(page.get_by_test_id("availability")).to_have_text("Our team is online.")
    await page.get_by_test_id("prechat-message").fill("Is breakfast included?")  # a draft survives the switch

    await agent.ok("agent:status", {"status": "offline"})  # Alex leaves: the form follows
    await expect(page.get_by_test_id("offline-reason")).to_have_text("Stays: nobody is here right now.")
    await expect(page.get_by_test_id("offline-message")).to_have_value("Is breakfast included?")
    await agent.ok("agent:status", {"status": "online"})
    await expect(page.get_by_test_id("availability")).to_have_text("Our team is online.")

    await page.get_by_test_id("tab-tickets").click()  # the customer's own choice
    await expect(page.get_by_test_id("tickets")).to_be_visible()
    await agent.ok("agent:status", {"status": "offline"})
    panel = page.get_by_test_id("panel")
    await expect(panel).to_have_attribute("data-available", "false")  # the answer arrived ...
    await expect(page.get_by_test_id("tickets")).to_be_visible()  # ... and changed no view
    await expect(page.get_by_test_id("tab-tickets")).to_have_attribute("aria-current", "page")
    await page.get_by_test_id("tab-chat").click()
    await expect(page.get_by_test_id("offline-reason")).to_have_text("Stays: nobody is here right now.")


# ------------------------------------------------------------------ automatic messages


async def publish(ctx, title: str, category: str) -> dict:
    return await kb.create_article(
        ctx,
        ADMIN,
        RequestMeta(),
        {
            "title": title,
            "content": "How it works, step by step.",
            "category": category,
            "tags": [],
            "is_published": True,
        },
    )


async def test_automatic_messages_show_article_cards_and_times_in_the_readers_zone(
    chat_server, cast, department, open_page, screenshot_dir
):
    ctx, base, secret = chat_server.ctx, chat_server.url, chat_server.settings.jwt_secret
    word = f"quokka{uuid.uuid4().hex[:6]}"
    titles = [f"{word} check-in {n}" for n in range(4)]
    ids = {title: (await publish(ctx, title, department))["id"] for title in titles}
    agent = await cast.staff(await make_agent(ctx, department, name="Alex Agent"))
    customer_id = uuid.uuid4()
    page = await open_page(demo_url(base, secret, customer_id, department), locale="de-DE", timezone_id="Asia/Tokyo")
    await open_launcher(page)
    await page.get_by_test_id("prechat-message").fill(f"How does {word} check-in work?")
    suggestions = page.get_by_test_id("kb-suggestion")
    await expect(suggestions).to_have_count(3)
    shown = await suggestions.all_text_contents()
    await page.get_by_test_id("start-chat").click()
    await agent.expect("chat:assigned")

    greeting = messages(page).filter(has=page.get_by_test_id("message-parts"))
    await expect(greeting).to_have_count(1)
    cards = greeting.get_by_test_id("article-card")
    (left,) = set(titles) - set(shown)  # the one the form did not show
    card = cards.filter(has_text=left)
    await expect(card).to_have_count(1)
    for title in shown:
        await expect(cards.filter(has_text=title)).to_have_count(0)  # not suggested twice
    await expect(card).to_have_attribute("href", f"{base}/help/articles/{ids[left]}")
    assert "/help/articles/" not in await greeting.get_by_test_id("message-parts").inner_text()
    await expect(greeting.locator(".meta")).to_contain_text("Automatic message")
    await screenshot(page, "widget-greeting-desktop", screenshot_dir)

    # The ticket auto-reply's promise: a time in German, in Tokyo time.
    headers = {"Authorization": f"Bearer {token(secret, customer_id, 'customer', 'Casey')}"}
    async with aiohttp.ClientSession(base) as http:
        async with http.post(
            "/api/v1/tickets",
            headers=headers,
            json={"subject": "Invoice address", "description": "Please change it.", "category": department},
        ) as resp:
            assert resp.status == 201, await resp.text()
            ticket = await resp.json()
    due = dt.datetime.fromisoformat(ticket["first_response_due_at"])
    await page.get_by_test_id("tab-tickets").click()
    await page.get_by_test_id("ticket-item").filter(has_text="Invoice address").click()
    when = page.get_by_test_id("ticket-message").get_by_test_id("part-time")
    await expect(when).to_have_count(1)
    expected = await page.evaluate(
        """iso => new Intl.DateTimeFormat("de-DE",
        {dateStyle: "full", timeStyle: "short", timeZone: "Asia/Tokyo"}).format(new Date(iso))""",
        ticket["first_response_due_at"],
    )
    await expect(when).to_have_text(expected)
    local = due.astimezone(dt.timezone(dt.timedelta(hours=9)))
    assert f"{local:%H:%M}" in expected and str(local.year) in expected
    assert "T" not in (await when.inner_text()).split(" ")[-1]  # no ISO string in sight


# ------------------------------------------------------------------ the README's demo flow


async def test_the_readme_chat_with_yourself_flow_works_on_the_demo_data(chat_server, open_page, screenshot_dir):
    """`make run` prints these URLs (app.cli._dev_banner loads the demo data, app.demo): open the
    Widget demo and the Console in two windows and chat with yourself."""
    from app.cli import _dev_banner

    banner = await _dev_banner(chat_server.ctx, chat_server.settings)
    urls = dict(re.findall(r"^\s+(Widget demo|Console)\s+(\S+)$", banner, re.M))
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(chat_server.url))

    def here(url: str) -> str:
        parts = urlsplit(url)
        return f"{origin}{parts.path}#{parts.fragment}"

    console = await open_page(here(urls["Console"]))
    await expect(console.get_by_test_id("connection")).to_have_attribute("data-state", "connected")
    await expect(console.get_by_test_id("presence")).to_have_attribute("data-status", "online")
    widget = await open_page(here(urls["Widget demo"]))
    await open_launcher(widget)
    await expect(widget.get_by_test_id("availability")).to_have_text("Our team is online.")
    await widget.get_by_test_id("prechat-message").fill("Can I move my booking by a day?")
    await widget.get_by_test_id("start-chat").click()
    await expect(widget.get_by_test_id("agent-line")).to_have_text("You are chatting with Alex Agent")
    pane = console.locator("[data-testid=chat-pane]:visible")
    await expect(pane.get_by_test_id("message-text").first).to_have_text("Can I move my booking by a day?")
    greeting = pane.locator("[data-sender=system]").get_by_test_id("message-text")  # parts, in the console too
    await expect(greeting).to_have_class(re.compile(r"\bmsg-parts\b"))
    await expect(greeting).to_contain_text("Alex Agent will reply in a moment.")
    await pane.get_by_test_id("composer").fill("Of course, which booking?")
    await pane.get_by_test_id("send").click()
    await expect(messages(widget).filter(has_text="Of course, which booking?")).to_have_count(1)


# ------------------------------------------------------------------ polish


async def test_the_small_things_a_customer_notices(chat_server, cast, department, open_page, screenshot_dir):
    ctx, base, secret = chat_server.ctx, chat_server.url, chat_server.settings.jwt_secret
    agent = await cast.staff(await make_agent(ctx, department, name="Alex Agent"))
    page = await open_page(demo_url(base, secret, uuid.uuid4(), department), viewport=DESKTOP)
    icon = page.get_by_test_id("launcher").locator("svg.launcher-icon path")
    box = await icon.bounding_box()
    assert box and box["width"] > 16 and box["height"] > 16  # a drawn bubble, not a blank box
    await open_launcher(page)
    await page.get_by_test_id("prechat-message").fill("Hello there")
    await page.get_by_test_id("start-chat").click()
    session_id = (await agent.expect("chat:assigned"))["session"]["id"]
    for n in range(12):
        await agent.ok(
            "chat:message",
            {
                "session_id": session_id,
                "client_msg_id": f"m{n}",
                "message": f"Line {n}\nand another line\nand a third one",
            },
        )
    await expect(messages(page).filter(has_text="Line 11")).to_have_count(1)

    system = messages(page).and_(page.locator("[data-sender=system]")).first
    from_agent = messages(page).and_(page.locator("[data-sender=agent]")).first
    style = "el => { const s = getComputedStyle(el.querySelector('.text')); return [s.backgroundColor, s.borderLeftWidth]; }"
    assert await system.evaluate(style) != await from_agent.evaluate(style)

    # After a reload mid-chat the newest message is at the visible end.
    await page.reload()
    await open_launcher(page)
    await expect(messages(page).filter(has_text="Line 11")).to_have_count(1)
    await expect(page.get_by_test_id("composer")).to_be_visible()
    gap = await page.get_by_test_id("messages").evaluate("el => el.scrollHeight - el.scrollTop - el.clientHeight")
    assert gap <= 1, gap
    last = await messages(page).last.bounding_box()
    list_box = await page.get_by_test_id("messages").bounding_box()
    assert last["y"] + last["height"] <= list_box["y"] + list_box["height"] + 1

    # Long text: a counter near the limit, nothing cut, sending refused until shorter.
    composer = page.get_by_test_id("composer")
    counter = page.locator(".footer [data-testid=char-counter]")
    await composer.fill("x" * 4400)
    await expect(counter).to_be_hidden()
    await composer.fill("x" * 4990)
    await expect(counter).to_have_text("4,990 / 5,000")
    await composer.fill("x" * 5012)
    await expect(counter).to_have_text("12 characters too many (5,000 at most)")
    await composer.press("Enter")
    await expect(composer).to_have_value("x" * 5012)  # kept, not sent, not cut
    await composer.fill("Thanks!")
    await expect(counter).to_be_hidden()

    # "End chat" asks first; "Keep chatting" keeps it.
    await page.get_by_test_id("end-chat").click()
    await expect(page.get_by_test_id("end-confirm-bar")).to_contain_text("End this chat?")
    await page.get_by_test_id("end-cancel").click()
    await expect(page.get_by_test_id("end-chat")).to_be_focused()
    await page.get_by_test_id("end-chat").click()
    await page.get_by_test_id("end-confirm").click()
    ended = page.get_by_test_id("messages").locator("li").last  # at the end of the conversation
    await expect(ended).to_have_text("This chat has ended.")
    await expect(ended).to_have_attribute("data-testid", "ended")
    await screenshot(page, "widget-ended-desktop", screenshot_dir)
