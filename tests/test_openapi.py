"""The OpenAPI document built from decorated routes, and the self-hosted Swagger UI page."""

from __future__ import annotations

import re

import pytest
from aiohttp import web
from marshmallow import Schema, fields, validate
from openapi_spec_validator import validate as validate_openapi

from rest.docs import DOCS_CSP, setup_docs, swagger_ui_version
from rest.openapi import api_doc, build_spec

# --- a small API ---------------------------------------------------------------------------------


class WidgetQuery(Schema):
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    offset = fields.Integer(load_default=0)
    colour = fields.String(validate=validate.OneOf(["red", "blue"]))


class WidgetCreateSchema(Schema):
    name = fields.String(required=True)
    colour = fields.String()


class WidgetSchema(Schema):
    id = fields.UUID()
    name = fields.String()
    colour = fields.String()


class WidgetPageSchema(Schema):
    items = fields.List(fields.Nested(WidgetSchema))
    total = fields.Integer()


@api_doc(summary="List widgets", tags=["widgets"], query=WidgetQuery, response=WidgetPageSchema)
async def list_widgets(request: web.Request) -> web.Response:
    return web.json_response({"items": [], "total": 0})


@api_doc(
    summary="Create a widget",
    tags=["widgets"],
    body=WidgetCreateSchema,
    response=WidgetSchema,
    status=201,
    errors=(409,),
    description="Makes one widget.",
)
async def create_widget(request: web.Request) -> web.Response:
    return web.json_response({}, status=201)


@api_doc(summary="Read a widget", tags=["widgets"], response=WidgetSchema(), errors=(404,))
async def get_widget(request: web.Request) -> web.Response:
    return web.json_response({})


@api_doc(
    summary="Update a widget",
    tags=["widgets"],
    body=WidgetCreateSchema(partial=True),
    response=WidgetSchema,
    errors=(404,),
)
async def update_widget(request: web.Request) -> web.Response:
    return web.json_response({})


@api_doc(summary="Delete a widget", tags=["widgets"], status=204, errors=(404,))
async def delete_widget(request: web.Request) -> web.Response:
    return web.Response(status=204)


@api_doc(summary="List a widget's parts", tags=["parts"], response=WidgetSchema(many=True))
async def list_parts(request: web.Request) -> web.Response:
    return web.json_response([])


