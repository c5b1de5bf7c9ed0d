"""SLA breaches: the sweep marks overdue first responses and resolutions once per kind, the
ticket analytics count them, and admins edit the targets per priority."""

from __future__ import annotations

import datetime as dt

from app.services import escalation, tickets
from tests.escalation_support import (
    ADMIN,
    META,
    department,
    events,
    frozen,
    new_ticket,
    row,
    utcnow,
)
from tests.helpers import problem

SLA = "/api/v1/sla-policies"


async def test_sweep_marks_breaches_once_per_kind_and_analytics_count_them(settings, client, users):
    now = utcnow()
    # Tickets created two days ago (urgent: first response 30 min, resolution 4 h) are overdue
    # now; the shared database's fresh tickets are not.
    async with frozen(settings, start=now - dt.timedelta(days=2)) as (ctx, clock):
        cat = await department(ctx)
        silent = await new_ticket(ctx, cat, priority="urgent")
        answered = await new_ticket(ctx, cat, priority="urgent")
        await tickets.add_message(ctx, ADMIN, META, answered["id"], {"message": "On it."})
        on_time = await new_ticket(ctx, cat, priority="low")  # due in 1 day / 7 days
        assert silent["first_response_due_at"] == clock.now() + dt.timedelta(minutes=30)
        clock.advance(minutes=20)
        await escalation.sla_sweep(ctx)
        assert not (await row(ctx, silent["id"]))["sla_breached"]
        clock.advance(hours=30)  # 1 d 6 h 20 min after creation
        await escalation.sla_sweep(ctx)
        await escalation.sla_sweep(ctx)  # a second sweep adds nothing

        assert (await row(ctx, silent["id"]))["sla_breached"] and (await row(ctx, answered["id"]))["sla_breached"]
        assert sorted(e["payload"]["kind"] for e in await events(ctx, silent["id"], "ticket.sla_breached")) == [
            "first_response",
            "resolution",
        ]
        assert [e["payload"]["kind"] for e in await events(ctx, answered["id"], "ticket.sla_breached")] == [
            "resolution"
        ]
        low = await row(ctx, on_time["id"])
        assert low["sla_breached"] and [
            e["payload"]["kind"] for e in await events(ctx, on_time["id"], "ticket.sla_breached")
        ] == ["first_response"]

    _, supervisor = users.new("supervisor")
    params = {
        "from": (now - dt.timedelta(days=3)).isoformat(),
        "to": (now + dt.timedelta(hours=1)).isoformat(),
        "department": cat,
    }
    response = await client.get("/api/v1/analytics/tickets", params=params, headers=supervisor)
    assert response.status == 200, await response.text()
    totals = (await response.json())["totals"]
    assert totals["sla_breached"] == 3 and totals["created"] == 3


async def test_resolved_tickets_are_not_marked(settings):
    now = utcnow()
    async with frozen(settings, start=now - dt.timedelta(days=2)) as (ctx, clock):
        ticket = await new_ticket(ctx, await department(ctx), priority="urgent", status="resolved")
        clock.advance(days=2)
        await escalation.sla_sweep(ctx)
        assert not (await row(ctx, ticket["id"]))["sla_breached"]
        assert await events(ctx, ticket["id"], "ticket.sla_breached") == []


async def test_sla_policies_are_admin_editable(client, users, ctx):
    _, admin = users.new("admin")
    _, supervisor = users.new("supervisor")
    listed = await (await client.get(SLA, headers=admin)).json()
    assert [p["priority"] for p in listed["items"]] == ["low", "medium", "high", "urgent"]
    original = next(p for p in listed["items"] if p["priority"] == "low")
    try:
        response = await client.put(
            f"{SLA}/low", json={"first_response_minutes": 600, "resolution_minutes": 9000}, headers=admin
        )
        assert response.status == 200, await response.text()
        assert (await response.json())["first_response_minutes"] == 600
        await problem(
            await client.put(f"{SLA}/low", json={"first_response_minutes": 0, "resolution_minutes": 1}, headers=admin),
            422,
        )
        await problem(await client.put(f"{SLA}/low", json={"first_response_minutes": 5}, headers=admin), 422)
        await problem(
            await client.put(
                f"{SLA}/critical", json={"first_response_minutes": 5, "resolution_minutes": 9}, headers=admin
            ),
            404,
        )
        await problem(
            await client.put(
                f"{SLA}/low", json={"first_response_minutes": 5, "resolution_minutes": 9}, headers=supervisor
            ),
            403,
        )
        await problem(await client.get(SLA, headers=supervisor), 403)
    finally:
        await client.put(
            f"{SLA}/low", json={k: original[k] for k in ("first_response_minutes", "resolution_minutes")}, headers=admin
        )
