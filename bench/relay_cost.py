#!/usr/bin/env python
"""CPU per relayed message of the Socket.IO layer alone, websocket fast path on and off.

    .venv/bin/python bench/relay_cost.py --pairs 500 --rate 2 --duration 20

A server process runs this service's Socket.IO server class (``LeanSocketServer`` with the fast
path, ``SocketServer`` without) on aiohttp + uvloop with python-socketio's in-memory manager, or
with ``--redis URL`` the service's (ReplicaFanout, whose emits also run its Redis fan-out
script), and one handler: ``relay`` emits its payload to the sender's room (the other client of the pair) and
acks ``{"ok": true}``, so no database, Redis or validation is measured. A client process holds
``--pairs`` pairs of hand-written Engine.IO websocket clients (cheap: the generator must not be
the limit); one client of each pair sends ``--rate`` messages a second. The server's CPU time
(``/proc``) over the measured window divided by the messages relayed is printed per mode as one
JSON line: ``{fast_path, messages, relayed_per_s, server_cpu, us_per_message, client_cpu}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


# ------------------------------------------------------------------ the server process


def serve(port: int, fast_path: bool, redis_url: str) -> None:
    import socketio
    import uvloop
    from aiohttp import web

    from sockets.common import SocketServer
    from sockets.fanout import ReplicaFanout
    from sockets.lean import LeanEngine, LeanSocketServer

    server_class = LeanSocketServer if fast_path else SocketServer
    # the service's manager, or python-socketio's in-memory one (the Socket.IO layer alone)
    manager = ReplicaFanout(redis_url, prefix=f"relay-bench-{port}") if redis_url else socketio.AsyncManager()
    sio = server_class(
        client_manager=manager,
        async_mode="aiohttp",
        cors_allowed_origins="*",
        ping_interval=25,
        ping_timeout=20,
    )
    app = web.Application()

    @sio.on("connect", namespace="/customer")
    async def connect(sid: str, environ: dict, auth: dict) -> None:
        await sio.enter_room(sid, auth["room"], namespace="/customer")

    @sio.on("relay", namespace="/customer")
    async def relay(sid: str, data: dict) -> dict:
        await sio.emit("relay", data, to=data["room"], skip_sid=sid, namespace="/customer")
        return {"ok": True}

    if isinstance(sio, LeanSocketServer):
        sio.lean = LeanEngine(sio, compress=False)
        sio.lean.attach(app, "/ws/chat")
    else:
        sio.attach(app, socketio_path="ws/chat")

    async def start_fanout(app: web.Application) -> None:
        if isinstance(manager, ReplicaFanout):
            manager.start(sio)

    app.on_startup.append(start_fanout)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# ------------------------------------------------------------------ the client process


async def client(port: int, pairs: int, rate: float, warmup: float, duration: float) -> dict:
    import aiohttp

    url = f"http://127.0.0.1:{port}/ws/chat/?EIO=4&transport=websocket"
    received = 0
    acked = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

        async def open_one(room: str) -> aiohttp.ClientWebSocketResponse:
            ws = await http.ws_connect(url)
            await ws.receive_str()
            await ws.send_str("40/customer," + json.dumps({"room": room}))
            answer = await ws.receive_str()
            assert answer.startswith("40/customer,"), answer
            return ws

        async def reader(ws: aiohttp.ClientWebSocketResponse) -> None:
            nonlocal received, acked
            async for msg in ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    break
                if msg.data == "2":
                    await ws.send_str("3")
                elif msg.data.startswith("42/customer,"):
                    received += 1
                elif msg.data.startswith("43/customer,"):
                    acked += 1

        sockets = []
        for i in range(pairs):
            sockets.append((await open_one(f"r{i}"), await open_one(f"r{i}")))
        readers = [asyncio.ensure_future(reader(ws)) for pair in sockets for ws in pair]
        body = "x" * 64

        async def sender(i: int, ws: aiohttp.ClientWebSocketResponse, stop_at: float) -> None:
            await asyncio.sleep(i / pairs / rate)  # spread the pairs over the period
            n = 0
            while time.monotonic() < stop_at:
                n += 1
                await ws.send_str(f'42/customer,{n}["relay",{{"room":"r{i}","body":"{body}"}}]')
                await asyncio.sleep(1 / rate)

        started = time.monotonic()
        stop_at = started + warmup + duration
        senders = [asyncio.ensure_future(sender(i, pair[0], stop_at)) for i, pair in enumerate(sockets)]
        await asyncio.sleep(warmup)
        counted, t0 = received, time.monotonic()
        sys.stdout.write("WINDOW_START\n")
        sys.stdout.flush()
        await asyncio.sleep(duration)
        relayed, elapsed = received - counted, time.monotonic() - t0
        sys.stdout.write("WINDOW_END\n")
        sys.stdout.flush()
        await asyncio.gather(*senders)
        for pair in sockets:
            for ws in pair:
                await ws.close()
        for task in readers:
            task.cancel()
    return {"relayed": relayed, "elapsed": elapsed, "acked": acked}


def measure(args: argparse.Namespace, fast_path: bool) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), "--fast-path", str(fast_path).lower(), "--redis", args.redis],
        cwd=ROOT,
    )
    try:
        for _ in range(100):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)  # start-up polling
        load = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--load",
                str(port),
                "--pairs",
                str(args.pairs),
                "--rate",
                str(args.rate),
                "--warmup",
                str(args.warmup),
                "--duration",
                str(args.duration),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert load.stdout is not None
        assert load.stdout.readline().strip() == "WINDOW_START"
        server0, client0 = cpu_seconds(server.pid), cpu_seconds(load.pid)
        assert load.stdout.readline().strip() == "WINDOW_END"
        server1, client1 = cpu_seconds(server.pid), cpu_seconds(load.pid)
        result = json.loads(load.stdout.readline())
        load.wait(60)
        seconds = result["elapsed"]
        return {
            "fast_path": fast_path,
            "messages": result["relayed"],
            "relayed_per_s": round(result["relayed"] / seconds, 1),
            "server_cpu": round((server1 - server0) / seconds, 3),
            "us_per_message": round((server1 - server0) / max(1, result["relayed"]) * 1e6, 1),
            "client_cpu": round((client1 - client0) / seconds, 3),
        }
    finally:
        server.terminate()
        server.wait(20)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=int, default=500)
    p.add_argument("--rate", type=float, default=2.0, help="messages a second per pair")
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--modes", default="true,false")
    p.add_argument(
        "--redis",
        default="",
        help="Redis URL: measure with the service's fan-out manager (ReplicaFanout) instead of "
        "python-socketio's in-memory one",
    )
    p.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    p.add_argument("--fast-path", default="true", help=argparse.SUPPRESS)
    p.add_argument("--load", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        serve(args.serve, args.fast_path == "true", args.redis)
    elif args.load:
        import uvloop

        result = uvloop.run(client(args.load, args.pairs, args.rate, args.warmup, args.duration))
        print(json.dumps(result), flush=True)
    else:
        for mode in args.modes.split(","):
            print(json.dumps(measure(args, mode.strip() == "true")), flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
