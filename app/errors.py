"""Domain errors and the one table that maps each to REST, gRPC and Socket.IO.

Services raise these; transports translate them with :data:`TRANSPORT_CODES` and never show a
stack trace to a client.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "internal"  # Socket.IO ack code (PROTOCOL.md)
    title = "Internal error"

    def __init__(self, detail: str | None = None, *, details: dict[str, Any] | None = None):
        self.detail = detail or self.title
        self.details = details or {}
        super().__init__(self.detail)


class Unauthorized(DomainError):
    code, title = "unauthorized", "Unauthorized"


class Forbidden(DomainError):
    code, title = "forbidden", "Forbidden"


class NotFound(DomainError):
    code, title = "not_found", "Not found"


class ValidationFailed(DomainError):
    """``details`` maps each field to a list of messages."""

    code, title = "validation_failed", "Validation failed"


class BadRequest(DomainError):
    """The request could not be read at all (malformed JSON)."""

    code, title = "bad_request", "Bad request"


class Conflict(DomainError):
    code, title = "conflict", "Conflict"


class InvalidState(DomainError):
    """The action is not allowed in the resource's current state (e.g. a status transition)."""

    code, title = "invalid_state", "Invalid state"


class RateLimited(DomainError):
    code, title = "rate_limited", "Too many requests"

    def __init__(self, retry_after_ms: int, detail: str | None = None):
        super().__init__(detail or "Rate limit exceeded; retry later", details={"retry_after_ms": retry_after_ms})
        self.retry_after_ms = retry_after_ms


class PayloadTooLarge(DomainError):
    code, title = "payload_too_large", "Payload too large"


class UnsupportedMediaType(DomainError):
    code, title = "unsupported_media_type", "Unsupported media type"


class Unavailable(DomainError):
    code, title = "unavailable", "Service unavailable"


# code -> (HTTP status, gRPC status name)
TRANSPORT_CODES: dict[str, tuple[int, str]] = {
    "unauthorized": (401, "UNAUTHENTICATED"),
    "forbidden": (403, "PERMISSION_DENIED"),
    "not_found": (404, "NOT_FOUND"),
    "bad_request": (400, "INVALID_ARGUMENT"),
    "validation_failed": (422, "INVALID_ARGUMENT"),
    "conflict": (409, "ALREADY_EXISTS"),
    "invalid_state": (409, "FAILED_PRECONDITION"),
    "rate_limited": (429, "RESOURCE_EXHAUSTED"),
    "payload_too_large": (413, "INVALID_ARGUMENT"),
    "unsupported_media_type": (415, "INVALID_ARGUMENT"),
    "unavailable": (503, "UNAVAILABLE"),
    "internal": (500, "INTERNAL"),
}
