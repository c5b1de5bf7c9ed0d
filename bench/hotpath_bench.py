#!/usr/bin/env python
"""Hot-path benchmark of issue 12: one replica pinned to CPU 0, the generator pinned to CPU 1.

    .venv/bin/python bench/hotpath_bench.py --mode run --rooms 1000 --rate 1 --reference
    .venv/bin/python bench/hotpath_bench.py --mode series --series 1000,2000,3000,4000,5000
    .venv/bin/python bench/hotpath_bench.py --mode overload --capacity 1000
    .venv/bin/python bench/hotpath_bench.py --mode idle --idle-sockets 5000
    .venv/bin/python bench/hotpath_bench.py --mode scaleout --scaleout-replicas 4 --rooms 400

Modes (comma-separated to run several against one database and Redis):

- ``run``: ``--rooms`` chats × ``--rate`` msg/s each on ``--replicas`` replicas (``--placement``
  cross: a chat's customer and agent on different replicas; local: on the same one).
- ``series``: offered msg/s steps (``--series``) with rooms fixed; a fresh replica per step; the
  highest step with p99 ≤ 100 ms and 0 error acks is the capacity. Stops after the first step
  that fails unless ``--series-all``.
- ``overload``: offers ``0.5×`` ``--capacity`` (warm-up), then ``2×`` for ``--overload-seconds``,
  then ``0.5×`` again; prints the per-second accepted / ``unavailable`` / other error acks / p99
  and the time to recover after the drop.
- ``idle``: connects ``--idle-sockets`` customers (nothing else) and reports the replica's RSS
  delta per socket.
- ``placement``: two replicas, ``--scaleout-rooms`` chats all cross, then all local: replica
  and total CPU per message cross / local.
- ``scaleout``: ``--scaleout-replicas`` replicas, ``--scaleout-rooms`` chats spread across them (cross), each
  replica's pub/sub intake from its ``/metrics`` (``support_pubsub_received_*``) as a share of the
  cluster's; Redis ``PUBLISH`` counts and channel subscribers as the fallback.

``--reference`` runs the same load against ``bench/bare_relay.py`` (python-socketio + uvloop, no
database, no Redis) on the same pinned CPU right after each server run, and reports the ratios
replica-CPU-per-message / reference and total-CPU-per-message / reference.

CPU is read from /proc over the measured window and divided by delivered messages: the replicas,
this database's PostgreSQL backends, the private redis-server, their total, and the generator;
``others`` is the rest of the machine (other sessions' tests). PostgreSQL and Redis are not
pinned: they float over both CPUs. Everything (JSON lines) goes to bench/results/hotpath-<date>.jsonl.
The generator (``--generator node``, default) is bench/node/chat_load.mjs with the official
socket.io-client; ``--generator python`` runs bench/chat_load.py instead (its agents take one chat
each and its placement is always cross).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_chat_bench as rcb  # the shared infrastructure: Redis, CPU sampling, replicas

ROOT = rcb.ROOT
RESULTS = rcb.RESULTS
PYTHON = rcb.PYTHON
NODE_DIR = ROOT / "bench" / "node"
P99_LIMIT_MS = 100.0
log = rcb.log


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--mode", default="run", help="run, series, overload, idle, scaleout (comma-separated)")
    p.add_argument("--generator", choices=("node", "python"), default="node")
    p.add_argument("--rooms", type=int, default=1000, help="chats (one customer each)")
    p.add_argument("--rate", type=float, default=1.0, help="msg/s per chat, both sides together (mode run)")
    p.add_argument("--max-chats", type=int, default=10, help="max_chats of every agent (node generator)")
    p.add_argument("--message-bytes", type=int, default=64, help="message body size")
    p.add_argument("--placement", choices=("cross", "local"), default="cross", help="with 2+ replicas")
    p.add_argument("--replicas", type=int, default=1, help="replicas for mode run")
    p.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    p.add_argument("--warmup", type=float, default=5.0)
    p.add_argument("--workers", type=int, default=1, help="generator processes")
    p.add_argument("--connect-concurrency", type=int, default=64, help="socket connects in flight (node generator)")
    p.add_argument("--series", default="1000,2000,3000,4000,5000", help="offered msg/s steps (mode series)")
    p.add_argument("--series-all", action="store_true", help="run every step, even after one failed")
    p.add_argument("--capacity", type=float, default=1000.0, help="msg/s that one replica holds (mode overload)")
    p.add_argument("--overload-seconds", type=float, default=20.0)
    p.add_argument("--idle-sockets", type=int, default=5000)
    p.add_argument("--scaleout-replicas", type=int, default=4)
    p.add_argument("--scaleout-rooms", type=int, default=400, help="chats of the scaleout and placement modes")
    p.add_argument("--reference", action="store_true", help="also run the load against bench/bare_relay.py")
    p.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    p.add_argument(
        "--nice",
        type=int,
        default=0,
        help="nice value of replicas, relay and generator; a negative one takes CPU from other sessions' tests",
    )
    p.add_argument("--replica-cpu", type=int, default=0)
    p.add_argument("--generator-cpu", type=int, default=1)
    p.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432", help="PostgreSQL server (no database)")
    p.add_argument("--private-redis-port", type=int, default=16799, help="private redis-server port")
    p.add_argument("--base-port", type=int, default=18780, help="SERVER_PORT of replica 0 (+1 per replica)")
    p.add_argument("--grpc-base-port", type=int, default=15761)
    p.add_argument("--reference-port", type=int, default=18790)
    p.add_argument("--pool-size", type=int, default=10, help="DATABASE_POOL_SIZE per replica")
    p.add_argument("--keep-db", action="store_true")
    p.add_argument("--no-snapshot", action="store_true", help="run the replicas from the work tree itself")
    p.add_argument("--out", default=None, help="JSON lines file (default bench/results/hotpath-<date>.jsonl)")
    p.add_argument("--table-from", default=None, help="print the table of a JSON lines file and exit (no run)")
    args = p.parse_args()
    args.modes = [m.strip() for m in args.mode.split(",") if m.strip()]
    unknown = set(args.modes) - {"run", "series", "overload", "idle", "scaleout", "placement"}
    if unknown:
        p.error(f"unknown mode(s): {', '.join(sorted(unknown))}")
    # what rcb's Window and Sampler read
    args.profile, args.profile_seconds, args.shared_redis, args.redis_database = False, 0, False, 0
    return args


def pin(args: argparse.Namespace, cpu: int) -> list[str]:
    """``taskset -c CPU`` (and ``nice -n N`` with --nice) in front of a command, so replica and
    generator never share a core."""
    prefix = ["nice", "-n", str(args.nice)] if args.nice else []
    if args.no_pin or not shutil.which("taskset"):
        return prefix
    return [*prefix, "taskset", "-c", str(cpu)]


def ensure_node() -> None:
    """``npm ci`` (the committed lock file) the first time; the generator needs nothing else."""
    if (NODE_DIR / "node_modules" / "socket.io-client").exists():
        return
    if not shutil.which("node") or not shutil.which("npm"):
        raise SystemExit("hotpath_bench: --generator node needs node (>= 20) and npm on PATH")
    log("npm ci in bench/node (first run)")
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=300)


# ---------------------------------------------------------------- servers


class Replicas(rcb.Replicas):
    """The server's replicas, pinned to the replica CPU."""

    def ports(self) -> list[int]:
        n = range(self.count)
        return [self.args.base_port + i for i in n] + [self.args.grpc_base_port + i for i in n]

    def start(self) -> None:
        if busy := busy_ports(self.ports()):
            raise SystemExit(f"hotpath_bench: ports {busy} are in use (another benchmark?); choose --base-port etc.")
        super().start()

    def command(self, i: int) -> list[str]:
        return [*pin(self.args, self.args.replica_cpu), PYTHON, "-m", "app", "serve"]


