"""The front ends, served by the service itself: the widget, the agent console and a demo page.

- ``GET /static/{path}``: files under ``static/`` (``widget.js``, ``widget.css``, ``delivery.js``
  (an ES module the widget and the console both load), the console's assets, the vendored
  ``socket.io-client``). Only listed file types are served, never anything
  outside the folder. ``widget.js`` runs on customers' own sites, so it may be loaded from any
  origin (a classic ``<script>`` needs no CORS; the module it imports does, hence
  ``Access-Control-Allow-Origin: *``); it is cached briefly because hosts embed its
  URL unversioned (an ETag makes revalidation cheap), while the vendored library is cached for a
  day. Text files are sent gzipped to clients that accept it (compressed once, kept in memory).
- ``GET /console``: the agent console page (the token goes in the URL fragment, which browsers
  never send to servers, so it stays out of access logs).
- ``GET /console/config.json``: what the console needs to know before sign-in (the Auth
  Service's login and refresh URLs, README "Console sign-in"): a file the page fetches, since its
  CSP allows no inline script. The console page's CSP lets it call the refresh URL's origin.
- ``GET /demo``: a fake host page that embeds the widget, for trying it out and for the tests.
- ``GET /help/articles/{id}``: a published knowledge-base article as a page, the target of the
  article links agents paste into chats (the page fetches the article from the public API).

Pages carry a strict Content-Security-Policy (no inline script): the console and demo talk only
to this origin. Nothing is built at run time.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from app.config import Settings

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
STATIC_PREFIX = "/static"

_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".txt": "text/plain; charset=utf-8",
    ".LICENSE": "text/plain; charset=utf-8",
}
# No .html: pages are served only by their own routes, with their Content-Security-Policy.
_SHORT_CACHE = "public, max-age=300"  # hosts embed widget.js without a version in its URL
_LONG_CACHE = "public, max-age=86400"

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_PAGE_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _resolve(name: str) -> Path | None:
    """The file ``name`` names under STATIC_DIR, or None (outside, hidden, unknown type)."""
    if any(part.startswith(".") for part in name.split("/")):
        return None
    path = (STATIC_DIR / name).resolve()
    if STATIC_DIR not in path.parents or not path.is_file() or _content_type(path) is None:
        return None
    return path


def _content_type(path: Path) -> str | None:
    return _TYPES.get(path.suffix)


@dataclasses.dataclass(frozen=True)
class _Asset:
    body: bytes
    gzipped: bytes | None  # for text types: the widget is fetched by customers' phones
    etag: str


@functools.lru_cache(maxsize=64)
def _asset(path: Path, mtime_ns: int) -> _Asset:
    """The file's bytes, gzipped once (keyed by modification time, so an edit is picked up)."""
    body = path.read_bytes()
    text = (_content_type(path) or "").startswith(("text/", "image/svg"))
    return _Asset(
        body, gzip.compress(body, 9, mtime=0) if text else None, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    )


async def static_file(request: web.Request) -> web.StreamResponse:
    path = _resolve(request.match_info["name"])
    if path is None:
        raise web.HTTPNotFound(text=f"No such file: {request.path}")
    asset = _asset(path, path.stat().st_mtime_ns)
    headers = {
        "Content-Type": _content_type(path) or "application/octet-stream",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": _LONG_CACHE if "vendor" in path.relative_to(STATIC_DIR).parts else _SHORT_CACHE,
        "ETag": asset.etag,
        "Vary": "Accept-Encoding",
        # The widget is loaded from customers' pages; its stylesheet is fetched from there too.
        "Access-Control-Allow-Origin": "*",
        "Cross-Origin-Resource-Policy": "cross-origin",
    }
    if asset.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    if asset.gzipped is not None and "gzip" in request.headers.get("Accept-Encoding", ""):
        return web.Response(body=asset.gzipped, headers={**headers, "Content-Encoding": "gzip"})
    return web.Response(body=asset.body, headers=headers)


def _page(relative: str) -> web.RequestHandler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(
            STATIC_DIR / relative, headers={**_PAGE_HEADERS, "Content-Type": "text/html; charset=utf-8"}
        )

    return handler


# The query parameter of CONSOLE_LOGIN_URL that carries the console's address back (README).
RETURN_TO_PARAM = "return_to"


def console_config(settings: Settings | None) -> dict:
    """What ``GET /console/config.json`` answers."""
    return {
        "login_url": settings.console_login_url if settings else None,
        "refresh_url": settings.console_refresh_url if settings else None,
        "return_to_param": RETURN_TO_PARAM,
    }


def console_csp(settings: Settings | None) -> str:
    """The page CSP, plus the refresh URL's origin in connect-src when it is another origin."""
    refresh = settings.console_refresh_url if settings else None
    if not refresh or refresh.startswith("/"):
        return PAGE_CSP
    parts = urlsplit(refresh)
    return PAGE_CSP.replace("connect-src 'self'", f"connect-src 'self' {parts.scheme}://{parts.netloc}")


def _console_page(settings: Settings | None) -> web.RequestHandler:
    headers = {
        **_PAGE_HEADERS,
        "Content-Security-Policy": console_csp(settings),
        "Content-Type": "text/html; charset=utf-8",
    }

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC_DIR / "console/index.html", headers=headers)

    return handler


def _console_config(settings: Settings | None) -> web.RequestHandler:
    config = console_config(settings)

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response(config, headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})

    return handler


def setup_static(app: web.Application, settings: Settings | None = None) -> None:
    app.router.add_get(STATIC_PREFIX + "/{name:.+}", static_file)
    app.router.add_get("/console", _console_page(settings))
    app.router.add_get("/console/config.json", _console_config(settings))
    app.router.add_get("/demo", _page("demo/index.html"))
    # A published KB article as a page: what agents paste into chats and auto-replies link to.
    app.router.add_get("/help/articles/{id:[0-9a-fA-F-]{36}}", _page("help/article.html"))
