"""Replicas starting together: migrations race safely, and two app instances on one database
hand out distinct ticket numbers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from app.config import Settings
from app.context import open_context
from app.migrate import MigrationError, available, check_up_to_date, migrate, pending
from helpers import TICKETS, ticket_body
from app.server import build_rest


@pytest.fixture
async def fresh_dsn(service_urls) -> AsyncIterator[str]:
    """An empty database of its own, dropped afterwards."""
    admin_dsn, _ = service_urls
    name = f"support_migrate_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, _ = admin_dsn.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def _fetch(dsn: str, sql: str) -> list:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


async def test_racing_migrations_apply_each_migration_once(fresh_dsn):
    first, second = await asyncio.gather(migrate(fresh_dsn), migrate(fresh_dsn))
    every = [f"{m.version:04d}_{m.name}" for m in available()]
    assert "0001_initial" in every
    assert sorted([first, second], key=len) == [[], every]
    rows = await _fetch(fresh_dsn, "SELECT version, name FROM schema_migrations ORDER BY version")
    assert [(r["version"], r["name"]) for r in rows] == [(m.version, m.name) for m in available()]
    assert sum(1 for r in rows if r["version"] == 1) == 1
    # The schema is really there, seeded once.
    departments = await _fetch(fresh_dsn, "SELECT name FROM departments WHERE name = 'general'")
    assert len(departments) == 1
    await check_up_to_date(fresh_dsn)


async def test_migrating_again_applies_nothing(fresh_dsn):
    assert await migrate(fresh_dsn)
    assert await migrate(fresh_dsn) == []


async def test_unmigrated_database_is_reported_behind(fresh_dsn):
    with pytest.raises(MigrationError, match="0001_initial"):
        await check_up_to_date(fresh_dsn)


async def test_edited_migration_is_refused(fresh_dsn):
    await migrate(fresh_dsn)
    conn = await asyncpg.connect(fresh_dsn)
    try:
        await conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await pending(conn)
    finally:
        await conn.close()


async def test_two_app_instances_hand_out_distinct_ticket_numbers(fresh_dsn, test_env, users):
    await asyncio.gather(migrate(fresh_dsn), migrate(fresh_dsn))
    settings = Settings.from_env({**test_env, "DATABASE_URL": fresh_dsn})
    customer_id, _ = users.new("customer")
    _, service = users.new("service")

    async def create_many(client: TestClient, count: int) -> list[dict]:
        async def one() -> dict:
            response = await client.post(TICKETS, json=ticket_body(customer_id=str(customer_id)), headers=service)
            assert response.status == 201, await response.text()
            return await response.json()

        return await asyncio.gather(*(one() for _ in range(count)))

    async with open_context(settings) as ctx_a, open_context(settings) as ctx_b:
        async with (
            TestClient(TestServer(build_rest(settings, context=ctx_a))) as app_a,
            TestClient(TestServer(build_rest(settings, context=ctx_b))) as app_b,
        ):
            made_a, made_b = await asyncio.gather(create_many(app_a, 20), create_many(app_b, 20))
        rows = await ctx_a.db.pool.fetch(
            "SELECT id, ticket_number FROM support_tickets WHERE customer_id = $1", customer_id
        )

    numbers = [t["ticket_number"] for t in made_a + made_b]
    assert len(numbers) == 40
    assert len(set(numbers)) == 40
    assert {r["ticket_number"] for r in rows} == set(numbers)
    assert len({t["id"] for t in made_a + made_b}) == 40
