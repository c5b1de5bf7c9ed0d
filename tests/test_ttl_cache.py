"""app.cache.TtlCache, the in-process cache of the outbound clients (User and Booking Service)."""

from __future__ import annotations

from app.cache import TtlCache


def test_entries_expire_after_their_own_ttl_and_a_cached_none_is_a_hit() -> None:
    now = [0.0]
    cache: TtlCache[str, str | None] = TtlCache(10, monotonic=lambda: now[0])
    cache.put("known", "a@example.com", 300)
    cache.put("unknown", None, 30)  # a miss is remembered too, for less time
    assert cache.get("unknown") == (True, None)
    now[0] = 31
    assert cache.get("unknown") == (False, None)
    assert cache.get("known") == (True, "a@example.com")
    now[0] = 301
    assert cache.get("known") == (False, None)
    assert len(cache) == 0  # expired entries are dropped when seen


def test_the_least_recently_used_entry_goes_first_when_full() -> None:
    cache: TtlCache[str, int] = TtlCache(2)
    cache.put("a", 1, 60)
    cache.put("b", 2, 60)
    assert cache.get("a") == (True, 1)  # a is now the most recently used
    cache.put("c", 3, 60)
    assert cache.get("b") == (False, None)
    assert cache.get("a") == (True, 1) and cache.get("c") == (True, 3)
