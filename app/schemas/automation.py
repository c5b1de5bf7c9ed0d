"""Automation schemas: canned responses, categorisation rules and priority rules."""

from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from app.schemas.common import (
    NAME_LENGTH,
    PageQuery,
    StrictSchema,
    UtcDateTime,
    page_of,
    sort_field,
)
from app.schemas.tickets import PRIORITIES

SHORTCUT = validate.Regexp(r"^[A-Za-z0-9_\-/.]{1,50}$", error="1-50 letters, digits or _-/. characters, no spaces.")
KEYWORD = fields.String(validate=validate.Length(min=1, max=100))


# ---------------------------------------------------------------- canned responses


class CannedCreateSchema(StrictSchema):
    shortcut = fields.String(required=True, validate=SHORTCUT, metadata={"description": "Unique, e.g. /refund"})
    title = fields.String(required=True, validate=validate.Length(min=1, max=255))
    body = fields.String(required=True, validate=validate.Length(min=1, max=10000))
    department = fields.String(
        allow_none=True, validate=NAME_LENGTH, metadata={"description": "None: usable by every department"}
    )


class CannedUpdateSchema(StrictSchema):
    """``PUT`` takes a partial body: fields left out keep their values."""

    shortcut = fields.String(validate=SHORTCUT)
    title = fields.String(validate=validate.Length(min=1, max=255))
    body = fields.String(validate=validate.Length(min=1, max=10000))
    department = fields.String(allow_none=True, validate=NAME_LENGTH)


class CannedSchema(StrictSchema):
    id = fields.UUID()
    shortcut = fields.String()
    title = fields.String()
    body = fields.String()
    department = fields.String(allow_none=True)
    created_by = fields.UUID(allow_none=True)
    created_at = UtcDateTime()
    updated_at = UtcDateTime()


class CannedListQuery(PageQuery):
    sort = sort_field("shortcut", "title", "created_at", default="shortcut")
    department = fields.String(
        validate=NAME_LENGTH, metadata={"description": "This department's responses and the shared ones"}
    )
    q = fields.String(
        validate=validate.Length(min=1, max=200), metadata={"description": "Substring of shortcut, title or body"}
    )


CannedPageSchema = page_of(CannedSchema, "CannedPageSchema")


# ---------------------------------------------------------------- categorisation rules


class CategorizationRuleCreateSchema(StrictSchema):
    keywords = fields.List(KEYWORD, required=True, validate=validate.Length(min=1, max=100))
    category = fields.String(required=True, validate=NAME_LENGTH)
    priority = fields.Integer(
        strict=True,
        load_default=0,
        validate=validate.Range(min=-1000000, max=1000000),
        metadata={"description": "Higher wins when several rules match"},
    )
    is_active = fields.Boolean(load_default=True)


class CategorizationRuleUpdateSchema(StrictSchema):
    keywords = fields.List(KEYWORD, validate=validate.Length(min=1, max=100))
    category = fields.String(validate=NAME_LENGTH)
    priority = fields.Integer(strict=True, validate=validate.Range(min=-1000000, max=1000000))
    is_active = fields.Boolean()


class CategorizationRuleSchema(StrictSchema):
    id = fields.UUID()
    keywords = fields.List(fields.String())
    category = fields.String()
    priority = fields.Integer()
    is_active = fields.Boolean()
    created_at = UtcDateTime()
    updated_at = UtcDateTime()


# ---------------------------------------------------------------- priority rules


class PriorityConditionsSchema(StrictSchema):
    """Every condition given must hold; at least one is required."""

    OPENAPI = {"minProperties": 1}

    keywords_any = fields.List(
        KEYWORD,
        validate=validate.Length(min=1, max=100),
        metadata={"description": "Any keyword in subject or description (case-insensitive)"},
    )
    customer_tier = fields.List(
        fields.String(validate=validate.Length(min=1, max=50)),
        validate=validate.Length(min=1, max=20),
        metadata={"description": "metadata.customer_tier is one of these"},
    )
    has_booking = fields.Boolean(metadata={"description": "metadata.booking_id is (true) / is not (false) present"})

    @validates_schema
    def not_empty(self, data: dict, **kwargs: object) -> None:
        if not data:
            raise ValidationError("Give at least one condition.")


class PriorityRuleCreateSchema(StrictSchema):
    conditions = fields.Nested(PriorityConditionsSchema, required=True)
    set_priority = fields.String(required=True, validate=validate.OneOf(PRIORITIES))
    priority = fields.Integer(
        strict=True,
        load_default=0,
        validate=validate.Range(min=-1000000, max=1000000),
        metadata={"description": "Higher wins when several rules match"},
    )
    is_active = fields.Boolean(load_default=True)


class PriorityRuleUpdateSchema(StrictSchema):
    conditions = fields.Nested(PriorityConditionsSchema)
    set_priority = fields.String(validate=validate.OneOf(PRIORITIES))
    priority = fields.Integer(strict=True, validate=validate.Range(min=-1000000, max=1000000))
    is_active = fields.Boolean()


class PriorityRuleSchema(StrictSchema):
    id = fields.UUID()
    conditions = fields.Dict()
    set_priority = fields.String()
    priority = fields.Integer()
    is_active = fields.Boolean()
    created_at = UtcDateTime()
    updated_at = UtcDateTime()


class RuleListQuery(PageQuery):
    active = fields.Boolean(metadata={"description": "Only active (true) or inactive (false) rules"})


CategorizationRulePageSchema = page_of(CategorizationRuleSchema, "CategorizationRulePageSchema")
PriorityRulePageSchema = page_of(PriorityRuleSchema, "PriorityRulePageSchema")
