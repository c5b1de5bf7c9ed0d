#!/usr/bin/env python
"""Chat benchmark: ``chat_load.py`` against 1 and then 2 replicas of ``python -m app serve``.

    .venv/bin/python bench/run_chat_bench.py                        # defaults: 200x1, 500x2; 25 s each
    .venv/bin/python bench/run_chat_bench.py --configs 200x1,300x2 --duration 25 --profile

What it does, bounded in time (every step has a timeout; every child is stopped at the end):

1. checks the local PostgreSQL (``--pg``, default postgresql://postgres@127.0.0.1:5432) and Redis
   (``--redis-host``/``--redis-port``). If either does not answer it says so and exits: start
   local servers, or the embedded ones ``support-service dev`` uses (see docs/bench-chat.md).
2. Redis: by default a *private* ``redis-server`` on ``--private-redis-port`` (when the binary is
   installed), because the Socket.IO manager's pub/sub channel (``support-socketio``) ignores the
   database number: on a shared Redis every other support-service process (tests, other
   benchmarks) would receive the benchmark's broadcasts and send it theirs. ``--shared-redis``
   uses ``--redis-host``/``--redis-port`` as they are (database ``--redis-database``).
3. creates a fresh database ``bench_chat_<timestamp>`` and migrates it (``python -m app migrate``).
4. for every configuration (``--configs`` ROOMSxRATE) and then every replica count
   (``--replicas``, default ``1,2``; config-major so 1 and 2 replicas run back to back under the
   same background noise): starts that many replicas on distinct ``SERVER_PORT``s/
   ``GRPC_SERVER_PORT``s with the same secrets, waits for ``/health/ready``, runs
   ``chat_load.py``, samples during its measured window the CPU of the replicas, of this
   database's PostgreSQL backends, of Redis, of the generator and of the whole machine, plus
   database and Redis counters; optionally profiles the replicas with py-spy (``--profile``);
   then stops the replicas.
5. appends every result (one JSON line each) to ``bench/results/chat-<date>.jsonl`` and prints a
   markdown table (1 and 2 replicas side by side) on stdout.
6. drops the database unless ``--keep-db``.

The replicas, PostgreSQL, Redis and the generator share this machine's cores: see docs/bench-chat.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PYTHON = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(*parts: object) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}]", *parts, file=sys.stderr, flush=True)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--configs", default="200x1,500x2", help="comma-separated ROOMSxRATE (msg/s per room)")
    p.add_argument("--replicas", default="1,2", help="replica counts, comma-separated")
    p.add_argument("--duration", type=float, default=25.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=5.0)
    p.add_argument("--workers", type=int, default=1, help="load generator processes")
    p.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432", help="PostgreSQL server (no database)")
    p.add_argument("--redis-host", default="127.0.0.1")
    p.add_argument("--redis-port", type=int, default=6379)
    p.add_argument("--redis-database", type=int, default=11, help="Redis database number for the replicas")
    p.add_argument(
        "--shared-redis", action="store_true", help="use --redis-host/--redis-port, not a private redis-server"
    )
    p.add_argument("--private-redis-port", type=int, default=16399)
    p.add_argument("--base-port", type=int, default=18180, help="SERVER_PORT of replica 0 (+1 per replica)")
    p.add_argument("--grpc-base-port", type=int, default=15161, help="GRPC_SERVER_PORT of replica 0")
    p.add_argument("--pool-size", type=int, default=10, help="DATABASE_POOL_SIZE per replica")
    p.add_argument(
        "--profile",
        action="store_true",
        help="py-spy record (collapsed stacks) of every replica during each measured window",
    )
    p.add_argument("--profile-seconds", type=float, default=15.0)
    p.add_argument("--keep-db", action="store_true")
    p.add_argument(
        "--no-snapshot",
        action="store_true",
        help="run the replicas from the work tree itself instead of a copy taken at the start",
    )
    p.add_argument("--out", default=None, help="JSON lines file (default bench/results/chat-<date>.jsonl)")
    p.add_argument("--load-args", default="", help="extra arguments for chat_load.py, e.g. '--settle 3'")
    args = p.parse_args()
    args.config_list = []
    for item in args.configs.split(","):
        rooms, _, rate = item.strip().partition("x")
        args.config_list.append((int(rooms), float(rate or 1)))
    args.replica_list = [int(x) for x in args.replicas.split(",") if x.strip()]
    return args


# ---------------------------------------------------------------- infrastructure


async def _pg_check(server: str) -> str | None:
    import asyncpg

    try:
        conn = await asyncio.wait_for(asyncpg.connect(server.rstrip("/") + "/postgres"), 5)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


async def _pg_exec(server: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(server.rstrip("/") + "/postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def redis_ping(host: str, port: int) -> str | None:
    import redis

    try:
        redis.Redis(host=host, port=port, socket_timeout=3).ping()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


class PrivateRedis:
    """A throw-away redis-server (no persistence) on 127.0.0.1, so the benchmark's pub/sub traffic
    stays away from every other process on the machine's Redis."""

    def __init__(self, port: int, log_path: Path):
        self.port, self.log_path = port, log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server") or shutil.which("valkey-server")
        if binary is None:
            raise RuntimeError("no redis-server binary; use --shared-redis")
        out = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.time() + 15
        while redis_ping("127.0.0.1", self.port) is not None:
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"private redis-server on {self.port} did not start; see {self.log_path}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


