"""Reading the audit log (admins only)."""

from __future__ import annotations

from app.auth import Principal, require_role
from app.context import AppContext
from app.db import fetch_page

FIELDS = (
    "id",
    "occurred_at",
    "actor_id",
    "actor_role",
    "action",
    "entity",
    "entity_id",
    "request_id",
    "ip",
    "transport",
    "changes",
)


async def list_entries(ctx: AppContext, principal: Principal, query: dict) -> dict:
    require_role(principal, "admin")
    filters = {k: query.get(k) for k in ("actor_id", "action", "entity", "entity_id", "from_time", "to_time")}
    async with ctx.db.connection() as conn:
        rows, total = await fetch_page(
            ctx.db.q.list_audit, conn, **filters, limit=query["limit"], offset=query["offset"]
        )
    return {
        "items": [{f: r[f] for f in FIELDS} for r in rows],
        "total": total,
        "limit": query["limit"],
        "offset": query["offset"],
    }
