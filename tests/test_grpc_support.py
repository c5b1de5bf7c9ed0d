"""SupportService over a real grpc.aio channel: every RPC's success and each error status, and the
interceptors (auth, rate limit, errors with rich details, metrics, request ids)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from prometheus_client import generate_latest

from app.auth import issue_token
from app.context import AppContext
from grpc_server.convert import to_dict
from support_stubs.support.v1 import common_pb2 as common
from support_stubs.support.v1 import support_pb2 as pb
from support_stubs.support.v1 import support_pb2_grpc
from grpc_server.interceptors import INTERNAL_MESSAGE
from grpc_server.server import GrpcServer
from grpc_helpers import details_of, fails, violations
from helpers import execute

pytest_plugins = ["grpc_fixtures"]
Code = grpc.StatusCode


def ticket_request(**fields: Any) -> pb.CreateTicketRequest:
    values = {"subject": f"Help {uuid.uuid4().hex[:8]}", "description": "The booking page fails."}
    values.update(fields)
    return pb.CreateTicketRequest(**values)


@pytest.fixture
def customer(callers):
    return callers.new("customer", email="cora@example.com", name="Cora")


@pytest.fixture
def supervisor(callers):
    return callers.new("supervisor")


@pytest.fixture
def service(callers):
    return callers.new("service")


# ---------------------------------------------------------------- authentication


async def test_a_call_without_a_token_is_unauthenticated(stubs):
    await fails(stubs.support.GetTicket(pb.GetTicketRequest(id=str(uuid.uuid4()))), Code.UNAUTHENTICATED)


async def test_an_invalid_or_expired_token_is_unauthenticated(stubs, settings):
    bad = (("authorization", "Bearer not-a-jwt"),)
    await fails(stubs.support.GetTicket(pb.GetTicketRequest(id=str(uuid.uuid4())), metadata=bad), Code.UNAUTHENTICATED)
    expired = issue_token(settings.jwt_secret, uuid.uuid4(), "customer", ttl=-10)
    error = await fails(
        stubs.support.GetTicket(
            pb.GetTicketRequest(id=str(uuid.uuid4())), metadata=(("authorization", f"Bearer {expired}"),)
        ),
        Code.UNAUTHENTICATED,
    )
    assert "expired" in error.details()


async def test_an_unknown_role_is_permission_denied(stubs, settings):
    token = issue_token(settings.jwt_secret, uuid.uuid4(), "janitor")
    await fails(
        stubs.support.GetTicket(
            pb.GetTicketRequest(id=str(uuid.uuid4())), metadata=(("authorization", f"Bearer {token}"),)
        ),
        Code.PERMISSION_DENIED,
    )


# ---------------------------------------------------------------- tickets


async def test_create_ticket_as_customer_mirrors_the_rest_fields(stubs, customer):
    user_id, md = customer
    reply = await stubs.support.CreateTicket(
        ticket_request(category="billing", tags=[], metadata={"booking": "B-1", "nights": 3}), metadata=md
    )
    ticket = to_dict(reply.ticket)
    assert ticket["customer_id"] == str(user_id)
    assert (ticket["status"], ticket["priority"], ticket["channel"]) == ("open", "medium", "web")
    assert ticket["category"] == "billing"
    assert ticket["metadata"] == {"booking": "B-1", "nights": 3}
    assert ticket["customer_email"] == "cora@example.com"
    assert ticket["ticket_number"].startswith("TKT-")
    assert ticket["created_at"].tzinfo is not None and ticket["resolved_at"] is None


async def test_a_service_creates_a_ticket_for_a_customer_on_the_api_channel(stubs, service):
    customer_id = uuid.uuid4()
    reply = await stubs.support.CreateTicket(
        ticket_request(customer_id=str(customer_id), priority=common.TICKET_PRIORITY_HIGH, tags=["vip"]),
        metadata=service[1],
    )
    assert reply.ticket.customer_id == str(customer_id)
    assert reply.ticket.channel == common.TICKET_CHANNEL_API
    assert reply.ticket.priority == common.TICKET_PRIORITY_HIGH
    assert list(reply.ticket.tags) == ["vip"]


async def test_create_ticket_validation_is_invalid_argument_with_field_violations(stubs, customer, service):
    error = await fails(
        stubs.support.CreateTicket(pb.CreateTicketRequest(description="x"), metadata=customer[1]), Code.INVALID_ARGUMENT
    )
    assert "subject" in violations(error)
    error = await fails(stubs.support.CreateTicket(ticket_request(), metadata=service[1]), Code.INVALID_ARGUMENT)
    assert "customer_id" in violations(error)
    error = await fails(
        stubs.support.CreateTicket(ticket_request(customer_id="nope"), metadata=service[1]), Code.INVALID_ARGUMENT
    )
    assert violations(error) == {"customer_id": "Not a valid UUID."}


async def test_customers_may_not_set_staff_fields(stubs, customer):
    await fails(
        stubs.support.CreateTicket(ticket_request(priority=common.TICKET_PRIORITY_URGENT), metadata=customer[1]),
        Code.PERMISSION_DENIED,
    )


async def test_a_customer_may_name_themselves_but_nobody_else(stubs, customer):
    user_id, md = customer
    reply = await stubs.support.CreateTicket(ticket_request(customer_id=str(user_id)), metadata=md)
    assert reply.ticket.customer_id == str(user_id) and reply.ticket.customer_email == "cora@example.com"
    error = await fails(
        stubs.support.CreateTicket(ticket_request(customer_id=str(uuid.uuid4())), metadata=md), Code.PERMISSION_DENIED
    )
    assert "customer_id" in error.details()
    error = await fails(
        stubs.support.CreateTicket(
            ticket_request(customer_id=str(user_id), tags=["vip"], agent_id=str(uuid.uuid4())), metadata=md
        ),
        Code.PERMISSION_DENIED,
    )
    assert "agent_id" in error.details() and "tags" in error.details() and "customer_id" not in error.details()


async def test_get_ticket_and_visibility(stubs, customer, callers):
    created = await stubs.support.CreateTicket(ticket_request(), metadata=customer[1])
    got = await stubs.support.GetTicket(pb.GetTicketRequest(id=created.ticket.id), metadata=customer[1])
    assert got.ticket == created.ticket
    _, stranger = callers.new("customer")
    await fails(stubs.support.GetTicket(pb.GetTicketRequest(id=created.ticket.id), metadata=stranger), Code.NOT_FOUND)
    await fails(
        stubs.support.GetTicket(pb.GetTicketRequest(id=str(uuid.uuid4())), metadata=customer[1]), Code.NOT_FOUND
    )
    error = await fails(
        stubs.support.GetTicket(pb.GetTicketRequest(id="TKT-1"), metadata=customer[1]), Code.INVALID_ARGUMENT
    )
    assert violations(error) == {"id": "Not a valid UUID."}
    error = await fails(stubs.support.GetTicket(pb.GetTicketRequest(), metadata=customer[1]), Code.INVALID_ARGUMENT)
    assert "id" in violations(error)


async def test_update_ticket_is_partial_and_clears_agent_id_with_an_empty_string(stubs, customer, supervisor):
    created = await stubs.support.CreateTicket(ticket_request(category="billing"), metadata=customer[1])
    agent_id = str(uuid.uuid4())
    updated = await stubs.support.UpdateTicket(
        pb.UpdateTicketRequest(
            id=created.ticket.id,
            priority=common.TICKET_PRIORITY_HIGH,
            agent_id=agent_id,
            tags=common.StringList(values=["refund"]),
        ),
        metadata=supervisor[1],
    )
    assert updated.ticket.priority == common.TICKET_PRIORITY_HIGH
    assert updated.ticket.agent_id == agent_id and updated.ticket.HasField("assigned_at")
    assert updated.ticket.subject == created.ticket.subject and updated.ticket.category == "billing"
    assert list(updated.ticket.tags) == ["refund"]
    cleared = await stubs.support.UpdateTicket(
        pb.UpdateTicketRequest(id=created.ticket.id, agent_id=""), metadata=supervisor[1]
    )
    assert not cleared.ticket.HasField("agent_id") and not cleared.ticket.HasField("assigned_at")
    assert list(cleared.ticket.tags) == ["refund"] and cleared.ticket.priority == common.TICKET_PRIORITY_HIGH
    emptied = await stubs.support.UpdateTicket(
        pb.UpdateTicketRequest(id=created.ticket.id, tags=common.StringList()), metadata=supervisor[1]
    )
    assert list(emptied.ticket.tags) == []


async def test_update_ticket_errors(stubs, customer, supervisor):
    created = await stubs.support.CreateTicket(ticket_request(), metadata=customer[1])
    ticket_id = created.ticket.id
    await fails(
        stubs.support.UpdateTicket(
            pb.UpdateTicketRequest(id=ticket_id, priority=common.TICKET_PRIORITY_LOW), metadata=customer[1]
        ),
        Code.PERMISSION_DENIED,
    )
    error = await fails(
        stubs.support.UpdateTicket(
            pb.UpdateTicketRequest(id=ticket_id, priority=common.TICKET_PRIORITY_UNSPECIFIED), metadata=supervisor[1]
        ),
        Code.INVALID_ARGUMENT,
    )
    assert "priority" in violations(error)
    await stubs.support.UpdateTicket(
        pb.UpdateTicketRequest(id=ticket_id, status=common.TICKET_STATUS_CLOSED), metadata=supervisor[1]
    )
    error = await fails(
        stubs.support.UpdateTicket(
            pb.UpdateTicketRequest(id=ticket_id, status=common.TICKET_STATUS_IN_PROGRESS), metadata=supervisor[1]
        ),
        Code.FAILED_PRECONDITION,
    )
    info = details_of(error, error_details_pb2.ErrorInfo)
    assert info.reason == "INVALID_STATE" and info.metadata["from"] == "closed"


async def test_delete_ticket(stubs, customer, supervisor, callers):
    created = await stubs.support.CreateTicket(ticket_request(), metadata=customer[1])
    _, agent = callers.new("agent")
    await fails(
        stubs.support.DeleteTicket(pb.DeleteTicketRequest(id=created.ticket.id), metadata=agent), Code.PERMISSION_DENIED
    )
    reply = await stubs.support.DeleteTicket(pb.DeleteTicketRequest(id=created.ticket.id), metadata=supervisor[1])
    assert (reply.id, reply.deleted) == (created.ticket.id, True)
    await fails(
        stubs.support.GetTicket(pb.GetTicketRequest(id=created.ticket.id), metadata=supervisor[1]), Code.NOT_FOUND
    )
    await fails(
        stubs.support.DeleteTicket(pb.DeleteTicketRequest(id=created.ticket.id), metadata=supervisor[1]), Code.NOT_FOUND
    )


async def test_list_tickets_filters_and_pages(stubs, callers):
    user_id, md = callers.new("customer")
    for priority in ("low", "high", "high"):
        await stubs.support.CreateTicket(
            ticket_request(
                customer_id=str(user_id), priority=common.TicketPriority.Value(f"TICKET_PRIORITY_{priority.upper()}")
            ),
            metadata=callers.new("service")[1],
        )
    page = await stubs.support.ListTickets(pb.ListTicketsRequest(), metadata=md)
    assert page.total == 3 and page.limit == 20 and page.offset == 0
    high = await stubs.support.ListTickets(
        pb.ListTicketsRequest(priority=[common.TICKET_PRIORITY_HIGH], status=[common.TICKET_STATUS_OPEN], limit=1),
        metadata=md,
    )
    assert high.total == 2 and len(high.items) == 1 and high.limit == 1
    assert high.items[0].priority == common.TICKET_PRIORITY_HIGH
    error = await fails(stubs.support.ListTickets(pb.ListTicketsRequest(limit=101), metadata=md), Code.INVALID_ARGUMENT)
    assert "limit" in violations(error)
    error = await fails(
        stubs.support.ListTickets(pb.ListTicketsRequest(sort="password"), metadata=md), Code.INVALID_ARGUMENT
    )
    assert "sort" in violations(error)


async def test_escalate_ticket(stubs, customer, supervisor):
    created = await stubs.support.CreateTicket(ticket_request(), metadata=customer[1])
    await fails(
        stubs.support.EscalateTicket(pb.EscalateTicketRequest(id=created.ticket.id), metadata=customer[1]),
        Code.PERMISSION_DENIED,
    )
    reply = await stubs.support.EscalateTicket(
        pb.EscalateTicketRequest(id=created.ticket.id, reason="VIP"), metadata=supervisor[1]
    )
    assert reply.ticket.escalation_level == 1 and reply.ticket.priority == common.TICKET_PRIORITY_HIGH
    assert reply.escalation.trigger == "manual" and reply.escalation.reason == "VIP"
    assert (reply.escalation.from_priority, reply.escalation.to_priority) == (
        common.TICKET_PRIORITY_MEDIUM,
        common.TICKET_PRIORITY_HIGH,
    )
    await stubs.support.UpdateTicket(
        pb.UpdateTicketRequest(id=created.ticket.id, status=common.TICKET_STATUS_RESOLVED), metadata=supervisor[1]
    )
    await fails(
        stubs.support.EscalateTicket(pb.EscalateTicketRequest(id=created.ticket.id), metadata=supervisor[1]),
        Code.FAILED_PRECONDITION,
    )


# ---------------------------------------------------------------- chat


async def test_chat_session_rpcs(stubs, service, callers):
    customer_id, customer_md = callers.new("customer")
    started = await stubs.support.CreateChatSession(
        pb.CreateChatSessionRequest(
            customer_id=str(customer_id),
            department="general",
            subject="Late check-in",
            message="Hello from the booking service",
            client_msg_id="first",
        ),
        metadata=service[1],
    )
    session = started.session
    assert session.status == common.CHAT_SESSION_STATUS_QUEUED and session.customer_id == str(customer_id)
    assert started.message.seq == 1 and started.message.sender_type == "bot"
    by_key = await stubs.support.GetChatSession(pb.GetChatSessionRequest(id=session.session_key), metadata=customer_md)
    assert by_key.session.id == session.id
    sent = await stubs.support.SendMessage(
        pb.SendMessageRequest(session_id=session.id, client_msg_id="m-2", message="Any news?"), metadata=customer_md
    )
    assert (sent.message.seq, sent.message.sender_type, sent.duplicate) == (2, "customer", False)
    again = await stubs.support.SendMessage(
        pb.SendMessageRequest(session_id=session.id, client_msg_id="m-2", message="Any news?"), metadata=customer_md
    )
    assert again.duplicate and again.message.id == sent.message.id
    messages = await stubs.support.GetMessages(
        pb.GetMessagesRequest(session_id=session.id, after_seq=1), metadata=customer_md
    )
    assert [m.message for m in messages.items] == ["Any news?"]
    assert messages.session.last_seq == 2
    assert (messages.total, messages.limit, messages.offset) == (2, 100, 1)


async def test_chat_session_errors(stubs, service, callers, ctx):
    customer_id, customer_md = callers.new("customer")
    _, agent = callers.new("agent")
    await fails(stubs.support.CreateChatSession(pb.CreateChatSessionRequest(), metadata=agent), Code.PERMISSION_DENIED)
    error = await fails(
        stubs.support.CreateChatSession(pb.CreateChatSessionRequest(), metadata=service[1]), Code.INVALID_ARGUMENT
    )
    assert "customer_id" in violations(error)
    started = await stubs.support.CreateChatSession(pb.CreateChatSessionRequest(), metadata=customer_md)
    _, stranger = callers.new("customer")
    await fails(
        stubs.support.GetChatSession(pb.GetChatSessionRequest(id=started.session.id), metadata=stranger), Code.NOT_FOUND
    )
    error = await fails(
        stubs.support.SendMessage(pb.SendMessageRequest(session_id=started.session.id), metadata=customer_md),
        Code.INVALID_ARGUMENT,
    )
    assert "message" in violations(error)
    error = await fails(
        stubs.support.GetMessages(pb.GetMessagesRequest(session_id=""), metadata=customer_md), Code.INVALID_ARGUMENT
    )
    assert "session_id" in violations(error)
    await fails(
        stubs.support.SendMessage(pb.SendMessageRequest(session_id=started.session.id, message="hi"), metadata=agent),
        Code.PERMISSION_DENIED,
    )
    await execute(
        ctx, "UPDATE chat_sessions SET status = 'ended', ended_at = now() WHERE id = $1", uuid.UUID(started.session.id)
    )
    await fails(
        stubs.support.SendMessage(
            pb.SendMessageRequest(session_id=started.session.id, message="hi"), metadata=customer_md
        ),
        Code.FAILED_PRECONDITION,
    )


# ---------------------------------------------------------------- knowledge base


async def test_article_rpcs(stubs, callers):
    _, agent = callers.new("agent")
    _, customer = callers.new("customer")
    word = f"zebra{uuid.uuid4().hex[:6]}"
    created = await stubs.support.CreateArticle(
        pb.CreateArticleRequest(
            title=f"Refunds for {word}", content="How **refunds** work.", category="billing", tags=["refund"]
        ),
        metadata=agent,
    )
    article = created.article
    assert not article.is_published and article.content_format == "markdown"
    await fails(stubs.support.GetArticle(pb.GetArticleRequest(id=article.id), metadata=customer), Code.NOT_FOUND)
    published = await stubs.support.UpdateArticle(
        pb.UpdateArticleRequest(id=article.id, is_published=True), metadata=agent
    )
    assert published.article.is_published and published.article.title == article.title
    got = await stubs.support.GetArticle(pb.GetArticleRequest(id=article.id), metadata=customer)
    assert got.article.id == article.id
    found = await stubs.support.SearchArticles(pb.SearchArticlesRequest(q=word, tags=["refund"]), metadata=customer)
    assert [hit.id for hit in found.items] == [article.id] and found.total == 1
    assert "<mark>" in found.items[0].snippet or found.items[0].snippet
    deleted = await stubs.support.DeleteArticle(pb.DeleteArticleRequest(id=article.id), metadata=agent)
    assert deleted.deleted
    await fails(stubs.support.GetArticle(pb.GetArticleRequest(id=article.id), metadata=agent), Code.NOT_FOUND)


async def test_article_errors(stubs, callers):
    _, agent = callers.new("agent")
    _, customer = callers.new("customer")
    await fails(
        stubs.support.CreateArticle(pb.CreateArticleRequest(title="t", content="c", category="x"), metadata=customer),
        Code.PERMISSION_DENIED,
    )
    error = await fails(
        stubs.support.CreateArticle(pb.CreateArticleRequest(title="t", content="c"), metadata=agent),
        Code.INVALID_ARGUMENT,
    )
    assert "category" in violations(error)
    error = await fails(
        stubs.support.SearchArticles(pb.SearchArticlesRequest(), metadata=customer), Code.INVALID_ARGUMENT
    )
    assert "q" in violations(error)
    await fails(
        stubs.support.UpdateArticle(pb.UpdateArticleRequest(id=str(uuid.uuid4()), title="x"), metadata=agent),
        Code.NOT_FOUND,
    )
    await fails(
        stubs.support.DeleteArticle(pb.DeleteArticleRequest(id=str(uuid.uuid4())), metadata=agent), Code.NOT_FOUND
    )


# ---------------------------------------------------------------- feedback and analytics


async def _resolved_ticket(stubs: Any, callers: Any) -> tuple[uuid.UUID, tuple, str]:
    customer_id, customer = callers.new("customer")
    created = await stubs.support.CreateTicket(ticket_request(category="billing"), metadata=customer)
    await stubs.support.UpdateTicket(
        pb.UpdateTicketRequest(id=created.ticket.id, status=common.TICKET_STATUS_RESOLVED),
        metadata=callers.new("supervisor")[1],
    )
    return customer_id, customer, created.ticket.id


async def test_feedback_rpcs(stubs, callers):
    customer_id, customer, ticket_id = await _resolved_ticket(stubs, callers)
    created = await stubs.support.CreateFeedback(
        pb.CreateFeedbackRequest(ticket_id=ticket_id, rating=5, comment="Great, thank you so much!"), metadata=customer
    )
    feedback = created.feedback
    assert feedback.rating == 5 and feedback.ticket_id == ticket_id and feedback.category == "billing"
    assert feedback.customer_id == str(customer_id) and feedback.sentiment_score > 0
    got = await stubs.support.GetFeedback(pb.GetFeedbackRequest(id=feedback.id), metadata=customer)
    assert got.feedback == feedback
    error = await fails(
        stubs.support.CreateFeedback(pb.CreateFeedbackRequest(ticket_id=ticket_id, rating=4), metadata=customer),
        Code.ALREADY_EXISTS,
    )
    assert "already" in error.details()
    error = await fails(
        stubs.support.CreateFeedback(pb.CreateFeedbackRequest(ticket_id=ticket_id, rating=9), metadata=customer),
        Code.INVALID_ARGUMENT,
    )
    assert "rating" in violations(error)
    await fails(
        stubs.support.CreateFeedback(
            pb.CreateFeedbackRequest(ticket_id=ticket_id, rating=4), metadata=callers.new("service")[1]
        ),
        Code.PERMISSION_DENIED,
    )
    await fails(
        stubs.support.GetFeedback(pb.GetFeedbackRequest(id=feedback.id), metadata=callers.new("customer")[1]),
        Code.NOT_FOUND,
    )
    unresolved = await stubs.support.CreateTicket(ticket_request(), metadata=customer)
    await fails(
        stubs.support.CreateFeedback(
            pb.CreateFeedbackRequest(ticket_id=unresolved.ticket.id, rating=3), metadata=customer
        ),
        Code.FAILED_PRECONDITION,
    )


async def test_feedback_on_a_chat_names_it_session_id(stubs, callers, ctx):
    customer_id, customer = callers.new("customer")
    session_id = uuid.uuid4()
    await execute(
        ctx,
        "INSERT INTO chat_sessions (id, session_id, customer_id, agent_id, department, status, "
        "assigned_at, ended_at) VALUES ($1, $2, $3, $4, 'general', 'ended', now(), now())",
        session_id,
        f"test-{uuid.uuid4().hex}",
        customer_id,
        uuid.uuid4(),
    )
    created = await stubs.support.CreateFeedback(
        pb.CreateFeedbackRequest(session_id=str(session_id), rating=4), metadata=customer
    )
    assert created.feedback.session_id == str(session_id) and not created.feedback.HasField("ticket_id")
    assert to_dict(created.feedback)["session_id"] == str(session_id)
    error = await fails(
        stubs.support.CreateFeedback(pb.CreateFeedbackRequest(rating=4), metadata=customer), Code.INVALID_ARGUMENT
    )
    assert {"ticket_id", "session_id"} <= set(violations(error))


async def test_feedback_analytics_and_support_analytics(stubs, callers):
    _, customer, ticket_id = await _resolved_ticket(stubs, callers)
    await stubs.support.CreateFeedback(pb.CreateFeedbackRequest(ticket_id=ticket_id, rating=4), metadata=customer)
    _, supervisor = callers.new("supervisor")
    report = await stubs.support.GetFeedbackAnalytics(
        pb.GetFeedbackAnalyticsRequest(granularity=pb.GRANULARITY_DAY, category="billing"), metadata=supervisor
    )
    assert report.count >= 1 and report.granularity == pb.GRANULARITY_DAY and report.category == "billing"
    assert report.distribution["4"] >= 1 and report.HasField("from") and report.tz == "UTC"
    for kind, field in (
        (pb.ANALYTICS_REPORT_TICKETS, "tickets"),
        (pb.ANALYTICS_REPORT_CHAT, "chat"),
        (pb.ANALYTICS_REPORT_RESPONSE_TIME, "response_time"),
        (pb.ANALYTICS_REPORT_SATISFACTION, "satisfaction"),
    ):
        reply = await stubs.support.GetSupportAnalytics(
            pb.GetSupportAnalyticsRequest(report=kind, granularity=pb.GRANULARITY_WEEK), metadata=supervisor
        )
        assert reply.WhichOneof("report") == field and reply.granularity == pb.GRANULARITY_WEEK
    tickets = await stubs.support.GetSupportAnalytics(
        pb.GetSupportAnalyticsRequest(report=pb.ANALYTICS_REPORT_TICKETS), metadata=supervisor
    )
    assert tickets.tickets.totals.created >= 1 and tickets.tickets.by_category["billing"] >= 1
    error = await fails(
        stubs.support.GetSupportAnalytics(pb.GetSupportAnalyticsRequest(), metadata=supervisor), Code.INVALID_ARGUMENT
    )
    assert "report" in violations(error)
    error = await fails(
        stubs.support.GetSupportAnalytics(
            pb.GetSupportAnalyticsRequest(report=pb.ANALYTICS_REPORT_CHAT, tz="Mars/Base"), metadata=supervisor
        ),
        Code.INVALID_ARGUMENT,
    )
    assert "tz" in violations(error)
    await fails(
        stubs.support.GetSupportAnalytics(
            pb.GetSupportAnalyticsRequest(report=pb.ANALYTICS_REPORT_CHAT), metadata=customer
        ),
        Code.PERMISSION_DENIED,
    )
    await fails(
        stubs.support.GetFeedbackAnalytics(pb.GetFeedbackAnalyticsRequest(), metadata=customer), Code.PERMISSION_DENIED
    )


# ---------------------------------------------------------------- interceptors


@pytest.fixture
async def strict_server(ctx: AppContext) -> AsyncIterator[tuple[GrpcServer, support_pb2_grpc.SupportServiceStub]]:
    """A second server whose context allows 3 calls a minute and 2 chat messages a minute."""
    settings = dataclasses.replace(
        ctx.settings,
        rate_limit_requests_per_minute=3,
        chat_rate_limit_messages_per_minute=2,
        grpc_max_receive_message_size=4096,
    )
    strict = dataclasses.replace(ctx, settings=settings)
    server = GrpcServer(strict, host="127.0.0.1", port=0)
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield server, support_pb2_grpc.SupportServiceStub(channel)
    finally:
        await channel.close()
        await server.stop(0)


async def test_calls_are_rate_limited_per_caller_with_retry_info(strict_server, callers):
    _, stub = strict_server
    _, md = callers.new("customer")
    _, other = callers.new("customer")
    for _ in range(3):
        await fails(stub.GetTicket(pb.GetTicketRequest(id=str(uuid.uuid4())), metadata=md), Code.NOT_FOUND)
    error = await fails(stub.GetTicket(pb.GetTicketRequest(id=str(uuid.uuid4())), metadata=md), Code.RESOURCE_EXHAUSTED)
    assert details_of(error, error_details_pb2.RetryInfo).retry_delay.seconds >= 1
    await fails(stub.GetTicket(pb.GetTicketRequest(id=str(uuid.uuid4())), metadata=other), Code.NOT_FOUND)


async def test_chat_messages_are_rate_limited_per_sender(strict_server, callers):
    _, stub = strict_server
    _, md = callers.new("customer")
    session = (await stub.CreateChatSession(pb.CreateChatSessionRequest(), metadata=md)).session
    await stub.SendMessage(pb.SendMessageRequest(session_id=session.id, message="one"), metadata=md)
    await stub.SendMessage(pb.SendMessageRequest(session_id=session.id, message="two"), metadata=md)
    await fails(
        stub.SendMessage(pb.SendMessageRequest(session_id=session.id, message="three"), metadata=md),
        Code.RESOURCE_EXHAUSTED,
    )


async def test_the_maximum_message_size_is_enforced(strict_server, callers):
    _, stub = strict_server
    _, md = callers.new("customer")
    await fails(stub.CreateTicket(ticket_request(description="x" * 5000), metadata=md), Code.RESOURCE_EXHAUSTED)


async def test_an_unexpected_failure_is_internal_without_a_traceback(stubs, customer, monkeypatch):
    from app.services import tickets

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("secret connection string postgres://root:hunter2@db")

    monkeypatch.setattr(tickets, "get_ticket", broken)
    error = await fails(
        stubs.support.GetTicket(pb.GetTicketRequest(id=str(uuid.uuid4())), metadata=customer[1]), Code.INTERNAL
    )
    assert error.details() == INTERNAL_MESSAGE
    assert "hunter2" not in repr(error.trailing_metadata()) and "Traceback" not in error.debug_error_string()


async def test_request_ids_are_echoed_and_calls_counted(stubs, customer):
    call = stubs.support.GetTicket(
        pb.GetTicketRequest(id=str(uuid.uuid4())), metadata=(*customer[1], ("x-request-id", "trace-123"))
    )
    assert dict(await call.initial_metadata())["x-request-id"] == "trace-123"
    assert await call.code() == Code.NOT_FOUND
    exposition = generate_latest().decode()
    assert 'support_grpc_requests_total{code="NOT_FOUND",method="GetTicket"}' in exposition
    assert 'support_grpc_request_duration_seconds_count{method="GetTicket"}' in exposition


async def test_readiness_reports_the_grpc_component(replica):
    import aiohttp

    async with aiohttp.ClientSession() as http, http.get(f"{replica.http}/health/ready") as response:
        report = await response.json()
    assert response.status == 200, report
    grpc_report = report["components"]["grpc"]
    assert grpc_report["status"] == "up" and grpc_report["port"] == int(replica.grpc.rsplit(":", 1)[1])
