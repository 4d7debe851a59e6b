"""Odd values for a query parameter a route reads, mostly one that should be an integer."""

from __future__ import annotations

import functools

from hypothesis import strategies as st

from tests.bad_input.request import quoted

QUERY_ODDITIES: dict[str, bytes] = {
    "empty": b"",
    "zero": b"0",
    "negative": b"-1",
    "huge": b"99999999999999999999999999999",
    "5000 digits": b"9" * 5000,
    "1e400": b"1e400",
    "NaN": b"NaN",
    "Infinity": b"Infinity",
    "fractional": b"1.5",
    "letters": b"abc",
    "percent-encoded NUL": b"%00",
    "percent-encoded 0xFF": b"%FF",
    "superscript ² (UTF-8)": b"%C2%B2",
    "superscript ² (latin-1 byte)": b"%B2",
    "Arabic-Indic digits": quoted("١٧"),
    "fullwidth digits": quoted("１７"),
    "bidi override": quoted("\u202e5"),
    "spaces": b"%20%205%20",
    "plus signs": b"+5+",
    "broken percent escape": b"%G1%",
    "10 KB": b"a" * 10240,
    "JSON": quoted('{"a":1}'),
    "array-style": b"1&x[]=2",
}
# Query values an integer parameter may fairly read as a number.
VALID_ISH = ("spaces", "plus signs", "array-style")


@functools.cache
@st.composite
def query_value(draw: st.DrawFn) -> tuple[bytes, str]:
    """(encoded value, label)."""
    name = draw(st.sampled_from(sorted(QUERY_ODDITIES)))
    return QUERY_ODDITIES[name], name
