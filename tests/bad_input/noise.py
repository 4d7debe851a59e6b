"""Harmless extras any request may carry: unknown headers and unknown query parameters."""

from __future__ import annotations

import functools

from hypothesis import strategies as st

from tests.bad_input.request import quoted
from tests.raw_http import Headers


@functools.cache
@st.composite
def noise_headers(draw: st.DrawFn) -> Headers:
    """Up to two unknown headers, printable or obs-text (0x80-0xFF) values."""
    out: Headers = []
    for _ in range(draw(st.integers(0, 2))):
        name = b"x-fuzz-" + draw(st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True)).encode()
        if draw(st.booleans()):
            value = draw(
                st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=30)
            )
            out.append((name, value.encode() or b"-"))
        else:
            raw = draw(st.binary(min_size=1, max_size=16))
            out.append((name, bytes(0x80 | b for b in raw)))
    return out


@functools.cache
@st.composite
def unknown_query(draw: st.DrawFn) -> list[bytes]:
    """One to four name=value pairs no route reads."""
    pairs = []
    for _ in range(draw(st.integers(1, 4))):
        name = draw(
            st.sampled_from(["x_q", "__proto__", "x_ü", "x_%00", "x_a[b]", "x_" + "q" * 300])
        )
        value = draw(st.text(max_size=20))
        pairs.append(quoted(name) + b"=" + quoted(value))
    return pairs
