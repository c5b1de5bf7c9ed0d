"""ChatService.StreamChat: a peer takes part in a chat session over one bidirectional stream.

Frames in go through :func:`app.services.chat.send_message`, exactly like the Socket.IO
``chat:message`` (stored before answered, idempotent on ``client_msg_id``, rate limited,
broadcast to the session's sockets). Frames out are the session's messages in ``seq`` order,
read from the table after ``after_seq`` whenever the event hub reports a new ``chat.*`` event of
the session (LISTEN/NOTIFY, no polling loop), so every participant's messages reach the peer
on whichever replica they were written. Out-going frames pass through one bounded queue: a
peer that does not read stops the reader, not the server's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
import marshmallow as ma

from app.auth import Principal
from app.context import AppContext
from app.errors import TRANSPORT_CODES, DomainError, Unavailable, ValidationFailed
from app.schemas import chat as chat_schemas
from app.services import chat, events_api
from grpc_server.convert import to_message
from support_stubs.support.v1 import chat_pb2_grpc
from support_stubs.support.v1 import common_pb2 as pb
from grpc_server.interceptors import caller, current_call, field_violations

OPEN = ("queued", "active")
PAGE = 200
OUT_QUEUE = 256
RECHECK_SECONDS = 30.0  # safety net only: the hub wakes the stream on every event of the session
SHUTTING_DOWN = "The server is shutting down; reconnect and resume after the last seq received"
_END = object()


def _frame(kind: int, **fields: Any) -> pb.ChatMessage:
    frame = to_message(pb.ChatMessage, fields) if fields else pb.ChatMessage()
    frame.type = kind
    return frame


class _Stream:
    """One StreamChat call: a reader task for frames in, a follower task for messages out."""

    def __init__(
        self,
        ctx: AppContext,
        hub: events_api.EventHub,
        principal: Principal,
        session: dict,
        after_seq: int,
        draining: asyncio.Event,
    ):
        self.ctx = ctx
        self.hub = hub
        self.principal = principal
        self.session = session
        self.cursor = after_seq
        self.draining = draining
        self.out: asyncio.Queue[Any] = asyncio.Queue(OUT_QUEUE)
        self.wake = asyncio.Event()
        self.closing = False

    async def handle(self, frame: pb.ChatMessage) -> None:
        """One frame in: store its message (or answer why not)."""
        payload = {
            "session_id": str(self.session["id"]),
            "client_msg_id": frame.client_msg_id or None,
            "message": frame.message or None,
            "message_type": frame.message_type or "text",
        }
        try:
            data = chat_schemas.ChatMessageSchema().load({k: v for k, v in payload.items() if v is not None})
        except ma.ValidationError as exc:
            errors = "; ".join(f"{field}: {message}" for field, message in field_violations(exc.normalized_messages()))
            await self.out.put(
                _frame(
                    pb.CHAT_FRAME_TYPE_ERROR,
                    client_msg_id=frame.client_msg_id,
                    session_id=self.session["id"],
                    error_code="INVALID_ARGUMENT",
                    error_message=errors,
                )
            )
            return
        try:
            sent = await chat.send_message(
                self.ctx,
                self.principal,
                current_call().meta,
                self.session["id"],
                data["client_msg_id"],
                data["message"],
                data["message_type"],
            )
        except DomainError as exc:
            await self.out.put(
                _frame(
                    pb.CHAT_FRAME_TYPE_ERROR,
                    client_msg_id=frame.client_msg_id,
                    session_id=self.session["id"],
                    error_code=TRANSPORT_CODES[exc.code][1],
                    error_message=exc.detail,
                )
            )
            return
        if sent["duplicate"]:
            await self.out.put(_frame(pb.CHAT_FRAME_TYPE_DUPLICATE, **sent["message"]))
        self.wake.set()  # our own message comes back in seq order: no need to wait for NOTIFY

    async def read_in(self, frames: AsyncIterator[pb.ChatMessage]) -> None:
        async for frame in frames:
            await self.handle(frame)
        # The peer half-closed: the follower sends what is left (its own last messages too), then ends.
        self.closing = True
        self.wake.set()

    async def follow(self) -> None:
        """Every message after the cursor, in seq order; ENDED (and the end) when the chat ends."""
        watch = await self.hub.watch(
            events_api.EventFilter(entity_type="chat_session", entity_id=str(self.session["id"]))
        )
        try:
            while True:
                self.wake.clear()
                watch.event.clear()
                await self._send_new()
                if self.session["status"] not in OPEN or "chat.ended" in watch.types_seen:
                    await self._finish()
                    return
                if self.closing:  # set after the peer's last message committed: one more read has it
                    await self._send_new()
                    await self.out.put(_END)
                    return
                waits = [asyncio.ensure_future(self.wake.wait()), asyncio.ensure_future(watch.event.wait())]
                try:
                    done, _ = await asyncio.wait(waits, timeout=RECHECK_SECONDS, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in waits:
                        waiter.cancel()
                if not done:  # nothing heard for a while: look at the session itself
                    self.session = await chat.get_session(self.ctx, self.principal, self.session["id"])
        finally:
            self.hub.detach(watch)

    async def _send_new(self) -> None:
        while True:
            page = await chat.list_messages(self.ctx, self.principal, self.session["id"], self.cursor, PAGE)
            self.session = page["session"]
            for message in page["items"]:
                await self.out.put(_frame(pb.CHAT_FRAME_TYPE_MESSAGE, **message))
                self.cursor = message["seq"]
            if len(page["items"]) < PAGE:
                return

    async def _finish(self) -> None:
        await self._send_new()
        await self.out.put(_frame(pb.CHAT_FRAME_TYPE_ENDED, session_id=self.session["id"], session=self.session))
        await self.out.put(_END)


class ChatServicer(chat_pb2_grpc.ChatServiceServicer):
    def __init__(self, ctx: AppContext, hub: events_api.EventHub, draining: asyncio.Event):
        self.ctx = ctx
        self.hub = hub
        self.draining = draining

    async def StreamChat(
        self, request_iterator: AsyncIterator[pb.ChatMessage], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ChatMessage]:
        principal = caller()
        first = await anext(request_iterator, None)
        if first is None:
            return
        if not first.session_id or len(first.session_id) > 64:
            raise ValidationFailed(
                "The first frame names the session",
                details={"session_id": ["A session id or session_key of 1-64 characters is required."]},
            )
        if first.HasField("after_seq") and first.after_seq < 0:
            raise ValidationFailed("The request has invalid fields", details={"after_seq": ["Must be at least 0."]})
        session = await chat.get_session(self.ctx, principal, first.session_id)
        after_seq = first.after_seq if first.HasField("after_seq") else session["last_seq"]
        stream = _Stream(self.ctx, self.hub, principal, session, after_seq, self.draining)
        yield _frame(pb.CHAT_FRAME_TYPE_JOINED, session_id=session["id"], session=session)

        async def read_in() -> None:
            if first.message:
                await stream.handle(first)
            await stream.read_in(request_iterator)

        tasks = [
            asyncio.create_task(read_in(), name="stream-chat-in"),
            asyncio.create_task(stream.follow(), name="stream-chat-out"),
        ]
        stop = asyncio.ensure_future(self.draining.wait())
        getter: asyncio.Future | None = None
        try:
            while True:
                getter = asyncio.ensure_future(stream.out.get())
                done, _ = await asyncio.wait([getter, stop, *tasks], return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await getter
                    if stop in done:
                        raise Unavailable(SHUTTING_DOWN)
                    for task in tasks:
                        if task.done() and task.exception() is not None:
                            raise task.exception()
                    tasks = [t for t in tasks if not t.done()]
                    continue
                item = getter.result()
                if item is _END:
                    return
                yield item
        finally:
            stop.cancel()
            if getter is not None:
                getter.cancel()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task
