#!/usr/bin/env python
"""Soak benchmark (a script, not a test): hold chat load for a long time and watch the replicas.

Runs ``bench/chat_load.py`` for ``--minutes`` (default 500 chats × 1 msg/s for 30 minutes) against
running replicas, and every minute scrapes each replica's ``/metrics``:

- ``rss_mb``: ``process_resident_memory_bytes`` (prometheus-client's process collector);
- ``ack_ms``: p50/p99 of ``support_socket_ack_seconds{event="chat:message"}`` over that minute,
  from the histogram's bucket deltas (an upper bound: the bucket edge the quantile falls in);
- ``acked``: chat messages acknowledged in that minute.

Writes one JSON line per minute to stdout and, at the end, a Markdown table to ``--report``
(default ``docs/soak.md``) together with chat_load's own summary (lost and duplicated messages
must both be 0; RSS should be flat after the first minutes).

    python bench/soak.py --url http://127.0.0.1:8088,http://127.0.0.1:8089 \\
        --secret "$JWT_SECRET" --database-url "$DATABASE_URL" --rooms 500 --rate 1 --minutes 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp

HERE = Path(__file__).resolve().parent
SAMPLE = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>[-0-9.e+Ina]+)$")


def parse_metrics(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if not match:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"] or ""))
        found.setdefault(match["name"], []).append((labels, float(match["value"])))
    return found


def ack_buckets(metrics: dict) -> dict[float, float]:
    buckets = {}
    for labels, value in metrics.get("support_socket_ack_seconds_bucket", []):
        if labels.get("event") == "chat:message":
            buckets[float("inf") if labels["le"] == "+Inf" else float(labels["le"])] = value
    return buckets


def quantile(deltas: dict[float, float], q: float) -> float | None:
    total = deltas.get(float("inf"), 0.0)
    if total <= 0:
        return None
    for edge in sorted(deltas):
        if deltas[edge] >= q * total:
            return edge * 1000 if edge != float("inf") else float("inf")
    return None


async def scrape(http: aiohttp.ClientSession, url: str) -> dict:
    async with http.get(f"{url}/metrics", timeout=aiohttp.ClientTimeout(total=10)) as response:
        return parse_metrics(await response.text())


def forward_stderr(load: subprocess.Popen, window: threading.Event, start: list[float]) -> None:
    """Passes chat_load's progress on and notes when its measured window starts (after connecting,
    assigning and the warm-up), so that minute 1 is a minute of load, not of set-up."""
    assert load.stderr is not None
    for line in load.stderr:
        sys.stderr.write(line)
        sys.stderr.flush()
        if "CHAT_LOAD_WINDOW" in line and not window.is_set():
            start.append(float(line.split("CHAT_LOAD_WINDOW", 1)[1].split()[0]))
            window.set()


async def watch(
    urls: list[str], minutes: int, load: subprocess.Popen, window: threading.Event, start: list
) -> list[dict]:
    rows: list[dict] = []
    while not window.is_set() and load.poll() is None:
        await asyncio.sleep(0.5)
    if start:
        await asyncio.sleep(max(0.0, start[0] - time.time()))
    async with aiohttp.ClientSession() as http:
        previous = {url: ack_buckets(await scrape(http, url)) for url in urls}
        for minute in range(1, minutes + 1):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and load.poll() is None:
                await asyncio.sleep(1)
            for url in urls:
                metrics = await scrape(http, url)
                buckets = ack_buckets(metrics)
                deltas = {edge: buckets.get(edge, 0) - previous[url].get(edge, 0) for edge in buckets}
                previous[url] = buckets
                rss = next((v for _, v in metrics.get("process_resident_memory_bytes", [])), 0.0)
                row = {
                    "minute": minute,
                    "replica": url,
                    "rss_mb": round(rss / 2**20, 1),
                    "acked": int(deltas.get(float("inf"), 0)),
                    "ack_ms": {"p50": quantile(deltas, 0.5), "p99": quantile(deltas, 0.99)},
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
            if load.poll() is not None:
                break
    return rows


def report(rows: list[dict], summary: str, args: argparse.Namespace) -> str:
    lines = [
        f"# Soak: {args.rooms} chats × {args.rate} msg/s for {args.minutes} minutes",
        "",
        "| minute | replica | RSS MB | acked | ack p50 ms | ack p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['minute']} | {r['replica']} | {r['rss_mb']} | {r['acked']} | "
            f"{r['ack_ms']['p50']} | {r['ack_ms']['p99']} |"
        )
    lines += ["", "chat_load summary:", "", "```json", summary.strip(), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True, help="base URL(s) of the replicas, comma-separated")
    p.add_argument("--rooms", type=int, default=500)
    p.add_argument("--rate", type=float, default=1.0, help="messages per second per chat")
    p.add_argument("--minutes", type=int, default=30)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--secret", default=None)
    p.add_argument("--database-url", default=None)
    p.add_argument("--report", default=str(HERE.parent / "docs" / "soak.md"))
    args = p.parse_args(argv)
    urls = [u.rstrip("/") for u in args.url.split(",")]
    command = [
        sys.executable,
        str(HERE / "chat_load.py"),
        "--url",
        args.url,
        "--rooms",
        str(args.rooms),
        "--rate",
        str(args.rate),
        "--duration",
        str(args.minutes * 60),
        "--workers",
        str(args.workers),
    ]
    if args.secret:
        command += ["--secret", args.secret]
    if args.database_url:
        command += ["--database-url", args.database_url]
    load = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    window, start = threading.Event(), []
    reader = threading.Thread(target=forward_stderr, args=(load, window, start), daemon=True)
    reader.start()
    try:
        rows = asyncio.run(watch(urls, args.minutes, load, window, start))
        assert load.stdout is not None
        summary = load.stdout.read()
        load.wait(timeout=600)
    finally:
        if load.poll() is None:
            load.terminate()
    Path(args.report).write_text(report(rows, summary, args))
    print(summary.strip())
    return load.returncode or 0


if __name__ == "__main__":
    sys.exit(main())
