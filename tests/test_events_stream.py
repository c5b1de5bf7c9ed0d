"""SupportEventService over a real channel (publish, subscribe with filters, resume, live follow,
cancellation, drain), the event hub's ordering and memory bounds, health, reflection, retention."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
import uuid
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from app.context import AppContext
from app.db import Database
from app.kafka.relay import prune
from app.services import events_api
from grpc_server.convert import struct_to_dict
from support_stubs.support.v1 import events_pb2 as pb
from support_stubs.support.v1 import events_pb2_grpc
from grpc_server.server import SERVICES, GrpcServer
from grpc_helpers import PATIENCE, fails, until, violations
from helpers import execute, fetch, fetchval

pytest_plugins = ["grpc_fixtures"]
Code = grpc.StatusCode
READ_TIMEOUT = PATIENCE


def event(entity_id: str, type_: str = "booking.updated", **fields: Any) -> pb.SupportEvent:
    payload = struct_pb2.Struct()
    payload.update(fields.pop("payload", {"n": 1}))
    values = {
        "event_id": str(uuid.uuid4()),
        "type": type_,
        "entity_type": "booking",
        "entity_id": entity_id,
        "source": "booking-service",
        "payload": payload,
        **fields,
    }
    return pb.SupportEvent(**values)


async def read(call: Any) -> pb.SupportEvent:
    message = await asyncio.wait_for(call.read(), READ_TIMEOUT)
    assert message is not grpc.aio.EOF
    return message


@pytest.fixture
def service(callers):
    return callers.new("service")[1]


@pytest.fixture
def hub(replica):
    from app.server import GRPC

    return replica.app[GRPC].hub


# ---------------------------------------------------------------- publish


async def test_publish_appends_once_per_event_id_and_runs_the_hooks(stubs, service, ctx):
    seen: list[dict] = []

    async def hook(_ctx: AppContext, stored: dict) -> None:
        seen.append(stored)

    events_api.register_hook(hook)
    try:
        sent = event(str(uuid.uuid4()), payload={"booking_id": "B-7", "nights": 2, "ratio": 0.5})
        first = await stubs.events.PublishSupportEvent(sent, metadata=service)
        again = await stubs.events.PublishSupportEvent(sent, metadata=service)
    finally:
        events_api.unregister_hook(hook)
    assert (first.duplicate, again.duplicate) == (False, True)
    assert first.position == again.position and first.topic == "support-events"
    assert [str(e["event_id"]) for e in seen] == [sent.event_id]
    row = (await fetch(ctx, "SELECT * FROM support_events WHERE event_id = $1", uuid.UUID(sent.event_id)))[0]
    assert row["payload"] == {"booking_id": "B-7", "nights": 2, "ratio": 0.5}
    assert row["published_at"] is None and row["source"] == "booking-service"
    assert (
        await fetchval(
            ctx, "SELECT count(*) FROM audit_log WHERE action = 'event.publish' AND entity_id = $1", sent.event_id
        )
        == 1
    )


async def test_an_event_id_reused_for_another_event_is_already_exists(stubs, service):
    sent = event(str(uuid.uuid4()))
    await stubs.events.PublishSupportEvent(sent, metadata=service)
    other = pb.SupportEvent()
    other.CopyFrom(sent)
    other.type = "booking.cancelled"
    await fails(stubs.events.PublishSupportEvent(other, metadata=service), Code.ALREADY_EXISTS)


async def test_publish_validates_the_event(stubs, service):
    error = await fails(stubs.events.PublishSupportEvent(pb.SupportEvent(), metadata=service), Code.INVALID_ARGUMENT)
    assert {"event_id", "type", "entity_type", "entity_id", "source"} <= set(violations(error))
    bad = event("b-1", type_="Booking Cancelled", topic="elsewhere")
    bad.event_id = "42"
    error = await fails(stubs.events.PublishSupportEvent(bad, metadata=service), Code.INVALID_ARGUMENT)
    assert {"event_id", "type", "topic"} <= set(violations(error))
    error = await fails(
        stubs.events.PublishSupportEvent(event("b-1", type_="ticket.created"), metadata=service), Code.INVALID_ARGUMENT
    )
    assert "type" in violations(error)
    spoof = event("b-1", source="support-service")
    error = await fails(stubs.events.PublishSupportEvent(spoof, metadata=service), Code.INVALID_ARGUMENT)
    assert "source" in violations(error)


@pytest.mark.parametrize("role", ["customer", "agent", "supervisor"])
async def test_only_services_and_admins_publish(stubs, callers, role):
    await fails(stubs.events.PublishSupportEvent(event("b-1"), metadata=callers.new(role)[1]), Code.PERMISSION_DENIED)


async def test_publish_needs_a_token(stubs):
    await fails(stubs.events.PublishSupportEvent(event("b-1")), Code.UNAUTHENTICATED)


# ---------------------------------------------------------------- subscribe


@pytest.mark.parametrize("role", ["customer", "agent"])
async def test_customers_and_agents_may_not_subscribe(stubs, callers, role):
    call = stubs.events.SubscribeToSupportEvents(pb.SubscribeRequest(), metadata=callers.new(role)[1])
    await fails(call.read(), Code.PERMISSION_DENIED)


async def test_subscribe_request_errors(stubs, service):
    call = stubs.events.SubscribeToSupportEvents(
        pb.SubscribeRequest(after_event_id=str(uuid.uuid4())), metadata=service
    )
    await fails(call.read(), Code.NOT_FOUND)
    call = stubs.events.SubscribeToSupportEvents(pb.SubscribeRequest(types=["Not A Type"]), metadata=service)
    error = await fails(call.read(), Code.INVALID_ARGUMENT)
    assert "types" in violations(error)


async def test_subscribe_follows_new_events_live_with_filters(stubs, callers, service, hub):
    entity = str(uuid.uuid4())
    await stubs.events.PublishSupportEvent(event(entity, "booking.created"), metadata=service)  # before: not sent
    before = hub.listeners
    call = stubs.events.SubscribeToSupportEvents(
        pb.SubscribeRequest(entity_id=entity, types=["booking.cancelled", "payment.*"]),
        metadata=callers.new("supervisor")[1],
    )
    await until(lambda: hub.listeners > before)
    wanted = [event(entity, "booking.cancelled"), event(entity, "payment.refunded", payload={"amount": 120})]
    for sent in (event(entity, "booking.updated"), wanted[0], event(str(uuid.uuid4()), "booking.cancelled"), wanted[1]):
        await stubs.events.PublishSupportEvent(sent, metadata=service)
    received = [await read(call), await read(call)]
    assert [e.event_id for e in received] == [e.event_id for e in wanted]
    assert received[1].topic == "support-events" and received[1].source == "booking-service"
    assert struct_to_dict(received[1].payload) == {"amount": 120} and received[1].position > received[0].position
    call.cancel()
    await until(lambda: hub.listeners == before)


async def test_subscribe_resumes_after_an_event_id_then_goes_live(stubs, service, callers):
    entity = str(uuid.uuid4())
    sent = [event(entity) for _ in range(4)]
    for item in sent:
        await stubs.events.PublishSupportEvent(item, metadata=service)
    call = stubs.events.SubscribeToSupportEvents(
        pb.SubscribeRequest(entity_id=entity, after_event_id=sent[1].event_id), metadata=callers.new("admin")[1]
    )
    assert [(await read(call)).event_id for _ in range(2)] == [sent[2].event_id, sent[3].event_id]
    later = event(entity)
    await stubs.events.PublishSupportEvent(later, metadata=service)
    assert (await read(call)).event_id == later.event_id
    call.cancel()


async def test_subscribe_from_the_beginning_sees_the_service_own_events(stubs, service, callers):
    from support_stubs.support.v1 import support_pb2

    customer_id, customer = callers.new("customer")
    created = await stubs.support.CreateTicket(
        support_pb2.CreateTicketRequest(subject="s", description="d"), metadata=customer
    )
    call = stubs.events.SubscribeToSupportEvents(
        pb.SubscribeRequest(
            entity_type="ticket", entity_id=created.ticket.id, from_beginning=True, topics=["ticket-events"]
        ),
        metadata=service,
    )
    first = await read(call)
    assert (first.type, first.source, first.actor_id) == ("ticket.created", "support-service", str(customer_id))
    assert struct_to_dict(first.payload)["ticket_number"] == created.ticket.ticket_number
    call.cancel()


async def test_a_late_commit_behind_a_newer_position_is_not_skipped(stubs, service, ctx, hub):
    """A transaction that took its txid first but commits its event after a younger one's."""
    entity = str(uuid.uuid4())
    marker = event(entity)
    await stubs.events.PublishSupportEvent(marker, metadata=service)
    call = stubs.events.SubscribeToSupportEvents(
        pb.SubscribeRequest(entity_id=entity, after_event_id=marker.event_id), metadata=service
    )
    insert = (
        "INSERT INTO support_events (event_id, type, topic, entity_type, entity_id, source) "
        "VALUES ($1, 'booking.updated', 'support-events', 'booking', $2, 'booking-service')"
    )
    older, younger = uuid.uuid4(), uuid.uuid4()
    async with ctx.db.pool.acquire() as old_conn, ctx.db.pool.acquire() as new_conn:
        old_tx, new_tx = old_conn.transaction(), new_conn.transaction()
        await old_tx.start()
        await old_conn.fetchval("SELECT pg_current_xact_id()")  # the older txid
        await new_tx.start()
        await new_conn.execute(insert, younger, entity)  # the lower position
        await old_conn.execute(insert, older, entity)  # the higher position
        await old_tx.commit()  # commits first
        assert (await read(call)).event_id == str(older)
        await new_tx.commit()
    assert (await read(call)).event_id == str(younger)
    call.cancel()


