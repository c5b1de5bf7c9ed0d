"""Escalation rules, the SLA sweep and manual escalation.

Rules (``escalation_rules``) are evaluated in descending ``priority``; all of a rule's
``conditions`` must hold (API.md "Escalation rules"). A rule escalates a ticket once at a given
escalation level: its application is recorded in ``ticket_escalations`` and the rule is skipped
while the ticket is still at the level that record left it at. Rules run after a ticket changes
(``on_ticket_changed``) and on a periodic cluster duty (``sweep``); breaches of the SLA due times
are marked by ``sla_sweep``. Every time read comes from ``ctx.clock``.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any

import asyncpg

from app.auth import Principal, RequestMeta, require_role
from app.context import AppContext
from app.db import queries
from app.errors import Forbidden, InvalidState, NotFound
from app.jsonutil import to_jsonable
from app.schemas.tickets import PRIORITIES
from app.security import audit
from app.services.ticket_model import escalation_view, event_summary, present
from app.services.ticket_store import locked_for_write, save_change
from app.services import departments

log = logging.getLogger(__name__)
OPEN_STATUSES = ("open", "in_progress", "pending")
SWEEP_SECONDS = 60.0
RULE_FIELDS = (
    "id",
    "rule_name",
    "description",
    "conditions",
    "actions",
    "priority",
    "is_active",
    "is_default",
    "created_at",
    "updated_at",
)


# ---------------------------------------------------------------- rule CRUD (admins)


def _rule_view(row: Any) -> dict:
    return {k: row[k] for k in RULE_FIELDS}


async def list_rules(ctx: AppContext, principal: Principal) -> dict:
    require_role(principal, "admin")
    async with ctx.db.connection() as conn:
        rows = await ctx.db.q.list_escalation_rules(conn)
    items = [_rule_view(r) for r in rows]
    return {"items": items, "total": len(items), "limit": len(items), "offset": 0}


async def get_rule(ctx: AppContext, principal: Principal, rule_id: uuid.UUID) -> dict:
    require_role(principal, "admin")
    async with ctx.db.connection() as conn:
        row = await ctx.db.q.get_escalation_rule(conn, id=rule_id)
    if row is None:
        raise NotFound("Escalation rule not found")
    return _rule_view(row)


def _rule_event(row: Any) -> dict:
    """What an escalation-rule event carries (rules hold no sensitive text)."""
    return {
        "rule_id": row["id"],
        "rule_name": row["rule_name"],
        "priority": row["priority"],
        "is_active": row["is_active"],
    }


async def create_rule(ctx: AppContext, principal: Principal, meta: RequestMeta, data: dict) -> dict:
    require_role(principal, "admin")
    now = ctx.clock.now()
    async with ctx.db.transaction() as conn:
        await _ensure_target_department(ctx, conn, principal, meta, data["actions"])
        row = await ctx.db.q.insert_escalation_rule(
            conn,
            rule_name=data["rule_name"],
            description=data.get("description"),
            conditions=to_jsonable(data["conditions"]),
            actions=to_jsonable(data["actions"]),
            priority=data.get("priority", 0),
            is_active=data.get("is_active", True),
            now=now,
        )
        await audit.record_change(
            conn,
            ctx.events,
            principal,
            meta,
            "escalation_rule.create",
            "escalation_rule",
            row["id"],
            {"rule_name": row["rule_name"]},
            [("escalation.rule_created", _rule_event(row))],
        )
    return _rule_view(row)


async def _ensure_target_department(
    ctx: AppContext, conn: asyncpg.Connection, principal: Principal, meta: RequestMeta, actions: dict
) -> None:
    """A rule that reassigns to a department names it first: its row exists from then on."""
    department = (actions.get("reassign_to") or {}).get("department")
    if department:
        await departments.ensure(ctx, conn, department, principal=principal, meta=meta)


async def update_rule(ctx: AppContext, principal: Principal, meta: RequestMeta, rule_id: uuid.UUID, data: dict) -> dict:
    require_role(principal, "admin")
    now = ctx.clock.now()
    async with ctx.db.transaction() as conn:
        row = await ctx.db.q.lock_escalation_rule(conn, id=rule_id)
        if row is None:
            raise NotFound("Escalation rule not found")
        merged = {
            k: to_jsonable(data[k]) if k in data else row[k]
            for k in ("rule_name", "description", "conditions", "actions", "priority", "is_active")
        }
        await _ensure_target_department(ctx, conn, principal, meta, merged["actions"])
        row = await ctx.db.q.update_escalation_rule(conn, id=rule_id, **merged, now=now)
        await audit.record_change(
            conn,
            ctx.events,
            principal,
            meta,
            "escalation_rule.update",
            "escalation_rule",
            rule_id,
            {k: True for k in data},
            [("escalation.rule_updated", {**_rule_event(row), "changed": sorted(data)})],
        )
    return _rule_view(row)


async def delete_rule(ctx: AppContext, principal: Principal, meta: RequestMeta, rule_id: uuid.UUID) -> None:
    require_role(principal, "admin")
    async with ctx.db.transaction() as conn:
        row = await ctx.db.q.delete_escalation_rule(conn, id=rule_id)
        if row is None:
            raise NotFound("Escalation rule not found")
        await audit.record_change(
            conn,
            ctx.events,
            principal,
            meta,
            "escalation_rule.delete",
            "escalation_rule",
            rule_id,
            {"rule_name": row["rule_name"]},
            [("escalation.rule_deleted", {"rule_id": rule_id, "rule_name": row["rule_name"]})],
        )


# ---------------------------------------------------------------- SLA policies (admins)


async def list_sla_policies(ctx: AppContext, principal: Principal) -> dict:
    require_role(principal, "admin")
    async with ctx.db.connection() as conn:
        rows = await ctx.db.q.list_sla_policies(conn)
    items = [dict(r) for r in rows]
    return {"items": items, "total": len(items), "limit": len(items), "offset": 0}


async def update_sla_policy(
    ctx: AppContext, principal: Principal, meta: RequestMeta, priority: str, data: dict
) -> dict:
    require_role(principal, "admin")
    if priority not in PRIORITIES:
        raise NotFound("No SLA policy for that priority")
    async with ctx.db.transaction() as conn:
        row = await ctx.db.q.upsert_sla_policy(
            conn,
            priority=priority,
            first_response_minutes=data["first_response_minutes"],
            resolution_minutes=data["resolution_minutes"],
            now=ctx.clock.now(),
        )
        targets = {
            "first_response_minutes": row["first_response_minutes"],
            "resolution_minutes": row["resolution_minutes"],
        }
        await audit.record_change(
            conn,
            ctx.events,
            principal,
            meta,
            "sla_policy.update",
            "sla_policy",
            priority,
            targets,
            [("sla.policy_updated", {"priority": priority, **targets})],
        )
    return dict(row)


# ---------------------------------------------------------------- evaluation


def _effective_conditions(ctx: AppContext, rule: Any) -> dict:
    conditions = dict(rule["conditions"])
    if rule["is_default"]:  # the default rule's hours follow TICKET_ESCALATION_TIMEOUT_HOURS
        conditions["hours_since_created"] = ctx.settings.ticket_escalation_timeout_hours
    return conditions


def _hours(since: dt.datetime, now: dt.datetime) -> float:
    return (now - since).total_seconds() / 3600


def _holds(conditions: dict, ticket: dict, now: dt.datetime, last_agent_reply: dt.datetime | None) -> bool:
    c = conditions
    if "category" in c and ticket["category"] not in c["category"]:
        return False
    if "priority" in c and ticket["priority"] not in c["priority"]:
        return False
    if "status" in c and ticket["status"] not in c["status"]:
        return False
    if "hours_since_created" in c and _hours(ticket["created_at"], now) < c["hours_since_created"]:
        return False
    if "hours_without_agent_response" in c:
        since = last_agent_reply or ticket["created_at"]
        if _hours(since, now) < c["hours_without_agent_response"]:
            return False
    if "sla_breached" in c and bool(ticket["sla_breached"]) != c["sla_breached"]:
        return False
    if "escalation_level_below" in c and ticket["escalation_level"] >= c["escalation_level_below"]:
        return False
    return not ("tags_any" in c and not set(c["tags_any"]) & set(ticket["tags"] or ()))


async def _last_agent_reply(ctx: AppContext, conn: asyncpg.Connection, ticket_id: uuid.UUID) -> dt.datetime | None:
    return await ctx.db.q.last_agent_reply(conn, ticket_id=ticket_id)


async def _pick_agent(
    conn: asyncpg.Connection, *, department: str | None, role: str | None, prefer_department: str | None = None
) -> uuid.UUID | None:
    """The available agent (of the department and/or role) with the fewest open tickets, those of
    ``prefer_department`` first."""
    return await queries.pick_escalation_agent(
        conn, department=department, role=role, prefer_department=prefer_department
    )


async def _apply_actions(conn: asyncpg.Connection, ticket: dict, actions: dict, now: dt.datetime) -> list[str]:
    """Change ``ticket`` in place by ``actions``; returns who to notify."""
    if "set_priority" in actions:
        ticket["priority"] = actions["set_priority"]
    if actions.get("raise_priority"):
        ticket["priority"] = PRIORITIES[min(PRIORITIES.index(ticket["priority"]) + 1, len(PRIORITIES) - 1)]
    if actions.get("increase_level"):
        ticket["escalation_level"] += 1
    target = actions.get("reassign_to") or {}
    new_agent: uuid.UUID | None = ticket["agent_id"]
    if target.get("role") == "supervisor":
        picked = await _pick_agent(conn, department=None, role="supervisor", prefer_department=ticket["department"])
        new_agent = picked or new_agent
    elif "department" in target:
        ticket["department"] = target["department"]
        new_agent = await _pick_agent(conn, department=target["department"], role=None)
    elif "agent_id" in target:
        new_agent = uuid.UUID(str(target["agent_id"]))
    if new_agent != ticket["agent_id"]:
        ticket["agent_id"] = new_agent
        ticket["assigned_at"] = now if new_agent else None
    if actions.get("add_tags"):
        ticket["tags"] = list(ticket["tags"] or []) + [
            t for t in actions["add_tags"] if t not in (ticket["tags"] or [])
        ]
    ticket["escalated_at"] = now
    return list(actions.get("notify") or [])


async def _record(
    ctx: AppContext,
    conn: asyncpg.Connection,
    before: dict,
    after: dict,
    *,
    rule_id: uuid.UUID | None,
    trigger: str,
    reason: str | None,
    principal: Principal | None,
    meta: RequestMeta,
    notify: list[str],
    now: dt.datetime,
) -> tuple[dict, dict]:
    """Save the escalated ticket (a reassignment moves the agents' load) with its escalation
    record, audit row and events."""
    actor = principal.user_id if principal else None
    escalation: dict = {}

    async def record(row: dict) -> tuple[dict[str, Any], list[tuple[str, dict]]]:
        escalation.update(
            await ctx.db.q.insert_escalation(
                conn,
                ticket_id=row["id"],
                rule_id=rule_id,
                trigger=trigger,
                from_level=before["escalation_level"],
                to_level=row["escalation_level"],
                from_priority=before["priority"],
                to_priority=row["priority"],
                from_agent_id=before["agent_id"],
                to_agent_id=row["agent_id"],
                reason=reason,
                actor_id=actor,
                now=now,
            )
        )
        details = {
            "level": {"from": before["escalation_level"], "to": row["escalation_level"]},
            "priority": {"from": before["priority"], "to": row["priority"]},
            "trigger": trigger,
            "rule_id": str(rule_id) if rule_id else None,
            "reason": reason,
        }
        emitted: list[tuple[str, dict]] = [
            (
                "ticket.escalated",
                {
                    **event_summary(row),
                    "escalation_id": escalation["id"],
                    "trigger": trigger,
                    "rule_id": rule_id,
                    "from_level": before["escalation_level"],
                    "from_priority": before["priority"],
                    "from_agent_id": before["agent_id"],
                    "reason": reason,
                    "notify": notify,
                },
            )
        ]
        if row["agent_id"] != before["agent_id"]:
            emitted.append(("ticket.assigned", {**event_summary(row), "from_agent_id": before["agent_id"]}))
        return details, emitted

    row, _ = await save_change(
        ctx, conn, principal, meta, before, after, now=now, action="ticket.escalate", record=record
    )
    return row, escalation


async def _active_rules(ctx: AppContext, conn: asyncpg.Connection) -> list:
    return await ctx.db.q.active_escalation_rules(conn)


async def evaluate_ticket(ctx: AppContext, ticket_id: uuid.UUID, *, rules: list | None = None) -> int:
    """Apply the active rules whose conditions hold and that have not yet escalated the ticket at
    its current level; returns how many escalations were recorded."""
    now = ctx.clock.now()
    applied = 0
    async with ctx.db.transaction() as conn:
        row = await ctx.db.q.lock_ticket(conn, id=ticket_id)
        if row is None or row["status"] not in OPEN_STATUSES:
            return 0
        ticket = dict(row)
        rules = rules if rules is not None else await _active_rules(ctx, conn)
        done = {(r["rule_id"], r["level"]) for r in await ctx.db.q.rule_applications(conn, ticket_id=ticket_id)}
        last_reply = await _last_agent_reply(ctx, conn, ticket_id)
        for rule in rules:
            if (rule["id"], ticket["escalation_level"]) in done:
                continue
            conditions = _effective_conditions(ctx, rule)
            if not _holds(conditions, ticket, now, last_reply):
                continue
            before = dict(ticket)
            after = dict(ticket)
            notify = await _apply_actions(conn, after, rule["actions"], now)
            trigger = "sla" if conditions.get("sla_breached") is True else "rule"
            ticket, _ = await _record(
                ctx,
                conn,
                before,
                after,
                rule_id=rule["id"],
                trigger=trigger,
                reason=rule["rule_name"],
                principal=None,
                meta=RequestMeta(transport="system"),
                notify=notify,
                now=now,
            )
            done.add((rule["id"], before["escalation_level"]))
            done.add((rule["id"], ticket["escalation_level"]))
            applied += 1
    if applied:
        await ctx.ticket_cache.invalidate(ticket_id)
    return applied


async def on_ticket_changed(ctx: AppContext, ticket_id: uuid.UUID) -> None:
    """The event hook: run the rules on a ticket just created or changed (never fails the caller)."""
    try:
        await evaluate_ticket(ctx, ticket_id)
    except Exception:
        log.exception("escalation rules failed", extra={"ticket_id": str(ticket_id)})


async def sweep(ctx: AppContext) -> int:
    """The periodic duty: run the rules over every unresolved ticket."""
    async with ctx.db.connection() as conn:
        rules = await _active_rules(ctx, conn)
        if not rules:
            return 0
        ids = [r["id"] for r in await ctx.db.q.unresolved_ticket_ids(conn, statuses=list(OPEN_STATUSES))]
    total = 0
    for ticket_id in ids:
        total += await evaluate_ticket(ctx, ticket_id, rules=rules)
    return total


# ---------------------------------------------------------------- manual escalation


async def escalate_manually(
    ctx: AppContext, principal: Principal, meta: RequestMeta, ticket_id: uuid.UUID, reason: str | None
) -> dict:
    """POST /tickets/{id}/escalate: the actions of the active rules whose conditions hold (in
    priority order, ignoring whether they already ran), else the default step (level + 1,
    priority one step up); one escalation record with trigger ``manual``."""
    if principal.role == "customer":
        raise Forbidden("Customers may not escalate tickets")
    now = ctx.clock.now()
    async with ctx.db.transaction() as conn:
        before = await locked_for_write(ctx, conn, principal, ticket_id)
        if before["status"] in ("resolved", "closed"):
            raise InvalidState(f"A {before['status']} ticket cannot be escalated")
        last_reply = await _last_agent_reply(ctx, conn, ticket_id)
        after = dict(before)
        notify: list[str] = []
        rule_id = None
        for rule in await _active_rules(ctx, conn):
            if _holds(_effective_conditions(ctx, rule), after, now, last_reply):
                rule_id = rule_id or rule["id"]
                notify += [n for n in await _apply_actions(conn, after, rule["actions"], now) if n not in notify]
        if rule_id is None:
            await _apply_actions(conn, after, {"raise_priority": True, "increase_level": True}, now)
        row, escalation = await _record(
            ctx,
            conn,
            before,
            after,
            rule_id=rule_id,
            trigger="manual",
            reason=reason,
            principal=principal,
            meta=meta,
            notify=notify,
            now=now,
        )
    await ctx.ticket_cache.invalidate(ticket_id)
    return {"ticket": present(ctx, row), "escalation": escalation_view(escalation)}


# ---------------------------------------------------------------- SLA breaches


async def sla_sweep(ctx: AppContext) -> int:
    """Mark tickets whose first response or resolution is overdue: ``sla_breached`` = true and
    one ``ticket.sla_breached`` event per kind (``first_response``, ``resolution``)."""
    now = ctx.clock.now()
    async with ctx.db.connection() as conn:
        ids = [r["id"] for r in await ctx.db.q.sla_overdue_ticket_ids(conn, statuses=list(OPEN_STATUSES), now=now)]
    marked = 0
    for ticket_id in ids:
        async with ctx.db.transaction() as conn:
            row = await ctx.db.q.lock_ticket(conn, id=ticket_id)
            if row is None or row["status"] not in OPEN_STATUSES:
                continue
            kinds = []
            if row["first_response_at"] is None and row["first_response_due_at"] and row["first_response_due_at"] < now:
                kinds.append(("first_response", row["first_response_due_at"]))
            if row["resolution_due_at"] and row["resolution_due_at"] < now:
                kinds.append(("resolution", row["resolution_due_at"]))
            seen = {r["kind"] for r in await ctx.db.q.sla_breach_kinds(conn, ticket_id=str(ticket_id))}
            new = [(k, due) for k, due in kinds if k not in seen]
            if not new and row["sla_breached"]:
                continue
            if not row["sla_breached"]:
                await ctx.db.q.mark_sla_breached(conn, id=ticket_id, now=now)
            for kind, due in new:
                await ctx.events.append(
                    conn,
                    "ticket.sla_breached",
                    "ticket",
                    ticket_id,
                    {**event_summary(dict(row)), "kind": kind, "due_at": due},
                )
            marked += 1
        await ctx.ticket_cache.invalidate(ticket_id)
    return marked


async def duties_tick(ctx: AppContext) -> None:
    """One cluster tick: breaches first, so rules on ``sla_breached`` see them."""
    await sla_sweep(ctx)
    await sweep(ctx)
