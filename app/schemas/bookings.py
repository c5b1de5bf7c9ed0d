"""Booking schemas: the Booking Service's bookings as the console reads them, and a ticket's link."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.schemas.common import StrictSchema, page_of

BOOKINGS_RULES = (
    "The customer's most recent bookings (newest first; the Booking Service is asked for up to 100, "
    "`total` counts those) from the Booking Service (`GRPC_BOOKING_SERVICE_URL`, an assumed contract: "
    'README "Bookings"). When the service is not configured, unavailable or slower than its 2 s '
    "deadline the answer is still 200, with no items and `available: false`. Supervisors, admins and "
    "services read any customer's, a customer their own, an agent those of a customer whose ticket "
    "they hold or with whom they are in an active chat; anyone else gets 404."
)
LINK_RULES = (
    "Agents who may change the ticket, supervisors, admins and services (customers get 403). The booking "
    "is checked with the Booking Service: unknown there → 404, another customer's → 422. When the service "
    "is not configured or does not answer in 2 s the link is stored unverified (`booking_verified: false`, "
    "no reference), a deliberate choice so an outage never blocks the agent. Stores `booking_id`, "
    "`booking_reference` and `booking_verified` in the ticket's `metadata` (audited, a `ticket.updated` "
    "event) and re-runs the priority rules (`has_booking`): the priority may rise, never fall."
)


class BookingSchema(Schema):
    id = fields.String(metadata={"description": "The booking's id in the Booking Service"})
    reference = fields.String(allow_none=True, metadata={"description": "The code the customer sees"})
    customer_id = fields.String(allow_none=True)
    status = fields.String(allow_none=True, metadata={"description": "e.g. pending, confirmed, cancelled"})
    property_name = fields.String(allow_none=True)
    check_in = fields.String(allow_none=True, metadata={"description": "ISO 8601 date"})
    check_out = fields.String(allow_none=True, metadata={"description": "ISO 8601 date"})
    total_amount = fields.String(allow_none=True, metadata={"description": "Decimal string, e.g. 420.00"})
    currency = fields.String(allow_none=True, metadata={"description": "ISO 4217 code"})
    created_at = fields.AwareDateTime(allow_none=True)


class BookingPageSchema(page_of(BookingSchema, "BookingItemsSchema")):  # type: ignore[misc]  # a schema class made at import
    available = fields.Boolean(
        metadata={
            "description": "False when the Booking Service is not configured or did not answer (then items is empty)"
        }
    )


class BookingLinkSchema(StrictSchema):
    booking_id = fields.String(required=True, validate=validate.Length(min=1, max=100))
