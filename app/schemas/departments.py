"""Department request and response schemas (API.md "Departments")."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates

from app.schemas.analytics import known_zones
from app.schemas.common import NAME_LENGTH, PageQuery, StrictSchema, page_of, sort_field

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d$|^24:00$")
# A name is what agents, chats and tickets carry and what paths address: no slash, no edge spaces.
# Python's \s spelled out (JSON Schema regexes are ECMA's, whose \s is another set), so the
# OpenAPI document and the validator mean the same names.
_SPACE = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NAME_PATTERN = rf"^[^{_SPACE}/](?:[^/]*[^{_SPACE}/])?$"
NAME = validate.And(
    NAME_LENGTH,
    validate.Regexp(NAME_PATTERN, error="Use a name without '/' or leading/trailing spaces."),
)
NAME_DOC = {"minLength": 1, "maxLength": 100, "pattern": NAME_PATTERN}  # NAME, for OpenAPI
TEXT = validate.Length(max=2000)


class BusinessHours(fields.Dict):
    """``{"mon": [["09:00", "17:00"]], ...}``: each day a list of ``[start, end)`` ranges in the
    department's time zone (``24:00`` ends a day; a range over midnight is written as two). A day
    left out is closed; ``null`` means always open."""

    def __init__(self, **kwargs: Any) -> None:
        time = {"type": "string", "pattern": _CLOCK.pattern}
        day = {"type": "array", "maxItems": 10, "items": {"type": "array", "minItems": 2, "maxItems": 2, "items": time}}
        doc = {"additionalProperties": False, "properties": {name: day for name in DAYS}}
        kwargs["metadata"] = {**doc, **kwargs.get("metadata", {})}
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> dict:
        hours = super()._deserialize(value, attr, data, **kwargs)
        errors: dict[str, list[str]] = {}
        for day, ranges in hours.items():
            problem = _range_problem(ranges) if day in DAYS else f"Not a day; use {', '.join(DAYS)}."
            if problem:
                errors[day] = [problem]
        if errors:
            raise ValidationError(errors)
        return {day: [list(r) for r in hours[day]] for day in DAYS if day in hours}


def _range_problem(ranges: Any) -> str | None:
    if not isinstance(ranges, list) or len(ranges) > 10:
        return "Give a list of at most 10 [start, end] ranges."
    for item in ranges:
        if not (isinstance(item, list) and len(item) == 2 and all(isinstance(t, str) for t in item)):
            return 'Each range is ["HH:MM", "HH:MM"].'
        start, end = item
        if not (_CLOCK.match(start) and _CLOCK.match(end)) or start == "24:00":
            return f"{start}-{end} is not a range of times of day (00:00 to 24:00)."
        if start >= end:
            return f"{start}-{end} ends before it starts; write a range over midnight as two."
    return None


def _time_zone(value: str) -> None:
    if value not in known_zones():  # the names the OpenAPI document lists (ZoneInfo opens a few more files)
        raise ValidationError(f"{value!r} is not an IANA time zone (such as Europe/Berlin).")


class _DepartmentFields(StrictSchema):
    display_name = fields.String(validate=validate.Length(min=1, max=255))
    description = fields.String(allow_none=True, validate=validate.Length(max=1000))
    categories = fields.List(
        fields.String(validate=NAME, metadata=NAME_DOC),
        validate=validate.Length(max=50),
        metadata={
            "description": "Ticket categories this department serves besides its own name; each category "
            "is served by at most one department (409 otherwise)"
        },
    )
    business_hours = BusinessHours(
        allow_none=True,
        metadata={
            "description": 'Opening hours per day in time_zone, e.g. {"mon": [["09:00", "17:00"]]}; '
            "a day left out is closed, null is always open",
            "example": {"mon": [["09:00", "17:00"]], "tue": [["09:00", "12:00"], ["13:00", "17:00"]]},
        },
    )
    time_zone = fields.String(
        validate=_time_zone,
        metadata={"description": "IANA time zone of business_hours", "example": "Europe/Berlin", "x-time-zone": True},
    )
    offline_message = fields.String(
        allow_none=True,
        validate=TEXT,
        metadata={"description": "What the widget shows when nobody of this department can chat"},
    )
    is_public = fields.Boolean(metadata={"description": "Offered to customers (the widget's department choice)"})
    queue_timeout_minutes = fields.Integer(
        allow_none=True,
        validate=validate.Range(min=1, max=1440),
        metadata={"description": "A queued chat ends after this long (null: CHAT_QUEUE_TIMEOUT_MINUTES)"},
    )
    greeting = fields.String(
        allow_none=True,
        validate=validate.Length(max=500),
        metadata={"description": "Opening line of the automatic chat greeting (null: the default one)"},
    )
    queue_alert_minutes = fields.Integer(
        allow_none=True,
        validate=validate.Range(min=0, max=1440),
        metadata={
            "description": "Supervisors are alerted when the longest chat wait passes this "
            "(null: QUEUE_ALERT_MINUTES; 0: never)"
        },
    )

    @validates("categories")
    def _distinct(self, value: list[str], **kwargs: Any) -> None:
        if len(set(value)) != len(value):
            raise ValidationError("List each category once.")


class DepartmentCreateSchema(_DepartmentFields):
    name = fields.String(
        required=True,
        validate=NAME,
        metadata={"description": "The string agents, chats and tickets carry; it cannot change later", **NAME_DOC},
    )


class DepartmentUpdateSchema(_DepartmentFields):
    """Partial; ``name`` cannot change (agents, chats and tickets carry it)."""

    name = fields.String(metadata={"description": "Refused: a department's name cannot change"})

    @validates("name")
    def _fixed(self, value: str, **kwargs: Any) -> None:
        raise ValidationError(
            "A department's name cannot change (agents, chats and tickets carry it); "
            "create another department and move them."
        )


class DepartmentListQuery(PageQuery):
    category = fields.String(validate=NAME_LENGTH, metadata={"description": "The department serving this category"})
    q = fields.String(validate=validate.Length(min=1, max=100), metadata={"description": "Name contains"})
    sort = sort_field("name", "display_name", "created_at", default="name")


class DepartmentSchema(Schema):
    """Staff see every field; customers the public subset (name, display_name, business_hours,
    time_zone, offline_message) with ``open_now`` and ``available``."""

    id = fields.UUID()
    name = fields.String()
    display_name = fields.String()
    description = fields.String(allow_none=True)
    categories = fields.List(fields.String())
    business_hours = fields.Dict(allow_none=True)
    time_zone = fields.String()
    offline_message = fields.String(allow_none=True)
    is_public = fields.Boolean()
    queue_timeout_minutes = fields.Integer(allow_none=True)
    greeting = fields.String(allow_none=True)
    queue_alert_minutes = fields.Integer(allow_none=True)
    queue_alert_raised_at = fields.DateTime(
        allow_none=True,
        metadata={"description": "Since when the longest chat wait is past the alert threshold (null: no alert)"},
    )
    open_now = fields.Boolean(metadata={"description": "Customers only: within business hours now"})
    available = fields.Boolean(metadata={"description": "Customers only: open now and an agent is online"})
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


DepartmentPageSchema = page_of(DepartmentSchema, "DepartmentPageSchema")
