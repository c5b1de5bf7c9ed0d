"""The search interface every backend fills in, and what the backends share.

A backend answers two questions about *published* articles — full-text search with ranked,
highlighted results and title suggestions while someone types — and, when its index lives
outside PostgreSQL, keeps that index in step with the articles (``follows_events``).
"""

from __future__ import annotations

import abc
import dataclasses
import html
import uuid
from collections.abc import AsyncIterator
from typing import Any

# Highlight markers the backends put around matches: private-use characters that article text
# never keeps (app.services.kb strips them on write), turned into <mark> after escaping.
MARK_START = "\ue000"
MARK_END = "\ue001"


class SearchUnavailable(Exception):
    """The backend could not answer (down, timed out, index missing)."""


@dataclasses.dataclass(frozen=True)
class SearchHit:
    id: uuid.UUID
    title: str
    snippet: str
    score: float
    category: str
    tags: list[str]

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class SearchPage:
    items: list[SearchHit]
    total: int


@dataclasses.dataclass(frozen=True)
class SuggestionPage:
    items: list[dict]  # [{id, title, category}]
    total: int  # every published title that matches, over all pages


def render_snippet(raw: str | None) -> str:
    """Plain text with match markers -> HTML-safe text with matches in <mark>...</mark>."""
    text = " ".join((raw or "").split())
    return html.escape(text, quote=False).replace(MARK_START, "<mark>").replace(MARK_END, "</mark>")


ArticleBatches = AsyncIterator[list[dict]]


class SearchBackend(abc.ABC):
    """Search over published KB articles.

    Article documents handed to :meth:`upsert` and :meth:`rebuild` are dicts with ``id``,
    ``title``, ``content`` (plain text), ``category``, ``tags``, ``is_published``,
    ``published_at`` and ``updated_at``.
    """

    name: str = "abstract"
    # True when the index is kept outside PostgreSQL and must follow article events.
    follows_events: bool = False

    @abc.abstractmethod
    async def search(
        self, q: str, *, category: str | None = None, tags: list[str] | None = None, limit: int = 20, offset: int = 0
    ) -> SearchPage:
        """Published articles matching ``q``, best first, with ``total`` over all pages."""

    @abc.abstractmethod
    async def suggest(self, q: str, *, limit: int = 5, offset: int = 0) -> SuggestionPage:
        """Published titles for what has been typed so far (``[{id, title, category}]``), best
        first, with ``total`` over all pages."""

    async def upsert(self, articles: list[dict]) -> None:
        """Index (or re-index) these published articles."""

    async def remove(self, ids: list[uuid.UUID]) -> None:
        """Forget these articles (deleted or unpublished); unknown ids are fine."""

    async def rebuild(self, batches: ArticleBatches) -> int:
        """Replace the whole index with the published articles streamed in ``batches``."""
        count = 0
        async for batch in batches:
            count += len(batch)
        return count

    async def refresh(self) -> None:
        """Make every write so far visible to searches (tests; near-real-time indexes)."""

    async def health(self) -> dict:
        return {}

    @property
    def index_name(self) -> str:
        return self.name

    async def close(self) -> None:
        pass
