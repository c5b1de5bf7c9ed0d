"""The default backend: PostgreSQL full text over ``kb_articles.search_vector`` (migration 0003).

Nothing to keep in step: the vector is a generated column, so a committed article is searchable
at once. Ranking, prefix matching, typo tolerance and snippets are in ``search_articles`` and
``suggest_articles`` (sql/queries/kb.sql).
"""

from __future__ import annotations

from app.db import Database, fetch_page
from app.search.base import SearchBackend, SearchHit, SearchPage, SuggestionPage, render_snippet


class PostgresSearch(SearchBackend):
    name = "postgres"

    def __init__(self, db: Database):
        self._db = db

    async def search(
        self, q: str, *, category: str | None = None, tags: list[str] | None = None, limit: int = 20, offset: int = 0
    ) -> SearchPage:
        async with self._db.connection() as conn:
            rows, total = await fetch_page(
                self._db.q.search_articles, conn, q=q, category=category, tags=tags or None, limit=limit, offset=offset
            )
        items = [
            SearchHit(
                id=r["id"],
                title=r["title"],
                snippet=render_snippet(r["snippet"]),
                score=round(float(r["score"]), 4),
                category=r["category"],
                tags=list(r["tags"]),
            )
            for r in rows
        ]
        return SearchPage(items=items, total=total)

    async def suggest(self, q: str, *, limit: int = 5, offset: int = 0) -> SuggestionPage:
        async with self._db.connection() as conn:
            rows, total = await fetch_page(self._db.q.suggest_articles, conn, q=q, limit=limit, offset=offset)
        return SuggestionPage(
            items=[{"id": r["id"], "title": r["title"], "category": r["category"]} for r in rows], total=total
        )

    async def health(self) -> dict:
        return {"backend": self.name}
