"""/api/v1/feedback end to end: giving feedback on tickets and chats, one each, visibility per
role, editing, encryption of comments, sentiment scores, audit and outbox rows."""

from __future__ import annotations

import decimal
import uuid

import pytest

from app.auth import Principal, RequestMeta
from app.services import chat as chat_service
from app.services.feedback import sentiment
from helpers import create_for, execute, fetch, fetchval, problem, set_status

FEEDBACK = "/api/v1/feedback"
POSITIVE = "The agent was wonderful, very helpful and quick. Thank you so much!"
NEGATIVE = "Terrible service. The agent was rude and I am furious and disappointed."


async def resolved_ticket(client, users, *, category: str | None = None) -> dict:
    """A customer's ticket, handled by an agent and resolved: what feedback is given on."""
    customer_id, customer = users.new("customer")
    agent_id, agent = users.new("agent")
    _, supervisor = users.new("supervisor")
    fields = {"agent_id": str(agent_id)}
    if category:
        fields["category"] = category
    ticket = await create_for(client, supervisor, customer_id, **fields)
    response = await set_status(client, agent, ticket["id"], "resolved")
    assert response.status == 200, await response.text()
    return {
        "ticket": ticket,
        "customer_id": customer_id,
        "customer": customer,
        "agent_id": agent_id,
        "agent": agent,
        "supervisor": supervisor,
    }


async def answered_chat(ctx, users, *, department: str = "general") -> dict:
    customer_id, customer = users.new("customer")
    agent_id, agent = users.new("agent")
    session_id = uuid.uuid4()
    await execute(
        ctx,
        "INSERT INTO chat_sessions (id, session_id, customer_id, agent_id, department, status, "
        "assigned_at, ended_at) VALUES ($1, $2, $3, $4, $5, 'ended', now(), now())",
        session_id,
        f"test-{uuid.uuid4().hex}",
        customer_id,
        agent_id,
        department,
    )
    return {
        "session_id": session_id,
        "customer_id": customer_id,
        "customer": customer,
        "agent_id": agent_id,
        "agent": agent,
    }


async def give(client, headers, **body) -> dict:
    response = await client.post(FEEDBACK, json=body, headers=headers)
    assert response.status == 201, await response.text()
    return await response.json()


# ---------------------------------------------------------------- sentiment


def test_sentiment_of_known_sentences():
    assert sentiment(POSITIVE) > decimal.Decimal("0.5")
    assert sentiment(NEGATIVE) < decimal.Decimal("-0.5")
    assert sentiment("The booking was on Tuesday.") == decimal.Decimal("0.00")
    assert sentiment(None) is None and sentiment("   ") is None


def test_sentiment_is_rounded_to_two_places_within_bounds():
    for text in (POSITIVE, NEGATIVE, "good " * 200, "bad " * 200):
        score = sentiment(text)
        assert score == score.quantize(decimal.Decimal("0.01"))
        assert decimal.Decimal(-1) <= score <= decimal.Decimal(1)


# ---------------------------------------------------------------- create


async def test_customer_gives_feedback_on_resolved_ticket(client, users):
    t = await resolved_ticket(client, users, category="billing")
    response = await client.post(
        FEEDBACK, json={"ticket_id": t["ticket"]["id"], "rating": 5, "comment": POSITIVE}, headers=t["customer"]
    )
    assert response.status == 201
    item = await response.json()
    assert response.headers["Location"] == f"{FEEDBACK}/{item['id']}"
    assert item["ticket_id"] == t["ticket"]["id"] and item["session_id"] is None
    assert item["customer_id"] == str(t["customer_id"]) and item["agent_id"] == str(t["agent_id"])
    assert item["rating"] == 5 and item["comment"] == POSITIVE
    assert item["category"] == "billing"
    assert item["sentiment_score"] > 0.5


async def test_category_given_wins_over_the_tickets(client, users):
    t = await resolved_ticket(client, users)
    item = await give(client, t["customer"], ticket_id=t["ticket"]["id"], rating=3, category="speed")
    assert item["category"] == "speed"


async def test_feedback_without_comment_has_no_sentiment(client, users):
    t = await resolved_ticket(client, users)
    item = await give(client, t["customer"], ticket_id=t["ticket"]["id"], rating=4)
    assert item["comment"] is None and item["sentiment_score"] is None


async def test_comment_is_encrypted_at_rest(client, users, ctx):
    t = await resolved_ticket(client, users)
    item = await give(client, t["customer"], ticket_id=t["ticket"]["id"], rating=2, comment=NEGATIVE)
    stored = await fetchval(ctx, "SELECT comment FROM feedback WHERE id = $1", uuid.UUID(item["id"]))
    assert stored.startswith("enc:v1:") and "rude" not in stored
    assert (
        float(await fetchval(ctx, "SELECT sentiment_score FROM feedback WHERE id = $1", uuid.UUID(item["id"]))) < -0.5
    )


