#!/usr/bin/env python
"""Summarise a py-spy ``--format raw`` profile (collapsed stacks) of a replica.

    .venv/bin/python bench/profile_summary.py bench/results/profile-1rep-200x1-r0.txt [--top 25]

Prints: the share of samples per layer (by the innermost frame's package: engineio, socketio,
asyncpg, redis, aiohttp, app code, ...), the functions with the most self time, and the
inclusive share of a few hot-path functions of the service.
"""

from __future__ import annotations

import argparse
import collections
import re

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]*)(?::\d+)?\)$")

LAYERS = [
    ("engineio", "engine.io"),
    ("socketio", "socket.io"),
    ("asyncpg", "asyncpg"),
    ("redis", "redis-py"),
    ("limits", "limits (rate limiter)"),
    ("aiohttp", "aiohttp"),
    ("uvloop", "uvloop"),
    ("cryptography", "cryptography"),
    ("marshmallow", "marshmallow"),
    ("aiosql", "aiosql"),
    ("json", "json"),
    ("logging", "logging"),
    ("prometheus_client", "prometheus"),
    ("asyncio", "asyncio"),
    ("app/", "app"),
    ("sockets/", "sockets"),
    ("rest/", "rest"),
]

WATCH = [
    "send_message (app/services/chat.py",
    "MessageWriter._store",
    "MessageWriter._flush",
    "RateLimiter.check",
    "Live.to_session",
    "AsyncPubSubManager._publish",
    "AsyncPubSubManager._thread",
    "AsyncPubSubManager._handle_emit",
    "AsyncServer._handle_event_internal",
    "present_message",
    "FieldCipher.encrypt",
    "FieldCipher.decrypt",
    "to_jsonable",
    "Schema.load",
    "Packet.encode",
    "Packet.decode",
    "AsyncSocket.send",
    "AsyncSocket.receive",
    "_websocket_handler",
    "ok (sockets/common.py",
    "Histogram.observe",
    "Counter.inc",
    "AsyncServer.emit",
    "AsyncManager.emit",
    "Database.connection",
]


def layer_of(frame: str) -> str:
    for key, name in LAYERS:
        if key in frame:
            return name
    return "other"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("profile")
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args()
    total = 0
    self_time: collections.Counter = collections.Counter()
    layers: collections.Counter = collections.Counter()
    inclusive: collections.Counter = collections.Counter()
    for line in open(args.profile):
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        leaf = frames[-1]
        self_time[re.sub(r":\d+\)$", ")", leaf)] += n
        layers[layer_of(leaf)] += n
        seen = set()
        for frame in frames:
            for w in WATCH:
                if w in frame and w not in seen:
                    seen.add(w)
                    inclusive[w] += n
    print(f"{total} samples")
    print("\nself time by layer (innermost frame):")
    for name, n in layers.most_common():
        print(f"  {100 * n / total:5.1f}%  {name}")
    print(f"\ntop {args.top} functions by self time:")
    for name, n in self_time.most_common(args.top):
        print(f"  {100 * n / total:5.1f}%  {name}")
    print("\ninclusive time of hot-path functions:")
    for name, n in sorted(inclusive.items(), key=lambda kv: -kv[1]):
        print(f"  {100 * n / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()
