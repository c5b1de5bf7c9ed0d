"""Files in the widget's ticket conversations, and files that outlive a reload (issue 14).

A customer attaches an image and a PDF to a ticket reply (picker, paste and drop), the agent
answers with an image and a PDF over REST and the widget shows them live; a file too large and
a page disguised as a PNG are refused with the reason; a failed upload is retried. A file still
uploading at a reload, or uploaded but whose message was not acknowledged yet, is delivered once
after it, and its bytes leave IndexedDB."""

from __future__ import annotations

import asyncio
import base64
import re
import uuid

import aiohttp
from playwright.async_api import Page, Route, WebSocketRoute, expect

from browser_support import PHONE, UI_TIMEOUT_MS, accessibility_violations, demo_url, screenshot, token
from chat_support import make_agent
from test_attachments_browser import PDF, file, image_loaded, png
from test_widget_browser import chatting_through, messages

pytest_plugins = ["chat_fixtures", "browser_fixtures"]
LIVE = {"timeout": UI_TIMEOUT_MS}  # agents' replies come through the ticket event feed
UPLOADS = "**/api/v1/attachments"

# A pasted screenshot, as the clipboard hands it to the reply box.
PASTE = """(input, b64) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const data = new DataTransfer();
    data.items.add(new File([bytes], "pasted.png", { type: "image/png" }));
    input.dispatchEvent(new ClipboardEvent("paste", { clipboardData: data, bubbles: true, cancelable: true }));
}"""
DROP = """(zone, b64) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const data = new DataTransfer();
    data.items.add(new File([bytes], "dropped.png", { type: "image/png" }));
    zone.dispatchEvent(new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true }));
}"""
# Files the widget keeps in IndexedDB for its outboxes (without creating the database).
KEPT_FILES = """async () => {
    if (!(await indexedDB.databases()).some((d) => d.name === "support-widget-files")) return 0;
    return await new Promise((resolve) => {
        const open = indexedDB.open("support-widget-files");
        open.onsuccess = () => {
            const db = open.result;
            const count = db.transaction("files").objectStore("files").count();
            count.onsuccess = () => { db.close(); resolve(count.result); };
        };
    });
}"""
# wait_for_function polls a synchronous predicate: each poll reads the count the last one asked for.
NO_KEPT_FILES = f"""() => {{
    const last = window.__keptFiles;
    if (!last || last.done) {{
        const next = (window.__keptFiles = {{ done: false }});
        ({KEPT_FILES})().then((n) => Object.assign(next, {{ done: true, n }}));
    }}
    return !!last && last.done && last.n === 0;
}}"""
OUTBOXES = """() => Object.keys(sessionStorage).filter((k) => /:(ticket-)?outbox$/.test(k))
    .flatMap((k) => JSON.parse(sessionStorage.getItem(k)))"""


async def happened(event: asyncio.Event) -> None:
    """Waits for what a route handler saw, failing (not hanging) if it never comes."""
    await asyncio.wait_for(event.wait(), UI_TIMEOUT_MS / 1000)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Api:
    """REST calls as any user of the test's server."""

    def __init__(self, base: str, secret: str):
        self.base, self.secret = base, secret

    def headers(self, user_id: uuid.UUID, role: str) -> dict:
        return {"Authorization": f"Bearer {token(self.secret, user_id, role, role.title())}"}

    async def json(self, method: str, path: str, user_id: uuid.UUID, role: str, body=None, status: int = 200):
        async with aiohttp.ClientSession(self.base) as http:
            async with http.request(method, path, json=body, headers=self.headers(user_id, role)) as response:
                assert response.status == status, await response.text()
                return await response.json()

    async def upload(self, user_id: uuid.UUID, role: str, name: str, mime: str, data: bytes) -> dict:
        form = aiohttp.FormData()
        form.add_field("file", data, filename=name, content_type=mime)
        async with aiohttp.ClientSession(self.base) as http:
            async with http.post("/api/v1/attachments", data=form, headers=self.headers(user_id, role)) as response:
                assert response.status == 201, await response.text()
                return await response.json()

    async def content(self, url: str) -> bytes:
        async with aiohttp.ClientSession() as http:
            async with http.get(url if url.startswith("http") else self.base + url) as response:
                assert response.status == 200
                return await response.read()


def files_of(items: list[dict]) -> list[str]:
    return [a["name"] for m in items for a in (m.get("attachments") or [])]


