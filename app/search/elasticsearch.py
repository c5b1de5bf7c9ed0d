"""Elasticsearch backend (official async client), used when ``ELASTICSEARCH_HOST`` is set.

``ELASTICSEARCH_INDEX_ARTICLES`` names an alias. A rebuild (``support-service reindex``, or the
first sync with no stored position) fills a new timestamped index and swaps the alias in one
call, so searches never see a half-built index. Between rebuilds the index follows article
events (app.search.sync). Only published articles are indexed, so drafts cannot leak.

Client 8.x is used on purpose: it talks to Elasticsearch 8 and (through REST compatibility) 9.
"""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from elasticsearch import ApiError, AsyncElasticsearch, NotFoundError, TransportError
from elasticsearch.helpers import async_bulk

from app.config import Settings
from app.search.base import (
    MARK_END,
    MARK_START,
    ArticleBatches,
    SearchBackend,
    SearchHit,
    SearchPage,
    SearchUnavailable,
    SuggestionPage,
    render_snippet,
)

ANALYSIS = {
    "filter": {
        "kb_english_stop": {"type": "stop", "stopwords": "_english_"},
        "kb_english_stemmer": {"type": "stemmer", "language": "english"},
        "kb_english_possessive": {"type": "stemmer", "language": "possessive_english"},
    },
    "analyzer": {
        # Like PostgreSQL's kb_english: accents folded, English stems, stop words dropped.
        "kb_english": {
            "type": "custom",
            "tokenizer": "standard",
            "filter": ["kb_english_possessive", "lowercase", "asciifolding", "kb_english_stop", "kb_english_stemmer"],
        },
        # Like kb_simple: whole words, accents folded.
        "kb_simple": {"type": "custom", "tokenizer": "standard", "filter": ["lowercase", "asciifolding"]},
    },
}
MAPPINGS = {
    "dynamic": "strict",
    "properties": {
        "title": {
            "type": "text",
            "analyzer": "kb_english",
            "fields": {
                "words": {"type": "text", "analyzer": "kb_simple"},
                "prefix": {"type": "search_as_you_type", "analyzer": "kb_simple"},
            },
        },
        "tags": {"type": "keyword", "fields": {"text": {"type": "text", "analyzer": "kb_english"}}},
        "content": {
            "type": "text",
            "analyzer": "kb_english",
            "fields": {"words": {"type": "text", "analyzer": "kb_simple"}},
        },
        "category": {"type": "keyword"},
        "is_published": {"type": "boolean"},
        "published_at": {"type": "date"},
        "updated_at": {"type": "date"},
    },
}
SUGGEST_FIELDS = ["title.prefix", "title.prefix._2gram", "title.prefix._3gram"]


def _url(settings: Settings) -> str:
    """ELASTICSEARCH_HOST may be a bare host or a URL; ELASTICSEARCH_PORT fills a missing port."""
    host = settings.elasticsearch_host or "localhost"
    parts = urlsplit(host if "://" in host else f"http://{host}")
    netloc = parts.netloc if parts.port else f"{parts.netloc}:{settings.elasticsearch_port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _call(body: dict) -> dict:
    """A request body as the client's keyword arguments (``from`` and ``_source`` are renamed)."""
    renamed = {"from": "from_", "_source": "source"}
    return {renamed.get(key, key): value for key, value in body.items()}


def document(article: dict) -> dict:
    """An article as the index holds it."""
    return {
        "title": article["title"],
        "content": article["content"] or "",
        "category": article["category"],
        "tags": list(article["tags"] or []),
        "is_published": bool(article["is_published"]),
        "published_at": article["published_at"].isoformat() if article.get("published_at") else None,
        "updated_at": article["updated_at"].isoformat() if article.get("updated_at") else None,
    }


def filters(category: str | None, tags: list[str] | None) -> list[dict]:
    """Published only, always; then the caller's category and tags (every tag must be there)."""
    clauses: list[dict] = [{"term": {"is_published": True}}]
    if category:
        clauses.append({"term": {"category": category}})
    clauses.extend({"term": {"tags": tag}} for tag in tags or ())
    return clauses


def search_body(q: str, category: str | None, tags: list[str] | None, limit: int, offset: int) -> dict:
    """Title > tags > content; every word must match (stems, with typo tolerance) or the words
    match as prefixes; the content is highlighted with the shared markers."""
    return {
        "query": {
            "bool": {
                "should": [
                    {
                        "multi_match": {
                            "query": q,
                            "fields": ["title^4", "tags.text^2", "content"],
                            "operator": "and",
                            "fuzziness": "AUTO",
                            "prefix_length": 1,
                        }
                    },
                    {
                        "multi_match": {
                            "query": q,
                            "type": "bool_prefix",
                            "operator": "and",
                            "fields": ["title.words^3", "content.words"],
                        }
                    },
                    {"match": {"title.words": {"query": q, "fuzziness": "AUTO", "boost": 2}}},
                ],
                "minimum_should_match": 1,
                "filter": filters(category, tags),
            }
        },
        "highlight": {
            "pre_tags": [MARK_START],
            "post_tags": [MARK_END],
            "encoder": "default",
            "fields": {
                "content": {"fragment_size": 160, "number_of_fragments": 2, "no_match_size": 200},
                "content.words": {"fragment_size": 160, "number_of_fragments": 2},
            },
        },
        "_source": ["title", "category", "tags"],
        "from": offset,
        "size": limit,
        "track_total_hits": True,
    }


