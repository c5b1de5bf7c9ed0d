"""Small helpers shared by the REST test modules: request bodies, problem checks, raw SQL."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from app.context import AppContext

PROBLEM_JSON = "application/problem+json"
TICKETS = "/api/v1/tickets"


def ticket_body(**fields: Any) -> dict[str, Any]:
    """A valid create body; every call gets a unique subject so tests can find their tickets."""
    body: dict[str, Any] = {"subject": f"Help {uuid.uuid4().hex[:8]}", "description": "My booking page shows an error."}
    body.update(fields)
    return body


async def create_ticket(client: TestClient, headers: dict[str, str], **fields: Any) -> dict:
    response = await client.post(TICKETS, json=ticket_body(**fields), headers=headers)
    assert response.status == 201, await response.text()
    return await response.json()


async def create_for(client: TestClient, staff_headers: dict[str, str], customer_id: uuid.UUID, **fields: Any) -> dict:
    """A ticket created by staff (or a service) on behalf of a customer."""
    return await create_ticket(client, staff_headers, customer_id=str(customer_id), **fields)


async def problem(response: ClientResponse, status: int) -> dict:
    """Assert an RFC 9457 problem response with ``status`` and return its body."""
    text = await response.text()
    assert response.status == status, text
    assert response.content_type == PROBLEM_JSON, response.content_type
    body = await response.json(content_type=None)
    assert body["status"] == status
    assert body["title"] and body["detail"] and body["type"]
    return body


async def set_status(
    client: TestClient, headers: dict[str, str], ticket_id: str, status: str, **extra: Any
) -> ClientResponse:
    return await client.patch(f"{TICKETS}/{ticket_id}/status", json={"status": status, **extra}, headers=headers)


async def fetchval(ctx: AppContext, sql: str, *args: Any) -> Any:
    async with ctx.db.pool.acquire() as conn:
        return await conn.fetchval(sql, *args)


async def fetch(ctx: AppContext, sql: str, *args: Any) -> list:
    async with ctx.db.pool.acquire() as conn:
        return await conn.fetch(sql, *args)


async def execute(ctx: AppContext, sql: str, *args: Any) -> str:
    async with ctx.db.pool.acquire() as conn:
        return await conn.execute(sql, *args)


async def start_active_chat(ctx: AppContext, customer_id: uuid.UUID, agent_id: uuid.UUID) -> None:
    """An active chat between the agent and the customer (the chat feature is not built yet)."""
    await execute(
        ctx,
        "INSERT INTO chat_sessions (session_id, customer_id, agent_id, status) VALUES ($1, $2, $3, 'active')",
        f"test-{uuid.uuid4().hex}",
        customer_id,
        agent_id,
    )
