"""Ticket automation: categorisation, priority rules, auto-assignment, pick-up and auto-responses.

Called from app.services.tickets inside the ticket's own transaction; built on the ticket model
(app.services.ticket_model), never on the commands. Agent load
(``support_agents.current_tickets``) counts the open (not resolved/closed) tickets an agent
holds; it is kept exact across replicas by serialising the assigners of one department on a
transaction-scoped advisory lock, locking the chosen agent row (``FOR UPDATE``, first
``SKIP LOCKED`` then waiting, against concurrent manual changes) and incrementing it in the
transaction that assigns the ticket. (Row locks alone are not enough: a row that fails the
re-check after a wait stays locked, which deadlocked concurrent creations.)
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg

from app.context import AppContext
from app.db import queries
from app.services import kb
from app.services.chat_views import present_message
from app.services.message_writer import PendingMessage
from app.services.ticket_model import event_summary

log = logging.getLogger(__name__)
PICKUP_BATCH = 50
PICKUP_INTERVAL = 30.0  # seconds between cluster-wide pick-up sweeps


# ---------------------------------------------------------------- categorisation and priority


def _text(subject: str | None, description: str | None) -> str:
    return f"{subject or ''}\n{description or ''}".lower()


async def categorize(conn: asyncpg.Connection, subject: str, description: str) -> str:
    """The category of the highest-priority active rule with a keyword in the text, else general."""
    text = _text(subject, description)
    for row in await queries.active_categorization_rules(conn):
        if any(k and k.lower() in text for k in row["keywords"]):
            return row["category"]
    return "general"


def _matches(conditions: dict, text: str, metadata: dict) -> bool:
    """All given conditions must hold (an empty rule never matches)."""
    if not conditions:
        return False
    if "keywords_any" in conditions and not any(k.lower() in text for k in conditions["keywords_any"] if k):
        return False
    if "customer_tier" in conditions:
        tiers = conditions["customer_tier"]
        tiers = [tiers] if isinstance(tiers, str) else tiers
        if str(metadata.get("customer_tier", "")).lower() not in {str(t).lower() for t in tiers}:
            return False
    return not ("has_booking" in conditions and bool(metadata.get("booking_id")) != bool(conditions["has_booking"]))


async def prioritize(conn: asyncpg.Connection, subject: str, description: str | None, metadata: dict | None) -> str:
    text = _text(subject, description)
    for row in await queries.active_priority_rules(conn):
        if _matches(row["conditions"] or {}, text, metadata or {}):
            return row["set_priority"]
    return "medium"


# ---------------------------------------------------------------- agent load


async def pick_agent(
    ctx: AppContext, conn: asyncpg.Connection, department: str | None, category: str, tags: list[str] | None
) -> uuid.UUID | None:
    """Lock and charge the least-loaded available agent of the department (skilled first)."""
    if not department:
        return None
    wanted = [t.lower() for t in (tags or [])] + [category.lower()]
    ceiling = ctx.settings.max_tickets_per_agent
    # No one could take it now (the common case for a department with nobody on duty): skip the
    # turn-taking below; the pick-up sweep covers capacity freed in between.
    if not await ctx.db.q.department_has_capacity(conn, department=department, ceiling=ceiling):
        return None
    # Assigners of one department take turns until their transactions end, so each reads the
    # loads the previous one committed (READ COMMITTED: a new snapshot per statement).
    await ctx.db.q.lock_assignment_turn(conn, department=department)
    for skills in (wanted, None):  # agents with a matching skill, then any agent of the department
        # a free row now, else wait for a busy one
        for candidate in (ctx.db.q.assignment_candidate_free, ctx.db.q.assignment_candidate_wait):
            row = await candidate(conn, department=department, ceiling=ceiling, skills=skills, wanted=wanted)
            if row is not None:
                await ctx.db.q.charge_agent_load(conn, user_id=row["user_id"])
                return row["user_id"]
    return None


async def assign_waiting(ctx: AppContext, department: str | None = None) -> int:
    """Give open unassigned tickets (oldest first) to agents with free capacity; the count assigned."""
    if not ctx.settings.ticket_auto_assignment:
        return 0
    assigned = 0
    now = ctx.clock.now()
    async with ctx.db.transaction() as conn:
        rows = await ctx.db.q.lock_waiting_tickets(conn, department=department, limit=PICKUP_BATCH)
        ids = []
        full: set[str | None] = set()  # departments where nobody can take a ticket now
        for ticket in rows:
            ticket = dict(ticket)
            if ticket["department"] in full:
                continue
            agent_id = await pick_agent(ctx, conn, ticket["department"], ticket["category"], ticket["tags"])
            if agent_id is None:
                full.add(ticket["department"])
                continue
            row = dict(await ctx.db.q.auto_assign_ticket(conn, id=ticket["id"], agent_id=agent_id, now=now))
            await ctx.events.append(
                conn,
                "ticket.assigned",
                "ticket",
                row["id"],
                {**event_summary(row), "from_agent_id": None, "auto": True},
                actor_id=None,
            )
            ids.append(row["id"])
            assigned += 1
    for ticket_id in ids:
        await ctx.ticket_cache.invalidate(ticket_id)
    return assigned


async def after_capacity_freed(ctx: AppContext, agent_id: uuid.UUID | None) -> None:
    """An immediate pick-up attempt in this process once an agent's load went down."""
    if agent_id is None or not ctx.settings.ticket_auto_assignment:
        return
    try:
        async with ctx.db.connection() as conn:
            department = await ctx.db.q.agent_department(conn, user_id=agent_id)
        if department:
            await assign_waiting(ctx, department)
    except Exception:  # the periodic duty retries; the caller's change is already committed
        log.exception("ticket pick-up failed")


