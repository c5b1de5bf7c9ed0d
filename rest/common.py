"""What every REST handler needs: the context, the caller, parsed input and JSON replies."""

from __future__ import annotations

import functools
import json
import math
import uuid
from typing import Any

import marshmallow as ma
from aiohttp import web
from webargs.aiohttpparser import AIOHTTPParser, is_json_request

from app.auth import OVERSEERS, Principal, RequestMeta, bearer_token, require_role
from app.context import CONTEXT, AppContext
from app.errors import BadRequest, DomainError, NotFound, ValidationFailed
from app.jsonutil import dumps

REQUEST_ID = web.RequestKey("request_id", str)
MANAGERS = tuple(sorted(OVERSEERS))  # supervisors and admins
_PRINCIPAL = web.RequestKey("principal", Principal)  # request-scoped cache of the verified caller


class _Parser(AIOHTTPParser):
    DEFAULT_VALIDATION_STATUS = 422

    def handle_error(
        self, error: ma.ValidationError, req: Any, schema: Any, *, error_status_code: Any, error_headers: Any
    ) -> None:
        messages = error.normalized_messages()
        # webargs nests messages under the location ("json", "query"): report fields directly.
        if len(messages) == 1 and next(iter(messages)) in ("json", "query", "match_info"):
            messages = next(iter(messages.values()))
        raise ValidationFailed("The request has invalid fields", details=messages)

    def _handle_invalid_json_error(self, error: Any, req: Any, *args: Any, **kwargs: Any) -> None:
        raise BadRequest("The request body is not valid JSON")

    async def load_json(self, req: web.Request, schema: ma.Schema) -> Any:
        """webargs' loader, but anything json.loads refuses is a 400, never a 500: NaN and
        Infinity (not JSON, and PostgreSQL's jsonb refuses them), numbers too large for a float
        or too long for an int, and nesting deep enough to exhaust the recursion limit."""
        if not (req.body_exists and is_json_request(req)):
            return ma.missing
        try:
            return await req.json(loads=_strict_loads)
        except json.JSONDecodeError as exc:
            if exc.doc == "":
                return ma.missing
            return self._handle_invalid_json_error(exc, req)
        except (ValueError, RecursionError) as exc:  # includes UnicodeDecodeError
            return self._handle_invalid_json_error(exc, req)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} does not fit a double")
    return value


_strict_loads = functools.partial(json.loads, parse_constant=_refuse_constant, parse_float=_finite_float)


parser = _Parser()


def context(request: web.Request) -> AppContext:
    return request.app[CONTEXT]


def client_ip(request: web.Request) -> str | None:
    return request.remote


def meta(request: web.Request) -> RequestMeta:
    return RequestMeta(request_id=request.get(REQUEST_ID), ip=client_ip(request), transport="rest")


def try_principal(request: web.Request) -> Principal | None:
    """The verified caller, or None when there is no valid token (never raises)."""
    if _PRINCIPAL not in request:
        try:
            request[_PRINCIPAL] = authenticate(request)
        except DomainError:
            request[_PRINCIPAL] = None
    return request[_PRINCIPAL]


def authenticate(request: web.Request, *roles: str) -> Principal:
    """The verified caller; with ``roles``, one of them, else 403 at once, before the body or
    query is looked at (so a caller who may not use an endpoint never learns its schema)."""
    principal = request.get(_PRINCIPAL)
    if principal is None:
        token = bearer_token(request.headers.get("Authorization"))
        principal = context(request).verifier.verify(token)
        request[_PRINCIPAL] = principal
    if roles:
        require_role(principal, *roles)
    return principal


async def body(request: web.Request, schema: ma.Schema) -> dict:
    if request.method == "PUT" and not request.body_exists:  # a partial update still names its fields
        raise BadRequest("Send the fields to change as a JSON object")
    if request.can_read_body and request.content_type not in ("application/json", ""):
        if not request.content_type.endswith("+json"):
            raise BadRequest("Send the body as application/json")
    return await parser.parse(schema, request, location="json")


async def query(request: web.Request, schema: ma.Schema) -> dict:
    """Query parameters; unknown ones are refused like unknown body fields (webargs would
    otherwise drop them silently, hiding a client's typo in a filter name)."""
    return await parser.parse(schema, request, location="query", unknown=ma.RAISE)


def path_uuid(request: web.Request, name: str = "id", what: str = "Resource") -> uuid.UUID:
    """A UUID from the path; anything else names no resource, so it is a 404."""
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError:
        raise NotFound(f"{what} not found") from None


def json_response(data: Any, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers, dumps=dumps)


def created(data: dict, location: str) -> web.Response:
    return json_response(data, status=201, headers={"Location": location})


def no_content() -> web.Response:
    return web.Response(status=204)
