"""Input rules every transport applies before anything reaches a service or the database.

PostgreSQL cannot store a NUL character, and asyncpg cannot encode a lone UTF-16 surrogate
(``"\\ud800"`` is valid JSON): either fails the whole statement it is in, and a batched insert
fails for every row in it. An ``integer`` column overflows at 2³¹. Deeply nested values exhaust
the recursion limit. So text, numbers and nesting are checked here, once, for REST bodies and
queries (``app.schemas.common.StrictSchema``), every Socket.IO event and gRPC strings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

INT4_MIN, INT4_MAX = -(2**31), 2**31 - 1
MAX_DEPTH = 32  # nesting of objects/arrays any payload may have (metadata included)

NUL_MESSAGE = "NUL characters are not allowed."
SURROGATE_MESSAGE = "Lone UTF-16 surrogates are not allowed."
DEPTH_MESSAGE = f"Nested deeper than {MAX_DEPTH} levels."

_SURROGATE = re.compile("[\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text, or None when it can."""
    if "\x00" in value:
        return NUL_MESSAGE
    if _SURROGATE.search(value):
        return SURROGATE_MESSAGE
    return None


def value_problem(value: Any, depth: int = 0) -> str | None:
    """The first reason any string (or key) inside ``value`` cannot be stored, or a nesting
    depth beyond :data:`MAX_DEPTH`; None when the whole value is fine. Iterative in spirit:
    the depth bound keeps the recursion itself shallow."""
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, (Mapping, list, tuple)):
        if depth >= MAX_DEPTH:
            return DEPTH_MESSAGE
        items = value.items() if isinstance(value, Mapping) else ((None, v) for v in value)
        for key, item in items:
            found = (text_problem(key) if isinstance(key, str) else None) or value_problem(item, depth + 1)
            if found:
                return found
    return None


def field_problems(data: Any) -> dict[str, list[str]]:
    """``{field: [message]}`` for each top-level field of an object whose value (or name) is
    refused; for a non-object, ``{"_schema": [message]}`` when it is refused."""
    if isinstance(data, Mapping):
        found: dict[str, list[str]] = {}
        for key, value in data.items():
            problem = (text_problem(key) if isinstance(key, str) else None) or value_problem(value, 1)
            if problem:
                found[key if isinstance(key, str) and not text_problem(key) else "_schema"] = [problem]
        return found
    problem = value_problem(data)
    return {"_schema": [problem]} if problem else {}


def json_depth_exceeds(text: str | bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether JSON ``text`` nests objects/arrays deeper than ``limit``, found without decoding it
    (brackets inside strings are skipped), so a hostile document never reaches the decoder."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("latin-1")
    if text.count("[") + text.count("{") <= limit:
        return False
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False
