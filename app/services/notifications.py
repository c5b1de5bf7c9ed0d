"""E-mail notifications from the outbox, sent through the e-mail worker at EMAIL_SERVICE_URL.

``build_outbox`` turns recent ticket events into ``email_notifications`` rows; the table's
unique (event_id, template) makes that idempotent, so an event never yields the same e-mail
twice. ``send_due`` posts due rows to ``{EMAIL_SERVICE_URL}/api/v1/emails`` as
``{template, to, data}`` with ``Idempotency-Key`` = the event id (API.md "Email service"),
retries failures with exponential back-off and parks a row as ``failed`` after
``MAX_ATTEMPTS``. Both run as one cluster duty (``tick``). Nothing happens while
EMAIL_SERVICE_URL is unset.

Recipients: the customer's address is the token's ``email`` claim stored (encrypted) on the
ticket, else (with GRPC_USER_SERVICE_URL set) the User Service's answer for the customer id.
Supervisors' and agents' addresses are not stored here: an escalation whose rule notifies
``agent`` / ``supervisors`` mails the assigned agent / the department's supervisors (all
supervisors when it has none) at the addresses the User Service gives (``ctx.users``, a
:class:`~app.clients.user_service.UserDirectory`); without it those e-mails are skipped. Each
recipient is its own outbox row, keyed by ``recipient_key`` ('customer' or the user id).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import aiohttp

from app.auth import Principal, require_role
from app.context import AppContext
from app.db import fetch_page
from app.services import automation

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5
BACKOFF_SECONDS = 30.0  # 30 s, 60 s, 120 s, 240 s between attempts
SEND_TIMEOUT_SECONDS = 10.0
SEND_SECONDS = 15.0  # the e-mail sender's period (app/duties.py)
BATCH = 100

FEEDBACK_TEMPLATE = "feedback-request"
ESCALATED_TEMPLATE = "ticket-escalated"
LOOKBACK = dt.timedelta(days=1)  # older events are not turned into e-mail any more
EVENT_TYPES = ["ticket.created", "ticket.status_changed", "ticket.escalated"]


CUSTOMER = "customer"


def _idempotency_key(row: Any) -> str:
    """The event id for the customer's e-mail; staff e-mails of the same event add the user id."""
    key = row.get("recipient_key") or CUSTOMER
    return str(row["event_id"]) if key == CUSTOMER else f"{row['event_id']}:{key}"


async def _customer_address(ctx: AppContext, event: Any) -> str | None:
    address = ctx.cipher.decrypt(event["customer_email"], "support_tickets.customer_email")
    if not address and ctx.users is not None:
        address = await ctx.users.email_of(event["customer_id"])
    return address or None


async def _staff_recipients(ctx: AppContext, conn: Any, event: Any) -> list[str]:
    """User ids of the staff an escalation e-mails (only with the User Service configured)."""
    notify = event["payload"].get("notify") or []
    if ctx.users is None or event["type"] != "ticket.escalated":
        return []
    ids: list[str] = []
    agent = event["payload"].get("agent_id") or event["agent_id"]
    if "agent" in notify and agent:
        ids.append(str(agent))
    if "supervisors" in notify:
        rows = await ctx.db.q.escalation_supervisors(conn, department=event["department"])
        ids += [str(r["user_id"]) for r in rows if str(r["user_id"]) not in ids]
    return ids


def _response_promise(event: Any) -> dict:
    """For a new ticket with a first-response target: the time (ISO) and a sentence in words in
    the department's time zone, which e-mails show as they are (no ISO string for people)."""
    if event["type"] != "ticket.created" or event["first_response_due_at"] is None:
        return {}
    promise = automation.response_promise(dict(event))
    if promise is None:  # no due time (checked above; for the type checker)
        return {}
    span, due = promise
    return {
        "first_response_due_at": due.isoformat(),
        "response_promise": f"An agent will respond within {span} "
        f"(by {automation.time_in_words(due, event['time_zone'] or 'UTC')}).",
    }


def _templates(ctx: AppContext, event: Any) -> list[str]:
    """The customer e-mails one ticket event calls for."""
    s = ctx.settings
    payload = event["payload"]
    if event["type"] == "ticket.created":
        return [s.email_template_ticket_created]
    if event["type"] == "ticket.status_changed":
        if payload.get("to") == "resolved":
            return [s.email_template_ticket_resolved, FEEDBACK_TEMPLATE]
        return [s.email_template_ticket_updated]
    if event["type"] == "ticket.escalated" and "customer" in (payload.get("notify") or []):
        return [ESCALATED_TEMPLATE]
    return []