async def test_second_feedback_on_a_ticket_is_409(client, users, ctx):
    t = await resolved_ticket(client, users)
    await give(client, t["customer"], ticket_id=t["ticket"]["id"], rating=4)
    await problem(
        await client.post(FEEDBACK, json={"ticket_id": t["ticket"]["id"], "rating": 1}, headers=t["customer"]), 409
    )
    assert await fetchval(ctx, "SELECT count(*) FROM feedback WHERE ticket_id = $1", uuid.UUID(t["ticket"]["id"])) == 1


async def test_feedback_on_an_open_ticket_is_409(client, users):
    customer_id, customer = users.new("customer")
    _, supervisor = users.new("supervisor")
    ticket = await create_for(client, supervisor, customer_id)
    await problem(await client.post(FEEDBACK, json={"ticket_id": ticket["id"], "rating": 4}, headers=customer), 409)


async def test_feedback_on_someone_elses_ticket_is_404(client, users):
    t = await resolved_ticket(client, users)
    _, stranger = users.new("customer")
    await problem(
        await client.post(FEEDBACK, json={"ticket_id": t["ticket"]["id"], "rating": 4}, headers=stranger), 404
    )
    await problem(
        await client.post(FEEDBACK, json={"ticket_id": str(uuid.uuid4()), "rating": 4}, headers=stranger), 404
    )


@pytest.mark.parametrize("role", ["agent", "supervisor", "admin", "service"])
async def test_only_customers_give_feedback(client, users, role):
    t = await resolved_ticket(client, users)
    _, headers = users.new(role)
    await problem(await client.post(FEEDBACK, json={"ticket_id": t["ticket"]["id"], "rating": 4}, headers=headers), 403)


async def test_feedback_needs_a_token(client):
    await problem(await client.post(FEEDBACK, json={"ticket_id": str(uuid.uuid4()), "rating": 4}), 401)
    await problem(await client.get(FEEDBACK), 401)
    await problem(await client.get(f"{FEEDBACK}/{uuid.uuid4()}"), 401)
    await problem(await client.put(f"{FEEDBACK}/{uuid.uuid4()}", json={"rating": 3}), 401)
    await problem(await client.get(f"{FEEDBACK}/analytics"), 401)


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"rating": 4}, {"ticket_id", "session_id"}),
        ({"ticket_id": "TICKET", "rating": 4}, {"ticket_id"}),
        ({"rating": 0}, {"rating"}),
        ({"rating": 6}, {"rating"}),
        ({"rating": "5"}, {"rating"}),
        ({"rating": 4.5}, {"rating"}),
        ({}, {"rating"}),
        ({"rating": 4, "comment": "x" * 5001}, {"comment"}),
        ({"rating": 4, "category": ""}, {"category"}),
        ({"rating": 4, "sentiment_score": 1}, {"sentiment_score"}),
        ({"rating": 4, "comment": "a\x00b"}, {"comment"}),
    ],
)
async def test_invalid_feedback_is_422(client, users, body, fields):
    _, customer = users.new("customer")
    if "ticket_id" not in body and fields != {"ticket_id", "session_id"}:
        body = {"ticket_id": str(uuid.uuid4()), **body}
    response = await problem(await client.post(FEEDBACK, json=body, headers=customer), 422)
    assert fields <= set(response["errors"]), response["errors"]


async def test_both_ticket_and_session_is_422(client, users):
    _, customer = users.new("customer")
    body = await problem(
        await client.post(
            FEEDBACK,
            json={"ticket_id": str(uuid.uuid4()), "session_id": str(uuid.uuid4()), "rating": 4},
            headers=customer,
        ),
        422,
    )
    assert "ticket_id" in body["errors"]


# ---------------------------------------------------------------- chat sessions


async def test_customer_gives_feedback_on_an_answered_chat(client, users, ctx):
    c = await answered_chat(ctx, users, department="bookings")
    item = await give(client, c["customer"], session_id=str(c["session_id"]), rating=4, comment=POSITIVE)
    assert item["session_id"] == str(c["session_id"]) and item["ticket_id"] is None
    assert item["agent_id"] == str(c["agent_id"]) and item["category"] == "bookings"
    assert item["department"] == "bookings" and item["sentiment_score"] > 0.5
    assert await fetchval(ctx, "SELECT satisfaction_rating FROM chat_sessions WHERE id = $1", c["session_id"]) == 4
    await problem(
        await client.post(FEEDBACK, json={"session_id": str(c["session_id"]), "rating": 1}, headers=c["customer"]), 409
    )