# ---------------------------------------------------------------- CPU and counters


def proc_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0.0


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def pids_named(name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
    return found


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    total = sum(fields[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


def bench_backends(dsn: str) -> list[int]:
    async def read() -> list[int]:
        import asyncpg

        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return [r["pid"] for r in rows]
        finally:
            await conn.close()

    return asyncio.run(read())


def db_stats(dsn: str) -> dict:
    """Counters of the bench database: commits, and row writes of the chat tables."""

    async def read() -> dict:
        import asyncpg

        conn = await asyncpg.connect(dsn)
        try:
            out = {
                "commits": await conn.fetchval(
                    "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
                )
            }
            for r in await conn.fetch(
                """SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables
                       WHERE relname IN ('chat_messages', 'chat_sessions', 'support_events')"""
            ):
                out[f"{r['relname']}.ins"] = r["n_tup_ins"]
                out[f"{r['relname']}.upd"] = r["n_tup_upd"]
                out[f"{r['relname']}.hot_upd"] = r["n_tup_hot_upd"]
            return out
        finally:
            await conn.close()

    return asyncio.run(read())


def redis_commands(host: str, port: int) -> int:
    import redis

    return int(redis.Redis(host=host, port=port).info("stats")["total_commands_processed"])


class Sampler:
    """CPU seconds of every party, taken at the start and the end of the measured window."""

    def __init__(self, replica_pids: list[int], load_pid: int, redis_pids: list[int], dsn: str):
        self.replica_pids, self.load_pid, self.redis_pids, self.dsn = replica_pids, load_pid, redis_pids, dsn

    def snapshot(self) -> dict:
        pg_bench = bench_backends(self.dsn)
        load = [self.load_pid] + children_of(self.load_pid)
        return {
            "t": time.time(),
            "machine": machine_busy_seconds(),
            "replicas": [proc_cpu_seconds(p) for p in self.replica_pids],
            "pg_bench": {p: proc_cpu_seconds(p) for p in pg_bench},
            "pg_all": {p: proc_cpu_seconds(p) for p in pids_named("postgres")},
            "redis": {p: proc_cpu_seconds(p) for p in self.redis_pids},
            "client": {p: proc_cpu_seconds(p) for p in load},
        }

    @staticmethod
    def delta(a: dict, b: dict) -> dict:
        seconds = b["t"] - a["t"]

        def group(key: str) -> float:
            # processes seen at either end; one that started in the window counts from 0
            pids = set(a[key]) | set(b[key])
            return sum(b[key].get(p, a[key].get(p, 0.0)) - a[key].get(p, 0.0) for p in pids) / seconds

        replicas = [round((y - x) / seconds, 2) for x, y in zip(a["replicas"], b["replicas"], strict=False)]
        machine = (b["machine"][0] - a["machine"][0]) / seconds
        ours = sum(replicas) + group("pg_bench") + group("redis") + group("client")
        return {
            "replicas": replicas,
            "postgres": round(group("pg_bench"), 2),
            "postgres_all_dbs": round(group("pg_all"), 2),
            "redis": round(group("redis"), 2),
            "client": round(group("client"), 2),
            "machine_busy": round(machine, 2),
            "others": round(max(0.0, machine - ours), 2),
            "note": "cores busy (CPU s per s) during the measured window; 'others' = the rest of the machine",
        }


# ---------------------------------------------------------------- replicas and the load run


class Replicas:
    def __init__(self, count: int, env: dict, args: argparse.Namespace, log_dir: Path, tag: str):
        self.count, self.env, self.args, self.log_dir, self.tag = count, env, args, log_dir, tag
        self.cwd = args.code_dir
        self.procs: list[subprocess.Popen] = []
        self.urls: list[str] = []

    def command(self, i: int) -> list[str]:
        """The command line of replica ``i`` (hotpath_bench.py pins it to a CPU)."""
        return [PYTHON, "-m", "app", "serve"]

    def start(self) -> None:
        for i in range(self.count):
            port = self.args.base_port + i
            env = {**self.env, "SERVER_PORT": str(port), "GRPC_SERVER_PORT": str(self.args.grpc_base_port + i)}
            out = open(self.log_dir / f"{self.tag}-r{i}.log", "ab")
            self.procs.append(
                subprocess.Popen(
                    self.command(i),
                    cwd=self.cwd,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            self.urls.append(f"http://127.0.0.1:{port}")
        deadline = time.time() + 60
        for url, proc in zip(self.urls, self.procs, strict=False):
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"replica {url} exited with {proc.returncode}; see {self.log_dir}")
                with contextlib.suppress(Exception):
                    with urllib.request.urlopen(url + "/health/ready", timeout=2) as resp:
                        if resp.status == 200:
                            break
                if time.time() > deadline:
                    raise RuntimeError(f"replica {url} not ready within 60 s; see {self.log_dir}")
                time.sleep(0.3)
        log(f"{self.count} replica(s) ready: {', '.join(self.urls)} (pids {[p.pid for p in self.procs]})")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self.procs.clear()


def start_profiles(pids: list[int], tag: str, seconds: float) -> list[subprocess.Popen]:
    spy = shutil.which("py-spy") or str(Path(PYTHON).parent / "py-spy")
    if not Path(spy).exists():
        log("py-spy not found (pip install py-spy into the venv); no profile")
        return []
    return [
        subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(int(seconds)),
                "--rate",
                "100",
                "--format",
                "raw",
                "--nonblocking",
                "--output",
                str(RESULTS / f"profile-{tag}-r{i}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i, pid in enumerate(pids)
    ]


class Window:
    """Forwards chat_load's stderr; on its CHAT_LOAD_WINDOW line samples CPU and counters over the
    measured window and (with --profile) runs py-spy inside it."""

    def __init__(self, load: subprocess.Popen, sampler: Sampler, label: str, args: argparse.Namespace):
        self.load, self.sampler, self.label, self.args = load, sampler, label, args
        self.cpu: dict | None = None
        self.db: dict | None = None
        self.profiles: list[subprocess.Popen] = []
        self.threads = [threading.Thread(target=self._read, daemon=True)]
        self.threads[0].start()

    def _read(self) -> None:
        for line in self.load.stderr:
            sys.stderr.write(line)
            sys.stderr.flush()
            if "CHAT_LOAD_WINDOW" in line:
                start, end = (float(x) for x in line.split("CHAT_LOAD_WINDOW", 1)[1].split()[:2])
                t = threading.Thread(target=self._sample, args=(start, end), daemon=True)
                t.start()
                self.threads.append(t)

    def _sample(self, start: float, end: float) -> None:
        try:
            time.sleep(max(0.0, start - time.time()))
            if self.args.profile:
                self.profiles = start_profiles(
                    self.sampler.replica_pids, self.label, min(self.args.profile_seconds, max(1.0, end - start - 1))
                )
            a = self.sampler.snapshot()
            db0, rd0 = db_stats(self.args.dsn), redis_commands(*self.args.redis_addr)
            time.sleep(max(0.0, end - time.time()))
            self.cpu = self.sampler.delta(a, self.sampler.snapshot())
            time.sleep(1.5)  # PostgreSQL publishes table statistics about once a second
            db1, rd1 = db_stats(self.args.dsn), redis_commands(*self.args.redis_addr)
            self.db = {k: db1[k] - db0.get(k, 0) for k in db1}
            self.db["redis_commands"] = rd1 - rd0
        except Exception as exc:  # the numbers are extras; never lose the run for them
            log(f"sampling failed: {type(exc).__name__}: {exc}")

    def finish(self) -> tuple[dict | None, dict | None]:
        for t in self.threads:
            t.join(timeout=120)
        for p in self.profiles:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=60)
        return self.cpu, self.db


SNAPSHOT_SKIP = {
    ".git",
    ".venv",
    ".data",
    ".pytest_cache",
    "results",
    "__pycache__",
    "node_modules",
    "support_service.egg-info",
}


def snapshot_tree(dest: Path) -> Path:
    """Copy the source tree so that edits made elsewhere during the run (a shared work tree)
    cannot change the code between replicas; ``python -m app`` imports from its cwd first."""
    shutil.copytree(ROOT, dest, ignore=lambda d, names: [n for n in names if n in SNAPSHOT_SKIP])
    return dest


def git_state() -> str:
    """The commit the replicas ran, with '+dirty' when tracked files had changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except Exception:
        return "unknown"


def run_one(
    args: argparse.Namespace, replicas: Replicas, rooms: int, rate: float, secret: str, redis_pids: list[int]
) -> dict | None:
    label = f"{replicas.count}rep-{rooms}x{rate:g}"
    cmd = [
        PYTHON,
        str(ROOT / "bench" / "chat_load.py"),
        "--url",
        ",".join(replicas.urls),
        "--rooms",
        str(rooms),
        "--rate",
        f"{rate:g}",
        "--duration",
        f"{args.duration:g}",
        "--warmup",
        f"{args.warmup:g}",
        "--secret",
        secret,
        "--database-url",
        args.dsn,
        "--workers",
        str(args.workers),
        "--label",
        label,
        *args.load_args.split(),
    ]
    log("running", " ".join(c if c != secret else "<secret>" for c in cmd))
    load = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = Sampler([p.pid for p in replicas.procs], load.pid, redis_pids, args.dsn)
    window = Window(load, sampler, label, args)
    try:
        load.wait(timeout=900)
    except subprocess.TimeoutExpired:
        log("chat_load did not finish within 15 min; killed")
        load.kill()
        load.wait()
    stdout = load.stdout.read()
    cpu, db = window.finish()
    lines = (stdout or "").strip().splitlines()
    try:
        row = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        log(f"chat_load gave no result (exit {load.returncode}); see its stderr above")
        return None
    row["cpu"] = cpu
    if db:
        stored = max(1, db.get("chat_messages.ins", 0))
        row["db"] = {
            **db,
            "commits_per_message": round(db["commits"] / stored, 2),
            "redis_commands_per_message": round(db["redis_commands"] / stored, 1),
            "note": "deltas over the measured window (+1.5 s for statistics to arrive)",
        }
    row.update(
        {
            "database_pool_size": args.pool_size,
            "git": args.git,
            "nproc": os.cpu_count(),
            "redis": "private" if not args.shared_redis else "shared",
        }
    )
    return row


# ---------------------------------------------------------------- the table


def table(rows: list[dict], replica_counts: list[int]) -> str:
    by_key: dict[tuple, dict[int, dict]] = {}
    for row in rows:
        by_key.setdefault((row["rooms"], row["rate"]), {})[row["replicas"]] = row
    cols = [
        "connect/s",
        "sent/s",
        "delivered/s",
        "latency p50/p95/p99 ms",
        "ack p50/p95/p99 ms",
        "lost",
        "dup",
        "errors",
        "CPU: replicas / pg / redis / client / others",
        "pg commits/msg",
        "redis cmds/msg",
    ]
    lines = ["| rooms × msg/s | offered msg/s | replicas | " + " | ".join(cols) + " |", "|" + "---|" * (3 + len(cols))]
    for (rooms, rate), per in by_key.items():
        for n in replica_counts:
            r = per.get(n)
            if r is None:
                continue
            lat, ack, cpu, db = r["latency_ms"], r["ack_ms"], r.get("cpu") or {}, r.get("db") or {}
            cpu_text = (
                f"{'+'.join(str(x) for x in cpu.get('replicas', []))} / {cpu.get('postgres')} / "
                f"{cpu.get('redis')} / {cpu.get('client')} / {cpu.get('others')}"
            )
            lost = f"**{r['lost']}**" if r["lost"] else "0"
            dup = f"**{r['duplicates']}**" if r["duplicates"] else "0"
            lines.append(
                f"| {rooms} × {rate:g} | {r['offered_per_s']:g} | {n} | {r['connections_per_s']} | "
                f"{r['sent_per_s']} | {r['delivered_per_s']} | {lat['p50']} / {lat['p95']} / {lat['p99']} | "
                f"{ack['p50']} / {ack['p95']} / {ack['p99']} | {lost} | {dup} | {r['errors']} | {cpu_text} | "
                f"{db.get('commits_per_message')} | {db.get('redis_commands_per_message')} |"
            )
    return "\n".join(lines)


def replica_env(args: argparse.Namespace, secret: str, key_spec: str) -> dict:
    """The environment of every replica: the bench database and Redis, shared secrets, limits
    raised so that the limiters do not shape the load (hotpath_bench.py uses it too)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "SPRING_", "REDIS_"))}
    env.update(
        {
            "DATABASE_URL": args.dsn,
            "DATABASE_POOL_SIZE": str(args.pool_size),
            "REDIS_HOST": args.redis_addr[0],
            "REDIS_PORT": str(args.redis_addr[1]),
            "REDIS_DATABASE": str(args.redis_database if args.shared_redis else 0),
            "JWT_SECRET": secret,
            "DATA_ENCRYPTION_KEYS": key_spec,
            "CORS_ALLOWED_ORIGINS": "*",
            "WEBSOCKET_MAX_SESSIONS": "100000",
            "LOG_LEVEL": "WARNING",
            "CHAT_RATE_LIMIT_MESSAGES_PER_MINUTE": "1000000",
            # the HTTP limiter also counts Socket.IO handshakes per IP: every socket comes from 127.0.0.1
            "RATE_LIMIT_REQUESTS_PER_MINUTE": "1000000",
            "SPRING_PROFILES_ACTIVE": "bench",
        }
    )
    return env


# ---------------------------------------------------------------- main


def main() -> int:
    args = parse_args()
    sys.path.insert(0, str(ROOT))
    problems = []
    pg_problem = asyncio.run(_pg_check(args.pg))
    if pg_problem:
        problems.append(f"PostgreSQL at {args.pg} does not answer ({pg_problem})")
    if args.shared_redis and (redis_problem := redis_ping(args.redis_host, args.redis_port)):
        problems.append(f"Redis at {args.redis_host}:{args.redis_port} does not answer ({redis_problem})")
    if not args.shared_redis and not (shutil.which("redis-server") or shutil.which("valkey-server")):
        problems.append("no redis-server binary for a private Redis (pass --shared-redis to use a running one)")
    if problems:
        print(
            "run_chat_bench: " + "; ".join(problems) + ".\n"
            "Start local servers, or the embedded ones `support-service dev` uses, e.g.\n"
            "  .venv/bin/python -c 'from pathlib import Path; from app.embedded import EmbeddedPostgres, "
            'EmbeddedRedis; import time; pg = EmbeddedPostgres(Path(".data/bench-pg")); '
            'rd = EmbeddedRedis(Path(".data/bench-redis")); print(pg.start(), rd.start(), flush=True); '
            "time.sleep(86400)'\n"
            "and pass --pg postgresql://postgres@127.0.0.1:PGPORT --shared-redis --redis-port REDISPORT.",
            file=sys.stderr,
        )
        return 2

    from app.security.encryption import generate_key_spec

    stamp = time.strftime("%Y%m%d-%H%M%S")
    db_name = "bench_chat_" + stamp.replace("-", "_")
    args.dsn = f"{args.pg.rstrip('/')}/{db_name}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    out_path = Path(args.out) if args.out else RESULTS / f"chat-{time.strftime('%Y-%m-%d')}.jsonl"
    log_dir = RESULTS / f"logs-{stamp}"
    log_dir.mkdir(parents=True, exist_ok=True)
    args.git = git_state()
    snapshot_dir = None
    if args.no_snapshot:
        args.code_dir = ROOT
    else:
        import tempfile

        snapshot_dir = Path(tempfile.mkdtemp(prefix="bench-chat-src-"))
        args.code_dir = snapshot_tree(snapshot_dir / "src")
        log(f"replicas run from a copy of the work tree ({args.git}) in {args.code_dir}")
    private = None
    if args.shared_redis:
        args.redis_addr = (args.redis_host, args.redis_port)
        redis_pids = pids_named("redis-server") + pids_named("valkey-server")
    else:
        private = PrivateRedis(args.private_redis_port, log_dir / "redis.log")
        try:
            private.start()
        except BaseException:
            private.stop()
            if snapshot_dir is not None:
                shutil.rmtree(snapshot_dir, ignore_errors=True)
            raise
        args.redis_addr = ("127.0.0.1", args.private_redis_port)
        redis_pids = [private.proc.pid]
    secret = secrets.token_urlsafe(48)
    env = replica_env(args, secret, generate_key_spec("bench1"))
    rows: list[dict] = []
    try:
        asyncio.run(_pg_exec(args.pg, f'CREATE DATABASE "{db_name}"'))
        log(
            f"database {db_name}; redis {args.redis_addr[0]}:{args.redis_addr[1]} "
            f"({'shared' if args.shared_redis else 'private'}); results -> {out_path}; logs -> {log_dir}"
        )
        subprocess.run(
            [PYTHON, "-m", "app", "migrate"],
            cwd=args.code_dir,
            env=env,
            check=True,
            timeout=120,
            stdout=subprocess.DEVNULL,
        )
        for rooms, rate in args.config_list:
            for count in args.replica_list:
                replicas = Replicas(count, env, args, log_dir, f"{count}rep-{rooms}x{rate:g}")
                try:
                    replicas.start()
                    row = run_one(args, replicas, rooms, rate, secret, redis_pids)
                finally:
                    replicas.stop()
                if row is None:
                    continue
                rows.append(row)
                with out_path.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
                log(
                    f"{row['label']}: delivered {row['delivered_per_s']}/s, latency {row['latency_ms']}, "
                    f"lost {row['lost']}, dup {row['duplicates']}, errors {row['errors']}, cpu {row['cpu']}"
                )
                time.sleep(2)
    finally:
        if not args.keep_db:
            with contextlib.suppress(Exception):
                asyncio.run(_pg_exec(args.pg, f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
        if private is not None:
            private.stop()
        if snapshot_dir is not None:
            shutil.rmtree(snapshot_dir, ignore_errors=True)
    print(table(rows, args.replica_list))
    bad = [r for r in rows if r["lost"] or r["duplicates"]]
    if bad:
        print(
            f"\n!!! LOST OR DUPLICATED MESSAGES in {len(bad)} run(s) "
            f"({', '.join(r['label'] for r in bad)}): server bugs, see {out_path}"
        )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
