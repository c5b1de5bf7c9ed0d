"""/api/v1/escalation-rules, /api/v1/sla-policies and /api/v1/notifications (admins). The
escalation, SLA and e-mail duties these configure run from app/duties.py."""

from __future__ import annotations


from aiohttp import web

from app.schemas import escalation as s
from app.services import escalation, notifications
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
TAGS = ["Escalation"]


@routes.get("/api/v1/escalation-rules")
@api_doc(summary="List escalation rules, highest priority first", tags=TAGS, response=s.RuleListSchema)
async def list_rules(request: web.Request) -> web.Response:
    return json_response(await escalation.list_rules(context(request), authenticate(request, "admin")))


@routes.post("/api/v1/escalation-rules")
@api_doc(summary="Create an escalation rule", tags=TAGS, body=s.RuleCreateSchema, response=s.RuleSchema, status=201)
async def create_rule(request: web.Request) -> web.Response:
    principal = authenticate(request, "admin")
    data = await body(request, s.RuleCreateSchema())
    rule = await escalation.create_rule(context(request), principal, meta(request), data)
    return created(rule, f"/api/v1/escalation-rules/{rule['id']}")


@routes.get("/api/v1/escalation-rules/{id}")
@api_doc(summary="Get an escalation rule", tags=TAGS, response=s.RuleSchema, errors=(404,))
async def get_rule(request: web.Request) -> web.Response:
    principal = authenticate(request, "admin")
    rule_id = path_uuid(request, what="Escalation rule")
    return json_response(await escalation.get_rule(context(request), principal, rule_id))


@routes.put("/api/v1/escalation-rules/{id}")
@api_doc(
    summary="Change an escalation rule (partial)",
    tags=TAGS,
    body=s.RuleUpdateSchema,
    response=s.RuleSchema,
    errors=(404,),
)
async def update_rule(request: web.Request) -> web.Response:
    principal = authenticate(request, "admin")
    rule_id = path_uuid(request, what="Escalation rule")
    data = await body(request, s.RuleUpdateSchema())
    return json_response(await escalation.update_rule(context(request), principal, meta(request), rule_id, data))


@routes.delete("/api/v1/escalation-rules/{id}")
@api_doc(summary="Delete an escalation rule", tags=TAGS, status=204, errors=(404,))
async def delete_rule(request: web.Request) -> web.Response:
    principal = authenticate(request, "admin")
    rule_id = path_uuid(request, what="Escalation rule")
    await escalation.delete_rule(context(request), principal, meta(request), rule_id)
    return no_content()


@routes.get("/api/v1/sla-policies")
@api_doc(summary="List the SLA targets per priority", tags=TAGS, response=s.SlaPolicyListSchema)
async def list_sla_policies(request: web.Request) -> web.Response:
    return json_response(await escalation.list_sla_policies(context(request), authenticate(request, "admin")))


@routes.put("/api/v1/sla-policies/{priority}")
@api_doc(
    summary="Set the SLA targets of a priority",
    tags=TAGS,
    body=s.SlaPolicyUpdateSchema,
    response=s.SlaPolicySchema,
    errors=(404,),
)
async def update_sla_policy(request: web.Request) -> web.Response:
    principal = authenticate(request, "admin")
    data = await body(request, s.SlaPolicyUpdateSchema())
    return json_response(
        await escalation.update_sla_policy(
            context(request), principal, meta(request), request.match_info["priority"], data
        )
    )


@routes.get("/api/v1/notifications")
@api_doc(
    summary="List e-mail notifications (e.g. status=failed for the parked ones)",
    tags=TAGS,
    query=s.NotificationListQuery,
    response=s.NotificationPageSchema,
)
async def list_notifications(request: web.Request) -> web.Response:
    principal = authenticate(request, "admin")
    params = await query(request, s.NotificationListQuery())
    return json_response(await notifications.list_notifications(context(request), principal, params))
