"""Knowledge base: articles, publishing, votes, view counts, search and suggestions.

Published articles are readable by anyone, drafts only by agents and up; writes are for agents
and up. Every write is audited and appends its ``kb.article_*`` event in the same transaction
(an Elasticsearch index follows those events), and the cached row is invalidated after commit.
A read of a published article counts a view in Redis; a cluster duty adds the buffered counts
to PostgreSQL in one statement (:func:`flush_view_counts`), so reads never write the database.
"""

from __future__ import annotations

import html
import logging
import re
import time
import uuid
from typing import Any

import nh3
from redis.exceptions import RedisError, ResponseError

from app import metrics
from app.auth import Principal, RequestMeta
from app.cache import RowCache
from app.context import AppContext
from app.db import fetch_page
from app.errors import Forbidden, InvalidState, NotFound, ValidationFailed
from app.search.base import MARK_END, MARK_START, SearchUnavailable
from app.search.postgres import PostgresSearch
from app.security import audit
from app.security.sanitize import clean_html, clean_markdown, clean_title

log = logging.getLogger(__name__)

PUBLIC_FIELDS = (
    "id",
    "title",
    "content",
    "content_format",
    "category",
    "tags",
    "author_id",
    "is_published",
    "published_at",
    "view_count",
    "helpful_count",
    "not_helpful_count",
    "created_at",
    "updated_at",
)
VIEWS_KEY = "kb:views"  # hash: article id -> views not yet in PostgreSQL
VIEWS_FLUSHING_KEY = "kb:views:flushing"
VIEW_FLUSH_SECONDS = 10.0
CACHE_TTL_SECONDS = 300


def _cache(ctx: AppContext) -> RowCache:
    return RowCache(ctx.redis, "kb_article", CACHE_TTL_SECONDS)


# ---------------------------------------------------------------- content

_TAG = re.compile(r"(</?[A-Za-z][^>]*>)")
_MARKDOWN = [
    (re.compile(r"^\s{0,3}(```|~~~).*$", re.M), " "),  # code fences (the code stays)
    (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), r"\1"),  # images -> alt text
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),  # links -> their text
    (re.compile(r"\[([^\]]+)\]\[[^\]]*\]"), r"\1"),  # reference links
    (re.compile(r"^\s{0,3}\[[^\]]+\]:\s*\S+.*$", re.M), " "),  # link definitions
    (re.compile(r"^\s{0,3}#{1,6}\s*", re.M), ""),  # headings
    (re.compile(r"^\s{0,3}>\s?", re.M), ""),  # block quotes
    (re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+", re.M), ""),  # list markers
    (re.compile(r"^\s{0,3}(?:[-*_]\s*){3,}$", re.M), " "),  # rules
    (re.compile(r"[*~`]+|(?<!\w)_+|_+(?!\w)"), ""),  # emphasis and code marks
]


def plain_text(content: str, content_format: str) -> str:
    """The article as plain text: what search indexes and snippets are cut from."""
    text = content
    if content_format == "markdown":
        for pattern, replacement in _MARKDOWN:
            text = pattern.sub(replacement, text)
    # Tags (HTML articles, or HTML inside Markdown) go; their text stays, words kept apart.
    text = html.unescape(nh3.clean(_TAG.sub(r" \1 ", text), tags=set()))
    text = text.replace(MARK_START, "").replace(MARK_END, "")
    return " ".join(text.split())


def _stored_content(content: str, content_format: str) -> str:
    """Cleaned with the allow-list on write whatever the format: HTML as a whole, Markdown's raw
    HTML (the Markdown itself is stored as written). Articles stored before stay as they were."""
    return clean_html(content) if content_format == "html" else clean_markdown(content)


def _stored_title(title: str) -> str:
    """Titles are text: every tag goes."""
    cleaned = clean_title(title)
    if not cleaned:
        raise ValidationFailed(details={"title": ["Nothing is left once HTML is removed."]})
    return cleaned


# ---------------------------------------------------------------- presentation and access


