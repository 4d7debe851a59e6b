"""How a body goes wrong: corrupted bytes, odd content types, and framings that lie about it."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from hypothesis import strategies as st

from tests.bad_input.request import BadRequest, shorten
from tests.raw_http import Headers

INVALID_UTF8: dict[str, bytes] = {
    "byte 0xFF": b"\xff",
    "lone continuation byte 0x80": b"\x80",
    "truncated 2-byte sequence": b"\xc3",
    "overlong encoding C0 AF": b"\xc0\xaf",
    "UTF-8-encoded surrogate ED A0 80": b"\xed\xa0\x80",
    "code point above U+10FFFF": b"\xf4\x90\x80\x80",
    "latin-1 byte 0xB2 (²)": b"\xb2",
}
CORRUPTIONS = (
    "truncated",
    "invalid UTF-8",
    "raw NUL byte",
    "UTF-8 BOM",
    "UTF-16 encoded",
    "UTF-32 encoded",
    "cp1251 encoded",
    "trailing garbage",
    "leading garbage",
    "two documents",
    "random bytes",
    "empty",
    "whitespace only",
    "gzip magic",
    "comment",
    "single quotes",
    "trailing comma",
)
CODECS = {"UTF-16 encoded": "utf-16", "UTF-32 encoded": "utf-32", "cp1251 encoded": "cp1251"}


@st.composite
def corrupted(draw: st.DrawFn, body: bytes) -> tuple[bytes, str]:
    """``body`` broken in one way, and the label of that way."""
    kind = draw(st.sampled_from(CORRUPTIONS))
    pos = draw(st.integers(0, max(len(body) - 1, 0)))
    if kind == "truncated":
        return body[:pos], "body: truncated JSON"
    if kind == "invalid UTF-8":
        name = draw(st.sampled_from(sorted(INVALID_UTF8)))
        return body[:pos] + INVALID_UTF8[name] + body[pos:], f"body: non-UTF-8, {name}"
    if kind == "raw NUL byte":
        return body[:pos] + b"\x00" + body[pos:], "body: raw NUL byte"
    if kind == "UTF-8 BOM":
        return b"\xef\xbb\xbf" + body, "body: UTF-8 BOM"
    if kind in CODECS:
        text = body.decode("utf-8", "replace")
        return text.encode(CODECS[kind], "replace"), f"body: {kind}"
    if kind == "trailing garbage":
        junk = draw(st.sampled_from([b"}", b"x", b",", b"\x00", b"]]]"]))
        return body + junk, f"body: trailing garbage {shorten(junk)}"
    if kind == "leading garbage":
        junk = draw(st.sampled_from([b"x", b")]}'\n", b"\x00", b"["]))
        return junk + body, f"body: leading garbage {shorten(junk)}"
    if kind == "two documents":
        return body + b"\n" + body, "body: two JSON documents"
    if kind == "random bytes":
        return draw(st.binary(min_size=1, max_size=300)), "body: random bytes"
    if kind == "empty":
        return b"", "body: empty"
    if kind == "whitespace only":
        return b" \r\n\t ", "body: whitespace only"
    if kind == "gzip magic":
        return b"\x1f\x8b\x08\x00" + body[:50], "body: gzip bytes"
    if kind == "comment":
        return b"/* c */" + body, "body: JSON with a comment"
    if kind == "single quotes":
        return body.replace(b'"', b"'"), "body: single-quoted JSON"
    return body.rstrip(b"}") + b",}", "body: trailing comma"


CONTENT_TYPES: dict[str, bytes | None] = {
    "application/json": b"application/json",
    "no content-type": None,
    "text/plain": b"text/plain",
    "charset=utf-16": b"application/json; charset=utf-16",
    "form-urlencoded": b"application/x-www-form-urlencoded",
    "multipart": b"multipart/form-data; boundary=zz",
    "problem+json": b"application/problem+json",
    "raw bytes": b"application/json\xff\xb2",
}


@functools.cache
@st.composite
def content_type(draw: st.DrawFn) -> tuple[Headers, str]:
    """Mostly application/json; (headers, label), the label '' for application/json."""
    if draw(st.integers(0, 9)) < 8:
        return [(b"content-type", b"application/json")], ""
    name = draw(st.sampled_from(sorted(CONTENT_TYPES)))
    value = CONTENT_TYPES[name]
    label = f"content-type {name}" if name != "application/json" else ""
    return ([(b"content-type", value)] if value is not None else []), label


@dataclass(frozen=True)
class Framing:
    """How a body goes on the wire: a BadRequest's framing, declared length and chunk sizes."""

    kind: str = "length"
    declared: int = 0
    chunks: tuple[int, ...] = ()
    label: str = ""  # '' when nothing is odd about it


OVERSIZE_CHUNKS = (65536,)  # the body is padded past the limit and sent in 64 KiB chunks
ODD_FRAMINGS = [
    "chunked",
    "chunked",
    "oversize chunked",
    "oversize declared",
    "short",
    "long",
    "halfclose",
]


@st.composite
def framing_for(draw: st.DrawFn, body: bytes, limit: int, force: bool = False) -> Framing:
    """Mostly an honest Content-Length; with ``force`` always something else."""
    kind = draw(st.sampled_from(ODD_FRAMINGS if force else ["length"] * 24 + ODD_FRAMINGS))
    if kind == "length":
        return Framing()
    if kind == "chunked":
        sizes = tuple(draw(st.lists(st.integers(1, 5000), min_size=1, max_size=4)))
        return Framing("chunked", chunks=sizes, label="chunked body" if force else "")
    if kind == "oversize chunked":
        return Framing("chunked", chunks=OVERSIZE_CHUNKS, label="oversize body, chunked")
    if kind == "oversize declared":
        declared = draw(st.sampled_from([limit + 1, limit * 4, 2**31, 2**63 - 1]))
        return Framing("declared", declared, label="oversize body, declared Content-Length")
    if kind == "short" and len(body) > 1:
        declared = draw(st.integers(1, len(body) - 1))
        return Framing("short", declared, label="Content-Length shorter than the body")
    if kind == "halfclose":
        declared = len(body) + draw(st.integers(1, 5000))
        return Framing("halfclose", declared, label="Content-Length longer than the body, then EOF")
    return Framing("long", label="Content-Length longer than the body")


def frame(request: BadRequest, framing: Framing, body: bytes, limit: int) -> None:
    """Give ``request`` ``body`` sent as ``framing``: padded past ``limit`` for an oversize
    chunked body, its first 512 bytes under an oversize declared length."""
    request.framing = framing.kind
    request.declared = framing.declared
    request.chunks = framing.chunks
    request.body = body
    if framing.chunks == OVERSIZE_CHUNKS:
        request.body = body + b" " * (limit + 1 - len(body) + 100) if len(body) <= limit else body
    elif framing.kind == "declared":
        request.body = body[:512]


def arrives_whole(framing: Framing) -> bool:
    """Whether the server reads the body BadRequest.received() gives (no declared length
    it never gets, no EOF before the end)."""
    return framing.kind not in ("declared", "halfclose")