@api_doc(summary="Service status", tags=["status"], public=True)
async def status(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def undocumented(request: web.Request) -> web.Response:
    return web.Response()


def make_app() -> web.Application:
    app = web.Application()
    v1 = web.Application()
    v1.router.add_get("/widgets", list_widgets)
    v1.router.add_post("/widgets", create_widget)
    v1.router.add_get("/widgets/{id}", get_widget)
    v1.router.add_put("/widgets/{id}", update_widget)
    v1.router.add_delete("/widgets/{id}", delete_widget)
    v1.router.add_get("/widgets/{widget_id}/parts/{slug}", list_parts)
    v1.router.add_get("/status", status)
    v1.router.add_get("/undocumented", undocumented)
    app.add_subapp("/api/v1", v1)
    setup_docs(app)
    return app


@pytest.fixture(scope="module")
def spec() -> dict:
    return build_spec(make_app())


# --- the document --------------------------------------------------------------------------------


def test_spec_is_valid_openapi_3_0_3(spec: dict) -> None:
    assert spec["openapi"] == "3.0.3"
    assert spec["info"] == {"title": "Support Service API", "version": "1.0.0"}
    validate_openapi(spec)


def test_title_and_version_are_settable() -> None:
    info = build_spec(make_app(), title="T", version="9")["info"]
    assert info == {"title": "T", "version": "9"}


def test_documented_routes_only(spec: dict) -> None:
    paths = spec["paths"]
    assert set(paths) == {
        "/api/v1/widgets",
        "/api/v1/widgets/{id}",
        "/api/v1/widgets/{widget_id}/parts/{slug}",
        "/api/v1/status",
    }
    assert set(paths["/api/v1/widgets"]) == {"get", "post"}
    assert set(paths["/api/v1/widgets/{id}"]) == {"get", "put", "delete", "parameters"}
    assert all("head" not in item for item in paths.values())
    assert spec["paths"]["/api/v1/widgets"]["get"]["operationId"] == "list_widgets"
    assert [t["name"] for t in spec["tags"]] == ["widgets", "parts", "status"]


def test_path_parameters(spec: dict) -> None:
    assert spec["paths"]["/api/v1/widgets/{id}"]["parameters"] == [
        {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
    ]
    params = spec["paths"]["/api/v1/widgets/{widget_id}/parts/{slug}"]["parameters"]
    assert [(p["name"], p["in"], p["required"], p["schema"]) for p in params] == [
        ("widget_id", "path", True, {"type": "string", "format": "uuid"}),
        ("slug", "path", True, {"type": "string"}),
    ]
    assert "parameters" not in spec["paths"]["/api/v1/widgets"]


def test_query_schema_expands_to_parameters(spec: dict) -> None:
    op = spec["paths"]["/api/v1/widgets"]["get"]
    params = {p["name"]: p for p in op["parameters"]}
    assert set(params) == {"limit", "offset", "colour"}
    assert all(p["in"] == "query" for p in params.values())
    assert params["limit"]["schema"] == {"type": "integer", "default": 20, "minimum": 1, "maximum": 100}
    assert params["colour"]["schema"]["enum"] == ["red", "blue"]
    assert "WidgetQuery" not in spec["components"]["schemas"]


def test_request_body_and_created_response(spec: dict) -> None:
    op = spec["paths"]["/api/v1/widgets"]["post"]
    assert op["summary"] == "Create a widget"
    assert op["description"] == "Makes one widget."
    assert op["tags"] == ["widgets"]
    assert op["requestBody"] == {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/WidgetCreate"}}},
    }
    created = op["responses"]["201"]
    assert created["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Widget"}
    assert "Location" in created["headers"]
    assert "200" not in op["responses"]


def test_partial_body_gets_its_own_schema(spec: dict) -> None:
    op = spec["paths"]["/api/v1/widgets/{id}"]["put"]
    ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/WidgetCreatePartial"
    assert "required" not in spec["components"]["schemas"]["WidgetCreatePartial"]
    assert spec["components"]["schemas"]["WidgetCreate"]["required"] == ["name"]


def test_list_and_nested_responses(spec: dict) -> None:
    parts = spec["paths"]["/api/v1/widgets/{widget_id}/parts/{slug}"]["get"]
    assert parts["responses"]["200"]["content"]["application/json"]["schema"] == {
        "type": "array",
        "items": {"$ref": "#/components/schemas/Widget"},
    }
    page = spec["components"]["schemas"]["WidgetPage"]
    assert page["properties"]["items"]["items"] == {"$ref": "#/components/schemas/Widget"}


def test_delete_answers_no_content(spec: dict) -> None:
    responses = spec["paths"]["/api/v1/widgets/{id}"]["delete"]["responses"]
    assert responses["204"] == {"description": "No Content"}
    assert "requestBody" not in spec["paths"]["/api/v1/widgets/{id}"]["delete"]


def _resolve(spec: dict, obj: dict) -> dict:
    ref = obj.get("$ref")
    if ref is None:
        return obj
    node = spec
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def test_error_responses_are_problem_json(spec: dict) -> None:
    post = spec["paths"]["/api/v1/widgets"]["post"]["responses"]
    assert set(post) == {"201", "400", "401", "403", "409", "422", "429"}
    for code in ("400", "401", "403", "409", "422", "429"):
        response = _resolve(spec, post[code])
        assert list(response["content"]) == ["application/problem+json"], code
    unauthorized = _resolve(spec, post["401"])
    assert unauthorized["content"]["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
    invalid = _resolve(spec, post["422"])
    assert invalid["content"]["application/problem+json"]["schema"] == {
        "$ref": "#/components/schemas/ValidationProblem"
    }
    assert "Retry-After" in _resolve(spec, post["429"])["headers"]

    get_one = spec["paths"]["/api/v1/widgets/{id}"]["get"]["responses"]
    assert set(get_one) == {"200", "401", "403", "404", "429"}  # no body, no query: no 400/422
    listing = spec["paths"]["/api/v1/widgets"]["get"]["responses"]
    assert {"400", "422"} <= set(listing)


def test_problem_schema(spec: dict) -> None:
    schemas = spec["components"]["schemas"]
    problem = schemas["Problem"]
    assert set(problem["properties"]) == {"type", "title", "status", "detail", "errors"}
    assert problem["properties"]["errors"]["type"] == "object"
    assert {"$ref": "#/components/schemas/Problem"} in schemas["ValidationProblem"]["allOf"]


def test_security(spec: dict) -> None:
    assert spec["components"]["securitySchemes"] == {
        "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    }
    private = spec["paths"]["/api/v1/widgets"]["get"]
    assert private["security"] == [{"bearerAuth": []}]
    public = spec["paths"]["/api/v1/status"]["get"]
    assert public["security"] == []
    assert set(public["responses"]) == {"200"}


def test_components_registered_once_by_name(spec: dict) -> None:
    assert set(spec["components"]["schemas"]) == {
        "Problem",
        "ValidationProblem",
        "Widget",
        "WidgetPage",
        "WidgetCreate",
        "WidgetCreatePartial",
    }


def test_same_name_in_two_modules_does_not_clash() -> None:
    first = type("ThingSchema", (Schema,), {"a": fields.String()})
    second = type("ThingSchema", (Schema,), {"b": fields.String()})

    @api_doc(summary="one", tags=["t"], response=first)
    async def one(request: web.Request) -> web.Response: ...

    @api_doc(summary="two", tags=["t"], response=second)
    async def two(request: web.Request) -> web.Response: ...

    app = web.Application()
    app.router.add_get("/one", one)
    app.router.add_get("/two", two)
    spec = build_spec(app)  # filterwarnings=error: an apispec rename warning would fail here
    schemas = spec["components"]["schemas"]
    assert set(schemas["Thing"]["properties"]) == {"a"}
    assert set(schemas["Thing2"]["properties"]) == {"b"}
    validate_openapi(spec)


def test_class_based_views_are_documented() -> None:
    class WidgetView(web.View):
        @api_doc(summary="get", tags=["v"], response=WidgetSchema)
        async def get(self) -> web.Response: ...

        async def post(self) -> web.Response: ...

    app = web.Application()
    app.router.add_view("/view", WidgetView)
    spec = build_spec(app)
    assert set(spec["paths"]["/view"]) == {"get"}
    validate_openapi(spec)


# --- served over HTTP ----------------------------------------------------------------------------


async def test_openapi_json_is_served(aiohttp_client) -> None:
    client = await aiohttp_client(make_app())
    resp = await client.get("/api/openapi.json")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    served = await resp.json()
    assert served["openapi"] == "3.0.3"
    assert "/api/v1/widgets" in served["paths"]
    assert not any(p.startswith("/api/docs") or p == "/api/openapi.json" for p in served["paths"])
    again = await client.get("/api/openapi.json")
    assert await again.json() == served


async def test_docs_page_uses_local_assets_only(aiohttp_client) -> None:
    client = await aiohttp_client(make_app())
    resp = await client.get("/api/docs")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    assert resp.headers["Content-Security-Policy"] == DOCS_CSP
    html = await resp.text()
    assert 'id="swagger-ui"' in html
    assert "<script>" not in html  # no inline script: the CSP forbids it
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert urls and all(u.startswith("/api/docs/assets/") for u in urls)
    assert "http://" not in html and "https://" not in html
    for url in urls:
        asset = await client.get(url)
        assert asset.status == 200, url


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("swagger-ui/swagger-ui-bundle.js", "text/javascript"),
        ("swagger-ui/swagger-ui.css", "text/css"),
        ("swagger-ui/favicon-32x32.png", "image/png"),
        ("docs-init.js", "text/javascript"),
    ],
)
async def test_assets_are_served(aiohttp_client, name: str, content_type: str) -> None:
    client = await aiohttp_client(make_app())
    resp = await client.get(f"/api/docs/assets/{name}")
    assert resp.status == 200
    assert resp.content_type == content_type
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    body = await resp.read()
    assert body


async def test_docs_init_points_at_the_local_spec(aiohttp_client) -> None:
    client = await aiohttp_client(make_app())
    text = await (await client.get("/api/docs/assets/docs-init.js")).text()
    assert "SwaggerUIBundle(" in text
    assert 'url: "/api/openapi.json"' in text
    assert "persistAuthorization: true" in text


@pytest.mark.parametrize("name", ["../docs.py", "swagger-ui/../../openapi.py", "nope.js", "swagger-ui/index.html"])
async def test_only_listed_assets_are_served(aiohttp_client, name: str) -> None:
    client = await aiohttp_client(make_app())
    resp = await client.get(f"/api/docs/assets/{name}")
    assert resp.status == 404


def test_vendored_version_is_recorded() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", swagger_ui_version())
