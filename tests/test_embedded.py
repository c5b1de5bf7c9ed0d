"""The embedded PostgreSQL and Valkey run as real children, keep data across restarts and die with us."""

from __future__ import annotations

import os
import pwd
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from app.embedded import PG_OS_USER, EmbeddedPostgres, EmbeddedRedis, EmbeddedServerError, free_port

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def pg_data(tmp_path: Path) -> Iterator[Path]:
    data = tmp_path / "postgres"
    yield data
    # As root the cluster may live under /var/lib (see app.embedded): leave nothing behind.
    EmbeddedPostgres(data).remove_data()


def _exits_within(pidfd: int, timeout: float) -> bool:
    """A pidfd turns readable when its process exits (children of others included)."""
    return bool(select.select([pidfd], [], [], timeout)[0])


async def test_postgres_keeps_its_data_across_restarts(pg_data: Path) -> None:
    pg = EmbeddedPostgres(pg_data)
    with pg:
        assert pg.dsn == f"postgresql://postgres@127.0.0.1:{pg.port}/support"
        conn = await asyncpg.connect(pg.dsn)
        try:
            assert int(await conn.fetchval("SHOW server_version_num")) >= 180000
            await conn.execute("CREATE EXTENSION pg_trgm")
            await conn.execute("CREATE TABLE notes (body text NOT NULL)")
            await conn.execute("INSERT INTO notes VALUES ($1)", "Printer on fire in Zürich")
            assert (
                await conn.fetchval("SELECT body FROM notes WHERE body % $1", "printer fire zurich")
                == "Printer on fire in Zürich"
            )
            assert await conn.fetchval("SELECT lower('ZÜRICH')") == "zürich"
        finally:
            await conn.close()
        first_port, cluster = pg.port, pg.pgdata
        assert cluster is not None and (cluster / "PG_VERSION").is_file()
        if os.geteuid() == 0:
            assert cluster.stat().st_uid == pwd.getpwnam(PG_OS_USER).pw_uid
    assert not pg.running and pg.dsn is None
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", first_port), timeout=1).close()

    again = EmbeddedPostgres(pg_data, ephemeral=True)
    with again:
        conn = await asyncpg.connect(again.dsn)
        try:
            assert await conn.fetchval("SELECT body FROM notes") == "Printer on fire in Zürich"
            assert await conn.fetchval("SELECT extname FROM pg_extension WHERE extname = 'pg_trgm'")
        finally:
            await conn.close()
    log = (pg_data / "postgres.log").read_text()
    assert log.count("The files belonging to this database system") == 1  # initdb ran once
    assert log.count("received fast shutdown request") == 2
    assert not os.path.lexists(pg_data / "pgdata") and not cluster.exists()  # ephemeral: removed


async def test_postgres_on_a_requested_port_restarts_cleanly(pg_data: Path) -> None:
    port = free_port()
    pg = EmbeddedPostgres(pg_data, port=port, ephemeral=True)
    assert pg.start() == f"postgresql://postgres@127.0.0.1:{port}/support"
    try:
        assert pg.start() == pg.dsn  # idempotent
        conn = await asyncpg.connect(pg.dsn)
        assert await conn.fetchval("SELECT current_database()") == "support"
        await conn.close()
    finally:
        pg.stop()
    pg.stop()  # idempotent too


async def test_redis_set_and_get(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path / "redis") as server:
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        client = aioredis.Redis.from_url(server.url)
        try:
            assert await client.set("greeting", "hello", ex=60)
            assert await client.get("greeting") == b"hello"
            assert (await client.info("server"))["redis_version"].startswith("7.")
        finally:
            await client.aclose()
    assert (tmp_path / "redis" / "valkey.log").read_text().count("Ready to accept connections") == 1
    assert not any((tmp_path / "redis").glob("*.rdb"))


def test_a_taken_port_is_reported_with_the_log(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = EmbeddedRedis(tmp_path / "redis", port=taken.getsockname()[1])
        with pytest.raises(EmbeddedServerError, match=r"(?s)exited with code .*valkey\.log.*in use"):
            server.start()
    assert not server.running


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs Linux pidfds")
def test_children_die_when_the_parent_is_killed(tmp_path: Path) -> None:
    script = (
        "import sys; from pathlib import Path; from app.embedded import EmbeddedRedis\n"
        "server = EmbeddedRedis(Path(sys.argv[1])); server.start()\n"
        "print(server._proc.pid, flush=True); sys.stdin.read()\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "redis")],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        pidfd = os.pidfd_open(child)
        try:
            assert not _exits_within(pidfd, 0)
            parent.send_signal(signal.SIGKILL)  # no chance to stop its children itself
            parent.wait(10)
            assert _exits_within(pidfd, 10), f"valkey pid {child} outlived its parent"
        finally:
            os.close(pidfd)
    finally:
        parent.kill()
        parent.wait()
        parent.stdin.close()  # type: ignore[union-attr]
        parent.stdout.close()  # type: ignore[union-attr]
