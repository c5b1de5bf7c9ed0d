"""The websocket fast path (sockets/lean.py) beside python-socketio's own transports: websocket
and polling clients in one chat (one replica and across two), the official Node client on
websocket only, the heartbeat, refusals, oversized and binary frames, malformed packets answered
as python-socketio answers them, and the same server with ``WEBSOCKET_FAST_PATH=false``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio

from app.auth import issue_token
from app.config import Settings
from app.context import AppContext, open_context
from chat_support import (
    EVENT_TIMEOUT,
    WS_PATH,
    Cast,
    ChatServer,
    Peer,
    Replica,
    connect_refusal,
    for_session,
    make_agent,
    new_department,
    serve_in_process,
    spare_replica,
)
from sockets import lean
from sockets.server import SOCKETS, STATE

pytest_plugins = ["chat_fixtures"]

NODE_DIR = Path(__file__).resolve().parent / "node"


# ------------------------------------------------------------------ clients


class PollingPeer(Peer):
    """A python-socketio client that stays on long-polling (never upgrades)."""

    transports = ["polling"]

    async def connect(self, url: str | None = None) -> Peer:
        if url is not None:
            self.url = url
        await self.sio.connect(
            self.url,
            auth={"token": self.token},
            namespaces=[self.namespace],
            socketio_path=WS_PATH,
            transports=self.transports,
            wait_timeout=EVENT_TIMEOUT,
        )
        return self

    async def disconnect(self) -> None:
        """Leave the namespace and drop the connection at once: python-socketio's client would
        wait for its pending long-poll, which the server holds until a ping is due."""
        with contextlib.suppress(Exception):
            for namespace in list(self.sio.namespaces):
                await self.sio._send_packet(self.sio.packet_class(socketio.packet.DISCONNECT, namespace=namespace))
            await self.sio.eio.disconnect(abort=True)


class UpgradingPeer(PollingPeer):
    """python-socketio's default: long-polling first, then the upgrade to a websocket."""

    transports = ["polling", "websocket"]


class RawSocket:
    """A hand-written Engine.IO 4 / Socket.IO 5 websocket client: every frame is visible."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = aiohttp.ClientSession()
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.handshake: dict = {}
        self.pings = 0

    async def open(self) -> RawSocket:
        self.ws = await self.http.ws_connect(f"{self.url}{WS_PATH}/?EIO=4&transport=websocket", autoping=True)
        opening = await self.ws.receive_str(timeout=EVENT_TIMEOUT)
        assert opening[0] == "0", opening
        self.handshake = json.loads(opening[1:])
        return self

    async def send(self, text: str) -> None:
        assert self.ws is not None
        await self.ws.send_str(text)

    async def frame(self, timeout: float = EVENT_TIMEOUT, *, answer_pings: bool = True) -> str | None:
        """The next text frame that is not a ping (pings are counted and answered); None once
        the server closed the websocket."""
        assert self.ws is not None
        while True:
            msg = await self.ws.receive(timeout=timeout)
            if msg.type is not aiohttp.WSMsgType.TEXT:
                return None
            if msg.data == "2":
                self.pings += 1
                if answer_pings:
                    await self.ws.send_str("3")
                continue
            return msg.data

    async def connect(self, namespace: str, token: str) -> str:
        await self.send(f"40{namespace},{json.dumps({'token': token})}")
        answer = await self.frame()
        assert answer is not None and answer.startswith(f"40{namespace},"), answer
        return answer

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        await self.http.close()


@contextlib.asynccontextmanager
async def raw_socket(url: str) -> AsyncIterator[RawSocket]:
    sock = RawSocket(url)
    try:
        yield await sock.open()
    finally:
        await sock.close()


class NodePeer:
    """The official Node ``socket.io-client`` (tests/node, pinned), driven over stdin/stdout."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[dict] = []
        self._ids = 0

    @classmethod
    async def start(cls, url: str, namespace: str, token: str, transports: str = "websocket") -> NodePeer:
        proc = await asyncio.create_subprocess_exec(
            "node",
            str(NODE_DIR / "socketio_peer.js"),
            url,
            WS_PATH,
            namespace,
            token,
            transports,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=NODE_DIR,
        )
        return cls(proc)

    async def wait_for(self, key: str, where: Any = lambda _: True, timeout: float = EVENT_TIMEOUT) -> dict:
        async def first() -> dict:
            for line in self.lines:
                if key in line and where(line):
                    self.lines.remove(line)
                    return line
            assert self.proc.stdout is not None
            while True:
                raw = await self.proc.stdout.readline()
                assert raw, f"the Node client exited; it printed {self.lines}"
                line = json.loads(raw)
                if key in line and where(line):
                    return line
                self.lines.append(line)

        return await asyncio.wait_for(first(), timeout)

    async def ok(self, event: str, data: Any) -> dict:
        self._ids += 1
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"id": self._ids, "emit": event, "data": data}).encode() + b"\n")
        ack = (await self.wait_for("ack", lambda line: line["ack"] == self._ids))["data"]
        assert ack.get("ok") is True, (event, ack)
        return ack["data"]

    async def event(self, name: str, where: Any = lambda _: True) -> Any:
        return (await self.wait_for("event", lambda line: line["event"] == name and where(line["data"])))["data"]

    async def stop(self) -> None:
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()


