"""/api/v1/audit: the audit log, for admins."""

from __future__ import annotations

from aiohttp import web

from app.schemas.audit import AuditPageSchema, AuditQuery
from app.services import audit_log
from rest.common import authenticate, context, json_response, query
from rest.openapi import api_doc

routes = web.RouteTableDef()


@routes.get("/api/v1/audit")
@api_doc(summary="Search the audit log (admins)", tags=["Audit"], query=AuditQuery, response=AuditPageSchema)
async def list_audit(request: web.Request) -> web.Response:
    principal = authenticate(request, "admin")
    params = await query(request, AuditQuery())
    return json_response(await audit_log.list_entries(context(request), principal, params))