async def test_unanswered_chat_cannot_be_rated(client, users, ctx):
    customer_id, customer = users.new("customer")
    session_id = uuid.uuid4()
    await execute(
        ctx,
        "INSERT INTO chat_sessions (id, session_id, customer_id, status, ended_at) "
        "VALUES ($1, $2, $3, 'abandoned', now())",
        session_id,
        f"test-{uuid.uuid4().hex}",
        customer_id,
    )
    await problem(await client.post(FEEDBACK, json={"session_id": str(session_id), "rating": 1}, headers=customer), 409)


async def test_chat_rating_scores_sentiment_too(ctx, users):
    c = await answered_chat(ctx, users)
    principal = Principal(c["customer_id"], "customer")
    result = await chat_service.rate_chat(ctx, principal, RequestMeta(), c["session_id"], 5, POSITIVE)
    score = await fetchval(ctx, "SELECT sentiment_score FROM feedback WHERE id = $1", result["feedback_id"])
    assert score > decimal.Decimal("0.5")
    assert await fetchval(ctx, "SELECT department FROM feedback WHERE id = $1", result["feedback_id"]) == "general"


async def test_feedback_names_its_chat_session_session_id(client, users, ctx):
    """API.md: ``session_id`` is a session's UUID everywhere (bodies, responses, filters, events);
    the column stays ``chat_session_id``."""
    c = await answered_chat(ctx, users)
    old_name = await problem(
        await client.post(FEEDBACK, json={"chat_session_id": str(c["session_id"]), "rating": 4}, headers=c["customer"]),
        422,
    )
    assert "chat_session_id" in old_name["errors"]
    item = await give(client, c["customer"], session_id=str(c["session_id"]), rating=4)
    assert "chat_session_id" not in item
    _, supervisor = users.new("supervisor")
    listed = await (await client.get(FEEDBACK, params={"session_id": str(c["session_id"])}, headers=supervisor)).json()
    assert [i["id"] for i in listed["items"]] == [item["id"]] and listed["items"][0]["session_id"] == item["session_id"]
    await problem(await client.get(FEEDBACK, params={"chat_session_id": str(c["session_id"])}, headers=supervisor), 422)
    event = await fetchval(
        ctx, "SELECT payload FROM support_events WHERE entity_id = $1 AND type = 'feedback.created'", item["id"]
    )
    assert event["session_id"] == item["session_id"] and "chat_session_id" not in event
    audited = await fetchval(ctx, "SELECT changes FROM audit_log WHERE entity_id = $1", item["id"])
    assert audited["session_id"] == item["session_id"] and "chat_session_id" not in audited
    other = await answered_chat(ctx, users)  # rated over the socket path
    rated = await chat_service.rate_chat(
        ctx, Principal(other["customer_id"], "customer"), RequestMeta(), other["session_id"], 5, None
    )
    event = await fetchval(
        ctx,
        "SELECT payload FROM support_events WHERE entity_id = $1 AND type = 'feedback.created'",
        str(rated["feedback_id"]),
    )
    assert event["session_id"] == str(other["session_id"]) and "chat_session_id" not in event


# ---------------------------------------------------------------- read and list


async def test_visibility_of_feedback_per_role(client, users):
    t = await resolved_ticket(client, users)
    item = await give(client, t["customer"], ticket_id=t["ticket"]["id"], rating=5)
    url = f"{FEEDBACK}/{item['id']}"
    assert (await client.get(url, headers=t["customer"])).status == 200
    assert (await client.get(url, headers=t["agent"])).status == 200
    assert (await client.get(url, headers=t["supervisor"])).status == 200
    _, admin = users.new("admin")
    assert (await client.get(url, headers=admin)).status == 200
    _, stranger = users.new("customer")
    _, other_agent = users.new("agent")
    await problem(await client.get(url, headers=stranger), 404)
    await problem(await client.get(url, headers=other_agent), 404)
    await problem(await client.get(f"{FEEDBACK}/{uuid.uuid4()}", headers=admin), 404)
    await problem(await client.get(f"{FEEDBACK}/nope", headers=admin), 404)


async def test_lists_are_scoped_to_what_the_caller_may_see(client, users, ctx):
    t = await resolved_ticket(client, users)
    mine = await give(client, t["customer"], ticket_id=t["ticket"]["id"], rating=5)
    c = await answered_chat(ctx, users)
    theirs = await give(client, c["customer"], session_id=str(c["session_id"]), rating=2)
    seen = await (await client.get(FEEDBACK, headers=t["customer"])).json()
    assert [i["id"] for i in seen["items"]] == [mine["id"]] and seen["total"] == 1
    by_agent = await (await client.get(FEEDBACK, headers=t["agent"])).json()
    assert [i["id"] for i in by_agent["items"]] == [mine["id"]]
    _, supervisor = users.new("supervisor")
    both = await (await client.get(FEEDBACK, params={"customer_id": str(c["customer_id"])}, headers=supervisor)).json()
    assert [i["id"] for i in both["items"]] == [theirs["id"]]
    # A customer's filter cannot widen their scope.
    widened = await (
        await client.get(FEEDBACK, params={"customer_id": str(c["customer_id"])}, headers=t["customer"])
    ).json()
    assert widened["items"] == []


