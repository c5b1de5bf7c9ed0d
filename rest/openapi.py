"""OpenAPI 3 from the routes themselves: handlers carry their docs, a walker builds the spec.

Handlers are decorated with :func:`api_doc`; :func:`build_spec` walks ``app.router`` and turns
each decorated route into an operation with apispec's MarshmallowPlugin.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import marshmallow as ma
from aiohttp import hdrs, web
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from webargs.fields import DelimitedList
from apispec.ext.marshmallow.common import make_schema_key, resolve_schema_cls, resolve_schema_instance

from app.schemas.analytics import known_zones

DOC_ATTR = "__api_doc__"
# A marshmallow schema class may carry ``OPENAPI = {...}``: JSON Schema keywords merged into its
# component, for rules across fields that marshmallow checks in a ``validates_schema`` and
# apispec cannot see (``anyOf`` of required fields, ``minProperties``...). A field's metadata
# ``{"x-time-zone": True}`` makes its schema a reference to the ``TimeZone`` component (every
# IANA name, once).
SCHEMA_EXTRA_ATTR = "OPENAPI"
TIME_ZONE_MARK = "x-time-zone"


def api_doc(
    *,
    summary: str,
    tags: list[str],
    query: type[ma.Schema] | ma.Schema | None = None,
    body: type[ma.Schema] | ma.Schema | None = None,
    response: type[ma.Schema] | ma.Schema | None = None,
    status: int = 200,
    errors: tuple[int, ...] = (),
    public: bool = False,
    description: str | None = None,
    body_media_type: str | None = None,
    binary_response: str | None = None,
    also: dict[int, str] | None = None,
) -> Callable:
    """Attach OpenAPI metadata to a handler.

    ``query``/``body``/``response`` are marshmallow schemas (classes or instances); ``status`` is
    the success code; ``errors`` the problem+json codes the operation may answer besides 401/403
    /429 (added unless ``public``); ``public`` marks operations that need no bearer token;
    ``also`` documents other success codes (same body), e.g. ``{200: "the existing resource"}``.
    """

    def decorate(handler: Callable) -> Callable:
        setattr(
            handler,
            DOC_ATTR,
            {
                "summary": summary,
                "tags": tags,
                "query": query,
                "body": body,
                "response": response,
                "status": status,
                "errors": errors,
                "public": public,
                "description": description,
                "body_media_type": body_media_type,
                "binary_response": binary_response,
                "also": also or {},
            },
        )
        return handler

    return decorate


# --- the walker ---------------------------------------------------------------------------------

PROBLEM_MEDIA_TYPE = "application/problem+json"
JSON_MEDIA_TYPE = "application/json"
SECURITY_SCHEME = "bearerAuth"

_PATH_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")
_VIEW_METHODS = ("get", "post", "put", "patch", "delete", "options", "trace")

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An RFC 9457 problem detail: every REST error has this shape.",
    "properties": {
        "type": {
            "type": "string",
            "format": "uri-reference",
            "default": "about:blank",
            "description": "A URI naming the kind of problem",
        },
        "title": {"type": "string", "description": "A short summary of the kind of problem"},
        "status": {"type": "integer", "minimum": 100, "maximum": 599, "description": "The HTTP status code"},
        "detail": {"type": "string", "description": "What went wrong in this occurrence"},
        "errors": {
            "type": "object",
            "description": "422 only: each invalid field mapped to its messages; a list field or a "
            "nested object maps to an object of its invalid items (by index) or fields",
            "additionalProperties": {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "object"}]},
        },
    },
    "required": ["type", "title", "status"],
}
VALIDATION_PROBLEM_SCHEMA: dict[str, Any] = {
    "description": "A problem detail for 422: `errors` maps each invalid field to its messages.",
    "allOf": [{"$ref": "#/components/schemas/Problem"}, {"type": "object", "required": ["errors"]}],
}

# status -> (response component name, description, problem schema name, extra headers)
_ERROR_RESPONSES: dict[int, tuple[str, str, str, dict[str, Any]]] = {
    400: ("BadRequest", "Malformed request (e.g. invalid JSON)", "Problem", {}),
    401: ("Unauthorized", "Missing, invalid or expired bearer token", "Problem", {}),
    403: ("Forbidden", "The caller's role may not do this", "Problem", {}),
    404: ("NotFound", "The resource does not exist or the caller may not see it", "Problem", {}),
    409: ("Conflict", "Conflict with the resource's current state", "Problem", {}),
    413: ("PayloadTooLarge", "The file is larger than ATTACHMENT_MAX_BYTES", "Problem", {}),
    415: ("UnsupportedMediaType", "The file's content is not of an allowed type", "Problem", {}),
    422: ("ValidationFailed", "Validation failed; `errors` names each field", "ValidationProblem", {}),
    429: (
        "TooManyRequests",
        "Rate limited; retry after the given number of seconds",
        "Problem",
        {
            "Retry-After": {
                "description": "Seconds to wait before retrying",
                "schema": {"type": "integer", "minimum": 0},
            }
        },
    ),
    500: ("InternalError", "Unexpected server error", "Problem", {}),
    503: ("ServiceUnavailable", "A backing service is unavailable", "Problem", {}),
}


class _SchemaNames:
    """apispec ``schema_name_resolver``: one component name per distinct schema.

    ``TicketSchema`` becomes ``Ticket``; an instance with its own ``partial``/``only``/``exclude``
    gets a suffix (``TicketPartial``); two different schemas that would share a name get a number
    (``Ticket2``), so apispec never has to rename (and warn).
    """

    def __init__(self) -> None:
        self.components: Any = None  # set once the APISpec exists
        self._taken: dict[str, tuple] = {}
        self.extras: dict[str, dict] = {}  # component name -> its class's OPENAPI keywords

    def __call__(self, schema: Any) -> str:
        cls = resolve_schema_cls(schema)
        if isinstance(cls, list):  # apispec allows a list for some union helpers; take the first
            cls = cls[0]
        instance = resolve_schema_instance(schema)
        key = make_schema_key(instance)
        base = cls.__name__
        if base.endswith("Schema") and len(base) > len("Schema"):
            base = base[: -len("Schema")]
        base += self._suffix(cls, instance, key)
        name, n = base, 2
        while self._clashes(name, key):
            name, n = f"{base}{n}", n + 1
        self._taken[name] = key
        extra = getattr(cls, SCHEMA_EXTRA_ATTR, None)
        if extra and not instance.partial:  # a partial body may leave out what the rule asks for
            self.extras[name] = extra
        return name

    @staticmethod
    def _suffix(cls: type[ma.Schema], instance: ma.Schema, key: tuple) -> str:
        try:
            default_key = make_schema_key(cls())
        except Exception:  # a schema that needs constructor arguments: no default to compare
            return ""
        if key == default_key:
            return ""
        if instance.partial:
            return "Partial"
        return "Subset"

    def _clashes(self, name: str, key: tuple) -> bool:
        if name in self._taken:
            return self._taken[name] != key
        return self.components is not None and name in self.components.schemas


def _operations(route: web.AbstractRoute) -> list[tuple[str, Callable, dict]]:
    """(method, handler, doc) for each documented operation of ``route``."""
    handler = route.handler
    method = route.method.upper()
    if method == hdrs.METH_HEAD:
        return []
    if method == hdrs.METH_ANY:
        if not (isinstance(handler, type) and issubclass(handler, web.View)):
            return []
        found = []
        for name in _VIEW_METHODS:
            meth = getattr(handler, name, None)
            doc = getattr(meth, DOC_ATTR, None)
            if doc is not None:
                found.append((name, meth, doc))
        return found
    doc = getattr(handler, DOC_ATTR, None)
    return [] if doc is None else [(method.lower(), handler, doc)]


def _path_parameters(path: str) -> list[dict]:
    params = []
    for name in _PATH_PARAM.findall(path):
        schema: dict[str, Any] = {"type": "string"}
        if name == "id" or name.endswith("_id"):
            schema["format"] = "uuid"
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return params


def _operation(doc: dict, operation_id: str) -> dict:
    status = int(doc["status"])
    op: dict[str, Any] = {"operationId": operation_id, "summary": doc["summary"], "tags": list(doc["tags"])}
    if doc.get("description"):
        op["description"] = doc["description"]
    if doc.get("query") is not None:
        op["parameters"] = [{"in": "query", "schema": doc["query"]}]
    if doc.get("body") is not None:
        op["requestBody"] = {
            "required": True,
            "content": {doc.get("body_media_type") or JSON_MEDIA_TYPE: {"schema": doc["body"]}},
        }

    success: dict[str, Any] = {"description": HTTPStatus(status).phrase}
    if doc.get("response") is not None and status != 204:
        success["content"] = {JSON_MEDIA_TYPE: {"schema": doc["response"]}}
    if doc.get("binary_response"):
        success["content"] = {doc["binary_response"]: {"schema": {"type": "string", "format": "binary"}}}
    if status == 201:
        success["headers"] = {
            "Location": {
                "description": "URL of the created resource",
                "schema": {"type": "string", "format": "uri-reference"},
            }
        }
    responses: dict[int, Any] = {status: success}
    for code, text in (doc.get("also") or {}).items():
        responses[int(code)] = {**{k: v for k, v in success.items() if k == "content"}, "description": text}

    codes = set(doc.get("errors") or ())
    if doc.get("body") is not None or doc.get("query") is not None:
        codes |= {400, 422}
    if not doc.get("public"):
        codes |= {401, 403, 429}
    for code in sorted(codes):
        code = int(code)
        if code == status:
            continue
        known = _ERROR_RESPONSES.get(code)
        if known:
            responses[code] = known[0]  # a reference to components/responses, added on use
        else:
            responses[code] = {
                "description": HTTPStatus(code).phrase,
                "content": {PROBLEM_MEDIA_TYPE: {"schema": "Problem"}},
            }
    op["responses"] = dict(sorted(responses.items()))
    op["security"] = [] if doc.get("public") else [{SECURITY_SCHEME: []}]
    return op


def build_spec(app: web.Application, *, title: str = "Support Service API", version: str = "1.0.0") -> dict:
    """The OpenAPI 3.0.3 document for every :func:`api_doc`-decorated route of ``app``.

    Routes of sub-applications are included (with their prefix); ``HEAD`` routes and handlers
    without :func:`api_doc` are skipped.
    """
    names = _SchemaNames()
    plugin = MarshmallowPlugin(schema_name_resolver=names)
    spec = APISpec(title=title, version=version, openapi_version="3.0.3", plugins=[plugin])
    assert plugin.converter is not None
    plugin.converter.add_parameter_attribute_function(_comma_separated)
    names.components = spec.components
    spec.components.security_scheme(SECURITY_SCHEME, {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    spec.components.schema("Problem", PROBLEM_SCHEMA)
    spec.components.schema("ValidationProblem", VALIDATION_PROBLEM_SCHEMA)
    for _code, (name, description, schema_name, headers) in _ERROR_RESPONSES.items():
        response: dict[str, Any] = {
            "description": description,
            "content": {PROBLEM_MEDIA_TYPE: {"schema": schema_name}},
        }
        if headers:
            response["headers"] = headers
        spec.components.response(name, response, lazy=True)

    paths: dict[str, dict[str, dict]] = {}
    operation_ids: set[str] = set()
    tags: list[str] = []
    for route in app.router.routes():
        resource = route.resource
        if resource is None:
            continue
        path = resource.canonical
        for method, handler, doc in _operations(route):
            operations = paths.setdefault(path, {})
            if method in operations:
                continue
            base_id = getattr(handler, "__qualname__", None) or getattr(handler, "__name__", "op")
            base_id = re.sub(r"\W+", "_", base_id.replace("<locals>.", "")).strip("_") or "op"
            operation_id, n = base_id, 2
            while operation_id in operation_ids:
                operation_id, n = f"{base_id}_{n}", n + 1
            operation_ids.add(operation_id)
            operations[method] = _operation(doc, operation_id)
            tags.extend(t for t in doc["tags"] if t not in tags)

    for tag in tags:
        spec.tag({"name": tag})
    for path, operations in paths.items():
        if operations:
            spec.path(path=path, operations=operations, parameters=_path_parameters(path))
    document = spec.to_dict()
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, extra in names.extras.items():
        if name in schemas:
            schemas[name].update(extra)
    if _refer_time_zones(document):
        schemas["TimeZone"] = {
            "type": "string",
            "description": "An IANA time zone name",
            "enum": sorted(known_zones()),
        }
    return document


def _comma_separated(converter: Any, field: ma.fields.Field, **kwargs: Any) -> dict:
    """webargs' DelimitedList is one comma-separated value (``tags=a,b``), not a repeated
    parameter: ``explode: false`` (apispec documents every List as exploded)."""
    return {"explode": False, "style": "form"} if isinstance(field, DelimitedList) else {}


def _refer_time_zones(node: Any) -> bool:
    """Replaces every schema marked ``x-time-zone`` by a reference to ``TimeZone`` (a description
    or a default kept beside it through ``allOf``); True when there was one."""
    found = False
    if isinstance(node, dict):
        for key, value in list(node.items()):
            if isinstance(value, dict) and value.get(TIME_ZONE_MARK):
                kept = {k: v for k, v in value.items() if k in ("description", "default", "nullable")}
                node[key] = {"allOf": [{"$ref": "#/components/schemas/TimeZone"}], **kept}
                found = True
            else:
                found = _refer_time_zones(value) or found
    elif isinstance(node, list):
        for item in node:
            found = _refer_time_zones(item) or found
    return found
