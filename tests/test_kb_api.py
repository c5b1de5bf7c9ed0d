"""/api/v1/kb end to end: articles (publishing, drafts, HTML cleaning), votes, view counts,
search and suggestions, audit and outbox rows, caching, against the real app, database and Redis."""

from __future__ import annotations

import uuid

import pytest

from app import duties
from app.services import kb as kb_service
from helpers import fetch, fetchval, problem

ARTICLES = "/api/v1/kb/articles"
SEARCH = "/api/v1/kb/search"
SUGGEST = "/api/v1/kb/suggest"


def unique(prefix: str = "cat") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def article_body(**fields) -> dict:
    body = {
        "title": f"Article {uuid.uuid4().hex[:8]}",
        "content": "Some helpful words.",
        "category": unique(),
        "tags": ["help"],
    }
    body.update(fields)
    return body


async def create_article(client, headers, **fields) -> dict:
    response = await client.post(ARTICLES, json=article_body(**fields), headers=headers)
    assert response.status == 201, await response.text()
    return await response.json()


@pytest.fixture
def agent(users):
    return users.new("agent")


@pytest.fixture
async def views_paused(ctx):
    """Hold the view-flush duty's cluster lock, so its periodic run cannot flush (and invalidate
    cached rows) in the middle of a test; the test flushes by hand."""
    key = duties._lock_key("kb-view-counts")
    async with ctx.db.connection() as conn:
        await conn.fetchval("SELECT pg_advisory_lock($1)", key)
        try:
            yield
        finally:
            await conn.fetchval("SELECT pg_advisory_unlock($1)", key)


# ---------------------------------------------------------------- create and read


async def test_agent_creates_article_with_201_and_location(client, agent):
    agent_id, headers = agent
    response = await client.post(ARTICLES, json=article_body(title="How to pay", is_published=True), headers=headers)
    assert response.status == 201
    article = await response.json()
    assert response.headers["Location"] == f"{ARTICLES}/{article['id']}"
    assert article["title"] == "How to pay"
    assert article["author_id"] == str(agent_id)
    assert article["is_published"] is True and article["published_at"] is not None
    assert article["content_format"] == "markdown"
    assert (article["view_count"], article["helpful_count"], article["not_helpful_count"]) == (0, 0, 0)


@pytest.mark.parametrize("role", ["supervisor", "admin"])
async def test_supervisors_and_admins_write_articles(client, users, role):
    _, headers = users.new(role)
    await create_article(client, headers)


@pytest.mark.parametrize("role", ["customer", "service"])
async def test_customers_and_services_cannot_write_articles(client, users, ctx, role):
    _, headers = users.new(role)
    category = unique()
    await problem(await client.post(ARTICLES, json=article_body(category=category), headers=headers), 403)
    assert await fetchval(ctx, "SELECT count(*) FROM kb_articles WHERE category = $1", category) == 0


async def test_writes_need_a_token(client, agent):
    _, headers = agent
    article = await create_article(client, headers, is_published=True)
    await problem(await client.post(ARTICLES, json=article_body()), 401)
    await problem(await client.put(f"{ARTICLES}/{article['id']}", json={"title": "x"}), 401)
    await problem(await client.delete(f"{ARTICLES}/{article['id']}"), 401)
    await problem(await client.post(f"{ARTICLES}/{article['id']}/vote", json={"helpful": True}), 401)


async def test_published_article_is_readable_without_token(client, agent):
    _, headers = agent
    article = await create_article(client, headers, is_published=True)
    response = await client.get(f"{ARTICLES}/{article['id']}")
    assert response.status == 200
    assert (await response.json())["title"] == article["title"]


async def test_invalid_token_on_public_read_is_401(client, agent):
    _, headers = agent
    article = await create_article(client, headers, is_published=True)
    await problem(await client.get(f"{ARTICLES}/{article['id']}", headers={"Authorization": "Bearer nope"}), 401)


