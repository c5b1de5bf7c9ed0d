"""SupportService: each RPC parses like its REST endpoint (the same marshmallow schema), calls the
same service function, and shapes the reply from the same dict."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import marshmallow as ma

from app.auth import require_role
from app.context import AppContext
from app.errors import ValidationFailed
from app.schemas import analytics as analytics_schemas
from app.schemas import chat as chat_schemas
from app.schemas import feedback as feedback_schemas
from app.schemas import kb as kb_schemas
from app.schemas import tickets as ticket_schemas
from app.services import analytics, chat, feedback, kb, tickets
from grpc_server.convert import request_fields, to_message
from support_stubs.support.v1 import common_pb2 as common
from support_stubs.support.v1 import support_pb2 as pb
from support_stubs.support.v1 import support_pb2_grpc
from grpc_server.interceptors import caller, current_call

# Fields REST takes as null; proto3 strings cannot be null, so a set empty string means null.
_NULLABLE_TICKET_FIELDS = ("subcategory", "customer_email", "customer_name", "agent_id")
_REPORTS = {
    pb.ANALYTICS_REPORT_TICKETS: ("tickets", pb.TicketAnalytics),
    pb.ANALYTICS_REPORT_CHAT: ("chat", pb.ChatAnalytics),
    pb.ANALYTICS_REPORT_RESPONSE_TIME: ("response_time", pb.ResponseTimeAnalytics),
    pb.ANALYTICS_REPORT_SATISFACTION: ("satisfaction", pb.SatisfactionAnalytics),
}
_WINDOW = ("from", "to", "granularity", "tz", "department", "agent_id")


def load(schema: ma.Schema, data: dict) -> dict:
    """``data`` through the REST endpoint's schema; its messages become field violations."""
    try:
        return schema.load(data)
    except ma.ValidationError as exc:
        messages = exc.normalized_messages()
        raise ValidationFailed(
            "The request has invalid fields", details=messages if isinstance(messages, dict) else {"_request": messages}
        ) from None


def resource_id(value: str, field: str = "id") -> uuid.UUID:
    if not value:
        raise ValidationFailed("The request has invalid fields", details={field: ["Missing data for required field."]})
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ValidationFailed("The request has invalid fields", details={field: ["Not a valid UUID."]}) from None


def session_ref(value: str, field: str) -> str:
    """A chat session named by its id or its session_key."""
    if not value or len(value) > 64:
        raise ValidationFailed(
            "The request has invalid fields",
            details={field: ["A session id or session_key of 1-64 characters is required."]},
        )
    return value


def _without(data: dict, *keys: str) -> dict:
    return {k: v for k, v in data.items() if k not in keys}


def _joined(data: dict, *keys: str) -> dict:
    """Repeated request fields as REST's comma-separated query values."""
    return {k: (",".join(str(x) for x in v) if k in keys else v) for k, v in data.items()}


def _window(request: Any) -> dict:
    """The analytics window in REST's query form (``from``/``to`` as ISO strings)."""
    data = request_fields(request)
    return {k: data[k] for k in _WINDOW if k in data}


