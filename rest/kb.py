"""/api/v1/kb: thin handlers over app.services.kb.

Reading published articles, search and suggestions need no token (the widget runs on customers'
sites); a valid token still matters there, since agents and up also see drafts.
"""

from __future__ import annotations

from aiohttp import web

from app.auth import Principal
from app.schemas import kb as s
from app.services import kb
from rest.common import authenticate, body, context, created, json_response, meta, no_content, path_uuid, query
from rest.openapi import api_doc

routes = web.RouteTableDef()
TAGS = ["Knowledge base"]


@routes.get("/api/v1/kb/articles")
@api_doc(
    summary="List articles (published ones without a token; drafts too for agents and up)",
    tags=TAGS,
    query=s.ArticleListQuery,
    response=s.ArticlePageSchema,
    public=True,
    errors=(403,),
)
async def list_articles(request: web.Request) -> web.Response:
    principal = _optional_principal(request)
    params = await query(request, s.ArticleListQuery())
    return json_response(await kb.list_articles(context(request), principal, params))


@routes.post("/api/v1/kb/articles")
@api_doc(
    summary="Create an article (agents and up)",
    tags=TAGS,
    body=s.ArticleCreateSchema,
    response=s.ArticleSchema,
    status=201,
)
async def create_article(request: web.Request) -> web.Response:
    principal = authenticate(request)
    data = await body(request, s.ArticleCreateSchema())
    article = await kb.create_article(context(request), principal, meta(request), data)
    return created(article, f"/api/v1/kb/articles/{article['id']}")


@routes.get("/api/v1/kb/articles/{id}")
@api_doc(
    summary="Get an article (published ones without a token)",
    tags=TAGS,
    response=s.ArticleSchema,
    public=True,
    errors=(404,),
)
async def get_article(request: web.Request) -> web.Response:
    principal = _optional_principal(request)
    article_id = path_uuid(request, what="Article")
    return json_response(await kb.get_article(context(request), principal, article_id))


@routes.put("/api/v1/kb/articles/{id}")
@api_doc(
    summary="Update or publish an article (partial; agents and up)",
    tags=TAGS,
    body=s.ArticleUpdateSchema,
    response=s.ArticleSchema,
    errors=(404,),
)
async def update_article(request: web.Request) -> web.Response:
    principal = authenticate(request)
    article_id = path_uuid(request, what="Article")
    data = await body(request, s.ArticleUpdateSchema())
    return json_response(await kb.update_article(context(request), principal, meta(request), article_id, data))


@routes.delete("/api/v1/kb/articles/{id}")
@api_doc(summary="Delete an article (agents and up)", tags=TAGS, status=204, errors=(404,))
async def delete_article(request: web.Request) -> web.Response:
    principal = authenticate(request)
    article_id = path_uuid(request, what="Article")
    await kb.delete_article(context(request), principal, meta(request), article_id)
    return no_content()


@routes.post("/api/v1/kb/articles/{id}/vote")
@api_doc(
    summary="Vote an article helpful or not (a new vote replaces the caller's earlier one)",
    tags=TAGS,
    body=s.VoteSchema,
    response=s.VoteResultSchema,
    errors=(404, 409),
)
async def vote(request: web.Request) -> web.Response:
    principal = authenticate(request)
    article_id = path_uuid(request, what="Article")
    data = await body(request, s.VoteSchema())
    return json_response(await kb.vote(context(request), principal, meta(request), article_id, data["helpful"]))


@routes.get("/api/v1/kb/search")
@api_doc(
    summary="Search published articles (ranked, with highlighted snippets)",
    tags=TAGS,
    query=s.SearchQuery,
    response=s.SearchPageSchema,
    public=True,
)
async def search(request: web.Request) -> web.Response:
    params = await query(request, s.SearchQuery())
    return json_response(await kb.search(context(request), params))


@routes.get("/api/v1/kb/suggest")
@api_doc(
    summary="Title suggestions while typing (published articles)",
    tags=TAGS,
    query=s.SuggestQuery,
    response=s.SuggestionPageSchema,
    public=True,
)
async def suggest(request: web.Request) -> web.Response:
    params = await query(request, s.SuggestQuery())
    return json_response(await kb.suggest(context(request), params))


@routes.get("/api/v1/kb/related")
@api_doc(
    summary="Published articles related to a free text (the widget's first message)",
    tags=TAGS,
    query=s.RelatedQuery,
    response=s.SuggestionsSchema,
    public=True,
)
async def related(request: web.Request) -> web.Response:
    params = await query(request, s.RelatedQuery())
    return json_response({"items": await kb.related_articles(context(request), params["text"], params["limit"])})


def _optional_principal(request: web.Request) -> Principal | None:
    """The caller when a token is sent (it must then be valid: a bad token is a 401, not a
    silent downgrade to anonymous); None without one."""
    return authenticate(request) if request.headers.get("Authorization") else None
