"""The websocket fast path: Engine.IO 4 / Socket.IO 5 framing straight on aiohttp's websocket.

python-socketio's cost per packet is mostly its Engine.IO layer: a task and a timer for every
frame received, a queue and a writer task per socket, a ping task per socket, and a task per
event. A client that opens a websocket directly (``EIO=4&transport=websocket``, no ``sid``) is
served here instead:

- one task per socket, aiohttp's own request handler, reads the frames and awaits each event's
  handler inline, so a socket's events are handled in the order they arrived;
- outgoing packets are encoded once and written straight to the websocket (aiohttp writes a
  frame synchronously; it waits only when the peer does not read);
- one :class:`Heartbeat` task pings every lean socket and drops the ones that stop answering.

The Socket.IO layer stays python-socketio's: a lean socket is a member of the same manager
(rooms, Redis fan-out from other replicas, ``sio.disconnect``), CONNECT, DISCONNECT and ACK
packets go through the server's own ``_handle_connect``/``_handle_disconnect``/``_handle_ack``,
and events reach the handlers registered with ``sio.on`` unchanged. :class:`LeanSocketServer`
routes the server's outgoing packets to the lean websocket when the Engine.IO sid is a lean one.
Long-polling, polling→websocket upgrades (requests with a ``sid``) and every request this path
does not accept (another EIO version, a refused origin, ...) go to python-engineio as before,
which also answers them the same way as before.

Not on this path: binary frames and binary attachments (no client of ours sends them); the
socket is closed with 1003 and a reason. A handler that awaits the same client's ack
(``sio.call`` to the socket whose event it is handling) would wait for its timeout, since the
ack is read after the handler returns; no handler does that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from typing import Any

import socketio
import socketio.packet as sio_packet
from aiohttp import WSCloseCode, WSMsgType, web
from engineio import packet as eio_packet
from engineio.async_drivers.aiohttp import translate_request

from app.tasks import stop_tasks
from sockets.common import SocketServer, error

log = logging.getLogger("support.sockets.lean")

CLOSE_TIMEOUT_SECONDS = 5.0  # how long a closing websocket waits for the client's close frame
SHUTDOWN_WAIT_SECONDS = 2.0  # the stop waits this long for clients' close frames, then goes on
MAX_QUEUED_FRAMES = 1000  # a peer this far behind on reading is dropped
BINARY_REFUSED = b"binary frames are not supported on this websocket"
ATTACHMENTS_REFUSED = b"binary attachments are not supported on this websocket"
SERVER_DISCONNECT = SocketServer.reason.SERVER_DISCONNECT
CLIENT_DISCONNECT = SocketServer.reason.CLIENT_DISCONNECT
TRANSPORT_CLOSE = SocketServer.reason.TRANSPORT_CLOSE
TRANSPORT_ERROR = SocketServer.reason.TRANSPORT_ERROR
PING_TIMEOUT = SocketServer.reason.PING_TIMEOUT
_WRITES: set[asyncio.Task] = set()  # frames waiting for a slow peer (strong references)


class LeanSocket:
    """One client's websocket and its heartbeat state (slots: thousands of these sit idle)."""

    __slots__ = (
        "eio_sid",
        "ws",
        "transport",
        "queued",
        "awaiting_pong",
        "ping_at",
        "pong_at",
        "busy",
        "closed",
        "reason",
    )

    def __init__(self, eio_sid: str, ws: web.WebSocketResponse, transport: Any, now: float) -> None:
        self.eio_sid = eio_sid
        self.ws: web.WebSocketResponse | None = ws
        self.transport = transport
        self.queued = 0  # frames waiting in tasks because the peer is behind on reading
        self.awaiting_pong = False  # a ping went out and no pong came back yet
        self.ping_at = now  # when that ping went out
        self.pong_at = now  # the last pong (or the open): the next ping is due interval after it
        self.busy = False  # a handler of this socket is running (its pong may wait behind it)
        self.closed = False
        self.reason: str | None = None  # why the server ended it, when it did

    async def send(self, text: str) -> None:
        """Write one frame, in order, without ever waiting for the peer.

        The usual case writes at once (aiohttp writes a frame synchronously when nothing is
        buffered). A peer that is behind gets the frame in a task, and every later frame too
        until the queue is empty: tasks run in creation order and each writes before it can
        wait, so frames keep their order. A peer more than MAX_QUEUED_FRAMES behind is dropped.
        """
        if self.closed or self.reason is not None:  # closed, or being closed by the server
            return
        if self.queued == 0 and self._can_write_at_once():
            await self._write(text)
        elif self.queued >= MAX_QUEUED_FRAMES:
            log.warning("websocket %s dropped: %d frames behind on reading", self.eio_sid, self.queued)
            self.drop(TRANSPORT_ERROR)
        else:
            self.queued += 1
            task = asyncio.get_running_loop().create_task(self._write_queued(text))
            _WRITES.add(task)
            task.add_done_callback(_WRITES.discard)

    def _can_write_at_once(self) -> bool:
        """Nothing is buffered for this peer, so aiohttp's writer cannot be paused, and no
        compression (whose send lock could make the write wait)."""
        transport, ws = self.transport, self.ws
        return (
            transport is not None
            and ws is not None
            and not ws.compress
            and not transport.is_closing()
            and transport.get_write_buffer_size() == 0
        )

    async def _write(self, text: str) -> None:
        ws = self.ws
        if ws is None or self.closed:
            return  # going away: its reader's teardown follows
        try:
            await ws.send_str(text)
        except (ConnectionError, RuntimeError):
            pass

    async def _write_queued(self, text: str) -> None:
        try:
            await self._write(text)
        finally:
            self.queued -= 1

    def forget(self) -> None:
        """Closed: let go of the connection at once. The heartbeat may hold this object until
        the socket's slot comes up (up to a ping interval and timeout): under connection churn
        that must not keep thousands of dead websockets and their buffers alive."""
        self.closed = True
        self.ws = self.transport = None

    def drop(self, reason: str) -> None:
        """End the connection now (the peer stopped answering): its reader sees the transport
        close and runs the disconnect handlers."""
        self.reason = reason
        if self.transport is not None:
            self.transport.close()


