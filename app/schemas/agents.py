"""Agent request and response schemas."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.schemas.common import NAME_LENGTH, PageQuery, StrictSchema, page_of, tags_field

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