@pytest.fixture(scope="module")
def node_client() -> None:
    """tests/node's pinned socket.io-client, installed with npm when missing."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm are needed for the Node client tests (apt-get install nodejs npm)")
    if not (NODE_DIR / "node_modules" / "socket.io-client").is_dir():
        subprocess.run(
            ["npm", "ci", "--prefer-offline", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=300
        )


def token_for(server: ChatServer, role: str = "customer", user_id: uuid.UUID | None = None) -> str:
    return issue_token(server.settings.jwt_secret, user_id or uuid.uuid4(), role)


def served_by(server: ChatServer, peer: Peer) -> str:
    """Which transport layer of ``server`` holds ``peer``'s connection: "lean" or "engineio"."""
    sio = server.app[SOCKETS]
    eio_sid = sio.manager.eio_sid_from_sid(peer.sio.get_sid(peer.namespace), peer.namespace)
    if getattr(sio, "lean", None) is not None and eio_sid in sio.lean.sockets:
        return "lean"
    assert eio_sid in sio.eio.sockets
    return "engineio"


async def polling(cast: Cast, url: str, role: str, namespace: str, user_id: uuid.UUID | None = None) -> Peer:
    peer = PollingPeer(url, cast.secret, role, namespace, user_id)
    cast.peers.append(peer)
    return await peer.connect()


async def talk(customer: Peer, agent: Peer, session_id: str) -> None:
    """A message each way, a typing signal, a read receipt: each reaches the other side."""
    sent = await customer.ok("chat:message", {"session_id": session_id, "message": "hi", "client_msg_id": "c1"})
    assert await agent.expect("chat:message", for_session(session_id)) == sent["message"]
    sent = await agent.ok("chat:message", {"session_id": session_id, "message": "hello", "client_msg_id": "a1"})
    assert await customer.expect("chat:message", for_session(session_id)) == sent["message"]
    await agent.ok("chat:typing", {"session_id": session_id, "typing": True})
    assert (await customer.expect("chat:typing", for_session(session_id)))["sender_type"] == "agent"
    await customer.ok("chat:read", {"session_id": session_id, "up_to_seq": 2})
    assert (await agent.expect("chat:read", for_session(session_id)))["up_to_seq"] == 2


async def start_chat(customer: Peer, agent: Peer, department: str) -> str:
    session = (await customer.ok("chat:start", {"department": department}))["session"]
    assert session["agent_id"] == str(agent.user_id), session
    await agent.expect("chat:assigned", for_session(session["id"]))
    return session["id"]


# ------------------------------------------------------------------ servers


def quick(env: dict[str, str]) -> dict[str, str]:
    """Pings every second (ping timeout 5 s, the least it allows): the heartbeat is exercised
    in every test, and a long-poll a client abandons is released within 6 s."""
    return {**env, "WEBSOCKET_HEARTBEAT_INTERVAL": "1000"}


@pytest.fixture(scope="module")
async def chat_server(test_env: dict[str, str]) -> AsyncIterator[ChatServer]:
    settings = Settings.from_env(quick(test_env))
    async with open_context(settings) as ctx, serve_in_process(settings, ctx) as server:
        yield server


@pytest.fixture
def ctx(chat_server: ChatServer) -> AppContext:
    return chat_server.ctx


@pytest.fixture(scope="module")
async def replicas(test_env: dict[str, str], replica_logs: Path) -> AsyncIterator[list[Replica]]:
    """Two `python -m app serve` processes, pinging every second."""
    group = [spare_replica(quick(test_env), replica_logs, name) for name in ("A", "B")]
    try:
        for replica in group:
            replica.start()
        await asyncio.gather(*(r.wait_ready() for r in group))
        yield group
    finally:
        for replica in group:
            replica.stop()


