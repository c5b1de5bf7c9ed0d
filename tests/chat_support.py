"""Helpers of the chat test modules: Socket.IO servers (in-process, and real replica processes),
socket clients that record what they receive, agents in their own departments.

The fixtures built on them are in ``chat_fixtures`` (``pytest_plugins = ["chat_fixtures"]``).
Nothing here sleeps to wait for something: clients await acks, pushes are awaited with a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import socketio
from aiohttp import web

from app.auth import Principal, RequestMeta, issue_token
from app.config import Settings
from app.context import AppContext
from app.services import agents as agent_service

REPO = Path(__file__).resolve().parents[1]
WS_PATH = "/ws/chat"
EVENT_TIMEOUT = 5.0  # seconds any awaited push or ack may take
SHUTDOWN_TIMEOUT = 60.0  # seconds an in-process server may take to stop
ADMIN = Principal(uuid.UUID("00000000-0000-4000-8000-00000000ad01"), "admin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def new_department() -> str:
    return f"dep-{uuid.uuid4().hex[:8]}"


# ------------------------------------------------------------------ socket clients


class Peer:
    """A python-socketio client on one namespace that keeps every push it receives."""

    def __init__(self, url: str, secret: str, role: str, namespace: str, user_id: uuid.UUID | None = None):
        self.url = url
        self.secret = secret
        self.role = role
        self.namespace = namespace
        self.user_id = user_id or uuid.uuid4()
        self.sio = socketio.AsyncClient(reconnection=False)
        self.received: list[tuple[str, Any]] = []
        self._taken: set[int] = set()
        self._arrived = asyncio.Event()
        self.sio.on("*", self._record, namespace=namespace)

    async def _record(self, event: str, data: Any = None) -> None:
        self.received.append((event, data))
        self._arrived.set()

    @property
    def token(self) -> str:
        return issue_token(self.secret, self.user_id, self.role)

    async def connect(self, url: str | None = None) -> Peer:
        if url is not None:
            self.url = url
        await self.sio.connect(
            self.url,
            auth={"token": self.token},
            namespaces=[self.namespace],
            socketio_path=WS_PATH,
            transports=["websocket"],
            wait_timeout=EVENT_TIMEOUT,
        )
        return self

    async def disconnect(self) -> None:
        with contextlib.suppress(Exception):
            await self.sio.disconnect()

    async def reconnect(self, url: str | None = None) -> Peer:
        """A fresh client for the same user (a page reload); ``expect`` then looks only at pushes
        to the new connection (``seen`` still lists everything)."""
        await self.disconnect()
        self._taken.update(range(len(self.received)))
        self.sio = socketio.AsyncClient(reconnection=False)
        self.sio.on("*", self._record, namespace=self.namespace)
        return await self.connect(url)

    # acks ---------------------------------------------------------------------------

    async def call(self, event: str, data: Any = None, timeout: float = EVENT_TIMEOUT) -> dict:
        return await self.sio.call(event, data if data is not None else {}, namespace=self.namespace, timeout=timeout)

    async def ok(self, event: str, data: Any = None, timeout: float = EVENT_TIMEOUT) -> dict:
        ack = await self.call(event, data, timeout)
        assert ack.get("ok") is True, f"{event} {data!r} -> {ack!r}"
        return ack["data"]

    async def fails(self, event: str, data: Any, code: str) -> dict:
        ack = await self.call(event, data)
        assert ack.get("ok") is False, f"{event} {data!r} -> {ack!r}"
        error = ack["error"]
        assert error["code"] == code, error
        assert isinstance(error["message"], str) and error["message"]
        assert "Traceback" not in error["message"]
        return error

    # pushes -------------------------------------------------------------------------

    async def expect(
        self, event: str, where: Callable[[Any], bool] = lambda _: True, timeout: float = EVENT_TIMEOUT
    ) -> Any:
        """The first push of ``event`` matching ``where`` that no earlier expect returned."""

        async def first() -> Any:
            while True:
                for i, (name, data) in enumerate(self.received):
                    if i not in self._taken and name == event and where(data):
                        self._taken.add(i)
                        return data
                self._arrived.clear()
                await self._arrived.wait()

        try:
            return await asyncio.wait_for(first(), timeout)
        except asyncio.TimeoutError:
            names = [name for name, _ in self.received]
            raise AssertionError(
                f"{self.role} {self.user_id} got no {event!r} within {timeout} s; received {names}"
            ) from None

    async def catch_up(self) -> None:
        """Let every push already sent to this client arrive (an ack round trip comes after them),
        and let later ``expect`` calls look only at pushes arriving from now on."""
        await self.call("chat:sync" if self.namespace == "/customer" else "queue:snapshot", {})
        self._taken.update(range(len(self.received)))

    def forget(self, event: str) -> None:
        """Let later ``expect`` calls for ``event`` look only at pushes arriving from now on."""
        self._taken.update(i for i, (name, _) in enumerate(self.received) if name == event)

    def seen(self, event: str, where: Callable[[Any], bool] = lambda _: True) -> list[Any]:
        return [data for name, data in self.received if name == event and where(data)]


def for_session(session_id: str) -> Callable[[Any], bool]:
    """A filter for pushes about one session (``{session}``, a Session, or a Message/Note)."""

    def match(data: Any) -> bool:
        if not isinstance(data, dict):
            return False
        if isinstance(data.get("session"), dict):
            return data["session"]["id"] == session_id
        return data.get("session_id") == session_id or data.get("id") == session_id

    return match


async def connect_refusal(url: str, namespace: str, auth: Any) -> dict:
    """Try to connect; return what ``connect_error`` received (and check connect failed)."""
    client = socketio.AsyncClient(reconnection=False)
    got: asyncio.Future = asyncio.get_running_loop().create_future()

    async def on_error(data: Any = None) -> None:
        if not got.done():
            got.set_result(data)

    client.on("connect_error", on_error, namespace=namespace)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(
            url,
            auth=auth,
            namespaces=[namespace],
            socketio_path=WS_PATH,
            transports=["websocket"],
            wait_timeout=EVENT_TIMEOUT,
        )
    try:
        return await asyncio.wait_for(got, EVENT_TIMEOUT)
    finally:
        with contextlib.suppress(Exception):
            await client.disconnect()


# ------------------------------------------------------------------ agents


async def make_agent(
    ctx: AppContext,
    department: str,
    *,
    max_chats: int = 2,
    role: str = "agent",
    name: str | None = None,
    user_id: uuid.UUID | None = None,
) -> uuid.UUID:
    user_id = user_id or uuid.uuid4()
    await agent_service.create_agent(
        ctx,
        ADMIN,
        RequestMeta(),
        {
            "user_id": user_id,
            "display_name": name or f"Agent {user_id.hex[:6]}",
            "role": role,
            "department": department,
            "skills": [],
            "max_tickets": 10,
            "max_chats": max_chats,
            "is_available": True,
            "performance_score": None,
        },
    )
    return user_id


class Cast:
    """Customers, agents and supervisors on one server, disconnected at the end of a test."""

    def __init__(self, url: str, secret: str):
        self.url = url
        self.secret = secret
        self.peers: list[Peer] = []

    async def customer(self, url: str | None = None, user_id: uuid.UUID | None = None) -> Peer:
        peer = Peer(url or self.url, self.secret, "customer", "/customer", user_id)
        self.peers.append(peer)
        return await peer.connect()

    async def staff(
        self, user_id: uuid.UUID, role: str = "agent", *, status: str | None = "online", url: str | None = None
    ) -> Peer:
        peer = Peer(url or self.url, self.secret, role, "/agent", user_id)
        self.peers.append(peer)
        await peer.connect()
        if status is not None:
            await peer.ok("agent:status", {"status": status})
        return peer

    async def close(self) -> None:
        await asyncio.gather(*(p.disconnect() for p in self.peers))


# ------------------------------------------------------------------ in-process server


@dataclasses.dataclass
class ChatServer:
    url: str
    ctx: AppContext
    settings: Settings
    app: web.Application


@contextlib.asynccontextmanager
async def serve_in_process(settings: Settings, ctx: AppContext) -> AsyncIterator[ChatServer]:
    """REST + Socket.IO of one replica on 127.0.0.1, over real sockets."""
    from app.server import build

    settings = dataclasses.replace(settings, grpc_server_port=0)  # gRPC on any free port
    app = build(settings, context=ctx)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    for attempt in range(3):
        port = free_port()
        site = web.TCPSite(runner, "127.0.0.1", port)
        try:
            await site.start()
            break
        except OSError:
            if attempt == 2:
                raise
    try:
        yield ChatServer(f"http://127.0.0.1:{port}", ctx, settings, app)
    finally:
        await _bounded(runner.cleanup(), SHUTDOWN_TIMEOUT, "server shutdown")


async def _bounded(coro: Any, timeout: float, what: str) -> None:
    """Await ``coro``; if it hangs, fail with where it is stuck instead of hanging the suite."""
    task = asyncio.ensure_future(coro)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if task in done:
        task.result()
        return
    stacks = []
    for other in asyncio.all_tasks():
        if other is not asyncio.current_task():
            frames = other.get_stack(limit=12)
            stacks.append(
                f"{other.get_name()}: "
                + " <- ".join(
                    f"{f.f_code.co_filename.rsplit('/', 2)[-1]}:{f.f_lineno} {f.f_code.co_name}"
                    for f in reversed(frames)
                )
            )
    task.cancel()
    raise AssertionError(f"{what} did not finish within {timeout} s; tasks:\n" + "\n".join(stacks))


# ------------------------------------------------------------------ replica processes


@dataclasses.dataclass
class Replica:
    name: str
    url: str
    env: dict[str, str]
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    def start(self) -> None:
        assert self.log_path is not None
        log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app", "serve"],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()

    async def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        delay = 0.05
        async with aiohttp.ClientSession() as http:
            while True:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                    async with http.get(f"{self.url}/health/ready", timeout=aiohttp.ClientTimeout(total=2)) as response:
                        if response.status == 200:
                            return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} not ready within {timeout} s:\n{self.log_tail()}")
                await asyncio.sleep(delay)  # polling backoff between readiness probes
                delay = min(delay * 2, 0.5)

    def kill(self) -> None:
        """SIGKILL: the replica dies without closing anything (sockets, presence, DB sessions)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def replica_env(test_env: dict[str, str], **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        **test_env,
        "SERVER_PORT": str(free_port()),
        "GRPC_SERVER_PORT": str(free_port()),
        "CORS_ALLOWED_ORIGINS": "*",
        "SPRING_JPA_HIBERNATE_DDL_AUTO": "validate",
        **extra,
    }


def spare_replica(test_env: dict[str, str], replica_logs: Path, name: str) -> Replica:
    env = replica_env(test_env)
    return Replica(name, f"http://127.0.0.1:{env['SERVER_PORT']}", env, log_path=replica_logs / f"replica-{name}.log")


@contextlib.asynccontextmanager
async def chat_timers_paused(settings: Settings) -> AsyncIterator[None]:
    """Hold the cluster-wide chat-timers duty lock (waiting for a run in progress to finish), so
    no replica's own timer loop sweeps while a test moves a clock and sweeps itself."""
    from app import duties

    holder = await asyncpg.connect(settings.dsn)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", duties._lock_key("chat-timers"))
        yield
    finally:
        await holder.close()
