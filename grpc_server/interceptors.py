"""Server interceptors, outermost first: logging, metrics, errors, authentication, rate limit.

Each wraps the method handler of every call (unary and streaming alike) in one async context
manager, so what happens before and after a call reads top to bottom. The call's facts (method,
request id, caller, final status) live in a :class:`CallInfo` the servicers reach through
:func:`current_call`. Health and reflection pass through untouched (no token needed, as
``grpc_health_probe`` and ``grpcurl`` expect).

Errors: a :class:`app.errors.DomainError` becomes the status of :data:`app.errors.TRANSPORT_CODES`
(the one table REST and Socket.IO use too) with rich details (google.rpc.Status via
grpcio-status): ``BadRequest`` field violations for validation, ``RetryInfo`` when rate
limited, ``ErrorInfo`` otherwise. Anything else is INTERNAL with a fixed message: the traceback
goes to the log, never to the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from app import metrics
from app.auth import Principal, RequestMeta, bearer_token
from app.context import AppContext
from app.errors import TRANSPORT_CODES, DomainError, RateLimited, Unauthorized, Unavailable, ValidationFailed
from app.logs import request_id_var
from app.outage import RETRY_AFTER_MS, is_outage

log = logging.getLogger("support.grpc")
_EXEMPT = ("/grpc.health.v1.Health/", "/grpc.reflection.")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
INTERNAL_MESSAGE = "Something went wrong; the request id identifies it in the logs"


@dataclasses.dataclass
class CallInfo:
    method: str  # /support.v1.SupportService/GetTicket
    context: grpc.aio.ServicerContext
    request_id: str
    ip: str | None
    streaming: bool
    principal: Principal | None = None
    code: grpc.StatusCode = grpc.StatusCode.OK
    started: float = dataclasses.field(default_factory=time.perf_counter)

    @property
    def short_method(self) -> str:
        return self.method.rsplit("/", 1)[-1]

    @property
    def meta(self) -> RequestMeta:
        return RequestMeta(request_id=self.request_id, ip=self.ip, transport="grpc")


_CALL: contextvars.ContextVar[CallInfo | None] = contextvars.ContextVar("grpc_call", default=None)


def current_call() -> CallInfo:
    call = _CALL.get()
    if call is None:
        raise RuntimeError("not inside a gRPC call")
    return call


def caller() -> Principal:
    principal = current_call().principal
    if principal is None:  # only the exempt services run without authentication
        raise Unauthorized("Missing bearer token")
    return principal


def peer_ip(peer: str | None) -> str | None:
    """``ipv4:127.0.0.1:5000`` / ``ipv6:[::1]:5000`` → the address."""
    if not peer:
        return None
    kind, _, rest = peer.partition(":")
    if kind == "ipv6" and rest.startswith("["):
        return rest[1 : rest.find("]")][:64]
    if kind == "ipv4":
        return rest.rpartition(":")[0][:64]
    return peer[:64]


def metadata_value(context: grpc.aio.ServicerContext, key: str) -> str | None:
    for name, value in context.invocation_metadata() or ():
        if name == key:
            return value if isinstance(value, str) else None
    return None


# ---------------------------------------------------------------- wrapping handlers

Scope = Callable[[CallInfo], contextlib.AbstractAsyncContextManager[Any]]


def _open_call(method: str, context: grpc.aio.ServicerContext, streaming: bool) -> CallInfo:
    incoming = metadata_value(context, "x-request-id") or ""
    request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
    return CallInfo(
        method=method, context=context, request_id=request_id, ip=peer_ip(context.peer()), streaming=streaming
    )


@contextlib.asynccontextmanager
async def _within(method: str, context: grpc.aio.ServicerContext, streaming: bool, scope: Scope) -> AsyncIterator[None]:
    """``scope`` around the call; the outermost interceptor opens the CallInfo."""
    call = _CALL.get()
    token = None
    if call is None or call.context is not context:
        call = _open_call(method, context, streaming)
        token = _CALL.set(call)
    try:
        async with scope(call):
            yield
    finally:
        if token is not None:
            with contextlib.suppress(ValueError):  # a generator finalised in another context
                _CALL.reset(token)


class Undecodable:
    """What a request the protobuf runtime cannot parse (a string field with bad UTF-8, such as
    an encoded lone surrogate) becomes, so the error interceptor answers INVALID_ARGUMENT instead
    of gRPC's own INTERNAL "Exception deserializing request"."""

    def __init__(self, error: Exception):
        self.error = error