async def test_a_slow_subscriber_uses_bounded_memory_and_loses_nothing(ctx, service, stubs):
    hub = events_api.EventHub(ctx, queue_size=5, page=50)
    await hub.start()
    entity = str(uuid.uuid4())
    try:
        sub = await hub.subscribe(events_api.EventFilter(entity_id=entity), await _head(ctx))
        sent = [event(entity) for _ in range(40)]
        for item in sent:
            await stubs.events.PublishSupportEvent(item, metadata=service)
        await until(lambda: sub.overflows > 0)
        assert sub.buffered <= 5
        received = [str((await asyncio.wait_for(sub.next(), READ_TIMEOUT))["event_id"]) for _ in sent]
        assert received == [e.event_id for e in sent]
        sub.close()
        assert hub.listeners == 0
    finally:
        await hub.stop()


async def _head(ctx: AppContext) -> events_api.Cursor:
    async with ctx.db.connection() as conn:
        return await events_api.head(ctx, conn)


# ---------------------------------------------------------------- server lifecycle


async def test_health_and_reflection_work_without_a_token(stubs):
    health = health_pb2_grpc.HealthStub(stubs.channel)
    for service_name in ("", *SERVICES):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service_name))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    reflect = reflection_pb2_grpc.ServerReflectionStub(stubs.channel)
    call = reflect.ServerReflectionInfo()
    await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    listed = {s.name for s in (await call.read()).list_services_response.service}
    await call.write(reflection_pb2.ServerReflectionRequest(file_containing_symbol="support.v1.SupportService"))
    described = await call.read()
    await call.done_writing()
    assert {*SERVICES, "grpc.health.v1.Health"} <= listed
    assert described.file_descriptor_response.file_descriptor_proto