class SupportServicer(support_pb2_grpc.SupportServiceServicer):
    def __init__(self, ctx: AppContext):
        self.ctx = ctx

    # ------------------------------------------------------------ tickets

    async def CreateTicket(self, request: pb.CreateTicketRequest, context: grpc.aio.ServicerContext) -> Any:
        data = load(ticket_schemas.TicketCreateSchema(), request_fields(request))
        ticket = await tickets.create_ticket(self.ctx, caller(), current_call().meta, data)
        return pb.TicketResponse(ticket=to_message(common.Ticket, ticket))

    async def GetTicket(self, request: pb.GetTicketRequest, context: grpc.aio.ServicerContext) -> Any:
        ticket = await tickets.get_ticket(self.ctx, caller(), resource_id(request.id))
        return pb.TicketResponse(ticket=to_message(common.Ticket, ticket))

    async def UpdateTicket(self, request: pb.UpdateTicketRequest, context: grpc.aio.ServicerContext) -> Any:
        ticket_id = resource_id(request.id)
        fields = _without(request_fields(request), "id")
        for name in _NULLABLE_TICKET_FIELDS:
            if fields.get(name) == "":
                fields[name] = None
        data = load(ticket_schemas.TicketUpdateSchema(), fields)
        ticket = await tickets.update_ticket(self.ctx, caller(), current_call().meta, ticket_id, data)
        return pb.TicketResponse(ticket=to_message(common.Ticket, ticket))

    async def DeleteTicket(self, request: pb.DeleteTicketRequest, context: grpc.aio.ServicerContext) -> Any:
        ticket_id = resource_id(request.id)
        await tickets.delete_ticket(self.ctx, caller(), current_call().meta, ticket_id)
        return pb.DeleteTicketResponse(id=str(ticket_id), deleted=True)

    async def ListTickets(self, request: pb.ListTicketsRequest, context: grpc.aio.ServicerContext) -> Any:
        params = load(ticket_schemas.TicketListQuery(), _joined(request_fields(request), "status", "priority"))
        page = await tickets.list_tickets(self.ctx, caller(), params)
        return to_message(pb.ListTicketsResponse, page)

    async def EscalateTicket(self, request: pb.EscalateTicketRequest, context: grpc.aio.ServicerContext) -> Any:
        ticket_id = resource_id(request.id)
        data = load(ticket_schemas.TicketEscalateSchema(), _without(request_fields(request), "id"))
        result = await tickets.escalate_ticket(self.ctx, caller(), current_call().meta, ticket_id, data.get("reason"))
        return to_message(pb.EscalateTicketResponse, result)

    # ------------------------------------------------------------ chat

    async def CreateChatSession(self, request: pb.CreateChatSessionRequest, context: grpc.aio.ServicerContext) -> Any:
        data = load(chat_schemas.ChatStartSchema(), request_fields(request))
        result = await chat.start_chat(self.ctx, caller(), current_call().meta, data)
        return to_message(pb.ChatSessionResponse, result)

    async def GetChatSession(self, request: pb.GetChatSessionRequest, context: grpc.aio.ServicerContext) -> Any:
        session = await chat.get_session(self.ctx, caller(), session_ref(request.id, "id"))
        return pb.ChatSessionResponse(session=to_message(common.ChatSession, session))

    async def SendMessage(self, request: pb.SendMessageRequest, context: grpc.aio.ServicerContext) -> Any:
        ref = session_ref(request.session_id, "session_id")
        data = load(chat_schemas.MessageCreateSchema(), _without(request_fields(request), "session_id"))
        sent = await chat.send_message(
            self.ctx,
            caller(),
            current_call().meta,
            ref,
            data.get("client_msg_id"),
            data["message"],
            data["message_type"],
        )
        return to_message(pb.SendMessageResponse, sent)

    async def GetMessages(self, request: pb.GetMessagesRequest, context: grpc.aio.ServicerContext) -> Any:
        ref = session_ref(request.session_id, "session_id")
        params = load(chat_schemas.MessageListQuery(), _without(request_fields(request), "session_id"))
        page = await chat.list_messages(self.ctx, caller(), ref, params["after_seq"], params["limit"])
        return to_message(pb.GetMessagesResponse, page)

    # ------------------------------------------------------------ knowledge base

    async def CreateArticle(self, request: pb.CreateArticleRequest, context: grpc.aio.ServicerContext) -> Any:
        data = load(kb_schemas.ArticleCreateSchema(), request_fields(request))
        article = await kb.create_article(self.ctx, caller(), current_call().meta, data)
        return pb.ArticleResponse(article=to_message(pb.Article, article))

    async def GetArticle(self, request: pb.GetArticleRequest, context: grpc.aio.ServicerContext) -> Any:
        article = await kb.get_article(self.ctx, caller(), resource_id(request.id))
        return pb.ArticleResponse(article=to_message(pb.Article, article))

    async def UpdateArticle(self, request: pb.UpdateArticleRequest, context: grpc.aio.ServicerContext) -> Any:
        article_id = resource_id(request.id)
        data = load(kb_schemas.ArticleUpdateSchema(), _without(request_fields(request), "id"))
        article = await kb.update_article(self.ctx, caller(), current_call().meta, article_id, data)
        return pb.ArticleResponse(article=to_message(pb.Article, article))

    async def DeleteArticle(self, request: pb.DeleteArticleRequest, context: grpc.aio.ServicerContext) -> Any:
        article_id = resource_id(request.id)
        await kb.delete_article(self.ctx, caller(), current_call().meta, article_id)
        return pb.DeleteArticleResponse(id=str(article_id), deleted=True)

    async def SearchArticles(self, request: pb.SearchArticlesRequest, context: grpc.aio.ServicerContext) -> Any:
        caller()  # authenticated like every RPC (REST's search is public)
        params = load(kb_schemas.SearchQuery(), _joined(request_fields(request), "tags"))
        return to_message(pb.SearchArticlesResponse, await kb.search(self.ctx, params))

    # ------------------------------------------------------------ feedback

    async def CreateFeedback(self, request: pb.CreateFeedbackRequest, context: grpc.aio.ServicerContext) -> Any:
        fields = request_fields(request)
        fields.setdefault("rating", request.rating)  # 0 is not left out: the schema refuses it
        data = load(feedback_schemas.FeedbackCreateSchema(), fields)
        item = await feedback.create_feedback(self.ctx, caller(), current_call().meta, data)
        return pb.FeedbackResponse(feedback=to_message(pb.Feedback, item))

    async def GetFeedback(self, request: pb.GetFeedbackRequest, context: grpc.aio.ServicerContext) -> Any:
        item = await feedback.get_feedback(self.ctx, caller(), resource_id(request.id))
        return pb.FeedbackResponse(feedback=to_message(pb.Feedback, item))

    async def GetFeedbackAnalytics(
        self, request: pb.GetFeedbackAnalyticsRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        fields = _window(request)
        if request.HasField("category"):
            fields["category"] = request.category
        params = load(analytics_schemas.FeedbackWindowQuery(), fields)
        report = await analytics.report(self.ctx, caller(), "satisfaction", params)
        return to_message(pb.FeedbackAnalyticsResponse, report)

    # ------------------------------------------------------------ analytics

    async def GetSupportAnalytics(
        self, request: pb.GetSupportAnalyticsRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        require_role(caller(), *analytics.ROLES)  # who may ask comes before what was asked
        if request.report not in _REPORTS:
            raise ValidationFailed(
                "The request has invalid fields",
                details={"report": ["One of tickets, chat, response_time, satisfaction."]},
            )
        name, figures = _REPORTS[request.report]
        params = load(analytics_schemas.WindowQuery(), _window(request))
        report = await analytics.report(self.ctx, caller(), name, params)
        reply = to_message(pb.SupportAnalyticsResponse, {k: report.get(k) for k in _WINDOW})
        getattr(reply, name).CopyFrom(to_message(figures, report))
        return reply
