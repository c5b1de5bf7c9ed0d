"""Ticket request and response schemas (REST JSON uses SEED.md's column names)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from webargs.fields import DelimitedList

from app.schemas.attachments import ATTACHMENT_ID_DOC, REFERENCE_HELP, AttachmentId, MessageAttachmentSchema
from app.schemas.common import NAME_LENGTH, PageQuery, StrictSchema, UtcDateTime, page_of, sort_field, tags_field

PRIORITIES = ("low", "medium", "high", "urgent")
STATUSES = ("open", "in_progress", "pending", "resolved", "closed")
CHANNELS = ("web", "chat", "email", "api")
SUBJECT = validate.Length(min=1, max=255)
DESCRIPTION = validate.Length(min=1, max=20_000)
MESSAGE = validate.Length(min=1, max=20_000)


# What customers may set on their own tickets is a product decision (README "Tickets"): priority
# comes from staff and rules, not from the customer's own judgement. app.services.tickets enforces it.
CUSTOMER_CREATE_RULES = (
    "**Customers** create tickets for themselves and may set `subject`, `description`, `category`, "
    "`subcategory` and `metadata` (`customer_id` only when it is their own id). `priority`, `tags`, "
    "`agent_id`, `channel`, another customer's `customer_id` and the contact details (`customer_email`, "
    "`customer_name`, taken from the token) are staff fields: a customer sending any of them gets 403 "
    "naming the fields. This is a product decision: priority comes from staff and automation rules, not "
    "from the customer's own judgement. Staff and services must name the `customer_id`."
)
CUSTOMER_UPDATE_RULES = (
    "**Customers** may change the `subject` and `description` of their own tickets, and `status` only to "
    "`closed` or `open` (close, reopen); any other field (`priority`, `tags`, `agent_id`, `category`, ...) "
    "is a 403 naming the fields (the same product decision as on create). `agent_id` is for supervisors, "
    "admins and services."
)
_STAFF = "Staff and services; a customer sending it gets 403"


class TicketCreateSchema(StrictSchema):
    subject = fields.String(required=True, validate=SUBJECT)
    description = fields.String(required=True, validate=DESCRIPTION)
    category = fields.String(validate=NAME_LENGTH)
    subcategory = fields.String(allow_none=True, validate=NAME_LENGTH)
    priority = fields.String(
        validate=validate.OneOf(PRIORITIES), metadata={"description": f"{_STAFF}; else set by the priority rules"}
    )
    channel = fields.String(validate=validate.OneOf(CHANNELS), metadata={"description": _STAFF})
    tags = tags_field(metadata={"description": _STAFF})
    metadata = fields.Dict(keys=fields.String(validate=validate.Length(max=100)))
    customer_id = fields.UUID(
        metadata={
            "description": "Staff and services: the customer the ticket is for "
            "(required). A customer may only name themselves"
        }
    )
    customer_email = fields.Email(
        allow_none=True,
        validate=validate.Length(max=255),
        metadata={"description": f"{_STAFF} (a customer's comes from the token)"},
    )
    customer_name = fields.String(
        allow_none=True,
        validate=validate.Length(max=255),
        metadata={"description": f"{_STAFF} (a customer's comes from the token)"},
    )
    agent_id = fields.UUID(
        allow_none=True,
        metadata={
            "description": "Supervisors, admins and services: assign "
            "at once (an agent only themselves); "
            "a customer gets 403"
        },
    )


class TicketUpdateSchema(StrictSchema):
    """``PUT`` takes a partial body: fields left out keep their values."""

    subject = fields.String(validate=SUBJECT)
    description = fields.String(validate=DESCRIPTION)
    category = fields.String(validate=NAME_LENGTH)
    subcategory = fields.String(allow_none=True, validate=NAME_LENGTH)
    priority = fields.String(validate=validate.OneOf(PRIORITIES), metadata={"description": _STAFF})
    status = fields.String(
        validate=validate.OneOf(STATUSES), metadata={"description": "Customers: only closed or open (close, reopen)"}
    )
    tags = tags_field(metadata={"description": _STAFF})
    metadata = fields.Dict(keys=fields.String(validate=validate.Length(max=100)))
    customer_email = fields.Email(allow_none=True, validate=validate.Length(max=255))
    customer_name = fields.String(allow_none=True, validate=validate.Length(max=255))
    agent_id = fields.UUID(
        allow_none=True, metadata={"description": "Supervisors, admins and services; null unassigns; others get 403"}
    )


class TicketStatusSchema(StrictSchema):
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    reason = fields.String(validate=validate.Length(max=1000))


class TicketEscalateSchema(StrictSchema):
    reason = fields.String(validate=validate.Length(max=1000))


class TicketListQuery(PageQuery):
    sort = sort_field(
        "created_at", "updated_at", "priority", "status", "ticket_number", "subject", default="-created_at"
    )
    status = DelimitedList(fields.String(validate=validate.OneOf(STATUSES)))
    priority = DelimitedList(fields.String(validate=validate.OneOf(PRIORITIES)))
    category = fields.String(validate=NAME_LENGTH)
    agent_id = fields.UUID()
    customer_id = fields.UUID()
    q = fields.String(validate=validate.Length(min=1, max=255), metadata={"description": "Text in the subject"})
    created_after = UtcDateTime()
    created_before = UtcDateTime()


class AttachmentSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=255))
    url = fields.Url(required=True, schemes={"http", "https"})
    content_type = fields.String(validate=validate.Length(max=100))
    size = fields.Integer(validate=validate.Range(min=0))


LINK_DOC = {
    "type": "object",
    "required": ["name", "url"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 255},
        "url": {"type": "string", "pattern": r"^https?://[a-z0-9]+(\.[a-z0-9]+)*\.[a-z]{2,}(/[A-Za-z0-9._~-]*)*$"},
        "content_type": {"type": "string", "maxLength": 100},
        "size": {"type": "integer", "minimum": 0, "maximum": 2147483647},
    },
}


class AttachmentRef(fields.Field):
    """An uploaded file's id, or (as before uploads existed) a link object {name, url, ...}."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["metadata"] = {"anyOf": [ATTACHMENT_ID_DOC, LINK_DOC], **kwargs.get("metadata", {})}
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, dict):
            return AttachmentSchema().load(value)
        return AttachmentId()._deserialize(value, attr, data, **kwargs)


