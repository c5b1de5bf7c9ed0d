"""Tickets: the commands every transport calls (create, read, list, update, status, escalate,
delete, messages, history).

They enforce who may see and change what, and keep the ticket cache honest. The ticket core is a
directed graph: the pure model (app.services.ticket_model: status machine, presentation, event
fields) under the store (app.services.ticket_store: locking, ``save_change`` writing the row,
the agents' load, the audit row and the events in one go), under automation and escalation,
under these commands.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from app import metrics
from app.auth import Principal, RequestMeta
from app.context import AppContext
from app.db import contains_pattern, fetch_page
from app.errors import Forbidden, InvalidState, NotFound, ValidationFailed
from app.security import audit
from app.services import attachments, automation, departments, escalation, kb
from app.services.ticket_model import (
    ENCRYPTED,
    apply_status,
    event_changes,
    event_summary,
    present,
)
from app.services.ticket_store import adjust_load, can_read, load_row, locked_for_write, save_change, update_events

CUSTOMER_CREATE_FIELDS = frozenset({"subject", "description", "category", "subcategory", "metadata"})
CUSTOMER_UPDATE_FIELDS = frozenset({"subject", "description"})
CUSTOMER_STATUSES = frozenset({"closed", "open"})  # customers may close or reopen their own


# ---------------------------------------------------------------- create, read, list


async def create_ticket(
    ctx: AppContext, principal: Principal, meta: RequestMeta, data: dict, *, channel: str | None = None
) -> dict:
    """Create a ticket; ``channel`` is set by internal callers (a chat's offline message)."""
    if principal.role == "customer":
        if data.get("customer_id") == principal.user_id:  # naming themselves is fine
            data = {k: v for k, v in data.items() if k != "customer_id"}
        extra = set(data) - CUSTOMER_CREATE_FIELDS
        if extra:
            raise Forbidden(f"Customers may not set {', '.join(sorted(extra))}")
        customer_id = principal.user_id
        email, name = principal.email, principal.name
    else:
        if "customer_id" not in data:
            raise ValidationFailed(details={"customer_id": ["Required when creating a ticket for a customer."]})
        customer_id = data["customer_id"]
        email, name = data.get("customer_email"), data.get("customer_name")
    agent_id = data.get("agent_id")
    if principal.role == "agent":
        if agent_id not in (None, principal.user_id):
            raise Forbidden("Only supervisors and admins assign tickets to others")
        agent_id = principal.user_id  # an agent's ticket for a customer is theirs to work
    elif agent_id and not (principal.sees_all or principal.role == "service"):
        raise Forbidden("Only supervisors and admins assign tickets")
    now = ctx.clock.now()
    default_channel = channel or ("api" if principal.role == "service" else "web")
    # Auto-response KB matches are searched before the transaction (the search has its own connection).
    articles = await kb.related_articles(ctx, data["subject"]) if ctx.settings.auto_response_enabled else []
    async with ctx.db.transaction() as conn:
        category = data.get("category") or await automation.categorize(conn, data["subject"], data["description"])
        priority = data.get("priority") or await automation.prioritize(
            conn, data["subject"], data["description"], data.get("metadata")
        )
        department = await departments.for_category(ctx, conn, category, principal=principal, meta=meta)
        auto_assigned = False
        if agent_id is None and ctx.settings.ticket_auto_assignment:
            agent_id = await automation.pick_agent(ctx, conn, department, category, data.get("tags"))
            auto_assigned = agent_id is not None
        row = dict(
            await ctx.db.q.insert_ticket(
                conn,
                customer_id=customer_id,
                agent_id=agent_id,
                category=category,
                subcategory=data.get("subcategory"),
                department=department,
                priority=priority,
                channel=data.get("channel", default_channel),
                subject=data["subject"],
                description=ctx.cipher.encrypt(data["description"], "support_tickets.description"),
                customer_email=ctx.cipher.encrypt(email, "support_tickets.customer_email"),
                customer_name=ctx.cipher.encrypt(name, "support_tickets.customer_name"),
                tags=data.get("tags", []),
                metadata=data.get("metadata", {}),
                now=now,
            )
        )
        emitted: list[tuple[str, dict]] = [("ticket.created", event_summary(row))]
        if row["agent_id"]:
            if not auto_assigned:  # pick_agent already charged the auto-assigned agent
                await adjust_load(conn, None, row)
            emitted.append(("ticket.assigned", {**event_summary(row), "from_agent_id": None, "auto": auto_assigned}))
        await audit.record_change(
            conn,
            ctx.events,
            principal,
            meta,
            "ticket.create",
            "ticket",
            row["id"],
            {
                "ticket_number": row["ticket_number"],
                "category": category,
                "priority": row["priority"],
                "customer_id": str(customer_id),
            },
            emitted,
        )
        if ctx.settings.auto_response_enabled:
            await automation.add_ticket_auto_response(ctx, conn, row, articles)
    metrics.TICKETS_CREATED.labels(channel=row["channel"]).inc()
    await escalation.on_ticket_changed(ctx, row["id"])  # the rules run on new tickets too
    return present(ctx, row)


async def get_ticket(ctx: AppContext, principal: Principal, ticket_id: uuid.UUID) -> dict:
    row = await load_row(ctx, ticket_id)
    if row is None or not await can_read(ctx, None, principal, row):
        raise NotFound("Ticket not found")
    return present(ctx, row)


async def list_tickets(ctx: AppContext, principal: Principal, query: dict) -> dict:
    customer_scope = principal.user_id if principal.role == "customer" else None
    agent_scope = principal.user_id if principal.role == "agent" else None
    async with ctx.db.connection() as conn:
        rows, total = await fetch_page(
            ctx.db.q.list_tickets,
            conn,
            customer_scope=customer_scope,
            agent_scope=agent_scope,
            status=query.get("status"),
            priority=query.get("priority"),
            category=query.get("category"),
            agent_id=query.get("agent_id"),
            customer_id=query.get("customer_id"),
            q_pattern=contains_pattern(query.get("q")),
            created_after=query.get("created_after"),
            created_before=query.get("created_before"),
            sort=query["sort"],
            limit=query["limit"],
            offset=query["offset"],
        )
    return {
        "items": [present(ctx, dict(r)) for r in rows],
        "total": total,
        "limit": query["limit"],
        "offset": query["offset"],
    }


# ---------------------------------------------------------------- changes


def _check_fields(principal: Principal, data: dict) -> None:
    if principal.role == "customer":
        extra = set(data) - CUSTOMER_UPDATE_FIELDS - {"status"}
        if extra:
            raise Forbidden(f"Customers may not change {', '.join(sorted(extra))}")
        if "status" in data and data["status"] not in CUSTOMER_STATUSES:
            raise Forbidden("Customers may only close or reopen their tickets")
    if "agent_id" in data and not (principal.sees_all or principal.role == "service"):
        raise Forbidden("Only supervisors and admins assign tickets")


async def update_ticket(
    ctx: AppContext,
    principal: Principal,
    meta: RequestMeta,
    ticket_id: uuid.UUID,
    data: dict,
    *,
    reason: str | None = None,
    action: str = "ticket.update",
) -> dict:
    _check_fields(principal, data)
    now = ctx.clock.now()
    async with ctx.db.transaction() as conn:
        before = await locked_for_write(ctx, conn, principal, ticket_id)
        after = dict(before)
        for field in ("subject", "subcategory", "priority", "tags", "metadata", "agent_id"):
            if field in data:
                after[field] = data[field]
        for field in ENCRYPTED:
            if field in data:
                after[field] = ctx.cipher.encrypt(data[field], f"support_tickets.{field}")
        if "category" in data and data["category"] != before["category"]:
            after["category"] = data["category"]
            after["department"] = await departments.for_category(
                ctx, conn, data["category"], principal=principal, meta=meta
            )
        if "agent_id" in data and data["agent_id"] != before["agent_id"]:
            after["assigned_at"] = now if data["agent_id"] else None
        if "status" in data:
            apply_status(after, data["status"], now)
        changes = event_changes(before, after)
        if not changes:
            return present(ctx, before)

        async def record(row: dict) -> tuple[dict, list[tuple[str, dict]]]:
            return _audit_changes(changes, reason), update_events(before, row, changes, reason)

        row, freed = await save_change(ctx, conn, principal, meta, before, after, now=now, action=action, record=record)
    await ctx.ticket_cache.invalidate(ticket_id)
    await automation.after_capacity_freed(ctx, freed)
    await escalation.on_ticket_changed(ctx, ticket_id)  # the rules run on ticket changes
    return present(ctx, row)


def _audit_changes(changes: dict[str, Any], reason: str | None) -> dict[str, Any]:
    """An edit's audit row: the changed fields but the timestamps they imply, and the reason."""
    audit_changes = {k: v for k, v in changes.items() if k not in ("assigned_at", "resolved_at", "closed_at")}
    if reason:
        audit_changes["reason"] = reason
    return audit_changes


async def change_status(
    ctx: AppContext,
    principal: Principal,
    meta: RequestMeta,
    ticket_id: uuid.UUID,
    status: str,
    reason: str | None = None,
) -> dict:
    return await update_ticket(
        ctx, principal, meta, ticket_id, {"status": status}, reason=reason, action="ticket.status_change"
    )


async def escalate_ticket(
    ctx: AppContext, principal: Principal, meta: RequestMeta, ticket_id: uuid.UUID, reason: str | None = None
) -> dict:
    """Manual escalation through the escalation rules (app.services.escalation)."""
    return await escalation.escalate_manually(ctx, principal, meta, ticket_id, reason)


async def delete_ticket(ctx: AppContext, principal: Principal, meta: RequestMeta, ticket_id: uuid.UUID) -> None:
    if not principal.sees_all:
        raise Forbidden("Only supervisors and admins delete tickets")
    async with ctx.db.transaction() as conn:
        row = await ctx.db.q.lock_ticket(conn, id=ticket_id)
        if row is None:
            raise NotFound("Ticket not found")
        files = await attachments.on_ticket_deleted(ctx, conn, principal, meta, ticket_id)
        await ctx.db.q.delete_ticket(conn, id=ticket_id)
        freed = await adjust_load(conn, dict(row), None)
        await audit.record_change(
            conn,
            ctx.events,
            principal,
            meta,
            "ticket.delete",
            "ticket",
            ticket_id,
            {"ticket_number": row["ticket_number"], "customer_id": str(row["customer_id"])},
            [("ticket.deleted", event_summary(dict(row)))],
        )
    await ctx.ticket_cache.invalidate(ticket_id)
    if files:
        await attachments.purge(ctx)
    await automation.after_capacity_freed(ctx, freed)


# ---------------------------------------------------------------- messages and history


def present_message(ctx: AppContext, row: dict) -> dict:
    return {
        "id": row["id"],
        "ticket_id": row["ticket_id"],
        "sender_id": row["sender_id"],
        "sender_type": row["sender_type"],
        "message": ctx.cipher.decrypt(row["message"], "ticket_messages.message"),
        "message_type": row["message_type"],
        "attachments": attachments.present_refs(ctx, row["attachments"]),
        "is_internal": row["is_internal"],
        "created_at": row["created_at"],
        "client_msg_id": row.get("client_msg_id"),
        **({"parts": row["parts"]} if row.get("parts") else {}),
    }  # automatic replies only


async def add_message(
    ctx: AppContext, principal: Principal, meta: RequestMeta, ticket_id: uuid.UUID, data: dict
) -> dict:
    """Returns the message; with ``client_msg_id`` a resend returns the first one unchanged
    (``add_reply`` says which it was)."""
    return (await add_reply(ctx, principal, meta, ticket_id, data))["message"]


async def add_reply(ctx: AppContext, principal: Principal, meta: RequestMeta, ticket_id: uuid.UUID, data: dict) -> dict:
    """``{"message", "duplicate"}``: a widget resending after a lost answer or a reload gets the
    message its first attempt stored (the ticket's row lock orders concurrent attempts)."""
    internal = data.get("is_internal", False)
    if internal and not principal.is_staff:
        raise Forbidden("Only agents may write internal notes")
    now = ctx.clock.now()
    client_msg_id = data.get("client_msg_id")
    async with ctx.db.transaction() as conn:
        ticket = await locked_for_write(ctx, conn, principal, ticket_id)
        if client_msg_id:
            earlier = await ctx.db.q.get_ticket_message_by_client_id(
                conn, ticket_id=ticket_id, sender_id=principal.user_id, client_msg_id=client_msg_id
            )
            if earlier is not None:
                return {"message": present_message(ctx, dict(earlier)), "duplicate": True}
        if ticket["status"] == "closed":
            raise InvalidState("The ticket is closed; reopen it or open a new ticket")
        sender_type = principal.sender_type
        message_id = uuid.uuid4()
        files = data.get("attachments")
        uploaded = [f for f in files or () if isinstance(f, str)]
        if uploaded:  # the sender's own uploads become this message's files, or nothing is stored
            refs = iter(
                await attachments.bind_ticket_message(ctx, conn, principal, ticket_id, message_id, uploaded, internal)
            )
            files = [next(refs) if isinstance(f, str) else f for f in files or ()]
        row = dict(
            await ctx.db.q.insert_ticket_message(
                conn,
                id=message_id,
                ticket_id=ticket_id,
                sender_id=principal.user_id,
                sender_type=sender_type,
                message=ctx.cipher.encrypt(data["message"], "ticket_messages.message"),
                message_type=data.get("message_type", "text"),
                attachments=files,
                is_internal=internal,
                now=now,
                parts=None,
                client_msg_id=client_msg_id,
            )
        )
        await _follow_up(ctx, conn, principal, meta, ticket, sender_type, internal, now)
        await audit.record_change(
            conn,
            ctx.events,
            principal,
            meta,
            "ticket.message_add",
            "ticket",
            ticket_id,
            {"message_id": str(row["id"]), "is_internal": internal, **({"attachments": uploaded} if uploaded else {})},
            [
                (
                    "ticket.message_added",
                    {
                        **event_summary(ticket),
                        "message_id": row["id"],
                        "sender_type": sender_type,
                        "is_internal": internal,
                    },
                )
            ],
        )
    await ctx.ticket_cache.invalidate(ticket_id)
    return {"message": present_message(ctx, row), "duplicate": False}


async def _follow_up(
    ctx: AppContext,
    conn: asyncpg.Connection,
    principal: Principal,
    meta: RequestMeta,
    ticket: dict,
    sender_type: str,
    internal: bool,
    now: Any,
) -> None:
    """A message moves the ticket on: the first public agent reply is the first response;
    a customer replying to a resolved ticket reopens it."""
    after = dict(ticket)
    if sender_type == "agent" and not internal and ticket["first_response_at"] is None:
        after["first_response_at"] = now
    if sender_type == "customer" and ticket["status"] == "resolved":
        apply_status(after, "open", now)
    if after == ticket:
        return
    reason = "customer replied"

    async def record(row: dict) -> tuple[dict, list[tuple[str, dict]]]:
        changes = event_changes(ticket, row)
        return _audit_changes(changes, reason), update_events(ticket, row, changes, reason)

    # A first response alone is the message's change (its own audit row and event cover it).
    reopened = after["status"] != ticket["status"]
    await save_change(
        ctx, conn, principal, meta, ticket, after, now=now, action="ticket.reopen" if reopened else None, record=record
    )


async def list_messages(ctx: AppContext, principal: Principal, ticket_id: uuid.UUID, limit: int, offset: int) -> dict:
    await get_ticket(ctx, principal, ticket_id)
    async with ctx.db.connection() as conn:
        rows, total = await fetch_page(
            ctx.db.q.list_ticket_messages,
            conn,
            ticket_id=ticket_id,
            include_internal=principal.is_staff,
            limit=limit,
            offset=offset,
        )
    return {"items": [present_message(ctx, dict(r)) for r in rows], "total": total, "limit": limit, "offset": offset}


async def get_message(ctx: AppContext, principal: Principal, ticket_id: uuid.UUID, message_id: uuid.UUID) -> dict:
    await get_ticket(ctx, principal, ticket_id)
    async with ctx.db.connection() as conn:
        row = await ctx.db.q.get_ticket_message(conn, ticket_id=ticket_id, id=message_id)
    if row is None or (row["is_internal"] and not principal.is_staff):
        raise NotFound("Message not found")
    return present_message(ctx, dict(row))


async def history(ctx: AppContext, principal: Principal, ticket_id: uuid.UUID) -> list[dict]:
    """The ticket's timeline from the event log; customers do not see internal-note events."""
    await get_ticket(ctx, principal, ticket_id)
    async with ctx.db.connection() as conn:
        rows = await ctx.db.q.entity_events(conn, entity_type="ticket", entity_id=str(ticket_id))
    entries = []
    for r in rows:
        if not principal.is_staff and principal.role != "service" and r["payload"].get("is_internal"):
            continue
        entries.append(
            {
                "event_id": r["event_id"],
                "type": r["type"],
                "actor_id": r["actor_id"],
                "payload": r["payload"],
                "created_at": r["created_at"],
            }
        )
    return entries
