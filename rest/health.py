"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app import metrics
from app.health import HEALTH
from rest.common import context, json_response

routes = web.RouteTableDef()


@routes.get("/health")
async def liveness(request: web.Request) -> web.Response:
    return json_response({"status": "up"})


@routes.get("/health/ready")
@routes.get("/actuator/health")
async def readiness(request: web.Request) -> web.Response:
    ready, report = await request.app[HEALTH].report()
    report["profile"] = context(request).settings.profile
    return json_response(report, status=200 if ready else 503)


@routes.get("/metrics")
async def prometheus(request: web.Request) -> web.Response:
    db = context(request).db
    metrics.DB_POOL_IN_USE.set(db.in_use)
    metrics.DB_POOL_SIZE.set(db.pool.get_size())
    response = web.Response(body=generate_latest())
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return response