async def test_draft_is_hidden_from_customers_and_anonymous(client, users, agent):
    _, headers = agent
    _, customer = users.new("customer")
    draft = await create_article(client, headers)
    assert draft["is_published"] is False and draft["published_at"] is None
    await problem(await client.get(f"{ARTICLES}/{draft['id']}"), 404)
    await problem(await client.get(f"{ARTICLES}/{draft['id']}", headers=customer), 404)
    _, other_agent = users.new("agent")
    assert (await client.get(f"{ARTICLES}/{draft['id']}", headers=other_agent)).status == 200


async def test_unknown_and_malformed_ids_are_404(client, agent):
    _, headers = agent
    await problem(await client.get(f"{ARTICLES}/{uuid.uuid4()}"), 404)
    await problem(await client.get(f"{ARTICLES}/not-a-uuid"), 404)
    await problem(await client.put(f"{ARTICLES}/{uuid.uuid4()}", json={"title": "x"}, headers=headers), 404)
    await problem(await client.delete(f"{ARTICLES}/{uuid.uuid4()}", headers=headers), 404)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("title", ""),
        ("title", "x" * 256),
        ("content", ""),
        ("content_format", "rtf"),
        ("category", ""),
        ("tags", ["x" * 51]),
        ("tags", "help"),
        ("is_published", "maybe"),
        ("title", "a\x00b"),
    ],
)
async def test_invalid_article_fields_are_422(client, agent, field, value):
    _, headers = agent
    body = await problem(await client.post(ARTICLES, json=article_body(**{field: value}), headers=headers), 422)
    assert field in body["errors"]


async def test_missing_fields_and_unknown_fields_are_422(client, agent):
    _, headers = agent
    body = await problem(await client.post(ARTICLES, json={"title": "t"}, headers=headers), 422)
    assert {"content", "category"} <= set(body["errors"])
    body = await problem(await client.post(ARTICLES, json=article_body(view_count=100), headers=headers), 422)
    assert "view_count" in body["errors"]


async def test_malformed_json_is_400(client, agent):
    _, headers = agent
    await problem(await client.post(ARTICLES, data="{", headers={**headers, "Content-Type": "application/json"}), 400)


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        (SEARCH, {}, "q"),
        (SEARCH, {"q": ""}, "q"),
        (SEARCH, {"q": "x", "limit": "0"}, "limit"),
        (SEARCH, {"q": "x", "limit": "101"}, "limit"),
        (SEARCH, {"q": "x", "offset": "-1"}, "offset"),
        (SEARCH, {"q": "x", "colour": "red"}, "colour"),
        (SUGGEST, {"q": "a"}, "q"),
        (SUGGEST, {}, "q"),
        (SUGGEST, {"q": "abc", "limit": "11"}, "limit"),
        (ARTICLES, {"sort": "content"}, "sort"),
        (ARTICLES, {"author_id": "nope"}, "author_id"),
    ],
)
async def test_invalid_query_parameters_are_422(client, path, params, field):
    body = await problem(await client.get(path, params=params), 422)
    assert field in body["errors"]


# ---------------------------------------------------------------- content


async def test_html_is_cleaned_on_write(client, agent):
    _, headers = agent
    article = await create_article(
        client,
        headers,
        content_format="html",
        is_published=True,
        content='<p onclick="steal()">Hi <script>alert(1)</script><a href="javascript:x()">link</a>'
        '<strong>bold</strong><iframe src="https://evil.example"></iframe></p>',
    )
    content = article["content"]
    assert "<script" not in content and "onclick" not in content and "javascript:" not in content
    assert "<iframe" not in content
    assert "<strong>bold</strong>" in content and "<p>" in content


async def test_update_cleans_html_too(client, agent):
    _, headers = agent
    article = await create_article(client, headers, content_format="html", content="<p>fine</p>")
    response = await client.put(
        f"{ARTICLES}/{article['id']}", json={"content": "<img src=x onerror=alert(1)>ok"}, headers=headers
    )
    assert response.status == 200
    assert "onerror" not in (await response.json())["content"]


