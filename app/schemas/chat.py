"""Chat payloads: Socket.IO events (PROTOCOL.md) and the chat REST endpoints share these."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.schemas.attachments import REFERENCE_HELP, AttachmentId, MessageAttachmentSchema
from app.validation import text_problem
from app.schemas.common import NAME_LENGTH, PageQuery, PageSchema, StrictSchema, page_of, sort_field

SESSION_STATUSES = ("queued", "active", "ended", "timed_out", "abandoned")
MESSAGE_TEXT = validate.Length(min=1, max=5000)
CLIENT_MSG_ID = validate.Length(min=1, max=64)
AGENT_STATUSES = ("online", "away", "offline")


class SessionRef(StrictSchema):
    session_id = fields.String(required=True, validate=validate.Length(min=1, max=64))


class ChatStartSchema(StrictSchema):
    department = fields.String(validate=NAME_LENGTH)
    subject = fields.String(validate=validate.Length(min=1, max=255))
    message = fields.String(validate=MESSAGE_TEXT)
    client_msg_id = fields.String(validate=CLIENT_MSG_ID)
    metadata = fields.Dict(keys=fields.String(validate=validate.Length(max=100)))
    customer_id = fields.UUID(metadata={"description": "Services and staff: the customer the chat is for"})


def _attachment_ids() -> fields.List:
    return fields.List(AttachmentId(), validate=validate.Length(max=10), metadata={"description": REFERENCE_HELP})


TEXT_OR_FILES = {  # the rule of text_or_files below, for OpenAPI
    "anyOf": [
        {"required": ["message"], "properties": {"message": {"pattern": "\\S"}}},
        {"required": ["attachments"], "properties": {"attachments": {"minItems": 1}}},
    ]
}


class _TextOrFiles:
    OPENAPI = TEXT_OR_FILES

    @validates_schema(skip_on_field_errors=False)
    def text_or_files(self, data: dict, **kwargs: Any) -> None:
        if not data.get("message", "").strip() and not data.get("attachments"):
            raise ValidationError("Write a message or attach a file.", "message")


class ChatMessageSchema(_TextOrFiles, SessionRef):
    client_msg_id = fields.String(required=True, validate=CLIENT_MSG_ID)
    message = fields.String(
        load_default="",
        validate=validate.Length(max=5000),
        metadata={"description": "Required unless the message has attachments"},
    )
    message_type = fields.String(load_default="text", validate=validate.OneOf(("text",)))
    attachments = _attachment_ids()

    _PLAIN_KEYS = frozenset({"session_id", "client_msg_id", "message", "message_type"})

    def fast_load(self, data: Any) -> dict | None:
        """The common case (a text message, no files) checked in a few microseconds, for the chat
        hot path. It accepts only what :meth:`load` accepts, with the same result; None means
        "not sure" and the caller runs :meth:`load`, which gives the result or the errors."""
        if type(data) is not dict or not data.keys() <= self._PLAIN_KEYS:
            return None
        session_id, client_msg_id = data.get("session_id"), data.get("client_msg_id")
        message, message_type = data.get("message", ""), data.get("message_type", "text")
        if type(session_id) is not str or type(client_msg_id) is not str or type(message) is not str:
            return None
        if message_type != "text" or not (0 < len(session_id) <= 64 and 0 < len(client_msg_id) <= 64):
            return None
        if len(message) > 5000 or not message.strip():
            return None
        if text_problem(session_id) or text_problem(client_msg_id) or text_problem(message):
            return None
        return {"session_id": session_id, "client_msg_id": client_msg_id, "message": message, "message_type": "text"}


class ChatSyncSchema(SessionRef):
    after_seq = fields.Integer(load_default=0, validate=validate.Range(min=0))


class ChatTypingSchema(SessionRef):
    typing = fields.Boolean(required=True)


class ChatReadSchema(SessionRef):
    up_to_seq = fields.Integer(required=True, validate=validate.Range(min=0))


class ChatRateSchema(SessionRef):
    rating = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=5))
    comment = fields.String(validate=validate.Length(max=5000))


class LeaveMessageSchema(StrictSchema):
    session_id = fields.String(validate=validate.Length(min=1, max=64))
    subject = fields.String(required=True, validate=validate.Length(min=1, max=255))
    message = fields.String(required=True, validate=validate.Length(min=1, max=20_000))
    email = fields.Email(validate=validate.Length(max=255))
    department = fields.String(
        validate=NAME_LENGTH,
        metadata={
            "description": "Where the ticket goes when no session is named (the widget's department); "
            "a named session's department wins"
        },
    )


class WatchAvailabilitySchema(StrictSchema):
    departments = fields.List(
        fields.String(validate=NAME_LENGTH),
        validate=validate.Length(max=20),
        metadata={"description": "Departments to watch (replacing any watched before); default: every public one"},
    )


class AgentStatusEventSchema(StrictSchema):
    status = fields.String(required=True, validate=validate.OneOf(AGENT_STATUSES))


class QueueSnapshotSchema(StrictSchema):
    department = fields.String(validate=NAME_LENGTH)


class TransferSchema(SessionRef):
    to_agent_id = fields.UUID()
    department = fields.String(validate=NAME_LENGTH)


class NoteSchema(SessionRef):
    message = fields.String(required=True, validate=MESSAGE_TEXT)


# REST ------------------------------------------------------------------------------------


class SessionListQuery(PageQuery):
    status = fields.String(validate=validate.OneOf(SESSION_STATUSES))
    department = fields.String(validate=NAME_LENGTH)
    agent_id = fields.UUID()
    customer_id = fields.UUID()
    sort = sort_field("started_at", default="-started_at")


class SessionUpdateSchema(StrictSchema):
    """Partial: ``status: ended`` ends the chat; ``agent_id``/``department`` transfer it."""

    status = fields.String(validate=validate.OneOf(("ended",)))
    agent_id = fields.UUID()
    department = fields.String(validate=NAME_LENGTH)
    subject = fields.String(validate=validate.Length(min=1, max=255))
    metadata = fields.Dict(keys=fields.String(validate=validate.Length(max=100)))


class MessageCreateSchema(_TextOrFiles, StrictSchema):
    client_msg_id = fields.String(
        validate=CLIENT_MSG_ID, metadata={"description": "Idempotency key; a resend returns the first message"}
    )
    message = fields.String(
        load_default="",
        validate=validate.Length(max=5000),
        metadata={"description": "Required unless the message has attachments"},
    )
    message_type = fields.String(load_default="text", validate=validate.OneOf(("text",)))
    attachments = _attachment_ids()


class MessageListQuery(StrictSchema):
    after_seq = fields.Integer(
        load_default=0,
        validate=validate.Range(min=0),
        metadata={"description": "The cursor: messages with a greater seq"},
    )
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))


class AgentRefSchema(Schema):
    id = fields.UUID()
    display_name = fields.String()


class SessionSchema(Schema):
    id = fields.UUID()
    session_key = fields.String()
    status = fields.String()
    customer_id = fields.UUID()
    customer_name = fields.String(allow_none=True, metadata={"description": "From the customer's token at start"})
    agent_id = fields.UUID(allow_none=True)
    agent = fields.Nested(AgentRefSchema, allow_none=True)
    department = fields.String()
    ticket_id = fields.UUID(allow_none=True)
    subject = fields.String(allow_none=True)
    queue_position = fields.Integer(allow_none=True)
    preview = fields.String(
        allow_none=True,
        metadata={
            "description": "While queued: the start of the customer's first message (for agents deciding to accept)"
        },
    )
    started_at = fields.DateTime()
    assigned_at = fields.DateTime(allow_none=True)
    ended_at = fields.DateTime(allow_none=True)
    end_reason = fields.String(allow_none=True)
    duration_seconds = fields.Integer(allow_none=True)
    satisfaction_rating = fields.Integer(allow_none=True)
    last_seq = fields.Integer()
    customer_last_read_seq = fields.Integer()
    agent_last_read_seq = fields.Integer()


class MessageSchema(Schema):
    id = fields.UUID()
    session_id = fields.UUID()
    seq = fields.Integer()
    client_msg_id = fields.String(allow_none=True)
    sender_type = fields.String()
    sender_id = fields.UUID(allow_none=True)
    message_type = fields.String()
    message = fields.String()
    attachments = fields.List(
        fields.Nested(MessageAttachmentSchema),
        allow_none=True,
        metadata={"description": "The message's files, with signed links"},
    )
    created_at = fields.DateTime()


class MessageListSchema(PageSchema):
    """The list envelope, paged by cursor (``after_seq``) rather than by ``offset``."""

    items = fields.List(fields.Nested(MessageSchema), metadata={"description": "In seq order"})
    total = fields.Integer(
        metadata={
            "description": "All the session's messages (its last_seq); notes are not "
            "messages, so both parties count the same"
        }
    )
    limit = fields.Integer()
    offset = fields.Integer(
        metadata={
            "description": "How many messages come before this page: after_seq "
            "(at most total). Page on with after_seq = the last seq"
        }
    )
    session = fields.Nested(SessionSchema)


SessionPageSchema = page_of(SessionSchema, "SessionPageSchema")


class AvailabilityQuery(StrictSchema):
    department = fields.String(validate=NAME_LENGTH)


class DepartmentAvailabilitySchema(Schema):
    name = fields.String()
    display_name = fields.String()
    description = fields.String(allow_none=True)
    offline_message = fields.String(allow_none=True)
    online_agents = fields.Integer()
    free_places = fields.Integer()
    queued = fields.Integer()
    business_hours = fields.Dict(
        allow_none=True, metadata={"description": '{"mon": [["09:00", "17:00"]], ...} in time_zone; null: always open'}
    )
    time_zone = fields.String(allow_none=True)
    open_now = fields.Boolean(metadata={"description": "Within the department's business hours (none set: always)"})
    available = fields.Boolean()


class AvailabilitySchema(Schema):
    departments = fields.List(fields.Nested(DepartmentAvailabilitySchema))
