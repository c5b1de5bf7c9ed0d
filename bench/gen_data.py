#!/usr/bin/env python
"""Fill a database with a year of help-desk data for the analytics and KB search benchmark.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/support_bench \\
    DATA_ENCRYPTION_KEYS=bench:$(python -c 'import base64,os;print(base64.b64encode(os.urandom(32)).decode())') \\
    .venv/bin/python bench/gen_data.py                # 100 000 tickets, 1 000 000 chat messages, ...
    .venv/bin/python bench/gen_data.py --quick        # a tenth of everything, for a quick look

Full size: 100 000 tickets (8 % escalated), 100 000 chat sessions with 1 000 000 messages,
5 000 KB articles (90 % published) and 50 000 feedback rows, spread over the year ending now.
Rows are made inside PostgreSQL (INSERT ... SELECT over generate_series, bench/gen_data.sql), so
a full run takes well under a minute. The database is migrated first; generated rows are
tagged (BENCH-..., bench-...) and the run refuses a database that already has them. Encrypted
columns hold one real ciphertext under the first DATA_ENCRYPTION_KEYS key, so the app started
with the same keys can read every row.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import aiosql
import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.config import parse_encryption_keys  # noqa: E402
from app.migrate import migrate  # noqa: E402
from app.security.encryption import FieldCipher  # noqa: E402

QUERIES = aiosql.from_path(Path(__file__).with_name("gen_data.sql"), "asyncpg")
FULL = {
    "agents": 60,
    "tickets": 100_000,
    "chat_sessions": 100_000,
    "chat_messages": 1_000_000,
    "articles": 5_000,
    "feedback_tickets": 30_000,
    "feedback_chats": 20_000,
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--database-url", default=os.environ.get("DATABASE_URL"), help="PostgreSQL DSN (default: $DATABASE_URL)"
    )
    p.add_argument("--quick", action="store_true", help="a tenth of the full size")
    p.add_argument("--scale", type=float, default=None, help="multiply every count (default 1, or 0.1 with --quick)")
    p.add_argument("--seed", type=float, default=0.42, help="random seed in [-1, 1] (same seed, same data)")
    return p.parse_args()


def log(*parts: object) -> None:
    print(f"[gen {time.strftime('%H:%M:%S')}]", *parts, file=sys.stderr, flush=True)


async def step(conn: asyncpg.Connection, name: str, query, **params) -> None:
    started = time.perf_counter()
    async with conn.transaction():
        await QUERIES.seed(conn, seed=params.pop("_seed"))
        await query(conn, **params)
    log(f"{name}: {time.perf_counter() - started:.1f} s")


async def generate(dsn: str, scale: float, seed: float) -> dict:
    keys = os.environ.get("DATA_ENCRYPTION_KEYS")
    if not keys:
        raise SystemExit("DATA_ENCRYPTION_KEYS is required (the app reading this data needs the same keys)")
    cipher = FieldCipher(parse_encryption_keys(keys))
    counts = {k: max(1, int(v * scale)) for k, v in FULL.items()}
    log("migrating", await migrate(dsn) or "(up to date)")
    conn = await asyncpg.connect(dsn)
    try:
        if await QUERIES.has_bench_data(conn):
            raise SystemExit("this database already has benchmark data; use a fresh one")
        now = dt.datetime.now(dt.timezone.utc)
        per_session = max(1, round(counts["chat_messages"] / counts["chat_sessions"] / 0.84))
        await step(conn, "departments", QUERIES.departments, _seed=seed)
        await step(conn, f"{counts['agents']} agents", QUERIES.agents, count=counts["agents"], _seed=seed)
        await step(
            conn,
            f"{counts['tickets']} tickets",
            QUERIES.tickets,
            count=counts["tickets"],
            now=now,
            description=cipher.encrypt("Benchmark ticket description", "support_tickets.description"),
            _seed=seed,
        )
        await step(conn, "escalations", QUERIES.escalations, share=0.08, _seed=seed)
        await step(
            conn,
            f"{counts['chat_sessions']} chat sessions",
            QUERIES.chat_sessions,
            count=counts["chat_sessions"],
            now=now,
            _seed=seed,
        )
        await step(
            conn,
            f"{counts['chat_messages']} chat messages",
            QUERIES.chat_messages,
            per_session=per_session,
            limit=counts["chat_messages"],
            message=cipher.encrypt("Benchmark chat message", "chat_messages.message"),
            _seed=seed,
        )
        await step(
            conn, f"{counts['articles']} articles", QUERIES.articles, count=counts["articles"], now=now, _seed=seed
        )
        await step(
            conn,
            "feedback",
            QUERIES.feedback,
            on_tickets=counts["feedback_tickets"],
            on_chats=counts["feedback_chats"],
            comment=cipher.encrypt("Benchmark feedback comment", "feedback.comment"),
            _seed=seed,
        )
        started = time.perf_counter()
        await QUERIES.vacuum_analyze(conn)
        log(f"vacuum analyze: {time.perf_counter() - started:.1f} s")
        return dict(await QUERIES.counts(conn))
    finally:
        await conn.close()


def main() -> int:
    args = parse_args()
    if not args.database_url:
        print("gen_data: give --database-url or set DATABASE_URL", file=sys.stderr)
        return 2
    scale = args.scale if args.scale is not None else (0.1 if args.quick else 1.0)
    started = time.perf_counter()
    counts = asyncio.run(generate(args.database_url, scale, args.seed))
    log(f"done in {time.perf_counter() - started:.1f} s")
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