class Reference(Replicas):
    """bench/bare_relay.py on the same pinned CPU, in place of the replicas."""

    kind = "reference"

    def __init__(self, env: dict, args: argparse.Namespace, log_dir: Path, tag: str):
        super().__init__(1, env, args, log_dir, tag)

    def command(self, i: int) -> list[str]:
        relay = str(ROOT / "bench" / "bare_relay.py")
        port = str(self.args.reference_port)
        return [
            *pin(self.args, self.args.replica_cpu),
            PYTHON,
            relay,
            "--port",
            port,
            "--max-chats",
            str(self.args.max_chats),
        ]

    def ports(self) -> list[int]:
        return [self.args.reference_port]

    def start(self) -> None:
        # rcb.Replicas.start derives URLs from base_port; the relay has its own port
        saved = self.args.base_port
        self.args.base_port = self.args.reference_port
        try:
            super().start()
        finally:
            self.args.base_port = saved


def busy_ports(wanted: list[int]) -> list[int]:
    """Those of ``wanted`` that something else listens on. Other sessions run benchmarks on this
    machine too; a replica that cannot bind must not be confused with theirs, which answers
    /health/ready just the same."""
    import socket

    busy = []
    for port in wanted:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                busy.append(port)
    return busy


def runqueue_wait_seconds(pid: int) -> float:
    """Seconds the process's threads spent runnable but waiting for a CPU (/proc schedstat): how
    much of its pinned core other processes took from it."""
    total = 0
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9