# ------------------------------------------------------------------ both transports in one chat


async def test_a_polling_customer_and_a_websocket_agent_talk_on_one_replica(cast: Cast, chat_server, ctx, department):
    agent = await cast.staff(await make_agent(ctx, department))
    customer = await polling(cast, chat_server.url, "customer", "/customer")
    assert served_by(chat_server, agent) == "lean" and served_by(chat_server, customer) == "engineio"
    await talk(customer, agent, await start_chat(customer, agent, department))


async def test_a_websocket_customer_and_a_polling_agent_talk_on_one_replica(cast: Cast, chat_server, ctx, department):
    agent = await polling(cast, chat_server.url, "agent", "/agent", await make_agent(ctx, department))
    await agent.ok("agent:status", {"status": "online"})
    customer = await cast.customer()
    await talk(customer, agent, await start_chat(customer, agent, department))


async def test_a_client_that_upgrades_from_polling_is_served_by_engineio(cast: Cast, chat_server, ctx, department):
    agent = await cast.staff(await make_agent(ctx, department))
    customer = UpgradingPeer(chat_server.url, cast.secret, "customer", "/customer")
    cast.peers.append(customer)
    await customer.connect()
    for _ in range(50):  # the upgrade completes shortly after the connect
        if customer.sio.transport() == "websocket":
            break
        await asyncio.sleep(0.1)
    assert customer.sio.transport() == "websocket"
    assert served_by(chat_server, customer) == "engineio"
    await talk(customer, agent, await start_chat(customer, agent, department))


async def test_a_polling_and_a_websocket_client_talk_across_two_replicas(
    cast: Cast, replicas: list[Replica], ctx, department
):
    a, b = replicas
    agent = await polling(cast, b.url, "agent", "/agent", await make_agent(ctx, department))
    await agent.ok("agent:status", {"status": "online"})
    customer = await cast.customer(url=a.url)  # websocket: the lean path on replica A
    await talk(customer, agent, await start_chat(customer, agent, department))

    other = new_department()
    agent2 = await cast.staff(await make_agent(ctx, other), url=a.url)
    customer2 = await polling(cast, b.url, "customer", "/customer")
    await talk(customer2, agent2, await start_chat(customer2, agent2, other))


# ------------------------------------------------------------------ the official Node client


async def test_the_node_client_on_websocket_only_chats_with_a_polling_agent(
    chat_server, cast: Cast, ctx, department, node_client
):
    agent = await polling(cast, chat_server.url, "agent", "/agent", await make_agent(ctx, department))
    await agent.ok("agent:status", {"status": "online"})
    node = await NodePeer.start(chat_server.url, "/customer", token_for(chat_server))
    try:
        connected = await node.wait_for("connected")
        assert connected["transport"] == "websocket"
        session = (await node.ok("chat:start", {"department": department, "message": "from node"}))["session"]
        await agent.expect("chat:assigned", for_session(session["id"]))
        assert (await node.event("chat:assigned"))["session"]["id"] == session["id"]
        reply = await agent.ok(
            "chat:message", {"session_id": session["id"], "message": "hello node", "client_msg_id": "n1"}
        )
        assert await node.event("chat:message", lambda m: m["id"] == reply["message"]["id"]) == reply["message"]
        mine = await node.ok("chat:message", {"session_id": session["id"], "message": "again", "client_msg_id": "n2"})
        assert await agent.expect("chat:message", lambda m: m["client_msg_id"] == "n2") == mine["message"]
    finally:
        await node.stop()


async def test_the_node_client_gets_the_same_connect_error_as_python_clients(chat_server, node_client):
    node = await NodePeer.start(chat_server.url, "/customer", "not-a-jwt")
    try:
        refused = (await node.wait_for("connect_error"))["connect_error"]
    finally:
        await node.stop()
    python = await connect_refusal(chat_server.url, "/customer", {"token": "not-a-jwt"})
    assert refused == python and python["data"] == {"code": "unauthorized"}, (refused, python)


# ------------------------------------------------------------------ heartbeat


