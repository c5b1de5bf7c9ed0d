"""The User Service client: a real grpc.aio server implementing the assumed ``user.v1`` contract
stands in for the other team's service and records what it is asked."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest

from app.auth import Principal
from app.clients.user_service import UserDirectory
from app.services import escalation, notifications
from support_stubs.user.v1 import user_pb2, user_pb2_grpc
from tests.escalation_support import ADMIN, META, department, frozen, new_ticket, unique
from tests.test_notifications import email_worker, rows_for

SLOW = "slow-user"


class Users(user_pb2_grpc.UserServiceServicer):
    def __init__(self) -> None:
        self.known: dict[str, str] = {}
        self.requests: list[str] = []
        self.delay = 1.0

    def add(self, user_id: object, email: str | None = None) -> str:
        email = email or f"{uuid.uuid4().hex[:8]}@staff.example.com"
        self.known[str(user_id)] = email
        return email

    async def GetUser(self, request: user_pb2.GetUserRequest, context: grpc.aio.ServicerContext) -> user_pb2.User:
        self.requests.append(request.id)
        if request.id == SLOW:
            await asyncio.sleep(self.delay)
        if request.id not in self.known:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such user")
        return user_pb2.User(id=request.id, email=self.known[request.id], name="N", role="agent")


@contextlib.asynccontextmanager
async def user_service() -> AsyncIterator[tuple[Users, str]]:
    users = Users()
    server = grpc.aio.server()
    user_pb2_grpc.add_UserServiceServicer_to_server(users, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield users, f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


async def test_lookups_are_cached_and_failures_answer_none() -> None:
    async with user_service() as (users, target):
        known = str(uuid.uuid4())
        address = users.add(known)
        missing = str(uuid.uuid4())
        directory = UserDirectory(target, timeout=0.3)
        try:
            assert await directory.email_of(known) == address
            assert await directory.email_of(uuid.UUID(known)) == address  # same key, from the cache
            assert users.requests == [known]
            assert await directory.email_of(missing) is None
            assert await directory.email_of(missing) is None  # negative result cached too
            assert users.requests == [known, missing]
            assert await directory.email_of(SLOW) is None  # deadline exceeded
            assert users.requests[-1] == SLOW
            assert await directory.email_of(None) is None
        finally:
            await directory.close()


async def test_expiry_size_bound_and_shorter_negative_ttl() -> None:
    now = [0.0]
    async with user_service() as (users, target):
        a, b = str(uuid.uuid4()), str(uuid.uuid4())
        users.add(a)
        directory = UserDirectory(target, ttl=300, negative_ttl=30, max_size=1, monotonic=lambda: now[0])
        try:
            await directory.email_of(b)  # miss: cached for 30 s
            now[0] = 31
            users.add(b)
            assert await directory.email_of(b)  # asked again after the negative TTL
            assert users.requests == [b, b]
            await directory.email_of(a)  # evicts b (size 1)
            await directory.email_of(b)
            assert users.requests == [b, b, a, b]
            now[0] = 31 + 299
            await directory.email_of(b)  # still fresh
            now[0] = 31 + 301 + 1
            await directory.email_of(b)  # expired
            assert users.requests == [b, b, a, b, b]
        finally:
            await directory.close()


async def test_an_unreachable_service_answers_none() -> None:
    directory = UserDirectory("127.0.0.1:1", timeout=0.5)
    try:
        assert await directory.email_of(uuid.uuid4()) is None
    finally:
        await directory.close()


@pytest.mark.parametrize("configured", [True, False])
async def test_the_context_holds_a_directory_only_when_configured(settings, configured) -> None:
    url = "127.0.0.1:1" if configured else None
    async with frozen(settings, grpc_user_service_url=url) as (ctx, _):
        assert (ctx.users is not None) is configured


async def test_escalation_mails_agent_supervisor_and_customer_through_the_directory(settings) -> None:
    async with (
        user_service() as (users, target),
        email_worker() as (worker, url),
        frozen(settings, email_service_url=url, grpc_user_service_url=target) as (ctx, _),
    ):
        cat = await department(ctx, unique())
        agent, supervisor, unknown_supervisor = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        async with ctx.db.pool.acquire() as conn:
            for user_id, role in ((agent, "agent"), (supervisor, "supervisor"), (unknown_supervisor, "supervisor")):
                await conn.execute(
                    "INSERT INTO support_agents (user_id, display_name, role, department, max_tickets)"
                    " VALUES ($1, $2, $3, $4, 50)",
                    user_id,
                    role,
                    role,
                    cat,
                )
        agent_mail, supervisor_mail = users.add(agent), users.add(supervisor)
        who = Principal(uuid.uuid4(), "customer", name="Bo")  # no email claim: the directory has it
        customer_mail = users.add(who.user_id)
        await escalation.create_rule(
            ctx,
            ADMIN,
            META,
            {
                "rule_name": unique(),
                "conditions": {"category": [cat]},
                "actions": {"notify": ["customer", "agent", "supervisors"], "reassign_to": {"agent_id": str(agent)}},
            },
        )
        ticket = await new_ticket(ctx, cat, customer=who)
        await escalation.evaluate_ticket(ctx, ticket["id"])
        await notifications.tick(ctx)
        await notifications.tick(ctx)  # nothing twice

        # the shared database's other escalations may mail this supervisor too: look at ours only
        worker.requests = [r for r in worker.requests if r["data"]["ticket_id"] == str(ticket["id"])]
        assert sorted(r["template"] for r in worker.to(customer_mail)) == ["ticket-created", "ticket-escalated"]
        [to_agent] = worker.to(agent_mail)
        [to_supervisor] = worker.to(supervisor_mail)
        assert to_agent["template"] == to_supervisor["template"] == "ticket-escalated"
        assert to_agent["key"].endswith(f":{agent}") and to_supervisor["key"].endswith(f":{supervisor}")
        assert to_agent["key"].split(":")[0] == to_supervisor["key"].split(":")[0]  # one event
        assert len(worker.requests) == 4  # the unknown supervisor is skipped
        assert users.requests.count(str(who.user_id)) == 1  # cached between the two events
        rows = await rows_for(ctx, ticket["id"])
        assert sorted(r["recipient_key"] for r in rows) == sorted(["customer", "customer", str(agent), str(supervisor)])
        assert all(r["status"] == "sent" for r in rows)
