"""The agent console (static/console/) in Chromium against one in-process server: sign-in, the
live queue, chats with python-socketio customers (messages both ways, typing, read receipts,
notes, end, transfer, reconnect), tickets, the supervisor view, user text rendered as text, and
axe-core finding no serious WCAG 2 A/AA problem in any screen it photographs.

Every test works in its own department; customers are python-socketio peers (``cast``)."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Locator, Page, WebSocketRoute, expect

from app.auth import RequestMeta, issue_token
from app.clock import FrozenClock
from app.context import open_context
from app.services import departments, queue_alerts
from app.services.departments import default_display_name
from browser_support import DESKTOP, PHONE, UI_TIMEOUT_MS, CuttableProxy, accessibility_violations, screenshot, token
from browser_support import open_console as signed_in_console
from chat_support import ADMIN, Cast, ChatServer, Peer, chat_timers_paused, for_session, make_agent

pytest_plugins = ["chat_fixtures", "browser_fixtures"]

WAIT = re.compile(r"^\d+:\d\d$")


@pytest.fixture(autouse=True, scope="module")
def patient_expect() -> Iterator[None]:
    """Assertions wait as long as any UI change may take (browser_support.UI_TIMEOUT_MS)."""
    expect.set_options(timeout=UI_TIMEOUT_MS)
    yield
    expect.set_options(timeout=5_000)  # Playwright's default


# ------------------------------------------------------------------ helpers


async def open_console(
    open_page,
    server: ChatServer,
    user_id: uuid.UUID,
    *,
    role: str = "agent",
    name: str = "Ada Agent",
    viewport: dict = DESKTOP,
    base: str | None = None,
) -> Page:
    """The console signed in through the URL fragment, once its socket is connected."""
    return await signed_in_console(
        open_page, base or server.url, server.settings.jwt_secret, user_id, role=role, name=name, viewport=viewport
    )


async def start_chat(cast: Cast, department: str, subject: str, message: str | None = None) -> tuple[Peer, dict]:
    customer = await cast.customer()
    payload: dict[str, Any] = {"department": department, "subject": subject}
    if message:
        payload.update(message=message, client_msg_id=uuid.uuid4().hex)
    session = (await customer.ok("chat:start", payload))["session"]
    return customer, session


async def say(peer: Peer, session_id: str, text: str) -> dict:
    data = await peer.ok("chat:message", {"session_id": session_id, "message": text, "client_msg_id": uuid.uuid4().hex})
    return data["message"]


def queue_item(page: Page, session_id: str) -> Locator:
    return page.locator(f'[data-testid="queue-item"][data-session-id="{session_id}"]')


def chat_tab(page: Page, session_id: str) -> Locator:
    return page.locator(f'[data-testid="chat-tab"][data-session-id="{session_id}"]')


def chat_pane(page: Page, session_id: str) -> Locator:
    return page.locator(f'[data-testid="chat-pane"][data-session-id="{session_id}"]')


def texts(pane: Locator, text: str) -> Locator:
    """The message (or note) texts of a pane equal to ``text``."""
    return pane.get_by_test_id("message-text").filter(has_text=re.compile(f"^{re.escape(text)}$"))


async def accept(page: Page, session_id: str) -> Locator:
    await queue_item(page, session_id).get_by_test_id("accept").click()
    pane = chat_pane(page, session_id)
    await expect(pane).to_be_visible()
    return pane


async def rest(
    server: ChatServer, method: str, path: str, user_id: uuid.UUID, role: str, payload: Any = None, expected: int = 200
) -> Any:
    headers = {"Authorization": f"Bearer {issue_token(server.settings.jwt_secret, user_id, role)}"}
    async with aiohttp.ClientSession(server.url) as http:
        async with http.request(method, path, json=payload, headers=headers) as response:
            body = await response.json() if response.status != 204 else None
            assert response.status == expected, (method, path, response.status, body)
            return body


# ------------------------------------------------------------------ sign-in


async def test_bad_or_expired_token_shows_a_clear_sign_in_error(chat_server, open_page, department, screenshot_dir):
    secret = chat_server.settings.jwt_secret
    page = await open_page(f"{chat_server.url}/console#token=not-a-token")
    await expect(page.get_by_test_id("signin-error")).to_contain_text("not a valid access token")
    assert page.url == f"{chat_server.url}/console"  # the token left the address bar
    await expect(page.get_by_test_id("agent-name")).to_be_hidden()

    expired = issue_token(secret, uuid.uuid4(), "agent", ttl=-60)
    await page.get_by_test_id("token-input").fill(expired)
    await page.get_by_test_id("signin-submit").click()
    await expect(page.get_by_test_id("signin-error")).to_contain_text("invalid or has expired")

    await page.get_by_test_id("token-input").fill(issue_token("another-secret-" * 3, uuid.uuid4(), "agent"))
    await page.get_by_test_id("signin-submit").click()
    await expect(page.get_by_test_id("signin-error")).to_contain_text("invalid or has expired")

    await page.get_by_test_id("token-input").fill(issue_token(secret, uuid.uuid4(), "customer"))
    await page.get_by_test_id("signin-submit").click()
    await expect(page.get_by_test_id("signin-error")).to_contain_text("not for an agent")

    await page.get_by_test_id("token-input").fill(issue_token(secret, uuid.uuid4(), "agent"))
    await page.get_by_test_id("signin-submit").click()
    await expect(page.get_by_test_id("signin-error")).to_contain_text("no agent profile")
    await screenshot(page, "console-signin-desktop", screenshot_dir)
    assert await accessibility_violations(page) == []

    # a good pasted token signs in; the session survives a reload; signing out forgets it
    agent_id = await make_agent(chat_server.ctx, department, name="Grace Agent")
    await page.get_by_test_id("token-input").fill(token(secret, agent_id, "agent", "Grace Agent"))
    await page.get_by_test_id("signin-submit").click()
    await expect(page.get_by_test_id("agent-name")).to_have_text("Grace Agent")
    await expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "connected")
    await page.reload()
    await expect(page.get_by_test_id("agent-name")).to_have_text("Grace Agent")
    await page.get_by_test_id("signout").click()
    await expect(page.get_by_test_id("token-input")).to_be_visible()
    await expect(page.get_by_test_id("signin-error")).to_be_hidden()
    await page.reload()
    await expect(page.get_by_test_id("token-input")).to_be_visible()


# ------------------------------------------------------------------ queue


async def test_queue_updates_live_with_waiting_times(chat_server, cast, open_page, department, screenshot_dir):
    agent_id = await make_agent(chat_server.ctx, department, name="Ada Agent")
    page = await open_console(open_page, chat_server, agent_id)
    await expect(page.get_by_test_id("agent-name")).to_have_text("Ada Agent")
    await expect(page.get_by_test_id("agent-role")).to_have_text("Agent")
    await expect(page.get_by_test_id("presence")).to_have_value("offline")  # nobody is routed to us
    own = page.locator(f'[data-testid="queue-department"][data-department="{department}"]')
    await expect(own.get_by_test_id("queue-empty")).to_be_visible()

    _, first = await start_chat(cast, department, "Booking #1042 not confirmed", "Hello?")
    await expect(own.get_by_test_id("queue-item")).to_have_count(1)
    item = queue_item(page, first["id"])
    await expect(item.get_by_test_id("queue-subject")).to_have_text("Booking #1042 not confirmed")
    await expect(item.get_by_test_id("queue-preview")).to_have_text("“Hello?”")  # what they asked, before accepting
    waiting = item.get_by_test_id("waiting")
    await expect(waiting).to_have_text(WAIT)
    shown = await waiting.text_content()
    await expect(waiting).not_to_have_text(shown)  # it ticks
    await expect(waiting).to_have_text(WAIT)

    _, second = await start_chat(cast, department, "Change my check-in date")
    await expect(own.get_by_test_id("queue-item")).to_have_count(2)
    await expect(own.get_by_test_id("queue-count")).to_have_text("2")
    await expect(own.get_by_test_id("queue-subject")).to_have_text(
        ["Booking #1042 not confirmed", "Change my check-in date"]
    )  # serving order
    await expect(queue_item(page, second["id"]).get_by_test_id("waiting")).to_have_text(WAIT)
    await expect(queue_item(page, second["id"]).get_by_test_id("queue-preview")).to_be_hidden()  # no message yet
    await screenshot(page, "console-queue-desktop", screenshot_dir)
    assert await accessibility_violations(page) == []

    # at phone width one column: the queue, or the chats, never both
    phone = await open_console(open_page, chat_server, agent_id, viewport=PHONE)
    await expect(phone.get_by_test_id("queue-item")).to_have_count(2)
    await expect(phone.get_by_test_id("no-chat")).to_be_hidden()
    await screenshot(phone, "console-queue-phone", screenshot_dir)
    assert await accessibility_violations(phone) == []
    await phone.get_by_test_id("nav-chat").click()
    await expect(phone.get_by_test_id("no-chat")).to_be_visible()
    await expect(phone.get_by_test_id("queue")).to_be_hidden()
    await phone.get_by_test_id("nav-queue").click()
    await expect(phone.get_by_test_id("queue")).to_be_visible()


# ------------------------------------------------------------------ chatting


async def test_accept_then_chat_both_ways_with_typing_receipts_notes_and_end(
    chat_server, cast, open_page, department, screenshot_dir
):
    agent_id = await make_agent(chat_server.ctx, department, max_chats=3, name="Ada Agent")
    page = await open_console(open_page, chat_server, agent_id)
    await page.get_by_test_id("presence").select_option("away")
    await expect(page.get_by_test_id("presence")).to_have_attribute("data-status", "away")

    anna, chat_a = await start_chat(cast, department, "Refund for order 77", "Hello, I need a refund")
    pane_a = await accept(page, chat_a["id"])
    await anna.expect("chat:assigned", for_session(chat_a["id"]))
    await expect(texts(pane_a, "Hello, I need a refund")).to_have_count(1)
    await expect(queue_item(page, chat_a["id"])).to_have_count(0)
    # the agent saw the customer's message: a read receipt reaches the customer
    await anna.expect("chat:read", lambda d: d["reader_type"] == "agent" and d["up_to_seq"] >= 1)

    # typing, both ways
    await anna.ok("chat:typing", {"session_id": chat_a["id"], "typing": True})
    await expect(pane_a.get_by_test_id("typing")).to_be_visible()
    composer = pane_a.get_by_test_id("composer")
    await composer.press_sequentially("Hi Anna")
    await anna.expect("chat:typing", lambda d: d["sender_type"] == "agent" and d["typing"] is True)
    await anna.ok("chat:typing", {"session_id": chat_a["id"], "typing": False})
    await expect(pane_a.get_by_test_id("typing")).to_be_hidden()

    # Enter sends, Shift+Enter is a new line
    await composer.press("Shift+Enter")
    await composer.press_sequentially("looking into it now.")
    await composer.press("Enter")
    sent = await anna.expect("chat:message", lambda m: m["sender_type"] == "agent")
    assert sent["message"] == "Hi Anna\nlooking into it now."
    assert uuid.UUID(sent["client_msg_id"])  # generated by the console
    await expect(composer).to_have_value("")
    mine = pane_a.locator(f'[data-testid="message"][data-seq="{sent["seq"]}"]')
    await expect(mine.get_by_test_id("message-status")).to_have_text("Sent")
    await anna.ok("chat:read", {"session_id": chat_a["id"], "up_to_seq": sent["seq"]})
    await expect(mine.get_by_test_id("message-status")).to_have_text("Seen")

    # a second chat takes the focus; the first one counts what arrives meanwhile
    ben, chat_b = await start_chat(cast, department, "Late check-out", "Can I stay until 2pm?")
    pane_b = await accept(page, chat_b["id"])
    await expect(pane_a).to_be_hidden()
    await say(anna, chat_a["id"], "Are you still there?")
    await expect(chat_tab(page, chat_a["id"]).get_by_test_id("unread")).to_have_text("1")
    await expect(page.get_by_test_id("nav-unread")).to_have_text("1")
    await expect(page).to_have_title("(1) Agent console")
    await expect(page.get_by_test_id("toast").filter(has_text="Are you still there?")).to_be_visible()
    await expect(texts(pane_a, "Are you still there?")).to_have_count(1)
    await expect(chat_tab(page, chat_b["id"]).get_by_test_id("unread")).to_be_hidden()

    await chat_tab(page, chat_a["id"]).click()
    await expect(pane_a).to_be_visible()
    await expect(pane_b).to_be_hidden()
    await expect(chat_tab(page, chat_a["id"]).get_by_test_id("unread")).to_be_hidden()
    await expect(page).to_have_title("Agent console")
    await expect(texts(pane_a, "Are you still there?")).to_have_count(1)
    await expect(pane_a.get_by_test_id("message")).to_have_count(3)  # once each, in seq order
    seqs = [
        int(s) for s in await pane_a.get_by_test_id("message").evaluate_all("nodes => nodes.map(n => n.dataset.seq)")
    ]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3

    # an internal note: shown apart, never sent to the customer
    await pane_a.get_by_test_id("note-toggle").click()
    await expect(pane_a.get_by_test_id("note-toggle")).to_have_attribute("aria-pressed", "true")
    await composer.fill("VIP guest: refund approved by Sam")
    await pane_a.get_by_test_id("send").click()
    note = pane_a.get_by_test_id("note")
    await expect(note).to_have_count(1)
    await expect(note.get_by_test_id("message-text")).to_have_text("VIP guest: refund approved by Sam")
    await pane_a.get_by_test_id("note-toggle").click()
    await composer.fill("Your refund is on its way.")
    await composer.press("Enter")
    await anna.expect("chat:message", lambda m: m["message"] == "Your refund is on its way.")
    await anna.catch_up()
    assert anna.seen("chat:note") == []
    assert not anna.seen("chat:message", lambda m: "VIP" in m["message"])
    await screenshot(page, "console-chat-desktop", screenshot_dir)
    assert await accessibility_violations(page) == []

    # at phone width: the list of chats, then one chat on its own
    phone = await open_console(open_page, chat_server, agent_id, viewport=PHONE)
    await expect(phone.get_by_test_id("chat-tab")).to_have_count(2)
    await chat_tab(phone, chat_a["id"]).click()
    phone_pane = chat_pane(phone, chat_a["id"])
    await expect(phone_pane).to_be_visible()
    await expect(phone_pane.get_by_test_id("note")).to_have_count(1)
    await expect(texts(phone_pane, "Your refund is on its way.")).to_have_count(1)
    await expect(phone.get_by_test_id("chat-list")).to_be_hidden()
    await screenshot(phone, "console-chat-phone", screenshot_dir)
    assert await accessibility_violations(phone) == []

    # end the chat: it asks first, and "Keep chatting" changes nothing
    await pane_a.get_by_test_id("end-chat").click()
    await expect(pane_a.get_by_test_id("end-confirm-bar")).to_be_visible()
    await pane_a.get_by_test_id("end-cancel").click()
    await expect(pane_a.get_by_test_id("end-confirm-bar")).to_be_hidden()
    await expect(pane_a.get_by_test_id("composer")).to_be_enabled()
    await pane_a.get_by_test_id("end-chat").click()
    await pane_a.get_by_test_id("end-confirm").click()
    ended = await anna.expect("chat:ended", for_session(chat_a["id"]))
    assert ended["reason"] == "agent"
    await expect(pane_a.get_by_test_id("chat-ended")).to_be_visible()
    await expect(pane_a.get_by_test_id("composer")).to_be_disabled()
    # the ended notice comes after the conversation, not above it
    assert await pane_a.evaluate("""pane => {
        const list = pane.querySelector('[role=log]'), ended = pane.querySelector('[data-testid=chat-ended]');
        return Boolean(list.compareDocumentPosition(ended) & Node.DOCUMENT_POSITION_FOLLOWING);
    }""")
    # the customer's rating appears beside the ended chat at once
    await anna.ok("chat:rate", {"session_id": chat_a["id"], "rating": 4, "comment": "Fast refund, thanks"})
    await expect(pane_a.get_by_test_id("chat-rating").get_by_test_id("rating-value")).to_have_text(" Rated 4/5")
    await expect(pane_a.get_by_test_id("rating-comment")).to_have_text("Fast refund, thanks")
    # and in the agent's own profile panel
    await page.get_by_test_id("profile-toggle").click()
    await expect(page.get_by_test_id("my-rating").first).to_contain_text("Fast refund, thanks")
    await expect(page.get_by_test_id("my-rating-summary")).to_contain_text("4.0 ★ average from 1 rating")
    await page.keyboard.press("Escape")
    await expect(page.get_by_test_id("profile-panel")).to_be_hidden()
    await pane_a.get_by_test_id("close-chat").click()
    await expect(chat_tab(page, chat_a["id"])).to_have_count(0)
    await expect(pane_b).to_be_visible()
    await ben.catch_up()


async def test_transfer_moves_the_chat_to_another_agents_console(chat_server, cast, open_page, department):
    ctx = chat_server.ctx
    ada_id = await make_agent(ctx, department, name="Ada Agent")
    bob_id = await make_agent(ctx, department, name="Bob Agent")
    ada = await open_console(open_page, chat_server, ada_id)
    bob = await open_console(open_page, chat_server, bob_id, name="Bob Agent")
    await ada.get_by_test_id("presence").select_option("online")
    await expect(ada.get_by_test_id("presence")).to_have_attribute("data-status", "online")

    customer, session = await start_chat(cast, department, "Broken key card", "My key card stopped working")
    assert session["status"] == "active" and session["agent_id"] == str(ada_id)
    pane = chat_pane(ada, session["id"])  # auto-assigned: opens by itself
    await expect(texts(pane, "My key card stopped working")).to_have_count(1)
    await expect(ada.get_by_test_id("toast").filter(has_text="Broken key card")).to_be_visible()

    await bob.get_by_test_id("presence").select_option("online")
    await expect(bob.get_by_test_id("presence")).to_have_attribute("data-status", "online")
    await pane.get_by_test_id("transfer").click()
    option = pane.locator(f'[data-testid="transfer-agent"] option[value="{bob_id}"]')
    await expect(option).to_be_enabled()  # Bob is online with a free place
    await pane.get_by_test_id("transfer-agent").select_option(str(bob_id))
    await pane.get_by_test_id("transfer-agent-confirm").click()

    moved = await customer.expect("chat:transferred", for_session(session["id"]))
    assert moved["to_agent_id"] == str(bob_id)
    await expect(chat_tab(ada, session["id"])).to_have_count(0)
    await expect(ada.get_by_test_id("toast").filter(has_text="Transferred to Bob Agent")).to_be_visible()
    bob_pane = chat_pane(bob, session["id"])
    await expect(texts(bob_pane, "My key card stopped working")).to_have_count(1)
    await bob_pane.get_by_test_id("composer").fill("Bob here, a new card is on its way.")
    await bob_pane.get_by_test_id("send").click()
    reply = await customer.expect("chat:message", lambda m: m["sender_type"] == "agent")
    assert reply["sender_id"] == str(bob_id)

    # and back, this time to the department: its free agent (Ada) gets it
    await bob_pane.get_by_test_id("transfer").click()
    await bob_pane.get_by_test_id("transfer-department").fill(department)
    await bob_pane.get_by_test_id("transfer-department-confirm").click()
    await expect(chat_tab(bob, session["id"])).to_have_count(0)
    back = chat_pane(ada, session["id"])
    await expect(texts(back, "Bob here, a new card is on its way.")).to_have_count(1)
    await expect(ada.get_by_test_id("toast").filter(has_text="Chat transferred to you")).to_be_visible()


async def test_reconnect_resyncs_chats_and_resends_unacknowledged_messages(
    chat_server, cast, open_page, department, proxy: CuttableProxy
):
    agent_id = await make_agent(chat_server.ctx, department, name="Ada Agent")
    page = await open_console(open_page, chat_server, agent_id, base=proxy.url)
    customer, session = await start_chat(cast, department, "Wi-Fi password", "What is the Wi-Fi password?")
    pane = await accept(page, session["id"])
    await expect(texts(pane, "What is the Wi-Fi password?")).to_have_count(1)

    proxy.cut()
    await expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "reconnecting")
    await pane.get_by_test_id("composer").fill("It is on the card in your room.")
    await pane.get_by_test_id("composer").press("Enter")
    pending = pane.locator('[data-testid="message"][data-status="sending"]')
    await expect(pending.get_by_test_id("message-status")).to_have_text("Sending…")
    await say(customer, session["id"], "Found it, thanks!")  # while the console is away
    _, newcomer = await start_chat(cast, department, "Pool hours")  # its queue:updated is missed

    proxy.restore()
    await expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "connected")
    await expect(texts(pane, "Found it, thanks!")).to_have_count(1)
    mine = pane.get_by_test_id("message").filter(has_text="It is on the card in your room.")
    await expect(mine.get_by_test_id("message-status")).to_have_text(re.compile("Sent|Seen"))
    await expect(pane.get_by_test_id("message")).to_have_count(3)
    await expect(queue_item(page, newcomer["id"])).to_have_count(1)  # from the new queue:snapshot
    await customer.expect("chat:message", lambda m: m["message"] == "It is on the card in your room.")
    await customer.catch_up()
    assert len(customer.seen("chat:message", lambda m: m["message"] == "It is on the card in your room.")) == 1
    order = ["What is the Wi-Fi password?", "Found it, thanks!", "It is on the card in your room."]
    synced = await customer.ok("chat:sync", {"session_id": session["id"], "after_seq": 0})
    assert [m["message"] for m in synced["messages"]] == order
    await expect(pane.get_by_test_id("message-text")).to_have_text(order)


async def test_a_refused_message_shows_not_sent_and_retry_delivers_it_once(chat_server, cast, open_page, department):
    agent_id = await make_agent(chat_server.ctx, department, name="Ada Agent")
    customer, session = await start_chat(cast, department, "Extra towels", "Could I get extra towels?")
    page = await open_console(open_page, chat_server, agent_id)
    refused: list[str] = []

    async def refuse_first_message(route: WebSocketRoute) -> None:
        """The first chat:message is answered 'unavailable' here instead of reaching the server."""
        server = route.connect_to_server()

        def from_page(message: str | bytes) -> None:
            text = str(message)
            sent = re.match(r'^42/agent,(\d+)\["chat:message",', text)
            if sent and not refused:
                refused.append(json.loads(text[text.index("[") :])[1]["client_msg_id"])
                error = {"code": "unavailable", "message": "The server is busy; retry shortly", "details": {}}
                route.send(f"43/agent,{sent.group(1)}{json.dumps([{'ok': False, 'error': error}])}")
            else:
                server.send(message)

        route.on_message(from_page)

    await page.route_web_socket(re.compile(r"/ws/chat/"), refuse_first_message)
    await page.reload()
    await expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "connected")
    pane = await accept(page, session["id"])
    composer = pane.get_by_test_id("composer")
    await composer.fill("On their way!")
    await composer.press("Enter")
    failed = pane.locator('[data-testid="message"][data-status="failed"]')
    await expect(failed.get_by_test_id("message-status")).to_have_text("Not sent")
    for text in ("Anything else?", "Have a nice stay."):  # typed quickly: they keep their order
        await composer.fill(text)
        await composer.press("Enter")
    first = await customer.expect("chat:message", lambda m: m["message"] == "Anything else?")
    second = await customer.expect("chat:message", lambda m: m["message"] == "Have a nice stay.")
    assert second["seq"] == first["seq"] + 1

    await failed.get_by_test_id("retry").click()
    retried = await customer.expect("chat:message", lambda m: m["message"] == "On their way!")
    assert retried["client_msg_id"] == refused[0]  # the same id: the server keeps it once
    await expect(pane.get_by_test_id("message-text")).to_have_text(
        ["Could I get extra towels?", "Anything else?", "Have a nice stay.", "On their way!"]
    )
    await expect(pane.get_by_test_id("message-status")).to_have_text(["Sent", "Sent", "Sent"])
    await customer.catch_up()
    assert len(customer.seen("chat:message", lambda m: m["message"] == "On their way!")) == 1


async def test_accepting_a_chat_another_agent_took_says_so_and_drops_it(chat_server, cast, open_page, department):
    ctx = chat_server.ctx
    agent_id = await make_agent(ctx, department, name="Ada Agent")
    rival_id = await make_agent(ctx, department, name="Rita Rival")
    _, session = await start_chat(cast, department, "Lost luggage")
    page = await open_console(open_page, chat_server, agent_id)
    await expect(queue_item(page, session["id"])).to_have_count(1)

    async def without_queue_updates(route: WebSocketRoute) -> None:
        """This console misses queue:updated pushes, so it still offers a chat that is gone."""
        server = route.connect_to_server()
        server.on_message(lambda message: None if "queue:updated" in str(message) else route.send(message))

    await page.route_web_socket(re.compile(r"/ws/chat/"), without_queue_updates)
    await page.reload()
    await expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "connected")
    rival = await cast.staff(rival_id, status="away")
    await rival.ok("chat:accept", {"session_id": session["id"]})
    await expect(queue_item(page, session["id"])).to_have_count(1)  # stale on purpose

    await queue_item(page, session["id"]).get_by_test_id("accept").click()
    await expect(page.get_by_test_id("toast").filter(has_text="Another agent has this chat already")).to_be_visible()
    await expect(queue_item(page, session["id"])).to_have_count(0)
    await expect(page.get_by_test_id("chat-tab")).to_have_count(0)


async def test_canned_responses_and_kb_links_go_into_the_composer(chat_server, cast, open_page, department):
    agent_id = await make_agent(chat_server.ctx, department, name="Ada Agent")
    admin_id = uuid.uuid4()
    word = f"quokka{uuid.uuid4().hex[:6]}"
    canned = await rest(
        chat_server,
        "POST",
        "/api/v1/canned-responses",
        admin_id,
        "admin",
        expected=201,
        payload={
            "shortcut": f"/late-{department}",
            "title": "Late check-out",
            "body": "Late check-out until 2pm is free for members.",
            "department": department,
        },
    )
    article = await rest(
        chat_server,
        "POST",
        "/api/v1/kb/articles",
        admin_id,
        "admin",
        expected=201,
        payload={
            "title": f"Check-out times ({word})",
            "content": f"Standard check-out is at 11am. {word}",
            "category": department,
            "is_published": True,
        },
    )
    page = await open_console(open_page, chat_server, agent_id)
    _, session = await start_chat(cast, department, "Check-out")
    pane = await accept(page, session["id"])
    composer = pane.get_by_test_id("composer")

    picker = pane.get_by_test_id("canned")
    await expect(picker).to_be_visible()
    await composer.fill("Hello!")
    await picker.select_option(canned["id"])
    await expect(composer).to_have_value("Hello! Late check-out until 2pm is free for members.")

    await page.get_by_test_id("kb-query").fill(word)
    await page.get_by_test_id("kb-search").click()
    result = page.locator(f'[data-testid="kb-result"][data-article-id="{article["id"]}"]')
    await expect(result).to_contain_text(f"Check-out times ({word})")
    await result.get_by_test_id("kb-insert").click()
    await expect(composer).to_have_value(
        f"Hello! Late check-out until 2pm is free for members. Check-out times ({word}): "
        f"{chat_server.url}/help/articles/{article['id']}"
    )


# ------------------------------------------------------------------ user text stays text


async def test_html_from_users_is_rendered_as_text(chat_server, cast, open_page, department):
    agent_id = await make_agent(chat_server.ctx, department, name="Ada Agent")
    page = await open_console(open_page, chat_server, agent_id)
    dialogs: list[str] = []
    page.on("dialog", lambda d: dialogs.append(d.message))
    payload = "<img src=x onerror=alert(1)>"
    customer, session = await start_chat(cast, department, "<b>bold</b> subject", payload)
    await rest(
        chat_server,
        "POST",
        "/api/v1/tickets",
        customer.user_id,
        "customer",
        expected=201,
        payload={"subject": "<script>alert(2)</script>", "description": payload, "category": department},
    )

    item = queue_item(page, session["id"])
    await expect(item.get_by_test_id("queue-subject")).to_have_text("<b>bold</b> subject")
    pane = await accept(page, session["id"])
    await expect(texts(pane, payload)).to_have_count(1)
    # the customer's ticket shows beside the chat (readable while chatting with them), as text
    related = page.get_by_test_id("customer-ticket")
    await expect(related).to_have_count(1)
    await expect(related).to_contain_text("<script>alert(2)</script>")
    await expect(page.locator("#app img, #app b, #app script")).to_have_count(0)

    await related.click()
    await expect(page.get_by_test_id("ticket-subject")).to_have_text("<script>alert(2)</script>")
    await expect(page.get_by_test_id("ticket-description")).to_have_text(payload)
    await expect(page.locator("#app img, #app script")).to_have_count(0)
    assert dialogs == []


# ------------------------------------------------------------------ tickets


async def test_ticket_list_filters_and_ticket_view_with_live_updates(
    chat_server, cast, open_page, department, screenshot_dir
):
    agent_id = await make_agent(chat_server.ctx, department, name="Ada Agent")
    supervisor_id = uuid.uuid4()
    customer_id = uuid.uuid4()

    async def create(subject: str, priority: str) -> dict:
        return await rest(
            chat_server,
            "POST",
            "/api/v1/tickets",
            agent_id,
            "agent",
            expected=201,
            payload={
                "subject": subject,
                "description": f"{subject}: details from the guest.",
                "priority": priority,
                "category": department,
                "customer_id": str(customer_id),
                "customer_name": "Olga Guest",
            },
        )

    for n in range(20):
        await create(f"Routine request {n:02d}", "low")
    login = await create("Cannot log in to the app", "high")
    await create("Invoice copy needed", "medium")

    page = await open_console(open_page, chat_server, agent_id)
    await page.get_by_test_id("nav-tickets").click()
    rows = page.get_by_test_id("ticket-row")
    await expect(rows).to_have_count(20)
    await expect(page.get_by_test_id("tickets-range")).to_have_text("1–20 of 22")
    await page.get_by_test_id("tickets-next").click()
    await expect(rows).to_have_count(2)
    await expect(page.get_by_test_id("tickets-range")).to_have_text("21–22 of 22")
    await page.get_by_test_id("tickets-prev").click()
    await expect(rows).to_have_count(20)

    await page.get_by_test_id("ticket-filter-priority").select_option("high")
    await expect(rows).to_have_count(1)
    await expect(rows).to_contain_text("Cannot log in to the app")
    await page.get_by_test_id("ticket-filter-priority").select_option("")
    await expect(rows).to_have_count(20)
    await page.get_by_test_id("ticket-filter-q").fill("invoice")
    await expect(rows).to_have_count(1)
    await expect(rows).to_contain_text("Invoice copy needed")
    await page.get_by_test_id("ticket-filter-q").fill("")
    await expect(rows).to_have_count(20)
    await page.get_by_test_id("ticket-filter-category").fill("no-such-category")
    await expect(page.get_by_test_id("tickets-empty")).to_be_visible()
    await page.get_by_test_id("ticket-filter-category").fill(department)
    await page.get_by_test_id("ticket-filter-status").select_option("open")
    await expect(page.get_by_test_id("tickets-range")).to_have_text("1–20 of 22")

    await page.locator(f'[data-testid="ticket-row"][data-ticket-id="{login["id"]}"] button').click()
    view = page.get_by_test_id("ticket-view")
    await expect(view.get_by_test_id("ticket-subject")).to_have_text("Cannot log in to the app")
    await expect(view.get_by_test_id("ticket-status")).to_have_text("Open")
    await expect(view.get_by_test_id("ticket-priority")).to_have_text("High priority")
    await expect(view.get_by_test_id("ticket-escalation")).to_have_text("Escalation level 0")
    await expect(view.get_by_test_id("ticket-status-select").locator("option")).to_have_text(
        ["Open (current)", "In progress", "Pending", "Resolved", "Closed"]
    )

    await view.get_by_test_id("ticket-reply").fill("We have reset your password.")
    await view.get_by_test_id("ticket-send").click()
    message = view.get_by_test_id("ticket-message")
    await expect(message).to_have_count(1)
    await expect(message).to_have_attribute("data-internal", "false")
    await view.get_by_test_id("ticket-internal").check()
    await view.get_by_test_id("ticket-reply").fill("Auth logs show 5 failed attempts.")
    await view.get_by_test_id("ticket-send").click()
    note = view.locator('[data-testid="ticket-message"][data-internal="true"]')
    await expect(note).to_contain_text("Auth logs show 5 failed attempts.")
    await expect(note).to_contain_text("Internal note")

    await view.get_by_test_id("ticket-status-select").select_option("in_progress")
    await view.get_by_test_id("ticket-status-apply").click()
    await expect(view.get_by_test_id("ticket-status")).to_have_text("In progress")
    await expect(view.get_by_test_id("ticket-status-select").locator("option")).to_have_text(
        ["In progress (current)", "Pending", "Resolved", "Closed"]
    )
    await view.get_by_test_id("ticket-escalate").click()
    await expect(view.get_by_test_id("ticket-escalation")).to_have_text("Escalation level 1")
    await expect(view.get_by_test_id("ticket-priority")).to_have_text("Urgent priority")
    history = view.get_by_test_id("history-item")
    await expect(history.filter(has_text="Status: Open → In progress")).to_have_count(1)
    await expect(history.filter(has_text="Escalated to level 1")).to_have_count(1)
    await expect(history.filter(has_text="Internal note added")).to_have_count(1)

    # someone else changes the ticket over REST: the console follows without a reload
    await rest(
        chat_server,
        "PATCH",
        f"/api/v1/tickets/{login['id']}/status",
        supervisor_id,
        "supervisor",
        payload={"status": "pending", "reason": "waiting for the guest"},
    )
    await expect(view.get_by_test_id("ticket-status")).to_have_text("Pending")
    row = page.locator(f'[data-testid="ticket-row"][data-ticket-id="{login["id"]}"]')
    await expect(row.get_by_test_id("ticket-row-status")).to_have_text("Pending")
    await expect(history.filter(has_text="Status: In progress → Pending")).to_have_count(1)
    await rest(
        chat_server,
        "PUT",
        f"/api/v1/tickets/{login['id']}",
        supervisor_id,
        "supervisor",
        payload={"subject": "Cannot log in to the app (iOS)"},
    )
    await expect(view.get_by_test_id("ticket-subject")).to_have_text("Cannot log in to the app (iOS)")
    await screenshot(page, "console-ticket-desktop", screenshot_dir)
    assert await accessibility_violations(page) == []

    phone = await open_console(open_page, chat_server, agent_id, viewport=PHONE)
    await phone.get_by_test_id("nav-tickets").click()
    await phone.locator(f'[data-testid="ticket-row"][data-ticket-id="{login["id"]}"] button').click()
    await expect(phone.get_by_test_id("ticket-view").get_by_test_id("ticket-status")).to_have_text("Pending")
    await expect(phone.get_by_test_id("ticket-row").first).to_be_hidden()
    await screenshot(phone, "console-ticket-phone", screenshot_dir)
    assert await accessibility_violations(phone) == []
    await phone.get_by_test_id("ticket-back").click()
    await expect(phone.get_by_test_id("ticket-row").first).to_be_visible()


# ------------------------------------------------------------------ supervisors


async def test_supervisor_sees_agents_load_and_queues_change_live(
    chat_server, cast, open_page, department, screenshot_dir
):
    ctx = chat_server.ctx
    xavier_id = await make_agent(ctx, department, max_chats=2, name="Xavier Agent")
    yara_id = await make_agent(ctx, department, max_chats=3, name="Yara Agent")
    await departments.update_department(ctx, ADMIN, RequestMeta(), department, {"display_name": "Front Desk"})
    supervisor_id = uuid.uuid4()  # a supervisor with no agent profile
    page = await open_console(open_page, chat_server, supervisor_id, role="supervisor", name="Sam Supervisor")
    await expect(page.get_by_test_id("agent-role")).to_have_text("Supervisor")
    await page.get_by_test_id("nav-team").click()
    await page.get_by_test_id("team-department").select_option(department)
    xavier = page.locator(f'[data-testid="agent-row"][data-agent-id="{xavier_id}"]')
    await expect(xavier.get_by_test_id("team-agent-name")).to_have_text("Xavier Agent")
    await expect(xavier.get_by_test_id("agent-status")).to_have_text("Offline")
    await expect(xavier.get_by_test_id("agent-load")).to_have_text("0 / 2")
    await expect(page.get_by_test_id("agent-row")).to_have_count(2)

    await cast.staff(xavier_id)  # online
    await cast.staff(yara_id, status="away")
    await expect(xavier.get_by_test_id("agent-status")).to_have_text("Online")
    yara = page.locator(f'[data-testid="agent-row"][data-agent-id="{yara_id}"]')
    await expect(yara.get_by_test_id("agent-status")).to_have_text("Away")
    await start_chat(cast, department, "Parking")
    await expect(xavier.get_by_test_id("agent-load")).to_have_text("1 / 2")
    await start_chat(cast, department, "Breakfast hours")
    await expect(xavier.get_by_test_id("agent-load")).to_have_text("2 / 2")
    queue = page.locator(f'[data-testid="team-queue"][data-department="{department}"]')
    await expect(queue.get_by_test_id("team-queue-count")).to_have_text("0")
    await start_chat(cast, department, "Airport shuttle")  # Xavier is full: it waits
    await expect(queue.get_by_test_id("team-queue-count")).to_have_text("1")
    await expect(queue.locator(".team-queue-head strong")).to_have_text("Front Desk")  # display names
    await expect(xavier.locator(".col-dept")).to_have_text("Front Desk")
    await screenshot(page, "console-supervisor-desktop", screenshot_dir)
    assert await accessibility_violations(page) == []

    phone = await open_console(
        open_page, chat_server, supervisor_id, role="supervisor", name="Sam Supervisor", viewport=PHONE
    )
    await phone.get_by_test_id("nav-team").click()
    await phone.get_by_test_id("team-department").select_option(department)
    await expect(
        phone.locator(f'[data-testid="agent-row"][data-agent-id="{xavier_id}"]').get_by_test_id("agent-load")
    ).to_have_text("2 / 2")
    await screenshot(phone, "console-supervisor-phone", screenshot_dir)
    assert await accessibility_violations(phone) == []


# ------------------------------------------------------------------ ratings on tickets


async def test_a_ticket_row_opens_from_anywhere_and_shows_the_customers_rating(
    chat_server, cast, open_page, department
):
    agent_id = await make_agent(chat_server.ctx, department, name="Ada Agent")
    customer_id = uuid.uuid4()
    ticket = await rest(
        chat_server,
        "POST",
        "/api/v1/tickets",
        uuid.uuid4(),
        "admin",
        expected=201,
        payload={
            "subject": f"Broken lock {uuid.uuid4().hex[:6]}",
            "description": "The door",
            "category": department,
            "customer_id": str(customer_id),
            "agent_id": str(agent_id),
        },
    )
    await rest(
        chat_server,
        "PATCH",
        f"/api/v1/tickets/{ticket['id']}/status",
        agent_id,
        "agent",
        payload={"status": "resolved"},
    )
    page = await open_console(open_page, chat_server, agent_id)
    await page.get_by_test_id("nav-tickets").click()
    row = page.locator(f'[data-testid="ticket-row"][data-ticket-id="{ticket["id"]}"]')
    await row.get_by_test_id("ticket-row-status").click()  # not the link: the row itself
    await expect(page.get_by_test_id("ticket-subject")).to_have_text(ticket["subject"])
    await expect(page.get_by_test_id("ticket-rating")).to_be_hidden()
    await rest(
        chat_server,
        "POST",
        "/api/v1/feedback",
        customer_id,
        "customer",
        expected=201,
        payload={"ticket_id": ticket["id"], "rating": 2, "comment": "Took three days"},
    )
    rating = page.get_by_test_id("ticket-rating")  # live, from ticket:rated
    await expect(rating.get_by_test_id("rating-value")).to_have_text(" Rated 2/5")
    await expect(rating.get_by_test_id("rating-comment")).to_have_text("Took three days")
    await page.reload()  # and read back later
    await page.get_by_test_id("nav-tickets").click()
    await page.locator(f'[data-testid="ticket-row"][data-ticket-id="{ticket["id"]}"]').click()
    await expect(page.get_by_test_id("ticket-rating").get_by_test_id("rating-comment")).to_have_text("Took three days")


# ------------------------------------------------------------------ supervision


async def test_a_supervisor_watches_a_live_chat_adds_a_note_and_takes_it_over(
    chat_server, cast, open_page, department, screenshot_dir
):
    ctx = chat_server.ctx
    agent_id = await make_agent(ctx, department, name="Ada Agent")
    agent = await cast.staff(agent_id)
    sam_id = await make_agent(ctx, department, role="supervisor", name="Sam Supervisor")
    customer, session = await start_chat(cast, department, "Lost keys", "I lost my keys")
    sid = session["id"]
    await agent.expect("chat:assigned", for_session(sid))
    await departments.update_department(ctx, ADMIN, RequestMeta(), department, {"queue_alert_minutes": 0})

    page = await open_console(open_page, chat_server, sam_id, role="supervisor", name="Sam Supervisor")
    await page.get_by_test_id("presence").select_option("online")
    await page.get_by_test_id("nav-team").click()
    await page.get_by_test_id("team-department").select_option(department)
    ada = page.locator(f'[data-testid="agent-row"][data-agent-id="{agent_id}"]')
    await expect(ada.get_by_test_id("agent-chats-today")).to_have_text("1")  # today's figures
    await expect(ada.get_by_test_id("agent-rating-today")).to_have_text("—")
    live = page.locator(f'[data-testid="live-chat"][data-session-id="{sid}"]')
    await live.get_by_test_id("watch-chat").click()

    pane = chat_pane(page, sid)
    await expect(pane).to_be_visible()
    await expect(pane.get_by_test_id("watching-banner")).to_be_visible()
    await expect(texts(pane, "I lost my keys")).to_have_count(1)
    await expect(pane.get_by_test_id("end-chat")).to_be_hidden()
    await say(customer, sid, "They were in room 12")  # it updates live
    await expect(texts(pane, "They were in room 12")).to_have_count(1)
    await say(agent, sid, "Let me check with the front desk")
    await expect(texts(pane, "Let me check with the front desk")).to_have_count(1)

    composer = pane.get_by_test_id("composer")  # watching, it writes notes
    await composer.fill("Offer a new key card at once")
    await composer.press("Enter")
    await expect(pane.get_by_test_id("note").get_by_test_id("message-text")).to_have_text(
        "Offer a new key card at once"
    )
    seen_by_agent = await agent.expect("chat:note", for_session(sid))
    assert seen_by_agent["message"] == "Offer a new key card at once"
    await customer.catch_up()
    assert customer.seen("chat:note") == [] and not customer.seen("chat:message", lambda m: "key card" in m["message"])
    await screenshot(page, "console-supervisor-watching-desktop", screenshot_dir)
    assert await accessibility_violations(page) == []

    await pane.get_by_test_id("take-over").click()  # a transfer to themselves
    moved = await customer.expect("chat:transferred", for_session(sid))
    assert moved["to_agent_id"] == str(sam_id)
    await expect(pane.get_by_test_id("watching-banner")).to_be_hidden()
    await expect(pane.get_by_test_id("end-chat")).to_be_visible()
    await composer.fill("Sam here, a new card is on its way")
    await composer.press("Enter")
    reply = await customer.expect("chat:message", lambda m: m["sender_type"] == "agent" and "Sam here" in m["message"])
    assert reply["sender_id"] == str(sam_id)


async def test_a_queue_waiting_too_long_is_flagged_for_supervisors(chat_server, cast, open_page, department):
    ctx = chat_server.ctx
    await make_agent(ctx, department, max_chats=0)  # nobody can take the chat
    await departments.update_department(ctx, ADMIN, RequestMeta(), department, {"queue_alert_minutes": 1})
    async with chat_timers_paused(chat_server.settings):  # only this test's clock sweeps
        page = await open_console(open_page, chat_server, uuid.uuid4(), role="supervisor", name="Sam Supervisor")
        await page.get_by_test_id("nav-team").click()
        await page.get_by_test_id("team-department").select_option(department)
        queue = page.locator(f'[data-testid="team-queue"][data-department="{department}"]')
        await expect(queue.get_by_test_id("team-queue-alert")).to_have_count(0)
        await start_chat(cast, department, "Anyone there?", "Hello")
        await expect(queue.get_by_test_id("team-queue-count")).to_have_text("1")
        clock = FrozenClock(dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=2))  # two minutes on
        async with open_context(chat_server.settings, clock=clock) as later:
            later.live.emitter = ctx.live.emitter
            await queue_alerts.sweep(later)
        await expect(queue.get_by_test_id("team-queue-alert")).to_have_text("Over 1 min")
        label = f"Queue alert · {default_display_name(department)}"  # other tests' queues may alert too
        await expect(page.get_by_test_id("toast").filter(has_text=label)).to_be_visible()
        await page.reload()  # the flag is the server's, not the page's
        await page.get_by_test_id("nav-team").click()
        await expect(
            page.locator(f'[data-testid="team-queue"][data-department="{department}"]').get_by_test_id(
                "team-queue-alert"
            )
        ).to_be_visible()
