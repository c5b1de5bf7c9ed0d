"""Each SupportService operation over REST and over gRPC, compared: the same service functions
must give the same results (and the same failures, through the one TRANSPORT_CODES table)."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
import pytest
from google.protobuf.message import Message

from app.errors import TRANSPORT_CODES
from grpc_helpers import violations
from grpc_server.convert import to_dict
from support_stubs.support.v1 import common_pb2 as common
from support_stubs.support.v1 import support_pb2 as pb

pytest_plugins = ["grpc_fixtures"]
_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)$")
# Fields that differ between two resources made by the same request (identity and clock).
VOLATILE = {
    "id",
    "ticket_number",
    "session_key",
    "created_at",
    "updated_at",
    "started_at",
    "first_response_due_at",
    "resolution_due_at",
    "assigned_at",
    "escalated_at",
    "customer_id",
    "session_id",
    "ticket_id",
    "queue_position",
    "published_at",
    "sentiment_score",
}


def normal(value: Any) -> Any:
    """REST JSON and gRPC dicts on common ground: times as UTC datetimes, numbers as floats."""
    if isinstance(value, dict):
        return {k: normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normal(v) for v in value]
    if isinstance(value, str) and _ISO.match(value):
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(dt.timezone.utc)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


def same(rest: dict, reply: Message | dict, *, ignore: set[str] = frozenset()) -> None:
    """Every field of the REST JSON is in the gRPC reply with the same value (``ignore``d
    fields only need to be present)."""
    grpc_side = to_dict(reply) if isinstance(reply, Message) else reply
    missing = set(rest) - set(grpc_side)
    assert not missing, f"gRPC lacks {sorted(missing)}"
    for key, value in rest.items():
        if key in ignore:
            continue
        left, right = normal(value), normal(grpc_side[key])
        if isinstance(left, dict) and isinstance(right, dict) and not _plain_map(left):
            same(value, grpc_side[key], ignore=ignore)
        elif isinstance(left, list) and left and isinstance(left[0], dict):
            assert len(left) == len(right), key
            for one, other in zip(value, grpc_side[key], strict=True):
                same(one, other, ignore=ignore)
        else:
            assert left == right, (key, left, right)


def _plain_map(data: dict) -> bool:
    return all(not isinstance(v, (dict, list)) for v in data.values())


class Rest:
    def __init__(self, base: str, session: aiohttp.ClientSession):
        self.base = base
        self.session = session

    async def call(
        self, method: str, path: str, md: tuple, *, json: Any = None, params: Any = None, status: int = 200
    ) -> Any:
        headers = {"Authorization": dict(md)["authorization"]} if md else {}
        async with self.session.request(
            method, f"{self.base}{path}", json=json, params=params, headers=headers
        ) as response:
            body = await response.json(content_type=None) if response.status != 204 else None
            assert response.status == status, (response.status, body)
            return body


@pytest.fixture(scope="module")
async def rest(replica) -> AsyncIterator[Rest]:
    async with aiohttp.ClientSession() as session:
        yield Rest(replica.http, session)


@pytest.fixture
def roles(callers):
    class Roles:
        service = callers.new("service")[1]
        supervisor = callers.new("supervisor")[1]
        agent = callers.new("agent")[1]
        customer_id, customer = callers.new("customer", email="pat@example.com", name="Pat")

    return Roles


TICKET = {
    "subject": "Room not ready",
    "description": "We waited two hours.",
    "category": "billing",
    "tags": ["vip", "late"],
    "metadata": {"booking": "B-9", "guests": 2},
}


def ticket_proto(**extra: Any) -> pb.CreateTicketRequest:
    return pb.CreateTicketRequest(
        subject=TICKET["subject"],
        description=TICKET["description"],
        category=TICKET["category"],
        tags=TICKET["tags"],
        metadata=TICKET["metadata"],
        **extra,
    )


def customer_ticket() -> pb.CreateTicketRequest:
    return pb.CreateTicketRequest(subject=TICKET["subject"], description=TICKET["description"], category="billing")


# ---------------------------------------------------------------- tickets


async def test_ticket_operations_match(rest, stubs, roles):
    who = str(roles.customer_id)
    by_rest = await rest.call("POST", "/api/v1/tickets", roles.service, json={**TICKET, "customer_id": who}, status=201)
    by_grpc = await stubs.support.CreateTicket(ticket_proto(customer_id=who), metadata=roles.service)
    same(by_rest, by_grpc.ticket, ignore=VOLATILE)  # CreateTicket
    same(
        await rest.call("GET", f"/api/v1/tickets/{by_grpc.ticket.id}", roles.customer),
        (await stubs.support.GetTicket(pb.GetTicketRequest(id=by_grpc.ticket.id), metadata=roles.customer)).ticket,
    )

    agent_id = str(uuid.uuid4())
    change = {"priority": "urgent", "tags": ["refund"], "agent_id": agent_id, "status": "in_progress"}
    updated_rest = await rest.call("PUT", f"/api/v1/tickets/{by_rest['id']}", roles.supervisor, json=change)
    updated_grpc = await stubs.support.UpdateTicket(
        pb.UpdateTicketRequest(
            id=by_grpc.ticket.id,
            priority=common.TICKET_PRIORITY_URGENT,
            tags=common.StringList(values=["refund"]),
            agent_id=agent_id,
            status=common.TICKET_STATUS_IN_PROGRESS,
        ),
        metadata=roles.supervisor,
    )
    same(updated_rest, updated_grpc.ticket, ignore=VOLATILE)  # UpdateTicket
    unassigned_rest = await rest.call(
        "PUT", f"/api/v1/tickets/{by_rest['id']}", roles.supervisor, json={"agent_id": None}
    )
    unassigned_grpc = await stubs.support.UpdateTicket(
        pb.UpdateTicketRequest(id=by_grpc.ticket.id, agent_id=""), metadata=roles.supervisor
    )
    same(unassigned_rest, unassigned_grpc.ticket, ignore=VOLATILE)

    escalated_rest = await rest.call(
        "POST", f"/api/v1/tickets/{by_rest['id']}/escalate", roles.supervisor, json={"reason": "angry"}
    )
    escalated_grpc = await stubs.support.EscalateTicket(
        pb.EscalateTicketRequest(id=by_grpc.ticket.id, reason="angry"), metadata=roles.supervisor
    )
    same(escalated_rest["ticket"], escalated_grpc.ticket, ignore=VOLATILE)  # EscalateTicket
    same(escalated_rest["escalation"], escalated_grpc.escalation, ignore=VOLATILE)

    query = {"priority": "urgent", "limit": "5", "sort": "created_at"}
    listed_rest = await rest.call("GET", "/api/v1/tickets", roles.customer, params=query)
    listed_grpc = await stubs.support.ListTickets(
        pb.ListTicketsRequest(priority=[common.TICKET_PRIORITY_URGENT], limit=5, sort="created_at"),
        metadata=roles.customer,
    )
    assert listed_rest["total"] == 2
    same(listed_rest, listed_grpc)  # ListTickets

    await rest.call("DELETE", f"/api/v1/tickets/{by_rest['id']}", roles.supervisor, status=204)
    deleted = await stubs.support.DeleteTicket(pb.DeleteTicketRequest(id=by_grpc.ticket.id), metadata=roles.supervisor)
    assert deleted.deleted  # DeleteTicket
    await rest.call("GET", f"/api/v1/tickets/{by_rest['id']}", roles.supervisor, status=404)
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await stubs.support.GetTicket(pb.GetTicketRequest(id=by_grpc.ticket.id), metadata=roles.supervisor)
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND


# ---------------------------------------------------------------- chat


async def test_chat_operations_match(rest, stubs, callers):
    _, first = callers.new("customer")
    _, second = callers.new("customer")
    body = {"department": "general", "subject": "Parking", "metadata": {"spot": 7}}
    started_rest = await rest.call("POST", "/api/v1/chat/sessions", first, json=body, status=201)
    started_grpc = await stubs.support.CreateChatSession(
        pb.CreateChatSessionRequest(department="general", subject="Parking", metadata={"spot": 7}), metadata=second
    )
    same(started_rest, started_grpc.session, ignore=VOLATILE)  # CreateChatSession
    session_id = started_grpc.session.id
    same(
        await rest.call("GET", f"/api/v1/chat/sessions/{session_id}", second),
        (await stubs.support.GetChatSession(pb.GetChatSessionRequest(id=session_id), metadata=second)).session,
    )

    sent_rest = await rest.call(
        "POST",
        f"/api/v1/chat/sessions/{started_rest['id']}/messages",
        first,
        json={"message": "Where do I park?", "client_msg_id": "p-1"},
        status=201,
    )
    sent_grpc = await stubs.support.SendMessage(
        pb.SendMessageRequest(session_id=session_id, message="Where do I park?", client_msg_id="p-1"), metadata=second
    )
    same(sent_rest, sent_grpc.message, ignore=VOLATILE | {"sender_id"})  # SendMessage
    resent_rest = await rest.call(
        "POST",
        f"/api/v1/chat/sessions/{started_rest['id']}/messages",
        first,
        json={"message": "Where do I park?", "client_msg_id": "p-1"},
        status=200,
    )
    resent_grpc = await stubs.support.SendMessage(
        pb.SendMessageRequest(session_id=session_id, message="Where do I park?", client_msg_id="p-1"), metadata=second
    )
    assert (
        resent_rest["id"] == sent_rest["id"]
        and resent_grpc.duplicate
        and resent_grpc.message.id == sent_grpc.message.id
    )

    same(
        await rest.call("GET", f"/api/v1/chat/sessions/{session_id}/messages", second, params={"after_seq": "0"}),
        await stubs.support.GetMessages(pb.GetMessagesRequest(session_id=session_id), metadata=second),
    )  # GetMessages


# ---------------------------------------------------------------- knowledge base


async def test_article_operations_match(rest, stubs, roles):
    word = f"okapi{uuid.uuid4().hex[:6]}"
    body = {
        "title": f"Pets and {word}",
        "content": "Small pets are **welcome**.",
        "category": "policies",
        "tags": ["pets"],
        "is_published": True,
    }
    created_rest = await rest.call("POST", "/api/v1/kb/articles", roles.agent, json=body, status=201)
    created_grpc = await stubs.support.CreateArticle(
        pb.CreateArticleRequest(
            title=body["title"], content=body["content"], category="policies", tags=["pets"], is_published=True
        ),
        metadata=roles.agent,
    )
    same(created_rest, created_grpc.article, ignore=VOLATILE | {"author_id"})  # CreateArticle
    updated_rest = await rest.call(
        "PUT",
        f"/api/v1/kb/articles/{created_rest['id']}",
        roles.agent,
        json={"is_published": False, "tags": ["pets", "dogs"]},
    )
    updated_grpc = await stubs.support.UpdateArticle(
        pb.UpdateArticleRequest(
            id=created_grpc.article.id, is_published=False, tags=common.StringList(values=["pets", "dogs"])
        ),
        metadata=roles.agent,
    )
    same(updated_rest, updated_grpc.article, ignore=VOLATILE | {"author_id"})  # UpdateArticle
    same(
        await rest.call("GET", f"/api/v1/kb/articles/{created_grpc.article.id}", roles.agent),  # GetArticle
        (
            await stubs.support.GetArticle(pb.GetArticleRequest(id=created_grpc.article.id), metadata=roles.agent)
        ).article,
    )
    await stubs.support.UpdateArticle(
        pb.UpdateArticleRequest(id=created_grpc.article.id, is_published=True), metadata=roles.agent
    )
    same(
        await rest.call("GET", "/api/v1/kb/search", roles.customer, params={"q": word}),  # SearchArticles
        await stubs.support.SearchArticles(pb.SearchArticlesRequest(q=word), metadata=roles.customer),
    )
    await rest.call("DELETE", f"/api/v1/kb/articles/{created_rest['id']}", roles.agent, status=204)
    assert (
        await stubs.support.DeleteArticle(pb.DeleteArticleRequest(id=created_grpc.article.id), metadata=roles.agent)
    ).deleted  # DeleteArticle
    await rest.call("GET", f"/api/v1/kb/articles/{created_grpc.article.id}", roles.agent, status=404)


# ---------------------------------------------------------------- feedback and analytics


async def test_feedback_and_analytics_operations_match(rest, stubs, roles):
    tickets = []
    for _ in range(2):
        made = await stubs.support.CreateTicket(customer_ticket(), metadata=roles.customer)
        await stubs.support.UpdateTicket(
            pb.UpdateTicketRequest(id=made.ticket.id, status=common.TICKET_STATUS_RESOLVED), metadata=roles.supervisor
        )
        tickets.append(made.ticket.id)
    comment = "The staff were lovely and helpful."
    given_rest = await rest.call(
        "POST",
        "/api/v1/feedback",
        roles.customer,
        json={"ticket_id": tickets[0], "rating": 4, "comment": comment},
        status=201,
    )
    given_grpc = await stubs.support.CreateFeedback(
        pb.CreateFeedbackRequest(ticket_id=tickets[1], rating=4, comment=comment), metadata=roles.customer
    )
    same(given_rest, given_grpc.feedback, ignore=VOLATILE)  # CreateFeedback
    assert given_rest["sentiment_score"] == pytest.approx(given_grpc.feedback.sentiment_score)
    same(
        await rest.call("GET", f"/api/v1/feedback/{given_grpc.feedback.id}", roles.customer),  # GetFeedback
        (
            await stubs.support.GetFeedback(pb.GetFeedbackRequest(id=given_grpc.feedback.id), metadata=roles.customer)
        ).feedback,
    )

    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    since, until = now - dt.timedelta(days=2), now + dt.timedelta(hours=1)
    window = {"from": since.isoformat(), "to": until.isoformat(), "granularity": "day"}
    same(
        await rest.call("GET", "/api/v1/feedback/analytics", roles.supervisor, params=window),  # GetFeedbackAnalytics
        await stubs.support.GetFeedbackAnalytics(
            pb.GetFeedbackAnalyticsRequest(**{"from": since, "to": until}, granularity=pb.GRANULARITY_DAY),
            metadata=roles.supervisor,
        ),
    )
    for path, report, field in (
        ("tickets", pb.ANALYTICS_REPORT_TICKETS, "tickets"),
        ("chat", pb.ANALYTICS_REPORT_CHAT, "chat"),
        ("response-time", pb.ANALYTICS_REPORT_RESPONSE_TIME, "response_time"),
        ("satisfaction", pb.ANALYTICS_REPORT_SATISFACTION, "satisfaction"),
    ):
        by_rest = await rest.call("GET", f"/api/v1/analytics/{path}", roles.supervisor, params=window)
        reply = await stubs.support.GetSupportAnalytics(
            pb.GetSupportAnalyticsRequest(
                report=report, **{"from": since, "to": until}, granularity=pb.GRANULARITY_DAY
            ),
            metadata=roles.supervisor,
        )
        echo = {
            k: v
            for k, v in to_dict(reply).items()
            if k in ("from", "to", "granularity", "tz", "department", "agent_id")
        }
        figures = {**to_dict(getattr(reply, field)), **echo}
        same(by_rest, figures)  # GetSupportAnalytics


# ---------------------------------------------------------------- failures


async def test_failures_map_through_the_one_table(rest, stubs, roles, callers):
    _, stranger = callers.new("customer")
    mine = await stubs.support.CreateTicket(customer_ticket(), metadata=roles.customer)
    await stubs.support.UpdateTicket(
        pb.UpdateTicketRequest(id=mine.ticket.id, status=common.TICKET_STATUS_CLOSED), metadata=roles.supervisor
    )
    cases = [
        (
            "GET",
            f"/api/v1/tickets/{mine.ticket.id}",
            stranger,
            None,
            stubs.support.GetTicket,
            pb.GetTicketRequest(id=mine.ticket.id),
            "not_found",
        ),
        (
            "POST",
            "/api/v1/tickets",
            roles.customer,
            {"description": "no subject"},
            stubs.support.CreateTicket,
            pb.CreateTicketRequest(description="no subject"),
            "validation_failed",
        ),
        (
            "POST",
            f"/api/v1/tickets/{mine.ticket.id}/escalate",
            roles.customer,
            {},
            stubs.support.EscalateTicket,
            pb.EscalateTicketRequest(id=mine.ticket.id),
            "forbidden",
        ),
        (
            "PUT",
            f"/api/v1/tickets/{mine.ticket.id}",
            roles.supervisor,
            {"status": "pending"},
            stubs.support.UpdateTicket,
            pb.UpdateTicketRequest(id=mine.ticket.id, status=common.TICKET_STATUS_PENDING),
            "invalid_state",
        ),
        (
            "GET",
            f"/api/v1/tickets/{mine.ticket.id}",
            (),
            None,
            stubs.support.GetTicket,
            pb.GetTicketRequest(id=mine.ticket.id),
            "unauthorized",
        ),
    ]
    for method, path, md, body, rpc, request, code in cases:
        http_status, grpc_name = TRANSPORT_CODES[code]
        problem = await rest.call(method, path, md, json=body, status=http_status)
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await rpc(request, metadata=md or None)
        assert failed.value.code().name == grpc_name, (code, failed.value.code())
        assert failed.value.details() == problem["detail"]
        if code == "validation_failed":
            assert set(violations(failed.value)) == set(problem["errors"])
    resolved = await stubs.support.CreateTicket(customer_ticket(), metadata=roles.customer)
    await stubs.support.UpdateTicket(
        pb.UpdateTicketRequest(id=resolved.ticket.id, status=common.TICKET_STATUS_RESOLVED), metadata=roles.supervisor
    )
    await rest.call(
        "POST", "/api/v1/feedback", roles.customer, json={"ticket_id": resolved.ticket.id, "rating": 5}, status=201
    )
    problem = await rest.call(
        "POST",
        "/api/v1/feedback",
        roles.customer,
        json={"ticket_id": resolved.ticket.id, "rating": 5},
        status=TRANSPORT_CODES["conflict"][0],
    )
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await stubs.support.CreateFeedback(
            pb.CreateFeedbackRequest(ticket_id=resolved.ticket.id, rating=5), metadata=roles.customer
        )
    assert failed.value.code().name == TRANSPORT_CODES["conflict"][1] and failed.value.details() == problem["detail"]
