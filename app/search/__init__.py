"""KB search: one interface (:mod:`app.search.base`), two backends chosen once from config.

PostgreSQL full text is the default and needs nothing extra; Elasticsearch is used when
``ELASTICSEARCH_HOST`` is set, and then follows article events (:mod:`app.search.sync`).
"""

from __future__ import annotations

from app.config import Settings
from app.db import Database
from app.search.base import SearchBackend, SearchHit, SearchPage, SearchUnavailable
from app.search.postgres import PostgresSearch

__all__ = ["SearchBackend", "SearchHit", "SearchPage", "SearchUnavailable", "PostgresSearch", "create_backend"]


def create_backend(settings: Settings, db: Database) -> SearchBackend:
    if settings.elasticsearch_host:
        from app.search.elasticsearch import ElasticsearchSearch

        return ElasticsearchSearch(settings)
    return PostgresSearch(db)
