"""Files in a real browser: an image and a PDF sent both ways between the widget (on the demo host
page) and the console, a pasted/dropped image, and files the server refuses (too large, not an
allowed type) shown clearly in the widget, at phone width too."""

from __future__ import annotations

import asyncio
import base64
import re
import io
import uuid

import aiohttp
from PIL import Image
from playwright.async_api import Page, expect

from browser_support import PHONE, UI_TIMEOUT_MS, accessibility_violations, demo_url, open_console, screenshot, token
from chat_support import make_agent

pytest_plugins = ["chat_fixtures", "browser_fixtures"]

PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)

# Drops a PNG (base64) on the element, as dragging a file from the desktop would.
DROP = """(zone, b64) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const transfer = new DataTransfer();
    transfer.items.add(new File([bytes], "dropped.png", { type: "image/png" }));
    zone.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
}"""


def png(color: str, size: tuple[int, int] = (480, 320)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def file(name: str, mime: str, data: bytes) -> dict:
    return {"name": name, "mimeType": mime, "buffer": data}


async def image_loaded(link) -> bool:
    """The thumbnail inside an attachment link really loaded (the signed link worked)."""
    img = link.locator("img")
    await expect(img).to_be_visible()
    return await img.evaluate("(img) => img.decode().then(() => img.naturalWidth > 0, () => false)")


async def open_chat(open_page, chat_server, department: str, viewport: dict | None = None) -> tuple[Page, Page]:
    """The console of an online agent and a customer's widget in a chat with them."""
    secret = chat_server.settings.jwt_secret
    agent_id = await make_agent(chat_server.ctx, department, name="Fay Files")
    console = await open_console(open_page, chat_server.url, secret, agent_id, name="Fay Files")
    await console.get_by_test_id("presence").select_option("online")
    await expect(console.get_by_test_id("presence")).to_have_attribute("data-status", "online")
    widget = await open_page(
        demo_url(chat_server.url, secret, uuid.uuid4(), department, name="Casey"),
        **({"viewport": viewport} if viewport else {}),
    )
    await widget.get_by_test_id("launcher").click()
    await widget.get_by_test_id("prechat-message").fill("I have a screenshot")
    await widget.get_by_test_id("start-chat").click()
    await expect(widget.get_by_test_id("agent-line")).to_have_text("You are chatting with Fay Files")
    return console, widget


async def test_image_and_pdf_go_both_ways_between_widget_and_console(
    chat_server, department, open_page, screenshot_dir
):
    console, widget = await open_chat(open_page, chat_server, department)
    pane = console.locator("[data-testid=chat-pane]:visible")
    await expect(pane.get_by_test_id("message-text")).to_have_text(["I have a screenshot"])

    # widget → console: an image and a PDF through the attach button's picker
    await widget.get_by_test_id("attach-input").set_input_files(
        [file("booking-error.png", "image/png", png("tomato")), file("invoice.pdf", "application/pdf", PDF)]
    )
    widget_messages = widget.get_by_test_id("messages").get_by_test_id("message")
    await expect(widget_messages).to_have_count(3)
    await expect(widget_messages.nth(2)).to_have_attribute("data-state", "sent")
    image = pane.get_by_test_id("attachment-image")
    await expect(image).to_have_count(1)
    assert await image_loaded(image)
    await expect(image.locator("img")).to_have_attribute("alt", "booking-error.png")
    await expect(pane.get_by_test_id("attachment-link")).to_have_text([re.compile(r"^invoice\.pdf \(\d+ B\)$")])
    assert await image_loaded(widget.get_by_test_id("attachment-image"))

    # The full image and the PDF open from their links (signed, no token needed)
    full = await console.request.get(chat_server.url + await image.get_attribute("href"))
    assert full.ok and full.headers["content-type"] == "image/png"
    pdf_href = await pane.get_by_test_id("attachment-link").get_attribute("href")
    pdf = await console.request.get(chat_server.url + pdf_href)
    assert pdf.ok and await pdf.body() == PDF
    assert pdf.headers["content-disposition"].startswith("attachment;")

    # console → widget: an image and a PDF from the chat composer
    await pane.get_by_test_id("attach-input").set_input_files(
        [file("where-to-click.png", "image/png", png("seagreen")), file("guide.pdf", "application/pdf", PDF)]
    )
    await expect(widget_messages).to_have_count(5)
    agent_image = widget_messages.nth(3).get_by_test_id("attachment-image")
    assert await image_loaded(agent_image)
    await expect(widget_messages.nth(4).get_by_test_id("attachment-link")).to_contain_text("guide.pdf")
    href = await widget_messages.nth(4).get_by_test_id("attachment-link").get_attribute("href")
    assert href.startswith(chat_server.url + "/api/v1/attachments/")
    await expect(pane.get_by_test_id("attachment-image")).to_have_count(2)
    await screenshot(widget, "widget-attachments-desktop", screenshot_dir)
    await screenshot(console, "console-attachments-desktop", screenshot_dir)
    assert await accessibility_violations(widget, ["#support-widget"]) == []

    # An image dropped on the conversation is sent too
    await widget.get_by_test_id("messages").evaluate(DROP, base64.b64encode(png("gold", (60, 60))).decode())
    await expect(pane.get_by_test_id("attachment-image")).to_have_count(3)
    await pane.locator(".messages").evaluate(
        DROP, base64.b64encode(png("plum", (60, 60))).decode()
    )  # and in the console
    await expect(widget.get_by_test_id("attachment-image")).to_have_count(4)


async def test_refused_files_are_explained_in_the_widget_at_phone_width(
    chat_server, department, open_page, screenshot_dir, tmp_path
):
    console, widget = await open_chat(open_page, chat_server, department, viewport=PHONE)
    too_big = tmp_path / "huge-log.txt"
    too_big.write_bytes(b"a" * (chat_server.settings.attachment_max_bytes + 1))
    await widget.get_by_test_id("attach-input").set_input_files(too_big)
    failed = widget.get_by_test_id("failed")
    await expect(failed).to_have_count(1)
    await expect(failed).to_contain_text("huge-log.txt")
    await expect(failed).to_contain_text("at most 10 MB")
    await expect(failed.get_by_test_id("retry")).to_have_count(0)  # retrying cannot help

    disguised = b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>"
    await widget.get_by_test_id("attach-input").set_input_files([file("cute-cat.png", "image/png", disguised)])
    await expect(failed).to_have_count(2)
    await expect(failed.nth(1)).to_contain_text("cute-cat.png")
    await expect(failed.nth(1)).to_contain_text("Only images (PNG, JPEG, GIF, WebP), PDF and plain text")
    await screenshot(widget, "widget-attachment-refused-phone", screenshot_dir)
    assert await accessibility_violations(widget, ["#support-widget"]) == []

    # The refused files never reached the agent; a good one after them still goes through.
    await widget.get_by_test_id("attach-input").set_input_files([file("fine.png", "image/png", png("navy"))])
    pane = console.locator("[data-testid=chat-pane]:visible")
    await expect(pane.get_by_test_id("attachment-image")).to_have_count(1)
    await expect(pane.get_by_test_id("message")).to_have_count(2)

    # An upload the network lost is not refused: Retry sends it through the same outbox, once.
    await widget.route("**/api/v1/attachments", lambda route: route.abort(), times=1)
    await widget.get_by_test_id("attach-input").set_input_files([file("again.png", "image/png", png("teal"))])
    await expect(failed.nth(2)).to_contain_text("again.png: the upload failed")
    await failed.nth(2).get_by_test_id("retry").click()
    await expect(pane.get_by_test_id("attachment-image")).to_have_count(2)
    await expect(failed).to_have_count(2)
    await expect(pane.get_by_test_id("message")).to_have_count(3)


async def test_console_shows_and_sends_files_on_a_ticket(chat_server, department, open_page):
    secret = chat_server.settings.jwt_secret
    agent_id = await make_agent(chat_server.ctx, department, name="Fay Files")
    customer_id, admin_id = uuid.uuid4(), uuid.uuid4()
    customer = {"Authorization": f"Bearer {token(secret, customer_id, 'customer', 'Casey')}"}
    admin = {"Authorization": f"Bearer {token(secret, admin_id, 'admin', 'Root')}"}
    async with aiohttp.ClientSession(chat_server.url) as http:
        async with http.post(
            "/api/v1/tickets",
            headers=admin,
            json={
                "subject": "Broken lock",
                "description": "See the photo",
                "category": department,
                "customer_id": str(customer_id),
                "agent_id": str(agent_id),
            },
        ) as response:
            ticket = await response.json()
        form = aiohttp.FormData()
        form.add_field("file", png("purple"), filename="lock.png", content_type="image/png")
        async with http.post("/api/v1/attachments", headers=customer, data=form) as response:
            photo = await response.json()
        async with http.post(
            f"/api/v1/tickets/{ticket['id']}/messages",
            headers=customer,
            json={"message": "Here it is", "attachments": [photo["id"]]},
        ) as response:
            assert response.status == 201

        page = await open_console(open_page, chat_server.url, secret, agent_id, name="Fay Files")
        await page.get_by_test_id("nav-tickets").click()
        await page.locator(f'[data-testid="ticket-row"][data-ticket-id="{ticket["id"]}"]').click()
        view = page.get_by_test_id("ticket-view")
        assert await image_loaded(view.get_by_test_id("attachment-image"))
        uploading, held = asyncio.Event(), []

        async def hold(route) -> None:
            held.append(route)
            uploading.set()

        await page.route("**/api/v1/attachments", hold, times=1)
        await view.get_by_test_id("attach-input").set_input_files([file("manual.pdf", "application/pdf", PDF)])
        await asyncio.wait_for(uploading.wait(), UI_TIMEOUT_MS / 1000)
        await expect(view.get_by_test_id("reply-file")).to_contain_text("manual.pdf")
        await view.get_by_test_id("ticket-send").click()  # files alone are a reply, even one still uploading
        await held[0].continue_()
        await expect(view.get_by_test_id("attachment-link")).to_contain_text("manual.pdf")
        async with http.get(f"/api/v1/tickets/{ticket['id']}/messages", headers=customer) as response:
            items = (await response.json())["items"]
        sent = [a for m in items for a in (m["attachments"] or []) if a["name"] == "manual.pdf"]
        assert len(sent) == 1 and sent[0]["content_type"] == "application/pdf"
        async with http.get(sent[0]["url"]) as response:
            assert response.status == 200 and await response.read() == PDF
