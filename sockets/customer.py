"""The ``/customer`` namespace (PROTOCOL.md "Customer → server")."""

from __future__ import annotations

from typing import Any

import socketio

from app.auth import Principal
from app.context import AppContext
from app.live import CUSTOMER_NS, availability_room, customer_room, session_room
from app.schemas import chat as s
from app.services import chat, departments
from sockets.common import SocketState, meta, register

NS = CUSTOMER_NS


async def on_connected(sio: socketio.AsyncServer, ctx: AppContext, principal: Principal, sid: str) -> None:
    await sio.enter_room(sid, customer_room(principal.user_id), namespace=NS)
    async with ctx.db.connection() as conn:
        open_ids = [r["id"] for r in await ctx.db.q.open_sessions_of_customer(conn, customer_id=principal.user_id)]
    for session_id in open_ids:
        await sio.enter_room(sid, session_room(session_id), namespace=NS)
        view = await chat.get_session(ctx, principal, session_id)
        await ctx.live.emit("chat:session", view, to=sid, namespace=NS)


async def start(ctx: AppContext, p: Principal, sid: str, d: dict) -> Any:
    return await chat.start_chat(ctx, p, meta(sid), d, origin_sid=sid)


async def message(ctx: AppContext, p: Principal, sid: str, d: dict) -> Any:
    sent = await chat.send_message(
        ctx,
        p,
        meta(sid),
        d["session_id"],
        d["client_msg_id"],
        d["message"],
        d["message_type"],
        origin_sid=sid,
        attachment_ids=d.get("attachments"),
    )
    return {"message": sent["message"]}


async def sync(ctx: AppContext, p: Principal, sid: str, d: dict) -> Any:
    return await chat.sync(ctx, p, d["session_id"], d["after_seq"])


async def typing(ctx: AppContext, p: Principal, sid: str, d: dict) -> Any:
    await chat.typing(ctx, p, d["session_id"], d["typing"], origin_sid=sid)


async def read(ctx: AppContext, p: Principal, sid: str, d: dict) -> Any:
    await chat.mark_read(ctx, p, d["session_id"], d["up_to_seq"], origin_sid=sid)


async def end(ctx: AppContext, p: Principal, sid: str, d: dict) -> Any:
    return {"session": await chat.end_chat(ctx, p, meta(sid), d["session_id"])}


async def rate(ctx: AppContext, p: Principal, sid: str, d: dict) -> Any:
    return await chat.rate_chat(ctx, p, meta(sid), d["session_id"], d["rating"], d.get("comment"))


async def leave_message(ctx: AppContext, p: Principal, sid: str, d: dict) -> Any:
    return await chat.leave_message(ctx, p, meta(sid), d)


async def watch_availability(ctx: AppContext, p: Principal, sid: str, d: dict) -> Any:
    """Join ``availability:<name>`` for each department (leaving those watched before) and answer
    their availability now; ``chat:availability`` pushes follow when an agent's presence changes."""
    data = (
        await departments.availability(ctx, None)
        if not d.get("departments")
        else {
            "departments": [
                row
                for name in dict.fromkeys(d["departments"])
                for row in (await departments.availability(ctx, name))["departments"]
            ]
        }
    )
    emitter = ctx.live.emitter
    if emitter is not None:
        wanted = {availability_room(row["name"]) for row in data["departments"]}
        for room in emitter.rooms(sid, namespace=NS):
            if room.startswith("availability:") and room not in wanted:
                await emitter.leave_room(sid, room, namespace=NS)
        for room in wanted:
            await emitter.enter_room(sid, room, namespace=NS)
    return data


EVENTS = {
    "chat:start": (s.ChatStartSchema(exclude=("customer_id",)), start),
    "chat:message": (s.ChatMessageSchema(), message),
    "chat:sync": (s.ChatSyncSchema(), sync),
    "chat:typing": (s.ChatTypingSchema(), typing),
    "chat:read": (s.ChatReadSchema(), read),
    "chat:end": (s.SessionRef(), end),
    "chat:rate": (s.ChatRateSchema(), rate),
    "chat:leave_message": (s.LeaveMessageSchema(), leave_message),
    "chat:watch_availability": (s.WatchAvailabilitySchema(), watch_availability),
}


def register_all(sio: socketio.AsyncServer, state: SocketState) -> None:
    for event, (schema, handler) in EVENTS.items():
        register(sio, state, NS, event, schema, handler)
