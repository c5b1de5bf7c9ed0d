"""The console signing agents in through the platform's Auth Service (README "Console sign-in"),
in Chromium: a small real HTTP server in the test plays the Auth Service (a login page that sends
the agent back to ``return_to`` with ``#token=...``, and a refresh endpoint answering CORS
preflights), recording what it receives.

Tokens live some twenty seconds so renewal comes soon; every wait is for an event or a condition."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import html
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import jwt
import pytest
from aiohttp import web
from playwright.async_api import Locator, Page, expect

from app.auth import issue_token
from browser_support import UI_TIMEOUT_MS, accessibility_violations, screenshot
from chat_support import Cast, ChatServer, Peer, make_agent, serve_in_process
from sockets.server import SOCKETS, STATE

pytest_plugins = ["chat_fixtures", "browser_fixtures"]

SHORT_TTL = 20  # the console acts at half the life of a short token: after 10 s
TOKEN_KEY = "support-console-token"


@pytest.fixture(autouse=True, scope="module")
def patient_expect() -> Iterator[None]:
    expect.set_options(timeout=UI_TIMEOUT_MS)
    yield
    expect.set_options(timeout=5_000)


class FakeAuthService:
    """The Auth Service's side of the contract, on its own origin (another port)."""

    def __init__(self, secret: str):
        self.secret = secret
        self.url = ""
        self.console_origin = ""  # the one origin it lets call /refresh (CORS)
        self.user: tuple[uuid.UUID, str, str] | None = None  # who signs in at /login
        self.refuse_refresh = False
        self.logins: list[dict[str, str]] = []
        self.preflights: list[dict[str, str]] = []
        self.refreshes: list[dict[str, str]] = []
        self.issued: list[str] = []
        self.refreshed = asyncio.Event()
        self._runner: web.AppRunner | None = None

    def _token(self, user_id: uuid.UUID, role: str, name: str) -> str:
        token = issue_token(self.secret, user_id, role, ttl=3600, name=name)
        self.issued.append(token)
        return token

    async def login(self, request: web.Request) -> web.Response:
        """A login page: "Continue" goes back to return_to with a token in the fragment."""
        self.logins.append(dict(request.query))
        return_to = request.query.get("return_to", "")
        if not return_to.startswith(self.console_origin + "/console") or self.user is None:
            return web.Response(status=400, text="unknown return_to")
        target = f"{return_to}#token={self._token(*self.user)}"
        return web.Response(
            content_type="text/html",
            text=(
                "<!doctype html><title>Auth Service</title><h1>Sign in</h1>"
                f'<a id="continue" href="{html.escape(target)}">Continue as {html.escape(self.user[2])}</a>'
            ),
        )

    def _cors(self, request: web.Request) -> dict[str, str]:
        origin = request.headers.get("Origin", "")
        if origin != self.console_origin:
            return {}
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Credentials": "true",
            "Access-Control-Allow-Methods": "POST",
            "Access-Control-Allow-Headers": "Authorization",
            "Vary": "Origin",
        }

    async def preflight(self, request: web.Request) -> web.Response:
        self.preflights.append(
            {
                "origin": request.headers.get("Origin", ""),
                "headers": request.headers.get("Access-Control-Request-Headers", ""),
            }
        )
        return web.Response(status=204, headers=self._cors(request))

    async def refresh(self, request: web.Request) -> web.Response:
        authorization = request.headers.get("Authorization", "")
        self.refreshes.append({"authorization": authorization, "origin": request.headers.get("Origin", "")})
        self.refreshed.set()
        if self.refuse_refresh:
            return web.json_response({"error": "refused"}, status=401, headers=self._cors(request))
        claims = jwt.decode(authorization.removeprefix("Bearer "), self.secret, algorithms=["HS256"])
        fresh = self._token(uuid.UUID(claims["sub"]), claims["role"], claims.get("name", ""))
        return web.json_response({"token": fresh}, headers=self._cors(request))

    async def start(self) -> FakeAuthService:
        app = web.Application()
        app.router.add_get("/login", self.login)
        app.router.add_route("OPTIONS", "/refresh", self.preflight)
        app.router.add_post("/refresh", self.refresh)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def auth_service(settings) -> AsyncIterator[FakeAuthService]:
    service = await FakeAuthService(settings.jwt_secret).start()
    yield service
    await service.stop()


@dataclasses.dataclass
class Serving:
    server: ChatServer
    cast: Cast
    open_page: Any  # open_page, keeping the pages to close before the server stops


