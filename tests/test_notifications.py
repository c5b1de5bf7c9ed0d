"""E-mail notifications: a real local HTTP server stands in for the e-mail worker and records
what it is sent (failing the first N requests when asked)."""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from app.auth import Principal
from app.services import notifications, tickets
from tests.escalation_support import ADMIN, META, events, frozen, new_ticket, unique
from tests.helpers import problem


class EmailWorker:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail_next = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append({"key": request.headers.get("Idempotency-Key"), **body})
        if self.fail_next:
            self.fail_next -= 1
            return web.json_response({"error": "busy"}, status=503)
        return web.json_response({"accepted": True}, status=202)

    def to(self, address: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["to"] == address]


@contextlib.asynccontextmanager
async def email_worker() -> AsyncIterator[tuple[EmailWorker, str]]:
    worker = EmailWorker()
    app = web.Application()
    app.router.add_post("/api/v1/emails", worker.handle)
    server = TestServer(app)
    await server.start_server()
    try:
        yield worker, str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


def customer() -> Principal:
    return Principal(uuid.uuid4(), "customer", name="Ann", email=f"{uuid.uuid4().hex[:8]}@example.com")


async def rows_for(ctx: Any, ticket_id: Any) -> list[dict]:
    async with ctx.db.pool.acquire() as conn:
        return [
            dict(r)
            for r in await conn.fetch(
                "SELECT n.* FROM email_notifications n JOIN support_events e ON e.event_id = n.event_id"
                " WHERE e.entity_id = $1 ORDER BY n.created_at, n.template",
                str(ticket_id),
            )
        ]


async def test_ticket_events_are_mailed_once_with_the_event_id_as_key(settings):
    async with email_worker() as (worker, url), frozen(settings, email_service_url=url) as (ctx, _):
        who = customer()
        ticket = await new_ticket(ctx, unique(), customer=who)
        await notifications.tick(ctx)
        await notifications.tick(ctx)  # nothing twice
        [created] = worker.to(who.email)
        [event] = await events(ctx, ticket["id"], "ticket.created")
        assert created["template"] == settings.email_template_ticket_created == "ticket-created"
        assert created["key"] == str(event["event_id"])
        assert created["data"]["ticket_number"] == ticket["ticket_number"]

        await tickets.change_status(ctx, ADMIN, META, ticket["id"], "in_progress")
        await tickets.change_status(ctx, ADMIN, META, ticket["id"], "resolved")
        await notifications.tick(ctx)
        await notifications.tick(ctx)
        templates = [r["template"] for r in worker.to(who.email)]
        assert sorted(templates) == sorted(["ticket-created", "ticket-updated", "ticket-resolved", "feedback-request"])
        assert all(r["status"] == "sent" and r["attempts"] == 1 for r in await rows_for(ctx, ticket["id"]))
        # the stored address is encrypted
        assert all(who.email not in r["recipient"] for r in await rows_for(ctx, ticket["id"]))


async def test_the_new_ticket_email_says_when_an_agent_will_answer_in_words(settings):
    async with email_worker() as (worker, url), frozen(settings, email_service_url=url) as (ctx, _):
        who = customer()
        ticket = await new_ticket(ctx, unique(), customer=who)
        await notifications.tick(ctx)
        [created] = worker.to(who.email)
    due = ticket["first_response_due_at"]
    assert created["data"]["first_response_due_at"] == due.isoformat()
    promise = created["data"]["response_promise"]
    assert promise.startswith("An agent will respond within ")
    assert promise.endswith(f"(by {due.astimezone(dt.timezone.utc):%A} {due.day} {due:%B %Y, %H:%M} UTC).")


async def test_a_failed_send_is_retried_with_back_off_then_succeeds(settings):
    async with email_worker() as (worker, url), frozen(settings, email_service_url=url) as (ctx, clock):
        who = customer()
        ticket = await new_ticket(ctx, unique(), customer=who)
        worker.fail_next = 10**6  # everything fails until we say otherwise
        await notifications.tick(ctx)
        [row] = await rows_for(ctx, ticket["id"])
        assert row["status"] == "pending" and row["attempts"] == 1 and "503" in row["last_error"]
        assert row["next_attempt_at"] == clock.now() + notifications._backoff(1)
        await notifications.send_due(ctx)  # not due yet
        assert len(worker.to(who.email)) == 1
        clock.advance(seconds=notifications.BACKOFF_SECONDS + 1)
        await notifications.send_due(ctx)
        assert len(worker.to(who.email)) == 2
        worker.fail_next = 0
        clock.advance(seconds=2 * notifications.BACKOFF_SECONDS + 1)
        await notifications.send_due(ctx)
        sent = worker.to(who.email)
        assert len(sent) == 3 and len({r["key"] for r in sent}) == 1
        [row] = await rows_for(ctx, ticket["id"])
        assert row["status"] == "sent" and row["attempts"] == 3 and row["sent_at"] == clock.now()


async def test_parked_as_failed_after_max_attempts_and_listed_for_admins(settings, client, users):
    async with email_worker() as (worker, url), frozen(settings, email_service_url=url) as (ctx, clock):
        who = customer()
        ticket = await new_ticket(ctx, unique(), customer=who)
        worker.fail_next = 10**6
        await notifications.build_outbox(ctx)
        for attempt in range(1, notifications.MAX_ATTEMPTS + 3):
            await notifications.send_due(ctx)
            clock.advance(seconds=notifications._backoff(attempt).total_seconds() + 1)
        assert len(worker.to(who.email)) == notifications.MAX_ATTEMPTS
        [row] = await rows_for(ctx, ticket["id"])
        assert row["status"] == "failed" and row["attempts"] == notifications.MAX_ATTEMPTS

    _, admin = users.new("admin")
    _, supervisor = users.new("supervisor")
    response = await client.get("/api/v1/notifications", params={"status": "failed", "limit": 100}, headers=admin)
    assert response.status == 200, await response.text()
    page = await response.json()
    assert str(row["id"]) in {item["id"] for item in page["items"]}
    assert all(item["status"] == "failed" and "recipient" not in item for item in page["items"])
    await problem(await client.get("/api/v1/notifications", headers=supervisor), 403)
    await problem(await client.get("/api/v1/notifications", params={"status": "lost"}, headers=admin), 422)


async def test_escalations_mail_the_customer_when_the_rule_says_so(settings):
    from app.services import escalation

    async with email_worker() as (worker, url), frozen(settings, email_service_url=url) as (ctx, _):
        cat, who = unique(), customer()
        await escalation.create_rule(
            ctx,
            ADMIN,
            META,
            {
                "rule_name": unique(),
                "conditions": {"category": [cat]},
                "actions": {"notify": ["customer", "supervisors"]},
            },
        )
        ticket = await new_ticket(ctx, cat, customer=who)
        await escalation.evaluate_ticket(ctx, ticket["id"])
        await notifications.tick(ctx)
        assert sorted(r["template"] for r in worker.to(who.email)) == ["ticket-created", "ticket-escalated"]


async def test_no_email_without_an_email_service_url(settings):
    assert settings.email_service_url is None
    async with frozen(settings) as (ctx, _):
        ticket = await new_ticket(ctx, unique(), customer=customer())
        assert await notifications.build_outbox(ctx) == 0
        assert await notifications.send_due(ctx) == 0
        assert await rows_for(ctx, ticket["id"]) == []