MARKDOWN_AS_WRITTEN = [
    "# Title\n\n> a quote & <b>bold</b>\n\n* item",
    "> Quoted\n> > nested & more\n\nA & B, a < b, c > d, x && y, &copy; &amp; &#35;",
    "See <https://example.com/a?b=1&c=2>, <mailto:help@example.com> and <help@example.com>.",
    '[docs](https://example.com/docs "Docs") ![logo](/static/logo.png) [ref][1]\n\n[1]: https://example.com/ref',
    "Inline `<script>shown as code</script>` stays.",
    '```html\n<script src="https://support.example/static/widget.js"></script>\n<div onclick="x">\n```\n\nEmbed it.',
    "1. one\n2. two\n\n- [ ] task\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n---\n\n**bold** _em_ ~~del~~",
    'Allowed HTML: <a href="https://example.com" title="t" rel="noopener noreferrer">link</a> <br> <sub>2</sub>',
]


@pytest.mark.parametrize("text", MARKDOWN_AS_WRITTEN)
def test_markdown_syntax_is_stored_as_written(text):
    assert kb_service._stored_content(text, "markdown") == text


@pytest.mark.parametrize(
    "text, kept, gone",
    [
        ("Hi <script>alert(1)</script> there", "Hi  there", ["<script", "alert"]),
        ("<img src=x onerror=alert(1)> ok", '<img src="x"> ok', ["onerror"]),
        (
            '<a href="javascript:alert(1)" onclick="x()">x</a>',
            '<a rel="noopener noreferrer">x</a>',
            ["javascript", "onclick"],
        ),
        ('<a href="jav&#x61;script:alert(1)">x</a>', '<a rel="noopener noreferrer">x</a>', ["script"]),
        ('<iframe src="https://evil.example"></iframe>text', "text", ["iframe"]),
        ('<div onmouseover="alert(1)">\n`<script>alert(1)</script>`\n</div>', "\n``\n", ["script", "onmouseover"]),
        ("<pre>\n\n`<script>alert(1)</script>`\n</pre>", "<pre>\n\n``\n</pre>", ["script"]),
        ("- <div>\n  `<img src=x onerror=alert(1)>`", '- \n  `<img src="x">`', ["onerror"]),
        ("<!-- hidden --><style>p{}</style>Text", "Text", ["hidden", "style"]),
        (
            "[x](javascript:alert(1)) [y](data:text/html,hi) <javascript:alert(1)>",
            "[x](#) [y](#) &lt;javascript:alert(1)>",
            ["](javascript", "](data", "<javascript"],
        ),
        ("[r]: vbscript:msgbox\n\n[go][r]", "[r]: #\n\n[go][r]", ["vbscript"]),
        ("a <img/src=x/onerror=alert(1)> b", "a &lt;img/src=x/onerror=alert(1)> b", ["<img"]),
        ("<script>\nalert(1)\n</script>\n\nAfter", "\n\nAfter", ["alert"]),
        ("<<x>script>alert(1)</script>", "", ["script"]),  # removing <x> makes no new tag
        ("</div>[a](javascript:b)", "[a](#)", ["javascript"]),  # a link once the tag is gone
        ("]([a](javascript:alert(1))", "]([a](#)", ["javascript"]),  # each "](" is checked
        ("[r]:\n  javascript:alert(1)\n\n[go][r]", "[r]:\n  #\n\n[go][r]", ["javascript"]),
        ("- item\n   ```\n<script>alert(1)</script>\n   ```", "- item\n   ```\n\n   ```", ["script"]),
    ],
)
def test_html_in_markdown_is_cleaned(text, kept, gone):
    stored = kb_service._stored_content(text, "markdown")
    assert stored == kept
    for bad in gone:
        assert bad not in stored


