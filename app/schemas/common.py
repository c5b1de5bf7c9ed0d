"""Shared schema pieces: paging, sorting and strict loading."""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from marshmallow import Schema, ValidationError, fields, pre_load, validate

NAME_LENGTH = validate.Length(min=1, max=100)


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, Mapping):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


class StrictSchema(Schema):
    """Unknown fields are refused (marshmallow's default, stated here on purpose), and so is
    text with NUL characters, which PostgreSQL cannot store."""

    class Meta:
        unknown = "raise"

    @pre_load
    def refuse_nul_characters(self, data: Any, **kwargs: Any) -> Any:
        if isinstance(data, Mapping):
            found = {str(k): ["NUL characters are not allowed."] for k, v in data.items() if _has_nul(v)}
            if found:
                raise ValidationError(found)
        return data


class UtcDateTime(fields.AwareDateTime):
    """A zoned ISO 8601 time, normalised to UTC; one outside the representable range is invalid."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> dt.datetime:
        parsed = super()._deserialize(value, attr, data, **kwargs)
        try:
            return parsed.astimezone(dt.timezone.utc)
        except OverflowError:
            raise ValidationError("Date is out of range.") from None


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
