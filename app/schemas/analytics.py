"""Analytics window parameters and report shapes (API.md "Feedback and analytics response shapes")."""

from __future__ import annotations

import functools
import zoneinfo

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.schemas.common import NAME_LENGTH, StrictSchema, UtcDateTime

GRANULARITIES = ("hour", "day", "week")
MAX_BUCKETS = 1000


@functools.cache
def known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) | {"UTC"}


def _known_zone(name: str) -> None:
    if name not in known_zones():
        raise ValidationError("Not a known IANA time zone.")


class WindowQuery(StrictSchema):
    since = UtcDateTime(data_key="from", metadata={"description": "Start (inclusive); default: 30 days before `to`"})
    until = UtcDateTime(data_key="to", metadata={"description": "End (exclusive); default: now"})
    granularity = fields.String(load_default="day", validate=validate.OneOf(GRANULARITIES))
    tz = fields.String(
        load_default="UTC",
        validate=[validate.Length(max=64), _known_zone],
        metadata={"description": "IANA time zone the series buckets start in", "x-time-zone": True},
    )
    department = fields.String(validate=NAME_LENGTH)
    agent_id = fields.UUID(metadata={"description": "An agent's user id; agents always get their own figures"})

    @validates_schema
    def ordered(self, data: dict, **kwargs: object) -> None:
        if data.get("since") and data.get("until") and data["since"] >= data["until"]:
            raise ValidationError({"from": ["Must be before `to`."]})


class FeedbackWindowQuery(WindowQuery):
    category = fields.String(validate=NAME_LENGTH)


class DurationSchema(Schema):
    avg = fields.Float(allow_none=True)
    p50 = fields.Float(allow_none=True)
    p90 = fields.Float(allow_none=True)
    count = fields.Integer()


class _Window(Schema):
    from_ = fields.DateTime(data_key="from")
    to = fields.DateTime()
    granularity = fields.String()
    tz = fields.String()
    department = fields.String(allow_none=True)
    agent_id = fields.UUID(allow_none=True)


class TicketTotalsSchema(Schema):
    created = fields.Integer()
    resolved = fields.Integer()
    reopened = fields.Integer()
    escalated = fields.Integer()
    backlog = fields.Integer()
    sla_breached = fields.Integer(metadata={"description": "Tickets created in the window that breached their SLA"})


class TicketBucketSchema(Schema):
    bucket = fields.DateTime()
    created = fields.Integer()
    resolved = fields.Integer()


class TicketReportSchema(_Window):
    totals = fields.Nested(TicketTotalsSchema)
    by_status = fields.Dict(keys=fields.String(), values=fields.Integer())
    by_priority = fields.Dict(keys=fields.String(), values=fields.Integer())
    by_category = fields.Dict(keys=fields.String(), values=fields.Integer())
    series = fields.List(fields.Nested(TicketBucketSchema))


class ChatTotalsSchema(Schema):
    sessions = fields.Integer()
    answered = fields.Integer()
    timed_out = fields.Integer()
    abandoned = fields.Integer()


class ChatBucketSchema(Schema):
    bucket = fields.DateTime()
    sessions = fields.Integer()
    answered = fields.Integer()


class ChatReportSchema(_Window):
    totals = fields.Nested(ChatTotalsSchema)
    wait_seconds = fields.Nested(DurationSchema)
    duration_seconds = fields.Nested(DurationSchema)
    peak_concurrent = fields.Integer()
    series = fields.List(fields.Nested(ChatBucketSchema))


class TicketTimesSchema(Schema):
    first_response_seconds = fields.Nested(DurationSchema)
    resolution_seconds = fields.Nested(DurationSchema)


class ChatTimesSchema(Schema):
    first_response_seconds = fields.Nested(DurationSchema)


class ResponseTimeBucketSchema(Schema):
    bucket = fields.DateTime()
    ticket_first_response_seconds = fields.Float(allow_none=True)
    ticket_resolution_seconds = fields.Float(allow_none=True)
    chat_first_response_seconds = fields.Float(allow_none=True)


class ResponseTimeReportSchema(_Window):
    tickets = fields.Nested(TicketTimesSchema)
    chats = fields.Nested(ChatTimesSchema)
    series = fields.List(fields.Nested(ResponseTimeBucketSchema))


class AgentSatisfactionSchema(Schema):
    agent_id = fields.UUID()
    count = fields.Integer()
    average_rating = fields.Float(allow_none=True)
    csat = fields.Float(allow_none=True)


class CategorySatisfactionSchema(Schema):
    count = fields.Integer()
    average_rating = fields.Float(allow_none=True)


class SatisfactionBucketSchema(Schema):
    bucket = fields.DateTime()
    count = fields.Integer()
    average_rating = fields.Float(allow_none=True)


class SatisfactionReportSchema(_Window):
    count = fields.Integer()
    average_rating = fields.Float(allow_none=True)
    csat = fields.Float(allow_none=True, metadata={"description": "Share of ratings 4-5, 0..1"})
    distribution = fields.Dict(keys=fields.String(), values=fields.Integer())
    average_sentiment = fields.Float(allow_none=True)
    by_agent = fields.List(fields.Nested(AgentSatisfactionSchema))
    by_category = fields.Dict(keys=fields.String(), values=fields.Nested(CategorySatisfactionSchema))
    series = fields.List(fields.Nested(SatisfactionBucketSchema))


class FeedbackReportSchema(SatisfactionReportSchema):
    category = fields.String(allow_none=True)