async def test_an_idle_socket_that_answers_pings_stays_and_a_silent_one_is_dropped(chat_server):
    server = chat_server
    state = server.app[STATE]
    async with raw_socket(server.url) as alive, raw_socket(server.url) as silent:
        assert alive.handshake["pingInterval"] == 1000 and alive.handshake["upgrades"] == []
        assert alive.handshake["maxPayload"] == 1_000_000
        await alive.connect("/customer", token_for(server))
        sid = json.loads((await silent.connect("/customer", token_for(server))).split(",", 1)[1])["sid"]
        assert sid in state.sockets

        async def answer_pings() -> None:
            with contextlib.suppress(asyncio.TimeoutError):  # answering every ping for 9 s
                frame = await asyncio.wait_for(alive.frame(), 9)
                raise AssertionError(f"the idle socket got {frame!r}")

        async def ignore_pings() -> str | None:
            return await silent.frame(timeout=12, answer_pings=False)

        _, end = await asyncio.gather(answer_pings(), ignore_pings())
        assert end is None and silent.pings >= 1  # closed after its ping went unanswered
        assert sid not in state.sockets  # ... and its disconnect handler ran
        assert alive.pings >= 4 and not alive.ws.closed  # several intervals, still connected
        await alive.send('42/customer,7["chat:sync",{"session_id":"%s","after_seq":0}]' % uuid.uuid4())
        answer = await alive.frame()
        assert answer is not None and answer.startswith("43/customer,7[") and '"not_found"' in answer


# ------------------------------------------------------------------ refusals and bad frames


async def test_a_bad_token_is_refused_with_the_same_connect_error_on_both_paths(chat_server, test_env):
    fast = await connect_refusal(chat_server.url, "/customer", {"token": "not-a-jwt"})
    async with raw_socket(chat_server.url) as sock:
        await sock.send('40/customer,{"token":"not-a-jwt"}')
        frame = await sock.frame()
    assert frame is not None and frame.startswith("44/customer,")
    assert json.loads(frame.split(",", 1)[1]) == fast and fast["data"] == {"code": "unauthorized"}
    slow_settings = Settings.from_env({**quick(test_env), "WEBSOCKET_FAST_PATH": "false"})
    async with open_context(slow_settings) as ctx, serve_in_process(slow_settings, ctx) as slow:
        assert await connect_refusal(slow.url, "/customer", {"token": "not-a-jwt"}) == fast


async def test_a_websocket_from_a_refused_origin_gets_engineios_answer(chat_server):
    url = f"{chat_server.url}{WS_PATH}/?EIO=4&transport=websocket"
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(url, origin="https://evil.example")
        assert refused.value.status == 400
        async with http.ws_connect(url, origin="https://shop.example") as ws:  # CORS_ALLOWED_ORIGINS
            assert (await ws.receive_str(timeout=EVENT_TIMEOUT)).startswith("0{")


async def test_an_oversized_frame_closes_the_socket_with_message_too_big(chat_server):
    async with raw_socket(chat_server.url) as sock:
        await sock.connect("/customer", token_for(chat_server))
        limit = sock.handshake["maxPayload"]
        await sock.send('42/customer,1["chat:start",{"subject":"' + "x" * limit + '"}]')
        assert await sock.frame() is None
        assert sock.ws is not None and sock.ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG


async def test_binary_frames_close_the_socket_with_a_reason(chat_server):
    async with raw_socket(chat_server.url) as sock:
        await sock.connect("/customer", token_for(chat_server))
        assert sock.ws is not None
        await sock.ws.send_bytes(b"\x04binary")
        msg = await sock.ws.receive(timeout=EVENT_TIMEOUT)
        assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == aiohttp.WSCloseCode.UNSUPPORTED_DATA
        assert "binary" in msg.extra


# Frames after a connect to /customer, and what the server must answer each with.
MALFORMED = [
    "4",  # an empty Socket.IO packet
    "4x",  # not a packet type
    "49/customer,",  # an unknown packet type
    "42/customer,",  # an event with no data
    "42/customer,[",  # bad JSON
    '42/customer,["no:such:event"]',  # unknown, no ack asked
    '42/nowhere,1["chat:sync",{}]',  # a namespace the socket never joined: no answer
    "2",  # a client's ping: ignored
    "6",  # noop
    "7whatever",  # an unknown Engine.IO packet type
]
ANSWERED = [
    ('42/customer,11["no:such:event",{}]', "unknown_event"),
    ('42/customer,12["connect",{}]', "unknown_event"),
    ('42/customer,13["disconnect"]', "unknown_event"),
    ("42/customer,14[42]", "unknown_event"),
    ('42/customer,15["chat:start",{"department":1}]', "validation_failed"),
    ('42/customer,16["chat:start",' + "[" * 5000 + "]" * 5000 + "]", "validation_failed"),
    ('42/customer,17["chat:start",{},"extra"]', "validation_failed"),
]


