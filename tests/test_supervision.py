"""What a team needs beside chatting (issue 15), on the server: queue previews, ratings pushed to
the rated agent, supervisors watching a live chat read-only with notes and taking it over, each
agent's figures of the day, and queue alerts (flag, push, e-mail through the outbox)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import aiohttp

from app.auth import issue_token
from app.clock import FrozenClock
from app.context import open_context
from app.services import notifications, queue_alerts
from chat_support import chat_timers_paused, for_session, make_agent
from helpers import fetch, fetchval
from test_notifications import email_worker
from test_user_service import user_service

pytest_plugins = ["chat_fixtures"]
DEPARTMENTS = "/api/v1/departments"


def bearer(settings, user_id: uuid.UUID, role: str) -> dict:
    return {"Authorization": f"Bearer {issue_token(settings.jwt_secret, user_id, role)}"}


async def active_chat(cast, ctx, department: str, text: str = "My booking is gone"):
    agent_id = await make_agent(ctx, department)
    agent = await cast.staff(agent_id)
    customer = await cast.customer()
    started = await customer.ok("chat:start", {"department": department, "message": text})
    await agent.expect("chat:assigned", for_session(started["session"]["id"]))
    return agent, customer, started["session"]["id"], agent_id


# ------------------------------------------------------------------ queue previews


async def test_waiting_chats_show_the_start_of_the_customers_first_message(cast, chat_server, department):
    watcher = await cast.staff(await make_agent(chat_server.ctx, department, max_chats=0))
    customer = await cast.customer()
    long_text = "I need   to change\nthe dates of my stay " + "please " * 60
    started = await customer.ok("chat:start", {"department": department, "message": long_text})
    sid = started["session"]["id"]
    pushed = await watcher.expect("queue:updated", lambda d: any(s["id"] == sid for s in d["queued"]))
    [waiting] = [s for s in pushed["queued"] if s["id"] == sid]
    assert waiting["preview"].startswith("I need to change the dates of my stay please")
    assert len(waiting["preview"]) <= 200 and waiting["preview"].endswith("please…")
    snapshot = await watcher.ok("queue:snapshot", {})
    assert [s["preview"] for s in snapshot["queued"] if s["id"] == sid] == [waiting["preview"]]
    assert started["session"]["preview"] is not None  # the customer's own words, to the customer


async def test_a_chat_with_an_agent_has_no_preview(cast, chat_server, department):
    agent, _, sid, _ = await active_chat(cast, chat_server.ctx, department)
    session = (await agent.ok("chat:sync", {"session_id": sid, "after_seq": 0}))["session"]
    assert session["status"] == "active" and session["preview"] is None


# ------------------------------------------------------------------ ratings


async def test_the_rated_agent_hears_of_a_chat_rating_at_once(cast, chat_server, department):
    agent, customer, sid, _ = await active_chat(cast, chat_server.ctx, department)
    await agent.ok("chat:end", {"session_id": sid})
    await customer.ok("chat:rate", {"session_id": sid, "rating": 4, "comment": "Quick and kind"})
    rated = await agent.expect("chat:rated")
    assert rated == {"session_id": sid, "rating": 4, "comment": "Quick and kind"}


async def test_the_rated_agent_hears_of_a_ticket_rating(cast, chat_server, department, client, users):
    ctx = chat_server.ctx
    agent_id = await make_agent(ctx, department)
    agent = await cast.staff(agent_id)
    customer_id, customer = users.new("customer")
    _, admin = users.new("admin")
    ticket = await (
        await client.post(
            "/api/v1/tickets",
            json={
                "subject": "Refund",
                "description": "Please",
                "category": department,
                "customer_id": str(customer_id),
                "agent_id": str(agent_id),
            },
            headers=admin,
        )
    ).json()
    await client.patch(f"/api/v1/tickets/{ticket['id']}/status", json={"status": "resolved"}, headers=admin)
    response = await client.post("/api/v1/feedback", json={"ticket_id": ticket["id"], "rating": 2}, headers=customer)
    assert response.status == 201, await response.text()
    assert await agent.expect("ticket:rated") == {"ticket_id": ticket["id"], "rating": 2, "comment": None}


# ------------------------------------------------------------------ watching and taking over


async def test_a_supervisor_watches_a_live_chat_and_notes_what_the_customer_never_sees(cast, chat_server, department):
    agent, customer, sid, _ = await active_chat(cast, chat_server.ctx, department)
    supervisor = await cast.staff(uuid.uuid4(), role="supervisor", status=None)  # no agent profile needed
    watched = await supervisor.ok("chat:watch", {"session_id": sid})
    assert watched["session"]["id"] == sid
    assert [m["message"] for m in watched["messages"]][:1] == ["My booking is gone"]
    assert watched["notes"] == []

    await customer.ok("chat:message", {"session_id": sid, "client_msg_id": "c-1", "message": "Still there?"})
    live = await supervisor.expect("chat:message", lambda m: m["session_id"] == sid and m["seq"] > 1)
    assert live["message"] == "Still there?"
    await customer.ok("chat:typing", {"session_id": sid, "typing": True})
    await supervisor.expect("chat:typing", for_session(sid))

    note = (await supervisor.ok("chat:note", {"session_id": sid, "message": "Offer the voucher"}))["note"]
    assert (await agent.expect("chat:note", for_session(sid)))["id"] == note["id"]
    synced = await customer.ok("chat:sync", {"session_id": sid, "after_seq": 0})
    assert "notes" not in synced and all(m["message"] != "Offer the voucher" for m in synced["messages"])
    assert not customer.seen("chat:note")
    await supervisor.ok("chat:unwatch", {"session_id": sid})


async def test_only_supervisors_and_admins_watch(cast, chat_server, department):
    _, _, sid, _ = await active_chat(cast, chat_server.ctx, department)
    colleague = await cast.staff(await make_agent(chat_server.ctx, department))
    await colleague.fails("chat:watch", {"session_id": sid}, "forbidden")
    supervisor = await cast.staff(uuid.uuid4(), role="supervisor", status=None)
    await supervisor.fails("chat:watch", {"session_id": str(uuid.uuid4())}, "not_found")
    await supervisor.fails("chat:watch", {"session_id": 7}, "validation_failed")


async def test_a_supervisor_takes_a_chat_over(cast, chat_server, department):
    agent, customer, sid, agent_id = await active_chat(cast, chat_server.ctx, department)
    supervisor_id = await make_agent(chat_server.ctx, department, role="supervisor", name="Sam Supervisor")
    supervisor = await cast.staff(supervisor_id, role="supervisor")
    await supervisor.ok("chat:watch", {"session_id": sid})
    taken = await supervisor.ok("chat:transfer", {"session_id": sid, "to_agent_id": str(supervisor_id)})
    assert taken["session"]["agent_id"] == str(supervisor_id)
    assert (await agent.expect("chat:transferred", for_session(sid)))["to_agent_id"] == str(supervisor_id)
    await customer.expect("chat:transferred", for_session(sid))
    sent = await supervisor.ok("chat:message", {"session_id": sid, "client_msg_id": "s-1", "message": "Sam here"})
    assert (await customer.expect("chat:message", lambda m: m["seq"] == sent["message"]["seq"]))["sender_id"] == str(
        supervisor_id
    )
    assert await fetchval(chat_server.ctx, "SELECT active_chats FROM support_agents WHERE user_id = $1", agent_id) == 0


# ------------------------------------------------------------------ the team's figures


async def test_agent_stats_of_the_day(cast, chat_server, department, settings):
    ctx = chat_server.ctx
    agent, customer, sid, agent_id = await active_chat(cast, ctx, department)
    await agent.ok("chat:message", {"session_id": sid, "client_msg_id": "a-1", "message": "Let me look"})
    await agent.ok("chat:end", {"session_id": sid})
    await customer.ok("chat:rate", {"session_id": sid, "rating": 5})
    idle_id = await make_agent(ctx, department, max_chats=4)
    url = f"{chat_server.url}/api/v1/agents/stats"
    async with aiohttp.ClientSession() as http:
        async with http.get(
            url,
            params={"department": department, "tz": "Asia/Tokyo"},
            headers=bearer(settings, uuid.uuid4(), "supervisor"),
        ) as response:
            assert response.status == 200, await response.text()
            body = await response.json()
        async with http.get(url, headers=bearer(settings, agent_id, "agent")) as refused:
            assert refused.status == 403
        async with http.get(url, params={"tz": "Mars/Base"}, headers=bearer(settings, uuid.uuid4(), "admin")) as bad:
            assert bad.status == 422
    assert body["total"] == 2 and dt.datetime.fromisoformat(body["from"]) <= dt.datetime.now(dt.timezone.utc)
    by_user = {item["user_id"]: item for item in body["items"]}
    worked, idle = by_user[str(agent_id)], by_user[str(idle_id)]
    assert (worked["chats"], worked["active_chats"], worked["max_chats"], worked["status"]) == (1, 0, 2, "online")
    assert worked["first_response_seconds"]["count"] == 1 and worked["first_response_seconds"]["avg"] >= 0
    assert worked["handle_seconds"]["count"] == 1 and worked["handle_seconds"]["avg"] >= 0
    assert worked["ratings"] == {"avg": 5.0, "count": 1}
    assert (idle["chats"], idle["ratings"], idle["status"]) == (0, {"avg": None, "count": 0}, "offline")
    assert idle["first_response_seconds"] == {"avg": None, "count": 0}


# ------------------------------------------------------------------ queue alerts


async def test_a_long_wait_raises_an_alert_that_clears_when_the_queue_moves(cast, chat_server, client, users, settings):
    _, admin = users.new("admin")
    dept = await (
        await client.post(
            DEPARTMENTS, json={"name": f"dep-{uuid.uuid4().hex[:8]}", "queue_alert_minutes": 1}, headers=admin
        )
    ).json()
    supervisor = await cast.staff(uuid.uuid4(), role="supervisor", status=None)
    customer = await cast.customer()
    await customer.ok("chat:start", {"department": dept["name"], "message": "Hello?"})
    clock = FrozenClock(dt.datetime.now(dt.timezone.utc))
    async with (
        chat_timers_paused(settings),
        user_service() as (directory, target),
        email_worker() as (worker, email_url),
        open_context(
            dataclasses.replace(settings, email_service_url=email_url, grpc_user_service_url=target), clock=clock
        ) as tctx,
    ):
        boss = await make_agent(tctx, dept["name"], role="supervisor")
        boss_mail = directory.add(boss)
        tctx.live.emitter = chat_server.ctx.live.emitter  # push through the running server's sockets
        await queue_alerts.sweep(tctx)  # waited less than a minute: no alert yet
        assert not supervisor.seen("queue:alert", lambda a: a["department"] == dept["name"])
        clock.advance(minutes=2)
        await queue_alerts.sweep(tctx)
        raised = await supervisor.expect("queue:alert", lambda a: a["department"] == dept["name"])
        assert raised["raised"] is True and raised["threshold_minutes"] == 1 and raised["waiting"] == 1
        assert raised["longest_wait_seconds"] >= 120
        shown = await (await client.get(f"{DEPARTMENTS}/{dept['id']}", headers=admin)).json()
        assert shown["queue_alert_raised_at"] is not None
        await queue_alerts.sweep(tctx)  # still raised: nothing new
        await notifications.tick(tctx)
        # other departments of the shared database may alert too (and mail every supervisor): ours only
        [mail] = [m for m in worker.to(boss_mail) if m["data"].get("department") == dept["name"]]
        assert mail["template"] == "queue-alert" and mail["data"]["waiting"] == 1

        agent = await cast.staff(await make_agent(tctx, dept["name"]))  # someone takes the chat
        await agent.expect("chat:assigned")
        await queue_alerts.sweep(tctx)
        cleared = await supervisor.expect("queue:alert", lambda a: a["department"] == dept["name"])
        assert cleared["raised"] is False and cleared["waiting"] == 0
    events = await fetch(
        chat_server.ctx,
        "SELECT type FROM support_events WHERE entity_type = 'department' "
        "AND entity_id = $1 AND type LIKE 'queue.%' ORDER BY position",
        dept["id"],
    )
    assert [e["type"] for e in events] == ["queue.alert_raised", "queue.alert_cleared"]
    assert len(supervisor.seen("queue:alert", lambda a: a["department"] == dept["name"])) == 2
