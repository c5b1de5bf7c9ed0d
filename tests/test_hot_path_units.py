"""The chat hot path's shortcuts give the same answers as the slow paths they skip: the
microsecond check of ``chat:message`` against the marshmallow schema, and the per-replica
sender budget against its stated rate."""

from __future__ import annotations

import marshmallow as ma
from hypothesis import given, settings
from hypothesis import strategies as st

from app.schemas.chat import ChatMessageSchema
from app.security.ratelimit import LocalBudgets

SCHEMA = ChatMessageSchema()
TEXT = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["", " ", "\x00", "\ud800", "a" * 64, "a" * 65, "x" * 5000, "x" * 5001, "text", "html"]),
)
VALUE = st.one_of(TEXT, st.integers(), st.none(), st.booleans(), st.lists(st.integers(), max_size=2))
KEYS = st.sampled_from(["session_id", "client_msg_id", "message", "message_type", "attachments", "other"])
LIKELY = st.fixed_dictionaries(
    {"session_id": TEXT, "client_msg_id": TEXT},
    optional={"message": TEXT, "message_type": st.sampled_from(["text", "html", ""]), "attachments": VALUE},
)


@settings(max_examples=600, deadline=None)
@given(LIKELY | st.dictionaries(KEYS, VALUE, max_size=5) | VALUE)
def test_the_fast_check_of_a_chat_message_accepts_only_what_the_schema_accepts_and_alike(data):
    fast = SCHEMA.fast_load(data)
    if fast is None:
        return  # not sure: the caller runs the schema
    try:
        slow = SCHEMA.load(data)
    except ma.ValidationError as exc:
        raise AssertionError(f"fast path accepted {data!r}, the schema refuses it: {exc.messages}") from None
    assert fast == slow


def test_the_fast_check_takes_the_common_message():
    data = {"session_id": "3f0c…", "client_msg_id": "c-1", "message": "Hello"}
    assert SCHEMA.fast_load(data) == SCHEMA.load(data) == {**data, "message_type": "text"}


def test_a_local_budget_allows_its_rate_then_says_how_long_to_wait():
    budgets = LocalBudgets()
    assert [budgets.take("alice", 3) for _ in range(3)] == [0, 0, 0]
    wait_ms = budgets.take("alice", 3)
    assert 0 < wait_ms <= 20_000  # one message every 20 s at 3 a minute
    assert budgets.take("bob", 3) == 0  # budgets are per key


def test_local_budgets_forget_idle_keys_when_full():
    budgets = LocalBudgets(max_keys=2)
    budgets.take("a", 10)
    budgets.take("b", 10)
    for key in ("a", "b"):
        budgets._budgets[key].stamp -= 120  # idle for two minutes
    budgets.take("c", 10)
    assert set(budgets._budgets) == {"c"}
