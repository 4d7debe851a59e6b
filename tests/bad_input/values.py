"""JSON values that are odd in one way (numbers, strings, nesting, keys), as text with a label."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

Valued = tuple[str, str]  # (JSON text, label: what is odd about it)

NUMBERS: dict[str, str] = {
    "1e400": "1e400",
    "-1e400": "-1e400",
    "1e1000000": "1e1000000",
    "1E+999999": "1E+999999",
    "1.8e308": "1.8e308",
    "1e-400": "1e-400",
    "2.5e-1000000": "2.5e-1000000",
    "-0": "-0",
    "-0.0": "-0.0",
    "2^63": str(2**63),
    "2^64": str(2**64),
    "2^64+1": str(2**64 + 1),
    "-2^64": str(-(2**64)),
    "30-digit integer": "1" + "0" * 29,
    "5000-digit integer": "9" * 5000,
    "40-digit decimal": "1234567890123456789.01234567890123456789",
    "2^31": str(2**31),
    "-1": "-1",
    "NaN": "NaN",
    "Infinity": "Infinity",
    "-Infinity": "-Infinity",
    "bare '1.'": "1.",
    "bare '.5'": ".5",
    "leading zero 01": "01",
    "plus sign +1": "+1",
    "hex 0x1F": "0x1F",
}
# The numbers issue 8 names: drawn more often than the rest.
FEATURED_NUMBERS = ("1e400", "1e1000000", "2^64+1", "-0", "NaN", "Infinity")
# Numbers PostgreSQL, orjson or the api's own parser cannot take as they are.
UNSTORABLE_NUMBERS = (
    "1e400",
    "-1e400",
    "1e1000000",
    "1E+999999",
    "1.8e308",
    "2^64",
    "2^64+1",
    "-2^64",
    "5000-digit integer",
    "NaN",
    "Infinity",
    "-Infinity",
)

STRINGS: dict[str, str] = {
    "escaped NUL \\u0000": '"a\\u0000b"',
    "lone high surrogate \\ud800": '"\\ud800"',
    "lone low surrogate \\udc00": '"x\\udc00"',
    "reversed surrogate pair": '"\\udc00\\ud800"',
    "raw control character": '"a\x01b"',
    "raw newline": '"a\nb"',
    "bad escape \\x41": '"\\x41"',
    "unterminated string": '"abc',
    "20000 characters": json.dumps("é" * 20000, ensure_ascii=False),
    "bidi override": json.dumps("\u202eabc", ensure_ascii=False),
    "non-characters U+FFFE U+FFFF": json.dumps("\ufffe\uffff", ensure_ascii=False),
    "astral characters": json.dumps("😀𝄞", ensure_ascii=False),
    "empty string": '""',
    "SQL text": json.dumps("'; DROP TABLE sync_jobs; --"),
    "superscript digits": json.dumps("12²", ensure_ascii=False),
}
UNSTORABLE_STRINGS = (
    "escaped NUL \\u0000",
    "lone high surrogate \\ud800",
    "lone low surrogate \\udc00",
    "reversed surrogate pair",
)

DEPTHS = (10, 254, 255, 256, 257, 1000, 1024, 1025, 5000, 100000)
DUPLICATE_KEYS: dict[str, str] = {
    "duplicate keys": '{"a":1,"a":2}',
    "duplicate keys, other types": '{"a":[1],"a":{"b":null},"a":"x"}',
    "100 duplicate keys": "{" + ",".join(f'"k":{i}' for i in range(100)) + "}",
}
KINDS: dict[str, str] = {
    "null": "null",
    "true": "true",
    "false": "false",
    "number": "7",
    "string": '"x"',
    "empty array": "[]",
    "array": '[1,"a"]',
    "empty object": "{}",
    "object": '{"a":1}',
}


def nested(depth: int, style: str) -> str:
    if style == "arrays":
        return "[" * depth + "1" + "]" * depth
    if style == "objects":
        return '{"a":' * depth + "1" + "}" * depth
    half = depth // 2
    return '[{"a":' * half + "1" + "}]" * half


@functools.cache
@st.composite
def deep_value(draw: st.DrawFn, min_depth: int = 0) -> Valued:
    depth = draw(st.sampled_from([d for d in DEPTHS if d >= min_depth]))
    style = "arrays" if depth > 10000 else draw(st.sampled_from(["arrays", "objects", "mixed"]))
    return nested(depth, style), f"nesting {depth} ({style})"


@functools.cache
def ordinary_json() -> st.SearchStrategy[Any]:
    leaves = (
        st.none()
        | st.booleans()
        | st.integers(-(10**6), 10**6)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=12)
    )
    return st.recursive(
        leaves,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
        ),
        max_leaves=6,
    )


def labelled(table: dict[str, str], names: Sequence[str], label: str) -> st.SearchStrategy[Valued]:
    """One of ``names`` from ``table``, labelled ``label`` with ``{}`` for the name."""
    return st.sampled_from(names).map(lambda name: (table[name], label.format(name)))


@functools.cache
def odd_value() -> st.SearchStrategy[Valued]:
    """A JSON value (as text) that is odd in one way: number, string, nesting, keys."""
    return st.one_of(
        labelled(NUMBERS, FEATURED_NUMBERS, "number {}"),
        labelled(NUMBERS, sorted(NUMBERS), "number {}"),
        labelled(STRINGS, sorted(STRINGS), "string: {}"),
        deep_value(),
        deep_value(),
        labelled(DUPLICATE_KEYS, sorted(DUPLICATE_KEYS), "{}"),
        labelled(KINDS, sorted(KINDS), "a JSON {}"),
        ordinary_json().map(lambda v: (json.dumps(v), "random JSON")),
    )


@functools.cache
def unstorable_value() -> st.SearchStrategy[Valued]:
    """Values the api cannot store or publish as they are: it must refuse them (4xx)."""
    return st.one_of(
        labelled(NUMBERS, UNSTORABLE_NUMBERS, "number {}"),
        labelled(STRINGS, UNSTORABLE_STRINGS, "string: {}"),
        deep_value(min_depth=256),
    )


def obj(fields: Sequence[tuple[str, str]]) -> str:
    """A JSON object from (key, value text) pairs, in order, duplicates kept."""
    return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{v}" for k, v in fields) + "}"


def obj_bytes(fields: Sequence[tuple[str, str]]) -> bytes:
    """``obj`` as UTF-8, lone surrogates kept as they are."""
    return obj(fields).encode("utf-8", "surrogatepass")


def text_of(value: Any) -> str:
    """``value`` as JSON text, non-ASCII kept."""
    return json.dumps(value, ensure_ascii=False)


def ordinary_entry(word: str) -> str:
    """A dictionary entry (JSON text) with nothing odd about it."""
    return obj([("en", text_of(word)), ("ru", text_of("слово")), ("level", '"A1"')])
