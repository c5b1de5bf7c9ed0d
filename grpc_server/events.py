"""SupportEventService: publish into the event log, subscribe to it (app.services.events_api)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc

from app.context import AppContext
from app.errors import Unavailable
from app.services import events_api
from grpc_server.convert import request_fields, to_message
from support_stubs.support.v1 import events_pb2 as pb
from support_stubs.support.v1 import events_pb2_grpc
from grpc_server.interceptors import caller, current_call

SHUTTING_DOWN = "The server is shutting down; resubscribe with after_event_id set to the last event received"


class SupportEventServicer(events_pb2_grpc.SupportEventServiceServicer):
    def __init__(self, ctx: AppContext, hub: events_api.EventHub, draining: asyncio.Event):
        self.ctx = ctx
        self.hub = hub
        self.draining = draining

    async def PublishSupportEvent(self, request: pb.SupportEvent, context: grpc.aio.ServicerContext) -> Any:
        data = request_fields(request)
        data.pop("position", None)  # output only
        result = await events_api.publish(self.ctx, caller(), current_call().meta, data)
        event = result["event"]
        return pb.EventResponse(
            event_id=str(event["event_id"]),
            duplicate=result["duplicate"],
            position=event["position"],
            topic=event["topic"],
        )

    async def SubscribeToSupportEvents(
        self, request: pb.SubscribeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.SupportEvent]:
        flt, cursor = await events_api.prepare_subscription(self.ctx, caller(), request_fields(request))
        subscription = await self.hub.subscribe(flt, cursor)
        try:
            while True:
                row = await subscription.next(stop=self.draining)
                if row is None:
                    raise Unavailable(SHUTTING_DOWN)
                yield to_message(pb.SupportEvent, events_api.event_view(row))
        finally:
            subscription.close()