class Heartbeat:
    """Engine.IO's server pings for every lean socket, from one task.

    Sockets wait in time slots of ``tick`` seconds. A socket whose slot comes up gets a ping
    (``2``) once ``interval`` has passed since its last pong; one that has not answered
    (``3``) ``timeout`` after its ping is dropped. A pong only sets two fields, read by the
    sweep when the socket's slot comes up, so the hot path never touches the slots.
    """

    def __init__(self, interval: float, timeout: float) -> None:
        self.interval = interval
        self.timeout = timeout
        self.tick = min(1.0, timeout / 5)
        self._slots: dict[int, list[LeanSocket]] = {}
        self._task: asyncio.Task | None = None

    def watch(self, sock: LeanSocket, at: float) -> None:
        self._slots.setdefault(math.ceil(at / self.tick), []).append(sock)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="lean-heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            await stop_tasks([self._task])
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.tick)
            try:
                await self.sweep(loop.time())
            except Exception:  # a bug here must not stop every socket's heartbeat
                log.exception("websocket heartbeat sweep failed")

    async def sweep(self, now: float) -> None:
        due = sorted(slot for slot in self._slots if slot * self.tick <= now)
        for slot in due:
            for sock in self._slots.pop(slot):
                await self._visit(sock, now)

    async def _visit(self, sock: LeanSocket, now: float) -> None:
        if sock.closed:
            return  # forgotten: its slot entry was the last reference the heartbeat held
        if sock.awaiting_pong:
            if now < sock.ping_at + self.timeout:
                self.watch(sock, sock.ping_at + self.timeout)
            elif sock.busy:  # its pong may be queued behind the handler it is running
                self.watch(sock, now + self.tick)
            else:
                sock.drop(PING_TIMEOUT)
            return
        due = sock.pong_at + self.interval
        if due > now:
            self.watch(sock, due)
            return
        sock.awaiting_pong, sock.ping_at = True, now
        await sock.send("2")  # never waits: a peer that is behind gets it queued
        # looked at again when the next ping may be due (the pong came back) or at the timeout
        self.watch(sock, now + min(self.interval, self.timeout))


