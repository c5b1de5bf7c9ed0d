"""Customer feedback on a ticket or a chat session, with a sentiment score from its comment.

A customer gives one feedback per ticket (once it is resolved or closed) or per chat session
(once an agent joined it), rating 1-5 with an optional comment. The comment is encrypted at
rest; its sentiment (VADER's compound score, -1.00..1.00) is computed on write. Customers see
and edit their own; agents see the feedback on their tickets and chats; supervisors, admins and
peer services see all. Writes are audited and emit ``feedback.created`` / ``feedback.updated``.
"""

from __future__ import annotations

import decimal
import functools
import uuid
from typing import Any

import asyncpg
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from app import metrics
from app.auth import Principal, RequestMeta
from app.context import AppContext
from app.db import fetch_page
from app.errors import Conflict, Forbidden, InvalidState, NotFound
from app.security import audit

# JSON names a chat session ``session_id`` (API.md); the column stays ``chat_session_id`` (DESIGN.md).
PUBLIC_FIELDS = (
    "id",
    "ticket_id",
    "session_id",
    "customer_id",
    "agent_id",
    "rating",
    "comment",
    "category",
    "department",
    "sentiment_score",
    "created_at",
    "updated_at",
)
RATEABLE_TICKET_STATUSES = ("resolved", "closed")
_CENT = decimal.Decimal("0.01")


# ---------------------------------------------------------------- sentiment


@functools.cache
def _analyzer() -> SentimentIntensityAnalyzer:
    return SentimentIntensityAnalyzer()  # loads its lexicon once per process


def sentiment(text: str | None) -> decimal.Decimal | None:
    """VADER's compound score of ``text``, rounded to two places; None without words."""
    if text is None or not text.strip():
        return None
    compound = _analyzer().polarity_scores(text)["compound"]
    return decimal.Decimal(str(compound)).quantize(_CENT, rounding=decimal.ROUND_HALF_UP)


async def record_sentiment(
    ctx: AppContext, conn: asyncpg.Connection, feedback_id: uuid.UUID, comment: str | None
) -> None:
    """Score a feedback row written elsewhere (a chat rating) in the writer's transaction."""
    await ctx.db.q.set_feedback_sentiment(conn, id=feedback_id, sentiment_score=sentiment(comment))


# ---------------------------------------------------------------- presentation and access


def present(ctx: AppContext, row: dict) -> dict:
    feedback = {f: row["chat_session_id" if f == "session_id" else f] for f in PUBLIC_FIELDS}
    feedback["comment"] = ctx.cipher.decrypt(row["comment"], "feedback.comment")
    return feedback


def _summary(row: dict) -> dict[str, Any]:
    """What a feedback event carries (never the comment)."""
    return {
        "feedback_id": row["id"],
        "ticket_id": row["ticket_id"],
        "session_id": row["chat_session_id"],
        "customer_id": row["customer_id"],
        "agent_id": row["agent_id"],
        "rating": row["rating"],
        "category": row["category"],
        "department": row["department"],
        "sentiment_score": row["sentiment_score"],
    }


def _can_read(principal: Principal, row: dict) -> bool:
    if principal.sees_all or principal.role == "service":
        return True
    if principal.role == "customer":
        return row["customer_id"] == principal.user_id
    return principal.user_id in (row["agent_id"], row["ticket_agent_id"], row["session_agent_id"])


# ---------------------------------------------------------------- commands


async def announce_rating(
    ctx: AppContext,
    agent_id: uuid.UUID | None,
    *,
    rating: int,
    comment: str | None,
    session_id: uuid.UUID | None = None,
    ticket_id: uuid.UUID | None = None,
) -> None:
    """Tell the rated agent at once (``chat:rated`` / ``ticket:rated``, additions to PROTOCOL.md),
    so the console shows the rating beside the chat or ticket it belongs to."""
    if agent_id is None:
        return
    if session_id is not None:
        await ctx.live.to_agent(
            agent_id, "chat:rated", {"session_id": session_id, "rating": rating, "comment": comment}
        )
    else:
        await ctx.live.to_agent(
            agent_id, "ticket:rated", {"ticket_id": ticket_id, "rating": rating, "comment": comment}
        )