async def test_markdown_and_titles_are_cleaned_over_the_api(client, agent):
    _, headers = agent
    article = await create_article(
        client,
        headers,
        title='<b onclick="x()">Pay</b> & <script>alert(1)</script>ship',
        content="> Quote & <img src=x onerror=alert(1)> <https://example.com>",
    )
    assert article["title"] == "Pay & ship"
    assert article["content"] == '> Quote & <img src="x"> <https://example.com>'
    response = await client.put(
        f"{ARTICLES}/{article['id']}",
        headers=headers,
        json={"title": "Q&A <i>now</i>", "content": "<script>x()</script>Fine & well"},
    )
    assert response.status == 200
    updated = await response.json()
    assert updated["title"] == "Q&A now" and updated["content"] == "Fine & well"
    body = await problem(
        await client.put(f"{ARTICLES}/{article['id']}", headers=headers, json={"title": "<script>alert(1)</script>"}),
        422,
    )
    assert "title" in body["errors"]


def test_cleaning_markdown_twice_changes_nothing():
    for text in MARKDOWN_AS_WRITTEN + ["<<x>img src=x onerror=alert(1)>", "<div>\n<b onclick=x>hi</b>\n</div>"]:
        once = kb_service._stored_content(text, "markdown")
        assert kb_service._stored_content(once, "markdown") == once


def test_titles_lose_every_tag():
    from app.security.sanitize import clean_title

    assert clean_title("<b>Bold</b> & <em>co</em>") == "Bold & co"
    assert clean_title("a < b > c") == "a < b > c"
    assert clean_title("&lt;script&gt;alert(1)&lt;/script&gt;Hi") == "Hi"  # entities cannot smuggle a tag
    assert clean_title('<a href="https://x">Link</a>  text') == "Link text"


def test_plain_text_of_markdown_and_html():
    assert (
        kb_service.plain_text("# Refunds\n\nSee **[the page](https://x.example)** and `code` _ok_", "markdown")
        == "Refunds See the page and code ok"
    )
    assert kb_service.plain_text("<p>One</p><p>Two &amp; three</p><script>x()</script>", "html") == "One Two & three"
    assert kb_service.plain_text("snake_case stays", "markdown") == "snake_case stays"


# ---------------------------------------------------------------- update, publish, delete


async def test_partial_update_keeps_other_fields(client, agent):
    _, headers = agent
    article = await create_article(client, headers, tags=["a", "b"])
    response = await client.put(f"{ARTICLES}/{article['id']}", json={"title": "Renamed"}, headers=headers)
    assert response.status == 200
    updated = await response.json()
    assert updated["title"] == "Renamed"
    assert updated["tags"] == ["a", "b"] and updated["content"] == article["content"]
    assert updated["updated_at"] > article["updated_at"]


async def test_publishing_via_put_sets_published_at_and_unpublishing_hides(client, agent):
    _, headers = agent
    article = await create_article(client, headers)
    url = f"{ARTICLES}/{article['id']}"
    published = await (await client.put(url, json={"is_published": True}, headers=headers)).json()
    assert published["is_published"] is True and published["published_at"] is not None
    assert (await client.get(url)).status == 200
    await client.put(url, json={"is_published": False}, headers=headers)
    await problem(await client.get(url), 404)


async def test_customer_cannot_update_or_delete(client, users, agent):
    _, headers = agent
    _, customer = users.new("customer")
    article = await create_article(client, headers, is_published=True)
    url = f"{ARTICLES}/{article['id']}"
    await problem(await client.put(url, json={"title": "Hacked"}, headers=customer), 403)
    await problem(await client.delete(url, headers=customer), 403)
    assert (await (await client.get(url)).json())["title"] == article["title"]


async def test_update_refuses_invalid_fields(client, agent):
    _, headers = agent
    article = await create_article(client, headers)
    body = await problem(
        await client.put(f"{ARTICLES}/{article['id']}", json={"title": "", "author_id": "x"}, headers=headers), 422
    )
    assert {"title", "author_id"} <= set(body["errors"])


