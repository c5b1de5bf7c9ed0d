"""Client for the Booking Service (``GRPC_BOOKING_SERVICE_URL``): a customer's bookings, one booking.

The Booking Service belongs to another team and publishes no contract; this client speaks the
ASSUMED minimal one in ``protos/booking/v1/booking.proto`` (README "Bookings"):
``booking.v1.BookingService/ListCustomerBookings(ListCustomerBookingsRequest{customer_id, limit})
-> {bookings}`` (newest first) and ``GetBooking(GetBookingRequest{id}) -> Booking{id, reference,
customer_id, status, property_name, check_in, check_out, total_amount, currency, created_at}``,
NOT_FOUND for an unknown booking id.

:class:`BookingDirectory` gives each call a deadline (:data:`TIMEOUT_SECONDS`) and keeps answers in
a bounded in-process TTL cache (:class:`app.cache.TtlCache`): a customer's list (empty included) and a found booking for
:data:`CACHE_TTL_SECONDS`, an unknown booking and a failure (service unavailable, too slow, any
other error) for :data:`NEGATIVE_TTL_SECONDS`, so an outage costs at most one slow call per
customer or booking per quarter minute. Failures are logged and answer ``available=False``: the
console shows "Bookings unavailable" and a link is stored unverified, never an error.

Bookings are plain dicts in the REST JSON's shape (:func:`booking_dict`); callers must not change
them (the cache hands out the same objects).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any

import grpc

from app.clients.base import CachedClient

from support_stubs.booking.v1 import booking_pb2, booking_pb2_grpc

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 2.0
CACHE_TTL_SECONDS = 60.0  # bookings change (cancellations, new ones): a minute at most
NEGATIVE_TTL_SECONDS = 15.0  # shorter for an unknown booking and for failures
CACHE_SIZE = 10_000
RECENT_LIMIT = 100  # how many of a customer's bookings are asked for (and cached)
_QUIET_CODES = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


@dataclasses.dataclass(frozen=True)
class CustomerBookings:
    """A customer's recent bookings; ``available`` is False when the service did not answer."""

    available: bool
    bookings: tuple[dict, ...] = ()


@dataclasses.dataclass(frozen=True)
class BookingLookup:
    """One booking: ``available`` and no ``booking`` means the service does not know the id;
    ``available`` False means it did not answer (the id may or may not exist)."""

    available: bool
    booking: dict | None = None


UNAVAILABLE_LIST = CustomerBookings(available=False)
UNAVAILABLE_BOOKING = BookingLookup(available=False)


def booking_dict(booking: booking_pb2.Booking) -> dict[str, Any]:
    """A booking as the REST JSON carries it: strings, ``None`` for what the service left empty."""
    created = booking.created_at.ToDatetime(tzinfo=dt.timezone.utc) if booking.HasField("created_at") else None
    return {
        "id": booking.id,
        "reference": booking.reference or None,
        "customer_id": booking.customer_id or None,
        "status": booking.status or None,
        "property_name": booking.property_name or None,
        "check_in": booking.check_in or None,
        "check_out": booking.check_out or None,
        "total_amount": booking.total_amount or None,
        "currency": booking.currency or None,
        "created_at": created,
    }


class BookingDirectory(
    CachedClient[booking_pb2_grpc.BookingServiceStub, tuple[str, str], "CustomerBookings | BookingLookup"]
):
    """Reads bookings from the Booking Service, with a deadline and a cache."""

    default_timeout = TIMEOUT_SECONDS
    default_ttl = CACHE_TTL_SECONDS
    default_negative_ttl = NEGATIVE_TTL_SECONDS
    default_cache_size = CACHE_SIZE

    def _new_stub(self, channel: grpc.aio.Channel) -> booking_pb2_grpc.BookingServiceStub:
        return booking_pb2_grpc.BookingServiceStub(channel)

    @staticmethod
    def _failed(what: str, key: str, exc: BaseException) -> None:
        code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else None
        extra = {"key": key, "code": code.name if code else type(exc).__name__}
        if code in _QUIET_CODES:
            log.info("booking service did not answer for %s", what, extra=extra)
        else:
            log.warning("booking service failed for %s", what, extra=extra)

    async def customer_bookings(self, customer_id: object) -> CustomerBookings:
        """The customer's most recent bookings (up to :data:`RECENT_LIMIT`, newest first)."""
        key = ("customer", str(customer_id))
        _, cached = self._cache.get(key)
        if isinstance(cached, CustomerBookings):
            return cached
        try:
            reply = await self._service().ListCustomerBookings(
                booking_pb2.ListCustomerBookingsRequest(customer_id=key[1], limit=RECENT_LIMIT), timeout=self.timeout
            )
            answer = CustomerBookings(
                available=True, bookings=tuple(booking_dict(b) for b in reply.bookings[:RECENT_LIMIT])
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:  # a customer it never saw: no bookings
                answer = CustomerBookings(available=True)
            else:
                self._failed("a customer's bookings", key[1], exc)
                answer = UNAVAILABLE_LIST
        except Exception as exc:  # a broken channel or reply must not break the console
            self._failed("a customer's bookings", key[1], exc)
            answer = UNAVAILABLE_LIST
        self._remember(key, answer, answer.available)
        return answer

    async def booking(self, booking_id: str) -> BookingLookup:
        """One booking by its id: found, unknown (NOT_FOUND), or the service did not answer."""
        key = ("booking", str(booking_id))
        _, cached = self._cache.get(key)
        if isinstance(cached, BookingLookup):
            return cached
        try:
            reply = await self._service().GetBooking(booking_pb2.GetBookingRequest(id=key[1]), timeout=self.timeout)
            answer = BookingLookup(available=True, booking=booking_dict(reply))
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                log.info("booking service has no such booking", extra={"key": key[1]})
                answer = BookingLookup(available=True)
            else:
                self._failed("a booking", key[1], exc)
                answer = UNAVAILABLE_BOOKING
        except Exception as exc:
            self._failed("a booking", key[1], exc)
            answer = UNAVAILABLE_BOOKING
        self._remember(key, answer, answer.booking is not None)
        return answer
