"""The ticket as data: its status machine, what clients and events see of it, what a change is.

Pure functions over ticket rows (dicts), no database and no clock: the store
(app.services.ticket_store), the commands (app.services.tickets), automation and escalation all
build on this module, and it on nothing of theirs.
"""

from __future__ import annotations

from typing import Any, Protocol

from app.errors import InvalidState

# API.md "Tickets": the legal status transitions, in the order clients offer them (onward first);
# anything else is a 409.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "open": ("in_progress", "pending", "resolved", "closed"),
    "in_progress": ("pending", "resolved", "closed"),
    "pending": ("in_progress", "resolved", "closed"),
    "resolved": ("closed", "open"),
    "closed": ("open",),
}
CLOSED = frozenset({"resolved", "closed"})  # a ticket in these no longer counts in its agent's load
ENCRYPTED = ("description", "customer_email", "customer_name")
# Fields whose values never go into events or audit rows (only that they changed).
SENSITIVE = frozenset(ENCRYPTED)
PUBLIC_FIELDS = (
    "id",
    "ticket_number",
    "customer_id",
    "agent_id",
    "category",
    "subcategory",
    "department",
    "priority",
    "status",
    "channel",
    "subject",
    "description",
    "customer_email",
    "customer_name",
    "assigned_at",
    "first_response_at",
    "resolved_at",
    "closed_at",
    "reopened_count",
    "escalation_level",
    "escalated_at",
    "first_response_due_at",
    "resolution_due_at",
    "sla_breached",
    "tags",
    "metadata",
    "created_at",
    "updated_at",
)
MUTABLE_FIELDS = (
    "id",
    "agent_id",
    "category",
    "subcategory",
    "department",
    "priority",
    "status",
    "subject",
    "description",
    "customer_email",
    "customer_name",
    "tags",
    "metadata",
    "assigned_at",
    "first_response_at",
    "resolved_at",
    "closed_at",
    "reopened_count",
    "escalation_level",
    "escalated_at",
)


class Decrypts(Protocol):
    def decrypt(self, value: str | None, field: str) -> str | None: ...


class HasCipher(Protocol):
    @property
    def cipher(self) -> Decrypts: ...


def allowed_transitions(status: str) -> list[str]:
    """The statuses a ticket in ``status`` may move to, in the order clients offer them."""
    return list(TRANSITIONS.get(status, ()))


def present(ctx: HasCipher, row: dict) -> dict:
    """The ticket as clients see it, with its encrypted fields decrypted and the statuses it may
    move to next (``allowed_transitions``: clients render the status machine from it, never from
    a copy of their own)."""
    ticket = {f: row[f] for f in PUBLIC_FIELDS}
    for field in ENCRYPTED:
        ticket[field] = ctx.cipher.decrypt(row[field], f"support_tickets.{field}")
    ticket["allowed_transitions"] = allowed_transitions(row["status"])
    return ticket


def escalation_view(row: dict) -> dict:
    return {
        k: row[k]
        for k in (
            "id",
            "trigger",
            "from_level",
            "to_level",
            "from_priority",
            "to_priority",
            "from_agent_id",
            "to_agent_id",
            "reason",
            "created_at",
        )
    }


def event_summary(row: dict) -> dict[str, Any]:
    """The non-sensitive fields a ticket event carries."""
    return {
        "ticket_id": row["id"],
        "ticket_number": row["ticket_number"],
        "customer_id": row["customer_id"],
        "agent_id": row["agent_id"],
        "category": row["category"],
        "department": row["department"],
        "priority": row["priority"],
        "status": row["status"],
        "channel": row["channel"],
        "escalation_level": row["escalation_level"],
    }


def event_changes(before: dict, after: dict) -> dict[str, Any]:
    """What changed from ``before`` to ``after``; sensitive fields only say that they changed."""
    changes: dict[str, Any] = {}
    for field in after:
        if field in ("updated_at",) or before.get(field) == after[field]:
            continue
        changes[field] = {"changed": True} if field in SENSITIVE else {"from": before.get(field), "to": after[field]}
    return changes


def apply_status(row: dict, status: str, now: Any) -> None:
    """Move ``row`` to ``status`` (with its timestamps), or raise InvalidState (409)."""
    current = row["status"]
    if status == current:
        return
    if status not in TRANSITIONS[current]:
        raise InvalidState(
            f"A ticket cannot go from {current} to {status}",
            details={"from": current, "to": status, "allowed": sorted(TRANSITIONS[current])},
        )
    row["status"] = status
    if status == "resolved":
        row["resolved_at"] = now
    elif status == "closed":
        row["closed_at"] = now
    elif status == "open":  # reopen
        row["resolved_at"] = None
        row["closed_at"] = None
        row["reopened_count"] += 1


def mutable_fields(row: dict) -> dict:
    return {k: row[k] for k in MUTABLE_FIELDS}


def holds(row: dict) -> bool:
    """Whether the ticket counts in its agent's load (assigned and not resolved or closed)."""
    return bool(row.get("agent_id")) and row.get("status") not in CLOSED
