"""schemathesis over the whole OpenAPI document, against a real replica, with an admin's and a
customer's token. Bounded (a few examples per operation, the fuzzing phase;
SCHEMATHESIS_MAX_EXAMPLES / SCHEMATHESIS_PHASES to go deeper).

Every check runs (``--checks all``): no server error, status codes, content types, headers,
response schemas, schema-violating input refused and schema-valid input accepted, auth and
resource checks. tests/schemathesis.toml names the few operations whose rules span fields or
depend on the caller (OpenAPI cannot say them) and where a 422 is therefore an expected answer to
schema-valid data. SCHEMATHESIS_EXCLUDE_CHECKS (comma-separated) switches checks off to look at
one at a time; nothing is excluded by default."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from app.auth import issue_token
from app.migrate import migrate
from chat_support import Replica, replica_env

MAX_EXAMPLES = os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "5")
PHASES = os.environ.get("SCHEMATHESIS_PHASES", "fuzzing")
EXCLUDE_CHECKS = os.environ.get("SCHEMATHESIS_EXCLUDE_CHECKS", "")
CONFIG = Path(__file__).with_name("schemathesis.toml")
TIME_LIMIT_SECONDS = 300


@pytest.fixture(scope="module")
async def replica(
    service_urls: tuple[str, str], test_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Replica]:
    """A replica on a database of its own: schemathesis creates agents, rules, SLA targets and
    notifications at random, which must not leak into the rest of the suite's shared database."""
    admin_dsn, _ = service_urls
    name = f"support_fuzz_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    dsn = f"{admin_dsn.rpartition('/')[0]}/{name}"
    await migrate(dsn)
    logs = tmp_path_factory.mktemp("schemathesis")
    redis_db = str((int(test_env.get("REDIS_DATABASE", "0")) + 1) % 16)  # its own caches and fan-out channel
    env = replica_env({**test_env, "DATABASE_URL": dsn, "REDIS_DATABASE": redis_db})
    server = Replica("S", f"http://127.0.0.1:{env['SERVER_PORT']}", env, log_path=logs / "replica.log")
    server.start()
    try:
        await server.wait_ready()
        yield server
    finally:
        server.stop()
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.mark.parametrize("role", ["admin", "customer"])
def test_the_api_conforms_to_its_openapi_document(replica: Replica, settings, role: str, tmp_path: Path):
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert cli, "schemathesis is in the test extra"
    token = issue_token(settings.jwt_secret, uuid.uuid4(), role, ttl=3600, name="Fuzz", email="fuzz@example.com")
    result = subprocess.run(
        [
            cli,
            "--config-file",
            str(CONFIG),
            "run",
            f"{replica.url}/api/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            MAX_EXAMPLES,
            "--phases",
            PHASES,
            *(["--exclude-checks", EXCLUDE_CHECKS] if EXCLUDE_CHECKS else []),
            "--header",
            f"Authorization: Bearer {token}",
            "--seed",
            "17",
            "--generation-deterministic",
            "--request-timeout",
            "20",
            "--suppress-health-check",
            "all",
            "--no-color",
            # text PostgreSQL cannot store is refused by design (app/validation.py): NUL and lone surrogates
            "--generation-allow-x00",
            "false",
            "--generation-codec",
            "utf-8",
            "--report",
            "junit",
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=TIME_LIMIT_SECONDS,
        env={**os.environ, "NO_COLOR": "1"},
        cwd=tmp_path,
    )  # its .schemathesis/ cache goes there, not into the checkout
    (Path(os.environ.get("SCHEMATHESIS_LOG_DIR", tmp_path)) / f"schemathesis-{role}.log").write_text(
        result.stdout + result.stderr
    )
    assert result.returncode == 0, result.stdout[-12000:] + result.stderr[-3000:]
