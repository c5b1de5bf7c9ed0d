"""ChatService.StreamChat over a real channel: a bot takes part in a chat beside a Socket.IO
customer; messages in are stored, idempotent, rate limited and broadcast; messages out arrive in
seq order; resume, half-close, cancellation, the chat's end and the server's drain."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
import pytest
import socketio

from app.context import AppContext
from support_stubs.support.v1 import chat_pb2_grpc
from support_stubs.support.v1 import common_pb2 as pb
from support_stubs.support.v1 import support_pb2
from grpc_server.server import GrpcServer
from grpc_helpers import PATIENCE, fails, until, violations

pytest_plugins = ["grpc_fixtures"]
Code = grpc.StatusCode
T = pb.ChatFrameType
READ_TIMEOUT = PATIENCE


async def frame(call: Any) -> pb.ChatMessage:
    message = await asyncio.wait_for(call.read(), READ_TIMEOUT)
    assert message is not grpc.aio.EOF, "the stream ended"
    return message


def say(text: str, client_msg_id: str | None = None, **fields: Any) -> pb.ChatMessage:
    return pb.ChatMessage(message=text, client_msg_id=client_msg_id or uuid.uuid4().hex, **fields)


@dataclasses.dataclass
class Chat:
    session: pb.ChatSession
    customer_id: uuid.UUID
    customer: tuple
    bot_id: uuid.UUID
    bot: tuple


@pytest.fixture
async def chat_session(stubs, callers) -> Chat:
    customer_id, customer = callers.new("customer")
    started = await stubs.support.CreateChatSession(
        support_pb2.CreateChatSessionRequest(subject="Late arrival"), metadata=customer
    )
    bot_id, bot = callers.new("service")
    return Chat(started.session, customer_id, customer, bot_id, bot)


async def customer_says(stubs: Any, chat: Chat, text: str) -> pb.ChatMessage:
    sent = await stubs.support.SendMessage(
        support_pb2.SendMessageRequest(session_id=chat.session.id, message=text, client_msg_id=uuid.uuid4().hex),
        metadata=chat.customer,
    )
    return sent.message


async def join(stubs: Any, chat: Chat, **first: Any) -> Any:
    call = stubs.chat.StreamChat(metadata=chat.bot)
    await call.write(pb.ChatMessage(session_id=first.pop("session_id", chat.session.id), **first))
    joined = await frame(call)
    assert joined.type == T.CHAT_FRAME_TYPE_JOINED and joined.session.id == chat.session.id
    return call


@pytest.fixture
async def customer_socket(replica, users, chat_session) -> AsyncIterator[list]:
    """The chat's customer on Socket.IO; yields the chat:message payloads it receives."""
    received: list = []
    client = socketio.AsyncClient(reconnection=False)
    client.on("chat:message", lambda data: received.append(data), namespace="/customer")
    token = users.headers(chat_session.customer_id, "customer")["Authorization"].split()[1]
    await client.connect(
        replica.http,
        namespaces=["/customer"],
        auth={"token": token},
        socketio_path=replica.settings.websocket_endpoint.strip("/"),
        transports=["websocket"],
    )
    try:
        yield received
    finally:
        await client.disconnect()


async def test_a_bot_talks_in_a_chat_beside_a_socketio_customer(stubs, chat_session, customer_socket):
    chat = chat_session
    call = await join(stubs, chat, session_id=chat.session.session_key)
    await call.write(say("Hello, I am the booking assistant", "bot-1"))
    mine = await frame(call)
    assert (mine.type, mine.seq, mine.sender_type, mine.client_msg_id) == (T.CHAT_FRAME_TYPE_MESSAGE, 1, "bot", "bot-1")
    assert mine.sender_id == str(chat.bot_id) and mine.id
    await until(lambda: len(customer_socket) == 1)
    assert customer_socket[0]["id"] == mine.id and customer_socket[0]["sender_type"] == "bot"
    reply = await customer_says(stubs, chat, "I will arrive at midnight")
    theirs = await frame(call)
    assert (theirs.id, theirs.seq, theirs.sender_type, theirs.message) == (
        reply.id,
        2,
        "customer",
        "I will arrive at midnight",
    )
    stored = await stubs.support.GetMessages(
        support_pb2.GetMessagesRequest(session_id=chat.session.id), metadata=chat.customer
    )
    assert [(m.seq, m.sender_type) for m in stored.items] == [(1, "bot"), (2, "customer")]
    call.cancel()


async def test_a_resend_is_answered_as_a_duplicate_and_stored_once(stubs, chat_session):
    call = await join(stubs, chat_session)
    await call.write(say("Your room is ready", "same"))
    first = await frame(call)
    await call.write(say("Your room is ready", "same"))
    again = await frame(call)
    assert again.type == T.CHAT_FRAME_TYPE_DUPLICATE and (again.id, again.seq) == (first.id, first.seq)
    await call.write(say("Anything else?"))
    assert (await frame(call)).seq == first.seq + 1
    call.cancel()


async def test_a_bad_frame_gets_an_error_frame_and_the_stream_goes_on(stubs, chat_session):
    call = await join(stubs, chat_session)
    await call.write(pb.ChatMessage(message="no id"))
    error = await frame(call)
    assert error.type == T.CHAT_FRAME_TYPE_ERROR and error.error_code == "INVALID_ARGUMENT"
    assert "client_msg_id" in error.error_message
    await call.write(say("x" * 6000, "too-long"))
    error = await frame(call)
    assert (error.type, error.client_msg_id) == (T.CHAT_FRAME_TYPE_ERROR, "too-long")
    await call.write(say("fine"))
    assert (await frame(call)).type == T.CHAT_FRAME_TYPE_MESSAGE
    call.cancel()


