"""A whole chat with both people in browsers: the customer in the widget on the demo host page,
the agent in the console, each in their own browser context, through the real server."""

from __future__ import annotations

import uuid

from playwright.async_api import expect

from browser_support import demo_url, open_console, screenshot
from chat_support import make_agent

pytest_plugins = ["chat_fixtures", "browser_fixtures"]


async def test_customer_and_agent_chat_from_queue_to_rating_in_two_browsers(
    chat_server, cast, department, open_page, screenshot_dir
):
    ctx, secret = chat_server.ctx, chat_server.settings.jwt_secret
    # A colleague online at capacity keeps the department open, so the new chat waits in the queue.
    busy_agent = await cast.staff(await make_agent(ctx, department, max_chats=1))
    earlier = await cast.customer()
    await earlier.ok("chat:start", {"department": department, "message": "an earlier chat"})
    await busy_agent.expect("chat:assigned")

    agent_id = await make_agent(ctx, department, name="Bea Console", max_chats=2)
    console = await open_console(open_page, chat_server.url, secret, agent_id, name="Bea Console")
    await console.get_by_test_id("presence").select_option("away")  # picks chats by hand
    await expect(console.get_by_test_id("presence")).to_have_attribute("data-status", "away")

    customer_id = uuid.uuid4()
    widget = await open_page(demo_url(chat_server.url, secret, customer_id, department, name="Casey"))
    await widget.get_by_test_id("launcher").click()
    await expect(widget.get_by_test_id("availability")).to_have_text(
        "Our team is busy right now; you will be first in line."
    )
    await widget.get_by_test_id("prechat-subject").fill("Late check-in")
    await widget.get_by_test_id("prechat-message").fill("Can I check in after midnight?")
    await widget.get_by_test_id("start-chat").click()
    await expect(widget.get_by_test_id("queue-status")).to_contain_text("You are number 1 in the queue")

    waiting = console.get_by_test_id("queue-item")
    await expect(waiting).to_have_count(1)  # arrived live
    await expect(waiting.get_by_test_id("queue-subject")).to_contain_text("Late check-in")
    await expect(waiting).to_contain_text("Casey")  # the name from the customer's token
    await waiting.get_by_test_id("accept").click()
    pane = console.locator("[data-testid=chat-pane]:visible")
    await expect(pane.get_by_test_id("message-text")).to_have_text(["Can I check in after midnight?"])
    await expect(widget.get_by_test_id("agent-line")).to_have_text("You are chatting with Bea Console")

    await pane.get_by_test_id("composer").fill("Yes, the key box code will be sent to you.")
    await pane.get_by_test_id("send").click()
    await expect(widget.get_by_test_id("messages").get_by_test_id("message").nth(1)).to_contain_text("the key box code")
    composer = widget.get_by_test_id("composer")
    await composer.fill("Perfect, thank you!")
    await composer.press("Enter")
    await expect(pane.get_by_test_id("message-text")).to_have_text(
        ["Can I check in after midnight?", "Yes, the key box code will be sent to you.", "Perfect, thank you!"]
    )
    await expect(widget.get_by_test_id("messages").get_by_test_id("message").locator(".text")).to_have_text(
        ["Can I check in after midnight?", "Yes, the key box code will be sent to you.", "Perfect, thank you!"]
    )
    await screenshot(console, "console-chat-with-widget-desktop", screenshot_dir)

    await pane.get_by_test_id("end-chat").click()
    await pane.get_by_test_id("end-confirm").click()  # ending asks first
    await expect(widget.get_by_test_id("ended")).to_have_text("This chat has ended.")
    await widget.get_by_test_id("rating").locator("label[for=sw-star-5]").click()
    await widget.get_by_test_id("rating-submit").click()
    await expect(widget.get_by_test_id("rating-thanks")).to_be_visible()

    async with ctx.db.connection() as conn:
        session = await conn.fetchrow(
            "SELECT id, status, agent_id, satisfaction_rating FROM chat_sessions WHERE customer_id = $1", customer_id
        )
        rated = await conn.fetchrow("SELECT rating, agent_id FROM feedback WHERE chat_session_id = $1", session["id"])
        seqs = [
            r["seq"]
            for r in await conn.fetch("SELECT seq FROM chat_messages WHERE session_id = $1 ORDER BY seq", session["id"])
        ]
    assert session["status"] == "ended" and session["agent_id"] == agent_id
    assert (rated["rating"], rated["agent_id"]) == (5, agent_id)
    assert seqs == [1, 2, 3]


async def test_widget_and_console_on_different_replicas_chat_as_one_server(
    replicas, ctx, settings, department, open_page
):
    """Replica A serves the customer's widget, replica B the agent's console (as a load balancer
    without sticky sessions would): the chat is routed, delivered and ended across them."""
    a, b = replicas
    secret = settings.jwt_secret
    agent_id = await make_agent(ctx, department, name="Rita Replica")
    console = await open_console(open_page, b.url, secret, agent_id, name="Rita Replica")
    await console.get_by_test_id("presence").select_option("online")
    await expect(console.get_by_test_id("presence")).to_have_attribute("data-status", "online")

    widget = await open_page(demo_url(a.url, secret, uuid.uuid4(), department, name="Casey"))
    await widget.get_by_test_id("launcher").click()
    await expect(widget.get_by_test_id("availability")).to_have_text("Our team is online.")
    await widget.get_by_test_id("prechat-message").fill("Hello from replica A")
    await widget.get_by_test_id("start-chat").click()

    pane = console.locator("[data-testid=chat-pane]:visible")  # auto-assigned, opened by itself
    await expect(pane.get_by_test_id("message-text")).to_have_text(["Hello from replica A"])
    await expect(widget.get_by_test_id("agent-line")).to_have_text("You are chatting with Rita Replica")
    await pane.get_by_test_id("composer").fill("Hello from replica B")
    await pane.get_by_test_id("composer").press("Enter")
    widget_texts = widget.get_by_test_id("messages").get_by_test_id("message").locator(".text")
    await expect(widget_texts).to_have_text(["Hello from replica A", "Hello from replica B"])
    await widget.get_by_test_id("composer").fill("Both ways")
    await widget.get_by_test_id("composer").press("Enter")
    await expect(pane.get_by_test_id("message-text")).to_have_text(
        ["Hello from replica A", "Hello from replica B", "Both ways"]
    )
    await widget.get_by_test_id("end-chat").click()
    await widget.get_by_test_id("end-confirm").click()  # the widget asks first too
    await expect(pane.get_by_test_id("chat-ended")).to_be_visible()
    await expect(widget.get_by_test_id("rating")).to_be_visible()