def suggest_body(q: str, limit: int, offset: int = 0) -> dict:
    return {
        "query": {
            "bool": {
                "should": [
                    {"multi_match": {"query": q, "type": "bool_prefix", "operator": "and", "fields": SUGGEST_FIELDS}},
                    {"match": {"title.words": {"query": q, "fuzziness": "AUTO"}}},
                ],
                "minimum_should_match": 1,
                "filter": filters(None, None),
            }
        },
        "_source": ["title", "category"],
        "from": offset,
        "size": limit,
        "track_total_hits": True,
    }


class ElasticsearchSearch(SearchBackend):
    name = "elasticsearch"
    follows_events = True

    def __init__(self, settings: Settings, *, index: str | None = None):
        auth = None
        if settings.elasticsearch_username:
            auth = (settings.elasticsearch_username, settings.elasticsearch_password or "")
        self._alias = index or settings.elasticsearch_index_articles
        self.client = AsyncElasticsearch(
            hosts=[_url(settings)], basic_auth=auth, request_timeout=5, max_retries=2, retry_on_timeout=True
        )

    @property
    def index_name(self) -> str:
        return self._alias

    async def search(
        self, q: str, *, category: str | None = None, tags: list[str] | None = None, limit: int = 20, offset: int = 0
    ) -> SearchPage:
        try:
            found = await self.client.search(index=self._alias, **_call(search_body(q, category, tags, limit, offset)))
        except (ApiError, TransportError) as exc:
            raise SearchUnavailable(f"elasticsearch: {exc}") from exc
        items = []
        for hit in found["hits"]["hits"]:
            source = hit["_source"]
            fragments = hit.get("highlight", {})
            snippet = " … ".join(fragments.get("content") or fragments.get("content.words") or [])
            items.append(
                SearchHit(
                    id=uuid.UUID(hit["_id"]),
                    title=source["title"],
                    snippet=render_snippet(snippet),
                    score=round(float(hit["_score"] or 0), 4),
                    category=source["category"],
                    tags=list(source.get("tags") or []),
                )
            )
        return SearchPage(items=items, total=int(found["hits"]["total"]["value"]))

    async def suggest(self, q: str, *, limit: int = 5, offset: int = 0) -> SuggestionPage:
        try:
            found = await self.client.search(index=self._alias, **_call(suggest_body(q, limit, offset)))
        except (ApiError, TransportError) as exc:
            raise SearchUnavailable(f"elasticsearch: {exc}") from exc
        items = [
            {"id": uuid.UUID(h["_id"]), "title": h["_source"]["title"], "category": h["_source"]["category"]}
            for h in found["hits"]["hits"]
        ]
        return SuggestionPage(items=items, total=int(found["hits"]["total"]["value"]))

    async def upsert(self, articles: list[dict]) -> None:
        if articles:
            await async_bulk(
                self.client,
                (
                    {"_op_type": "index", "_index": self._alias, "_id": str(a["id"]), "_source": document(a)}
                    for a in articles
                ),
            )

    async def remove(self, ids: list[uuid.UUID]) -> None:
        if ids:
            await async_bulk(
                self.client,
                ({"_op_type": "delete", "_index": self._alias, "_id": str(i)} for i in ids),
                raise_on_error=False,
                ignore_status=(404,),
            )

    async def rebuild(self, batches: ArticleBatches) -> int:
        """Fill a new index, then point the alias at it and drop the indices it pointed at."""
        target = f"{self._alias}-{int(time.time() * 1000)}"
        await self.client.indices.create(
            index=target, settings={"analysis": ANALYSIS, "number_of_shards": 1}, mappings=MAPPINGS
        )
        count = 0
        async for batch in batches:
            await async_bulk(
                self.client,
                ({"_op_type": "index", "_index": target, "_id": str(a["id"]), "_source": document(a)} for a in batch),
            )
            count += len(batch)
        await self.client.indices.refresh(index=target)
        previous: list[str] = []
        if await self.client.indices.exists_alias(name=self._alias):
            previous = list((await self.client.indices.get_alias(name=self._alias)).keys())
        elif await self.client.indices.exists(index=self._alias):
            # A concrete index where the alias belongs (auto-created by a stray write): replace it.
            await self.client.indices.delete(index=self._alias)
        actions: list[dict[str, Any]] = [{"remove": {"index": name, "alias": self._alias}} for name in previous]
        actions.append({"add": {"index": target, "alias": self._alias}})
        await self.client.indices.update_aliases(actions=actions)
        for name in previous:
            await self.client.indices.delete(index=name, ignore_unavailable=True)
        return count

    async def refresh(self) -> None:
        await self.client.indices.refresh(index=self._alias)

    async def drop(self) -> None:
        """Delete the alias and every index behind it (tests)."""
        try:
            names = list((await self.client.indices.get_alias(name=self._alias)).keys())
        except NotFoundError:
            return
        for name in names:
            await self.client.indices.delete(index=name, ignore_unavailable=True)

    async def health(self) -> dict:
        cluster = await self.client.cluster.health()
        return {
            "backend": self.name,
            "cluster_status": cluster["status"],
            "index": self._alias,
            "index_ready": bool(await self.client.indices.exists_alias(name=self._alias)),
        }

    async def close(self) -> None:
        await self.client.close()