async def test_delete_is_204_and_article_is_gone(client, agent):
    _, headers = agent
    article = await create_article(client, headers, is_published=True)
    url = f"{ARTICLES}/{article['id']}"
    assert (await client.get(url)).status == 200  # cached now
    response = await client.delete(url, headers=headers)
    assert response.status == 204
    await problem(await client.get(url), 404)


# ---------------------------------------------------------------- list


async def test_list_shows_published_to_anonymous_and_drafts_to_agents(client, users, agent):
    _, headers = agent
    category = unique()
    published = await create_article(client, headers, category=category, is_published=True)
    draft = await create_article(client, headers, category=category)
    anonymous = await (await client.get(ARTICLES, params={"category": category})).json()
    assert [a["id"] for a in anonymous["items"]] == [published["id"]] and anonymous["total"] == 1
    _, customer = users.new("customer")
    seen = await (await client.get(ARTICLES, params={"category": category}, headers=customer)).json()
    assert [a["id"] for a in seen["items"]] == [published["id"]]
    staff = await (await client.get(ARTICLES, params={"category": category}, headers=headers)).json()
    assert {a["id"] for a in staff["items"]} == {published["id"], draft["id"]}
    drafts = await (
        await client.get(ARTICLES, params={"category": category, "is_published": "false"}, headers=headers)
    ).json()
    assert [a["id"] for a in drafts["items"]] == [draft["id"]]


async def test_customer_asking_for_drafts_is_403(client, users):
    _, customer = users.new("customer")
    await problem(await client.get(ARTICLES, params={"is_published": "false"}, headers=customer), 403)
    await problem(await client.get(ARTICLES, params={"is_published": "false"}), 403)


async def test_list_filters_by_tag_and_q_and_pages(client, agent):
    _, headers = agent
    category = unique()
    word = uuid.uuid4().hex[:8]
    tagged = await create_article(
        client, headers, category=category, tags=["alpha", "beta"], is_published=True, title=f"Luggage {word} rules"
    )
    await create_article(client, headers, category=category, tags=["beta"], is_published=True)
    by_tag = await (await client.get(ARTICLES, params={"category": category, "tag": "alpha"})).json()
    assert [a["id"] for a in by_tag["items"]] == [tagged["id"]]
    by_q = await (await client.get(ARTICLES, params={"category": category, "q": "luggag"})).json()
    assert [a["id"] for a in by_q["items"]] == [tagged["id"]]
    page = await (await client.get(ARTICLES, params={"category": category, "limit": 1, "sort": "title"})).json()
    assert page["total"] == 2 and len(page["items"]) == 1 and page["limit"] == 1
    past = await (await client.get(ARTICLES, params={"category": category, "offset": 5})).json()
    assert past["items"] == [] and past["total"] == 2


# ---------------------------------------------------------------- votes


async def test_vote_counts_and_a_new_vote_replaces_the_old(client, ctx, users, agent):
    _, headers = agent
    article = await create_article(client, headers, is_published=True)
    url = f"{ARTICLES}/{article['id']}/vote"
    voter_id, voter = users.new("customer")
    _, other = users.new("customer")
    first = await client.post(url, json={"helpful": True}, headers=voter)
    assert first.status == 200
    assert await first.json() == {
        "article_id": article["id"],
        "helpful": True,
        "helpful_count": 1,
        "not_helpful_count": 0,
    }
    await client.post(url, json={"helpful": True}, headers=other)
    changed = await (await client.post(url, json={"helpful": False}, headers=voter)).json()
    assert (changed["helpful_count"], changed["not_helpful_count"]) == (1, 1)
    again = await (await client.post(url, json={"helpful": False}, headers=voter)).json()
    assert (again["helpful_count"], again["not_helpful_count"]) == (1, 1)
    shown = await (await client.get(f"{ARTICLES}/{article['id']}")).json()
    assert (shown["helpful_count"], shown["not_helpful_count"]) == (1, 1)
    assert await fetchval(ctx, "SELECT count(*) FROM kb_votes WHERE article_id = $1", uuid.UUID(article["id"])) == 2


