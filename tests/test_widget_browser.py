"""The customer widget in a real browser (Debian's Chromium through Playwright) against the real
server: the demo host page embeds it; agents here are python-socketio clients (the console's own
browser tests are in test_console_browser.py, and test_browser_chat.py has both in browsers)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import aiohttp
from playwright.async_api import Page, expect

from app.auth import RequestMeta, issue_token
from app.services import kb
from browser_support import DESKTOP, PHONE, accessibility_violations, demo_url, screenshot, token
from chat_support import ADMIN, make_agent

pytest_plugins = ["chat_fixtures", "browser_fixtures"]


async def open_widget(
    open_page, base: str, secret: str, customer_id: uuid.UUID, department: str, viewport: dict = DESKTOP
) -> Page:
    page = await open_page(demo_url(base, secret, customer_id, department), viewport=viewport)
    await page.get_by_test_id("launcher").click()
    await expect(page.get_by_test_id("panel")).to_be_visible()
    return page


async def start_chat(page: Page, text: str) -> None:
    await page.get_by_test_id("prechat-message").fill(text)
    await page.get_by_test_id("start-chat").click()
    await expect(page.get_by_test_id("composer")).to_be_visible()
    await expect(messages(page).first).to_have_attribute("data-seq", "1")  # chat:start acknowledged


def messages(page: Page):
    return page.get_by_test_id("messages").get_by_test_id("message")


async def assert_each_once(page: Page, texts: list[str]) -> None:
    """Every text shows exactly once, in this order, with gap-free seqs from 1."""
    await expect(messages(page)).to_have_count(len(texts))
    await expect(messages(page).locator(".text")).to_have_text(texts)
    for i, message in enumerate(await messages(page).all(), start=1):
        # the text shows while a (re)sent message waits for its ack; its seq comes with the ack
        await expect(message).to_have_attribute("data-seq", str(i))


async def chatting_through(proxy, chat_server, cast, department: str, open_page) -> tuple[Page, Any, str]:
    """A customer whose widget reaches the server through ``proxy``, in a chat with an agent
    (a socket client) after a first message; returns the page, the agent and the session id."""
    agent = await cast.staff(await make_agent(chat_server.ctx, department))
    page = await open_widget(open_page, proxy.url, chat_server.settings.jwt_secret, uuid.uuid4(), department)
    await start_chat(page, "first")
    return page, agent, (await agent.expect("chat:assigned"))["session"]["id"]


async def publish_article(ctx, title: str, content: str) -> dict:
    return await kb.create_article(
        ctx,
        ADMIN,
        RequestMeta(),
        {"title": title, "content": content, "category": "bookings", "tags": [], "is_published": True},
    )


# ------------------------------------------------------------------ a whole chat


async def test_customer_chats_from_queue_to_rating(chat_server, cast, department, open_page, screenshot_dir):
    ctx, secret = chat_server.ctx, chat_server.settings.jwt_secret
    word = f"zebra{uuid.uuid4().hex[:6]}"
    article = await publish_article(ctx, f"How do I cancel a {word} booking?", "Open My bookings and press Cancel.")
    agent_id = await make_agent(ctx, department, name="Alex Agent", max_chats=1)
    agent = await cast.staff(agent_id)
    earlier = await cast.customer()  # takes the agent's only place
    earlier_chat = await earlier.ok("chat:start", {"department": department, "message": "before you"})
    await agent.expect("chat:assigned")
    page = await open_widget(open_page, chat_server.url, secret, uuid.uuid4(), department)

    await expect(page.get_by_test_id("availability")).to_have_text(
        "Our team is busy right now; you will be first in line."
    )  # the one agent is at capacity
    await page.get_by_test_id("prechat-subject").fill("Cancel my stay")
    await page.get_by_test_id("prechat-message").fill(f"I want to cancel my {word} booking")
    suggestion = page.get_by_test_id("kb-suggestion")
    await expect(suggestion.first).to_have_text(article["title"])  # the best match first
    await suggestion.first.click()
    await expect(page.get_by_test_id("kb-article")).to_contain_text("press Cancel")
    await screenshot(page, "widget-prechat-desktop", screenshot_dir)
    await page.get_by_test_id("start-chat").click()

    await expect(page.get_by_test_id("queue-status")).to_contain_text("You are number 1 in the queue")
    await screenshot(page, "widget-queue-desktop", screenshot_dir)
    await earlier.ok("chat:end", {"session_id": earlier_chat["session"]["id"]})  # the place frees up
    assigned = await agent.expect("chat:assigned")
    session_id = assigned["session"]["id"]
    await expect(page.get_by_test_id("agent-line")).to_have_text("You are chatting with Alex Agent")
    await expect(page.get_by_test_id("queue-status")).to_be_hidden()

    await agent.ok(
        "chat:message",
        {"session_id": session_id, "client_msg_id": "a1", "message": "Hi! I can help with that. Which dates?"},
    )
    await expect(messages(page).nth(1)).to_contain_text("Which dates?")
    await agent.ok("chat:typing", {"session_id": session_id, "typing": True})
    await expect(page.get_by_test_id("typing")).to_have_text("Alex Agent is typing…")

    composer = page.get_by_test_id("composer")
    await composer.type("12 to 14 March")
    typing = await agent.expect("chat:typing", lambda p: p["typing"] is True)
    assert typing["sender_type"] == "customer"
    await composer.press("Enter")
    pushed = await agent.expect("chat:message", lambda m: m["message"] == "12 to 14 March")
    assert pushed["seq"] == 3 and pushed["sender_type"] == "customer"
    await expect(messages(page).nth(2)).to_have_attribute("data-state", "sent")
    read = await agent.expect("chat:read")  # the customer has seen the agent's message
    assert read["up_to_seq"] >= 2 and read["reader_type"] == "customer"

    await agent.ok("chat:read", {"session_id": session_id, "up_to_seq": 3})
    await expect(page.get_by_test_id("seen")).to_have_count(1)
    await expect(messages(page).nth(2).get_by_test_id("seen")).to_be_visible()
    await screenshot(page, "widget-chat-desktop", screenshot_dir)

    await agent.ok("chat:end", {"session_id": session_id})
    await expect(page.get_by_test_id("ended")).to_have_text("This chat has ended.")
    await page.get_by_test_id("rating").locator("label[for=sw-star-4]").click()
    await page.get_by_test_id("rating-comment").fill("Quick and kind")
    await screenshot(page, "widget-rating-desktop", screenshot_dir)
    await page.get_by_test_id("rating-submit").click()
    await expect(page.get_by_test_id("rating-thanks")).to_be_visible()

    async with ctx.db.connection() as conn:
        feedback = await conn.fetchrow(
            "SELECT rating, comment FROM feedback WHERE chat_session_id = $1", uuid.UUID(session_id)
        )
        stored = await conn.fetch(
            "SELECT seq, sender_type FROM chat_messages WHERE session_id = $1 ORDER BY seq", uuid.UUID(session_id)
        )
    assert feedback["rating"] == 4
    assert ctx.cipher.decrypt(feedback["comment"], "feedback.comment") == "Quick and kind"
    assert [(r["seq"], r["sender_type"]) for r in stored] == [(1, "customer"), (2, "agent"), (3, "customer")]


async def test_widget_renders_user_text_as_text(chat_server, cast, department, open_page):
    ctx, secret = chat_server.ctx, chat_server.settings.jwt_secret
    agent = await cast.staff(await make_agent(ctx, department))
    page = await open_widget(open_page, chat_server.url, secret, uuid.uuid4(), department)
    attack = "<img src=x onerror=\"document.title='pwned'\"><b>bold</b>"
    await start_chat(page, "hello")
    assigned = await agent.expect("chat:assigned")
    await agent.ok("chat:message", {"session_id": assigned["session"]["id"], "client_msg_id": "x", "message": attack})
    await expect(messages(page).nth(1).locator(".text")).to_have_text(attack)
    assert await page.get_by_test_id("panel").locator("img, b").count() == 0
    assert await page.title() != "pwned"


# ------------------------------------------------------------------ dropped connections


async def test_widget_survives_a_dropped_connection_without_loss_or_duplicates(
    chat_server, cast, department, open_page, proxy
):
    page, agent, session_id = await chatting_through(proxy, chat_server, cast, department, open_page)
    await expect(messages(page)).to_have_count(1)

    # The tunnel: both sides go on writing while the customer is cut off.
    proxy.cut()
    await expect(page.get_by_test_id("conn-status")).to_have_text("Reconnecting…")
    composer = page.get_by_test_id("composer")
    for text in ("typed offline 1", "typed offline 2"):
        await composer.fill(text)
        await composer.press("Enter")
    await expect(page.locator("[data-testid=message][data-state=sending]")).to_have_count(2)
    for n in (1, 2):
        await agent.ok(
            "chat:message",
            {"session_id": session_id, "client_msg_id": f"agent-{n}", "message": f"agent while you were away {n}"},
        )
    proxy.restore()
    await expect(page.get_by_test_id("conn-status")).to_be_hidden()
    await assert_each_once(
        page,
        ["first", "agent while you were away 1", "agent while you were away 2", "typed offline 1", "typed offline 2"],
    )
    await agent.expect("chat:message", lambda m: m["message"] == "typed offline 2")
    got = [m["message"] for m in agent.seen("chat:message") if m["sender_type"] == "customer"]
    assert got[-2:] == ["typed offline 1", "typed offline 2"] and len(got) == len(set(got))


async def test_a_lost_ack_is_resent_and_kept_once(chat_server, cast, department, open_page, proxy):
    page, agent, session_id = await chatting_through(proxy, chat_server, cast, department, open_page)

    proxy.hold_replies()  # the message reaches the server; its ack never returns
    composer = page.get_by_test_id("composer")
    await composer.fill("did you get this?")
    await composer.press("Enter")
    stored = await agent.expect("chat:message", lambda m: m["message"] == "did you get this?")
    await expect(messages(page).nth(1)).to_have_attribute("data-state", "sending")
    await messages(page).nth(1).evaluate("el => el.setAttribute('data-probe', 'same element')")
    proxy.cut()
    proxy.restore()  # reconnect; the widget resends with the same client_msg_id
    await expect(messages(page).nth(1)).to_have_attribute("data-state", "sent")
    # Patched in place, not re-added: a screen reader announces the message once.
    await expect(messages(page).nth(1)).to_have_attribute("data-probe", "same element")
    await assert_each_once(page, ["first", "did you get this?"])
    await agent.ok("chat:message", {"session_id": session_id, "client_msg_id": "after", "message": "yes"})
    await assert_each_once(page, ["first", "did you get this?", "yes"])
    assert len(agent.seen("chat:message", lambda m: m["message"] == "did you get this?")) == 1
    async with chat_server.ctx.db.connection() as conn:
        count = await conn.fetchval(
            "SELECT count(*) FROM chat_messages WHERE session_id = $1 AND client_msg_id = $2",
            uuid.UUID(session_id),
            stored["client_msg_id"],
        )
    assert count == 1


# ------------------------------------------------------------------ offline, tickets, phone


async def test_no_agent_online_offers_a_message_that_becomes_a_live_ticket(
    chat_server, client, users, department, open_page, screenshot_dir
):
    secret = chat_server.settings.jwt_secret
    customer_id = uuid.uuid4()
    page = await open_widget(open_page, chat_server.url, secret, customer_id, department, viewport=PHONE)
    form = page.get_by_test_id("offline-form")
    await expect(form).to_be_visible()
    await expect(page.get_by_test_id("offline-reason")).to_contain_text("No one is available")
    await page.get_by_test_id("offline-submit").click()
    await expect(form.get_by_role("alert")).to_have_text("Please fill in the subject and the message.")
    await page.get_by_test_id("offline-subject").fill("Refund for BK-1042")
    await page.get_by_test_id("offline-message").fill("It has been two weeks.")
    await page.get_by_test_id("offline-submit").click()
    await expect(page.get_by_test_id("offline-done")).to_contain_text(re.compile(r"ticket TKT-\d+"))

    await page.get_by_test_id("tab-tickets").click()
    item = page.get_by_test_id("ticket-item").filter(has_text="Refund for BK-1042")
    await expect(item.get_by_test_id("ticket-status")).to_have_text("open")
    ticket_id = await item.get_attribute("data-id")
    async with aiohttp.ClientSession(chat_server.url) as http:
        async with http.patch(
            f"/api/v1/tickets/{ticket_id}/status",
            json={"status": "in_progress"},
            headers=users.headers(uuid.uuid4(), "supervisor"),
        ) as resp:
            assert resp.status == 200, await resp.text()
    await expect(item.get_by_test_id("ticket-status")).to_have_text("in progress")  # live, no reload


async def test_widget_fits_a_phone_and_is_keyboard_operable(chat_server, cast, department, open_page, screenshot_dir):
    ctx, secret = chat_server.ctx, chat_server.settings.jwt_secret
    agent = await cast.staff(await make_agent(ctx, department, name="Bea Agent"))
    page = await open_page(demo_url(chat_server.url, secret, uuid.uuid4(), department), viewport=PHONE)
    await page.get_by_test_id("launcher").focus()
    await page.keyboard.press("Enter")
    panel = page.get_by_test_id("panel")
    await expect(panel).to_be_visible()
    box = await panel.bounding_box()
    assert box["width"] == PHONE["width"] and box["height"] == PHONE["height"]  # full screen on a phone
    await expect(page.get_by_test_id("availability")).to_have_text("Our team is online.")
    await page.get_by_test_id("prechat-message").focus()
    await page.keyboard.type("Can I bring a dog?")
    await page.keyboard.press("Enter")
    session_id = (await agent.expect("chat:assigned"))["session"]["id"]
    await agent.ok(
        "chat:message", {"session_id": session_id, "client_msg_id": "d", "message": "Yes, small dogs are welcome."}
    )
    await expect(messages(page)).to_have_count(2)
    await screenshot(page, "widget-chat-phone", screenshot_dir)
    await page.keyboard.press("Escape")
    await expect(panel).to_be_hidden()
    await expect(page.get_by_test_id("launcher")).to_be_focused()

    # The host page's loud CSS (pink dashed buttons, serif) does not reach the shadow root.
    for part in ("launcher", "composer"):
        font = await page.get_by_test_id(part).evaluate("el => getComputedStyle(el).fontFamily")
        assert "Georgia" not in font, part
    await agent.ok("chat:message", {"session_id": session_id, "client_msg_id": "e", "message": "Anything else?"})
    await expect(page.get_by_test_id("unread-badge")).to_have_text("1")


async def test_messages_queued_while_the_chat_ends_are_marked_not_sent(chat_server, cast, department, open_page, proxy):
    page, agent, session_id = await chatting_through(proxy, chat_server, cast, department, open_page)
    proxy.cut()
    await expect(page.get_by_test_id("conn-status")).to_have_text("Reconnecting…")
    composer = page.get_by_test_id("composer")
    await composer.fill("are you still there?")
    await composer.press("Enter")
    await agent.ok("chat:end", {"session_id": session_id})
    proxy.restore()
    await expect(page.get_by_test_id("ended")).to_have_text("This chat has ended.")
    unsent = page.locator("[data-testid=message][data-state=failed]")
    await expect(unsent).to_have_text(re.compile("are you still there\\?.*Not sent: the chat ended"))
    await expect(unsent.get_by_test_id("retry")).to_have_count(0)
    assert agent.seen("chat:message", lambda m: m["message"] == "are you still there?") == []


async def test_a_refused_message_shows_not_sent_and_retry_sends_it_once(chat_server, cast, department, open_page):
    """The server's first answer to a message is an error (injected into the real websocket, the
    rest of the traffic passes untouched): the widget says so, and Retry delivers it once."""
    ctx, secret = chat_server.ctx, chat_server.settings.jwt_secret
    agent = await cast.staff(await make_agent(ctx, department))
    page = await open_page(demo_url(chat_server.url, secret, uuid.uuid4(), department))
    refused: list[str] = []

    def route(ws) -> None:
        server = ws.connect_to_server()
        server.on_message(ws.send)

        def from_page(frame) -> None:
            match = re.match(r'^42/customer,(\d+)\["chat:message"', frame) if isinstance(frame, str) else None
            if match and not refused:
                refused.append(frame)
                ws.send(
                    f'43/customer,{match[1]}[{{"ok":false,"error":{{"code":"internal",'
                    f'"message":"Something went wrong","details":{{}}}}}}]'
                )
                return
            server.send(frame)

        ws.on_message(from_page)

    await page.route_web_socket("**/ws/chat/**", route)
    await page.reload()  # a new socket, which the route sees
    await page.get_by_test_id("launcher").click()
    await start_chat(page, "first")
    session_id = (await agent.expect("chat:assigned"))["session"]["id"]
    composer = page.get_by_test_id("composer")
    await composer.fill("second try")
    await composer.press("Enter")
    failed = page.locator("[data-testid=message][data-state=failed]")
    await expect(failed.get_by_test_id("failed")).to_contain_text("Not sent: Something went wrong")
    assert agent.seen("chat:message", lambda m: m["message"] == "second try") == []
    await failed.get_by_test_id("retry").click()
    await assert_each_once(page, ["first", "second try"])
    await agent.expect("chat:message", lambda m: m["message"] == "second try")
    async with ctx.db.connection() as conn:
        assert (
            await conn.fetchval("SELECT count(*) FROM chat_messages WHERE session_id = $1", uuid.UUID(session_id)) == 2
        )
    assert len(refused) == 1


async def test_widget_passes_automated_accessibility_checks(chat_server, cast, department, open_page):
    ctx, secret = chat_server.ctx, chat_server.settings.jwt_secret
    agent = await cast.staff(await make_agent(ctx, department))
    page = await open_widget(open_page, chat_server.url, secret, uuid.uuid4(), department)
    await expect(page.get_by_test_id("availability")).to_have_text("Our team is online.")
    assert await accessibility_violations(page, ["#support-widget"]) == []  # pre-chat form
    await start_chat(page, "hello")
    session_id = (await agent.expect("chat:assigned"))["session"]["id"]
    await agent.ok("chat:message", {"session_id": session_id, "client_msg_id": "a", "message": "Hi there"})
    await expect(messages(page)).to_have_count(2)
    assert await accessibility_violations(page, ["#support-widget"]) == []  # in a chat
    await agent.ok("chat:end", {"session_id": session_id})
    await expect(page.get_by_test_id("rating")).to_be_visible()
    assert await accessibility_violations(page, ["#support-widget"]) == []  # the rating form


async def test_links_in_messages_open_the_help_article_page(chat_server, cast, department, open_page):
    ctx, secret = chat_server.ctx, chat_server.settings.jwt_secret
    article = await kb.create_article(
        ctx,
        ADMIN,
        RequestMeta(),
        {
            "title": "Pets in our stays",
            "content_format": "html",
            "category": "bookings",
            "tags": [],
            "is_published": True,
            "content": "<p>Small dogs are welcome.</p><ul><li>Tell the host</li><li>Bring a basket</li></ul>"
            '<p><a href="https://example.com/pets">Pet policy</a> <img src=x onerror="document.title=1"></p>',
        },
    )
    agent = await cast.staff(await make_agent(ctx, department))
    page = await open_widget(open_page, chat_server.url, secret, uuid.uuid4(), department)
    await start_chat(page, "Can I bring my dog?")
    session_id = (await agent.expect("chat:assigned"))["session"]["id"]
    await agent.ok(
        "chat:message",
        {
            "session_id": session_id,
            "client_msg_id": "l",
            "message": f"Yes! See /help/articles/{article['id']}, or https://example.com/faq.",
        },
    )
    links = messages(page).nth(1).locator("a")
    await expect(links).to_have_text([f"/help/articles/{article['id']}", "https://example.com/faq"])
    await expect(links.first).to_have_attribute("href", f"{chat_server.url}/help/articles/{article['id']}")
    await expect(links.first).to_have_attribute("rel", "noopener noreferrer")

    async with page.context.expect_page() as opened:
        await links.first.click()
    help_page = await opened.value
    shown = help_page.get_by_test_id("help-article")
    await expect(shown.locator("h1")).to_have_text("Pets in our stays")
    await expect(shown.locator("li")).to_have_text(["Tell the host", "Bring a basket"])
    await expect(shown.locator("a")).to_have_attribute("href", "https://example.com/pets")
    assert await shown.locator("img, script").count() == 0
    assert await help_page.title() == "Pets in our stays"


async def test_an_expired_token_is_renewed_through_get_token(chat_server, cast, department, open_page):
    """SupportWidget.init({token, getToken}) as a host site would call it: the first token has
    expired, so the socket is refused; the widget asks getToken once and carries on."""
    ctx, secret = chat_server.ctx, chat_server.settings.jwt_secret
    agent = await cast.staff(await make_agent(ctx, department))
    customer_id = uuid.uuid4()
    expired = issue_token(secret, customer_id, "customer", ttl=-60, name="Casey")
    fresh = token(secret, customer_id, "customer", "Casey")
    page = await open_page(f"{chat_server.url}/demo")  # the host page, no widget yet
    await page.evaluate(
        """([expired, fresh, department]) => new Promise((resolve, reject) => {
        window.tokenRequests = 0;
        const tag = document.createElement("script");
        tag.src = "/static/widget.js";
        tag.onload = () => { SupportWidget.init({ token: expired, department,
            getToken: async () => { window.tokenRequests += 1; return fresh; } }); resolve(); };
        tag.onerror = reject;
        document.head.appendChild(tag);
    })""",
        [expired, fresh, department],
    )
    await page.get_by_test_id("launcher").click()
    await expect(page.get_by_test_id("availability")).to_have_text("Our team is online.")
    await start_chat(page, "renewed")
    assert (await agent.expect("chat:assigned"))["session"]["customer_id"] == str(customer_id)
    assert await page.evaluate("window.tokenRequests") == 1