def present(row: dict, pending_views: int = 0) -> dict:
    article = {f: row[f] for f in PUBLIC_FIELDS}
    article["tags"] = list(row["tags"] or [])
    article["view_count"] = row["view_count"] + pending_views
    return article


def _summary(row: dict) -> dict[str, Any]:
    """What an article event carries (no content)."""
    return {
        "article_id": row["id"],
        "title": row["title"],
        "category": row["category"],
        "tags": list(row["tags"] or []),
        "is_published": row["is_published"],
    }


def _sees_drafts(principal: Principal | None) -> bool:
    return principal is not None and principal.is_staff


def _require_editor(principal: Principal) -> None:
    if not principal.is_staff:
        raise Forbidden("Only agents, supervisors and admins write knowledge-base articles")


async def _load_row(ctx: AppContext, article_id: uuid.UUID) -> dict | None:
    async def load() -> dict | None:
        async with ctx.db.connection() as conn:
            row = await ctx.db.q.get_article(conn, id=article_id)
        return dict(row) if row else None

    return await _cache(ctx).get_or_load(article_id, load)


async def _count_view(ctx: AppContext, article_id: uuid.UUID) -> int:
    """Buffer one view in Redis; returns the views of this article not yet in PostgreSQL."""
    try:
        return int(await ctx.redis.hincrby(VIEWS_KEY, str(article_id), 1))
    except RedisError:
        log.warning("view count not recorded", exc_info=True)
        return 0


# ---------------------------------------------------------------- reads


async def get_article(ctx: AppContext, principal: Principal | None, article_id: uuid.UUID) -> dict:
    row = await _load_row(ctx, article_id)
    if row is None or (not row["is_published"] and not _sees_drafts(principal)):
        raise NotFound("Article not found")
    pending = await _count_view(ctx, article_id) if row["is_published"] else 0
    return present(row, pending)


async def list_articles(ctx: AppContext, principal: Principal | None, query: dict) -> dict:
    drafts = _sees_drafts(principal)
    if query.get("is_published") is False and not drafts:
        raise Forbidden("Only agents and up may list unpublished articles")
    params = dict(
        published_only=not drafts,
        is_published=query.get("is_published"),
        category=query.get("category"),
        tag=query.get("tag"),
        author_id=query.get("author_id"),
        q=query.get("q"),
        sort=query["sort"],
    )
    async with ctx.db.connection() as conn:
        rows, total = await fetch_page(
            ctx.db.q.list_articles, conn, **params, limit=query["limit"], offset=query["offset"]
        )
    return {
        "items": [present(dict(r)) for r in rows],
        "total": total,
        "limit": query["limit"],
        "offset": query["offset"],
    }


async def search(ctx: AppContext, query: dict) -> dict:
    """Published articles only, for everyone (drafts are found with the list's ``q``)."""
    backend = ctx.search
    started = time.perf_counter()
    args = dict(category=query.get("category"), tags=query.get("tags"), limit=query["limit"], offset=query["offset"])
    try:
        page = await backend.search(query["q"], **args)
    except SearchUnavailable:
        # The external index is down: PostgreSQL answers, so the widget keeps working.
        log.warning("search backend unavailable; answering from PostgreSQL", exc_info=True)
        backend = PostgresSearch(ctx.db)
        page = await backend.search(query["q"], **args)
    metrics.KB_SEARCH_LATENCY.labels(backend=backend.name, kind="search").observe(time.perf_counter() - started)
    return {
        "items": [hit.as_dict() for hit in page.items],
        "total": page.total,
        "limit": query["limit"],
        "offset": query["offset"],
    }


async def suggest(ctx: AppContext, query: dict) -> dict:
    """Published titles matching what has been typed: the list envelope, ``total`` counting
    every match (the widget shows the first few)."""
    backend = ctx.search
    started = time.perf_counter()
    args = dict(limit=query["limit"], offset=query["offset"])
    try:
        page = await backend.suggest(query["q"], **args)
    except SearchUnavailable:
        log.warning("search backend unavailable; suggesting from PostgreSQL", exc_info=True)
        backend = PostgresSearch(ctx.db)
        page = await backend.suggest(query["q"], **args)
    metrics.KB_SEARCH_LATENCY.labels(backend=backend.name, kind="suggest").observe(time.perf_counter() - started)
    return {"items": page.items, "total": page.total, "limit": query["limit"], "offset": query["offset"]}


