"""What the widget and console need from the server besides the chat events: the static files and
pages, chat availability per department, related KB articles, and same-origin sockets."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import re
import uuid

import pytest

from app.auth import RequestMeta, issue_token
from app.services import kb
from app.services.departments import default_display_name, within_business_hours
from chat_support import ADMIN, make_agent, new_department
from sockets.server import origin_check

pytest_plugins = ["chat_fixtures"]
AVAILABILITY = "/api/v1/chat/availability"


# ------------------------------------------------------------------ static files and pages


async def test_widget_and_vendored_client_are_served_with_types_and_caching(client):
    widget = await client.get("/static/widget.js")
    assert widget.status == 200
    assert widget.headers["Content-Type"].startswith("text/javascript")
    assert widget.headers["X-Content-Type-Options"] == "nosniff"
    assert widget.headers["Cache-Control"] == "public, max-age=300"
    assert "SupportWidget" in await widget.text()
    vendored = await client.get("/static/vendor/socket.io.min.js")
    assert vendored.status == 200 and vendored.headers["Cache-Control"] == "public, max-age=86400"
    licence = await client.get("/static/vendor/socket.io.LICENSE")
    assert licence.status == 200 and "MIT" in await licence.text()


@pytest.mark.parametrize(
    "path",
    [
        "/static/../app/config.py",
        "/static/%2e%2e/app/config.py",
        "/static/README.md",
        "/static/.hidden.js",
        "/static/nope.js",
        "/static/console",
        "/static/console/index.html",
    ],
)
async def test_nothing_outside_the_listed_static_files_is_served(client, path):
    response = await client.get(path)
    assert response.status == 404, path
    assert response.headers["Content-Type"].startswith("application/problem+json")


@pytest.mark.parametrize("path", ["/console", "/demo"])
async def test_pages_carry_a_strict_content_security_policy(client, path):
    response = await client.get(path)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/html")
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "<script>" not in await response.text()  # no inline script for the policy to allow


# ------------------------------------------------------------------ availability


async def test_availability_counts_online_agents_free_places_and_queue(chat_server, cast, client, users):
    ctx = chat_server.ctx
    department = new_department()
    caller = users.headers(uuid.uuid4(), "customer")
    response = await client.get(AVAILABILITY, params={"department": department}, headers=caller)
    assert response.status == 200
    assert (await response.json())["departments"] == [
        {
            "name": department,
            "display_name": default_display_name(department),
            "description": None,
            "offline_message": None,
            "business_hours": None,
            "time_zone": None,  # no row yet: always open
            "online_agents": 0,
            "free_places": 0,
            "queued": 0,
            "open_now": True,
            "available": False,
        }
    ]

    await cast.staff(await make_agent(ctx, department, max_chats=1))
    await cast.staff(await make_agent(ctx, department, max_chats=3), status="away")  # connected, not taking chats
    customer = await cast.customer()
    await customer.ok("chat:start", {"department": department, "message": "hi"})
    second = await cast.customer()
    await second.ok("chat:start", {"department": department, "message": "me too"})
    body = await (await client.get(AVAILABILITY, params={"department": department}, headers=caller)).json()
    assert body["departments"][0] | {"name": None} == {
        "name": None,
        "display_name": default_display_name(department),
        "description": None,
        "offline_message": None,
        "business_hours": None,
        "time_zone": "UTC",  # created on first use
        "online_agents": 1,
        "free_places": 0,
        "queued": 1,
        "open_now": True,
        "available": True,
    }


async def test_availability_lists_configured_departments_with_their_offline_message(client, users, ctx):
    name = new_department()
    async with ctx.db.connection() as conn:
        await ctx.db.q.upsert_department(
            conn,
            name=name,
            description="Billing questions",
            categories=[],
            offline_message="We answer billing mail within a day.",
        )
    body = await (await client.get(AVAILABILITY, headers=users.headers(uuid.uuid4(), "customer"))).json()
    mine = [d for d in body["departments"] if d["name"] == name]
    assert mine == [
        {
            "name": name,
            "display_name": default_display_name(name),
            "description": "Billing questions",
            "offline_message": "We answer billing mail within a day.",
            "business_hours": None,
            "time_zone": "UTC",
            "online_agents": 0,
            "free_places": 0,
            "queued": 0,
            "open_now": True,
            "available": False,
        }
    ]


async def test_availability_needs_a_token_and_valid_input(client, users):
    assert (await client.get(AVAILABILITY)).status == 401
    response = await client.get(
        AVAILABILITY, params={"department": "x" * 101}, headers=users.headers(uuid.uuid4(), "customer")
    )
    assert response.status == 422
    assert "department" in (await response.json())["errors"]


# ------------------------------------------------------------------ related articles


async def test_related_articles_match_a_whole_sentence_and_skip_drafts(client, ctx):
    word = f"yak{uuid.uuid4().hex[:6]}"
    published = await kb.create_article(
        ctx,
        ADMIN,
        RequestMeta(),
        {
            "title": f"Changing {word} dates",
            "content": "Use the dates form.",
            "category": "bookings",
            "tags": [],
            "is_published": True,
        },
    )
    await kb.create_article(
        ctx,
        ADMIN,
        RequestMeta(),
        {
            "title": f"Draft about {word}",
            "content": "Not yet.",
            "category": "bookings",
            "tags": [],
            "is_published": False,
        },
    )
    response = await client.get("/api/v1/kb/related", params={"text": f"hello, can I move my {word} trip?"})
    assert response.status == 200  # public, like search
    items = (await response.json())["items"]
    assert items[0] == {"id": str(published["id"]), "title": published["title"], "category": "bookings"}
    assert not any(word in item["title"] for item in items[1:])  # the draft never shows


@pytest.mark.parametrize("params", [{}, {"text": "a"}, {"text": "ok ok", "limit": "11"}, {"text": "x" * 1001}])
async def test_related_articles_refuse_bad_input(client, params):
    response = await client.get("/api/v1/kb/related", params=params)
    assert response.status == 422


# ------------------------------------------------------------------ origins


def test_sockets_admit_configured_origins_and_their_own(settings):
    check = origin_check(dataclasses.replace(settings, cors_allowed_origins=("https://shop.example",)))
    environ = {"HTTP_HOST": "support.example:8088", "wsgi.url_scheme": "https"}
    assert check("https://shop.example", environ)
    assert check("https://support.example:8088", environ)  # the console, same origin
    assert not check("https://evil.example", environ)
    assert not check(None, environ)
    proxied = {**environ, "HTTP_X_FORWARDED_HOST": "help.example", "HTTP_X_FORWARDED_PROTO": "https"}
    assert check("https://help.example", proxied)
    assert origin_check(dataclasses.replace(settings, cors_allowed_origins=("*",))) == "*"


async def test_static_text_is_gzipped_and_revalidated_by_etag(client):
    plain = await client.get("/static/widget.js", headers={"Accept-Encoding": "identity"}, auto_decompress=False)
    raw = await plain.read()
    assert "Content-Encoding" not in plain.headers
    zipped = await client.get("/static/widget.js", headers={"Accept-Encoding": "gzip, br"}, auto_decompress=False)
    assert zipped.headers["Content-Encoding"] == "gzip" and zipped.headers["Vary"] == "Accept-Encoding"
    assert gzip.decompress(await zipped.read()) == raw
    assert len(await zipped.read()) < len(raw) / 2
    again = await client.get("/static/widget.js", headers={"If-None-Match": plain.headers["ETag"]})
    assert again.status == 304 and await again.read() == b""


async def test_help_article_pages_are_served_for_article_ids_only(client):
    page = await client.get(f"/help/articles/{uuid.uuid4()}")
    assert page.status == 200 and "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert (await client.get("/help/articles/not-an-id")).status == 404


# ------------------------------------------------------------------ who the customer is


async def test_a_chat_keeps_the_customers_name_from_the_token_encrypted(client, users, ctx, settings):
    customer_id = uuid.uuid4()
    headers = {
        "Authorization": "Bearer " + issue_token(settings.jwt_secret, customer_id, "customer", name="Casey Customer")
    }
    response = await client.post("/api/v1/chat/sessions", json={"department": new_department()}, headers=headers)
    assert response.status == 201
    session = await response.json()
    assert session["customer_name"] == "Casey Customer"
    async with ctx.db.connection() as conn:
        stored = await conn.fetchval("SELECT customer_name FROM chat_sessions WHERE id = $1", uuid.UUID(session["id"]))
    assert stored and "Casey" not in stored  # encrypted at rest

    service = users.headers(uuid.uuid4(), "service")
    response = await client.post(
        "/api/v1/chat/sessions",
        headers=service,
        json={"department": new_department(), "customer_id": str(uuid.uuid4()), "metadata": {"customer_name": "Dana"}},
    )
    assert (await response.json())["customer_name"] == "Dana"


def test_front_end_code_never_writes_html_strings():
    """User text reaches pages only through textContent: no script of ours assigns HTML."""
    from rest.static import STATIC_DIR

    sinks = re.compile(r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write|\beval\(|new Function\(")
    scripts = [p for p in STATIC_DIR.rglob("*.js") if "vendor" not in p.parts]
    assert len(scripts) >= 10
    offenders = [
        f"{p.name}:{n}" for p in scripts for n, line in enumerate(p.read_text().splitlines(), 1) if sinks.search(line)
    ]
    assert offenders == []


async def test_outside_business_hours_a_department_is_not_available_even_with_agents_online(
    chat_server, cast, client, users
):
    ctx = chat_server.ctx
    department = new_department()
    async with ctx.db.connection() as conn:
        await ctx.db.q.upsert_department(
            conn, name=department, description=None, categories=[], offline_message="We are open on weekdays."
        )
        await conn.execute("UPDATE departments SET business_hours = '{}'::jsonb WHERE name = $1", department)
    await cast.staff(await make_agent(ctx, department))
    body = await (
        await client.get(
            AVAILABILITY, params={"department": department}, headers=users.headers(uuid.uuid4(), "customer")
        )
    ).json()
    assert body["departments"][0] | {"name": None} == {
        "name": None,
        "display_name": default_display_name(department),
        "description": None,
        "offline_message": "We are open on weekdays.",
        "business_hours": {},
        "time_zone": "UTC",
        "online_agents": 1,
        "free_places": 2,
        "queued": 0,
        "open_now": False,
        "available": False,
    }


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        ("2026-11-23T08:59:00+00:00", False),  # Monday 09:59 in Lisbon's winter is UTC+0: 08:59
        ("2026-11-23T09:00:00+00:00", True),
        ("2026-11-23T16:59:00+00:00", True),
        ("2026-11-23T17:00:00+00:00", False),  # the end is excluded
        ("2026-11-28T10:00:00+00:00", False),  # Saturday: not listed, closed
        ("2026-07-06T08:30:00+00:00", True),  # Monday 09:30 in Lisbon's summer (UTC+1)
    ],
)
def test_business_hours_are_read_in_the_departments_time_zone(moment, expected):
    hours = {"mon": [["09:00", "12:00"], ["12:00", "17:00"]], "fri": [["09:00", "13:00"]]}
    assert within_business_hours(hours, "Europe/Lisbon", dt.datetime.fromisoformat(moment)) is expected


def test_no_business_hours_means_always_open_and_bad_ones_do_not_break_the_widget():
    now = dt.datetime(2026, 11, 28, 3, 0, tzinfo=dt.timezone.utc)
    assert within_business_hours(None, "UTC", now) is True
    assert within_business_hours({"sat": "all day"}, "Nowhere/Unknown", now) is True
