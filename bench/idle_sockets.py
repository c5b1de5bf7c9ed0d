#!/usr/bin/env python
"""Memory per idle Socket.IO websocket: N customers connected and doing nothing.

    .venv/bin/python bench/idle_sockets.py --sockets 5000            # fast path on, then off

For each setting of ``WEBSOCKET_FAST_PATH`` (``--modes``) it starts one replica
(``python -m app serve``) on a fresh database, reads its RSS, connects ``--sockets`` websocket
clients to ``/customer`` (hand-written Engine.IO clients that answer pings: cheap enough to keep
thousands in this process), waits ``--idle`` seconds (pings included), reads the RSS again and
prints one JSON line per mode: ``{mode, sockets, rss_before_mb, rss_after_mb, kb_per_socket,
connect_seconds}``. Needs the local PostgreSQL (``--pg``) and a Redis (``--redis``; the replica
uses database ``--redis-database``, whose pub/sub channel no test uses).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import aiohttp
import asyncpg

from app.auth import issue_token
from app.security.encryption import generate_key_spec

ROOT = Path(__file__).resolve().parent.parent


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sockets", type=int, default=5000)
    p.add_argument("--modes", default="true,false", help="WEBSOCKET_FAST_PATH values to measure, in order")
    p.add_argument("--idle", type=float, default=20.0, help="seconds to stay idle before reading the RSS")
    p.add_argument("--heartbeat-ms", type=int, default=5000, help="WEBSOCKET_HEARTBEAT_INTERVAL of the replica")
    p.add_argument("--concurrency", type=int, default=100, help="connects in flight at once")
    p.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432", help="PostgreSQL server (no database)")
    p.add_argument("--redis", default="127.0.0.1:6379")
    p.add_argument("--redis-database", type=int, default=13)
    return p.parse_args()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def wait_ready(url: str, proc: subprocess.Popen) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            if proc.poll() is not None:
                raise RuntimeError(f"the replica exited with {proc.returncode}")
            try:
                async with http.get(f"{url}/health/ready") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)  # readiness polling
    raise RuntimeError("the replica did not get ready")


async def idle_client(http: aiohttp.ClientSession, url: str, token: str, ready: asyncio.Event, stop: asyncio.Event):
    """Connect to /customer and answer pings until ``stop``."""
    ws = await http.ws_connect(f"{url}/ws/chat/?EIO=4&transport=websocket")
    opening = await ws.receive_str()
    assert opening.startswith("0"), opening
    await ws.send_str("40/customer," + json.dumps({"token": token}))
    answer = await ws.receive_str()
    assert answer.startswith("40/customer,"), answer
    ready.set()

    async def pongs() -> None:
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.TEXT and msg.data == "2":
                await ws.send_str("3")

    reader = asyncio.ensure_future(pongs())
    await stop.wait()
    reader.cancel()
    await ws.close()


async def measure(args: argparse.Namespace, fast_path: str, env: dict[str, str], secret: str) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    replica_env = {
        **env,
        "SERVER_PORT": str(port),
        "GRPC_SERVER_PORT": str(free_port()),
        "WEBSOCKET_FAST_PATH": fast_path,
    }
    proc = subprocess.Popen([sys.executable, "-m", "app", "serve"], cwd=ROOT, env=replica_env)
    try:
        await wait_ready(url, proc)
        await asyncio.sleep(2)  # start-up work settles
        before = rss_mb(proc.pid)
        stop = asyncio.Event()
        gate = asyncio.Semaphore(args.concurrency)
        tasks = []
        started = time.monotonic()
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:

            async def one() -> None:
                ready = asyncio.Event()
                async with gate:
                    token = issue_token(secret, uuid.uuid4(), "customer", ttl=3600)
                    task = asyncio.ensure_future(idle_client(http, url, token, ready, stop))
                    tasks.append(task)
                    waiter = asyncio.ensure_future(ready.wait())
                    await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
                    if task.done():
                        task.result()  # a failed connect fails the run

            await asyncio.gather(*(one() for _ in range(args.sockets)))
            connect_seconds = time.monotonic() - started
            await asyncio.sleep(args.idle)  # idle, pinged, answering
            after = rss_mb(proc.pid)
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
        return {
            "fast_path": fast_path,
            "sockets": args.sockets,
            "rss_before_mb": round(before, 1),
            "rss_after_mb": round(after, 1),
            "kb_per_socket": round((after - before) * 1024 / args.sockets, 1),
            "connect_seconds": round(connect_seconds, 1),
        }
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


async def main() -> None:
    args = parse_args()
    db = f"bench_idle_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(args.pg)
    await admin.execute(f'CREATE DATABASE "{db}"')
    await admin.close()
    host, _, port = args.redis.partition(":")
    secret = secrets.token_urlsafe(48)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "SPRING_", "REDIS_"))}
    env.update(
        {
            "DATABASE_URL": f"{args.pg.rstrip('/')}/{db}",
            "REDIS_HOST": host,
            "REDIS_PORT": port or "6379",
            "REDIS_DATABASE": str(args.redis_database),
            "JWT_SECRET": secret,
            "DATA_ENCRYPTION_KEYS": generate_key_spec("idle1"),
            "CORS_ALLOWED_ORIGINS": "*",
            "WEBSOCKET_MAX_SESSIONS": str(args.sockets * 2),
            "WEBSOCKET_HEARTBEAT_INTERVAL": str(args.heartbeat_ms),
            "RATE_LIMIT_REQUESTS_PER_MINUTE": "1000000",
            "LOG_LEVEL": "WARNING",
        }
    )
    try:
        subprocess.run([sys.executable, "-m", "app", "migrate"], cwd=ROOT, env=env, check=True, timeout=120)
        for mode in args.modes.split(","):
            print(json.dumps(await measure(args, mode.strip(), env, secret)), flush=True)
    finally:
        admin = await asyncpg.connect(args.pg)
        await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
