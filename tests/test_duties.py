"""The background machinery: cluster duties lead through a Leader connection of their own, a run
ends when its lock is lost, and the message writer answers everything pending at its close."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from app.duties import Duties, Duty
from app.errors import Unavailable
from app.leader import Leader, lock_key
from app.services.message_writer import MessageWriter, PendingMessage

PATIENCE = 10.0


async def _leaders(settings, count: int) -> list[Leader]:
    leaders = [Leader(settings.dsn, keepalive_seconds=0.2, backoff=(0.05, 0.2)) for _ in range(count)]
    for leader in leaders:
        await leader.start()
        await asyncio.wait_for(leader.wait_connected(), PATIENCE)
    return leaders


async def test_a_cluster_duty_runs_on_one_replica_at_a_time(ctx, settings):
    name = f"test-duty-{uuid.uuid4()}"
    running, ran = asyncio.Event(), []
    release = asyncio.Event()

    async def work(_ctx):
        ran.append(1)
        running.set()
        await release.wait()

    duty = Duty(name, work, interval=60.0)
    leaders = await _leaders(settings, 2)
    try:
        first, second = (Duties(ctx, leader, sockets=False, table=(duty,)) for leader in leaders)
        holding = asyncio.create_task(first.run_once(duty))
        await asyncio.wait_for(running.wait(), PATIENCE)
        assert await second.run_once(duty) is False  # the other replica skips the tick
        release.set()
        assert await asyncio.wait_for(holding, PATIENCE) is True
        assert await second.run_once(duty) is True  # released: the next tick may run anywhere
        assert len(ran) == 2
    finally:
        for leader in leaders:
            await leader.aclose()


async def test_the_lock_is_not_held_on_a_pool_connection(ctx, settings):
    name = f"test-duty-{uuid.uuid4()}"
    seen: list[int] = []

    async def work(_ctx):
        async with ctx.db.connection() as conn:  # the duty's own connection
            for pid in (await conn.fetchval("SELECT pg_backend_pid()"), leader._conn.get_server_pid()):
                seen.append(
                    await conn.fetchval(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1::bigint::oid "
                        "AND granted AND pid = $2",
                        lock_key(name),
                        pid,
                    )
                )

    [leader] = await _leaders(settings, 1)
    try:
        assert await Duties(ctx, leader, sockets=False, table=()).run_once(Duty(name, work, interval=60.0))
        assert seen == [0, 1]  # held by the Leader's connection, not by the one the duty works on
    finally:
        await leader.aclose()


async def test_a_run_is_cancelled_when_its_leader_connection_is_lost(ctx, settings):
    name = f"test-duty-{uuid.uuid4()}"
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def work(_ctx):
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    duty = Duty(name, work, interval=60.0)
    first, second = await _leaders(settings, 2)
    try:
        run = asyncio.create_task(Duties(ctx, first, sockets=False, table=(duty,)).run_once(duty))
        await asyncio.wait_for(started.wait(), PATIENCE)
        pid = first._conn.get_server_pid()
        admin = await asyncpg.connect(settings.dsn)
        try:
            await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        await asyncio.wait_for(cancelled.wait(), PATIENCE)
        await asyncio.wait_for(run, PATIENCE)
        lease = await second.try_lead(name)  # the lock went with the connection
        assert lease is not None
        await second.release(lease)
    finally:
        await first.aclose()
        await second.aclose()


async def test_the_message_writer_refuses_writes_once_closed_and_answers_what_was_pending(ctx):
    writer = MessageWriter(ctx.db, ctx.events, ctx.clock)

    def item() -> PendingMessage:
        return PendingMessage(
            session_id=uuid.uuid4(),
            sender_id=uuid.uuid4(),
            sender_type="customer",
            scope="customer",
            client_msg_id=None,
            ciphertext="x",
            message_type="text",
        )

    pending = [asyncio.create_task(writer.write(item())) for _ in range(5)]
    await asyncio.sleep(0)
    await writer.aclose()
    results = await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), PATIENCE)
    # Every write was answered: written (no such session: None) or refused as unavailable.
    assert all(r is None or isinstance(r, Unavailable) for r in results)
    with pytest.raises(Unavailable):
        await writer.write(item())


async def test_a_leader_stops_when_cancelled_as_its_connection_is_lost(settings):
    """Shutdown found the connection just lost (a duty cancelled mid-release drops it): the stop
    of the connection task arrived in the tick in which its wait for the loss ended. Python
    3.11's ``asyncio.wait_for`` swallowed that cancellation, the task reconnected, and
    ``aclose`` waited for it forever (the suite's intermittent hang)."""
    leader = Leader(settings.dsn, keepalive_seconds=30, backoff=(0.05, 0.2))
    await leader.start()
    await asyncio.wait_for(leader.wait_connected(), 10)
    await asyncio.sleep(0.05)  # the connection task waits in its keepalive
    leader._lost.set()
    await asyncio.sleep(0)  # the wait for the loss ends; the task has not resumed yet
    closing = asyncio.ensure_future(leader.aclose())
    done, _ = await asyncio.wait({closing}, timeout=10)
    if not done:  # leave nothing running behind the failure
        closing.cancel()
        while leader._task is not None and not leader._task.done():
            leader._task.cancel()
            await asyncio.sleep(0.1)
    assert done, "Leader.aclose() did not return"
    assert not leader.connected