async def test_while_the_database_is_down_health_is_not_serving_and_calls_unavailable(ctx, callers):
    from kafka_broker import free_port

    nowhere = await asyncpg.create_pool(f"postgresql://postgres@127.0.0.1:{free_port()}/none", min_size=0, max_size=1)
    down = dataclasses.replace(ctx, db=Database(nowhere))
    server = GrpcServer(down, host="127.0.0.1", port=0, health_interval=0.05)
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(service="support.v1.SupportService"))
        assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(RuntimeError):
            await server.report()
        from support_stubs.support.v1 import support_pb2, support_pb2_grpc

        await fails(
            support_pb2_grpc.SupportServiceStub(channel).ListTickets(
                support_pb2.ListTicketsRequest(), metadata=callers.new("customer")[1]
            ),
            Code.UNAVAILABLE,
        )

        async def answers() -> None:  # the database is back
            async with ctx.db.connection() as conn:
                await conn.fetchval("SELECT 1")

        server.db_check = answers
        await until(lambda: server.serving, timeout=2)
        reply = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await channel.close()
        await server.stop(0)
        await nowhere.close()


async def test_shutdown_drains_streams_with_unavailable(ctx, callers):
    server = GrpcServer(ctx, host="127.0.0.1", port=0)
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        stub = events_pb2_grpc.SupportEventServiceStub(channel)
        call = stub.SubscribeToSupportEvents(pb.SubscribeRequest(), metadata=callers.new("service")[1])
        await until(lambda: server.hub.listeners == 1)
        started = time.monotonic()
        stopping = asyncio.create_task(server.stop(10))
        error = await fails(call.read(), Code.UNAVAILABLE)
        assert "resubscribe" in error.details()
        await stopping
        assert time.monotonic() - started < 5  # the stream did not hold the server for its grace
        assert not server.serving
    finally:
        await channel.close()


# ---------------------------------------------------------------- retention


async def test_retention_prunes_old_published_events_and_keeps_pending_ones(ctx):
    old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=ctx.settings.event_retention_days + 1)
    ids = {name: uuid.uuid4() for name in ("old_published", "old_pending", "new_published")}
    for name, event_id in ids.items():
        await execute(
            ctx,
            "INSERT INTO support_events (event_id, type, topic, entity_type, entity_id, source, "
            "created_at, published_at) VALUES ($1, 'booking.updated', 'support-events', 'booking', "
            "'b', 'booking-service', $2, $3)",
            event_id,
            old if name.startswith("old") else dt.datetime.now(dt.timezone.utc),
            None if name == "old_pending" else dt.datetime.now(dt.timezone.utc),
        )

    async def present() -> set[str]:
        rows = await fetch(ctx, "SELECT event_id FROM support_events WHERE event_id = ANY($1)", list(ids.values()))
        return {name for name, event_id in ids.items() if event_id in {r["event_id"] for r in rows}}

    assert await prune(ctx, include_unpublished=False) >= 1
    assert await present() == {"old_pending", "new_published"}
    await prune(ctx, include_unpublished=True)  # no relay runs: the table alone is the log
    assert await present() == {"new_published"}