def _safe_deserializer(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None or getattr(deserialize, "safe", False):
        return deserialize

    def safe(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as exc:  # google.protobuf.message.DecodeError and friends
            return Undecodable(exc)

    safe.safe = True  # type: ignore[attr-defined]
    return safe


def _decoded(request: Any) -> Any:
    if isinstance(request, Undecodable):
        raise ValidationFailed(
            "The request could not be decoded (strings must be valid UTF-8)", details={"_request": [str(request.error)]}
        )
    return request


async def _decoded_stream(requests: Any) -> AsyncIterator[Any]:
    async for request in requests:
        yield _decoded(request)


def _wrap(
    handler: grpc.RpcMethodHandler, method: str, scope: Scope, *, check_requests: bool = False
) -> grpc.RpcMethodHandler:
    """The same handler with every invocation inside ``scope(call)``; with ``check_requests``
    an undecodable request raises :class:`ValidationFailed` inside that scope."""
    options = {
        "request_deserializer": _safe_deserializer(handler.request_deserializer),
        "response_serializer": handler.response_serializer,
    }
    check = _decoded if check_requests else (lambda request: request)
    check_stream = _decoded_stream if check_requests else (lambda requests: requests)
    if handler.unary_unary is not None:
        inner_uu = handler.unary_unary

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            async with _within(method, context, False, scope):
                return await inner_uu(check(request), context)

        return grpc.unary_unary_rpc_method_handler(unary_unary, **options)
    if handler.stream_unary is not None:
        inner_su = handler.stream_unary

        async def stream_unary(requests: Any, context: grpc.aio.ServicerContext) -> Any:
            async with _within(method, context, False, scope):
                return await inner_su(check_stream(requests), context)

        return grpc.stream_unary_rpc_method_handler(stream_unary, **options)
    inner_stream = handler.unary_stream or handler.stream_stream
    check_in = check if handler.unary_stream is not None else check_stream

    async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        async with _within(method, context, True, scope):
            async for response in inner_stream(check_in(request), context):
                yield response

    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(streaming, **options)
    return grpc.stream_stream_rpc_method_handler(streaming, **options)


class _Interceptor(grpc.aio.ServerInterceptor):
    checks_requests = False  # the innermost one refuses undecodable requests (after auth)

    def scope(self, call: CallInfo) -> contextlib.AbstractAsyncContextManager[Any]:
        raise NotImplementedError

    async def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None or details.method.startswith(_EXEMPT):
            return handler
        return _wrap(handler, details.method, self.scope, check_requests=self.checks_requests)


class LoggingInterceptor(_Interceptor):
    """One JSON log line per call with its request id (``x-request-id`` accepted and echoed)."""

    @contextlib.asynccontextmanager
    async def scope(self, call: CallInfo) -> AsyncIterator[None]:
        token = request_id_var.set(call.request_id)
        with contextlib.suppress(Exception):  # a cancelled call can no longer take metadata
            await call.context.send_initial_metadata((("x-request-id", call.request_id),))
        try:
            yield
        except (asyncio.CancelledError, GeneratorExit):
            call.code = grpc.StatusCode.CANCELLED
            raise
        finally:
            principal = call.principal
            log.info(
                "grpc call",
                extra={
                    "grpc_method": call.method,
                    "code": call.code.name,
                    "ip": call.ip,
                    "duration_ms": round((time.perf_counter() - call.started) * 1000, 2),
                    "user_id": str(principal.user_id) if principal else None,
                    "role": principal.role if principal else None,
                },
            )
            with contextlib.suppress(ValueError):
                request_id_var.reset(token)


class MetricsInterceptor(_Interceptor):
    """Calls by method and status code, latency by method, open streams by method."""

    @contextlib.asynccontextmanager
    async def scope(self, call: CallInfo) -> AsyncIterator[None]:
        method = call.short_method
        if call.streaming:
            metrics.GRPC_STREAMS.labels(method=method).inc()
        try:
            yield
        except (asyncio.CancelledError, GeneratorExit):
            call.code = grpc.StatusCode.CANCELLED
            raise
        finally:
            if call.streaming:
                metrics.GRPC_STREAMS.labels(method=method).dec()
            metrics.GRPC_REQUESTS.labels(method=method, code=call.code.name).inc()
            metrics.GRPC_LATENCY.labels(method=method).observe(time.perf_counter() - call.started)


def status_for(exc: DomainError) -> tuple[grpc.StatusCode, status_pb2.Status]:
    """The gRPC status of a domain error, with its rich details (one table: TRANSPORT_CODES)."""
    code = grpc.StatusCode[TRANSPORT_CODES[exc.code][1]]
    detail = any_pb2.Any()
    if exc.code in ("validation_failed", "bad_request"):
        request = error_details_pb2.BadRequest()
        for field, message in field_violations(exc.details):
            request.field_violations.add(field=field, description=message)
        detail.Pack(request)
    elif isinstance(exc, RateLimited):
        retry = duration_pb2.Duration()
        retry.FromMilliseconds(exc.retry_after_ms)
        detail.Pack(error_details_pb2.RetryInfo(retry_delay=retry))
    else:
        detail.Pack(
            error_details_pb2.ErrorInfo(
                reason=exc.code.upper(),
                domain="support-service",
                metadata={str(k): str(v) for k, v in (exc.details or {}).items()},
            )
        )
    status = status_pb2.Status(code=code.value[0], message=exc.detail, details=[detail])
    return code, status


def field_violations(details: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Marshmallow-style ``{field: [messages] | {nested}}`` as (dotted field, message) pairs."""
    found: list[tuple[str, str]] = []
    if isinstance(details, dict):
        for key, value in details.items():
            found += field_violations(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(details, (list, tuple)):
        for item in details:
            if isinstance(item, (dict, list, tuple)):
                found += field_violations(item, prefix)
            else:
                found.append((prefix or "_request", str(item)))
    elif details is not None:
        found.append((prefix or "_request", str(details)))
    return found


async def abort_with(call: CallInfo, exc: DomainError) -> None:
    code, status = status_for(exc)
    call.code = code
    grpc_status = rpc_status.to_status(status)
    await call.context.abort(grpc_status.code, grpc_status.details, grpc_status.trailing_metadata)


class ErrorInterceptor(_Interceptor):
    """Domain errors to status codes with details; the database or Redis out of reach
    UNAVAILABLE; anything else INTERNAL, without a traceback."""

    @contextlib.asynccontextmanager
    async def scope(self, call: CallInfo) -> AsyncIterator[None]:
        try:
            yield
        except DomainError as exc:
            await abort_with(call, exc)
        except (asyncio.CancelledError, GeneratorExit, grpc.aio.AbortError):
            raise
        except Exception as exc:
            if not is_outage(exc):  # PostgreSQL or Redis out of reach: UNAVAILABLE, which clients retry
                log.exception("grpc call failed", extra={"grpc_method": call.method})
                call.code = grpc.StatusCode.INTERNAL
                status = status_pb2.Status(code=code_pb2.INTERNAL, message=INTERNAL_MESSAGE)
                grpc_status = rpc_status.to_status(status)
                await call.context.abort(grpc_status.code, grpc_status.details, grpc_status.trailing_metadata)
            log.warning(
                "grpc call failed: a backing service is out of reach",
                extra={"grpc_method": call.method, "error": f"{type(exc).__name__}: {exc}"},
            )
            await abort_with(
                call,
                Unavailable(
                    "A backing service is out of reach; retry shortly", details={"retry_after_ms": RETRY_AFTER_MS}
                ),
            )


class AuthInterceptor(_Interceptor):
    """``authorization: Bearer <JWT>``: the same verifier, claims and roles as REST."""

    def __init__(self, ctx: AppContext):
        self.ctx = ctx

    @contextlib.asynccontextmanager
    async def scope(self, call: CallInfo) -> AsyncIterator[None]:
        token = bearer_token(metadata_value(call.context, "authorization"))
        call.principal = self.ctx.verifier.verify(token)
        yield


class RateLimitInterceptor(_Interceptor):
    """RATE_LIMIT_REQUESTS_PER_MINUTE per caller, counted in Redis like REST (scope ``grpc``);
    a stream counts once, when it opens. The innermost interceptor: an undecodable request is
    refused here, after the caller is known, as INVALID_ARGUMENT."""

    checks_requests = True

    def __init__(self, ctx: AppContext):
        self.ctx = ctx

    @contextlib.asynccontextmanager
    async def scope(self, call: CallInfo) -> AsyncIterator[None]:
        key = f"user:{call.principal.user_id}" if call.principal else f"ip:{call.ip}"
        await self.ctx.limiter.check("grpc", key, self.ctx.settings.rate_limit_requests_per_minute)
        yield


def interceptors(ctx: AppContext) -> list[grpc.aio.ServerInterceptor]:
    return [
        LoggingInterceptor(),
        MetricsInterceptor(),
        ErrorInterceptor(),
        AuthInterceptor(ctx),
        RateLimitInterceptor(ctx),
    ]
