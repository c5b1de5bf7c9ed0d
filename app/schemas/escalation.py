"""Escalation rules, SLA policies and e-mail notifications: request and response shapes.

``conditions`` and ``actions`` follow API.md "Escalation rules" exactly; an unknown key or value
is a 422.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.schemas.common import NAME_LENGTH, PageQuery, PageSchema, StrictSchema
from app.schemas.tickets import PRIORITIES, STATUSES

NOTIFY_TARGETS = ("supervisors", "agent", "customer")


def StrictBoolean(**kwargs: Any) -> fields.Boolean:
    """JSON true/false only (no \"yes\", 1 or \"true\")."""
    return fields.Boolean(truthy={True}, falsy={False}, **kwargs)


def TAG() -> fields.String:
    return fields.String(validate=validate.Length(min=1, max=100))


class ConditionsSchema(StrictSchema):
    category = fields.List(fields.String(validate=NAME_LENGTH), validate=validate.Length(min=1))
    priority = fields.List(fields.String(validate=validate.OneOf(PRIORITIES)), validate=validate.Length(min=1))
    status = fields.List(fields.String(validate=validate.OneOf(STATUSES)), validate=validate.Length(min=1))
    hours_since_created = fields.Float(validate=validate.Range(min=0, max=100000))
    hours_without_agent_response = fields.Float(validate=validate.Range(min=0, max=100000))
    sla_breached = StrictBoolean()
    escalation_level_below = fields.Integer(strict=True, validate=validate.Range(min=1, max=1000))
    tags_any = fields.List(TAG(), validate=validate.Length(min=1))


class ReassignSchema(StrictSchema):
    OPENAPI = {"minProperties": 1, "maxProperties": 1}
    role = fields.String(validate=validate.OneOf(("supervisor",)))
    department = fields.String(validate=NAME_LENGTH)
    agent_id = fields.UUID()

    @validates_schema
    def exactly_one(self, data: dict, **kwargs: object) -> None:
        if len(data) != 1:
            raise ValidationError("Give exactly one of role, department or agent_id.")


class ActionsSchema(StrictSchema):
    OPENAPI = {"minProperties": 1, "not": {"required": ["set_priority", "raise_priority"]}}
    set_priority = fields.String(validate=validate.OneOf(PRIORITIES))
    raise_priority = StrictBoolean(validate=validate.Equal(True), metadata={"enum": [True]})
    increase_level = StrictBoolean(validate=validate.Equal(True), metadata={"enum": [True]})
    reassign_to = fields.Nested(ReassignSchema)
    notify = fields.List(fields.String(validate=validate.OneOf(NOTIFY_TARGETS)), validate=validate.Length(min=1))
    add_tags = fields.List(TAG(), validate=validate.Length(min=1))

    @validates_schema
    def one_priority_action(self, data: dict, **kwargs: object) -> None:
        if "set_priority" in data and "raise_priority" in data:
            raise ValidationError("Give set_priority or raise_priority, not both.")
        if not data:
            raise ValidationError("A rule needs at least one action.")


class RuleCreateSchema(StrictSchema):
    rule_name = fields.String(required=True, validate=validate.Length(min=1, max=255))
    description = fields.String(allow_none=True, validate=validate.Length(max=5000))
    conditions = fields.Nested(ConditionsSchema, required=True)
    actions = fields.Nested(ActionsSchema, required=True)
    priority = fields.Integer(strict=True, validate=validate.Range(min=-100000, max=100000))
    is_active = StrictBoolean()


class RuleUpdateSchema(StrictSchema):
    rule_name = fields.String(validate=validate.Length(min=1, max=255))
    description = fields.String(allow_none=True, validate=validate.Length(max=5000))
    conditions = fields.Nested(ConditionsSchema)
    actions = fields.Nested(ActionsSchema)
    priority = fields.Integer(strict=True, validate=validate.Range(min=-100000, max=100000))
    is_active = StrictBoolean()


class RuleSchema(Schema):
    id = fields.UUID()
    rule_name = fields.String()
    description = fields.String(allow_none=True)
    conditions = fields.Dict()
    actions = fields.Dict()
    priority = fields.Integer()
    is_active = fields.Boolean()
    is_default = fields.Boolean()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class RuleListSchema(PageSchema):
    """Every rule, in the list envelope (``limit`` is the number of rules: the list is not paged)."""

    items = fields.List(fields.Nested(RuleSchema))


class SlaPolicyUpdateSchema(StrictSchema):
    first_response_minutes = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=1000000))
    resolution_minutes = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=1000000))


class SlaPolicySchema(Schema):
    priority = fields.String()
    first_response_minutes = fields.Integer()
    resolution_minutes = fields.Integer()
    updated_at = fields.DateTime()


class SlaPolicyListSchema(PageSchema):
    """Every priority's targets, in the list envelope (not paged)."""

    items = fields.List(fields.Nested(SlaPolicySchema))


class NotificationListQuery(PageQuery):
    status = fields.String(validate=validate.OneOf(("pending", "sent", "failed")))


class NotificationSchema(Schema):
    id = fields.UUID()
    event_id = fields.UUID()
    template = fields.String()
    status = fields.String()
    attempts = fields.Integer()
    next_attempt_at = fields.DateTime()
    last_error = fields.String(allow_none=True)
    created_at = fields.DateTime()
    sent_at = fields.DateTime(allow_none=True)


class NotificationPageSchema(Schema):
    items = fields.List(fields.Nested(NotificationSchema))
    total = fields.Integer()
    limit = fields.Integer()
    offset = fields.Integer()