async def answers(url: str, token: str) -> list[str]:
    """What a socket gets back for MALFORMED then ANSWERED (ack frames, in order)."""
    async with raw_socket(url) as sock:
        await sock.connect("/customer", token)
        for frame in MALFORMED + [frame for frame, _ in ANSWERED]:
            await sock.send(frame)
        got = []
        for _ in ANSWERED:
            frame = await sock.frame()
            assert frame is not None
            got.append(frame)
        return got


async def test_malformed_and_unknown_packets_get_python_socketios_answers(chat_server, test_env):
    fast = await answers(chat_server.url, token_for(chat_server))
    for (sent, code), got in zip(ANSWERED, fast, strict=True):
        ack_id = sent.split(",", 1)[1].split("[", 1)[0]
        assert got.startswith(f"43/customer,{ack_id}[") and f'"code":"{code}"' in got, (sent, got)
    slow_settings = Settings.from_env({**quick(test_env), "WEBSOCKET_FAST_PATH": "false"})
    async with open_context(slow_settings) as ctx, serve_in_process(slow_settings, ctx) as slow:
        slow_answers = await answers(slow.url, issue_token(slow_settings.jwt_secret, uuid.uuid4(), "customer"))
    assert fast == slow_answers


async def test_an_event_payload_that_is_not_a_list_is_answered_unknown_event(chat_server):
    # python-socketio raises on such a packet and stays silent; the lean path answers it
    async with raw_socket(chat_server.url) as sock:
        await sock.connect("/customer", token_for(chat_server))
        await sock.send('42/customer,3{"event":"chat:start"}')
        frame = await sock.frame()
        assert frame is not None and frame.startswith("43/customer,3[") and '"unknown_event"' in frame


# ------------------------------------------------------------------ order, server disconnects


async def test_a_sockets_events_are_handled_and_pushed_in_the_order_they_arrive(cast: Cast, ctx, department):
    agent = await cast.staff(await make_agent(ctx, department))
    customer = await cast.customer()
    session_id = await start_chat(customer, agent, department)
    sends = [
        customer.call("chat:message", {"session_id": session_id, "message": f"m{i}", "client_msg_id": f"o{i}"})
        for i in range(20)
    ]
    acks = await asyncio.gather(*sends)
    assert [a["data"]["message"]["seq"] for a in acks] == list(range(1, 21))
    for seq in range(1, 21):  # ... and pushed to the other party in that order
        assert (await agent.expect("chat:message", for_session(session_id)))["seq"] == seq


async def test_sio_disconnect_closes_a_lean_socket_and_runs_its_handler_once(cast: Cast, chat_server, monkeypatch):
    customer = await cast.customer()
    sio, state = chat_server.app[SOCKETS], chat_server.app[STATE]
    sid = customer.sio.get_sid("/customer")
    eio_sid = sio.manager.eio_sid_from_sid(sid, "/customer")
    assert eio_sid in sio.lean.sockets
    calls: list[str] = []
    unregister = chat_server.ctx.live.unregister_socket

    async def counted(namespace: str, user_id: Any, socket_id: str) -> None:
        calls.append(socket_id)
        await unregister(namespace, user_id, socket_id)

    monkeypatch.setattr(chat_server.ctx.live, "unregister_socket", counted)
    gone = asyncio.Event()
    customer.sio.on("disconnect", lambda *a: gone.set(), namespace="/customer")
    await sio.disconnect(sid, namespace="/customer")
    await asyncio.wait_for(gone.wait(), EVENT_TIMEOUT)
    for _ in range(50):
        if eio_sid not in sio.lean.sockets:
            break
        await asyncio.sleep(0.05)
    assert eio_sid not in sio.lean.sockets and sid not in state.sockets
    assert calls == [sid]


# ------------------------------------------------------------------ the switch


async def test_with_the_fast_path_off_python_socketio_serves_every_transport(test_env, department):
    slow_settings = Settings.from_env({**quick(test_env), "WEBSOCKET_FAST_PATH": "false"})
    assert Settings.from_env(test_env).websocket_fast_path is True
    async with open_context(slow_settings) as ctx, serve_in_process(slow_settings, ctx) as server:
        sio = server.app[SOCKETS]
        assert not isinstance(sio, lean.LeanSocketServer)
        cast = Cast(server.url, slow_settings.jwt_secret)
        try:
            agent = await cast.staff(await make_agent(ctx, department))
            customer = await polling(cast, server.url, "customer", "/customer")
            assert served_by(server, agent) == served_by(server, customer) == "engineio"
            await talk(customer, agent, await start_chat(customer, agent, department))
        finally:
            await cast.close()
