"""Forward-only migrations from ``sql/migrations/NNNN_name.sql``, applied in order.

Every replica may call :func:`migrate` at start: a session advisory lock makes the others wait,
then find nothing left to do. A migration that was edited after it ran is refused (checksum).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re

import asyncpg

from sql import MIGRATIONS_DIR

log = logging.getLogger(__name__)

_LOCK_KEY = 0x5355505054  # "SUPPT": one advisory lock id for migrations, cluster-wide
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(Exception):
    pass


@dataclasses.dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available() -> list[Migration]:
    found = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"migration file name not NNNN_name.sql: {path.name}")
        found.append(Migration(int(match[1]), match[2], path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migrations share a version number")
    return found


async def _applied(conn: asyncpg.Connection) -> dict[int, str]:
    await conn.execute(
        """CREATE TABLE IF NOT EXISTS schema_migrations (
               version    INTEGER PRIMARY KEY,
               name       TEXT NOT NULL,
               checksum   TEXT NOT NULL,
               applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"""
    )
    rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
    return {r["version"]: r["checksum"] for r in rows}


async def pending(conn: asyncpg.Connection) -> list[Migration]:
    applied = await _applied(conn)
    for m in available():
        if m.version in applied and applied[m.version] != m.checksum:
            raise MigrationError(f"migration {m.version:04d}_{m.name} changed after it was applied")
    return [m for m in available() if m.version not in applied]


async def migrate(dsn: str) -> list[str]:
    """Apply every pending migration; returns the names applied by this call."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            done = []
            for m in await pending(conn):
                async with conn.transaction():
                    await conn.execute(m.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                        m.version,
                        m.name,
                        m.checksum,
                    )
                log.info("migration applied", extra={"migration": f"{m.version:04d}_{m.name}"})
                done.append(f"{m.version:04d}_{m.name}")
            return done
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    finally:
        await conn.close()


async def check_up_to_date(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        waiting = await pending(conn)
    finally:
        await conn.close()
    if waiting:
        names = ", ".join(f"{m.version:04d}_{m.name}" for m in waiting)
        raise MigrationError(f"database schema is behind: pending migrations {names} (run `support-service migrate`)")