class Sampler(rcb.Sampler):
    """rcb's CPU sampling plus the replicas' and generator's run-queue wait (CPU contention)."""

    def snapshot(self) -> dict:
        snap = super().snapshot()
        snap["wait_replicas"] = sum(runqueue_wait_seconds(p) for p in self.replica_pids)
        load = [self.load_pid, *rcb.children_of(self.load_pid)]
        snap["wait_client"] = {p: runqueue_wait_seconds(p) for p in load}
        return snap

    @staticmethod
    def delta(a: dict, b: dict) -> dict:
        out = rcb.Sampler.delta(a, b)
        seconds = b["t"] - a["t"]
        client = sum(b["wait_client"].get(p, 0.0) - a["wait_client"].get(p, 0.0) for p in b["wait_client"])
        out["runqueue_wait"] = {
            "replicas": round((b["wait_replicas"] - a["wait_replicas"]) / seconds, 2),
            "client": round(client / seconds, 2),
            "note": "seconds per second runnable but waiting for a CPU (taken by other processes)",
        }
        return out


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def scrape_metrics(url: str) -> dict | None:
    """support_pubsub_received_{messages,bytes}_total of one replica, summed over labels;
    None when the replica does not export them (yet)."""
    names = ("support_pubsub_received_messages_total", "support_pubsub_received_bytes_total")
    found = dict.fromkeys(names, 0.0)
    seen = False
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            name = line.split("{", 1)[0].split(" ", 1)[0]
            if name in found:
                found[name] += float(line.rsplit(" ", 1)[1])
                seen = True
    return {"messages": found[names[0]], "bytes": found[names[1]]} if seen else None


def redis_pubsub(addr: tuple[str, int]) -> dict:
    """The fallback when replicas have no intake counters: PUBLISH calls and each channel's subscribers."""
    import redis

    r = redis.Redis(*addr)
    stats = r.info("commandstats").get("cmdstat_publish", {})
    channels = [c.decode() for c in r.pubsub_channels()]
    return {"publishes": int(stats.get("calls", 0)), "numsub": {c.decode(): n for c, n in r.pubsub_numsub(*channels)}}


# ---------------------------------------------------------------- the generator


def plan_rooms(args: argparse.Namespace, urls: list[str], secret: str, rooms: int, run_id: str) -> dict:
    """Customers and agents for the node generator. A department per (worker, customer replica,
    agent replica) holds ceil(chats / max_chats) agents, so whatever agent the router picks, the
    chat's two ends are where --placement wants them and in the same generator worker."""
    from app.auth import issue_token

    n = len(urls)
    ttl = 3 * 3600
    plan_rooms, by_dept = [], {}
    for i in range(rooms):
        worker = i % args.workers
        c_rep = i % n
        a_rep = (c_rep + 1) % n if args.placement == "cross" and n > 1 else c_rep
        dept = f"bench-{run_id}-w{worker}-c{c_rep}-a{a_rep}"
        by_dept.setdefault(dept, [worker, a_rep, 0])[2] += 1
        customer = uuid.uuid4()
        plan_rooms.append(
            {
                "index": i,
                "worker": worker,
                "department": dept,
                "customer_url": urls[c_rep],
                "customer_token": issue_token(secret, customer, "customer", ttl=ttl, name=f"Bench customer {i}"),
            }
        )
    agents = []
    for dept, (worker, a_rep, chats) in by_dept.items():
        for _ in range(math.ceil(chats / args.max_chats)):
            agent = uuid.uuid4()
            agents.append(
                {
                    "id": str(agent),
                    "worker": worker,
                    "department": dept,
                    "url": urls[a_rep],
                    "token": issue_token(secret, agent, "agent", ttl=ttl, name=f"Bench agent {len(agents)}"),
                }
            )
    return {"rooms": plan_rooms, "agents": agents}


async def insert_agents(dsn: str, agents: list[dict], max_chats: int) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.executemany(
            """INSERT INTO support_agents (user_id, display_name, role, department, max_chats, status,
                                           is_online, is_available)
               VALUES ($1, $2, 'agent', $3, $4, 'offline', FALSE, TRUE)""",
            [(uuid.UUID(a["id"]), f"Bench agent {k}", a["department"], max_chats) for k, a in enumerate(agents)],
        )
    finally:
        await conn.close()


