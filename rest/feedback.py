"""/api/v1/feedback: thin handlers over app.services.feedback (analytics over app.services.analytics)."""

from __future__ import annotations

from aiohttp import web

from app.schemas import analytics as a
from app.schemas import feedback as s
from app.services import analytics, feedback
from rest.common import authenticate, body, context, created, json_response, meta, path_uuid, query
from rest.openapi import api_doc

routes = web.RouteTableDef()
TAGS = ["Feedback"]


@routes.get("/api/v1/feedback")
@api_doc(
    summary="List the feedback the caller may see", tags=TAGS, query=s.FeedbackListQuery, response=s.FeedbackPageSchema
)
async def list_feedback(request: web.Request) -> web.Response:
    principal = authenticate(request)
    params = await query(request, s.FeedbackListQuery())
    return json_response(await feedback.list_feedback(context(request), principal, params))


@routes.post("/api/v1/feedback")
@api_doc(
    summary="Give feedback on your ticket or chat session (one each)",
    tags=TAGS,
    body=s.FeedbackCreateSchema,
    response=s.FeedbackSchema,
    status=201,
    errors=(404, 409),
)
async def create_feedback(request: web.Request) -> web.Response:
    principal = authenticate(request)
    data = await body(request, s.FeedbackCreateSchema())
    item = await feedback.create_feedback(context(request), principal, meta(request), data)
    return created(item, f"/api/v1/feedback/{item['id']}")


@routes.get("/api/v1/feedback/analytics")
@api_doc(
    summary="Feedback figures: count, rating, CSAT, distribution, sentiment, by agent and category",
    tags=TAGS,
    query=a.FeedbackWindowQuery,
    response=a.FeedbackReportSchema,
)
async def feedback_analytics(request: web.Request) -> web.Response:
    principal = authenticate(request)
    params = await query(request, a.FeedbackWindowQuery())
    return json_response(await analytics.report(context(request), principal, "satisfaction", params))


@routes.get("/api/v1/feedback/{id}")
@api_doc(summary="Get feedback", tags=TAGS, response=s.FeedbackSchema, errors=(404,))
async def get_feedback(request: web.Request) -> web.Response:
    principal = authenticate(request)
    feedback_id = path_uuid(request, what="Feedback")
    return json_response(await feedback.get_feedback(context(request), principal, feedback_id))


@routes.put("/api/v1/feedback/{id}")
@api_doc(
    summary="Change your feedback (partial)",
    tags=TAGS,
    body=s.FeedbackUpdateSchema,
    response=s.FeedbackSchema,
    errors=(404,),
)
async def update_feedback(request: web.Request) -> web.Response:
    principal = authenticate(request)
    feedback_id = path_uuid(request, what="Feedback")
    data = await body(request, s.FeedbackUpdateSchema())
    return json_response(await feedback.update_feedback(context(request), principal, meta(request), feedback_id, data))
