"""Live chat: sessions, messages, notes, read receipts, ending, rating and offline messages.

Rules that hold whichever transport calls (Socket.IO, REST, gRPC):
- a message is committed before anyone hears of it, then acknowledged, then broadcast;
- a resend with the same ``client_msg_id`` returns the first message and broadcasts nothing;
- ``seq`` is taken under the session row's lock, so it has no gaps and no duplicates;
- a customer has at most one open session, enforced by a unique index, not check-then-insert.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from typing import Any

import asyncpg

from app import metrics
from app.auth import Principal, RequestMeta, require_role
from app.context import AppContext
from app.db import fetch_page
from app.errors import Conflict, Forbidden, InvalidState, ValidationFailed
from app.live import AGENT_NS, CUSTOMER_NS, session_room
from app.security import audit
from app.services import attachments, automation, departments, routing, tickets
from app.services.feedback import announce_rating, record_sentiment
from app.services.message_writer import PendingMessage
from app.services.session_fields import CUSTOMER_NAME_FIELD
from app.services.chat_views import (
    participant_session,
    present_message,
    present_note,
    session_view,
    session_views,
    summary as _summary,
    visible_session,
)

log = logging.getLogger(__name__)
OPEN = ("queued", "active")
SYNC_LIMIT = 1000


# ---------------------------------------------------------------- access

# ---------------------------------------------------------------- starting


async def start_chat(
    ctx: AppContext, principal: Principal, meta: RequestMeta, data: dict, origin_sid: str | None = None
) -> dict:
    """Open a session (or return the customer's open one), route it, and post the first message."""
    customer_id = _customer_for(principal, data)
    department = data.get("department") or departments.DEFAULT
    now = ctx.clock.now()
    created = False
    async with ctx.db.transaction() as conn:
        await departments.ensure(ctx, conn, department, principal=principal, meta=meta)
        try:
            async with conn.transaction():  # savepoint: a lost race must not abort the outer one
                row = await ctx.db.q.insert_session(
                    conn,
                    session_key=_new_session_key(),
                    customer_id=customer_id,
                    customer_name=ctx.cipher.encrypt(_customer_name(principal, data), CUSTOMER_NAME_FIELD),
                    department=department,
                    subject=data.get("subject"),
                    metadata=data.get("metadata", {}),
                    now=now,
                )
            created = True
        except asyncpg.UniqueViolationError:
            row = await ctx.db.q.open_session_of_customer(conn, customer_id=customer_id)
            if row is None:  # the other one ended in between: a rare race, the caller may retry
                raise Conflict("Another chat was starting for this customer; try again") from None
        if created:
            summary = _summary(row)
            await audit.record_change(
                conn,
                ctx.events,
                principal,
                meta,
                "chat.start",
                "chat_session",
                row["id"],
                {"department": department, "customer_id": str(customer_id)},
                [("chat.started", summary), ("chat.queued", summary)],
            )
    if created:
        metrics.CHAT_SESSIONS_STARTED.labels(department=department).inc()
        await ctx.live.join(CUSTOMER_NS, customer_id, session_room(row["id"]))
    result: dict[str, Any] = {}
    if data.get("message"):  # the customer's words come first (seq 1), then routing, then a greeting
        sent = await send_message(
            ctx,
            principal,
            meta,
            row["id"],
            data.get("client_msg_id") or f"start-{row['id']}",
            data["message"],
            origin_sid=origin_sid,
        )
        result["message"] = sent["message"]
    if created:
        await routing.drain_queue(ctx, department)
        routing.queue_changed(ctx, department)
        await automation.greet_chat(
            ctx, row["id"], data.get("subject") or data.get("message"), _shown_articles(data.get("metadata"))
        )
    async with ctx.db.connection() as conn:
        result["session"] = await session_view(ctx, conn, await ctx.db.q.get_session(conn, id=row["id"]))
    if created:
        await ctx.live.to_customer(customer_id, "chat:session", result["session"])
    result["created"] = created
    return result


def _shown_articles(metadata: dict | None) -> list[str]:
    """``metadata.shown_articles``: the ids of the articles the widget's pre-chat form showed
    (the greeting does not suggest them again); anything else there is ignored."""
    shown = (metadata or {}).get("shown_articles")
    return [a for a in shown if isinstance(a, str)][:20] if isinstance(shown, list) else []


def _customer_name(principal: Principal, data: dict) -> str | None:
    """The customer's own name from their token; a service or agent starting a chat for a
    customer may name them in ``metadata.customer_name``."""
    if principal.role == "customer":
        return principal.name
    name = (data.get("metadata") or {}).get("customer_name")
    return name if isinstance(name, str) and name.strip() else None


def _customer_for(principal: Principal, data: dict) -> uuid.UUID:
    if principal.role == "customer":
        if data.get("customer_id") not in (None, principal.user_id):
            raise Forbidden("Customers start chats for themselves")
        return principal.user_id
    if principal.role in ("service", "admin", "supervisor") and data.get("customer_id"):
        return data["customer_id"]
    if principal.role in ("service", "admin", "supervisor"):
        raise ValidationFailed(details={"customer_id": ["Required when starting a chat for a customer."]})
    raise Forbidden("Only customers start chats")


def _new_session_key() -> str:
    return "chat_" + secrets.token_urlsafe(18)


# ---------------------------------------------------------------- messages


async def send_message(
    ctx: AppContext,
    principal: Principal,
    meta: RequestMeta,
    ref: Any,
    client_msg_id: str | None,
    text: str,
    message_type: str = "text",
    origin_sid: str | None = None,
    attachment_ids: list | None = None,
) -> dict:
    """Persist (batched with concurrent sends), then return ``{"message", "duplicate"}``;
    only a new message is broadcast, after it has committed. ``attachment_ids`` name the
    sender's own uploads (app.services.attachments); a message may be files alone."""
    per_minute = ctx.settings.chat_rate_limit_messages_per_minute
    if origin_sid is not None:  # a socket's sender is pinned to this replica: counted here
        ctx.limiter.check_here("chat", principal.user_id, per_minute)
    else:  # REST calls may land on any replica: counted in Redis
        await ctx.limiter.check("chat", str(principal.user_id), per_minute)
    session_id = await _session_uuid(ctx, ref)
    sender_type = principal.sender_type
    files = None
    if attachment_ids:
        if session_id is None:
            await _explain_refusal(ctx, principal, ref)  # raises
        else:
            await _explain_refusal(ctx, principal, session_id, only_access=True)
            files = await attachments.claim_for_chat(ctx, principal, session_id, attachment_ids)
    row = None
    if session_id is not None:
        row = await ctx.message_writer.write(
            PendingMessage(
                session_id=session_id,
                sender_id=principal.user_id,
                sender_type=sender_type,
                scope=_SCOPES.get(principal.role, "all"),
                client_msg_id=client_msg_id,
                ciphertext=ctx.cipher.encrypt(text, "chat_messages.message"),
                message_type=message_type,
                attachments=files,
            )
        )
    if row is None or session_id is None:
        await _explain_refusal(ctx, principal, ref)
    assert row is not None and session_id is not None  # _explain_refusal raised otherwise
    if files:
        await attachments.bind_chat_message(ctx, row)
    if row["duplicate"]:  # an earlier message of the same client_msg_id: as it was stored
        return {"message": present_message(ctx, row), "duplicate": True}
    message = present_message(ctx, row, plaintext=text)
    _MESSAGES_STORED[sender_type].inc()
    await ctx.live.to_session(session_id, "chat:message", message, skip_sid=origin_sid)
    return {"message": message, "duplicate": False}


_SCOPES = {"customer": "customer", "agent": "agent"}
_MESSAGES_STORED = {kind: metrics.CHAT_MESSAGES.labels(sender_type=kind) for kind in ("customer", "agent", "bot")}


async def _session_uuid(ctx: AppContext, ref: Any) -> uuid.UUID | None:
    try:
        return ref if isinstance(ref, uuid.UUID) else uuid.UUID(str(ref))
    except ValueError:
        async with ctx.db.connection() as conn:
            row = await ctx.db.q.get_session_by_key(conn, session_key=str(ref))
        return row["id"] if row else None


async def _explain_refusal(ctx: AppContext, principal: Principal, ref: Any, *, only_access: bool = False) -> None:
    """A message was not stored: say why (the slow path, taken only on errors). With
    ``only_access``, a check before files are tied to the chat: raises only when the caller may
    not write there."""
    async with ctx.db.connection() as conn:
        session = await participant_session(ctx, conn, principal, ref)
    _check_participant(principal, session)
    if only_access and session["status"] in OPEN:
        return
    raise InvalidState(f"The chat is {session['status']}; start a new one")


def _check_participant(principal: Principal, session: Any) -> None:
    """Customers own their session; agents must be assigned; supervisors and services may join."""
    if principal.role == "agent" and session["agent_id"] != principal.user_id:
        raise Forbidden("Only the assigned agent may write in this chat")


async def sync(ctx: AppContext, principal: Principal, ref: Any, after_seq: int) -> dict:
    """Messages after ``after_seq`` in order, at most SYNC_LIMIT at a time: ``has_more`` tells the
    client to sync again from the last seq it got (a long absence never loses a message)."""
    async with ctx.db.connection() as conn:
        session = await visible_session(ctx, conn, principal, ref)
        rows = await ctx.db.q.messages_after(conn, session_id=session["id"], after_seq=after_seq, limit=SYNC_LIMIT + 1)
        result = {
            "session": await session_view(ctx, conn, session),
            "messages": [present_message(ctx, r) for r in rows[:SYNC_LIMIT]],
            "has_more": len(rows) > SYNC_LIMIT,
        }
        if principal.is_staff:
            result["notes"] = [present_note(ctx, n) for n in await ctx.db.q.notes_of(conn, session_id=session["id"])]
    return result


async def watch(ctx: AppContext, principal: Principal, ref: Any, sid: str) -> dict:
    """A supervisor follows any chat live without taking it (``chat:watch``): this socket joins
    the session's room and gets its history (``chat:sync``'s reply); ``chat:unwatch`` leaves."""
    require_role(principal, "supervisor", "admin")
    result = await sync(ctx, principal, ref, 0)
    if ctx.live.emitter is not None:
        await ctx.live.emitter.enter_room(sid, session_room(result["session"]["id"]), namespace=AGENT_NS)
    return result


async def unwatch(ctx: AppContext, principal: Principal, ref: Any, sid: str) -> None:
    require_role(principal, "supervisor", "admin")
    async with ctx.db.connection() as conn:
        session = await visible_session(ctx, conn, principal, ref)
    if session["agent_id"] == principal.user_id:
        return  # their own chat: they stay in its room
    if ctx.live.emitter is not None:
        await ctx.live.emitter.leave_room(sid, session_room(session["id"]), namespace=AGENT_NS)


async def typing(
    ctx: AppContext, principal: Principal, ref: Any, is_typing: bool, origin_sid: str | None = None
) -> None:
    async with ctx.db.connection() as conn:
        session = await participant_session(ctx, conn, principal, ref)
    if session["status"] not in OPEN:
        raise InvalidState("The chat has ended")
    await ctx.live.to_session(
        session["id"],
        "chat:typing",
        {"session_id": session["id"], "sender_type": principal.sender_type, "typing": is_typing},
        skip_sid=origin_sid,
    )


async def mark_read(
    ctx: AppContext, principal: Principal, ref: Any, up_to_seq: int, origin_sid: str | None = None
) -> None:
    async with ctx.db.transaction() as conn:
        session = await participant_session(ctx, conn, principal, ref)
        reader = "customer" if principal.role == "customer" else "agent"
        query = ctx.db.q.read_customer if reader == "customer" else ctx.db.q.read_agent
        cursor = await query(conn, id=session["id"], up_to_seq=up_to_seq)
    await ctx.live.to_session(
        session["id"],
        "chat:read",
        {"session_id": session["id"], "reader_type": reader, "up_to_seq": cursor["up_to_seq"]},
        skip_sid=origin_sid,
    )


async def add_note(ctx: AppContext, principal: Principal, meta: RequestMeta, ref: Any, text: str) -> dict:
    if not principal.is_staff:
        raise Forbidden("Only agents write internal notes")
    async with ctx.db.transaction() as conn:
        session = await participant_session(ctx, conn, principal, ref)
        row = await ctx.db.q.insert_note(
            conn,
            session_id=session["id"],
            sender_id=principal.user_id,
            message=ctx.cipher.encrypt(text, "chat_notes.message"),
            now=ctx.clock.now(),
        )
    note = present_note(ctx, row)
    # Notes go to the agent namespace only: customers never receive them.
    await ctx.live.emit("chat:note", note, to=session_room(session["id"]), namespace=AGENT_NS)
    return note


# ---------------------------------------------------------------- ending, rating, offline messages


async def end_chat(ctx: AppContext, principal: Principal, meta: RequestMeta, ref: Any) -> dict:
    async with ctx.db.transaction() as conn:
        session = await participant_session(ctx, conn, principal, ref, lock=True)
        _check_participant(principal, session)
        if session["status"] not in OPEN:
            raise InvalidState(f"The chat is already {session['status']}")
        reason = "customer" if principal.role == "customer" else "agent"
        status = "abandoned" if session["status"] == "queued" else "ended"
        row = await finish(ctx, conn, session, status, reason, principal=principal, meta=meta)
        view = await session_view(ctx, conn, row)
    await after_finish(ctx, row, view, reason)
    return view


async def finish(
    ctx: AppContext,
    conn: asyncpg.Connection,
    session: Any,
    status: str,
    reason: str,
    *,
    principal: Principal | None = None,
    meta: RequestMeta | None = None,
) -> Any:
    """End a locked session in the caller's transaction: free the agent's place, record it."""
    row = await ctx.db.q.end_session(conn, id=session["id"], status=status, reason=reason, now=ctx.clock.now())
    if session["status"] == "active" and session["agent_id"]:
        await ctx.db.q.add_agent_chats(conn, user_id=session["agent_id"], delta=-1, now=ctx.clock.now())
    await audit.record_change(
        conn,
        ctx.events,
        principal,
        meta or RequestMeta(transport="timer"),
        "chat.end",
        "chat_session",
        session["id"],
        {"status": status, "reason": reason},
        [("chat.ended", {**_summary(row), "reason": reason, "duration_seconds": row["duration_seconds"]})],
    )
    return row


async def after_finish(ctx: AppContext, row: Any, view: dict, reason: str) -> None:
    """What follows a committed end: tell both sides, serve the next in the queue."""
    metrics.CHAT_SESSIONS_ENDED.labels(reason=reason).inc()
    await ctx.live.to_session(row["id"], "chat:ended", {"session": view, "reason": reason})
    await ctx.live.to_customer(row["customer_id"], "chat:session", view)
    await routing.drain_queue(ctx, row["department"])
    routing.queue_changed(ctx, row["department"])


async def rate_chat(
    ctx: AppContext, principal: Principal, meta: RequestMeta, ref: Any, rating: int, comment: str | None
) -> dict:
    if principal.role != "customer":
        raise Forbidden("Only the customer rates a chat")
    async with ctx.db.transaction() as conn:
        session = await visible_session(ctx, conn, principal, ref, lock=True)
        if session["status"] == "queued":
            raise InvalidState("A chat can be rated once an agent has joined")
        try:
            async with conn.transaction():
                feedback = await ctx.db.q.insert_session_feedback(
                    conn,
                    chat_session_id=session["id"],
                    customer_id=principal.user_id,
                    agent_id=session["agent_id"],
                    rating=rating,
                    comment=ctx.cipher.encrypt(comment, "feedback.comment"),
                    category=session["department"],
                )
        except asyncpg.UniqueViolationError:
            raise Conflict("This chat has already been rated") from None
        await record_sentiment(ctx, conn, feedback["id"], comment)
        await ctx.db.q.set_rating(conn, id=session["id"], rating=rating)
        created = {
            "feedback_id": feedback["id"],
            "session_id": session["id"],
            "agent_id": session["agent_id"],
            "rating": rating,
        }
        await audit.record_change(
            conn,
            ctx.events,
            principal,
            meta,
            "chat.rate",
            "chat_session",
            session["id"],
            {"rating": rating, "feedback_id": str(feedback["id"])},
            [audit.Event("feedback.created", created, "feedback", feedback["id"])],
        )
    await announce_rating(ctx, session["agent_id"], rating=rating, comment=comment, session_id=session["id"])
    return {"feedback_id": feedback["id"]}


async def leave_message(ctx: AppContext, principal: Principal, meta: RequestMeta, data: dict) -> dict:
    """An offline message (no agent, or the queue timed out) becomes a ticket in the department."""
    if principal.role != "customer":
        raise Forbidden("Only customers leave messages")
    department = data.get("department") or departments.DEFAULT
    session = None
    if data.get("session_id"):
        async with ctx.db.connection() as conn:
            session = await visible_session(ctx, conn, principal, data["session_id"])
        department = session["department"]
    if data.get("email"):
        principal = Principal(principal.user_id, principal.role, principal.name, data["email"])
    ticket = await tickets.create_ticket(
        ctx,
        principal,
        meta,
        {
            "subject": data["subject"],
            "description": data["message"],
            "category": department,
            "metadata": {"source": "chat_offline_message", **({"session_id": str(session["id"])} if session else {})},
        },
        channel="chat",
    )
    if session is not None:
        async with ctx.db.transaction() as conn:
            await ctx.db.q.link_ticket(conn, id=session["id"], ticket_id=ticket["id"])
    return {"ticket": ticket}


# ---------------------------------------------------------------- REST views


async def get_session(ctx: AppContext, principal: Principal, ref: Any) -> dict:
    async with ctx.db.connection() as conn:
        return await session_view(ctx, conn, await visible_session(ctx, conn, principal, ref))


async def list_sessions(ctx: AppContext, principal: Principal, query: dict) -> dict:
    async with ctx.db.connection() as conn:
        rows, total = await fetch_page(
            ctx.db.q.list_sessions,
            conn,
            customer_scope=principal.user_id if principal.role == "customer" else None,
            agent_scope=principal.user_id if principal.role == "agent" else None,
            status=query.get("status"),
            department=query.get("department"),
            agent_id=query.get("agent_id"),
            customer_id=query.get("customer_id"),
            sort=query["sort"],
            limit=query["limit"],
            offset=query["offset"],
        )
        items = await session_views(ctx, conn, rows)
    return {"items": items, "total": total, "limit": query["limit"], "offset": query["offset"]}


async def list_messages(ctx: AppContext, principal: Principal, ref: Any, after_seq: int, limit: int) -> dict:
    """A page of the list envelope, paged by cursor: the messages after ``after_seq``.

    Both parties see every message (internal notes are not messages) and seqs have no gaps, so
    ``total`` is the session's ``last_seq`` and ``offset`` (how many come before this page) is
    ``after_seq``, capped at ``total``.
    """
    async with ctx.db.connection() as conn:
        session = await visible_session(ctx, conn, principal, ref)
        rows = await ctx.db.q.messages_after(conn, session_id=session["id"], after_seq=after_seq, limit=limit)
        view = await session_view(ctx, conn, session)
    total = max(view["last_seq"], rows[-1]["seq"] if rows else 0)  # a message may land in between
    return {
        "items": [present_message(ctx, r) for r in rows],
        "total": total,
        "limit": limit,
        "offset": min(after_seq, total),
        "session": view,
    }


async def update_session(ctx: AppContext, principal: Principal, meta: RequestMeta, ref: Any, data: dict) -> dict:
    """REST PUT: details, then a transfer (agent_id/department), then ending (status: ended)."""
    if principal.role == "customer" and set(data) - {"status", "subject"}:
        raise Forbidden("Customers may only end a chat or change its subject")
    view = None
    if "subject" in data or "metadata" in data:
        async with ctx.db.transaction() as conn:
            session = await visible_session(ctx, conn, principal, ref, lock=True)
            row = await ctx.db.q.update_session_details(
                conn,
                id=session["id"],
                subject=data.get("subject", session["subject"]),
                metadata=data.get("metadata", session["metadata"]),
            )
            changed = [k for k in ("subject", "metadata") if k in data]
            await audit.record_change(
                conn,
                ctx.events,
                principal,
                meta,
                "chat.update",
                "chat_session",
                session["id"],
                {k: data[k] for k in changed},
                [("chat.updated", {**_summary(row), "changed": changed})],
            )
            view = await session_view(ctx, conn, row)
    if "agent_id" in data or "department" in data:
        view = await routing.transfer(ctx, principal, meta, ref, data.get("agent_id"), data.get("department"))
    if data.get("status") == "ended":
        view = await end_chat(ctx, principal, meta, ref)
    return view if view is not None else await get_session(ctx, principal, ref)
