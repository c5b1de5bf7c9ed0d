"""aiohttp middlewares: request id and logs, metrics, problem+json errors, CORS, rate limits."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from app import metrics
from app.errors import TRANSPORT_CODES, DomainError, NotFound, RateLimited, Unavailable
from app.jsonutil import dumps
from app.logs import request_id_var
from app.outage import RETRY_AFTER_MS, is_outage
from rest.common import REQUEST_ID, client_ip, context, try_principal

log = logging.getLogger("support.http")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_UNLIMITED = ("/health", "/actuator/health", "/metrics", "/api/docs", "/api/openapi.json", "/static")

# What a request may carry. aiohttp's HTTP parser refuses more than its own limits before any
# handler runs, with a bare ``400 text/plain`` it logs as an error; so the parser is given room
# (PARSER_LIMITS, the app's handler_args) and `request_limits` below answers what lies between
# our limits and the parser's with problem+json. Past the parser's limits aiohttp still answers
# (logs.ClientErrorsAreNotServerErrors keeps that out of the error log).
MAX_URL_BYTES = 8192  # the request target (path and query): 414 beyond
MAX_HEADER_BYTES = 8192  # one header's name and value: 431 beyond
PARSER_LIMITS = {"max_line_size": 64 * 1024, "max_field_size": 32 * 1024}


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    errors: dict | None = None,
    extra: dict | None = None,
    code: str | None = None,
    headers: dict | None = None,
) -> web.Response:
    """RFC 9457 problem details; ``errors`` maps fields to messages, ``extra`` adds members."""
    body = {
        **(extra or {}),
        "type": f"https://support-service.dev/problems/{code or status}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    return web.Response(
        text=dumps(body),
        status=status,
        headers={"X-Content-Type-Options": "nosniff", **(headers or {})},
        content_type="application/problem+json",
    )


def _route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id (X-Request-ID accepted and echoed), access log, HTTP metrics."""
    incoming = request.headers.get("X-Request-ID", "")
    request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    token = request_id_var.set(request_id)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-ID"] = request_id
        return response
    except web.HTTPException as exc:
        status = exc.status
        exc.headers["X-Request-ID"] = request_id
        raise
    finally:
        elapsed = time.perf_counter() - started
        route = _route_name(request)
        metrics.HTTP_REQUESTS.labels(request.method, route, str(status)).inc()
        metrics.HTTP_LATENCY.labels(request.method, route).observe(elapsed)
        log.info(
            "request",
            extra={
                "method": request.method,
                "path": request.path,
                "status": status,
                "duration_ms": round(elapsed * 1000, 2),
                "ip": client_ip(request),
            },
        )
        request_id_var.reset(token)