class LeanEngine:
    """Serves websocket-only Socket.IO clients for ``sio`` and hands every other request of the
    Socket.IO path to python-engineio."""

    def __init__(self, sio: socketio.AsyncServer, *, compress: bool) -> None:
        eio = sio.eio
        self.sio = sio
        self.compress = compress
        self.max_payload = eio.max_http_buffer_size
        self.ping_interval = eio.ping_interval
        self.ping_timeout = eio.ping_timeout
        self.sockets: dict[str, LeanSocket] = {}  # Engine.IO sid -> socket
        self.heartbeat = Heartbeat(self.ping_interval, self.ping_timeout)
        self._closing: set[asyncio.Task] = set()

    # ------------------------------------------------------------------ routing

    def attach(self, app: web.Application, path: str) -> None:
        """The Socket.IO path's routes: GET here first, POST and OPTIONS (polling) to engineio."""
        path = "/" + path.strip("/") + "/"
        app.router.add_get(path, self.handle)
        app.router.add_post(path, self.sio.handle_request)
        app.router.add_route("OPTIONS", path, self.sio.handle_request)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self._wants_websocket(request):
            environ = translate_request(request)  # python-engineio's own environ, for the same handlers
            if self._origin_allowed(environ):
                return await self._serve(request, environ)
        return await self.sio.handle_request(request)

    @staticmethod
    def _wants_websocket(request: web.Request) -> bool:
        """A new Engine.IO 4 session straight on a websocket (no ``sid``: not an upgrade)."""
        query = request.query
        return (
            query.get("EIO") == "4"
            and query.get("transport") == "websocket"
            and "sid" not in query
            and request.headers.get("Upgrade", "").lower() == "websocket"
        )

    def _origin_allowed(self, environ: dict) -> bool:
        """python-engineio's origin check (a refused origin then gets engineio's own answer)."""
        eio = self.sio.eio
        origin = environ.get("HTTP_ORIGIN")
        if eio.cors_allowed_origins == [] or not origin:
            return True
        allowed = eio._cors_allowed_origins(environ)
        return allowed is None or origin in allowed

    # ------------------------------------------------------------------ a socket's life

    async def _serve(self, request: web.Request, environ: dict) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=self.max_payload, compress=self.compress, timeout=CLOSE_TIMEOUT_SECONDS)
        await ws.prepare(request)
        loop = asyncio.get_running_loop()
        sock = LeanSocket(self.sio.eio.generate_id(), ws, request.transport, loop.time())
        await sock.send(self._open_packet(sock.eio_sid))
        self.sockets[sock.eio_sid] = sock
        reason = TRANSPORT_CLOSE
        try:
            await self.sio._handle_eio_connect(sock.eio_sid, environ)
            self.heartbeat.watch(sock, sock.pong_at + self.ping_interval)
            self.heartbeat.start()
            reason = await self._read(sock)
        finally:
            sock.forget()
            self.sockets.pop(sock.eio_sid, None)
            # python-socketio's own teardown: every namespace still connected gets its
            # disconnect handler (one that sio.disconnect already ended is skipped)
            await self.sio._handle_eio_disconnect(sock.eio_sid, sock.reason or reason)
            if not ws.closed:
                with contextlib.suppress(Exception):
                    await ws.close()
        return ws

    def _open_packet(self, eio_sid: str) -> str:
        return eio_packet.Packet(
            eio_packet.OPEN,
            {
                "sid": eio_sid,
                "upgrades": [],
                "pingInterval": int(self.ping_interval * 1000),
                "pingTimeout": int(self.ping_timeout * 1000),
                "maxPayload": self.max_payload,
            },
        ).encode()

    async def _read(self, sock: LeanSocket) -> str:
        """Handle the socket's frames in order until it closes; returns the disconnect reason."""
        ws = sock.ws
        assert ws is not None
        while True:
            msg = await ws.receive()
            if msg.type is WSMsgType.TEXT:
                if not await self._on_frame(sock, msg.data):
                    return CLIENT_DISCONNECT
            elif msg.type is WSMsgType.BINARY:
                await ws.close(code=WSCloseCode.UNSUPPORTED_DATA, message=BINARY_REFUSED)
                return TRANSPORT_ERROR
            else:  # closed by the client, by a server-side close, or by aiohttp (1009: frame too big)
                return TRANSPORT_CLOSE

    async def _on_frame(self, sock: LeanSocket, text: str) -> bool:
        """One Engine.IO packet; False when the client closed the session."""
        kind = text[:1]
        if kind == "4":
            sock.busy = True
            try:
                await self._on_packet(sock, text[1:])
            finally:
                sock.busy = False
        elif kind == "3":
            sock.awaiting_pong = False
            sock.pong_at = asyncio.get_running_loop().time()
        elif kind == "1":
            return False
        # "2" (a client's ping), "5" (upgrade), "6" (noop) and unknown types are ignored, as
        # python-engineio ignores them on an upgraded websocket
        return True

    # ------------------------------------------------------------------ Socket.IO

    async def _on_packet(self, sock: LeanSocket, text: str) -> None:
        sio = self.sio
        try:
            # python-socketio's decoder with the server's JSON (PacketJson: bounded nesting)
            pkt = sio.packet_class(encoded_packet=text)
        except Exception as exc:  # malformed: python-engineio logs and ignores these too
            log.info("undecodable Socket.IO packet ignored: %s: %s", type(exc).__name__, exc)
            return
        kind, namespace = pkt.packet_type, pkt.namespace or "/"
        try:
            if kind == sio_packet.EVENT:
                await self._on_event(sock, namespace, pkt.id, pkt.data)
            elif kind == sio_packet.CONNECT:
                await sio._handle_connect(sock.eio_sid, namespace, pkt.data)
            elif kind == sio_packet.DISCONNECT:
                await sio._handle_disconnect(sock.eio_sid, namespace, CLIENT_DISCONNECT)
            elif kind == sio_packet.ACK:
                await sio._handle_ack(sock.eio_sid, namespace, pkt.id, pkt.data)
            elif kind in (sio_packet.BINARY_EVENT, sio_packet.BINARY_ACK) and sock.ws is not None:
                await sock.ws.close(code=WSCloseCode.UNSUPPORTED_DATA, message=ATTACHMENTS_REFUSED)
            # a CONNECT_ERROR from a client is ignored
        except Exception:  # the handlers answer their own errors; this is a bug, not the client's
            log.exception("socket packet handling failed")

    async def _on_event(self, sock: LeanSocket, namespace: str, ack_id: Any, data: Any) -> None:
        """Run the event's handler inline and ack its result, as python-socketio's
        ``_handle_event_internal`` does but without a task per event."""
        sio = self.sio
        # the same refusal as SocketServer._handle_event: a client may not fire `connect` or
        # `disconnect`, and an event needs a name
        if not isinstance(data, list) or not data or not isinstance(data[0], str) or data[0] in sio.reserved_events:
            if ack_id is not None:
                await sock.send(
                    ack_frame(sio, namespace, ack_id, [error("unknown_event", "Not an event a client may send")])
                )
            return
        manager = sio.manager
        sid = manager.sid_from_eio_sid(sock.eio_sid, namespace)
        if not manager.is_connected(sid, namespace):
            return
        result = await sio._trigger_event(data[0], namespace, sid, *data[1:])
        if ack_id is not None and result is not sio.not_handled:
            args = [] if result is None else list(result) if isinstance(result, tuple) else [result]
            await sock.send(ack_frame(sio, namespace, ack_id, args))

    # ------------------------------------------------------------------ outgoing

    async def send_packet(self, sock: LeanSocket, pkt: sio_packet.Packet) -> None:
        """A Socket.IO packet from python-socketio (connect answers, emits, disconnects)."""
        encoded = pkt.encode()
        if isinstance(encoded, list):  # binary attachments: never emitted by this service
            log.error("a binary Socket.IO packet cannot go to a lean websocket; dropped")
            return
        await sock.send("4" + encoded)
        if pkt.packet_type == sio_packet.DISCONNECT:
            self._close_when_unused(sock)

    async def send_eio_packet(self, sock: LeanSocket, pkt: eio_packet.Packet) -> None:
        """An Engine.IO packet from python-socketio's manager (a room emit, encoded once there)."""
        encoded = pkt.encode()
        if isinstance(encoded, str):
            await sock.send(encoded)
        else:
            log.error("a binary Engine.IO packet cannot go to a lean websocket; dropped")

    def _close_when_unused(self, sock: LeanSocket) -> None:
        """``sio.disconnect`` ended a namespace: python-socketio leaves the Engine.IO connection
        open, a lean socket with no namespace left is closed (its handler is not run again)."""
        manager = self.sio.manager
        for namespace in list(manager.get_namespaces()):
            sid = manager.sid_from_eio_sid(sock.eio_sid, namespace)
            if sid is not None and sid not in manager.pending_disconnect.get(namespace, ()):
                return
        if sock.ws is None:
            return
        sock.reason = SERVER_DISCONNECT
        task = asyncio.get_running_loop().create_task(sock.ws.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def shutdown(self) -> None:
        """Stop pinging and close the lean sockets still open (their handlers run as they close)."""
        await self.heartbeat.stop()
        closes = [asyncio.ensure_future(sock.ws.close()) for sock in list(self.sockets.values()) if sock.ws is not None]
        closes += list(self._closing)
        if closes:  # within the server's own bound on shutdown (sockets/server.py)
            await asyncio.wait(closes, timeout=SHUTDOWN_WAIT_SECONDS)


def ack_frame(sio: socketio.AsyncServer, namespace: str, ack_id: int, args: list) -> str:
    """``43/ns,<id>[...]``, written directly: no Packet object (whose constructor walks the
    whole answer looking for bytes)."""
    prefix = "43" if namespace == "/" else f"43{namespace},"
    return f"{prefix}{ack_id}{sio.packet_class.json.dumps(args, separators=(',', ':'))}"


class LeanSocketServer(SocketServer):
    """The Socket.IO server whose outgoing packets go straight to the lean websocket when the
    Engine.IO sid is a lean socket's, and through python-engineio otherwise."""

    lean: LeanEngine | None = None

    async def _send_packet(self, eio_sid: str, pkt: Any) -> None:
        sock = self.lean.sockets.get(eio_sid) if self.lean is not None else None
        if sock is None:
            await super()._send_packet(eio_sid, pkt)
        else:
            await self.lean.send_packet(sock, pkt)  # type: ignore[union-attr]

    async def _send_eio_packet(self, eio_sid: str, eio_pkt: Any) -> None:
        sock = self.lean.sockets.get(eio_sid) if self.lean is not None else None
        if sock is None:
            await super()._send_eio_packet(eio_sid, eio_pkt)
        else:
            await self.lean.send_eio_packet(sock, eio_pkt)  # type: ignore[union-attr]

    async def shutdown(self) -> None:
        if self.lean is not None:
            await self.lean.shutdown()
        await super().shutdown()
