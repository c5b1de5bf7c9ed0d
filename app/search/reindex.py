"""`support-service reindex`: rebuild the search index of the configured backend from PostgreSQL."""

from __future__ import annotations

from app.config import Settings
from app.context import open_context
from app.search.sync import rebuild


async def run(settings: Settings) -> dict:
    async with open_context(settings) as ctx:
        count = await rebuild(ctx)
        return {"backend": ctx.search.name, "index": ctx.search.index_name, "articles": count}
