"""The OpenAPI document and a Swagger UI page, served without any CDN.

``GET /api/openapi.json`` is built from the app's routes (:func:`rest.openapi.build_spec`) on the
first request and cached. ``GET /api/docs`` is a static page that loads the vendored Swagger UI
(``rest/assets/swagger-ui``, see its ``VERSION``) and ``rest/assets/docs-init.js`` from
``/api/docs/assets/...``; it has no inline script, so it carries a strict Content-Security-Policy.
Both are public and are not themselves API operations (they are left out of the document).
"""

from __future__ import annotations

import json
from pathlib import Path

from aiohttp import web

from rest.openapi import build_spec

ASSETS_DIR = Path(__file__).parent / "assets"
SPEC_PATH = "/api/openapi.json"
DOCS_PATH = "/api/docs"
ASSETS_PREFIX = "/api/docs/assets"

DOCS_CSP = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:"

# URL path under ASSETS_PREFIX -> content type; nothing else in the folder is served.
ASSET_TYPES: dict[str, str] = {
    "docs-init.js": "text/javascript",
    "swagger-ui/swagger-ui-bundle.js": "text/javascript",
    "swagger-ui/swagger-ui.css": "text/css",
    "swagger-ui/favicon-32x32.png": "image/png",
    "swagger-ui/LICENSE": "text/plain",
    "swagger-ui/NOTICE": "text/plain",
    "swagger-ui/swagger-ui-bundle.js.LICENSE.txt": "text/plain",
    "swagger-ui/VERSION": "text/plain",
}
_TEXT_TYPES = ("text/",)


def swagger_ui_version() -> str:
    return (ASSETS_DIR / "swagger-ui" / "VERSION").read_text().split()[0]


def _docs_html(version: str) -> str:
    v = f"?v={version}"  # a new vendored version gets new URLs, so long caching is safe
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Support Service API</title>
  <link rel="stylesheet" href="{ASSETS_PREFIX}/swagger-ui/swagger-ui.css{v}">
  <link rel="icon" type="image/png" href="{ASSETS_PREFIX}/swagger-ui/favicon-32x32.png{v}">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{ASSETS_PREFIX}/swagger-ui/swagger-ui-bundle.js{v}"></script>
  <script src="{ASSETS_PREFIX}/docs-init.js{v}"></script>
</body>
</html>
"""


def setup_docs(app: web.Application) -> None:
    """Add ``GET /api/openapi.json``, ``GET /api/docs`` and ``GET /api/docs/assets/{name}``.

    Call it on the root application after every route (and sub-application) is added: the
    document describes ``app``'s routes as they are at the first request.
    """
    cache: dict[str, bytes] = {}
    page = _docs_html(swagger_ui_version())

    async def openapi_json(request: web.Request) -> web.Response:
        body = cache.get("spec")
        if body is None:
            body = cache["spec"] = json.dumps(build_spec(app), indent=2).encode()
        return web.Response(body=body, content_type="application/json", headers={"Cache-Control": "no-cache"})

    async def docs_page(request: web.Request) -> web.Response:
        return web.Response(
            text=page,
            content_type="text/html",
            headers={
                "Content-Security-Policy": DOCS_CSP,
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
                "Cache-Control": "no-cache",
            },
        )

    async def docs_asset(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        content_type = ASSET_TYPES.get(name)
        if content_type is None:
            raise web.HTTPNotFound()
        if content_type.startswith(_TEXT_TYPES):
            content_type += "; charset=utf-8"
        return web.FileResponse(
            ASSETS_DIR / name,
            headers={
                "Content-Type": content_type,
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "public, max-age=86400",
            },
        )

    app.router.add_get(SPEC_PATH, openapi_json)
    app.router.add_get(DOCS_PATH, docs_page)
    app.router.add_get(ASSETS_PREFIX + "/{name:.+}", docs_asset)