async def no_kept_files(page: Page) -> None:
    """Waits until the widget's IndexedDB holds no file any more (it deletes after the ack)."""
    await page.wait_for_function(NO_KEPT_FILES)


async def test_image_and_pdf_go_both_ways_on_a_ticket_in_the_widget(
    chat_server, department, open_page, screenshot_dir, tmp_path
):
    api = Api(chat_server.url, chat_server.settings.jwt_secret)
    customer_id, supervisor = uuid.uuid4(), uuid.uuid4()
    agent_id = await make_agent(chat_server.ctx, department, name="Bea Agent")
    ticket = await api.json(
        "POST",
        "/api/v1/tickets",
        customer_id,
        "customer",
        {"subject": "Broken lock in room 12", "description": "The door does not lock.", "category": department},
        status=201,
    )
    tid, messages_path = ticket["id"], f"/api/v1/tickets/{ticket['id']}/messages"
    await api.json("PUT", f"/api/v1/tickets/{tid}", supervisor, "supervisor", {"agent_id": str(agent_id)})

    page = await open_page(demo_url(chat_server.url, api.secret, customer_id, department), viewport=PHONE)
    await page.get_by_test_id("launcher").click()
    await page.get_by_test_id("tab-tickets").click()
    await page.get_by_test_id("ticket-item").filter(has_text="Broken lock").click()
    view = page.get_by_test_id("ticket-view")
    texts = view.get_by_test_id("ticket-message")

    # Customer → agent: an image and a PDF from the picker, each its own reply
    await view.get_by_test_id("attach-input").set_input_files(
        [file("lock.png", "image/png", png("tomato")), file("booking.pdf", "application/pdf", PDF)]
    )
    await expect(texts).to_have_count(2)
    for i in range(2):
        await expect(texts.nth(i)).to_have_attribute("data-state", "sent")
    assert await image_loaded(texts.nth(0).get_by_test_id("attachment-image"))
    await expect(texts.nth(1).get_by_test_id("attachment-link")).to_have_text(re.compile(r"^booking\.pdf \(\d+ B\)$"))
    stored = (await api.json("GET", messages_path, agent_id, "agent"))["items"]
    assert files_of(stored) == ["lock.png", "booking.pdf"]
    pdf = next(a for m in stored for a in m["attachments"] if a["name"] == "booking.pdf")
    assert pdf["content_type"] == "application/pdf" and await api.content(pdf["url"]) == PDF

    # A pasted screenshot and a dropped image are replies too
    await view.get_by_test_id("ticket-reply").evaluate(PASTE, b64(png("gold", (60, 60))))
    await expect(texts).to_have_count(3)
    await view.get_by_test_id("ticket-messages").evaluate(DROP, b64(png("plum", (60, 60))))
    await expect(texts).to_have_count(4)
    await expect(texts.nth(3)).to_have_attribute("data-state", "sent")
    await expect(view.get_by_test_id("attachment-image")).to_have_count(3)

    # A failed upload stays in the reply list with Retry, and goes once retried
    await page.route(UPLOADS, lambda route: route.abort(), times=1)
    await view.get_by_test_id("attach-input").set_input_files([file("second-try.png", "image/png", png("teal"))])
    failed = view.get_by_test_id("failed")
    await expect(failed).to_contain_text("second-try.png: the upload failed")
    await failed.get_by_test_id("retry").click()
    await expect(failed).to_have_count(0)
    await expect(texts).to_have_count(5)
    await expect(texts.nth(4)).to_have_attribute("data-state", "sent")

    # Agent → customer over REST: an image and a PDF, shown live in the open ticket
    guide = await api.upload(agent_id, "agent", "guide.pdf", "application/pdf", PDF)
    photo = await api.upload(agent_id, "agent", "where-to-press.png", "image/png", png("seagreen"))
    await api.json(
        "POST",
        messages_path,
        agent_id,
        "agent",
        {"message": "Press here, and the guide:", "attachments": [photo["id"], guide["id"]]},
        status=201,
    )
    reply = texts.filter(has_text="Press here")
    await expect(reply).to_have_attribute("data-sender", "agent", **LIVE)
    assert await image_loaded(reply.get_by_test_id("attachment-image"))
    link = reply.get_by_test_id("attachment-link")
    await expect(link).to_contain_text("guide.pdf")
    href = await link.get_attribute("href")
    assert href.startswith(chat_server.url + "/api/v1/attachments/") and await api.content(href) == PDF

    # Refused files: too large, and an HTML page named .png; the reason shows, no Retry
    too_big = tmp_path / "huge-scan.pdf"
    too_big.write_bytes(b"%PDF-1.4\n" + b"a" * chat_server.settings.attachment_max_bytes)
    await view.get_by_test_id("attach-input").set_input_files(too_big)
    await expect(failed).to_have_count(1)
    await expect(failed).to_contain_text("huge-scan.pdf")
    await expect(failed).to_contain_text("at most 10 MB")
    disguised = b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>"
    await view.get_by_test_id("attach-input").set_input_files([file("cute-cat.png", "image/png", disguised)])
    await expect(failed).to_have_count(2)
    await expect(failed.nth(1)).to_contain_text("cute-cat.png")
    await expect(failed.nth(1)).to_contain_text("Only images (PNG, JPEG, GIF, WebP), PDF and plain text")
    await expect(failed.get_by_test_id("retry")).to_have_count(0)  # retrying cannot help
    await screenshot(page, "widget-ticket-files-phone", screenshot_dir)
    assert await accessibility_violations(page, ["#support-widget"]) == []

    # The refused files stay "not sent" after a reload and are never sent; nothing is kept for them
    await page.reload()
    await page.get_by_test_id("launcher").click()
    await page.get_by_test_id("tab-tickets").click()
    await page.get_by_test_id("ticket-item").filter(has_text="Broken lock").click()
    await expect(texts.filter(has_text="Press here")).to_have_count(1)
    await expect(failed).to_have_count(2)
    await no_kept_files(page)
    stored = (await api.json("GET", messages_path, agent_id, "agent"))["items"]
    assert files_of(stored) == [
        "lock.png",
        "booking.pdf",
        "pasted.png",
        "dropped.png",
        "second-try.png",
        "where-to-press.png",
        "guide.pdf",
    ]


