"""A real grpc.aio server implementing the assumed ``booking.v1`` contract: it stands in for the
Booking Service (another team's) in the REST, client and browser tests, and records what it is
asked. Calls for a customer or booking marked slow wait until the server stops (longer than any
deadline the tests give), so "slower than the deadline" needs no sleep."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator

import grpc
from google.protobuf import timestamp_pb2

from support_stubs.booking.v1 import booking_pb2, booking_pb2_grpc


class Bookings(booking_pb2_grpc.BookingServiceServicer):
    def __init__(self) -> None:
        self.by_customer: dict[str, list[booking_pb2.Booking]] = {}
        self.by_id: dict[str, booking_pb2.Booking] = {}
        self.requests: list[tuple[str, str]] = []  # ("list", customer id) or ("get", booking id)
        self.slow: set[str] = set()  # customer or booking ids whose calls hang
        self.stopping = asyncio.Event()

    def add(
        self,
        customer_id: object,
        *,
        reference: str | None = None,
        status: str = "confirmed",
        property_name: str = "Seaside Loft",
        check_in: str = "2026-12-24",
        check_out: str = "2026-12-27",
        total_amount: str = "420.00",
        currency: str = "EUR",
        created_at: dt.datetime | None = None,
    ) -> booking_pb2.Booking:
        """A booking of the customer, listed before the ones added earlier (newest first)."""
        created = timestamp_pb2.Timestamp()
        created.FromDatetime(created_at or dt.datetime.now(dt.timezone.utc))
        booking = booking_pb2.Booking(
            id=str(uuid.uuid4()),
            reference=reference or f"BK-{uuid.uuid4().hex[:6].upper()}",
            customer_id=str(customer_id),
            status=status,
            property_name=property_name,
            check_in=check_in,
            check_out=check_out,
            total_amount=total_amount,
            currency=currency,
            created_at=created,
        )
        self.by_customer.setdefault(str(customer_id), []).insert(0, booking)
        self.by_id[booking.id] = booking
        return booking

    async def _maybe_hang(self, key: str) -> None:
        if key in self.slow:
            await self.stopping.wait()

    async def ListCustomerBookings(
        self, request: booking_pb2.ListCustomerBookingsRequest, context: grpc.aio.ServicerContext
    ) -> booking_pb2.ListCustomerBookingsResponse:
        self.requests.append(("list", request.customer_id))
        await self._maybe_hang(request.customer_id)
        found = self.by_customer.get(request.customer_id, [])
        return booking_pb2.ListCustomerBookingsResponse(bookings=found[: request.limit or 100])

    async def GetBooking(
        self, request: booking_pb2.GetBookingRequest, context: grpc.aio.ServicerContext
    ) -> booking_pb2.Booking:
        self.requests.append(("get", request.id))
        await self._maybe_hang(request.id)
        if request.id not in self.by_id:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such booking")
        return self.by_id[request.id]


@contextlib.asynccontextmanager
async def booking_service() -> AsyncIterator[tuple[Bookings, str]]:
    """The fake Booking Service on a free port of 127.0.0.1: (its servicer, its address)."""
    bookings = Bookings()
    server = grpc.aio.server()
    booking_pb2_grpc.add_BookingServiceServicer_to_server(bookings, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield bookings, f"127.0.0.1:{port}"
    finally:
        bookings.stopping.set()  # hanging calls end; their clients gave up long ago
        await server.stop(None)
