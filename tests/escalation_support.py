"""Shared pieces for the escalation, SLA and notification tests: a frozen-clock context, service
callers and tickets in categories (and departments) of their own, so the shared database's other
tickets never match."""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

from app.auth import Principal, RequestMeta
from app.clock import FrozenClock
from app.config import Settings
from app.context import AppContext, open_context
from app.services import tickets

META = RequestMeta(transport="test")
ADMIN = Principal(uuid.uuid4(), "admin")
SUPERVISOR = Principal(uuid.uuid4(), "supervisor")


def unique(prefix: str = "esc") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


@contextlib.asynccontextmanager
async def frozen(
    settings: Settings, start: dt.datetime | None = None, **overrides: Any
) -> AsyncIterator[tuple[AppContext, FrozenClock]]:
    clock = FrozenClock(start or utcnow())
    if overrides:
        import dataclasses

        settings = dataclasses.replace(settings, **overrides)
    async with open_context(settings, clock=clock) as ctx:
        yield ctx, clock


async def department(ctx: AppContext, name: str | None = None) -> str:
    """A department routing a category of the same name, so its tickets are ours alone."""
    name = name or unique()
    async with ctx.db.pool.acquire() as conn:
        await conn.execute("INSERT INTO departments (name) VALUES ($1)", name)
    return name


async def new_ticket(ctx: AppContext, category: str, *, customer: Principal | None = None, **fields: Any) -> dict:
    """A ticket of ``category``; a ``priority`` is given at creation (so the SLA due times follow
    it), other ``fields`` by an admin's update afterwards."""
    customer = customer or Principal(uuid.uuid4(), "customer")
    data = {"subject": f"Help {uuid.uuid4().hex[:8]}", "description": "It broke.", "category": category}
    if "priority" in fields:
        data.update(customer_id=customer.user_id, customer_email=customer.email, priority=fields.pop("priority"))
        ticket = await tickets.create_ticket(ctx, ADMIN, META, data)
    else:
        ticket = await tickets.create_ticket(ctx, customer, META, data)
    if fields:
        ticket = await tickets.update_ticket(ctx, ADMIN, META, ticket["id"], fields)
    return ticket


async def row(ctx: AppContext, ticket_id: Any) -> dict:
    async with ctx.db.pool.acquire() as conn:
        return dict(await conn.fetchrow("SELECT * FROM support_tickets WHERE id = $1", ticket_id))


async def escalations(ctx: AppContext, ticket_id: Any) -> list[dict]:
    async with ctx.db.pool.acquire() as conn:
        return [
            dict(r)
            for r in await conn.fetch(
                "SELECT * FROM ticket_escalations WHERE ticket_id = $1 ORDER BY created_at, id", ticket_id
            )
        ]


async def events(ctx: AppContext, ticket_id: Any, event_type: str) -> list[dict]:
    async with ctx.db.pool.acquire() as conn:
        return [
            dict(r)
            for r in await conn.fetch(
                "SELECT * FROM support_events WHERE entity_type = 'ticket' AND entity_id = $1 AND type = $2"
                " ORDER BY position",
                str(ticket_id),
                event_type,
            )
        ]