async def test_a_file_uploading_at_a_reload_is_sent_once_after_it(chat_server, cast, department, open_page, proxy):
    page, agent, session_id = await chatting_through(proxy, chat_server, cast, department, open_page)
    held, holding = [], asyncio.Event()

    async def hold_first_upload(route: Route) -> None:
        if held:
            await route.continue_()
            return
        held.append(route)  # never answered: the reload cancels it
        holding.set()

    await page.route(UPLOADS, hold_first_upload)
    await page.get_by_test_id("attach-input").set_input_files([file("receipt.png", "image/png", png("navy"))])
    await happened(holding)
    await expect(messages(page).nth(1)).to_have_attribute("data-state", "sending")
    assert await page.evaluate(KEPT_FILES) == 1  # the bytes were kept before the upload began

    await page.reload()
    await page.get_by_test_id("launcher").click()
    await expect(messages(page).nth(1)).to_have_attribute("data-state", "sent")
    assert await image_loaded(messages(page).nth(1).get_by_test_id("attachment-image"))
    await agent.expect("chat:message", lambda m: files_of([m]) == ["receipt.png"])
    await no_kept_files(page)
    assert await page.evaluate(OUTBOXES) == []
    assert len(agent.seen("chat:message", lambda m: files_of([m]) == ["receipt.png"])) == 1
    await expect(messages(page)).to_have_count(2)
    async with chat_server.ctx.db.connection() as conn:
        sent = await conn.fetch(
            "SELECT attachments FROM chat_messages WHERE session_id = $1 AND attachments IS NOT NULL",
            uuid.UUID(session_id),
        )
    assert [a["name"] for row in sent for a in row["attachments"]] == ["receipt.png"]