async def create_feedback(ctx: AppContext, principal: Principal, meta: RequestMeta, data: dict) -> dict:
    if principal.role != "customer":
        raise Forbidden("Feedback is given by the customer")
    comment = data.get("comment")
    async with ctx.db.transaction() as conn:
        if data.get("ticket_id"):
            subject = await ctx.db.q.feedback_ticket(conn, id=data["ticket_id"])
            if subject is None or subject["customer_id"] != principal.user_id:
                raise NotFound("Ticket not found")
            if subject["status"] not in RATEABLE_TICKET_STATUSES:
                raise InvalidState("Feedback on a ticket can be given once it is resolved or closed")
            category = data.get("category") or subject["category"]
        else:
            subject = await ctx.db.q.feedback_session(conn, id=data["session_id"])
            if subject is None or subject["customer_id"] != principal.user_id:
                raise NotFound("Chat session not found")
            if subject["assigned_at"] is None:
                raise InvalidState("A chat can be rated once an agent has joined")
            category = data.get("category") or subject["department"]
        try:
            async with conn.transaction():  # savepoint: the duplicate is reported, not a 500
                row = dict(
                    await ctx.db.q.insert_feedback(
                        conn,
                        ticket_id=data.get("ticket_id"),
                        chat_session_id=data.get("session_id"),
                        customer_id=principal.user_id,
                        agent_id=subject["agent_id"],
                        rating=data["rating"],
                        comment=ctx.cipher.encrypt(comment, "feedback.comment"),
                        category=category,
                        department=subject["department"],
                        sentiment_score=sentiment(comment),
                        now=ctx.clock.now(),
                    )
                )
        except asyncpg.UniqueViolationError:
            what = "ticket" if data.get("ticket_id") else "chat session"
            raise Conflict(f"Feedback for this {what} has already been given") from None
        if row["chat_session_id"]:
            await ctx.db.q.set_session_satisfaction(conn, id=row["chat_session_id"], rating=row["rating"])
        await audit.record_change(
            conn,
            ctx.events,
            principal,
            meta,
            "feedback.create",
            "feedback",
            row["id"],
            {
                "ticket_id": row["ticket_id"],
                "session_id": row["chat_session_id"],
                "rating": row["rating"],
                "category": row["category"],
                "has_comment": comment is not None,
            },
            [("feedback.created", _summary(row))],
        )
    metrics.FEEDBACK_RECEIVED.labels(rating=str(row["rating"])).inc()
    await announce_rating(
        ctx,
        row["agent_id"],
        rating=row["rating"],
        comment=comment,
        session_id=row["chat_session_id"],
        ticket_id=row["ticket_id"],
    )
    return present(ctx, row)


async def get_feedback(ctx: AppContext, principal: Principal, feedback_id: uuid.UUID) -> dict:
    async with ctx.db.connection() as conn:
        row = await ctx.db.q.get_feedback(conn, id=feedback_id)
    if row is None or not _can_read(principal, dict(row)):
        raise NotFound("Feedback not found")
    return present(ctx, dict(row))


async def list_feedback(ctx: AppContext, principal: Principal, query: dict) -> dict:
    params = dict(
        customer_scope=principal.user_id if principal.role == "customer" else None,
        agent_scope=principal.user_id if principal.role == "agent" else None,
        ticket_id=query.get("ticket_id"),
        chat_session_id=query.get("session_id"),
        agent_id=query.get("agent_id"),
        customer_id=query.get("customer_id"),
        rating=query.get("rating"),
        category=query.get("category"),
        department=query.get("department"),
        created_after=query.get("created_after"),
        created_before=query.get("created_before"),
        sort=query["sort"],
    )
    async with ctx.db.connection() as conn:
        rows, total = await fetch_page(
            ctx.db.q.list_feedback, conn, **params, limit=query["limit"], offset=query["offset"]
        )
    return {
        "items": [present(ctx, dict(r)) for r in rows],
        "total": total,
        "limit": query["limit"],
        "offset": query["offset"],
    }


async def update_feedback(
    ctx: AppContext, principal: Principal, meta: RequestMeta, feedback_id: uuid.UUID, data: dict
) -> dict:
    """The customer who gave it may change rating, comment and category; others may not."""
    async with ctx.db.transaction() as conn:
        found = await ctx.db.q.lock_feedback(conn, id=feedback_id)
        if found is None or not _can_read(principal, dict(found)):
            raise NotFound("Feedback not found")
        before = dict(found)
        if principal.role != "customer" or before["customer_id"] != principal.user_id:
            raise Forbidden("Only the customer who gave the feedback may change it")
        after = dict(before)
        for field in ("rating", "category"):
            if field in data:
                after[field] = data[field]
        old_comment = ctx.cipher.decrypt(before["comment"], "feedback.comment")
        comment = data["comment"] if "comment" in data else old_comment
        changes: dict[str, Any] = {
            f: {"from": before[f], "to": after[f]} for f in ("rating", "category") if after[f] != before[f]
        }
        if comment != old_comment:
            changes["comment"] = {"changed": True}
            after["comment"] = ctx.cipher.encrypt(comment, "feedback.comment")
            after["sentiment_score"] = sentiment(comment)
        if not changes:
            return present(ctx, before)
        row = dict(
            await ctx.db.q.update_feedback(
                conn,
                id=feedback_id,
                rating=after["rating"],
                comment=after["comment"],
                category=after["category"],
                sentiment_score=after["sentiment_score"],
                now=ctx.clock.now(),
            )
        )
        if row["chat_session_id"] and "rating" in changes:
            await ctx.db.q.set_session_satisfaction(conn, id=row["chat_session_id"], rating=row["rating"])
        await audit.record_change(
            conn,
            ctx.events,
            principal,
            meta,
            "feedback.update",
            "feedback",
            feedback_id,
            changes,
            [("feedback.updated", {**_summary(row), "changes": changes})],
        )
    return present(ctx, row)
