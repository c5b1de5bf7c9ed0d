#!/usr/bin/env python
"""Rolling restart under chat load (a benchmark, not a test): every replica in turn gets SIGTERM,
drains, and is started again while ``chat_load.py --move`` keeps 1 msg/s per room going.

    .venv/bin/python bench/rolling_restart.py                       # 3 replicas, 200 rooms x 1 msg/s
    .venv/bin/python bench/rolling_restart.py --replicas 2 --rooms 100 --before 20 --gap 10

What it does (every step bounded; every child stopped at the end):

1. a private ``redis-server`` and a fresh database on the local PostgreSQL (``--pg``), migrated;
2. ``--replicas`` replicas of ``python -m app serve`` (as ``run_chat_bench.py`` starts them);
3. ``chat_load.py --move``: one customer and one agent per room, customers and agents on different
   replicas; a client whose replica goes reconnects at once to the next replica that answers and
   ``chat:sync``s its chats, and a send that failed is resent with the same ``client_msg_id``
   until it is acknowledged (what the widget and the console do);
4. after ``--before`` seconds of load, for each replica in turn: SIGTERM, wait for it to exit
   (its graceful drain), start it again, wait for ``/health/ready``, then ``--gap`` seconds;
5. prints a Markdown table and one JSON line (also appended to ``bench/results/rolling-<date>.jsonl``):
   lost and duplicated messages (must be 0), error acks by code, moves, and ack and delivery
   latency p50/p99 of the messages sent before, during (first SIGTERM to the last replica
   ready + gap) and after the roll.

Latency counts from the first emit to the ack (resends included) and to the other party having the
message, live or by the ``chat:sync`` after its move. Exit status 1 when anything was lost or
duplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import math
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from run_chat_bench import PYTHON, RESULTS, PrivateRedis, _pg_check, _pg_exec, git_state, log  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--replicas", type=int, default=3)
    p.add_argument("--rooms", type=int, default=200)
    p.add_argument("--rate", type=float, default=1.0, help="messages per second per room")
    p.add_argument("--before", type=float, default=30.0, help="seconds of load before the first SIGTERM")
    p.add_argument("--gap", type=float, default=10.0, help="seconds between a replica being back and the next SIGTERM")
    p.add_argument("--after", type=float, default=20.0, help="seconds of load after the roll")
    p.add_argument("--step-budget", type=float, default=30.0, help="seconds planned per replica (drain + start)")
    p.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432", help="PostgreSQL server (no database)")
    p.add_argument("--private-redis-port", type=int, default=16409)
    p.add_argument("--base-port", type=int, default=18280, help="SERVER_PORT of replica 0 (+1 per replica)")
    p.add_argument("--grpc-base-port", type=int, default=15261)
    p.add_argument("--keep-db", action="store_true")
    p.add_argument("--out", default=None, help="JSON lines file (default bench/results/rolling-<date>.jsonl)")
    return p.parse_args()


class Replica:
    def __init__(self, index: int, env: dict, args: argparse.Namespace, log_dir: Path):
        self.index = index
        self.port = args.base_port + index
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**env, "SERVER_PORT": str(self.port), "GRPC_SERVER_PORT": str(args.grpc_base_port + index)}
        self.log_path = log_dir / f"replica-{index}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        out = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "app", "serve"],
            cwd=ROOT,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60.0) -> float:
        t0 = time.monotonic()
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"replica {self.url} exited with {self.proc.returncode}; see {self.log_path}")
            with contextlib.suppress(Exception):
                with urllib.request.urlopen(self.url + "/health/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"replica {self.url} not ready within {timeout:.0f} s; see {self.log_path}")
            time.sleep(0.1)

    def terminate(self, timeout: float = 30.0) -> float:
        """SIGTERM and wait for the exit (the graceful drain); seconds it took."""
        assert self.proc is not None
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log(f"replica {self.index} did not exit {timeout:.0f} s after SIGTERM; killed")
            self.proc.kill()
            self.proc.wait(timeout=5)
        return time.monotonic() - t0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.terminate(timeout=20)


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0, "p50": None, "p99": None, "max": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))], 1)

    return {"n": len(ordered), "p50": at(0.5), "p99": at(0.99), "max": round(ordered[-1], 1)}


def windows(samples: list[list], start: float, roll_start: float, roll_end: float) -> dict:
    """Ack and delivery latency of the messages sent before, during and after the roll (the
    warm-up's messages before ``start`` are left out)."""
    out = {}
    for name, lo, hi in (("before", start, roll_start), ("during", roll_start, roll_end), ("after", roll_end, 1e12)):
        rows = [s for s in samples if lo <= s[0] < hi]
        out[name] = {
            "sent": len(rows),
            "unacked": sum(1 for s in rows if s[1] is None),
            "resent": sum(1 for s in rows if s[3] > 1),
            "ack_ms": percentiles([s[1] for s in rows if s[1] is not None]),
            "latency_ms": percentiles([s[2] for s in rows if s[2] is not None]),
        }
    return out


def roll(
    replicas: list[Replica], args: argparse.Namespace, window_start: threading.Event, measured: list, steps: list
) -> None:
    """The roll itself, in a thread beside the load: ``--before`` seconds into the measured
    window, each replica in turn."""
    if not window_start.wait(timeout=600):
        return
    time.sleep(max(0.0, measured[0] + args.before - time.time()))
    for replica in replicas:
        t_term = time.time()
        log(f"SIGTERM replica {replica.index} ({replica.url})")
        drain = replica.terminate()
        replica.start()
        ready = replica.wait_ready()
        log(f"replica {replica.index}: exited {drain:.1f} s after SIGTERM, ready again {ready:.1f} s after start")
        steps.append(
            {"replica": replica.index, "sigterm": t_term, "drain_s": round(drain, 2), "start_s": round(ready, 2)}
        )
        time.sleep(args.gap)
    steps.append({"roll_end": time.time()})


def main() -> int:
    args = parse_args()
    problem = asyncio.run(_pg_check(args.pg))
    if problem:
        print(f"rolling_restart: PostgreSQL at {args.pg} does not answer ({problem})", file=sys.stderr)
        return 2
    from app.security.encryption import generate_key_spec

    stamp = time.strftime("%Y%m%d-%H%M%S")
    db_name = "bench_roll_" + stamp.replace("-", "_")
    dsn = f"{args.pg.rstrip('/')}/{db_name}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    out_path = Path(args.out) if args.out else RESULTS / f"rolling-{time.strftime('%Y-%m-%d')}.jsonl"
    log_dir = RESULTS / f"logs-rolling-{stamp}"
    log_dir.mkdir(parents=True, exist_ok=True)
    redis_server = PrivateRedis(args.private_redis_port, log_dir / "redis.log")
    secret = secrets.token_urlsafe(48)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "SPRING_", "REDIS_"))}
    env.update(
        {
            "DATABASE_URL": dsn,
            "REDIS_HOST": "127.0.0.1",
            "REDIS_PORT": str(args.private_redis_port),
            "REDIS_DATABASE": "0",
            "JWT_SECRET": secret,
            "DATA_ENCRYPTION_KEYS": generate_key_spec("bench1"),
            "CORS_ALLOWED_ORIGINS": "*",
            "WEBSOCKET_MAX_SESSIONS": "100000",
            "LOG_LEVEL": "WARNING",
            "CHAT_RATE_LIMIT_MESSAGES_PER_MINUTE": "1000000",
            "RATE_LIMIT_REQUESTS_PER_MINUTE": "1000000",  # every socket comes from 127.0.0.1
            "SPRING_PROFILES_ACTIVE": "bench",
        }
    )
    replicas = [Replica(i, env, args, log_dir) for i in range(args.replicas)]
    duration = args.before + args.replicas * (args.step_budget + args.gap) + args.after
    samples_path = Path(tempfile.mkstemp(prefix="rolling-samples-", suffix=".jsonl")[1])
    steps: list[dict] = []
    result: dict | None = None
    try:
        redis_server.start()
        asyncio.run(_pg_exec(args.pg, f'CREATE DATABASE "{db_name}"'))
        subprocess.run(
            [PYTHON, "-m", "app", "migrate"], cwd=ROOT, env=env, check=True, timeout=120, stdout=subprocess.DEVNULL
        )
        for replica in replicas:
            replica.start()
        for replica in replicas:
            replica.wait_ready()
        log(f"{len(replicas)} replicas ready; database {db_name}; logs in {log_dir}")
        cmd = [
            PYTHON,
            str(HERE / "chat_load.py"),
            "--url",
            ",".join(r.url for r in replicas),
            "--rooms",
            str(args.rooms),
            "--rate",
            f"{args.rate:g}",
            "--duration",
            f"{duration:g}",
            "--warmup",
            "5",
            "--secret",
            secret,
            "--database-url",
            dsn,
            "--move",
            "--ack-timeout",
            "5",
            "--drain-timeout",
            "20",
            "--samples",
            str(samples_path),
            "--label",
            f"rolling-{args.replicas}rep-{args.rooms}x{args.rate:g}",
        ]
        log(f"chat_load: {args.rooms} rooms x {args.rate:g} msg/s for {duration:.0f} s (+5 s warm-up), --move")
        load = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        window_start = threading.Event()
        measured: list[float] = []

        def forward() -> None:  # the only reader of chat_load's stderr
            assert load.stderr is not None
            for line in load.stderr:
                sys.stderr.write(line)
                sys.stderr.flush()
                if "CHAT_LOAD_WINDOW" in line:
                    measured.extend(float(x) for x in line.split("CHAT_LOAD_WINDOW", 1)[1].split()[:2])
                    window_start.set()

        reader = threading.Thread(target=forward, daemon=True)
        reader.start()
        roller = threading.Thread(target=roll, args=(replicas, args, window_start, measured, steps), daemon=True)
        roller.start()
        assert load.stdout is not None
        stdout = load.stdout.read()  # one JSON line at the end
        load.wait(timeout=60)
        roller.join(timeout=300)
        reader.join(timeout=10)
        row = json.loads(stdout.strip().splitlines()[-1])
        samples = [json.loads(line) for line in samples_path.read_text().splitlines()]
        roll_steps = [s for s in steps if "replica" in s]
        roll_start = roll_steps[0]["sigterm"] if roll_steps else measured[1]
        roll_end = next((s["roll_end"] for s in steps if "roll_end" in s), measured[1])
        error_acks = collections.Counter()
        for kind, count in row["error_kinds"].items():
            event, _, code = kind.partition(":")
            error_acks[f"{event}:{code}"] += count
        result = {
            "replicas": args.replicas,
            "rooms": args.rooms,
            "rate": args.rate,
            "lost": row["lost"],
            "duplicates": row["duplicates"],
            "acked": row["acked"],
            "messages_total": row["messages_total"],
            "missing_in_sync": row["missing_in_sync"],
            "seq_errors": row["seq_errors"],
            "unacked_stored": row["unacked_stored"],
            "moves": row["moves"],
            "move_ms": row["move_ms"],
            "clients_dropped": row["clients_dropped"],
            "recovered_by_sync": row["recovered_by_sync"],
            "resyncs_received": row["resyncs_received"],
            "resent": row["resent"],
            "error_acks": dict(error_acks),
            "disconnect_kinds": row["disconnect_kinds"],
            "steps": roll_steps,
            "windows": windows(samples, measured[0], roll_start, roll_end),
            "roll_seconds": round(roll_end - roll_start, 1),
            "git": git_state(),
            "nproc": os.cpu_count(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        with out_path.open("a") as fh:
            fh.write(json.dumps(result) + "\n")
    finally:
        for replica in replicas:
            replica.stop()
        redis_server.stop()
        samples_path.unlink(missing_ok=True)
        if not args.keep_db:
            with contextlib.suppress(Exception):
                asyncio.run(_pg_exec(args.pg, f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
    print(report(result))
    print(json.dumps(result))
    return 1 if result["lost"] or result["duplicates"] else 0


def report(r: dict) -> str:
    lines = [
        f"rolling restart of {r['replicas']} replicas under {r['rooms']} rooms x {r['rate']:g} msg/s "
        f"(roll {r['roll_seconds']} s): {r['acked']} acked, lost {r['lost']}, duplicated {r['duplicates']}, "
        f"{r['moves']} client moves (reconnect p50/p99 {r['move_ms']['p50']}/{r['move_ms']['p99']} ms), "
        f"{r['resent']} sends resent, error acks {r['error_acks'] or 'none'}",
        "",
        "| window | sent | resent | ack p50 / p99 ms | delivery p50 / p99 ms | max delivery ms |",
        "|---|---|---|---|---|---|",
    ]
    for name, w in r["windows"].items():
        ack, lat = w["ack_ms"], w["latency_ms"]
        lines.append(
            f"| {name} | {w['sent']} | {w['resent']} | {ack['p50']} / {ack['p99']} | "
            f"{lat['p50']} / {lat['p99']} | {lat['max']} |"
        )
    lines.append("")
    for s in r["steps"]:
        lines.append(
            f"- replica {s['replica']}: exited {s['drain_s']} s after SIGTERM, ready {s['start_s']} s after start"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