async def test_a_file_sent_but_not_acknowledged_at_a_reload_is_kept_once(
    chat_server, cast, department, open_page, proxy
):
    page, agent, session_id = await chatting_through(proxy, chat_server, cast, department, open_page)
    dropping, dropped = True, asyncio.Event()

    def lose_the_ack(ws: WebSocketRoute) -> None:
        """The widget's socket; while ``dropping``, the ack of the message with the PDF is lost."""
        server = ws.connect_to_server()

        def to_page(message) -> None:
            if dropping and isinstance(message, str) and message.startswith("43/customer,") and "manual.pdf" in message:
                dropped.set()
                return
            ws.send(message)

        server.on_message(to_page)
        ws.on_message(lambda message: server.send(message))

    await page.route_web_socket(re.compile(r"/ws/chat"), lose_the_ack)
    await page.reload()  # the widget's socket now goes through the route
    await page.get_by_test_id("launcher").click()
    await expect(messages(page)).to_have_count(1)

    await page.get_by_test_id("attach-input").set_input_files([file("manual.pdf", "application/pdf", PDF)])
    await happened(dropped)
    await agent.expect("chat:message", lambda m: files_of([m]) == ["manual.pdf"])  # the server has it
    await expect(messages(page).nth(1)).to_have_attribute("data-state", "sending")
    [pending] = await page.evaluate(OUTBOXES)
    assert pending["files"][0]["id"]  # uploaded: only the message's answer is missing

    dropping = False
    await page.reload()
    await page.get_by_test_id("launcher").click()
    await expect(messages(page).nth(1)).to_have_attribute("data-state", "sent")
    await expect(messages(page).nth(1).get_by_test_id("attachment-link")).to_contain_text("manual.pdf")
    await expect(messages(page)).to_have_count(2)
    await no_kept_files(page)
    assert await page.evaluate(OUTBOXES) == []
    assert len(agent.seen("chat:message", lambda m: files_of([m]) == ["manual.pdf"])) == 1
    async with chat_server.ctx.db.connection() as conn:
        count = await conn.fetchval(
            "SELECT count(*) FROM chat_messages WHERE session_id = $1 AND client_msg_id = $2",
            uuid.UUID(session_id),
            pending["client_msg_id"],
        )
    assert count == 1


async def test_a_ticket_reply_file_uploading_at_a_reload_is_sent_once_after_it(chat_server, department, open_page):
    api = Api(chat_server.url, chat_server.settings.jwt_secret)
    customer_id = uuid.uuid4()
    ticket = await api.json(
        "POST",
        "/api/v1/tickets",
        customer_id,
        "customer",
        {"subject": "Invoice", "description": "The invoice is wrong.", "category": department},
        status=201,
    )
    page = await open_page(demo_url(chat_server.url, api.secret, customer_id, department))
    holding = asyncio.Event()

    async def hold(route: Route) -> None:
        holding.set()  # never answered: the reload cancels it

    await page.route(UPLOADS, hold, times=1)
    await page.get_by_test_id("launcher").click()
    await page.get_by_test_id("tab-tickets").click()
    await page.get_by_test_id("ticket-item").filter(has_text="Invoice").click()
    view = page.get_by_test_id("ticket-view")
    await view.get_by_test_id("attach-input").set_input_files([file("invoice.pdf", "application/pdf", PDF)])
    await happened(holding)
    await expect(view.get_by_test_id("upload-progress")).to_have_count(1)

    await page.reload()  # the reply is sent after it, with nobody looking at the ticket
    messages_path = f"/api/v1/tickets/{ticket['id']}/messages"
    await page.wait_for_function(f"() => ({OUTBOXES})().length === 0")
    await no_kept_files(page)
    stored = (await api.json("GET", messages_path, customer_id, "customer"))["items"]
    assert files_of(stored) == ["invoice.pdf"]
    await page.get_by_test_id("launcher").click()
    await page.get_by_test_id("tab-tickets").click()
    await page.get_by_test_id("ticket-item").filter(has_text="Invoice").click()
    await expect(view.get_by_test_id("attachment-link")).to_have_count(1)
    await expect(view.get_by_test_id("ticket-message")).to_have_attribute("data-state", "sent")

    # The server stores the next reply but its answer is lost: the resend after the reload (same
    # client_msg_id) gets the stored reply back, and the ticket has it once.
    stored_once = asyncio.Event()

    async def lose_the_answer(route: Route) -> None:
        await route.fetch()  # reaches the server; the page never hears back
        stored_once.set()

    await page.route(f"**{messages_path}", lose_the_answer, times=1)
    await view.get_by_test_id("attach-input").set_input_files([file("photo.png", "image/png", png("olive"))])
    await happened(stored_once)
    assert files_of((await api.json("GET", messages_path, customer_id, "customer"))["items"]) == [
        "invoice.pdf",
        "photo.png",
    ]
    await page.reload()
    await page.wait_for_function(f"() => ({OUTBOXES})().length === 0")
    await no_kept_files(page)
    stored = (await api.json("GET", messages_path, customer_id, "customer"))["items"]
    assert files_of(stored) == ["invoice.pdf", "photo.png"]
    assert len({m["client_msg_id"] for m in stored}) == 2