async def test_a_stream_resumes_after_a_seq(stubs, chat_session):
    for n in range(3):
        await customer_says(stubs, chat_session, f"message {n}")
    call = await join(stubs, chat_session, after_seq=1)
    assert [(await frame(call)).seq for _ in range(2)] == [2, 3]
    await customer_says(stubs, chat_session, "live")
    assert (await frame(call)).message == "live"
    call.cancel()
    from_start = await join(stubs, chat_session, after_seq=0)
    assert [(await frame(from_start)).seq for _ in range(4)] == [1, 2, 3, 4]
    from_start.cancel()


async def test_without_after_seq_only_new_messages_flow(stubs, chat_session):
    await customer_says(stubs, chat_session, "old")
    call = await join(stubs, chat_session)
    await customer_says(stubs, chat_session, "new")
    assert (await frame(call)).message == "new"
    call.cancel()


async def test_the_stream_ends_when_the_chat_ends(stubs, chat_session, replica, users):
    call = await join(stubs, chat_session)
    await customer_says(stubs, chat_session, "bye")
    await stubs.support.SendMessage(
        support_pb2.SendMessageRequest(session_id=chat_session.session.id, message="x"), metadata=chat_session.customer
    )
    headers = users.headers(chat_session.customer_id, "customer")
    async with (
        aiohttp.ClientSession() as http,
        http.put(
            f"{replica.http}/api/v1/chat/sessions/{chat_session.session.id}", json={"status": "ended"}, headers=headers
        ) as response,
    ):
        assert response.status == 200, await response.text()
    kinds = []
    while (message := await asyncio.wait_for(call.read(), READ_TIMEOUT)) is not grpc.aio.EOF:
        kinds.append((message.type, message.message))
    assert kinds[:2] == [(T.CHAT_FRAME_TYPE_MESSAGE, "bye"), (T.CHAT_FRAME_TYPE_MESSAGE, "x")]
    assert kinds[-1][0] == T.CHAT_FRAME_TYPE_ENDED
    assert await call.code() == Code.OK


async def test_a_half_close_ends_the_stream_after_the_last_answer(stubs, chat_session):
    call = await join(stubs, chat_session)
    await call.write(say("last words", "last"))
    await call.done_writing()
    assert (await frame(call)).client_msg_id == "last"
    assert await asyncio.wait_for(call.read(), READ_TIMEOUT) is grpc.aio.EOF
    assert await call.code() == Code.OK


async def test_cancelling_a_stream_releases_it(stubs, chat_session, replica):
    from app.server import GRPC

    hub = replica.app[GRPC].hub
    before = hub.listeners
    call = await join(stubs, chat_session)
    await until(lambda: hub.listeners == before + 1)
    call.cancel()
    await until(lambda: hub.listeners == before)
    assert await call.code() == Code.CANCELLED


async def test_the_first_frame_must_name_a_visible_session(stubs, chat_session, callers):
    call = stubs.chat.StreamChat(metadata=chat_session.bot)
    await call.write(pb.ChatMessage(message="hi"))
    error = await fails(call.read(), Code.INVALID_ARGUMENT)
    assert "session_id" in violations(error)
    call = stubs.chat.StreamChat(metadata=callers.new("customer")[1])
    await call.write(pb.ChatMessage(session_id=chat_session.session.id))
    await fails(call.read(), Code.NOT_FOUND)
    call = stubs.chat.StreamChat()
    await call.write(pb.ChatMessage(session_id=chat_session.session.id))
    await fails(call.read(), Code.UNAUTHENTICATED)


@pytest.fixture
async def strict_chat(ctx: AppContext) -> AsyncIterator[tuple[GrpcServer, Any]]:
    settings = dataclasses.replace(ctx.settings, chat_rate_limit_messages_per_minute=1)
    server = GrpcServer(dataclasses.replace(ctx, settings=settings), host="127.0.0.1", port=0)
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield server, chat_pb2_grpc.ChatServiceStub(channel)
    finally:
        await channel.close()
        await server.stop(0)


async def test_a_rate_limited_message_gets_an_error_frame(strict_chat, chat_session):
    _, stub = strict_chat
    call = stub.StreamChat(metadata=chat_session.bot)
    await call.write(pb.ChatMessage(session_id=chat_session.session.id))
    assert (await frame(call)).type == T.CHAT_FRAME_TYPE_JOINED
    await call.write(say("one"))
    assert (await frame(call)).type == T.CHAT_FRAME_TYPE_MESSAGE
    await call.write(say("two", "two"))
    limited = await frame(call)
    assert (limited.type, limited.error_code, limited.client_msg_id) == (
        T.CHAT_FRAME_TYPE_ERROR,
        "RESOURCE_EXHAUSTED",
        "two",
    )
    call.cancel()


async def test_shutdown_ends_chat_streams_with_unavailable(strict_chat, chat_session):
    server, stub = strict_chat
    call = stub.StreamChat(metadata=chat_session.bot)
    await call.write(pb.ChatMessage(session_id=chat_session.session.id))
    assert (await frame(call)).type == T.CHAT_FRAME_TYPE_JOINED
    await server.stop(10)
    error = await fails(call.read(), Code.UNAVAILABLE)
    assert "resume" in error.details()
