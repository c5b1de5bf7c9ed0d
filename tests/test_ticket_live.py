"""ticket:* socket events come from the event log: a REST change reaches the console live."""

from __future__ import annotations

import uuid

import aiohttp

from app.auth import issue_token
from chat_support import make_agent

pytest_plugins = ["chat_fixtures"]


def _auth(secret: str, user_id: uuid.UUID, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(secret, user_id, role)}"}


def _about(ticket_id: str):
    return lambda data: data["ticket"]["id"] == ticket_id


async def test_rest_ticket_changes_reach_customer_agent_and_supervisors_live(chat_server, cast, department):
    ctx, secret = chat_server.ctx, chat_server.settings.jwt_secret
    agent_id = await make_agent(ctx, department)
    supervisor_id = uuid.uuid4()
    customer = await cast.customer()
    stranger = await cast.customer()
    agent = await cast.staff(agent_id, status=None)
    supervisor = await cast.staff(supervisor_id, role="supervisor", status=None)
    async with aiohttp.ClientSession(chat_server.url) as http:
        async with http.post(
            "/api/v1/tickets",
            json={"subject": "Lost key", "description": "Room 12"},
            headers=_auth(secret, customer.user_id, "customer"),
        ) as resp:
            ticket = await resp.json()
        created = await customer.expect("ticket:created", _about(ticket["id"]))
        assert created["ticket"]["description"] == "Room 12"
        await supervisor.expect("ticket:created", _about(ticket["id"]))

        async with http.put(
            f"/api/v1/tickets/{ticket['id']}",
            json={"agent_id": str(agent_id)},
            headers=_auth(secret, supervisor_id, "supervisor"),
        ) as resp:
            assert resp.status == 200
        assigned = await agent.expect("ticket:assigned", _about(ticket["id"]))
        assert assigned["ticket"]["agent_id"] == str(agent_id)
        await customer.expect("ticket:updated", _about(ticket["id"]))

        async with http.post(
            f"/api/v1/tickets/{ticket['id']}/escalate", json={"reason": "VIP"}, headers=_auth(secret, agent_id, "agent")
        ) as resp:
            assert resp.status == 200
        escalated = await supervisor.expect("ticket:escalated", _about(ticket["id"]))
        assert escalated["ticket"]["escalation_level"] == 1
    # another customer, connected all along, hears nothing of it
    await stranger.catch_up()
    assert stranger.seen("ticket:created", _about(ticket["id"])) == []


async def test_ticket_messages_are_pushed_live_and_internal_notes_only_to_staff(chat_server, cast, department):
    ctx, secret = chat_server.ctx, chat_server.settings.jwt_secret
    agent_id = await make_agent(ctx, department)
    customer = await cast.customer()
    agent = await cast.staff(agent_id, status=None)
    async with aiohttp.ClientSession(chat_server.url) as http:
        async with http.post(
            "/api/v1/tickets",
            json={"subject": "Broken shower", "description": "Room 4"},
            headers=_auth(secret, customer.user_id, "customer"),
        ) as resp:
            ticket = await resp.json()
        async with http.put(
            f"/api/v1/tickets/{ticket['id']}",
            json={"agent_id": str(agent_id)},
            headers=_auth(secret, uuid.uuid4(), "supervisor"),
        ) as resp:
            assert resp.status == 200
        for text, internal in (("Plumber booked for 3 pm", True), ("Someone comes at 3 pm", False)):
            async with http.post(
                f"/api/v1/tickets/{ticket['id']}/messages",
                json={"message": text, "is_internal": internal},
                headers=_auth(secret, agent_id, "agent"),
            ) as resp:
                assert resp.status == 201, await resp.text()
        note = await agent.expect("ticket:message", lambda d: d["message"]["message"] == "Plumber booked for 3 pm")
        assert note["message"]["is_internal"] is True and note["ticket"]["id"] == ticket["id"]
        public = await customer.expect("ticket:message", _about(ticket["id"]))
        assert public["message"]["message"] == "Someone comes at 3 pm" and public["message"]["is_internal"] is False
        await agent.expect("ticket:message", lambda d: d["message"]["message"] == "Someone comes at 3 pm")
    await customer.catch_up()
    assert [d["message"]["message"] for d in customer.seen("ticket:message")] == ["Someone comes at 3 pm"]