async def delete_agents(dsn: str, run_id: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DELETE FROM support_agents WHERE department LIKE $1", f"bench-{run_id}-%")
    finally:
        await conn.close()


class Window(rcb.Window):
    """rcb's window sampling, plus the idle mode's IDLE_CONNECTED line."""

    def __init__(self, *a: object) -> None:
        self.idle = threading.Event()
        super().__init__(*a)

    def _read(self) -> None:
        for line in self.load.stderr:
            sys.stderr.write(line)
            sys.stderr.flush()
            if "IDLE_CONNECTED" in line:
                self.idle.set()
            if "CHAT_LOAD_WINDOW" in line:
                start, end = (float(x) for x in line.split("CHAT_LOAD_WINDOW", 1)[1].split()[:2])
                t = threading.Thread(target=self._sample, args=(start, end), daemon=True)
                t.start()
                self.threads.append(t)


def node_command(
    args: argparse.Namespace, ctx: dict, servers: rcb.Replicas, rooms: int, schedule: list, mode: str, label: str
) -> tuple[list[str], str]:
    """Writes the plan (agents inserted into the database first) and returns the command."""
    run_id = secrets.token_hex(4)
    plan = plan_rooms(args, servers.urls, ctx["secret"], rooms, run_id)
    if mode == "idle":
        plan["agents"] = []
    if plan["agents"] and not isinstance(servers, Reference):
        asyncio.run(insert_agents(args.dsn, plan["agents"], args.max_chats))
    plan.update(
        {
            "mode": mode,
            "run_id": run_id,
            "label": label,
            "urls": servers.urls,
            "path": "/ws/chat",
            "workers": args.workers,
            "schedule": schedule,
            "max_chats": args.max_chats,
            "placement": args.placement,
            "message_bytes": args.message_bytes,
            "connect_concurrency": args.connect_concurrency,
            "ack_timeout": 30,
            "assign_timeout": 120,
            "drain_timeout": 15,
            "settle": 2,
            "settle_max": 120,
            "hold": 8,
        }
    )
    path = ctx["tmp"] / f"plan-{run_id}.json"
    path.write_text(json.dumps(plan))
    return [*pin(args, args.generator_cpu), "node", str(NODE_DIR / "chat_load.mjs"), "--plan", str(path)], run_id


def python_command(
    args: argparse.Namespace, ctx: dict, servers: rcb.Replicas, rooms: int, rate: float, label: str
) -> list[str]:
    return [
        *pin(args, args.generator_cpu),
        PYTHON,
        str(ROOT / "bench" / "chat_load.py"),
        *("--url", ",".join(servers.urls), "--rooms", str(rooms), "--rate", f"{rate:g}"),
        *("--duration", f"{args.duration:g}", "--warmup", f"{args.warmup:g}", "--workers", str(args.workers)),
        *("--secret", ctx["secret"], "--database-url", args.dsn, "--label", label),
        *("--message-bytes", str(args.message_bytes)),
    ]


def run_load(
    args: argparse.Namespace,
    ctx: dict,
    servers: rcb.Replicas,
    rooms: int,
    schedule: list,
    label: str,
    mode: str = "chat",
    on_idle=None,
) -> dict | None:
    """Runs the generator against running servers; returns its JSON line with CPU and counters."""
    run_id = None
    if args.generator == "node" or mode == "idle":
        cmd, run_id = node_command(args, ctx, servers, rooms, schedule, mode, label)
    else:
        cmd = python_command(args, ctx, servers, rooms, schedule[-1]["rate"], label)
    log("running", " ".join("<secret>" if c == ctx["secret"] else c for c in cmd))
    load = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = Sampler([p.pid for p in servers.procs], load.pid, ctx["redis_pids"], args.dsn)
    window = Window(load, sampler, label, args)
    idle = None
    if on_idle is not None and window.idle.wait(timeout=600):
        idle = on_idle()
    try:
        load.wait(timeout=1200)
    except subprocess.TimeoutExpired:
        log("generator did not finish within 20 min; killed")
        load.kill()
        load.wait()
    stdout = load.stdout.read()
    cpu, db = window.finish()
    if run_id and not isinstance(servers, Reference):
        with contextlib.suppress(Exception):
            asyncio.run(delete_agents(args.dsn, run_id))
    try:
        row = json.loads((stdout or "").strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        log(f"the generator gave no result (exit {load.returncode}); see its stderr above")
        return None
    row.update({"cpu": cpu, "db": db, "idle": idle, "git": args.git, "nproc": rcb.os.cpu_count()})
    row.setdefault("generator", "python")
    row["server"] = getattr(servers, "kind", "replica")
    row["pinned"] = None if args.no_pin else {"replicas": args.replica_cpu, "generator": args.generator_cpu}
    row["nice"] = args.nice
    if "error_acks" not in row:  # chat_load.py: error_kinds "chat:message:<code>"
        prefix = "chat:message:"
        row["error_acks"] = {k[len(prefix) :]: v for k, v in row.get("error_kinds", {}).items() if k.startswith(prefix)}
    add_per_message(row)
    return row


def add_per_message(row: dict) -> None:
    """CPU µs per delivered message of each party, from cores busy over the measured window."""
    cpu, delivered = row.get("cpu"), row.get("delivered_per_s") or 0
    if not cpu or delivered <= 0:
        row["cpu_us_per_msg"] = None
        return

    def us(cores: float) -> float:
        return round(cores * 1e6 / delivered, 1)

    replica = sum(cpu["replicas"])
    row["cpu_us_per_msg"] = {
        "replica": us(replica),
        "postgres": us(cpu["postgres"]),
        "redis": us(cpu["redis"]),
        "total": us(replica + cpu["postgres"] + cpu["redis"]),
        "generator": us(cpu["client"]),
        "note": "CPU of the measured window / delivered messages; postgres and redis float over both CPUs",
    }


def steady(rooms: int, rate: float, args: argparse.Namespace) -> list[dict]:
    return [
        {"seconds": args.warmup, "rate": rate, "measured": False},
        {"seconds": args.duration, "rate": rate, "measured": True},
    ]


# ---------------------------------------------------------------- modes


def with_servers(args: argparse.Namespace, ctx: dict, servers: rcb.Replicas, fn):
    try:
        servers.start()
        return fn(servers)
    finally:
        servers.stop()


def one_run(args: argparse.Namespace, ctx: dict, replicas: int, rooms: int, rate: float, label: str) -> list[dict]:
    """The load against the server, then (--reference) against the bare relay; rows with ratios."""
    schedule = steady(rooms, rate, args)
    rows = []
    server = Replicas(replicas, ctx["env"], args, ctx["log_dir"], label)
    row = with_servers(args, ctx, server, lambda s: run_load(args, ctx, s, rooms, schedule, label))
    if row:
        rows.append(row)
    if args.reference:
        ref = Reference(ctx["env"], args, ctx["log_dir"], label + "-ref")
        ref_row = with_servers(args, ctx, ref, lambda s: run_load(args, ctx, s, rooms, schedule, label + "-ref"))
        if ref_row:
            rows.append(ref_row)
            if row and row.get("cpu_us_per_msg") and ref_row.get("cpu_us_per_msg"):
                ref_us = ref_row["cpu_us_per_msg"]["replica"] or float("nan")
                row["vs_reference"] = {
                    "replica_cpu_ratio": round(row["cpu_us_per_msg"]["replica"] / ref_us, 2),
                    "total_cpu_ratio": round(row["cpu_us_per_msg"]["total"] / ref_us, 2),
                    "reference_us_per_msg": ref_us,
                }
    return rows


def passes(row: dict) -> bool:
    p99 = (row.get("latency_ms") or {}).get("p99")
    return bool(p99 is not None and p99 <= P99_LIMIT_MS and not sum(row["error_acks"].values()) and not row["lost"])


def mode_series(args: argparse.Namespace, ctx: dict) -> list[dict]:
    rows, capacity = [], None
    for step in [float(x) for x in args.series.split(",") if x.strip()]:
        got = one_run(args, ctx, 1, args.rooms, step / args.rooms, f"series-{step:g}")
        rows += got
        server = next((r for r in got if r["server"] == "replica"), None)
        if server is None:
            break
        server["series_step"] = step
        if passes(server):
            capacity = step
        elif not args.series_all:
            log(f"step {step:g} msg/s fails (p99 > {P99_LIMIT_MS:g} ms or error acks): stopping the series")
            break
    log(f"capacity (highest step with p99 <= {P99_LIMIT_MS:g} ms and 0 error acks): {capacity}")
    for r in rows:
        r["series_capacity"] = capacity
    return rows


def recovery_seconds(timeline: list[dict], t_drop: int, t_end: int) -> float | None:
    """Seconds after the drop until every later second is clean (no error ack, p99 ≤ 100 ms)."""

    def clean(b: dict) -> bool:
        return not b["unavailable"] and not b["other_errors"] and (b["latency_p99_ms"] or 0) <= P99_LIMIT_MS

    after = [b for b in timeline if t_drop <= b["t"] < t_end]
    for i, b in enumerate(after):
        if all(clean(x) for x in after[i:]):
            return b["t"] - t_drop
    return None


def mode_overload(args: argparse.Namespace, ctx: dict) -> list[dict]:
    high, low = 2 * args.capacity / args.rooms, 0.5 * args.capacity / args.rooms
    schedule = [
        {"seconds": args.warmup, "rate": low, "measured": False},
        {"seconds": args.overload_seconds, "rate": high, "measured": True},
        {"seconds": args.overload_seconds, "rate": low, "measured": True},
    ]
    label = f"overload-{args.capacity:g}"
    server = Replicas(1, ctx["env"], args, ctx["log_dir"], label)
    row = with_servers(args, ctx, server, lambda s: run_load(args, ctx, s, args.rooms, schedule, label))
    if row is None:
        return []
    t_drop = int(args.warmup + args.overload_seconds)
    row["overload"] = {
        "capacity": args.capacity,
        "offered_high_per_s": 2 * args.capacity,
        "offered_low_per_s": 0.5 * args.capacity,
        "drop_at_s": t_drop,
        "recovery_seconds": recovery_seconds(row.get("timeline", []), t_drop, int(t_drop + args.overload_seconds)),
    }
    return [row]


def timeline_table(row: dict, schedule: list[dict]) -> str:
    def offered(t: int) -> float:
        end = 0.0
        for p in schedule:
            end += p["seconds"]
            if t < end:
                return p["rate"] * row["rooms"]
        return 0.0

    lines = [
        f"overload (capacity {row['overload']['capacity']:g} msg/s): recovery "
        f"{row['overload']['recovery_seconds']} s after the drop; retry_after_ms {row.get('retry_after_ms')}",
        "| s | offered/s | sent | accepted | delivered live | unavailable | other errors | e2e p99 ms | ack p99 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for b in row.get("timeline", []):
        lines.append(
            f"| {b['t']} | {offered(b['t']):g} | {b['sent']} | {b['accepted']} | {b.get('delivered', '')} | "
            f"{b['unavailable']} | {other_errors(b)} | {b['latency_p99_ms']} | {b['ack_p99_ms']} |"
        )
    return "\n".join(lines)


def other_errors(bucket: dict) -> str:
    """'N (n1 code1, n2 code2)' of one second's error acks other than unavailable."""
    codes = {k: v for k, v in (bucket.get("errors") or {}).items() if k != "unavailable"}
    detail = ", ".join(f"{v} {k}" for k, v in codes.items())
    return f"{bucket['other_errors']} ({detail})" if detail else str(bucket["other_errors"])


def mode_idle(args: argparse.Namespace, ctx: dict) -> list[dict]:
    rows = []
    kinds = [("replica", Replicas(1, ctx["env"], args, ctx["log_dir"], "idle"))]
    if args.reference:
        kinds.append(("reference", Reference(ctx["env"], args, ctx["log_dir"], "idle-ref")))
    for kind, servers in kinds:

        def measure(s: rcb.Replicas, kind: str = kind) -> dict | None:
            time.sleep(2)  # past start-up work
            pid = s.procs[0].pid
            before = rss_kb(pid)

            def on_idle() -> dict:
                time.sleep(3)  # let the last handshakes finish
                after = rss_kb(pid)
                per = (after - before) / max(1, args.idle_sockets)
                return {"rss_before_kb": before, "rss_after_kb": after, "kb_per_socket": round(per, 2)}

            return run_load(
                args,
                ctx,
                s,
                args.idle_sockets,
                [{"seconds": 0, "rate": 0, "measured": True}],
                f"idle-{kind}",
                "idle",
                on_idle,
            )

        row = with_servers(args, ctx, servers, measure)
        if row:
            row.update({"server": kind, "label": f"idle-{kind}"})
            log(f"idle {kind}: {row.get('sockets')} sockets, {row.get('connections_per_s')} conn/s, {row.get('idle')}")
            rows.append(row)
    return rows


def mode_scaleout(args: argparse.Namespace, ctx: dict) -> list[dict]:
    n = args.scaleout_replicas
    label = f"scaleout-{n}rep-{args.scaleout_rooms}x{args.rate:g}"
    servers = Replicas(n, ctx["env"], args, ctx["log_dir"], label)

    def measure(s: rcb.Replicas) -> dict | None:
        before = [scrape_metrics(u) for u in s.urls]
        redis0 = redis_pubsub(ctx["redis_addr"])
        row = run_load(args, ctx, s, args.scaleout_rooms, steady(args.scaleout_rooms, args.rate, args), label)
        if row is None:
            return None
        after = [scrape_metrics(u) for u in s.urls]
        redis1 = redis_pubsub(ctx["redis_addr"])
        row["pubsub"] = pubsub_shares(before, after, redis0, redis1)
        return row

    row = with_servers(args, ctx, servers, measure)
    return [row] if row else []


def mode_placement(args: argparse.Namespace, ctx: dict) -> list[dict]:
    """Two replicas, every chat cross (customer and agent on different replicas) and then every
    chat local (both on one replica), same load: the cost of crossing Redis."""
    rows, saved = [], args.placement
    try:
        for placement in ("cross", "local"):
            args.placement = placement
            label = f"placement-2rep-{args.scaleout_rooms}x{args.rate:g}-{placement}"
            rows += one_run(args, ctx, 2, args.scaleout_rooms, args.rate, label)
    finally:
        args.placement = saved
    by = {r["placement"]: r for r in rows if r.get("server") == "replica" and r.get("cpu_us_per_msg")}
    if len(by) == 2:
        ratio = {
            k: round(by["cross"]["cpu_us_per_msg"][k] / max(1e-9, by["local"]["cpu_us_per_msg"][k]), 2)
            for k in ("replica", "total")
        }
        log(f"cross / local CPU per message: {ratio}")
        by["cross"]["cross_vs_local"] = ratio
    return rows


def pubsub_shares(before: list, after: list, redis0: dict, redis1: dict) -> dict:
    """Each replica's pub/sub intake (run start → end) as a share of the cluster's total intake."""
    publishes = redis1["publishes"] - redis0["publishes"]
    out = {"redis_publishes": publishes, "redis_numsub": redis1["numsub"]}
    if any(b is None or a is None for b, a in zip(before, after, strict=True)):
        out["per_replica"] = "n/a"
        out["note"] = (
            "replicas export no support_pubsub_received_* counters; fallback: every subscriber of a "
            "channel receives every publish to it (redis_numsub), so with one channel subscribed by all "
            "replicas each replica's intake is all of redis_publishes"
        )
        return out
    intake = [{k: a[k] - b[k] for k in a} for b, a in zip(before, after, strict=True)]
    total = sum(i["messages"] for i in intake) or 1
    total_bytes = sum(i["bytes"] for i in intake) or 1
    out["per_replica"] = [
        {
            **i,
            "share_of_messages": round(i["messages"] / total, 3),
            "share_of_bytes": round(i["bytes"] / total_bytes, 3),
        }
        for i in intake
    ]
    return out


# ---------------------------------------------------------------- the table


def table(rows: list[dict]) -> str:
    head = (
        "| run | server | gen | chats × msg/s | delivered/s | e2e p50 / p99 ms | ack p99 ms | error acks | lost / dup "
        "| µs/msg replica / pg / redis / total | vs ref (replica, total) | gen cores (µs/msg) | others cores "
        "| replica waits for CPU "
        "| conn/s | assigned/s |"
    )
    lines = [head, "|" + "---|" * 16]
    for r in rows:
        if r.get("mode") == "idle":
            continue
        us, cpu, lat = r.get("cpu_us_per_msg") or {}, r.get("cpu") or {}, r.get("latency_ms") or {}
        ref = r.get("vs_reference") or {}
        errs = ", ".join(f"{v} {k}" for k, v in (r.get("error_acks") or {}).items()) or "0"
        lines.append(
            f"| {r.get('label')} | {r['server']} | {r['generator']} | {r['rooms']} × {r['rate']:g} | "
            f"{r['delivered_per_s']} | {lat.get('p50')} / {lat.get('p99')} | {(r.get('ack_ms') or {}).get('p99')} | "
            f"{errs} | {r['lost']} / {r['duplicates']} | {us.get('replica')} / {us.get('postgres')} / "
            f"{us.get('redis')} / {us.get('total')} | {ref.get('replica_cpu_ratio', '')} {ref.get('total_cpu_ratio', '')} | "
            f"{cpu.get('client')} ({us.get('generator')}) | {cpu.get('others')} | "
            f"{(cpu.get('runqueue_wait') or {}).get('replicas')} | {r.get('connections_per_s')} | "
            f"{r.get('chats_assigned_per_s', '')} |"
        )
    for r in rows:
        if r.get("mode") == "idle":
            lines.append(
                f"\nidle {r['server']}: {r.get('sockets')} sockets at {r.get('connections_per_s')} conn/s, "
                f"RSS {r.get('idle')}"
            )
        if r.get("overload") and r.get("schedule"):
            lines.append("\n" + timeline_table(r, r["schedule"]))
        if r.get("pubsub"):
            lines.append(f"\npub/sub intake ({r['label']}): {json.dumps(r['pubsub'])}")
    return "\n".join(lines)


# ---------------------------------------------------------------- main


@contextlib.contextmanager
def environment(args: argparse.Namespace):
    """A fresh migrated database, a private redis-server, the replicas' environment; all removed
    at the end."""
    if busy := busy_ports([args.private_redis_port]):
        raise SystemExit(f"hotpath_bench: port {busy} is in use (another benchmark?); choose --private-redis-port")
    problem = asyncio.run(rcb._pg_check(args.pg))
    if problem:
        raise SystemExit(f"hotpath_bench: PostgreSQL at {args.pg} does not answer ({problem})")
    from app.security.encryption import generate_key_spec

    stamp = time.strftime("%Y%m%d-%H%M%S")
    db_name = "bench_hot_" + stamp.replace("-", "_")
    args.dsn = f"{args.pg.rstrip('/')}/{db_name}"
    log_dir = RESULTS / f"logs-{stamp}"
    log_dir.mkdir(parents=True, exist_ok=True)
    args.git = rcb.git_state()
    tmp = Path(tempfile.mkdtemp(prefix="bench-hot-"))
    args.code_dir = rcb.ROOT if args.no_snapshot else rcb.snapshot_tree(tmp / "src")
    redis = rcb.PrivateRedis(args.private_redis_port, log_dir / "redis.log")
    try:
        redis.start()
        args.redis_addr = ("127.0.0.1", args.private_redis_port)
        secret = secrets.token_urlsafe(48)
        env = rcb.replica_env(args, secret, generate_key_spec("bench1"))
        asyncio.run(rcb._pg_exec(args.pg, f'CREATE DATABASE "{db_name}"'))
        log(f"database {db_name}; private redis :{args.private_redis_port}; logs -> {log_dir}; code {args.git}")
        subprocess.run(
            [PYTHON, "-m", "app", "migrate"],
            cwd=args.code_dir,
            env=env,
            check=True,
            timeout=120,
            stdout=subprocess.DEVNULL,
        )
        yield {
            "env": env,
            "secret": secret,
            "log_dir": log_dir,
            "tmp": tmp,
            "redis_addr": args.redis_addr,
            "redis_pids": [redis.proc.pid],
        }
    finally:
        if not args.keep_db:
            with contextlib.suppress(Exception):
                asyncio.run(rcb._pg_exec(args.pg, f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    args = parse_args()
    # SIGTERM (and SIGINT, which a background job ignores) unwind through the finally blocks, so
    # replicas, the relay, redis-server and the database go away with the benchmark
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.table_from:
        print(table([json.loads(line) for line in Path(args.table_from).read_text().splitlines() if line.strip()]))
        return 0
    sys.path.insert(0, str(ROOT))
    if args.generator == "node" or "idle" in args.modes:
        ensure_node()
    RESULTS.mkdir(parents=True, exist_ok=True)
    out_path = Path(args.out) if args.out else RESULTS / f"hotpath-{time.strftime('%Y-%m-%d')}.jsonl"
    modes = {
        "run": lambda a, c: one_run(
            a, c, a.replicas, a.rooms, a.rate, f"run-{a.replicas}rep-{a.rooms}x{a.rate:g}-{a.placement}"
        ),
        "series": mode_series,
        "overload": mode_overload,
        "idle": mode_idle,
        "scaleout": mode_scaleout,
        "placement": mode_placement,
    }
    rows: list[dict] = []
    with environment(args) as ctx:
        for mode in args.modes:
            got = modes[mode](args, ctx)
            for row in got:
                row.setdefault("mode", mode)
                row["bench_mode"] = mode
                with out_path.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
            rows += got
            time.sleep(2)
    print(table(rows))
    log(f"results -> {out_path}")
    return 1 if any(r.get("lost") or r.get("duplicates") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