async def pickup_duty(ctx: AppContext) -> None:
    await assign_waiting(ctx)


# ---------------------------------------------------------------- auto-responses
#
# Automatic messages carry structured ``parts`` (PROTOCOL addition, see the README): ``text``,
# ``time`` (an ISO value each reader shows in their own locale and zone) and ``articles`` (cards
# with title and link). ``message`` is the same content as plain text for clients that do not
# read parts: times in words in UTC, articles as "- Title (/help/articles/<id>)" lines.


def article_part(articles: list[dict]) -> dict:
    return {
        "type": "articles",
        "items": [{"id": str(a["id"]), "title": a["title"], "url": f"/help/articles/{a['id']}"} for a in articles],
    }


def time_in_words(value: dt.datetime, zone: str = "UTC") -> str:
    """E.g. "Tuesday 8 December 2026, 03:04 UTC" (e-mails and plain text read this)."""
    try:
        local = value.astimezone(ZoneInfo(zone))
    except (ZoneInfoNotFoundError, ValueError):
        local, zone = value.astimezone(dt.timezone.utc), "UTC"
    return f"{local:%A} {local.day} {local:%B %Y, %H:%M} {zone}"


def plain_text(parts: list[dict]) -> str:
    """The plain ``message`` text of structured parts."""
    out = []
    for part in parts:
        if part["type"] == "text":
            out.append(part["text"])
        elif part["type"] == "time":
            out.append(time_in_words(dt.datetime.fromisoformat(part["value"])))
        elif part["type"] == "articles":
            out.append("".join(f"\n- {a['title']} ({a['url']})" for a in part["items"]))
    return "".join(out)


def response_promise(row: dict) -> tuple[str, dt.datetime] | None:
    """("within 4 hours", due time) for a ticket with a first-response target, else None."""
    due = row.get("first_response_due_at")
    if due is None:
        return None
    minutes = max(1, round((due - row["created_at"]).total_seconds() / 60))
    return (f"{minutes} minutes" if minutes < 120 else f"{round(minutes / 60)} hours"), due


