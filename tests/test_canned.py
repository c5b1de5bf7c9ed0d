"""/api/v1/canned-responses: CRUD, unique shortcuts (409), filters, RBAC (staff read, supervisors
and admins write), validation (422), audit rows and events."""

from __future__ import annotations

import uuid

import pytest
from helpers import fetch, problem

CANNED = "/api/v1/canned-responses"


def canned_body(**fields) -> dict:
    body = {"shortcut": f"/c-{uuid.uuid4().hex[:10]}", "title": "Refund steps", "body": "Here is how refunds work."}
    body.update(fields)
    return body


async def test_supervisor_crud_with_audit_and_events(client, ctx, users):
    supervisor_id, supervisor = users.new("supervisor")
    department = f"dept-{uuid.uuid4().hex[:8]}"
    r = await client.post(CANNED, json=canned_body(department=department), headers=supervisor)
    assert r.status == 201, await r.text()
    item = await r.json()
    assert r.headers["Location"] == f"{CANNED}/{item['id']}"
    assert item["department"] == department and item["created_by"] == str(supervisor_id)
    r = await client.get(f"{CANNED}/{item['id']}", headers=supervisor)
    assert r.status == 200 and (await r.json())["shortcut"] == item["shortcut"]
    r = await client.put(f"{CANNED}/{item['id']}", json={"title": "Refunds"}, headers=supervisor)
    assert r.status == 200, await r.text()
    updated = await r.json()
    assert updated["title"] == "Refunds" and updated["body"] == item["body"]
    r = await client.delete(f"{CANNED}/{item['id']}", headers=supervisor)
    assert r.status == 204
    await problem(await client.get(f"{CANNED}/{item['id']}", headers=supervisor), 404)
    await problem(await client.delete(f"{CANNED}/{item['id']}", headers=supervisor), 404)
    actions = [
        r["action"]
        for r in await fetch(ctx, "SELECT action FROM audit_log WHERE entity_id = $1 ORDER BY id", str(item["id"]))
    ]
    assert actions == ["canned_response.create", "canned_response.update", "canned_response.delete"]
    events = [
        r["type"]
        for r in await fetch(
            ctx, "SELECT type FROM support_events WHERE entity_id = $1 ORDER BY position", str(item["id"])
        )
    ]
    assert events == ["canned_response.created", "canned_response.updated", "canned_response.deleted"]


async def test_shortcut_is_unique(client, users):
    _, admin = users.new("admin")
    first = canned_body()
    assert (await client.post(CANNED, json=first, headers=admin)).status == 201
    await problem(await client.post(CANNED, json=canned_body(shortcut=first["shortcut"]), headers=admin), 409)
    other = await (await client.post(CANNED, json=canned_body(), headers=admin)).json()
    await problem(await client.put(f"{CANNED}/{other['id']}", json={"shortcut": first["shortcut"]}, headers=admin), 409)


async def test_list_filters_by_department_and_text(client, users):
    _, admin = users.new("admin")
    _, agent = users.new("agent")
    department, other_department = f"dept-{uuid.uuid4().hex[:8]}", f"dept-{uuid.uuid4().hex[:8]}"
    word = f"w{uuid.uuid4().hex[:10]}"
    mine = await (
        await client.post(CANNED, json=canned_body(department=department, body=f"About {word}"), headers=admin)
    ).json()
    shared = await (await client.post(CANNED, json=canned_body(title=f"Shared {word}"), headers=admin)).json()
    await client.post(CANNED, json=canned_body(department=other_department, title=word), headers=admin)
    r = await client.get(CANNED, params={"department": department, "q": word}, headers=agent)
    assert r.status == 200, await r.text()
    page = await r.json()
    assert {i["id"] for i in page["items"]} == {mine["id"], shared["id"]} and page["total"] == 2
    page = await (await client.get(CANNED, params={"q": word, "limit": 1, "offset": 5}, headers=agent)).json()
    assert page["items"] == [] and page["total"] == 3
    await problem(await client.get(CANNED, params={"dept": department}, headers=agent), 422)


@pytest.mark.parametrize("role", ["customer", "agent", "service"])
async def test_only_supervisors_and_admins_write(client, users, role):
    _, headers = users.new(role)
    _, admin = users.new("admin")
    item = await (await client.post(CANNED, json=canned_body(), headers=admin)).json()
    await problem(await client.post(CANNED, json=canned_body(), headers=headers), 403)
    await problem(await client.put(f"{CANNED}/{item['id']}", json={"title": "x"}, headers=headers), 403)
    await problem(await client.delete(f"{CANNED}/{item['id']}", headers=headers), 403)


async def test_customers_cannot_read_and_tokens_are_required(client, users):
    _, customer = users.new("customer")
    _, agent = users.new("agent")
    await problem(await client.get(CANNED, headers=customer), 403)
    await problem(await client.get(CANNED), 401)
    assert (await client.get(CANNED, headers=agent)).status == 200


@pytest.mark.parametrize(
    "field,value",
    [("shortcut", ""), ("shortcut", "has space"), ("title", ""), ("body", None), ("colour", "red"), ("department", "")],
)
async def test_invalid_bodies_are_422(client, users, field, value):
    _, admin = users.new("admin")
    await problem(await client.post(CANNED, json=canned_body(**{field: value}), headers=admin), 422)
