"""/api/v1/automation/{categorization,priority}-rules: admin CRUD over app.services.automation_rules."""

from __future__ import annotations

from aiohttp import web

from app.schemas import automation as s
from app.services import automation_rules as rules
from rest.common import (
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
TAGS = ["Automation"]


def _crud(kind: str, path: str, create: type, update: type, item: type, page: type) -> None:
    base = f"/api/v1/automation/{path}"

    @api_doc(summary=f"List {kind} rules (admins)", tags=TAGS, query=s.RuleListQuery, response=page, errors=(403,))
    async def list_handler(request: web.Request) -> web.Response:
        principal = authenticate(request, "admin")
        params = await query(request, s.RuleListQuery())
        return json_response(await rules.list_rules(context(request), principal, kind, params))

    @api_doc(summary=f"Create a {kind} rule (admins)", tags=TAGS, body=create, response=item, status=201, errors=(403,))
    async def create_handler(request: web.Request) -> web.Response:
        principal = authenticate(request, "admin")
        data = await body(request, create())
        rule = await rules.create_rule(context(request), principal, meta(request), kind, data)
        return created(rule, f"{base}/{rule['id']}")

    @api_doc(summary=f"Get a {kind} rule (admins)", tags=TAGS, response=item, errors=(403, 404))
    async def get_handler(request: web.Request) -> web.Response:
        principal = authenticate(request, "admin")
        rule_id = path_uuid(request, what="Rule")
        return json_response(await rules.get_rule(context(request), principal, kind, rule_id))

    @api_doc(
        summary=f"Change a {kind} rule (partial; admins)", tags=TAGS, body=update, response=item, errors=(403, 404)
    )
    async def update_handler(request: web.Request) -> web.Response:
        principal = authenticate(request, "admin")
        rule_id = path_uuid(request, what="Rule")
        data = await body(request, update())
        return json_response(await rules.update_rule(context(request), principal, meta(request), kind, rule_id, data))

    @api_doc(summary=f"Delete a {kind} rule (admins)", tags=TAGS, status=204, errors=(403, 404))
    async def delete_handler(request: web.Request) -> web.Response:
        principal = authenticate(request, "admin")
        rule_id = path_uuid(request, what="Rule")
        await rules.delete_rule(context(request), principal, meta(request), kind, rule_id)
        return no_content()

    routes.get(base)(list_handler)
    routes.post(base)(create_handler)
    routes.get(base + "/{id}")(get_handler)
    routes.put(base + "/{id}")(update_handler)
    routes.delete(base + "/{id}")(delete_handler)


_crud(
    "categorization",
    "categorization-rules",
    s.CategorizationRuleCreateSchema,
    s.CategorizationRuleUpdateSchema,
    s.CategorizationRuleSchema,
    s.CategorizationRulePageSchema,
)
_crud(
    "priority",
    "priority-rules",
    s.PriorityRuleCreateSchema,
    s.PriorityRuleUpdateSchema,
    s.PriorityRuleSchema,
    s.PriorityRulePageSchema,
)
