"""Audit log query and response schemas."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.schemas.common import PageQuery, UtcDateTime, page_of


class AuditQuery(PageQuery):
    actor_id = fields.UUID()
    action = fields.String(validate=validate.Length(min=1, max=64))
    entity = fields.String(validate=validate.Length(min=1, max=32))
    entity_id = fields.String(validate=validate.Length(min=1, max=64))
    from_time = UtcDateTime(data_key="from")
    to_time = UtcDateTime(data_key="to")


class AuditEntrySchema(Schema):
    id = fields.Integer()
    occurred_at = fields.DateTime()
    actor_id = fields.UUID(allow_none=True)
    actor_role = fields.String(allow_none=True)
    action = fields.String()
    entity = fields.String()
    entity_id = fields.String(allow_none=True)
    request_id = fields.String(allow_none=True)
    ip = fields.String(allow_none=True)
    transport = fields.String(allow_none=True)
    changes = fields.Dict()


AuditPageSchema = page_of(AuditEntrySchema, "AuditPageSchema")
