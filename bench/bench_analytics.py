#!/usr/bin/env python
"""Latency of every analytics report and of KB search against a running app (see
docs/bench-analytics.md for the whole procedure).

    JWT_SECRET=... .venv/bin/python bench/bench_analytics.py --base-url http://127.0.0.1:18088
    .venv/bin/python bench/bench_analytics.py --requests 50 --json results.json

Each case is requested ``--warmup`` times, then ``--requests`` times one after another (latency,
not throughput: one request in flight), timing the whole HTTP round trip on the client. Prints a
markdown table of p50 / p95 / max per case; a case whose p95 is over ``--budget-ms`` (200) is
marked. Tokens are minted with JWT_SECRET (the app's); the agent case uses the first agent the
agents API lists. The app's RATE_LIMIT_REQUESTS_PER_MINUTE must allow the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.auth import issue_token  # noqa: E402

A = "/api/v1/analytics"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--base-url", default="http://127.0.0.1:18088")
    p.add_argument("--jwt-secret", default=os.environ.get("JWT_SECRET"), help="default: $JWT_SECRET")
    p.add_argument("--requests", type=int, default=30, help="measured requests per case")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--budget-ms", type=float, default=200.0)
    p.add_argument("--json", help="also write the results to this file")
    return p.parse_args()


def cases(year: dict, agent_id: str | None) -> list[tuple[str, str, str, dict]]:
    """(name, role, path, params)."""
    day = {"granularity": "day"}
    found = [
        ("tickets, 30 days", "supervisor", f"{A}/tickets", {}),
        ("tickets, 365 days", "supervisor", f"{A}/tickets", {**year, **day}),
        (
            "tickets, 365 days, week, department",
            "supervisor",
            f"{A}/tickets",
            {**year, "granularity": "week", "department": "billing"},
        ),
        (
            "tickets, 7 days, hour, Europe/Berlin",
            "supervisor",
            f"{A}/tickets",
            {"granularity": "hour", "tz": "Europe/Berlin", "from": _ago(7), "to": _ago(0)},
        ),
        ("chat, 30 days", "supervisor", f"{A}/chat", {}),
        ("chat, 365 days", "supervisor", f"{A}/chat", {**year, **day}),
        ("response-time, 30 days", "supervisor", f"{A}/response-time", {}),
        ("response-time, 365 days", "supervisor", f"{A}/response-time", {**year, **day}),
        ("satisfaction, 30 days", "supervisor", f"{A}/satisfaction", {}),
        ("satisfaction, 365 days", "supervisor", f"{A}/satisfaction", {**year, **day}),
        ("feedback analytics, 365 days", "supervisor", "/api/v1/feedback/analytics", {**year, **day}),
        ("kb search: one common word", None, "/api/v1/kb/search", {"q": "refund"}),
        ("kb search: three words", None, "/api/v1/kb/search", {"q": "airport transfer luggage"}),
        ("kb search: prefix", None, "/api/v1/kb/search", {"q": "cancell"}),
        ("kb search: typo", None, "/api/v1/kb/search", {"q": "reservaton"}),
        (
            "kb search: category + tag filter",
            None,
            "/api/v1/kb/search",
            {"q": "booking payment", "category": "billing", "tags": "refund"},
        ),
        ("kb suggest", None, "/api/v1/kb/suggest", {"q": "airp"}),
    ]
    if agent_id:
        found[1:1] = [("tickets, 365 days, as an agent", f"agent:{agent_id}", f"{A}/tickets", {**year, **day})]
    return found


def _ago(days: int) -> str:
    return time.strftime("%Y-%m-%dT%H:00:00Z", time.gmtime(time.time() - days * 86400))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(share * (len(ordered) - 1))))
    return ordered[index]


async def run(args: argparse.Namespace) -> list[dict]:
    supervisor = {"Authorization": f"Bearer {issue_token(args.jwt_secret, uuid.uuid4(), 'supervisor')}"}
    year = {"from": _ago(365), "to": _ago(0)}
    results = []
    async with aiohttp.ClientSession(args.base_url) as http:
        async with http.get("/api/v1/agents", params={"limit": "1"}, headers=supervisor) as response:
            agents = (await response.json()).get("items", []) if response.status == 200 else []
        agent_id = agents[0]["user_id"] if agents else None
        for name, role, path, params in cases(year, agent_id):
            headers = {}
            if role == "supervisor":
                headers = supervisor
            elif role and role.startswith("agent:"):
                headers = {"Authorization": f"Bearer {issue_token(args.jwt_secret, role[6:], 'agent')}"}
            timings, statuses = [], set()
            for n in range(args.warmup + args.requests):
                started = time.perf_counter()
                async with http.get(path, params=params, headers=headers) as response:
                    body = await response.read()
                    statuses.add(response.status)
                elapsed = (time.perf_counter() - started) * 1000
                if n >= args.warmup:
                    timings.append(elapsed)
            extra = ""
            if path.endswith("/search"):
                extra = f"{json.loads(body)['total']} hits"
            results.append(
                {
                    "case": name,
                    "path": path,
                    "params": params,
                    "status": sorted(statuses),
                    "p50_ms": round(statistics.median(timings), 1),
                    "p95_ms": round(percentile(timings, 0.95), 1),
                    "max_ms": round(max(timings), 1),
                    "requests": len(timings),
                    "note": extra,
                }
            )
            print(
                f"  {name}: p50 {results[-1]['p50_ms']} ms, p95 {results[-1]['p95_ms']} ms {extra}",
                file=sys.stderr,
                flush=True,
            )
    return results


def table(results: list[dict], budget: float) -> str:
    lines = ["| case | p50 ms | p95 ms | max ms | status | note |", "|---|---:|---:|---:|---|---|"]
    for r in results:
        flag = " ⚠" if r["p95_ms"] > budget or r["status"] != [200] else ""
        lines.append(
            f"| {r['case']} | {r['p50_ms']} | {r['p95_ms']}{flag} | {r['max_ms']} | "
            f"{','.join(map(str, r['status']))} | {r['note']} |"
        )
    return "\n".join(lines)


def main() -> int:
    args = parse_args()
    if not args.jwt_secret:
        print("bench_analytics: set JWT_SECRET (the app's) or pass --jwt-secret", file=sys.stderr)
        return 2
    results = asyncio.run(run(args))
    print(table(results, args.budget_ms))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    over = [r["case"] for r in results if r["p95_ms"] > args.budget_ms or r["status"] != [200]]
    if over:
        print(f"\nover {args.budget_ms:.0f} ms at p95 or failing: {', '.join(over)}", file=sys.stderr)
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
