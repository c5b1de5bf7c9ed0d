"""/api/v1/canned-responses: thin handlers over app.services.canned (staff read, supervisors/admins write)."""

from __future__ import annotations

from aiohttp import web

from app.schemas import automation as s
from app.services import canned
from rest.common import (
    MANAGERS,
    authenticate,
    body,
    context,
    created,
    json_response,
    meta,
    no_content,
    path_uuid,
    query,
)
from rest.openapi import api_doc

routes = web.RouteTableDef()
TAGS = ["Canned responses"]
BASE = "/api/v1/canned-responses"


@routes.get(BASE)
@api_doc(
    summary="List canned responses (staff)",
    tags=TAGS,
    query=s.CannedListQuery,
    response=s.CannedPageSchema,
    errors=(403,),
)
async def list_canned(request: web.Request) -> web.Response:
    principal = authenticate(request)
    params = await query(request, s.CannedListQuery())
    return json_response(await canned.list_canned(context(request), principal, params))


@routes.post(BASE)
@api_doc(
    summary="Create a canned response (supervisors, admins)",
    tags=TAGS,
    body=s.CannedCreateSchema,
    response=s.CannedSchema,
    status=201,
    errors=(403, 409),
)
async def create_canned(request: web.Request) -> web.Response:
    principal = authenticate(request, *MANAGERS)
    data = await body(request, s.CannedCreateSchema())
    item = await canned.create_canned(context(request), principal, meta(request), data)
    return created(item, f"{BASE}/{item['id']}")


@routes.get(BASE + "/{id}")
@api_doc(summary="Get a canned response (staff)", tags=TAGS, response=s.CannedSchema, errors=(403, 404))
async def get_canned(request: web.Request) -> web.Response:
    principal = authenticate(request)
    canned_id = path_uuid(request, what="Canned response")
    return json_response(await canned.get_canned(context(request), principal, canned_id))


@routes.put(BASE + "/{id}")
@api_doc(
    summary="Change a canned response (partial; supervisors, admins)",
    tags=TAGS,
    body=s.CannedUpdateSchema,
    response=s.CannedSchema,
    errors=(403, 404, 409),
)
async def update_canned(request: web.Request) -> web.Response:
    principal = authenticate(request, *MANAGERS)
    canned_id = path_uuid(request, what="Canned response")
    data = await body(request, s.CannedUpdateSchema())
    return json_response(await canned.update_canned(context(request), principal, meta(request), canned_id, data))


@routes.delete(BASE + "/{id}")
@api_doc(summary="Delete a canned response (supervisors, admins)", tags=TAGS, status=204, errors=(403, 404))
async def delete_canned(request: web.Request) -> web.Response:
    principal = authenticate(request, *MANAGERS)
    canned_id = path_uuid(request, what="Canned response")
    await canned.delete_canned(context(request), principal, meta(request), canned_id)
    return no_content()
