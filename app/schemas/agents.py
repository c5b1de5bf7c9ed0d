"""Agent request and response schemas."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.schemas.analytics import _known_zone
from app.schemas.common import NAME_LENGTH, PageQuery, StrictSchema, UtcDateTime, page_of, tags_field

AGENT_ROLES = ("agent", "supervisor")
AGENT_STATUSES = ("online", "away", "offline")
SCORE = validate.Range(min=0, max=9.99)


class AgentCreateSchema(StrictSchema):
    user_id = fields.UUID(required=True, metadata={"description": "The agent's user id (JWT sub)"})
    display_name = fields.String(required=True, validate=validate.Length(min=1, max=255))
    role = fields.String(load_default="agent", validate=validate.OneOf(AGENT_ROLES))
    department = fields.String(required=True, validate=NAME_LENGTH)
    skills = tags_field(load_default=list)
    max_tickets = fields.Integer(load_default=10, validate=validate.Range(min=0, max=1000))
    max_chats = fields.Integer(load_default=3, validate=validate.Range(min=0, max=100))
    is_available = fields.Boolean(load_default=True)
    performance_score = fields.Float(allow_none=True, validate=SCORE)


class AgentUpdateSchema(StrictSchema):
    display_name = fields.String(validate=validate.Length(min=1, max=255))
    role = fields.String(validate=validate.OneOf(AGENT_ROLES))
    department = fields.String(validate=NAME_LENGTH)
    skills = tags_field()
    max_tickets = fields.Integer(validate=validate.Range(min=0, max=1000))
    max_chats = fields.Integer(validate=validate.Range(min=0, max=100))
    status = fields.String(validate=validate.OneOf(AGENT_STATUSES))
    is_available = fields.Boolean()
    performance_score = fields.Float(allow_none=True, validate=SCORE)


class AgentStatusSchema(StrictSchema):
    status = fields.String(required=True, validate=validate.OneOf(AGENT_STATUSES))


class AgentListQuery(PageQuery):
    department = fields.String(validate=NAME_LENGTH)
    role = fields.String(validate=validate.OneOf(AGENT_ROLES))
    status = fields.String(validate=validate.OneOf(AGENT_STATUSES))
    is_available = fields.Boolean()


class AgentSchema(Schema):
    id = fields.UUID()
    user_id = fields.UUID()
    display_name = fields.String()
    role = fields.String()
    department = fields.String()
    skills = fields.List(fields.String())
    max_tickets = fields.Integer()
    current_tickets = fields.Integer()
    max_chats = fields.Integer()
    active_chats = fields.Integer()
    status = fields.String()
    is_online = fields.Boolean()
    is_available = fields.Boolean()
    performance_score = fields.Float(allow_none=True)
    last_seen_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


AgentPageSchema = page_of(AgentSchema, "AgentPageSchema")


class AgentStatsQuery(PageQuery):
    department = fields.String(validate=NAME_LENGTH)
    tz = fields.String(
        load_default="UTC",
        validate=[validate.Length(max=64), _known_zone],
        metadata={"description": 'IANA time zone whose midnight starts "today"', "x-time-zone": True},
    )
    since = UtcDateTime(data_key="from", metadata={"description": "Start (inclusive); default: today's midnight in tz"})
    until = UtcDateTime(data_key="to", metadata={"description": "End (exclusive); default: now"})

    @validates_schema
    def ordered(self, data: dict, **kwargs: object) -> None:
        if data.get("since") and data.get("until") and data["since"] >= data["until"]:
            raise ValidationError({"from": ["Must be before `to`."]})


class _Average(Schema):
    avg = fields.Float(allow_none=True, metadata={"description": "Seconds (or stars for ratings)"})
    count = fields.Integer()


class AgentStatsSchema(Schema):
    """One agent's live status and load, and the window's (by default today's) figures."""

    id = fields.UUID()
    user_id = fields.UUID()
    display_name = fields.String()
    department = fields.String()
    role = fields.String()
    status = fields.String()
    is_online = fields.Boolean()
    active_chats = fields.Integer()
    max_chats = fields.Integer()
    chats = fields.Integer(metadata={"description": "Chats assigned in the window"})
    first_response_seconds = fields.Nested(
        _Average, metadata={"description": "Assigned -> first agent message, chats assigned in the window"}
    )
    handle_seconds = fields.Nested(_Average, metadata={"description": "Assigned -> ended, chats ended in the window"})
    ratings = fields.Nested(_Average, metadata={"description": "Ratings received in the window (1-5)"})


class AgentStatsPageSchema(Schema):
    items = fields.List(fields.Nested(AgentStatsSchema))
    total = fields.Integer()
    limit = fields.Integer()
    offset = fields.Integer()
    from_ = fields.DateTime(data_key="from")
    to = fields.DateTime()
