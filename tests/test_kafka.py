"""The outbox relay and the consumer against a real Kafka-compatible broker (tests/kafka_broker.py):
order per key, a relay restarted mid-batch, Kafka down and back, consumer de-duplication, and the
workers' health and metrics in a running replica."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from app import metrics
from app.context import AppContext
from app.kafka.consumer import EventConsumer
from app.kafka.relay import OutboxRelay
from app.services import events_api
from grpc_helpers import PATIENCE, until, until_equal
from helpers import fetch, fetchval

pytest_plugins = ["grpc_fixtures", "kafka_broker"]
FAST = {"backoff": (0.05, 0.2), "follower_retry_seconds": 0.05, "idle_seconds": 0.5}


def producer_for(bootstrap: str) -> Callable[[], AIOKafkaProducer]:
    """Tansu refuses idempotent producers: the relay runs with KAFKA_ENABLE_IDEMPOTENCE off here."""
    return lambda: AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        linger_ms=2,
        request_timeout_ms=2000,
        retry_backoff_ms=50,
    )


async def append_events(ctx: AppContext, keys: list[str], rounds: int, type_: str = "ticket.updated") -> list[dict]:
    """Events for ``keys`` interleaved, each in its own transaction (as services write them)."""
    rows = []
    for n in range(rounds):
        for key in keys:
            async with ctx.db.transaction() as conn:
                rows.append(await ctx.events.append(conn, type_, "ticket", key, {"n": n}))
    return rows


async def publish_all(ctx: AppContext, bootstrap: str, rows: list[dict], timeout: float = PATIENCE) -> None:
    """Relay rounds until ``rows`` are published. A row is relayed only once no transaction that
    started before it is still running anywhere in the PostgreSQL cluster (the xmin rule), so a
    busy server can hold a round back for a moment."""
    relay = OutboxRelay(ctx, bootstrap_servers=bootstrap, producer_factory=producer_for(bootstrap))
    producer = producer_for(bootstrap)()
    await producer.start()
    try:
        deadline = time.monotonic() + timeout
        while await published(ctx, rows) < len(rows):
            assert time.monotonic() < deadline, "rows not relayed in time"
            if not await relay.publish_pending(producer):
                await asyncio.sleep(0.05)  # held back by a transaction elsewhere
    finally:
        await producer.stop()


async def consume(
    bootstrap: str, topics: list[str], wanted: Callable[[Any], bool], *, distinct: int, timeout: float = PATIENCE
) -> list[Any]:
    """Every record of ``topics`` that ``wanted`` picks, until ``distinct`` event ids were seen."""
    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    found: list[Any] = []
    try:
        deadline = time.monotonic() + timeout
        while len({header(r, "event_id") for r in found}) < distinct:
            assert time.monotonic() < deadline, f"only {len(found)} records of {distinct} arrived"
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                found += [r for r in records if wanted(r)]
    finally:
        await consumer.stop()
    return found


def header(record: Any, name: str) -> str:
    return dict(record.headers)[name].decode()


def first_seen_order(records: list[Any], key: str) -> list[str]:
    order: list[str] = []
    for record in records:
        if record.key.decode() == key and header(record, "event_id") not in order:
            order.append(header(record, "event_id"))
    return order


async def published(ctx: AppContext, rows: list[dict]) -> int:
    return await fetchval(
        ctx,
        "SELECT count(*) FROM support_events WHERE event_id = ANY($1) AND published_at IS NOT NULL",
        [r["event_id"] for r in rows],
    )


async def test_the_relay_publishes_each_key_in_order_with_its_event_id(ctx, kafka_bootstrap):
    keys = [str(uuid.uuid4()) for _ in range(3)]
    rows = await append_events(ctx, keys, rounds=5)
    async with ctx.db.transaction() as conn:
        chat_row = await ctx.events.append(conn, "chat.message", "chat_session", keys[0], {"seq": 1})
    await publish_all(ctx, kafka_bootstrap, [*rows, chat_row])
    records = await consume(kafka_bootstrap, ["ticket-events"], lambda r: r.key.decode() in keys, distinct=len(rows))
    for key in keys:
        expected = [str(r["event_id"]) for r in rows if r["entity_id"] == key]
        assert first_seen_order(records, key) == expected
    sample = records[0]
    value = json.loads(sample.value)
    assert value["event_id"] == header(sample, "event_id") and value["entity_id"] == sample.key.decode()
    assert header(sample, "event_type") == value["type"] == "ticket.updated"
    assert {"topic", "entity_type", "source", "payload", "created_at", "position"} <= set(value)
    chat = await consume(
        kafka_bootstrap, ["chat-events"], lambda r: header(r, "event_id") == str(chat_row["event_id"]), distinct=1
    )
    assert chat[0].topic == "chat-events"


class _CrashingProducer:
    """A real producer that hangs, as a dying process would, when about to send the
    ``survive + 1``-th message with one of ``keys``."""

    def __init__(self, bootstrap: str, keys: list[str], survive: int):
        self.inner = producer_for(bootstrap)()
        self.keys = {k.encode() for k in keys}
        self.survive = survive
        self.sent: list[str] = []  # event ids of ours handed to Kafka

    async def start(self) -> None:
        await self.inner.start()

    async def stop(self) -> None:
        await self.inner.stop()

    async def send(self, topic: str, *, key: bytes, headers: list, **kwargs: Any) -> asyncio.Future:
        if key in self.keys:
            if len(self.sent) >= self.survive:
                await asyncio.Event().wait()  # never returns: the relay is killed here
            self.sent.append(dict(headers)["event_id"].decode())
        return await self.inner.send(topic, key=key, headers=headers, **kwargs)


async def test_a_relay_killed_mid_batch_loses_nothing_after_restart(ctx, kafka_bootstrap):
    keys = [str(uuid.uuid4()) for _ in range(3)]
    rows = await append_events(ctx, keys, rounds=10)
    crashing = _CrashingProducer(kafka_bootstrap, keys, survive=12)
    first = OutboxRelay(ctx, bootstrap_servers=kafka_bootstrap, producer_factory=lambda: crashing, **FAST)
    task = asyncio.create_task(first.run())
    await until(lambda: len(crashing.sent) == 12)
    await crashing.inner.flush()
    task.cancel()  # killed between sending and marking: the batch in flight is not marked
    with pytest.raises(asyncio.CancelledError):
        await task
    marked = {
        str(r["event_id"])
        for r in await fetch(
            ctx,
            "SELECT event_id FROM support_events WHERE event_id = ANY($1) AND published_at IS NOT NULL",
            [r["event_id"] for r in rows],
        )
    }
    unmarked_but_sent = [e for e in crashing.sent if e not in marked]
    assert unmarked_but_sent and len(marked) < len(rows)
    second = OutboxRelay(ctx, bootstrap_servers=kafka_bootstrap, producer_factory=producer_for(kafka_bootstrap), **FAST)
    task = asyncio.create_task(second.run())
    try:
        await until_equal(lambda: published(ctx, rows), len(rows))  # the restarted relay
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    records = await consume(kafka_bootstrap, ["ticket-events"], lambda r: r.key.decode() in keys, distinct=len(rows))
    copies = collections.Counter(header(r, "event_id") for r in records)
    assert all(copies[e] >= 2 for e in unmarked_but_sent)  # at least once: sent again after the restart
    for key in keys:
        assert first_seen_order(records, key) == [str(r["event_id"]) for r in rows if r["entity_id"] == key]


async def test_the_relay_retries_while_kafka_is_down_and_delivers_when_it_is_back(ctx):
    from kafka_broker import Broker, free_port

    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    broker = Broker(port)
    errors = metrics.RELAY_ERRORS._value.get()
    relay = OutboxRelay(ctx, bootstrap_servers=bootstrap, producer_factory=producer_for(bootstrap), **FAST)
    task = asyncio.create_task(relay.run())
    try:
        rows = await append_events(ctx, [str(uuid.uuid4())], rounds=2)
        await until(lambda: metrics.RELAY_ERRORS._value.get() >= errors + 2)  # backing off, not spinning
        assert await published(ctx, rows) == 0
        broker.start()
        await until_equal(lambda: published(ctx, rows), len(rows))
        key = rows[0]["entity_id"]
        records = await consume(bootstrap, ["ticket-events"], lambda r: r.key.decode() == key, distinct=2)
        assert first_seen_order(records, key) == [str(r["event_id"]) for r in rows]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        broker.stop()


async def test_one_relay_leads_at_a_time_and_another_takes_over(ctx, kafka_bootstrap):
    relays = [
        OutboxRelay(ctx, bootstrap_servers=kafka_bootstrap, producer_factory=producer_for(kafka_bootstrap), **FAST)
        for _ in range(2)
    ]
    tasks = [asyncio.create_task(relay.run()) for relay in relays]
    try:
        await until(lambda: any(r.leading for r in relays))
        await asyncio.sleep(0.3)  # the other one tries the lock several times meanwhile
        assert [r.leading for r in relays].count(True) == 1
        leader = next(i for i, r in enumerate(relays) if r.leading)
        tasks[leader].cancel()  # the leader's replica goes away (its connection, and lock, with it)
        with pytest.raises(asyncio.CancelledError):
            await tasks[leader]
        follower = relays[1 - leader]
        await until(lambda: follower.leading)
        rows = await append_events(ctx, [str(uuid.uuid4())], rounds=1)
        await until_equal(lambda: published(ctx, rows), 1)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# ---------------------------------------------------------------- consumer


@pytest.fixture
def consumer_ctx(ctx: AppContext) -> AppContext:
    """The context with a topic of its own as KAFKA_TOPIC_SUPPORT_EVENTS."""
    topic = f"support-events-{uuid.uuid4().hex[:8]}"
    return dataclasses.replace(ctx, settings=dataclasses.replace(ctx.settings, kafka_topic_support_events=topic))


def foreign(event_id: uuid.UUID | None = None, **fields: Any) -> dict:
    return {
        "event_id": str(event_id or uuid.uuid4()),
        "type": "booking.cancelled",
        "entity_type": "booking",
        "entity_id": f"B-{uuid.uuid4().hex[:6]}",
        "source": "booking-service",
        "payload": {"refund": True},
        **fields,
    }


async def produce(bootstrap: str, topic: str, messages: list[tuple[bytes, list]]) -> None:
    producer = producer_for(bootstrap)()
    await producer.start()
    try:
        for value, headers in messages:
            await producer.send_and_wait(topic, value=value, key=b"k", headers=headers)
    finally:
        await producer.stop()


async def test_the_consumer_skips_seen_events_and_hands_new_ones_on(consumer_ctx, kafka_bootstrap):
    ctx = consumer_ctx
    topic = ctx.settings.kafka_topic_support_events
    group = f"g-{uuid.uuid4().hex[:8]}"
    hooked: list[str] = []

    async def hook(_ctx: AppContext, event: dict) -> None:
        hooked.append(str(event["event_id"]))

    first, second = foreign(), foreign()
    header_only = foreign()
    header_id = header_only.pop("event_id")
    await produce(
        kafka_bootstrap,
        topic,
        [
            (json.dumps(first).encode(), []),
            (json.dumps(first).encode(), []),  # redelivered
            (json.dumps(foreign(source="support-service")).encode(), []),  # our own, relayed back
            (b"{not json", []),  # poison
            (json.dumps(foreign(type="ticket.created")).encode(), []),  # reserved type
            (json.dumps(header_only).encode(), [("event_id", header_id.encode())]),  # id in the header
            (json.dumps(second).encode(), []),
        ],
    )
    events_api.register_hook(hook)
    try:
        before = {
            o: metrics.EVENTS_CONSUMED.labels(outcome=o)._value.get() for o in ("stored", "duplicate", "own", "invalid")
        }
        consumer = EventConsumer(
            ctx,
            bootstrap_servers=kafka_bootstrap,
            group_id=group,
            session_timeout_ms=1000,
            heartbeat_interval_ms=200,
            backoff=(0.05, 0.2),
        )
        task = asyncio.create_task(consumer.run())
        try:
            await until(lambda: len(hooked) == 3)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert hooked == [first["event_id"], header_id, second["event_id"]]
        after = {o: metrics.EVENTS_CONSUMED.labels(outcome=o)._value.get() for o in before}
        assert {o: after[o] - before[o] for o in before} == {"stored": 3, "duplicate": 1, "own": 1, "invalid": 2}
        rows = await fetch(
            ctx,
            "SELECT event_id, topic, published_at FROM support_events WHERE event_id = ANY($1)",
            [uuid.UUID(first["event_id"]), uuid.UUID(second["event_id"])],
        )
        assert len(rows) == 2 and all(r["published_at"] is not None and r["topic"] == topic for r in rows)

        # A restarted consumer in the same group goes on from its committed offset; a replay of
        # an old event (another producer's retry) is still stored only once.
        third = foreign()
        await produce(kafka_bootstrap, topic, [(json.dumps(first).encode(), []), (json.dumps(third).encode(), [])])
        consumer = EventConsumer(
            ctx,
            bootstrap_servers=kafka_bootstrap,
            group_id=group,
            session_timeout_ms=1000,
            heartbeat_interval_ms=200,
            backoff=(0.05, 0.2),
        )
        task = asyncio.create_task(consumer.run())
        try:
            await until(lambda: len(hooked) == 4)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert hooked[-1] == third["event_id"]
        assert (
            await fetchval(ctx, "SELECT count(*) FROM support_events WHERE event_id = $1", uuid.UUID(first["event_id"]))
            == 1
        )
    finally:
        events_api.unregister_hook(hook)


# ---------------------------------------------------------------- a replica with Kafka


@pytest.fixture
async def kafka_replica(settings, ctx, kafka_bootstrap, monkeypatch) -> AsyncIterator[Any]:
    from app.kafka import workers
    from grpc_fixtures import serve_replica

    # Group joins take session_timeout / 2 on this broker: short timings, as STACK.md advises.
    monkeypatch.setattr(
        workers, "EventConsumer", functools.partial(EventConsumer, session_timeout_ms=1000, heartbeat_interval_ms=200)
    )
    with_kafka = dataclasses.replace(settings, kafka_bootstrap_servers=kafka_bootstrap, kafka_enable_idempotence=False)
    async with serve_replica(with_kafka, ctx) as running:
        yield running


async def test_a_replica_with_kafka_relays_and_reports_health_and_lag(kafka_replica, ctx, kafka_bootstrap):
    rows = await append_events(ctx, [str(uuid.uuid4())], rounds=2)
    await until_equal(lambda: published(ctx, rows), len(rows))  # the replica's relay is leading
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{kafka_replica.http}/health/ready") as response:
            report = await response.json()
        async with http.get(f"{kafka_replica.http}/metrics") as response:
            exposition = await response.text()
    kafka = report["components"]["kafka"]
    assert response.status == 200 and kafka["status"] == "up" and kafka["required"] is False
    assert kafka["brokers"] >= 1 and kafka["relay_leader"] is True and "lag_seconds" in kafka
    assert "support_outbox_relay_lag_seconds" in exposition and "support_outbox_published_total" in exposition