async def build_outbox(ctx: AppContext) -> int:
    """Queue the e-mails recent ticket events call for; returns how many rows were added."""
    if not ctx.settings.email_service_url:
        return 0
    added = 0
    async with ctx.db.transaction() as conn:
        events = await ctx.db.q.mailable_events(conn, types=EVENT_TYPES, lookback=LOOKBACK)
        for event in events:
            data = {
                "ticket_id": str(event["ticket_id"]),
                "ticket_number": event["ticket_number"],
                "subject": event["subject"],
                "status": event["status"],
                "priority": event["priority"],
                "event": event["type"],
                **_response_promise(event),
            }
            templates = _templates(ctx, event)
            address = await _customer_address(ctx, event) if templates else None
            recipients = [(CUSTOMER, address, t) for t in templates if address]  # no address: no e-mail
            for user_id in await _staff_recipients(ctx, conn, event):
                assert ctx.users is not None  # there are staff recipients only with the User Service
                staff_address = await ctx.users.email_of(user_id)
                if staff_address:
                    recipients.append((user_id, staff_address, ESCALATED_TEMPLATE))
            for key, to, template in recipients:
                queued = await ctx.db.q.queue_email(
                    conn,
                    event_id=event["event_id"],
                    template=template,
                    recipient_key=key,
                    recipient=ctx.cipher.encrypt(to, "email_notifications.recipient"),
                    data=data,
                    now=ctx.clock.now(),
                )
                added += queued is not None
    return added


def _backoff(attempts: int) -> dt.timedelta:
    return dt.timedelta(seconds=BACKOFF_SECONDS * 2 ** (attempts - 1))


async def send_due(ctx: AppContext, session: aiohttp.ClientSession | None = None) -> int:
    """Send the pending e-mails that are due; returns how many were delivered."""
    base = ctx.settings.email_service_url
    if not base:
        return 0
    now = ctx.clock.now()
    own = session is None
    session = session or aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SEND_TIMEOUT_SECONDS))
    sent = 0
    try:
        while True:  # batch after batch: each row sent leaves the due set (sent, or due later)
            async with ctx.db.connection() as conn:
                rows = await ctx.db.q.due_emails(conn, now=now, limit=BATCH)
            if not rows:
                break
            sent += await _send_batch(ctx, session, base, rows, now)
    finally:
        if own:
            await session.close()
    return sent


async def _send_batch(ctx: AppContext, session: aiohttp.ClientSession, base: str, rows: list, now: dt.datetime) -> int:
    sent = 0
    for row in rows:
        error = await _post(session, base, row, ctx)
        attempts = row["attempts"] + 1
        async with ctx.db.connection() as conn:
            if error is None:
                sent += 1
                await ctx.db.q.email_sent(conn, id=row["id"], attempts=attempts, now=now)
            else:
                status = "failed" if attempts >= MAX_ATTEMPTS else "pending"
                await ctx.db.q.email_failed(
                    conn,
                    id=row["id"],
                    status=status,
                    attempts=attempts,
                    next_attempt_at=now + _backoff(attempts),
                    error=error[:1000],
                )
                if status == "failed":
                    log.warning("e-mail parked as failed", extra={"notification_id": str(row["id"])})
    return sent


async def _post(session: aiohttp.ClientSession, base: str, row: Any, ctx: AppContext) -> str | None:
    """None when the worker accepted the e-mail, else what went wrong."""
    body = {
        "template": row["template"],
        "to": ctx.cipher.decrypt(row["recipient"], "email_notifications.recipient"),
        "data": row["data"],
    }
    try:
        async with session.post(
            f"{base.rstrip('/')}/api/v1/emails", json=body, headers={"Idempotency-Key": _idempotency_key(row)}
        ) as response:
            if 200 <= response.status < 300:
                return None
            return f"HTTP {response.status}: {(await response.text())[:200]}"
    except (aiohttp.ClientError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"


async def tick(ctx: AppContext) -> None:
    await build_outbox(ctx)
    await send_due(ctx)


async def list_notifications(ctx: AppContext, principal: Principal, params: dict) -> dict:
    require_role(principal, "admin")
    async with ctx.db.connection() as conn:
        rows, total = await fetch_page(
            ctx.db.q.list_emails, conn, status=params.get("status"), limit=params["limit"], offset=params["offset"]
        )
    return {
        "items": [{k: v for k, v in dict(r).items() if k != "total"} for r in rows],
        "total": total,
        "limit": params["limit"],
        "offset": params["offset"],
    }
