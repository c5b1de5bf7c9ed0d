"""E-mail notifications from the outbox, sent through the e-mail worker at EMAIL_SERVICE_URL.

``build_outbox`` turns recent ticket events into ``email_notifications`` rows; the table's
unique (event_id, template) makes that idempotent, so an event never yields the same e-mail
twice. ``send_due`` posts due rows to ``{EMAIL_SERVICE_URL}/api/v1/emails`` as
``{template, to, data}`` with ``Idempotency-Key`` = the event id (API.md "Email service"),
retries failures with exponential back-off and parks a row as ``failed`` after
``MAX_ATTEMPTS``. Both run as one cluster duty (``tick``). Nothing happens while
EMAIL_SERVICE_URL is unset.

Recipients: the customer's address is the token's ``email`` claim stored (encrypted) on the
ticket. Supervisors' and agents' addresses are not stored here; they would come from the User
Service, which this service does not call yet, so those e-mails are skipped.
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import aiohttp

from app.auth import Principal, require_role
from app.context import AppContext

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5
BACKOFF_SECONDS = 30.0          # 30 s, 60 s, 120 s, 240 s between attempts
SEND_TIMEOUT_SECONDS = 10.0
BATCH = 100

FEEDBACK_TEMPLATE = "feedback-request"
ESCALATED_TEMPLATE = "ticket-escalated"
LOOKBACK = dt.timedelta(days=1)   # older events are not turned into e-mail any more
EVENT_TYPES = ["ticket.created", "ticket.status_changed", "ticket.escalated"]


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
            address = ctx.cipher.decrypt(event["customer_email"], "support_tickets.customer_email")
            if not address:
                continue   # no address known: nothing to send
            data = {"ticket_id": str(event["ticket_id"]), "ticket_number": event["ticket_number"],
                    "subject": event["subject"], "status": event["status"], "priority": event["priority"],
                    "event": event["type"]}
            for template in _templates(ctx, event):
                queued = await ctx.db.q.queue_email(
                    conn, event_id=event["event_id"], template=template,
                    recipient=ctx.cipher.encrypt(address, "email_notifications.recipient"), data=data,
                    now=ctx.clock.now())
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
        while True:   # batch after batch: each row sent leaves the due set (sent, or due later)
            async with ctx.db.connection() as conn:
                rows = await ctx.db.q.due_emails(conn, now=now, limit=BATCH)
            if not rows:
                break
            sent += await _send_batch(ctx, session, base, rows, now)
    finally:
        if own:
            await session.close()
    return sent


async def _send_batch(ctx: AppContext, session: aiohttp.ClientSession, base: str, rows: list,
                      now: dt.datetime) -> int:
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
                await ctx.db.q.email_failed(conn, id=row["id"], status=status, attempts=attempts,
                                            next_attempt_at=now + _backoff(attempts), error=error[:1000])
                if status == "failed":
                    log.warning("e-mail parked as failed", extra={"notification_id": str(row["id"])})
    return sent


async def _post(session: aiohttp.ClientSession, base: str, row: Any, ctx: AppContext) -> str | None:
    """None when the worker accepted the e-mail, else what went wrong."""
    body = {"template": row["template"],
            "to": ctx.cipher.decrypt(row["recipient"], "email_notifications.recipient"),
            "data": row["data"]}
    try:
        async with session.post(f"{base.rstrip('/')}/api/v1/emails", json=body,
                                headers={"Idempotency-Key": str(row["event_id"])}) as response:
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
        rows = await ctx.db.q.list_emails(conn, status=params.get("status"), limit=params["limit"],
                                          offset=params["offset"])
        total = rows[0]["total"] if rows else await ctx.db.q.count_emails(conn, status=params.get("status"))
    return {"items": [{k: v for k, v in dict(r).items() if k != "total"} for r in rows], "total": total,
            "limit": params["limit"], "offset": params["offset"]}


