"""Everything a replica does on a timer, in one table, and the one runner that does it.

A duty is a function of the :class:`AppContext` run every ``interval`` seconds, the first time
``first`` seconds after start. A *leader* duty runs once per cluster: before each run the replica
tries the duty's session advisory lock on its :class:`~app.leader.Leader` connection (its own,
never a pool connection lent to the duty); the replica that gets it runs the duty and releases
the lock, the others skip that tick. If the leader connection is lost mid-run, the run is
cancelled (another replica may take the lock from then on). An *every replica* duty runs
without a lock. ``enabled`` reads the settings once at start; ``sockets`` duties run only in a
replica that serves Socket.IO.

The followers of the event log (ticket live feed, Kafka relay, search sync, subscriptions) are
not timers: they are woken by NOTIFY (app/follower.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable

from app.context import AppContext
from app.kafka.relay import prune, update_backlog_metrics
from app.leader import Leader, lock_key, while_held
from app.services import attachments, automation, chat_timers, escalation, kb, notifications
from app.tasks import stop_tasks

log = logging.getLogger(__name__)
Run = Callable[[AppContext], Awaitable[object]]
_lock_key = lock_key  # tests hold a duty's lock by its key


async def _presence_heartbeat(ctx: AppContext) -> None:
    await ctx.live.heartbeat(ctx.live.local_sockets())


async def _event_retention(ctx: AppContext) -> None:
    # Without Kafka no relay marks rows published: every old event goes.
    await prune(ctx, include_unpublished=not ctx.settings.kafka_bootstrap_servers)


def _kafka(ctx: AppContext) -> bool:
    return bool(ctx.settings.kafka_bootstrap_servers)


def _always(ctx: AppContext) -> bool:
    return True


@dataclasses.dataclass(frozen=True)
class Duty:
    name: str
    run: Run
    interval: float | Callable[[AppContext], float]
    first: float = 0.0  # seconds after start of the first run
    leader: bool = True  # once per cluster (advisory lock) or every replica
    enabled: Callable[[AppContext], bool] = _always
    sockets: bool = False  # only in a replica serving Socket.IO

    def period(self, ctx: AppContext) -> float:
        return self.interval(ctx) if callable(self.interval) else self.interval


DUTIES: tuple[Duty, ...] = (
    Duty(
        "presence-heartbeat",
        _presence_heartbeat,
        interval=lambda ctx: max(1.0, ctx.live.presence_ttl / 3),
        first=-1,
        leader=False,
        sockets=True,
    ),
    Duty("chat-timers", chat_timers.run_all, interval=2.0, sockets=True),
    Duty("kb-view-counts", kb.flush_view_counts, interval=kb.VIEW_FLUSH_SECONDS),
    Duty("escalation", escalation.duties_tick, interval=escalation.SWEEP_SECONDS, first=escalation.SWEEP_SECONDS),
    Duty("email-outbox", notifications.tick, interval=notifications.SEND_SECONDS, first=notifications.SEND_SECONDS),
    Duty(
        "ticket-pickup",
        automation.pickup_duty,
        interval=automation.PICKUP_INTERVAL,
        first=automation.PICKUP_INTERVAL,
        enabled=lambda ctx: ctx.settings.ticket_auto_assignment,
    ),
    Duty("event-retention", _event_retention, interval=3600.0, first=60.0),
    Duty("attachment-retention", attachments.retention, interval=attachments.RETENTION_SECONDS),
    Duty("relay-backlog", update_backlog_metrics, interval=5.0, leader=False, enabled=_kafka),
)


class Duties:
    """Runs the enabled duties of :data:`DUTIES` for one replica, from :meth:`start` to :meth:`aclose`."""

    def __init__(self, ctx: AppContext, leader: Leader, *, sockets: bool, table: tuple[Duty, ...] = DUTIES):
        self.ctx = ctx
        self.leader = leader
        self.duties = [d for d in table if d.enabled(ctx) and (sockets or not d.sockets)]
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._keep(d), name=f"duty:{d.name}") for d in self.duties]

    async def aclose(self) -> None:
        await stop_tasks(self._tasks)
        self._tasks = []

    async def run_once(self, duty: Duty) -> bool:
        """Run ``duty`` now (a leader duty only if no other replica runs it); True when it ran."""
        if not duty.leader:
            await duty.run(self.ctx)
            return True
        async with self.leader.leading(duty.name) as lease:
            if lease is None:
                return False
            await while_held(lease, duty.run(self.ctx))
        return True

    async def _keep(self, duty: Duty) -> None:
        period = duty.period(self.ctx)
        # first < 0: one period first (the heartbeat refreshes what connect just wrote).
        await asyncio.sleep(period if duty.first < 0 else duty.first)
        while True:
            try:
                await self.run_once(duty)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("duty failed", extra={"duty": duty.name})
            await asyncio.sleep(period)  # a period between runs, not a wait for an event
