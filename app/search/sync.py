"""Keeping an external search index in step with the articles, from the event log.

Every article write appends a ``kb.article_*`` event in its transaction (app.services.kb). A
leader listener of the replica's event follower (:class:`SearchFollower`) reads those events in
commit-safe order (a ``(txid, position)`` cursor, kept in Redis: app/follower.py) and re-reads each article from PostgreSQL: published ones are indexed, drafts and deleted ones removed. With
no stored cursor (first start, Redis lost) the index is rebuilt from PostgreSQL and the
cursor set to where the rebuild began, so nothing between is missed (replays are harmless).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator

from app.context import AppContext
from app.follower import StoredCursor, Wake, cursor_of, events_after, log_head
from app.search.base import SearchBackend

log = logging.getLogger(__name__)
BATCH = 500
IDLE_SECONDS = 2.0  # the safety-net read of SearchFollower (NOTIFY wakes it at once)


def _cursor(ctx: AppContext, backend: SearchBackend) -> StoredCursor:
    return StoredCursor(ctx.redis, f"search:{backend.name}:{backend.index_name}:cursor")


async def published_batches(ctx: AppContext, size: int = BATCH) -> AsyncIterator[list[dict]]:
    """Every published article as the index holds it, in id order, ``size`` at a time."""
    after = uuid.UUID(int=0)
    while True:
        async with ctx.db.connection() as conn:
            rows = await ctx.db.q.published_articles_after(conn, after=after, limit=size)
        if not rows:
            return
        yield [dict(r) for r in rows]
        after = rows[-1]["id"]


async def rebuild(ctx: AppContext, backend: SearchBackend | None = None) -> int:
    """Rebuild the index from PostgreSQL; returns how many articles it now holds."""
    backend = backend or ctx.search
    async with ctx.db.connection() as conn:
        start = await log_head(ctx.db, conn)  # events from here on are applied after the rebuild
    count = await backend.rebuild(published_batches(ctx))
    if backend.follows_events:
        await _cursor(ctx, backend).set(start)
    log.info("search index rebuilt", extra={"backend": backend.name, "articles": count})
    return count


async def sync_pending(ctx: AppContext, backend: SearchBackend | None = None) -> int:
    """Apply every article event committed after the stored cursor; returns how many."""
    backend = backend or ctx.search
    if not backend.follows_events:
        return 0
    stored = _cursor(ctx, backend)
    cursor = await stored.get()
    if cursor is None:
        await rebuild(ctx, backend)
        return 0
    applied = 0
    async for events in events_after(ctx.db, cursor, entity_type="kb_article", batch=BATCH):
        ids = list(dict.fromkeys(uuid.UUID(e["entity_id"]) for e in events))
        async with ctx.db.connection() as conn:
            current = [await ctx.db.q.article_for_index(conn, id=i) for i in ids]
        published = [dict(r) for r in current if r is not None and r["is_published"]]
        gone = [i for i, r in zip(ids, current, strict=True) if r is None or not r["is_published"]]
        await backend.upsert(published)
        await backend.remove(gone)
        applied += len(events)
        await stored.set(cursor_of(events[-1]))
    return applied


class SearchFollower:
    """Search sync as a leader listener of the replica's event follower (app/follower.py): one
    replica at a time applies article events to the index, woken by NOTIFY, with a read every
    ``idle_seconds`` as a safety net."""

    name = "search-sync"
    leader = True

    def __init__(self, ctx: AppContext, *, idle_seconds: float = IDLE_SECONDS):
        self.ctx = ctx
        self.idle_seconds = idle_seconds
        self.retry_seconds = idle_seconds
        self.wake = Wake()

    async def follow(self) -> None:
        while True:
            await sync_pending(self.ctx)
            await self.wake.wait(self.idle_seconds)
