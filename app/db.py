"""asyncpg pool and the named SQL queries of ``sql/queries/*.sql`` (aiosql), loaded once."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiosql
import asyncpg

from sql import QUERIES_DIR

log = logging.getLogger(__name__)
CLOSE_TIMEOUT_SECONDS = 10.0  # how long shutdown waits for connections still in use


class _Queries:
    """aiosql's queries, with multi-row selects returning lists instead of async generators."""

    def __init__(self, loaded: aiosql.queries.Queries):
        self._loaded = loaded

    def __getattr__(self, name: str) -> Any:
        loaded = getattr(self._loaded, name)
        fn = loaded
        if inspect.isasyncgenfunction(loaded):

            async def fn(conn: asyncpg.Connection, **params: Any) -> list[asyncpg.Record]:
                return [row async for row in loaded(conn, **params)]

        setattr(self, name, fn)  # resolved once per query name
        return fn


queries: Any = _Queries(aiosql.from_path(QUERIES_DIR, "asyncpg"))


async def _init_connection(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """No reset round trip on every release (asyncpg's default costs one per query path).
    Nothing leaves session state behind: advisory locks are released by their holders (see
    :func:`unlock_or_discard`), listeners removed, and no code sets session settings."""


async def unlock_or_discard(conn: asyncpg.Connection, key: int) -> None:
    """Release a session advisory lock; if that fails, drop the connection so the lock dies with it."""
    try:
        await asyncio.shield(conn.execute("SELECT pg_advisory_unlock($1)", key))
    except BaseException:
        conn.terminate()
        raise


def contains_pattern(text: str | None) -> str | None:
    """An ILIKE pattern matching ``text`` anywhere, its own % _ and \\ taken literally; None for
    no text (the queries' optional filters)."""
    if not text:
        return None
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def fetch_page(
    query: Any, conn: asyncpg.Connection, *, limit: int, offset: int, **params: Any
) -> tuple[list[asyncpg.Record], int]:
    """A page of a list query whose rows carry ``count(*) OVER () AS total``, and that total.

    An empty page past the end still reports how many rows match (from the first page), so a
    client that overshot learns where the list ends."""
    rows = await query(conn, **params, limit=limit, offset=offset)
    if rows:
        return rows, rows[0]["total"]
    if offset == 0:
        return rows, 0
    first = await query(conn, **params, limit=1, offset=0)
    return rows, first[0]["total"] if first else 0


class Database:
    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool
        self.q = queries

    @classmethod
    async def connect(cls, dsn: str, *, max_size: int = 10) -> Database:
        pool = await asyncpg.create_pool(
            dsn, min_size=1, max_size=max_size, init=_init_connection, command_timeout=30, reset=_keep_session
        )
        return cls(pool)

    async def close(self, timeout: float = CLOSE_TIMEOUT_SECONDS) -> None:
        """Close gracefully; a connection still held past ``timeout`` (a task that never released
        it, a server that stopped answering) is terminated so shutdown cannot hang."""
        try:
            await asyncio.wait_for(self.pool.close(), timeout)
        except (TimeoutError, asyncio.TimeoutError):
            log.warning("database pool did not close in %.0f s; terminating its connections", timeout)
            self.pool.terminate()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield conn

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.pool.acquire() as conn:
            yield conn

    @property
    def in_use(self) -> int:
        return self.pool.get_size() - self.pool.get_idle_size()