async def test_vote_validation_and_visibility(client, users, agent):
    _, headers = agent
    _, customer = users.new("customer")
    article = await create_article(client, headers, is_published=True)
    url = f"{ARTICLES}/{article['id']}/vote"
    for bad in ({}, {"helpful": "very"}, {"helpful": True, "stars": 5}):
        await problem(await client.post(url, json=bad, headers=customer), 422)
    draft = await create_article(client, headers)
    await problem(await client.post(f"{ARTICLES}/{draft['id']}/vote", json={"helpful": True}, headers=customer), 404)
    await problem(await client.post(f"{ARTICLES}/{draft['id']}/vote", json={"helpful": True}, headers=headers), 409)
    await problem(await client.post(f"{ARTICLES}/{uuid.uuid4()}/vote", json={"helpful": True}, headers=customer), 404)


# ---------------------------------------------------------------- view counts


async def test_views_are_buffered_then_flushed_to_the_database(client, ctx, agent, views_paused):
    _, headers = agent
    article = await create_article(client, headers, is_published=True)
    article_id = uuid.UUID(article["id"])
    for _ in range(3):
        assert (await client.get(f"{ARTICLES}/{article['id']}")).status == 200
    # Counted without touching the row: the database still says 0, the API adds the buffer.
    assert await fetchval(ctx, "SELECT view_count FROM kb_articles WHERE id = $1", article_id) == 0
    shown = await (await client.get(f"{ARTICLES}/{article['id']}")).json()
    assert shown["view_count"] == 4
    assert await kb_service.flush_view_counts(ctx) >= 4
    assert await fetchval(ctx, "SELECT view_count FROM kb_articles WHERE id = $1", article_id) == 4
    after = await (await client.get(f"{ARTICLES}/{article['id']}")).json()
    assert after["view_count"] == 5
    await kb_service.flush_view_counts(ctx)
    assert await fetchval(ctx, "SELECT view_count FROM kb_articles WHERE id = $1", article_id) == 5


async def test_draft_reads_count_no_views(client, ctx, agent):
    _, headers = agent
    draft = await create_article(client, headers)
    await client.get(f"{ARTICLES}/{draft['id']}", headers=headers)
    assert await ctx.redis.hget(kb_service.VIEWS_KEY, draft["id"]) is None


async def test_flush_with_nothing_buffered_is_a_no_op(ctx):
    await kb_service.flush_view_counts(ctx)
    assert await kb_service.flush_view_counts(ctx) == 0


# ---------------------------------------------------------------- cache


async def test_published_article_is_cached_and_invalidated_on_write(client, ctx, agent, views_paused):
    _, headers = agent
    article = await create_article(client, headers, is_published=True)
    key = f"cache:kb_article:{article['id']}"
    await client.get(f"{ARTICLES}/{article['id']}")
    assert await ctx.redis.exists(key)
    await client.put(f"{ARTICLES}/{article['id']}", json={"title": "Fresh title"}, headers=headers)
    assert not await ctx.redis.exists(key)
    assert (await (await client.get(f"{ARTICLES}/{article['id']}")).json())["title"] == "Fresh title"


# ---------------------------------------------------------------- audit and outbox


