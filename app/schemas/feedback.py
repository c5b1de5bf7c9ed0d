"""Feedback request and response schemas."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from webargs.fields import DelimitedList

from app.schemas.common import NAME_LENGTH, PageQuery, StrictSchema, UtcDateTime, page_of, sort_field

RATING = validate.Range(min=1, max=5)
COMMENT = validate.Length(max=5000)


class FeedbackCreateSchema(StrictSchema):
    OPENAPI = {"oneOf": [{"required": ["ticket_id"]}, {"required": ["session_id"]}]}
    ticket_id = fields.UUID(metadata={"description": "The customer's ticket (or session_id, not both)"})
    session_id = fields.UUID(metadata={"description": "The customer's chat session's id (or ticket_id)"})
    rating = fields.Integer(required=True, strict=True, validate=RATING)
    comment = fields.String(allow_none=True, validate=COMMENT)
    category = fields.String(
        validate=NAME_LENGTH, metadata={"description": "Defaults to the ticket's category (the chat's department)"}
    )

    @validates_schema
    def one_subject(self, data: dict, **kwargs: object) -> None:
        if ("ticket_id" in data) == ("session_id" in data):
            message = ["Give exactly one of ticket_id and session_id."]
            raise ValidationError({"ticket_id": message, "session_id": message})


class FeedbackUpdateSchema(StrictSchema):
    """``PUT`` takes a partial body: fields left out keep their values."""

    rating = fields.Integer(strict=True, validate=RATING)
    comment = fields.String(allow_none=True, validate=COMMENT)
    category = fields.String(validate=NAME_LENGTH)


class FeedbackListQuery(PageQuery):
    sort = sort_field("created_at", "rating", "sentiment_score", default="-created_at")
    ticket_id = fields.UUID()
    session_id = fields.UUID(metadata={"description": "A chat session's id"})
    agent_id = fields.UUID()
    customer_id = fields.UUID()
    rating = DelimitedList(fields.Integer(validate=RATING), validate=validate.Length(max=5))
    category = fields.String(validate=NAME_LENGTH)
    department = fields.String(validate=NAME_LENGTH)
    created_after = UtcDateTime()
    created_before = UtcDateTime()


class FeedbackSchema(Schema):
    id = fields.UUID()
    ticket_id = fields.UUID(allow_none=True)
    session_id = fields.UUID(allow_none=True, metadata={"description": "The chat session's id, for feedback on a chat"})
    customer_id = fields.UUID()
    agent_id = fields.UUID(allow_none=True)
    rating = fields.Integer()
    comment = fields.String(allow_none=True)
    category = fields.String(allow_none=True)
    department = fields.String(allow_none=True)
    sentiment_score = fields.Float(allow_none=True, metadata={"description": "-1.00 (negative) .. 1.00 (positive)"})
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


FeedbackPageSchema = page_of(FeedbackSchema, "FeedbackPageSchema")
