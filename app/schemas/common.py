"""Shared schema pieces: paging, sorting and strict loading."""

from __future__ import annotations

import datetime as dt
from typing import Any

from marshmallow import Schema, ValidationError, fields, pre_load, validate

from app.validation import INT4_MAX, INT4_MIN, field_problems

NAME_LENGTH = validate.Length(min=1, max=100)
INT4_RANGE = validate.Range(min=INT4_MIN, max=INT4_MAX, error="Must be between {min} and {max}.")
STRICT_TRUE = frozenset({True, "true", "True"})
STRICT_FALSE = frozenset({False, "false", "False"})


class StrictSchema(Schema):
    """Unknown fields are refused (marshmallow's default, stated here on purpose), and so is
    text PostgreSQL cannot store (NUL characters, lone UTF-16 surrogates) and nesting deeper
    than :data:`app.validation.MAX_DEPTH` (see :mod:`app.validation`). Every integer is bounded
    by PostgreSQL's ``integer`` (a field may narrow that further), and booleans are booleans
    (``true``/``false``, not ``0``/``1``)."""

    class Meta:
        unknown = "raise"

    def on_bind_field(self, field_name: str, field_obj: fields.Field) -> None:
        for field in (field_obj, getattr(field_obj, "inner", None)):
            if isinstance(field, fields.Integer):
                field.validators = [*field.validators, INT4_RANGE]
            elif isinstance(field, fields.Boolean):
                field.truthy, field.falsy = set(STRICT_TRUE), set(STRICT_FALSE)

    @pre_load
    def refuse_unstorable_text(self, data: Any, **kwargs: Any) -> Any:
        found = field_problems(data)
        if isinstance(data, dict):
            for name, field in self.fields.items():
                raw = data.get(field.data_key or name)
                if isinstance(field, fields.Boolean) and isinstance(raw, (int, float)) and not isinstance(raw, bool):
                    found.setdefault(field.data_key or name, ["Not a valid boolean."])  # 0 == False in Python
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
    return fields.List(
        fields.String(validate=validate.Length(min=1, max=50)), validate=validate.Length(max=20), **kwargs
    )


class PageSchema(Schema):
    total = fields.Integer()
    limit = fields.Integer()
    offset = fields.Integer()


def page_of(item: type[Schema], name: str) -> type[Schema]:
    """A list response schema ``{items, total, limit, offset}`` for the OpenAPI document."""
    return type(name, (PageSchema,), {"items": fields.List(fields.Nested(item))})
