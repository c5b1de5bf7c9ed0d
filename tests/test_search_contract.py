"""One contract for every KB search backend (app.search.base.SearchBackend).

PostgreSQL full text always runs. Elasticsearch runs when ELASTICSEARCH_HOST (and optionally
ELASTICSEARCH_PORT, _USERNAME, _PASSWORD) is set in the environment — the one conditional of
the suite, since no Elasticsearch runs on the machines CI uses; it gets an index of its own,
dropped afterwards. Articles are written through the KB service, so the Elasticsearch index is
fed exactly as in production: from the article events (app.search.sync).
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import AsyncIterator

import pytest

from app.auth import Principal, RequestMeta
from app.config import Settings
from app.search.base import SearchBackend
from app.search.postgres import PostgresSearch
from app.search.sync import sync_pending
from app.services import kb

EDITOR = Principal(uuid.uuid4(), "supervisor", "Search Editor")
META = RequestMeta(request_id="search-contract", transport="test")
ES_VARS = ("ELASTICSEARCH_HOST", "ELASTICSEARCH_PORT", "ELASTICSEARCH_USERNAME", "ELASTICSEARCH_PASSWORD")


# Only reachable backends are collected (rather than skipped): PostgreSQL always.
BACKENDS = ["postgres"] + (["elasticsearch"] if os.environ.get("ELASTICSEARCH_HOST") else [])


@pytest.fixture(scope="module", params=BACKENDS)
async def backend(request, ctx, test_env) -> AsyncIterator[SearchBackend]:
    if request.param == "postgres":
        yield PostgresSearch(ctx.db)
        return
    from app.search.elasticsearch import ElasticsearchSearch

    env = {**test_env, **{k: os.environ[k] for k in ES_VARS if os.environ.get(k)}}
    es = ElasticsearchSearch(Settings.from_env(env), index=f"kb-articles-test-{uuid.uuid4().hex[:8]}")
    try:
        yield es
    finally:
        await es.drop()
        await es.close()


def word() -> str:
    """A made-up word no other article has (letters only, so every analyzer keeps it whole)."""
    return "".join(random.choice("bdfgklmnprstvz") + random.choice("aeiou") for _ in range(4))


def category() -> str:
    return f"contract-{uuid.uuid4().hex[:10]}"


async def article(
    ctx,
    title: str,
    content: str,
    cat: str,
    *,
    tags: list[str] | None = None,
    published: bool = True,
    content_format: str = "markdown",
) -> dict:
    return await kb.create_article(
        ctx,
        EDITOR,
        META,
        {
            "title": title,
            "content": content,
            "category": cat,
            "tags": tags or [],
            "is_published": published,
            "content_format": content_format,
        },
    )


async def settle(ctx, backend: SearchBackend) -> None:
    """Let an external index catch up with the article events, as the sync duty would."""
    if backend.follows_events:
        await sync_pending(ctx, backend)
        await backend.refresh()


def ids(page) -> list[str]:
    return [str(hit.id) for hit in page.items]


async def test_title_match_ranks_above_body_match(ctx, backend):
    cat, term = category(), word()
    in_body = await article(ctx, "Payment methods", f"You can also pay by {term} at the desk.", cat)
    in_title = await article(ctx, f"Paying with {term}", "Everything about card payments.", cat)
    await settle(ctx, backend)
    page = await backend.search(term, category=cat)
    assert ids(page) == [str(in_title["id"]), str(in_body["id"])]
    assert page.items[0].score > page.items[1].score
    assert page.total == 2


async def test_tag_match_ranks_above_body_match(ctx, backend):
    cat, term = category(), word()
    in_body = await article(ctx, "Luggage", f"Ask about {term} at the counter.", cat)
    in_tags = await article(ctx, "Luggage rules", "Bags and suitcases.", cat, tags=[term])
    await settle(ctx, backend)
    assert ids(await backend.search(term, category=cat)) == [str(in_tags["id"]), str(in_body["id"])]


async def test_a_typo_still_finds_the_article(ctx, backend):
    cat = category()
    wanted = await article(ctx, "Cancelling a reservation", "Open your bookings and press cancel.", cat)
    await settle(ctx, backend)
    assert str(wanted["id"]) in ids(await backend.search("reservaton", category=cat))
    assert str(wanted["id"]) in ids(await backend.search("cancel my reservaton", category=cat))


async def test_prefixes_match_words_being_typed(ctx, backend):
    cat = category()
    wanted = await article(ctx, "Cancelling a reservation", "Open your bookings and press cancel.", cat)
    await settle(ctx, backend)
    for typed in ("reserv", "cancelli", "cancelling a reserv", "book"):
        assert ids(await backend.search(typed, category=cat)) == [str(wanted["id"])], typed


async def test_stems_and_accents_match(ctx, backend):
    cat = category()
    wanted = await article(ctx, "Café refunds", "Refunded orders are credited within five days.", cat)
    await settle(ctx, backend)
    for typed in ("cafe", "refund", "refunding", "credit"):
        assert ids(await backend.search(typed, category=cat)) == [str(wanted["id"])], typed


async def test_drafts_are_never_found(ctx, backend):
    term = word()
    draft = await article(ctx, f"Secret {term}", f"Unreleased {term} policy.", category(), published=False)
    await settle(ctx, backend)
    assert (await backend.search(term)).total == 0
    assert (await backend.suggest(term)).items == []
    assert str(draft["id"]) not in ids(await backend.search("secret unreleased policy"))


async def test_unpublished_and_deleted_articles_disappear(ctx, backend):
    cat, term = category(), word()
    first = await article(ctx, f"First {term}", "Words.", cat)
    second = await article(ctx, f"Second {term}", "Words.", cat)
    await settle(ctx, backend)
    assert sorted(ids(await backend.search(term, category=cat))) == sorted([str(first["id"]), str(second["id"])])
    await kb.update_article(ctx, EDITOR, META, first["id"], {"is_published": False})
    await kb.delete_article(ctx, EDITOR, META, second["id"])
    await settle(ctx, backend)
    assert (await backend.search(term, category=cat)).total == 0
    assert (await backend.suggest(term)).items == []


async def test_updates_are_searchable(ctx, backend):
    cat, old, new = category(), word(), word()
    item = await article(ctx, f"About {old}", "Words.", cat)
    await settle(ctx, backend)
    await kb.update_article(ctx, EDITOR, META, item["id"], {"title": f"About {new}"})
    await settle(ctx, backend)
    assert ids(await backend.search(new, category=cat)) == [str(item["id"])]
    assert ids(await backend.search(old, category=cat)) == []


async def test_filters_by_category_and_every_tag(ctx, backend):
    term = word()
    cat_a, cat_b = category(), category()
    both = await article(ctx, f"{term} one", "Words.", cat_a, tags=["refund", "card"])
    only_refund = await article(ctx, f"{term} two", "Words.", cat_a, tags=["refund"])
    other = await article(ctx, f"{term} three", "Words.", cat_b, tags=["refund", "card"])
    await settle(ctx, backend)
    assert sorted(ids(await backend.search(term, category=cat_a))) == sorted([str(both["id"]), str(only_refund["id"])])
    assert ids(await backend.search(term, category=cat_a, tags=["refund", "card"])) == [str(both["id"])]
    assert sorted(ids(await backend.search(term, tags=["card"]))) == sorted([str(both["id"]), str(other["id"])])


async def test_results_have_the_contract_shape_and_safe_highlighted_snippets(ctx, backend):
    cat, term = category(), word()
    item = await article(ctx, "Fees", f"The {term} fee applies when a < b & c holds.", cat, tags=["fees", "money"])
    await settle(ctx, backend)
    page = await backend.search(term, category=cat)
    hit = page.items[0].as_dict()
    assert set(hit) == {"id", "title", "snippet", "score", "category", "tags"}
    assert hit["id"] == item["id"] and hit["title"] == "Fees" and hit["category"] == cat
    assert hit["tags"] == ["fees", "money"] and isinstance(hit["score"], float) and hit["score"] > 0
    assert f"<mark>{term}</mark>" in hit["snippet"]
    assert "&lt;" in hit["snippet"] and "&amp;" in hit["snippet"]
    assert hit["snippet"].replace("<mark>", "").replace("</mark>", "").count("<") == 0


async def test_html_articles_are_searched_as_text(ctx, backend):
    cat, term = category(), word()
    item = await article(
        ctx, "Html", f"<p>Our <strong>{term}</strong> policy</p><p>second</p>", cat, content_format="html"
    )
    await settle(ctx, backend)
    page = await backend.search(term, category=cat)
    assert ids(page) == [str(item["id"])]
    assert "strong" not in page.items[0].snippet and "<p>" not in page.items[0].snippet
    assert ids(await backend.search("strong", category=cat)) == []


async def test_pages_and_totals(ctx, backend):
    cat, term = category(), word()
    made = [await article(ctx, f"{term} {n}", "Words.", cat) for n in range(5)]
    await settle(ctx, backend)
    first = await backend.search(term, category=cat, limit=2)
    second = await backend.search(term, category=cat, limit=2, offset=2)
    beyond = await backend.search(term, category=cat, limit=2, offset=10)
    assert first.total == second.total == 5 and len(first.items) == len(second.items) == 2
    assert not set(ids(first)) & set(ids(second))
    assert set(ids(first)) | set(ids(second)) < {str(a["id"]) for a in made}
    assert beyond.items == [] and beyond.total == 5


async def test_suggest_completes_titles_being_typed(ctx, backend):
    term = word()
    wanted = await article(ctx, f"Changing {term} dates", "Body words only here.", category())
    await article(ctx, "Unrelated", f"Body mentions {term} only.", category())
    await settle(ctx, backend)
    for typed in (term[:5], f"chang {term[:4]}", term):
        found = (await backend.suggest(typed, limit=5)).items
        assert [s["id"] for s in found][:1] == [wanted["id"]], typed
        assert set(found[0]) == {"id", "title", "category"}
    first = await backend.suggest(term, limit=1)
    assert len(first.items) == 1 and first.total >= 1
    assert (await backend.suggest(term, limit=1, offset=first.total)).items == []


async def test_query_syntax_in_user_input_is_harmless(ctx, backend):
    for q in ("'; DROP TABLE kb_articles; --", "a & | ! ( ) :* <-> \\", '"unbalanced', "ünïcödé 日本語", "x" * 200):
        page = await backend.search(q)
        assert page.total >= 0
        await backend.suggest(q[:100])


# ---------------------------------------------------------------- the command and the Elasticsearch pieces


def test_reindex_command_reports_the_backend(test_env, monkeypatch, capsys):
    import json

    from app.cli import main

    for key, value in test_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("ELASTICSEARCH_HOST", raising=False)
    assert main(["reindex"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["backend"] == "postgres" and report["articles"] >= 0


def test_elasticsearch_queries_only_ever_see_published_articles():
    from app.search.elasticsearch import search_body, suggest_body

    body = search_body("refund", "billing", ["card", "fees"], 20, 40)
    assert body["query"]["bool"]["filter"] == [
        {"term": {"is_published": True}},
        {"term": {"category": "billing"}},
        {"term": {"tags": "card"}},
        {"term": {"tags": "fees"}},
    ]
    assert (body["from"], body["size"]) == (40, 20)
    assert suggest_body("ref", 5)["query"]["bool"]["filter"] == [{"term": {"is_published": True}}]


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("es.internal", 9200, "http://es.internal:9200"),
        ("https://es.example.com", 9243, "https://es.example.com:9243"),
        ("http://10.0.0.5:9300", 9200, "http://10.0.0.5:9300"),
    ],
)
def test_elasticsearch_address_from_settings(test_env, host, port, url):
    from app.search.elasticsearch import _url

    settings = Settings.from_env({**test_env, "ELASTICSEARCH_HOST": host, "ELASTICSEARCH_PORT": str(port)})
    assert _url(settings) == url
