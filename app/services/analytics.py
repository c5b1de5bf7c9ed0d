"""Support analytics: tickets, chat, response times and satisfaction over a time window.

Every figure is computed in SQL (sql/queries/analytics.sql: ``date_trunc`` in the caller's time
zone, ``percentile_cont``, grouping sets); this module only checks who may see what, fills in
the window's defaults and shapes the rows as API.md describes. Supervisors, admins and peer
services see everything; an agent sees only their own figures; customers see none.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable
from typing import Any

import asyncpg

from app import metrics
from app.auth import Principal
from app.context import AppContext
from app.errors import Forbidden, ValidationFailed
from app.schemas.analytics import MAX_BUCKETS

DEFAULT_WINDOW = dt.timedelta(days=30)
BUCKET_LENGTH = {"hour": dt.timedelta(hours=1), "day": dt.timedelta(days=1), "week": dt.timedelta(weeks=1)}
RATINGS = ("1", "2", "3", "4", "5")
ROLES = ("agent", "supervisor", "admin", "service")  # who may read analytics at all


def window(ctx: AppContext, principal: Principal, params: dict) -> dict:
    """The report window after access rules: agents are narrowed to themselves."""
    if principal.role not in ROLES:
        raise Forbidden("Analytics are for agents, supervisors and admins")
    agent_id = params.get("agent_id")
    if principal.role == "agent":
        if agent_id is not None and agent_id != principal.user_id:
            raise Forbidden("Agents see only their own figures")
        agent_id = principal.user_id
    until = params.get("until") or ctx.clock.now()
    since = params.get("since") or until - DEFAULT_WINDOW
    if since >= until:
        raise ValidationFailed("The window is empty", details={"from": ["Must be before `to`."]})
    granularity = params.get("granularity", "day")
    if (until - since) / BUCKET_LENGTH[granularity] > MAX_BUCKETS:
        raise ValidationFailed(
            "Too many buckets",
            details={
                "granularity": [f"At most {MAX_BUCKETS} buckets: choose a coarser granularity or a shorter window."]
            },
        )
    return {
        "since": since,
        "until": until,
        "granularity": granularity,
        "tz": params.get("tz", "UTC"),
        "department": params.get("department"),
        "agent_id": agent_id,
    }


def _echo(w: dict) -> dict:
    return {
        "from": w["since"],
        "to": w["until"],
        "granularity": w["granularity"],
        "tz": w["tz"],
        "department": w["department"],
        "agent_id": w["agent_id"],
    }


def _filters(w: dict) -> dict:
    return {"since": w["since"], "until": w["until"], "department": w["department"], "agent_id": w["agent_id"]}


def _number(value: Any, places: int = 2) -> float | None:
    return None if value is None else round(float(value), places)


def _duration(avg: Any, percentiles: list | None, count: int) -> dict:
    p50, p90 = percentiles if percentiles else (None, None)
    return {"avg": _number(avg, 1), "p50": _number(p50, 1), "p90": _number(p90, 1), "count": count}


class _Timed:
    def __init__(self, report: str):
        self._report = report

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        metrics.ANALYTICS_LATENCY.labels(report=self._report).observe(time.perf_counter() - self._started)


async def _buckets(ctx: AppContext, w: dict) -> list:
    async with ctx.db.connection() as conn:
        rows = await ctx.db.q.report_buckets(
            conn, since=w["since"], until=w["until"], granularity=w["granularity"], tz=w["tz"]
        )
    return [r["bucket"] for r in rows]


async def _query(ctx: AppContext, name: str, **params: Any) -> Any:
    """One report query in its own transaction (sorting in memory)."""
    async with ctx.db.transaction() as conn:
        await ctx.db.q.analytics_work_mem(conn)
        return await getattr(ctx.db.q, name)(conn, **params)


async def _gather(report: str, *queries: Awaitable[Any]) -> list:
    """A report's queries run side by side on their own connections: the wall time of the
    slowest, not the sum."""
    with _Timed(report):
        return list(await asyncio.gather(*queries))


# ---------------------------------------------------------------- reports
# Series rows name their bucket by its 1-based position in the window's bucket list.


def _windowed(w: dict, buckets: list) -> dict:
    return {**_filters(w), "buckets": buckets}


async def tickets_report(ctx: AppContext, principal: Principal, params: dict) -> dict:
    w = window(ctx, principal, params)
    buckets = await _buckets(ctx, w)
    breakdown, resolved, counts = await _gather(
        "tickets",
        _query(ctx, "ticket_breakdown", **_windowed(w, buckets)),
        _query(ctx, "tickets_resolved", **_windowed(w, buckets)),
        _query(ctx, "ticket_counts", **_filters(w)),
    )
    by: dict[str, dict[Any, int]] = {"status": {}, "priority": {}, "category": {}, "bucket": {}}
    created = reopened = 0
    for row in breakdown:
        if row["dimension"] == "total":
            created, reopened = row["tickets"], row["reopened"]
        elif row["dimension"] == "bucket":
            by["bucket"][row["bucket"]] = row["tickets"]
        else:
            by[row["dimension"]][row["name"]] = row["tickets"]
    resolved_in = {r["bucket"]: r["resolved"] for r in resolved}
    return {
        **_echo(w),
        "totals": {
            "created": created,
            "resolved": resolved_in.pop(None, 0),
            "reopened": reopened,
            "escalated": counts["escalated"],
            "backlog": counts["backlog"],
            "sla_breached": counts["sla_breached"],
        },
        "by_status": by["status"],
        "by_priority": by["priority"],
        "by_category": by["category"],
        "series": [
            {"bucket": b, "created": by["bucket"].get(n, 0), "resolved": resolved_in.get(n, 0)}
            for n, b in enumerate(buckets, 1)
        ],
    }


async def chat_report(ctx: AppContext, principal: Principal, params: dict) -> dict:
    w = window(ctx, principal, params)
    buckets = await _buckets(ctx, w)
    totals, series_rows, peak = await _gather(
        "chat",
        _query(ctx, "chat_totals", **_filters(w)),
        _query(ctx, "chat_series", **_windowed(w, buckets)),
        _query(ctx, "chat_peak_concurrent", **_filters(w)),
    )
    series = {r["bucket"]: r for r in series_rows}
    return {
        **_echo(w),
        "totals": {k: totals[k] for k in ("sessions", "answered", "timed_out", "abandoned")},
        "wait_seconds": _duration(totals["wait_avg"], totals["wait_pct"], totals["wait_count"]),
        "duration_seconds": _duration(totals["duration_avg"], totals["duration_pct"], totals["duration_count"]),
        "peak_concurrent": peak,
        "series": [
            {
                "bucket": b,
                "sessions": series[n]["sessions"] if n in series else 0,
                "answered": series[n]["answered"] if n in series else 0,
            }
            for n, b in enumerate(buckets, 1)
        ],
    }


async def response_time_report(ctx: AppContext, principal: Principal, params: dict) -> dict:
    w = window(ctx, principal, params)
    buckets = await _buckets(ctx, w)
    first_response, resolution_time, chat_first, tickets, chat_rows = await _gather(
        "response_time",
        _query(ctx, "ticket_first_response", **_filters(w)),
        _query(ctx, "ticket_resolution", **_filters(w)),
        _query(ctx, "chat_first_response", **_filters(w)),
        _query(ctx, "ticket_time_series", **_windowed(w, buckets)),
        _query(ctx, "chat_series", **_windowed(w, buckets)),
    )
    chats = {r["bucket"]: r["first_response_avg"] for r in chat_rows}
    first = {r["bucket"]: r["seconds"] for r in tickets if r["dimension"] == "created"}
    resolution = {r["bucket"]: r["seconds"] for r in tickets if r["dimension"] == "resolved"}
    return {
        **_echo(w),
        "tickets": {
            "first_response_seconds": _duration(*first_response),
            "resolution_seconds": _duration(*resolution_time),
        },
        "chats": {"first_response_seconds": _duration(*chat_first)},
        "series": [
            {
                "bucket": b,
                "ticket_first_response_seconds": _number(first.get(n), 1),
                "ticket_resolution_seconds": _number(resolution.get(n), 1),
                "chat_first_response_seconds": _number(chats.get(n), 1),
            }
            for n, b in enumerate(buckets, 1)
        ],
    }


async def satisfaction_report(ctx: AppContext, principal: Principal, params: dict) -> dict:
    """Satisfaction (``/analytics/satisfaction``) and feedback analytics (``/feedback/analytics``,
    which may also narrow to a ``category``) are the same figures."""
    w = window(ctx, principal, params)
    category = params.get("category")
    buckets = await _buckets(ctx, w)
    (rows,) = await _gather(
        "satisfaction", _query(ctx, "feedback_breakdown", **_windowed(w, buckets), category=category)
    )
    report: dict[str, Any] = {
        **_echo(w),
        "count": 0,
        "average_rating": None,
        "csat": None,
        "distribution": dict.fromkeys(RATINGS, 0),
        "average_sentiment": None,
        "by_agent": [],
        "by_category": {},
    }
    per_bucket: dict[Any, Any] = {}
    for row in rows:
        if row["dimension"] == "total":
            report.update(
                count=row["count"],
                average_rating=_number(row["average_rating"]),
                csat=_number(row["csat"], 4),
                average_sentiment=_number(row["average_sentiment"]),
            )
        elif row["dimension"] == "rating":
            report["distribution"][str(row["rating"])] = row["count"]
        elif row["dimension"] == "agent" and row["agent_id"] is not None:
            report["by_agent"].append(
                {
                    "agent_id": row["agent_id"],
                    "count": row["count"],
                    "average_rating": _number(row["average_rating"]),
                    "csat": _number(row["csat"], 4),
                }
            )
        elif row["dimension"] == "category":
            report["by_category"][row["category"] or "uncategorized"] = {
                "count": row["count"],
                "average_rating": _number(row["average_rating"]),
            }
        elif row["dimension"] == "bucket":
            per_bucket[row["bucket"]] = row
    report["by_agent"].sort(key=lambda a: (-a["count"], str(a["agent_id"])))
    report["series"] = [
        {
            "bucket": b,
            "count": per_bucket[n]["count"] if n in per_bucket else 0,
            "average_rating": _number(per_bucket[n]["average_rating"]) if n in per_bucket else None,
        }
        for n, b in enumerate(buckets, 1)
    ]
    if "category" in params:
        report["category"] = category
    return report


REPORTS = {
    "tickets": tickets_report,
    "chat": chat_report,
    "response_time": response_time_report,
    "satisfaction": satisfaction_report,
}


async def report(ctx: AppContext, principal: Principal, name: str, params: dict) -> dict:
    """One report by name (gRPC's ``GetSupportAnalytics`` takes the report as an enum)."""
    try:
        return await REPORTS[name](ctx, principal, params)
    except asyncpg.InvalidParameterValueError as exc:  # a zone PostgreSQL does not know
        raise ValidationFailed("Invalid parameter", details={"tz": [str(exc)]}) from None
