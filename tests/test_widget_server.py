"""The server side of the widget's first impression (issue 14): chat:watch_availability and the
coalesced chat:availability pushes, availability with the department's hours, the widget's
department on chat:leave_message, and structured message parts on automatic messages (article
cards without the ones the pre-chat form showed; the ticket auto-reply's time as an ISO value,
and in words in the plain text)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import uuid
from collections.abc import Iterator

import pytest
from helpers import fetch

from app.auth import Principal, RequestMeta
from app.context import AppContext
from app.services import automation, chat, kb
from chat_support import ADMIN, make_agent, new_department

pytest_plugins = ["chat_fixtures"]


@pytest.fixture
def auto_responses(ctx: AppContext) -> Iterator[None]:
    """AUTO_RESPONSE_ENABLED for one test (the shared context is restored after it)."""
    before = ctx.settings
    ctx.settings = dataclasses.replace(before, auto_response_enabled=True)
    yield
    ctx.settings = before


def names(data: dict) -> dict[str, bool]:
    return {d["name"]: d["available"] for d in data["departments"]}


# ------------------------------------------------------------------ availability


async def test_watching_availability_answers_now_and_pushes_presence_changes(chat_server, cast):
    watched, other = new_department(), new_department()
    agent_id = await make_agent(chat_server.ctx, watched)
    watcher, bystander = await cast.customer(), await cast.customer()
    assert names(await watcher.ok("chat:watch_availability", {"departments": [watched]})) == {watched: False}

    agent = await cast.staff(agent_id)  # online: one coalesced push
    pushed = await watcher.expect("chat:availability", lambda p: names(p) == {watched: True})
    assert pushed["departments"][0]["online_agents"] == 1
    watcher.forget("chat:availability")  # pushes read the state when sent: from now on all say True
    await agent.ok("agent:status", {"status": "offline"})
    await watcher.expect("chat:availability", lambda p: names(p) == {watched: False})
    assert bystander.seen("chat:availability") == []  # only sockets that asked

    # Watching another list replaces the first: pushes about the old department stop.
    assert names(await watcher.ok("chat:watch_availability", {"departments": [other]})) == {other: False}
    earlier = len(watcher.seen("chat:availability"))
    await agent.ok("agent:status", {"status": "online"})
    other_agent = await cast.staff(await make_agent(chat_server.ctx, other))
    await watcher.expect("chat:availability", lambda p: names(p) == {other: True})
    assert all(watched not in names(p) for p in watcher.seen("chat:availability")[earlier:])
    await other_agent.disconnect()


async def test_watching_without_names_covers_the_public_departments_and_bad_names_are_refused(chat_server, cast):
    customer = await cast.customer()
    everything = await customer.ok("chat:watch_availability", {})
    assert everything["departments"] and all(
        "business_hours" in d and "time_zone" in d for d in everything["departments"]
    )
    failed = await customer.fails("chat:watch_availability", {"departments": ["x" * 200]}, "validation_failed")
    assert "departments" in failed["details"]
    await customer.fails("chat:watch_availability", {"departments": [f"d{n}" for n in range(21)]}, "validation_failed")


async def test_a_message_left_from_the_widget_lands_in_the_widgets_department(chat_server, cast):
    department = new_department()
    customer = await cast.customer()
    ticket = (
        await customer.ok("chat:leave_message", {"subject": "Lost key", "message": "Room 4", "department": department})
    )["ticket"]
    assert ticket["department"] == department


# ------------------------------------------------------------------ message parts


async def test_the_chat_greeting_carries_article_cards_without_the_ones_already_shown(
    chat_server, cast, auto_responses
):
    ctx = chat_server.ctx
    department = new_department()
    word = "zq" + "".join(chr(97 + int(c, 16) % 26) for c in uuid.uuid4().hex[:10])
    articles = [
        await kb.create_article(
            ctx,
            ADMIN,
            RequestMeta(),
            {
                "title": f"{word} guide {n}",
                "content": "Steps.",
                "category": department,
                "tags": [],
                "is_published": True,
            },
        )
        for n in range(3)
    ]
    shown = [str(articles[0]["id"]), str(articles[1]["id"])]
    customer = await cast.customer()
    started = await customer.ok(
        "chat:start",
        {"department": department, "message": f"How does {word} work?", "metadata": {"shown_articles": shown}},
    )
    synced = await customer.ok("chat:sync", {"session_id": started["session"]["id"], "after_seq": 0})
    (greeting,) = [m for m in synced["messages"] if m["sender_type"] == "system"]
    cards = [p for p in greeting["parts"] if p["type"] == "articles"]
    items = cards[0]["items"]  # other tests' articles may match the other words of the text too
    assert not {item["id"] for item in items} & set(shown)
    assert {
        "id": str(articles[2]["id"]),
        "title": f"{word} guide 2",
        "url": f"/help/articles/{articles[2]['id']}",
    } in items
    assert greeting["parts"][0]["type"] == "text" and "queue" in greeting["parts"][0]["text"]
    # Old clients read the plain text: the same content, the article as a path.
    assert f"- {word} guide 2 (/help/articles/{articles[2]['id']})" in greeting["message"]
    assert f"{word} guide 0" not in greeting["message"]
    user = (await customer.ok("chat:sync", {"session_id": started["session"]["id"], "after_seq": 0}))["messages"][0]
    assert "parts" not in user  # people's messages have none


async def test_the_ticket_auto_reply_carries_its_promise_as_a_time_and_in_words(chat_server, auto_responses):
    ctx = chat_server.ctx
    from app.services import tickets

    customer = Principal(uuid.uuid4(), "customer", "Casey", "casey@example.com")
    ticket = await tickets.create_ticket(
        ctx,
        customer,
        RequestMeta(),
        {"subject": "Invoice address", "description": "Please change it.", "category": new_department()},
    )
    page = await tickets.list_messages(ctx, customer, ticket["id"], 10, 0)
    (reply,) = [m for m in page["items"] if m["sender_type"] == "system"]
    due = ticket["first_response_due_at"]
    assert due is not None
    times = [p for p in reply["parts"] if p["type"] == "time"]
    assert [dt.datetime.fromisoformat(p["value"]) for p in times] == [due]
    words = automation.time_in_words(due)
    assert f"(by {words})." in reply["message"]
    assert re.search(r"\d{2}:\d{2}:\d{2}", reply["message"]) is None  # no ISO string for people to read
    assert re.fullmatch(r"[A-Z][a-z]+day \d{1,2} [A-Z][a-z]+ \d{4}, \d{2}:\d{2} UTC", words)


def test_times_in_words_name_their_zone():
    moment = dt.datetime(2026, 12, 8, 3, 4, 51, tzinfo=dt.timezone.utc)
    assert automation.time_in_words(moment) == "Tuesday 8 December 2026, 03:04 UTC"
    assert automation.time_in_words(moment, "Asia/Tokyo") == "Tuesday 8 December 2026, 12:04 Asia/Tokyo"
    assert automation.time_in_words(moment, "Not/AZone") == "Tuesday 8 December 2026, 03:04 UTC"


async def test_parts_are_stored_with_the_message(chat_server, auto_responses):
    ctx = chat_server.ctx
    started = await chat.start_chat(
        ctx, Principal(uuid.uuid4(), "customer"), RequestMeta(), {"department": new_department(), "message": "Hello"}
    )
    rows = await fetch(
        ctx,
        "SELECT sender_type, parts FROM chat_messages WHERE session_id = $1 ORDER BY seq",
        uuid.UUID(str(started["session"]["id"])),
    )
    assert [(r["sender_type"], r["parts"] is not None) for r in rows] == [("customer", False), ("system", True)]