class TicketMessageCreateSchema(StrictSchema):
    OPENAPI = {
        "anyOf": [
            {"required": ["message"], "properties": {"message": {"pattern": "\\S"}}},
            {"required": ["attachments"], "properties": {"attachments": {"minItems": 1}}},
        ]
    }
    message = fields.String(
        load_default="",
        validate=validate.Length(max=20_000),
        metadata={"description": "Required unless the message has attachments"},
    )
    message_type = fields.String(load_default="text", validate=validate.OneOf(("text",)))
    attachments = fields.List(
        AttachmentRef(metadata={"description": "An attachment id, or a link object {name, url, content_type?, size?}"}),
        validate=validate.Length(max=10),
        metadata={"description": REFERENCE_HELP},
    )
    is_internal = fields.Boolean(load_default=False, metadata={"description": "Agents and up: internal note"})
    client_msg_id = fields.String(
        validate=validate.Length(min=1, max=64),
        metadata={"description": "Idempotency key of the sender; a resend returns the first message (200)"},
    )

    @validates_schema(skip_on_field_errors=False)
    def text_or_files(self, data: dict, **kwargs: Any) -> None:
        if not data.get("message", "").strip() and not data.get("attachments"):
            raise ValidationError("Write a message or attach a file.", "message")


class TicketSchema(Schema):
    id = fields.UUID()
    ticket_number = fields.String()
    customer_id = fields.UUID(allow_none=True)
    agent_id = fields.UUID(allow_none=True)
    category = fields.String()
    subcategory = fields.String(allow_none=True)
    department = fields.String(allow_none=True)
    priority = fields.String()
    status = fields.String()
    channel = fields.String()
    subject = fields.String()
    description = fields.String()
    customer_email = fields.String(allow_none=True)
    customer_name = fields.String(allow_none=True)
    assigned_at = fields.DateTime(allow_none=True)
    first_response_at = fields.DateTime(allow_none=True)
    resolved_at = fields.DateTime(allow_none=True)
    closed_at = fields.DateTime(allow_none=True)
    reopened_count = fields.Integer()
    escalation_level = fields.Integer()
    escalated_at = fields.DateTime(allow_none=True)
    first_response_due_at = fields.DateTime(allow_none=True)
    resolution_due_at = fields.DateTime(allow_none=True)
    sla_breached = fields.Boolean()
    tags = fields.List(fields.String())
    metadata = fields.Dict()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    allowed_transitions = fields.List(
        fields.String(validate=validate.OneOf(STATUSES)),
        metadata={
            "description": 'The statuses this ticket may move to next (API.md "Tickets"); clients offer '
            "these rather than keeping their own copy of the status machine"
        },
    )


class TicketMessageSchema(Schema):
    id = fields.UUID()
    ticket_id = fields.UUID()
    sender_id = fields.UUID(allow_none=True)
    sender_type = fields.String()
    message = fields.String()
    message_type = fields.String()
    attachments = fields.List(fields.Nested(MessageAttachmentSchema), allow_none=True)
    is_internal = fields.Boolean()
    created_at = fields.DateTime()
    client_msg_id = fields.String(allow_none=True)


class EscalationSchema(Schema):
    id = fields.UUID()
    trigger = fields.String()
    from_level = fields.Integer()
    to_level = fields.Integer()
    from_priority = fields.String()
    to_priority = fields.String()
    from_agent_id = fields.UUID(allow_none=True)
    to_agent_id = fields.UUID(allow_none=True)
    reason = fields.String(allow_none=True)
    created_at = fields.DateTime()


class EscalateResponseSchema(Schema):
    ticket = fields.Nested(TicketSchema)
    escalation = fields.Nested(EscalationSchema)


class TicketHistoryEntrySchema(Schema):
    event_id = fields.UUID()
    type = fields.String()
    actor_id = fields.UUID(allow_none=True)
    payload = fields.Dict()
    created_at = fields.DateTime()


class TicketHistorySchema(Schema):
    items = fields.List(fields.Nested(TicketHistoryEntrySchema))


TicketPageSchema = page_of(TicketSchema, "TicketPageSchema")
TicketMessagePageSchema = page_of(TicketMessageSchema, "TicketMessagePageSchema")