async def test_list_filters_sort_and_validation(client, users):
    category = f"cat-{uuid.uuid4().hex[:8]}"
    given = []
    for rating in (1, 4, 5):
        t = await resolved_ticket(client, users)
        given.append(await give(client, t["customer"], ticket_id=t["ticket"]["id"], rating=rating, category=category))
    _, supervisor = users.new("supervisor")
    page = await (
        await client.get(
            FEEDBACK, params={"category": category, "rating": "4,5", "sort": "-rating"}, headers=supervisor
        )
    ).json()
    assert [i["rating"] for i in page["items"]] == [5, 4] and page["total"] == 2
    for params in ({"rating": "7"}, {"sort": "comment"}, {"agent_id": "x"}, {"created_after": "yesterday"}):
        await problem(await client.get(FEEDBACK, params=params, headers=supervisor), 422)


# ---------------------------------------------------------------- update


async def test_customer_edits_own_feedback_and_sentiment_follows(client, users):
    t = await resolved_ticket(client, users)
    item = await give(client, t["customer"], ticket_id=t["ticket"]["id"], rating=5, comment=POSITIVE)
    response = await client.put(
        f"{FEEDBACK}/{item['id']}", json={"rating": 1, "comment": NEGATIVE}, headers=t["customer"]
    )
    assert response.status == 200
    updated = await response.json()
    assert updated["rating"] == 1 and updated["comment"] == NEGATIVE and updated["sentiment_score"] < -0.5
    kept = await (
        await client.put(f"{FEEDBACK}/{item['id']}", json={"category": "speed"}, headers=t["customer"])
    ).json()
    assert kept["comment"] == NEGATIVE and kept["rating"] == 1 and kept["category"] == "speed"
    cleared = await (await client.put(f"{FEEDBACK}/{item['id']}", json={"comment": None}, headers=t["customer"])).json()
    assert cleared["comment"] is None and cleared["sentiment_score"] is None


async def test_others_cannot_edit_feedback(client, users):
    t = await resolved_ticket(client, users)
    item = await give(client, t["customer"], ticket_id=t["ticket"]["id"], rating=5)
    url = f"{FEEDBACK}/{item['id']}"
    await problem(await client.put(url, json={"rating": 1}, headers=t["agent"]), 403)
    await problem(await client.put(url, json={"rating": 1}, headers=t["supervisor"]), 403)
    _, stranger = users.new("customer")
    await problem(await client.put(url, json={"rating": 1}, headers=stranger), 404)
    assert (await (await client.get(url, headers=t["customer"])).json())["rating"] == 5


async def test_update_validation(client, users):
    t = await resolved_ticket(client, users)
    item = await give(client, t["customer"], ticket_id=t["ticket"]["id"], rating=5)
    body = await problem(
        await client.put(f"{FEEDBACK}/{item['id']}", json={"rating": 9, "ticket_id": "x"}, headers=t["customer"]), 422
    )
    assert {"rating", "ticket_id"} <= set(body["errors"])


# ---------------------------------------------------------------- audit and outbox


async def test_feedback_writes_are_audited_with_their_events(client, users, ctx):
    t = await resolved_ticket(client, users)
    item = await give(client, t["customer"], ticket_id=t["ticket"]["id"], rating=3, comment=NEGATIVE)
    await client.put(f"{FEEDBACK}/{item['id']}", json={"rating": 4, "comment": POSITIVE}, headers=t["customer"])
    audit = await fetch(
        ctx,
        "SELECT action, actor_id, actor_role FROM audit_log WHERE entity = 'feedback' AND entity_id = $1 ORDER BY id",
        item["id"],
    )
    assert [(r["action"], r["actor_id"], r["actor_role"]) for r in audit] == [
        ("feedback.create", t["customer_id"], "customer"),
        ("feedback.update", t["customer_id"], "customer"),
    ]
    events = await fetch(
        ctx,
        "SELECT type, payload FROM support_events WHERE entity_type = 'feedback' AND entity_id = $1 ORDER BY position",
        item["id"],
    )
    assert [e["type"] for e in events] == ["feedback.created", "feedback.updated"]
    assert events[0]["payload"]["rating"] == 3 and events[0]["payload"]["ticket_id"] == item["ticket_id"]
    assert events[1]["payload"]["changes"]["comment"] == {"changed": True}
    assert "rude" not in str([e["payload"] for e in events]) and "wonderful" not in str(audit)