async def related_articles(ctx: AppContext, text: str, limit: int = 3) -> list[dict]:
    """Top published articles for a free text (a first chat message, a ticket subject);
    [] when nothing matches or search fails."""
    if not text.strip():
        return []
    # The search matches every word; a subject rarely matches as a whole, so its longest words
    # are tried one by one after it, and the hits merged in order.
    words = sorted({w for w in re.findall(r"\w+", text.lower()) if len(w) >= 4}, key=len, reverse=True)[:4]
    found: dict[str, dict] = {}
    for q in [text, *words]:
        try:
            page = await search(ctx, {"q": q, "limit": limit, "offset": 0})
        except Exception:
            log.warning("KB search for related articles failed", exc_info=True)
            break
        for item in page["items"]:
            found.setdefault(
                str(item["id"]), {"id": str(item["id"]), "title": item["title"], "category": item.get("category")}
            )
        if len(found) >= limit:
            break
    return list(found.values())[:limit]


# ---------------------------------------------------------------- writes


async def create_article(ctx: AppContext, principal: Principal, meta: RequestMeta, data: dict) -> dict:
    _require_editor(principal)
    content_format = data.get("content_format", "markdown")
    content = _stored_content(data["content"], content_format)
    title = _stored_title(data["title"])
    published = data.get("is_published", False)
    async with ctx.db.transaction() as conn:
        row = dict(
            await ctx.db.q.insert_article(
                conn,
                title=title,
                content=content,
                content_text=plain_text(content, content_format),
                content_format=content_format,
                category=data["category"],
                tags=data.get("tags", []),
                author_id=principal.user_id,
                is_published=published,
                now=ctx.clock.now(),
            )
        )
        emitted = [("kb.article_created", _summary(row))]
        if published:
            emitted.append(("kb.article_published", _summary(row)))
        await audit.record_change(
            conn,
            ctx.events,
            principal,
            meta,
            "kb_article.create",
            "kb_article",
            row["id"],
            {"title": row["title"], "category": row["category"], "is_published": published},
            emitted,
        )
    return present(row)


async def _locked(ctx: AppContext, conn: Any, principal: Principal | None, article_id: uuid.UUID) -> dict:
    row = await ctx.db.q.lock_article(conn, id=article_id)
    if row is None or (not row["is_published"] and not _sees_drafts(principal)):
        raise NotFound("Article not found")
    return dict(row)


async def update_article(
    ctx: AppContext, principal: Principal, meta: RequestMeta, article_id: uuid.UUID, data: dict
) -> dict:
    _require_editor(principal)
    now = ctx.clock.now()
    async with ctx.db.transaction() as conn:
        before = await _locked(ctx, conn, principal, article_id)
        after = dict(before)
        for field in ("title", "category", "tags", "is_published", "content_format"):
            if field in data:
                after[field] = data[field]
        if "title" in data:
            after["title"] = _stored_title(data["title"])
        if "content" in data or after["content_format"] != before["content_format"]:
            after["content"] = _stored_content(data.get("content", before["content"]), after["content_format"])
        if after["is_published"] != before["is_published"]:
            after["published_at"] = now if after["is_published"] else None
        changes = {
            f: ({"changed": True} if f == "content" else {"from": before[f], "to": after[f]})
            for f in ("title", "content", "content_format", "category", "tags", "is_published")
            if after[f] != before[f]
        }
        if not changes:
            return present(before)
        row = dict(
            await ctx.db.q.update_article(
                conn,
                id=article_id,
                title=after["title"],
                content=after["content"],
                content_text=plain_text(after["content"], after["content_format"]),
                content_format=after["content_format"],
                category=after["category"],
                tags=after["tags"],
                is_published=after["is_published"],
                published_at=after["published_at"],
                now=now,
            )
        )
        summary = _summary(row)
        emitted = [("kb.article_updated", {**summary, "changes": changes})]
        if "is_published" in changes:
            emitted.append(("kb.article_published" if row["is_published"] else "kb.article_unpublished", summary))
        await audit.record_change(
            conn, ctx.events, principal, meta, "kb_article.update", "kb_article", article_id, changes, emitted
        )
    await _cache(ctx).invalidate(article_id)
    return present(row)