@web.middleware
async def request_limits(request: web.Request, handler: Handler) -> web.StreamResponse:
    """An over-long URL is 414 URI Too Long, an over-large header 431 (RFC 9110, RFC 6585), both
    problem+json like every other refusal."""
    if len(request.raw_path) > MAX_URL_BYTES:
        return problem(
            414,
            "URI too long",
            f"The request target is {len(request.raw_path)} bytes; at most {MAX_URL_BYTES} are accepted",
            code="uri_too_long",
        )
    for name, value in request.raw_headers:
        if len(name) + len(value) > MAX_HEADER_BYTES:
            return problem(
                431,
                "Request header fields too large",
                f"The header {name[:64].decode('latin-1')!r} is over {MAX_HEADER_BYTES} bytes",
                code="request_header_fields_too_large",
            )
    return await handler(request)


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Domain errors and aiohttp's own HTTP errors become application/problem+json."""
    try:
        return await handler(request)
    except DomainError as exc:
        status, _ = TRANSPORT_CODES[exc.code]
        headers = None
        validation = exc.code == "validation_failed"
        errors, extra = (exc.details, None) if validation else (None, exc.details)
        if isinstance(exc, RateLimited):
            headers = {"Retry-After": str(max(1, exc.retry_after_ms // 1000))}
        if exc.code == Unavailable.code:
            retry_ms = int((exc.details or {}).get("retry_after_ms") or RETRY_AFTER_MS)
            extra = {**(extra or {}), "retry_after_ms": retry_ms}
            headers = {"Retry-After": str(max(1, -(-retry_ms // 1000)))}
        if status == 401:
            headers = {"WWW-Authenticate": 'Bearer realm="support-service"'}
        return problem(status, exc.title, exc.detail, errors=errors, extra=extra, code=exc.code, headers=headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _http_problem(request, exc)
    except Exception as exc:
        if is_outage(exc):  # a dependency is down: say so, and when to come back (never a 500)
            log.warning("request failed: a backing service is out of reach: %s: %s", type(exc).__name__, exc)
            return problem(
                503,
                Unavailable.title,
                "A backing service is out of reach; retry shortly",
                code=Unavailable.code,
                extra={"retry_after_ms": RETRY_AFTER_MS},
                headers={"Retry-After": str(max(1, RETRY_AFTER_MS // 1000))},
            )
        log.exception("unhandled error")
        return problem(500, "Internal error", "Something went wrong; the request id identifies it in the logs")


_STATUS_CODES = {status: code for code, (status, _) in TRANSPORT_CODES.items() if code != "invalid_state"}
_STATUS_CODES.update({405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type"})


def _http_problem(request: web.Request, exc: web.HTTPException) -> web.Response:
    """aiohttp's own errors (no route, wrong method, body too large...) in our words and types."""
    where = f"{request.method} {request.path}"
    default_text = f"{exc.status}: {exc.reason}"
    detail = exc.text if exc.text and exc.text != default_text else None
    headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
    code = _STATUS_CODES.get(exc.status) or re.sub(r"\W+", "_", exc.reason.lower()).strip("_")
    title = exc.reason
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = sorted(exc.allowed_methods)
        headers["Allow"] = ", ".join(allowed)
        title = "Method not allowed"
        detail = f"{request.method} is not allowed on {request.path}; allowed: {', '.join(allowed)}"
    elif exc.status == 404:
        title = NotFound.title
        if request.match_info.http_exception is not None:  # no route matched at all
            detail = f"No such endpoint: {where}"
        detail = detail or f"Nothing here: {where}"
    return problem(exc.status, title, detail or f"{exc.reason}: {where}", code=code, headers=headers)


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}
API_HEADERS = {"X-Frame-Options": "DENY", "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'"}


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: every response (errors, static files and aiohttp's own answers
    included) says nosniff; JSON API answers may not be framed or run anything. Pages keep the
    CSP they set themselves."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.path.startswith("/api/v1/"):
        for name, value in API_HEADERS.items():
            response.headers.setdefault(name, value)


def cors(allowed: tuple[str, ...]) -> Callable:
    any_origin = "*" in allowed

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        permitted = origin is not None and (any_origin or origin in allowed)
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            if not permitted:
                return problem(403, "Forbidden", "Origin not allowed", code="forbidden")
            response: web.StreamResponse = web.Response(
                status=204,
                headers={
                    "Access-Control-Allow-Methods": "GET, POST, PUT, PATCH, DELETE, OPTIONS",
                    "Access-Control-Allow-Headers": request.headers.get(
                        "Access-Control-Request-Headers", "Authorization, Content-Type"
                    ),
                    "Access-Control-Max-Age": "600",
                },
            )
        else:
            response = await handler(request)
        if permitted:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
            response.headers["Access-Control-Expose-Headers"] = (
                "Location, Retry-After, X-Request-ID, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset"
            )
        return response

    return middleware


@web.middleware
async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    """RATE_LIMIT_REQUESTS_PER_MINUTE per caller (user id, else IP), shared by replicas via Redis."""
    ctx = context(request)
    if (
        request.method == "OPTIONS"
        or request.path.startswith(_UNLIMITED)
        or request.path.startswith(ctx.settings.websocket_endpoint)
    ):  # sockets have their own limits
        return await handler(request)
    principal = try_principal(request)
    key = f"user:{principal.user_id}" if principal else f"ip:{client_ip(request)}"
    verdict = await ctx.limiter.hit("rest", key, ctx.settings.rate_limit_requests_per_minute)
    headers = {
        "RateLimit-Limit": str(verdict.limit),
        "RateLimit-Remaining": str(verdict.remaining),
        "RateLimit-Reset": str(verdict.reset_seconds),
    }
    if not verdict.allowed:
        return problem(
            429,
            RateLimited.title,
            f"More than {verdict.limit} requests a minute; retry in {max(1, verdict.reset_seconds)} s",
            code=RateLimited.code,
            headers={**headers, "Retry-After": str(max(1, verdict.reset_seconds))},
        )
    response = await handler(request)
    response.headers.update(headers)
    return response
