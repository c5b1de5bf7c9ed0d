"""Chat timers, run as cluster-wide duties: queue timeouts, inactivity, agents who lapsed.

Each function reads the time from ``ctx.clock`` and takes its rows with ``SKIP LOCKED``, so tests
move a frozen clock instead of sleeping and two replicas never end the same chat twice.
"""

from __future__ import annotations

import datetime as dt

from app.context import AppContext
from app.live import AGENT_NS
from app.services import chat, queue_alerts, routing
from app.services.chat_views import session_view


async def _end_expired(ctx: AppContext, query_name: str, status: str, reason: str, **params: object) -> int:
    ended = []
    async with ctx.db.transaction() as conn:
        for session in await getattr(ctx.db.q, query_name)(conn, **params):
            row = await chat.finish(ctx, conn, session, status, reason)
            ended.append((row, await session_view(ctx, conn, row)))
    for row, view in ended:
        await chat.after_finish(ctx, row, view, reason)
    return len(ended)


async def sweep_queue_timeouts(ctx: AppContext) -> int:
    """Queued longer than the department's queue timeout (else CHAT_QUEUE_TIMEOUT_MINUTES): ends
    with ``queue_timeout``; the customer can then leave a message (``chat:leave_message``)."""
    return await _end_expired(
        ctx,
        "expired_queue",
        "timed_out",
        "queue_timeout",
        now=ctx.clock.now(),
        default_minutes=ctx.settings.chat_queue_timeout_minutes,
    )


async def sweep_inactive(ctx: AppContext) -> int:
    cutoff = ctx.clock.now() - dt.timedelta(minutes=ctx.settings.chat_inactivity_timeout_minutes)
    return await _end_expired(ctx, "inactive_sessions", "ended", "inactivity", cutoff=cutoff)


async def reconcile_presence(ctx: AppContext) -> None:
    """Agents marked connected whose sockets all vanished (a replica died) start their grace."""
    async with ctx.db.connection() as conn:
        online = [r["user_id"] for r in await ctx.db.q.online_agents(conn)]
    for user_id in online:
        await routing.agent_disconnected(ctx, user_id)


async def sweep_lapsed_agents(ctx: AppContext) -> int:
    """Disconnected longer than AGENT_DISCONNECT_GRACE_SECONDS: offline, chats back to the queue."""
    cutoff = ctx.clock.now() - dt.timedelta(seconds=ctx.settings.agent_disconnect_grace_seconds)
    async with ctx.db.transaction() as conn:
        lapsed = await ctx.db.q.lapsed_agents(conn, cutoff=cutoff)
        for agent in lapsed:
            await ctx.db.q.set_agent_status(conn, user_id=agent["user_id"], status="offline", now=ctx.clock.now())
            await ctx.events.append(
                conn,
                "agent.status_changed",
                "agent",
                agent["id"],
                {"agent_id": agent["user_id"], "from": agent["status"], "status": "offline", "reason": "disconnected"},
            )
    for agent in lapsed:
        if await ctx.live.is_connected(AGENT_NS, agent["user_id"]):
            continue
        await routing.requeue_chats_of(ctx, agent["user_id"])
        await routing.announce_presence(ctx, {**dict(agent), "status": "offline", "active_chats": 0})
    return len(lapsed)


async def run_all(ctx: AppContext) -> None:
    await reconcile_presence(ctx)
    await sweep_lapsed_agents(ctx)
    await sweep_queue_timeouts(ctx)
    await queue_alerts.sweep(ctx)
    await sweep_inactive(ctx)
