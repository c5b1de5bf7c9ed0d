"""Browser tests: Debian's Chromium driven by Playwright, a proxy whose connections the test can
cut, and screenshots. Fixtures are in ``browser_fixtures`` (``pytest_plugins``).

Chromium is the system one (``apt-get install chromium``; ``.ci/run`` and ``make test`` install
it as root): Playwright never downloads a browser here. Screenshots go to a temporary folder, or
to ``SCREENSHOT_DIR`` (``make screenshots`` sets ``docs/screenshots``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from pathlib import Path

from playwright.async_api import Page, expect

from app.auth import issue_token

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 800}
DESKTOP = {"width": 1366, "height": 860}
UI_TIMEOUT_MS = 10_000  # the longest any element may take to appear or change


def token(secret: str, user_id: uuid.UUID, role: str, name: str, email: str | None = None) -> str:
    return issue_token(
        secret, user_id, role, ttl=3600, name=name, email=email or f"{role}-{user_id.hex[:6]}@example.com"
    )


def demo_url(base: str, secret: str, customer_id: uuid.UUID, department: str, name: str = "Casey Customer") -> str:
    """The demo host page, its widget signed in as this customer and fixed to the department."""
    return f"{base}/demo#token={token(secret, customer_id, 'customer', name)}&department={department}"


async def open_console(
    open_page,
    base: str,
    secret: str,
    user_id: uuid.UUID,
    *,
    role: str = "agent",
    name: str = "Ada Agent",
    viewport: dict = DESKTOP,
) -> Page:
    """The console signed in through the URL fragment, once its socket is connected."""
    page = await open_page(f"{base}/console#token={token(secret, user_id, role, name)}", viewport=viewport)
    await expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "connected")
    return page


async def screenshot(page: Page, name: str, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    await page.screenshot(path=str(path))
    return path


class CuttableProxy:
    """A TCP proxy in front of the server: ``cut()`` drops every connection through it and
    refuses new ones until ``restore()``, as a train going into a tunnel would;
    ``hold_replies()`` first lets the browser's bytes through but loses the server's (an ack lost
    on the way back)."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._cut = False
        self._lose_replies = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> CuttableProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut(self) -> None:
        self._cut = True
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def hold_replies(self) -> None:
        self._lose_replies = True

    def restore(self) -> None:
        self._cut = False
        self._lose_replies = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(self._pump(reader, up_writer, replies=False), self._pump(up_reader, writer, replies=True))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, replies: bool) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError, OSError):
            while data := await reader.read(65536):
                if replies and self._lose_replies:
                    continue
                writer.write(data)
                await writer.drain()
        self._writers.discard(writer)
        writer.transport.abort()


AXE = REPO / "tests" / "assets" / "axe-core" / "axe.min.js"


async def accessibility_violations(page: Page, include: list[str] | None = None) -> list[dict]:
    """axe-core's WCAG 2 A/AA findings of impact serious or critical (in open shadow roots too),
    as ``{id, impact, help, targets}``; ``include`` limits the check to those selectors."""
    await page.evaluate(AXE.read_text())  # CDP evaluation: the page's CSP does not apply
    found = await page.evaluate(
        """async (include) => {
        const context = include ? { include: include.map((s) => [s]) } : document;
        const result = await axe.run(context, { runOnly: ["wcag2a", "wcag2aa"] });
        return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
                                               targets: v.nodes.map((n) => n.target) }));
    }""",
        include,
    )
    return [v for v in found if v["impact"] in ("serious", "critical")]