@pytest.fixture
def serving(settings, ctx, auth_service, open_page):
    """A server whose console uses the fake Auth Service: its login page, and its refresh URL
    when ``refresh`` is true. Its pages are closed before it stops (an open socket would hold
    up the server's graceful shutdown)."""

    @contextlib.asynccontextmanager
    async def serve(*, login: bool = True, refresh: bool = False) -> AsyncIterator[Serving]:
        configured = dataclasses.replace(
            settings,
            console_login_url=f"{auth_service.url}/login" if login else None,
            console_refresh_url=f"{auth_service.url}/refresh" if refresh else None,
        )
        pages: list[Page] = []

        async def open_(url: str, **kwargs: Any) -> Page:
            pages.append(await open_page(url, **kwargs))
            return pages[-1]

        async with serve_in_process(configured, ctx) as server:
            auth_service.console_origin = server.url
            cast = Cast(server.url, settings.jwt_secret)
            try:
                yield Serving(server, cast, open_)
            finally:
                await cast.close()
                for page in pages:
                    await page.context.close()

    return serve


async def start_chat(cast: Cast, department: str, subject: str, message: str) -> tuple[Peer, dict]:
    customer = await cast.customer()
    session = (
        await customer.ok(
            "chat:start",
            {"department": department, "subject": subject, "message": message, "client_msg_id": uuid.uuid4().hex},
        )
    )["session"]
    return customer, session


def chat_pane(page: Page, session_id: str) -> Locator:
    return page.locator(f'[data-testid="chat-pane"][data-session-id="{session_id}"]')


def texts(pane: Locator, text: str) -> Locator:
    return pane.get_by_test_id("message-text").filter(has_text=re.compile(f"^{re.escape(text)}$"))


async def accept(page: Page, session_id: str) -> Locator:
    await page.locator(f'[data-testid="queue-item"][data-session-id="{session_id}"]').get_by_test_id("accept").click()
    pane = chat_pane(page, session_id)
    await expect(pane).to_be_visible()
    return pane


async def tickets_load_with(page: Page, token: str) -> None:
    """Opening Tickets calls REST with ``token``, and the server answers 200."""
    async with page.expect_response(lambda r: "/api/v1/tickets?" in r.url and "customer_id" not in r.url) as answered:
        await page.get_by_test_id("nav-tickets").click()
    response = await answered.value
    assert response.status == 200
    assert (await response.request.all_headers())["authorization"] == f"Bearer {token}"
    await page.get_by_test_id("nav-chat").click()


def stored_token(page: Page) -> Any:
    return page.evaluate(f"sessionStorage.getItem({TOKEN_KEY!r})")


async def wait_until_expired(page: Page, token: str) -> None:
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    await page.wait_for_function("exp => Date.now() / 1000 > exp + 1", arg=exp, timeout=(SHORT_TTL + 20) * 1000)


async def console_in_a_chat(open_page, server: ChatServer, cast: Cast, department: str, token: str):
    """A console signed in with ``token``, in a chat, with a draft in its composer."""
    page = await open_page(f"{server.url}/console#token={token}")
    await expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "connected")
    await page.get_by_test_id("presence").select_option("away")  # chats come only by Accept
    await expect(page.get_by_test_id("presence")).to_have_attribute("data-status", "away")
    customer, session = await start_chat(cast, department, "Room upgrade", "Can I upgrade my room?")
    pane = await accept(page, session["id"])
    await expect(texts(pane, "Can I upgrade my room?")).to_have_count(1)
    await pane.get_by_test_id("composer").fill("Let me check the upgrades")
    return page, customer, session


async def chat_still_works(page: Page, customer, session: dict) -> None:
    """The same chat pane, its draft kept: it sends, and the customer's answer arrives live."""
    pane = chat_pane(page, session["id"])
    await expect(pane).to_be_visible()
    await expect(pane.get_by_test_id("composer")).to_have_value("Let me check the upgrades")
    await pane.get_by_test_id("send").click()
    await customer.expect(
        "chat:message", lambda m: m["sender_type"] == "agent" and m["message"] == "Let me check the upgrades"
    )
    await customer.ok(
        "chat:message", {"session_id": session["id"], "client_msg_id": uuid.uuid4().hex, "message": "Thanks!"}
    )
    await expect(texts(pane, "Thanks!")).to_have_count(1)
    await expect(page.get_by_test_id("signin")).to_be_hidden()


# ------------------------------------------------------------------ signing in and out