async def delete_article(ctx: AppContext, principal: Principal, meta: RequestMeta, article_id: uuid.UUID) -> None:
    _require_editor(principal)
    async with ctx.db.transaction() as conn:
        row = await _locked(ctx, conn, principal, article_id)
        await ctx.db.q.delete_article(conn, id=article_id)
        await audit.record_change(
            conn,
            ctx.events,
            principal,
            meta,
            "kb_article.delete",
            "kb_article",
            article_id,
            {"title": row["title"], "category": row["category"]},
            [("kb.article_deleted", _summary(row))],
        )
    await _cache(ctx).invalidate(article_id)


async def vote(ctx: AppContext, principal: Principal, meta: RequestMeta, article_id: uuid.UUID, helpful: bool) -> dict:
    """One vote per user per article; voting again replaces the earlier vote."""
    async with ctx.db.transaction() as conn:
        article = await _locked(ctx, conn, principal, article_id)
        if not article["is_published"]:
            raise InvalidState("Only published articles take votes")
        previous = await ctx.db.q.get_vote(conn, article_id=article_id, user_id=principal.user_id)
        previous = None if previous is None else previous["helpful"]
        if previous == helpful:
            return {
                "article_id": article_id,
                "helpful": helpful,
                "helpful_count": article["helpful_count"],
                "not_helpful_count": article["not_helpful_count"],
            }
        await ctx.db.q.upsert_vote(
            conn, article_id=article_id, user_id=principal.user_id, helpful=helpful, now=ctx.clock.now()
        )
        counts = await ctx.db.q.adjust_vote_counts(
            conn,
            id=article_id,
            helpful_delta=int(helpful) - int(previous is True),
            not_helpful_delta=int(not helpful) - int(previous is False),
        )
        await audit.record_change(
            conn,
            ctx.events,
            principal,
            meta,
            "kb_article.vote",
            "kb_article",
            article_id,
            {"helpful": {"from": previous, "to": helpful}},
            [
                (
                    "kb.article_voted",
                    {
                        "article_id": article_id,
                        "helpful": helpful,
                        "previous": previous,
                        "helpful_count": counts["helpful_count"],
                        "not_helpful_count": counts["not_helpful_count"],
                    },
                )
            ],
        )
    await _cache(ctx).invalidate(article_id)
    return {
        "article_id": article_id,
        "helpful": helpful,
        "helpful_count": counts["helpful_count"],
        "not_helpful_count": counts["not_helpful_count"],
    }


# ---------------------------------------------------------------- view counts


async def flush_view_counts(ctx: AppContext) -> int:
    """Add the views buffered in Redis to PostgreSQL in one statement; returns how many views.

    The buffer is renamed away atomically first, so views counted meanwhile start a new one. A
    flush that failed half-way leaves its renamed buffer, which the next run finishes first.
    """
    if not await ctx.redis.exists(VIEWS_FLUSHING_KEY):
        try:
            await ctx.redis.rename(VIEWS_KEY, VIEWS_FLUSHING_KEY)
        except ResponseError:  # no views since the last flush
            return 0
    pending = await ctx.redis.hgetall(VIEWS_FLUSHING_KEY)
    ids, counts = [], []
    for key, value in pending.items():
        try:
            ids.append(uuid.UUID(str(key)))
            counts.append(int(value))
        except ValueError:
            continue
    if ids:
        async with ctx.db.transaction() as conn:
            updated = await ctx.db.q.add_view_counts(conn, ids=ids, counts=counts)
    else:
        updated = []
    await ctx.redis.delete(VIEWS_FLUSHING_KEY)
    cache = _cache(ctx)
    for row in updated:
        await cache.invalidate(row["id"])
    return sum(counts)