async def test_article_writes_are_audited_with_their_events(client, ctx, users):
    author_id, headers = users.new("agent")
    article = await create_article(client, headers, is_published=False)
    url = f"{ARTICLES}/{article['id']}"
    await client.put(url, json={"is_published": True, "content": "New words"}, headers=headers)
    _, voter = users.new("customer")
    await client.post(f"{url}/vote", json={"helpful": True}, headers=voter)
    await client.delete(url, headers=headers)
    actions = [
        r["action"]
        for r in await fetch(
            ctx,
            "SELECT action FROM audit_log WHERE entity = 'kb_article' AND entity_id = $1 ORDER BY id",
            article["id"],
        )
    ]
    assert actions == ["kb_article.create", "kb_article.update", "kb_article.vote", "kb_article.delete"]
    events = await fetch(
        ctx,
        "SELECT type, topic, actor_id, payload FROM support_events "
        "WHERE entity_type = 'kb_article' AND entity_id = $1 ORDER BY position",
        article["id"],
    )
    assert [e["type"] for e in events] == [
        "kb.article_created",
        "kb.article_updated",
        "kb.article_published",
        "kb.article_voted",
        "kb.article_deleted",
    ]
    assert events[0]["actor_id"] == author_id
    assert events[1]["payload"]["changes"]["content"] == {"changed": True}
    assert "New words" not in str([e["payload"] for e in events])


async def test_unchanged_update_writes_no_event(client, ctx, agent):
    _, headers = agent
    article = await create_article(client, headers)
    await client.put(f"{ARTICLES}/{article['id']}", json={"title": article["title"]}, headers=headers)
    assert await fetchval(ctx, "SELECT count(*) FROM support_events WHERE entity_id = $1", article["id"]) == 1


# ---------------------------------------------------------------- search and suggest over REST


async def test_search_is_public_and_ranks_title_over_body(client, agent):
    _, headers = agent
    category, term = unique(), f"zorvex{uuid.uuid4().hex[:6]}"
    body_hit = await create_article(
        client, headers, category=category, is_published=True, content=f"Mentions {term} in passing."
    )
    title_hit = await create_article(client, headers, category=category, is_published=True, title=f"All about {term}")
    response = await client.get(SEARCH, params={"q": term, "category": category})
    assert response.status == 200
    page = await response.json()
    assert [i["id"] for i in page["items"]] == [title_hit["id"], body_hit["id"]]
    assert page["total"] == 2 and page["limit"] == 20 and page["offset"] == 0
    assert set(page["items"][0]) == {"id", "title", "snippet", "score", "category", "tags"}
    assert f"<mark>{term}</mark>" in page["items"][1]["snippet"]


async def test_drafts_never_leak_through_search_or_suggest(client, users, agent):
    _, headers = agent
    _, customer = users.new("customer")
    term = f"draftword{uuid.uuid4().hex[:6]}"
    await create_article(client, headers, title=f"Upcoming {term}", content=f"{term} secret")
    for caller in ({}, customer, headers):
        found = await (await client.get(SEARCH, params={"q": term}, headers=caller)).json()
        assert found["items"] == [] and found["total"] == 0
        suggested = await (await client.get(SUGGEST, params={"q": term}, headers=caller)).json()
        assert suggested["items"] == [] and suggested["total"] == 0
    listed = await (await client.get(ARTICLES, params={"q": term}, headers=customer)).json()
    assert listed["items"] == []


async def test_search_filters_by_tags(client, agent):
    _, headers = agent
    category = unique()
    wanted = await create_article(
        client, headers, category=category, is_published=True, title="Refund timing", tags=["refund", "card"]
    )
    await create_article(client, headers, category=category, is_published=True, title="Refund policy", tags=["refund"])
    page = await (await client.get(SEARCH, params={"q": "refund", "category": category, "tags": "refund,card"})).json()
    assert [i["id"] for i in page["items"]] == [wanted["id"]]


async def test_suggest_returns_titles_for_a_prefix(client, agent):
    _, headers = agent
    term = f"quokka{uuid.uuid4().hex[:6]}"
    wanted = await create_article(client, headers, is_published=True, title=f"Booking a {term} tour")
    response = await client.get(SUGGEST, params={"q": f"book {term[:8]}"})
    assert response.status == 200
    items = (await response.json())["items"]
    assert items[0] == {"id": wanted["id"], "title": wanted["title"], "category": wanted["category"]}