def ticket_response_parts(row: dict, articles: list[dict]) -> list[dict]:
    parts: list[dict] = [
        {"type": "text", "text": f"Thank you for contacting us. Your ticket number is {row['ticket_number']}."}
    ]
    promise = response_promise(row)
    if promise is not None:
        parts += [
            {"type": "text", "text": f"\nAn agent will respond within {promise[0]} (by "},
            {"type": "time", "value": promise[1].isoformat()},
            {"type": "text", "text": ")."},
        ]
    if articles:
        parts += [{"type": "text", "text": "\nThese articles may help in the meantime:"}, article_part(articles)]
    return parts


def ticket_response_text(row: dict, articles: list[dict]) -> str:
    return plain_text(ticket_response_parts(row, articles))


DEFAULT_GREETING = "Hello! Thanks for reaching out."


def chat_greeting_parts(articles: list[dict], agent_name: str | None = None, greeting: str | None = None) -> list[dict]:
    """``greeting`` is the department's own opening line (DEFAULT_GREETING when it has none)."""
    opening = (greeting or DEFAULT_GREETING).strip()
    parts: list[dict] = [
        {
            "type": "text",
            "text": f"{opening} {agent_name} will reply in a moment."
            if agent_name
            else f"{opening} You are in the queue and an agent will be with you shortly.",
        }
    ]
    if articles:
        parts += [
            {
                "type": "text",
                "text": "\nThese articles may help:" if agent_name else "\nWhile you wait, these articles may help:",
            },
            article_part(articles),
        ]
    return parts


def chat_greeting_text(articles: list[dict], agent_name: str | None = None, greeting: str | None = None) -> str:
    return plain_text(chat_greeting_parts(articles, agent_name, greeting))


async def add_ticket_auto_response(ctx: AppContext, conn: asyncpg.Connection, row: dict, articles: list[dict]) -> None:
    parts = ticket_response_parts(row, articles)
    message = await ctx.db.q.insert_ticket_message(
        conn,
        id=None,
        ticket_id=row["id"],
        sender_id=None,
        sender_type="system",
        message=ctx.cipher.encrypt(plain_text(parts), "ticket_messages.message"),
        message_type="text",
        attachments=None,
        is_internal=False,
        now=row["created_at"],
        parts=parts,
        client_msg_id=None,
    )
    await ctx.events.append(
        conn,
        "ticket.message_added",
        "ticket",
        row["id"],
        {
            **event_summary(row),
            "message_id": message["id"],
            "sender_type": "system",
            "is_internal": False,
            "auto_response": True,
        },
        actor_id=None,
    )


async def greet_chat(
    ctx: AppContext, session_id: uuid.UUID, text_hint: str | None, shown: list[str] | None = None
) -> None:
    """A system greeting with KB suggestions for a chat just started (AUTO_RESPONSE_ENABLED),
    after its first message and its routing: it says who will answer, or that the chat waits.
    Articles the pre-chat form already showed (``shown``: ids) are not suggested again."""
    if not ctx.settings.auto_response_enabled:
        return
    skip = {str(a) for a in shown or []}
    articles = [a for a in await kb.related_articles(ctx, text_hint or "", limit=3 + len(skip)) if a["id"] not in skip][
        :3
    ]
    async with ctx.db.connection() as conn:  # routed already? then the greeting names the agent
        said = await ctx.db.q.session_greeting(conn, id=session_id)
    parts = chat_greeting_parts(articles, said and said["agent_name"], said and said["greeting"])
    item = PendingMessage(
        session_id=session_id,
        sender_id=None,
        sender_type="system",
        scope="all",
        client_msg_id=None,
        ciphertext=ctx.cipher.encrypt(plain_text(parts), "chat_messages.message"),
        message_type="text",
        parts=parts,
    )
    try:
        row = await ctx.message_writer.write(item)
    except Exception:
        log.exception("chat greeting failed")
        return
    if row is not None:
        await ctx.live.to_session(session_id, "chat:message", present_message(ctx, row))
