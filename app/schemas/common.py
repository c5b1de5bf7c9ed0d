"""Shared schema pieces: paging, sorting and strict loading."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

NAME_LENGTH = validate.Length(min=1, max=100)


class StrictSchema(Schema):
    """Unknown fields are refused (marshmallow's default, stated here on purpose)."""

    class Meta:
        unknown = "raise"


class PageQuery(StrictSchema):
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=1_000_000))


def sort_field(*names: str, default: str) -> fields.String:
    """A ``sort`` parameter: one of ``names``, optionally prefixed with ``-`` for descending."""
    allowed = [n for name in names for n in (name, f"-{name}")]
    return fields.String(load_default=default, validate=validate.OneOf(allowed))


def tags_field(**kwargs) -> fields.List:
    return fields.List(fields.String(validate=validate.Length(min=1, max=50)),
                       validate=validate.Length(max=20), **kwargs)


class PageSchema(Schema):
    total = fields.Integer()
    limit = fields.Integer()
    offset = fields.Integer()


def page_of(item: type[Schema], name: str) -> type[Schema]:
    """A list response schema ``{items, total, limit, offset}`` for the OpenAPI document."""
    return type(name, (PageSchema,), {"items": fields.List(fields.Nested(item))})