async def test_suggest_answers_the_list_envelope(client, agent):
    _, headers = agent
    term = f"wombat{uuid.uuid4().hex[:6]}"
    made = [await create_article(client, headers, is_published=True, title=f"{term} guide {i}") for i in range(3)]
    await create_article(client, headers, is_published=False, title=f"{term} draft")
    page = await (await client.get(SUGGEST, params={"q": term, "limit": "2"})).json()
    assert set(page) == {"items", "total", "limit", "offset"}
    assert page["total"] == 3 and page["limit"] == 2 and page["offset"] == 0 and len(page["items"]) == 2
    rest = await (await client.get(SUGGEST, params={"q": term, "limit": "2", "offset": "2"})).json()
    assert rest["total"] == 3 and rest["offset"] == 2 and len(rest["items"]) == 1
    assert {i["id"] for i in page["items"] + rest["items"]} == {a["id"] for a in made}
    beyond = await (await client.get(SUGGEST, params={"q": term, "offset": "10"})).json()
    assert beyond["items"] == [] and beyond["total"] == 3
    empty = await (await client.get(SUGGEST, params={"q": f"none{uuid.uuid4().hex[:8]}"})).json()
    assert empty == {"items": [], "total": 0, "limit": 5, "offset": 0}


# ---------------------------------------------------------------- the API document


def test_openapi_document_covers_kb_feedback_and_analytics(client):
    from openapi_spec_validator import validate as validate_openapi

    from rest.openapi import build_spec

    spec = build_spec(client.server.app)
    validate_openapi(spec)
    paths = spec["paths"]
    for path in (
        "/api/v1/kb/articles",
        "/api/v1/kb/articles/{id}",
        "/api/v1/kb/articles/{id}/vote",
        "/api/v1/kb/search",
        "/api/v1/kb/suggest",
        "/api/v1/feedback",
        "/api/v1/feedback/{id}",
        "/api/v1/feedback/analytics",
        "/api/v1/analytics/tickets",
        "/api/v1/analytics/chat",
        "/api/v1/analytics/response-time",
        "/api/v1/analytics/satisfaction",
    ):
        assert path in paths, path
    assert paths["/api/v1/kb/search"]["get"]["security"] == []
    assert paths["/api/v1/kb/articles/{id}"]["get"]["security"] == []
    assert paths["/api/v1/kb/articles/{id}"]["put"]["security"] != []
    assert {p["name"] for p in paths["/api/v1/analytics/chat"]["get"]["parameters"]} >= {
        "from",
        "to",
        "granularity",
        "tz",
        "department",
        "agent_id",
    }


def test_openapi_document_states_the_contract_points(client):
    """Issue 13: list envelopes, feedback's session_id, and what customers may set on tickets."""
    from rest.openapi import build_spec

    spec = build_spec(client.server.app)
    schemas, paths = spec["components"]["schemas"], spec["paths"]

    def response_schema(path: str, method: str = "get") -> dict:
        ref = paths[path][method]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        return schemas[ref.rsplit("/", 1)[1]]

    for path in ("/api/v1/chat/sessions/{id}/messages", "/api/v1/kb/suggest"):
        assert {"items", "total", "limit", "offset"} <= set(response_schema(path)["properties"]), path
    assert "offset" in {p["name"] for p in paths["/api/v1/kb/suggest"]["get"]["parameters"]}
    feedback_names = {name for name, schema in schemas.items() if name.startswith("Feedback")}
    for name in feedback_names:
        assert "chat_session_id" not in schemas[name].get("properties", {}), name
    assert "session_id" in schemas["Feedback"]["properties"]
    assert "session_id" in {p["name"] for p in paths["/api/v1/feedback"]["get"]["parameters"]}
    create = paths["/api/v1/tickets"]["post"]["description"]
    update = paths["/api/v1/tickets/{id}"]["put"]["description"]
    for text in (create, update):
        assert "product decision" in text and "403" in text and "priority" in text and "tags" in text
    assert "their own id" in create
