"""/api/v1/departments: thin handlers over app.services.departments (admins write; staff read
everything; customers read the public subset). Paths take a department's id or its name."""

from __future__ import annotations

from aiohttp import web

from app.schemas import departments as s
from app.services import departments
from rest.common import authenticate, body, context, created, json_response, meta, no_content, query
from rest.openapi import api_doc

routes = web.RouteTableDef()
TAGS = ["Departments"]
BASE = "/api/v1/departments"


@routes.get(BASE)
@api_doc(
    summary="List departments (staff: all fields; customers: the public subset of public ones)",
    tags=TAGS,
    query=s.DepartmentListQuery,
    response=s.DepartmentPageSchema,
)
async def list_departments(request: web.Request) -> web.Response:
    principal = authenticate(request)
    params = await query(request, s.DepartmentListQuery())
    return json_response(await departments.list_departments(context(request), principal, params))


@routes.post(BASE)
@api_doc(
    summary="Create a department (admins)",
    tags=TAGS,
    body=s.DepartmentCreateSchema,
    response=s.DepartmentSchema,
    status=201,
    errors=(409,),
)
async def create_department(request: web.Request) -> web.Response:
    principal = authenticate(request)
    departments.require_writer(principal)  # who may call is decided before the body is read
    data = await body(request, s.DepartmentCreateSchema())
    item = await departments.create_department(context(request), principal, meta(request), data)
    return created(item, f"{BASE}/{item['id']}")


@routes.get(BASE + "/{ref}")
@api_doc(summary="Get a department by id or name", tags=TAGS, response=s.DepartmentSchema, errors=(404,))
async def get_department(request: web.Request) -> web.Response:
    principal = authenticate(request)
    return json_response(await departments.get_department(context(request), principal, request.match_info["ref"]))


@routes.put(BASE + "/{ref}")
@api_doc(
    summary="Change a department (partial; admins; the name cannot change)",
    tags=TAGS,
    body=s.DepartmentUpdateSchema,
    response=s.DepartmentSchema,
    errors=(404, 409),
)
async def update_department(request: web.Request) -> web.Response:
    principal = authenticate(request)
    departments.require_writer(principal)
    data = await body(request, s.DepartmentUpdateSchema())
    return json_response(
        await departments.update_department(context(request), principal, meta(request), request.match_info["ref"], data)
    )


@routes.delete(BASE + "/{ref}")
@api_doc(
    summary="Delete a department (admins; refused while it has agents, open chats or unresolved "
    "tickets, and for general)",
    tags=TAGS,
    status=204,
    errors=(404, 409),
)
async def delete_department(request: web.Request) -> web.Response:
    principal = authenticate(request)
    await departments.delete_department(context(request), principal, meta(request), request.match_info["ref"])
    return no_content()
