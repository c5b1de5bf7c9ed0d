"""The six chat REST endpoints (/api/v1/chat/sessions...) on the same replica as the sockets:
shapes as in PROTOCOL.md's objects, RBAC like tickets, errors as application/problem+json, and
REST changes reaching the sockets in the session."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest

from chat_support import Cast, ChatServer, Peer, for_session, make_agent, new_department
from conftest import Users
from helpers import PROBLEM_JSON, fetchval, problem

pytest_plugins = ["chat_fixtures"]

SESSIONS = "/api/v1/chat/sessions"


@pytest.fixture(scope="module")
async def http(chat_server: ChatServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=chat_server.url) as session:
        yield session


def auth(users: Users, user_id: uuid.UUID, role: str) -> dict[str, str]:
    return users.headers(user_id, role)


async def start(http: aiohttp.ClientSession, headers: dict, expect: int = 201, **body) -> dict:
    async with http.post(SESSIONS, json=body, headers=headers) as response:
        assert response.status == expect, await response.text()
        data = await response.json()
        assert response.headers["Location"] == f"{SESSIONS}/{data['id']}"
        return data


async def get(http: aiohttp.ClientSession, path: str, headers: dict, status: int = 200) -> dict:
    async with http.get(path, headers=headers) as response:
        if status != 200:
            return await problem(response, status)
        assert response.status == 200, await response.text()
        return await response.json()


async def put(http: aiohttp.ClientSession, session_id: str, headers: dict, body: dict) -> aiohttp.ClientResponse:
    response = await http.put(f"{SESSIONS}/{session_id}", json=body, headers=headers)
    await response.read()
    return response


async def active_chat(cast: Cast, chat_server: ChatServer, department: str) -> tuple[Peer, Peer, dict]:
    agent = await cast.staff(await make_agent(chat_server.ctx, department))
    customer = await cast.customer()
    session = (await customer.ok("chat:start", {"department": department}))["session"]
    await agent.expect("chat:assigned", for_session(session["id"]))
    return customer, agent, session


# ------------------------------------------------------------------ create


async def test_a_customer_starts_a_chat_and_gets_the_open_one_again(
    http: aiohttp.ClientSession, users: Users, department: str
) -> None:
    customer_id = uuid.uuid4()
    headers = auth(users, customer_id, "customer")
    session = await start(http, headers, department=department, subject="Where is my parcel?")
    assert session["status"] == "queued" and session["queue_position"] == 1
    assert session["customer_id"] == str(customer_id) and session["subject"] == "Where is my parcel?"
    assert session["session_key"] and session["agent"] is None
    again = await start(http, headers, expect=200, department=department)  # the open one, not new
    assert again["id"] == session["id"]


async def test_staff_start_chats_for_a_customer_and_agents_may_not(
    http: aiohttp.ClientSession, users: Users, department: str
) -> None:
    customer_id = uuid.uuid4()
    session = await start(
        http, auth(users, uuid.uuid4(), "supervisor"), department=department, customer_id=str(customer_id)
    )
    assert session["customer_id"] == str(customer_id)
    async with http.post(SESSIONS, json={"department": department}, headers=auth(users, uuid.uuid4(), "service")) as r:
        body = await problem(r, 422)
        assert "customer_id" in body["errors"]
    async with http.post(
        SESSIONS, json={"customer_id": str(uuid.uuid4())}, headers=auth(users, uuid.uuid4(), "agent")
    ) as r:
        await problem(r, 403)
    async with http.post(
        SESSIONS, json={"customer_id": str(uuid.uuid4())}, headers=auth(users, customer_id, "customer")
    ) as r:
        await problem(r, 403)  # customers start chats only for themselves


# ------------------------------------------------------------------ read and RBAC


async def test_get_by_id_or_session_key_with_ticket_like_visibility(
    http: aiohttp.ClientSession, users: Users, cast: Cast, chat_server: ChatServer, department: str
) -> None:
    customer, agent, session = await active_chat(cast, chat_server, department)
    path, by_key = f"{SESSIONS}/{session['id']}", f"{SESSIONS}/{session['session_key']}"
    mine = await get(http, path, auth(users, customer.user_id, "customer"))
    assert mine["id"] == session["id"] and mine["status"] == "active"
    assert mine["agent"]["id"] == str(agent.user_id)
    assert set(mine) >= {
        "id",
        "session_key",
        "status",
        "customer_id",
        "agent_id",
        "agent",
        "department",
        "ticket_id",
        "queue_position",
        "started_at",
        "assigned_at",
        "ended_at",
        "last_seq",
        "customer_last_read_seq",
        "agent_last_read_seq",
    }
    assert await get(http, by_key, auth(users, customer.user_id, "customer")) == mine
    assert (await get(http, by_key, auth(users, agent.user_id, "agent")))["id"] == session["id"]
    assert (await get(http, path, auth(users, uuid.uuid4(), "supervisor")))["id"] == session["id"]
    assert (await get(http, path, auth(users, uuid.uuid4(), "admin")))["id"] == session["id"]
    for stranger in ((uuid.uuid4(), "customer"), (uuid.uuid4(), "agent")):
        await get(http, path, auth(users, *stranger), status=404)
        await get(http, by_key, auth(users, *stranger), status=404)
    await get(http, f"{SESSIONS}/{uuid.uuid4()}", auth(users, uuid.uuid4(), "admin"), status=404)
    await get(http, f"{SESSIONS}/chat_nothing-here", auth(users, uuid.uuid4(), "admin"), status=404)


async def test_list_shows_each_caller_what_they_may_see(
    http: aiohttp.ClientSession, users: Users, cast: Cast, chat_server: ChatServer, department: str
) -> None:
    agent = await cast.staff(await make_agent(chat_server.ctx, department, max_chats=1))
    customer, other = await cast.customer(), await cast.customer()
    session = (await customer.ok("chat:start", {"department": department}))["session"]
    queued = (await other.ok("chat:start", {"department": department}))["session"]
    assert (session["agent_id"], queued["status"]) == (str(agent.user_id), "queued")
    listing = f"{SESSIONS}?department={department}"

    page = await get(http, listing, auth(users, customer.user_id, "customer"))
    assert [s["id"] for s in page["items"]] == [session["id"]] and page["total"] == 1
    assert (page["limit"], page["offset"]) == (20, 0)
    page = await get(http, listing, auth(users, agent.user_id, "agent"))
    assert [s["id"] for s in page["items"]] == [session["id"]]
    page = await get(http, listing, auth(users, uuid.uuid4(), "agent"))
    assert page["items"] == [] and page["total"] == 0
    page = await get(http, f"{listing}&sort=started_at", auth(users, uuid.uuid4(), "supervisor"))
    assert [s["id"] for s in page["items"]] == [session["id"], queued["id"]] and page["total"] == 2
    assert page["items"][1]["queue_position"] == 1
    page = await get(http, f"{listing}&limit=1&offset=1&sort=started_at", auth(users, uuid.uuid4(), "supervisor"))
    assert [s["id"] for s in page["items"]] == [queued["id"]] and page["total"] == 2
    page = await get(http, f"{listing}&status=queued", auth(users, uuid.uuid4(), "admin"))
    assert [s["id"] for s in page["items"]] == [queued["id"]]
    page = await get(http, f"{listing}&customer_id={other.user_id}", auth(users, uuid.uuid4(), "admin"))
    assert [s["id"] for s in page["items"]] == [queued["id"]]
    body = await get(http, f"{SESSIONS}?colour=red", auth(users, uuid.uuid4(), "admin"), status=422)
    assert "colour" in body["errors"]
    body = await get(http, f"{SESSIONS}?status=lost", auth(users, uuid.uuid4(), "admin"), status=422)
    assert "status" in body["errors"]


# ------------------------------------------------------------------ update


async def test_put_status_ended_ends_the_chat_live(
    http: aiohttp.ClientSession, users: Users, cast: Cast, chat_server: ChatServer, department: str
) -> None:
    customer, agent, session = await active_chat(cast, chat_server, department)
    response = await put(http, session["session_key"], auth(users, agent.user_id, "agent"), {"status": "ended"})
    assert response.status == 200
    ended = await response.json()
    assert ended["status"] == "ended" and ended["duration_seconds"] is not None
    assert (await customer.expect("chat:ended", for_session(session["id"])))["reason"] == "agent"
    again = await put(http, session["id"], auth(users, agent.user_id, "agent"), {"status": "ended"})
    assert again.status == 409 and again.content_type == PROBLEM_JSON


async def test_put_agent_id_transfers_the_chat(
    http: aiohttp.ClientSession, users: Users, cast: Cast, chat_server: ChatServer, department: str
) -> None:
    customer, agent, session = await active_chat(cast, chat_server, department)
    target = await cast.staff(await make_agent(chat_server.ctx, department), status="away")
    denied = await put(
        http, session["id"], auth(users, customer.user_id, "customer"), {"agent_id": str(target.user_id)}
    )
    assert denied.status == 403
    response = await put(
        http, session["id"], auth(users, uuid.uuid4(), "supervisor"), {"agent_id": str(target.user_id)}
    )
    assert response.status == 200, await response.text()
    moved = await response.json()
    assert moved["agent_id"] == str(target.user_id) and moved["status"] == "active"
    event = await target.expect("chat:transferred", for_session(session["id"]))
    assert event["from_agent_id"] == str(agent.user_id)
    await customer.expect("chat:transferred", for_session(session["id"]))


async def test_put_subject_and_refusals(
    http: aiohttp.ClientSession, users: Users, cast: Cast, chat_server: ChatServer, department: str
) -> None:
    customer, agent, session = await active_chat(cast, chat_server, department)
    mine = auth(users, customer.user_id, "customer")
    response = await put(http, session["id"], mine, {"subject": "Refund"})
    assert response.status == 200 and (await response.json())["subject"] == "Refund"
    response = await put(http, session["id"], mine, {"colour": "red"})
    assert response.status == 422 and "colour" in (await response.json())["errors"]
    response = await put(http, session["id"], mine, {"status": "active"})
    assert response.status == 422
    response = await put(http, session["id"], auth(users, uuid.uuid4(), "customer"), {"subject": "Mine now"})
    assert response.status == 404
    response = await put(http, session["id"], auth(users, uuid.uuid4(), "agent"), {"status": "ended"})
    assert response.status == 403  # staff know the chat exists; it is not theirs to end
    assert (await get(http, f"{SESSIONS}/{session['id']}", mine))["status"] == "active"


# ------------------------------------------------------------------ messages


async def test_a_message_sent_over_rest_reaches_the_sockets(
    http: aiohttp.ClientSession, users: Users, cast: Cast, chat_server: ChatServer, department: str
) -> None:
    customer, agent, session = await active_chat(cast, chat_server, department)
    path = f"{SESSIONS}/{session['id']}/messages"
    headers = auth(users, customer.user_id, "customer")
    async with http.post(
        path, json={"message": "Sent from the app", "client_msg_id": "rest-1"}, headers=headers
    ) as response:
        assert response.status == 201, await response.text()
        message = await response.json()
        assert response.headers["Location"]
    assert message["seq"] == 1 and message["sender_type"] == "customer"
    assert await agent.expect("chat:message", for_session(session["id"])) == message
    assert await customer.expect("chat:message", for_session(session["id"])) == message  # the other tabs too
    async with http.post(
        path, json={"message": "Sent from the app", "client_msg_id": "rest-1"}, headers=headers
    ) as response:
        assert response.status == 200
        assert await response.json() == message
    assert (
        await fetchval(
            chat_server.ctx, "SELECT count(*) FROM chat_messages WHERE session_id = $1", uuid.UUID(session["id"])
        )
        == 1
    )
    async with http.post(
        f"{SESSIONS}/{session['session_key']}/messages",
        json={"message": "By key"},
        headers=auth(users, agent.user_id, "agent"),
    ) as response:
        assert response.status == 201
        assert (await response.json())["seq"] == 2


async def test_get_messages_after_seq_with_limit(
    http: aiohttp.ClientSession, users: Users, cast: Cast, chat_server: ChatServer, department: str
) -> None:
    customer, agent, session = await active_chat(cast, chat_server, department)
    for i in range(5):
        await customer.ok(
            "chat:message", {"session_id": session["id"], "client_msg_id": f"g{i}", "message": f"line {i}"}
        )
    path = f"{SESSIONS}/{session['id']}/messages"
    page = await get(http, f"{path}?after_seq=1&limit=3", auth(users, agent.user_id, "agent"))
    assert [m["seq"] for m in page["items"]] == [2, 3, 4]
    assert [m["message"] for m in page["items"]] == ["line 1", "line 2", "line 3"]
    assert page["session"]["last_seq"] == 5
    # The list envelope, paged by cursor: offset is how many come before the page (after_seq).
    assert (page["total"], page["limit"], page["offset"]) == (5, 3, 1)
    page = await get(http, path, auth(users, customer.user_id, "customer"))
    assert [m["seq"] for m in page["items"]] == [1, 2, 3, 4, 5]
    assert (page["total"], page["limit"], page["offset"]) == (5, 100, 0)
    await agent.ok("chat:note", {"session_id": session["id"], "message": "internal, not a message"})
    for who in ((customer.user_id, "customer"), (agent.user_id, "agent")):  # notes count for nobody
        page = await get(http, f"{path}?after_seq=4", auth(users, *who))
        assert ([m["seq"] for m in page["items"]], page["total"], page["offset"]) == ([5], 5, 4)
    page = await get(http, f"{path}?after_seq=9", auth(users, agent.user_id, "agent"))
    assert (page["items"], page["total"], page["offset"]) == ([], 5, 5)
    await get(http, path, auth(users, uuid.uuid4(), "customer"), status=404)
    body = await get(http, f"{path}?limit=0", auth(users, agent.user_id, "agent"), status=422)
    assert "limit" in body["errors"]


# ------------------------------------------------------------------ errors


async def test_errors_are_problem_json(
    http: aiohttp.ClientSession, users: Users, cast: Cast, chat_server: ChatServer, department: str
) -> None:
    customer, agent, session = await active_chat(cast, chat_server, department)
    path = f"{SESSIONS}/{session['id']}/messages"
    async with http.get(SESSIONS) as response:
        await problem(response, 401)
    async with http.post(path, json={"message": ""}, headers=auth(users, customer.user_id, "customer")) as response:
        body = await problem(response, 422)
        assert "message" in body["errors"]
    async with http.post(
        path,
        data=b"{not json",
        headers={**auth(users, customer.user_id, "customer"), "Content-Type": "application/json"},
    ) as response:
        await problem(response, 400)
    async with http.post(path, json={"message": "hi"}, headers=auth(users, uuid.uuid4(), "customer")) as response:
        await problem(response, 404)
    async with http.post(path, json={"message": "hi"}, headers=auth(users, uuid.uuid4(), "agent")) as response:
        await problem(response, 403)  # staff may not write in a chat that is not theirs
    await customer.ok("chat:end", {"session_id": session["id"]})
    async with http.post(path, json={"message": "hi"}, headers=auth(users, customer.user_id, "customer")) as response:
        await problem(response, 409)
    async with http.post(
        f"{SESSIONS}/{new_department()}/messages",
        json={"message": "hi"},
        headers=auth(users, customer.user_id, "customer"),
    ) as response:
        await problem(response, 404)
