"""Queue alerts: a department whose longest chat wait passes its threshold is flagged for
supervisors until its queue is back under it.

The threshold is the department's ``queue_alert_minutes`` (else QUEUE_ALERT_MINUTES; 0 turns
alerts off). ``sweep`` runs in the chat-timers cluster duty: it raises or clears each flag in the
department row (``queue_alert_raised_at``), records ``queue.alert_raised`` / ``queue.alert_cleared``
events, pushes ``queue:alert`` to supervisors, and, when a flag is raised, queues one e-mail per
supervisor of the department (all supervisors when it has none) in the e-mail outbox. As with
escalation e-mails, staff addresses come from the User Service; without it, or without
EMAIL_SERVICE_URL, the console flag is the alert.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import asyncpg

from app.context import AppContext
from app.live import AGENT_NS, SUPERVISORS

log = logging.getLogger(__name__)
TEMPLATE = "queue-alert"


def alert_view(row: Any, now: dt.datetime) -> dict:
    """``queue:alert``: raised (with since when) or cleared, and the figures behind it."""
    oldest = row["oldest"]
    return {
        "department": row["name"],
        "raised": row["queue_alert_raised_at"] is not None,
        "raised_at": row["queue_alert_raised_at"],
        "threshold_minutes": row["threshold_minutes"],
        "waiting": row["waiting"],
        "longest_wait_seconds": round((now - oldest).total_seconds()) if oldest else 0,
    }


async def sweep(ctx: AppContext) -> int:
    """Raise and clear the flags that changed; returns how many did."""
    now = ctx.clock.now()
    pushes = []
    async with ctx.db.transaction() as conn:
        for change in await ctx.db.q.queue_alert_changes(
            conn, now=now, default_minutes=ctx.settings.queue_alert_minutes
        ):
            raise_it = change["queue_alert_raised_at"] is None
            await ctx.db.q.set_queue_alert(conn, id=change["id"], raised_at=now if raise_it else None)
            view = alert_view({**dict(change), "queue_alert_raised_at": now if raise_it else None}, now)
            event = await ctx.events.append(
                conn, "queue.alert_raised" if raise_it else "queue.alert_cleared", "department", change["id"], view
            )
            if raise_it:
                await _queue_emails(ctx, conn, event["event_id"], view)
            pushes.append(view)
    for view in pushes:
        await ctx.live.emit("queue:alert", view, to=SUPERVISORS, namespace=AGENT_NS)
    return len(pushes)


async def _queue_emails(ctx: AppContext, conn: asyncpg.Connection, event_id: Any, view: dict) -> None:
    if not (ctx.settings.email_service_url and ctx.users is not None):
        return
    for row in await ctx.db.q.escalation_supervisors(conn, department=view["department"]):
        address = await ctx.users.email_of(row["user_id"])
        if address:
            await ctx.db.q.queue_email(
                conn,
                event_id=event_id,
                template=TEMPLATE,
                recipient_key=str(row["user_id"]),
                recipient=ctx.cipher.encrypt(address, "email_notifications.recipient"),
                data={
                    "department": view["department"],
                    "waiting": view["waiting"],
                    "longest_wait_minutes": view["longest_wait_seconds"] // 60,
                    "threshold_minutes": view["threshold_minutes"],
                },
                now=ctx.clock.now(),
            )
