"""Knowledge-base request and response schemas (SEED.md's kb_articles columns)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate
from webargs.fields import DelimitedList

from app.schemas.common import NAME_LENGTH, PageQuery, StrictSchema, page_of, sort_field, tags_field

CONTENT_FORMATS = ("markdown", "html")
TITLE = validate.Length(min=1, max=255)
CONTENT = validate.Length(min=1, max=100_000)
QUERY_TEXT = validate.Length(min=1, max=200)


class ArticleCreateSchema(StrictSchema):
    title = fields.String(required=True, validate=TITLE)
    content = fields.String(
        required=True,
        validate=CONTENT,
        metadata={"description": "Markdown, or HTML (cleaned with an allow-list on write)"},
    )
    content_format = fields.String(load_default="markdown", validate=validate.OneOf(CONTENT_FORMATS))
    category = fields.String(required=True, validate=NAME_LENGTH)
    tags = tags_field()
    is_published = fields.Boolean(load_default=False)


class ArticleUpdateSchema(StrictSchema):
    """``PUT`` takes a partial body: fields left out keep their values."""

    title = fields.String(validate=TITLE)
    content = fields.String(validate=CONTENT)
    content_format = fields.String(validate=validate.OneOf(CONTENT_FORMATS))
    category = fields.String(validate=NAME_LENGTH)
    tags = tags_field()
    is_published = fields.Boolean()


class ArticleListQuery(PageQuery):
    sort = sort_field(
        "created_at", "updated_at", "published_at", "title", "view_count", "helpful_count", default="-updated_at"
    )
    category = fields.String(validate=NAME_LENGTH)
    tag = fields.String(validate=validate.Length(min=1, max=50))
    is_published = fields.Boolean(metadata={"description": "Agents and up; others see published articles only"})
    author_id = fields.UUID()
    q = fields.String(validate=QUERY_TEXT, metadata={"description": "Words in the article (prefixes match)"})


class VoteSchema(StrictSchema):
    helpful = fields.Boolean(required=True)


class SearchQuery(PageQuery):
    q = fields.String(required=True, validate=QUERY_TEXT)
    category = fields.String(validate=NAME_LENGTH)
    tags = DelimitedList(
        fields.String(validate=validate.Length(min=1, max=50), metadata={"pattern": "^[^,]+$"}),
        validate=validate.Length(max=20),
        metadata={"description": "Comma-separated; an article must have every tag"},
    )


class SuggestQuery(PageQuery):
    q = fields.String(required=True, validate=validate.Length(min=2, max=100))
    limit = fields.Integer(load_default=5, validate=validate.Range(min=1, max=10))


class RelatedQuery(StrictSchema):
    text = fields.String(
        required=True,
        validate=validate.Length(min=2, max=1000),
        metadata={"description": "Free text, such as a customer's first message"},
    )
    limit = fields.Integer(load_default=3, validate=validate.Range(min=1, max=10))


class ArticleSchema(Schema):
    id = fields.UUID()
    title = fields.String()
    content = fields.String()
    content_format = fields.String()
    category = fields.String()
    tags = fields.List(fields.String())
    author_id = fields.UUID(allow_none=True)
    is_published = fields.Boolean()
    published_at = fields.DateTime(allow_none=True)
    view_count = fields.Integer()
    helpful_count = fields.Integer()
    not_helpful_count = fields.Integer()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class VoteResultSchema(Schema):
    article_id = fields.UUID()
    helpful = fields.Boolean()
    helpful_count = fields.Integer()
    not_helpful_count = fields.Integer()


class SearchHitSchema(Schema):
    id = fields.UUID()
    title = fields.String()
    snippet = fields.String(metadata={"description": "HTML-escaped text; matches wrapped in <mark>…</mark>"})
    score = fields.Float()
    category = fields.String()
    tags = fields.List(fields.String())


class SuggestionSchema(Schema):
    id = fields.UUID()
    title = fields.String()
    category = fields.String()


class SuggestionsSchema(Schema):
    items = fields.List(fields.Nested(SuggestionSchema))


ArticlePageSchema = page_of(ArticleSchema, "ArticlePageSchema")
SuggestionPageSchema = page_of(SuggestionSchema, "SuggestionPageSchema")
SearchPageSchema = page_of(SearchHitSchema, "SearchPageSchema")