async def test_signed_out_console_goes_to_the_login_page_and_comes_back_signed_in(
    serving, auth_service, department, screenshot_dir
):
    async with serving() as served:
        server, open_page = served.server, served.open_page
        agent_id = await make_agent(server.ctx, department, name="Lena Login")
        auth_service.user = (agent_id, "agent", "Lena Login")
        console = f"{server.url}/console"

        page = await open_page(console)  # no token: off to the Auth Service
        await expect(page).to_have_url(re.compile("^" + re.escape(f"{auth_service.url}/login?")))
        assert auth_service.logins == [{"return_to": console}]
        await page.locator("#continue").click()  # back with #token=...
        await expect(page.get_by_test_id("agent-name")).to_have_text("Lena Login")
        await expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "connected")
        assert page.url == console  # the token left the address bar
        assert await stored_token(page) == auth_service.issued[-1]

        await page.get_by_test_id("signout").click()  # signing out goes to the login page too
        await expect(page).to_have_url(re.compile("^" + re.escape(f"{auth_service.url}/login?")))
        assert auth_service.logins[-1] == {"return_to": console}
        assert await stored_token(page) is None

        # an expired token: to the login page; back with a token the service refuses (no agent
        # profile): no second trip, the reason and a Sign in button instead
        expired = issue_token(server.settings.jwt_secret, agent_id, "agent", ttl=-60)
        auth_service.user = (uuid.uuid4(), "agent", "Nobody Yet")
        page = await open_page(f"{console}#token={expired}")
        await expect(page).to_have_url(re.compile("^" + re.escape(f"{auth_service.url}/login?")))
        await page.locator("#continue").click()
        await expect(page.get_by_test_id("signin-error")).to_contain_text("no agent profile")
        await expect(page.get_by_test_id("signin-login")).to_be_visible()
        assert len(auth_service.logins) == 3
        await screenshot(page, "console-signin-auth-service-desktop", screenshot_dir)
        assert await accessibility_violations(page) == []
        auth_service.user = (agent_id, "agent", "Lena Login")
        await page.get_by_test_id("signin-login").click()
        await expect(page).to_have_url(re.compile("^" + re.escape(f"{auth_service.url}/login?")))
        await page.locator("#continue").click()
        await expect(page.get_by_test_id("agent-name")).to_have_text("Lena Login")


async def test_without_login_url_the_console_asks_for_a_token(serving):
    async with serving(login=False) as served:
        server, open_page = served.server, served.open_page
        page = await open_page(f"{server.url}/console")
        await expect(page.get_by_test_id("token-input")).to_be_visible()
        await expect(page.get_by_test_id("signin-login")).to_be_hidden()
        assert page.url == f"{server.url}/console"


# ------------------------------------------------------------------ the token's lifetime


async def test_a_token_near_expiry_is_renewed_through_the_refresh_url(serving, auth_service, department):
    async with serving(refresh=True) as served:
        server, cast, open_page = served.server, served.cast, served.open_page
        agent_id = await make_agent(server.ctx, department, name="Rae Renew")
        old = issue_token(server.settings.jwt_secret, agent_id, "agent", ttl=SHORT_TTL, name="Rae Renew")
        page, customer, session = await console_in_a_chat(open_page, server, cast, department, old)
        rest_tokens: list[str] = []
        new_socket = asyncio.Event()  # the socket presented the new token to the server
        # auth:refresh (PROTOCOL.md) where the server has it, else a new CONNECT with the new token
        has_refresh = "auth:refresh" in server.app[SOCKETS].handlers.get("/agent", {})
        packet = r'42/agent,\d*\["auth:refresh",(\{[^}]*\})' if has_refresh else r"40/agent,(\{[^}]*\})"

        def socket_sent(payload: Any) -> None:
            for match in re.finditer(packet, str(payload or "")):
                if auth_service.issued and auth_service.issued[-1] in match[1]:
                    new_socket.set()

        page.on(
            "request",
            lambda r: (
                rest_tokens.append(r.headers.get("authorization", ""))
                if "/api/v1/" in r.url
                else socket_sent(r.post_data)
                if "/ws/chat" in r.url
                else None
            ),
        )
        page.on("websocket", lambda ws: ws.on("framesent", socket_sent))

        await asyncio.wait_for(auth_service.refreshed.wait(), SHORT_TTL + 10)
        assert auth_service.refreshes[0] == {"authorization": f"Bearer {old}", "origin": server.url}
        assert auth_service.preflights and "authorization" in auth_service.preflights[0]["headers"].lower()
        new = auth_service.issued[-1]
        await page.wait_for_function(f"t => sessionStorage.getItem({TOKEN_KEY!r}) === t", arg=new)
        if not has_refresh:  # auth:refresh goes over the socket opened before these listeners: checked below
            await asyncio.wait_for(new_socket.wait(), UI_TIMEOUT_MS / 1000)  # the socket signed in again
        await expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "connected")
        await expect(page.get_by_test_id("session-banner")).to_have_count(0)

        await wait_until_expired(page, old)  # REST would refuse the old token now
        rest_tokens.clear()
        await tickets_load_with(page, new)
        assert rest_tokens and set(rest_tokens) == {f"Bearer {new}"}
        await chat_still_works(page, customer, session)  # after the old token's exp: the socket has the new one
        agent_sockets = [p for ns, p in server.app[STATE].sockets.values() if p.user_id == agent_id]
        new_exp = jwt.decode(new, options={"verify_signature": False})["exp"]
        assert agent_sockets and all(p.expires_at == new_exp for p in agent_sockets)
        assert len(auth_service.refreshes) == 1  # the new token lives an hour: no second call


async def test_without_refresh_the_agent_signs_in_again_in_a_window_and_keeps_the_chat(
    serving, auth_service, department, screenshot_dir
):
    async with serving() as served:
        server, cast, open_page = served.server, served.cast, served.open_page
        agent_id = await make_agent(server.ctx, department, name="Sam Again")
        auth_service.user = (agent_id, "agent", "Sam Again")
        old = issue_token(server.settings.jwt_secret, agent_id, "agent", ttl=SHORT_TTL, name="Sam Again")
        exp = jwt.decode(old, options={"verify_signature": False})["exp"]
        page, customer, session = await console_in_a_chat(open_page, server, cast, department, old)

        banner = page.get_by_test_id("session-banner")
        await expect(banner).to_be_visible(timeout=(SHORT_TTL + 5) * 1000)
        assert await page.evaluate("exp => Date.now() / 1000 < exp", exp)  # before it lapses
        await expect(banner).to_have_attribute("data-reason", "expiring")
        await expect(page.get_by_test_id("session-banner-text")).to_contain_text("Sign in again")
        await expect(chat_pane(page, session["id"])).to_be_visible()  # nothing is blocked
        await screenshot(page, "console-session-banner-desktop", screenshot_dir)
        assert await accessibility_violations(page, ['[data-testid="session-banner"]']) == []

        async with page.expect_popup() as opened:
            await page.get_by_test_id("reauth").click()
        window = await opened.value
        await expect(window).to_have_url(re.compile("^" + re.escape(f"{auth_service.url}/login?")))
        return_to = auth_service.logins[-1]["return_to"]
        assert re.fullmatch(re.escape(f"{server.url}/console?reauth=") + r"\d+", return_to)
        closed = asyncio.get_running_loop().create_future()
        window.on("close", lambda _: closed.done() or closed.set_result(True))
        await window.locator("#continue").click()
        await asyncio.wait_for(closed, UI_TIMEOUT_MS / 1000)  # it handed the token over

        new = auth_service.issued[-1]
        await page.wait_for_function(f"t => sessionStorage.getItem({TOKEN_KEY!r}) === t", arg=new)
        await expect(banner).to_be_hidden()
        await wait_until_expired(page, old)
        await tickets_load_with(page, new)
        await chat_still_works(page, customer, session)


async def test_failed_renewal_without_login_page_asks_for_a_pasted_token(serving, auth_service, department):
    auth_service.refuse_refresh = True
    async with serving(login=False, refresh=True) as served:
        server, cast, open_page = served.server, served.cast, served.open_page
        secret = server.settings.jwt_secret
        agent_id = await make_agent(server.ctx, department, name="Pat Paste")
        old = issue_token(secret, agent_id, "agent", ttl=SHORT_TTL, name="Pat Paste")
        page, customer, session = await console_in_a_chat(open_page, server, cast, department, old)

        banner = page.get_by_test_id("session-banner")
        await expect(banner).to_have_attribute("data-reason", "failed", timeout=(SHORT_TTL + 5) * 1000)
        assert auth_service.refreshes[0]["authorization"] == f"Bearer {old}"
        await page.get_by_test_id("reauth").click()
        field = page.get_by_test_id("reauth-token")
        await field.fill(issue_token(secret, uuid.uuid4(), "agent"))  # someone else's token
        await page.get_by_test_id("reauth-apply").click()
        await expect(page.get_by_test_id("reauth-error")).to_contain_text("another user")
        new = issue_token(secret, agent_id, "agent", ttl=3600, name="Pat Paste")
        await field.fill(new)
        await page.get_by_test_id("reauth-apply").click()
        await expect(banner).to_be_hidden()
        assert await stored_token(page) == new
        await wait_until_expired(page, old)
        await tickets_load_with(page, new)
        await chat_still_works(page, customer, session)
