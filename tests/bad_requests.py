"""Bad HTTP requests for the fault suite: Hypothesis generators and a raw keep-alive client."""

from __future__ import annotations

import base64
import functools
import hmac
import json
import re
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any
from urllib.parse import quote_from_bytes

import orjson
from hypothesis import strategies as st
from schemathesis import Case
from schemathesis.core import NotSet

from schemas.signing import EMPTY_BODY_SHA256

Headers = list[tuple[bytes, bytes]]
Valued = tuple[str, str]  # (JSON text, label: what is odd about it)

HEALTHZ = b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"
BODY_METHODS = (b"POST", b"PUT", b"PATCH")
PARSER_400 = b"Invalid HTTP request received."


@dataclass(frozen=True)
class Target:
    """What the generators know about the api under test."""

    admin_key: str
    admin_pin: str
    push_secrets: tuple[str, ...]
    push_source: str
    models_token: str
    models_secret: str
    seed_job_id: str
    seed_request_id: str
    max_entries: int
    max_body: int
    push_max_body: int


@dataclass
class BadRequest:
    """One request as bytes on the wire, and what the report calls it."""

    route: str  # "POST /v1/syncs": method and path template
    auth: str  # which credentials it carries ("admin", "none", "signed", ...)
    label: str  # what is wrong with it, by class: the report deduplicates on this
    method: bytes
    target: bytes
    headers: Headers = field(default_factory=list)
    body: bytes = b""
    # "length": an honest Content-Length; "chunked"; "short": Content-Length covers only
    # ``declared`` bytes and a GET /healthz follows in the same packet; "long": the
    # Content-Length also covers a following GET /healthz; "declared": Content-Length
    # ``declared`` but only ``body`` sent; "halfclose": Content-Length over the body, then
    # the client closes its side; "raw": ``body`` is the whole request.
    framing: str = "length"
    chunks: tuple[int, ...] = ()
    declared: int = 0
    version: bytes = b"HTTP/1.1"
    parser_may_refuse: bool = False  # uvicorn's parser may answer 400 text/plain and close
    keeps_alive: bool = True  # the connection is expected to serve the next request
    must_refuse: bool = False  # a 2xx answer is a failure (a write, or no credentials)
    odd_if_ok: bool = False  # a 2xx answer is listed for review
    detail: str = ""

    def received(self) -> bytes:
        """The body as the server reads it."""
        if self.framing == "short":
            return self.body[: self.declared]
        if self.framing == "long":
            return self.body + HEALTHZ
        return self.body

    def wire(self) -> bytes:
        lines = [self.method + b" " + self.target + b" " + self.version]
        if self.framing != "raw":
            lines.append(b"host: 127.0.0.1")
        lines += [name + b": " + value for name, value in self.headers]
        body = self.body
        if self.framing == "raw":
            return body
        if self.framing == "length":
            if body or self.method in BODY_METHODS:
                lines.append(b"content-length: %d" % len(body))
        elif self.framing == "chunked":
            lines.append(b"transfer-encoding: chunked")
            body = chunked(body, self.chunks)
        elif self.framing == "short":
            lines.append(b"content-length: %d" % self.declared)
            body = body[: self.declared] + HEALTHZ
        elif self.framing == "long":
            lines.append(b"content-length: %d" % (len(body) + len(HEALTHZ)))
            body += HEALTHZ
        elif self.framing in ("declared", "halfclose"):
            lines.append(b"content-length: %d" % self.declared)
        return b"\r\n".join(lines) + b"\r\n\r\n" + body

    def example(self) -> str:
        """A short picture of the request for the report."""
        shown = self.detail or ""
        if not shown:
            shown = self.target.decode("latin-1")[:80]
        return shown[:160]


def chunked(body: bytes, sizes: Sequence[int]) -> bytes:
    out = []
    pos = 0
    index = 0
    while pos < len(body):
        size = max(1, sizes[index % len(sizes)]) if sizes else 4096
        piece = body[pos : pos + size]
        out.append(b"%x\r\n" % len(piece) + piece + b"\r\n")
        pos += size
        index += 1
    return b"".join(out) + b"0\r\n\r\n"


def short(value: bytes | str, limit: int = 60) -> str:
    text = value if isinstance(value, str) else value.decode("latin-1")
    text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else f"{text[: limit - 12]}…({len(text)} chars)"


# --- JSON values that are odd in one way, each with its label --------------------------

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
DUPLICATES: dict[str, str] = {
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


@functools.cache
def odd_value() -> st.SearchStrategy[Valued]:
    """A JSON value (as text) that is odd in one way: number, string, nesting, keys."""
    return st.one_of(
        st.sampled_from(FEATURED_NUMBERS).map(lambda k: (NUMBERS[k], f"number {k}")),
        st.sampled_from(sorted(NUMBERS)).map(lambda k: (NUMBERS[k], f"number {k}")),
        st.sampled_from(sorted(STRINGS)).map(lambda k: (STRINGS[k], f"string: {k}")),
        deep_value(),
        deep_value(),
        st.sampled_from(sorted(DUPLICATES)).map(lambda k: (DUPLICATES[k], k)),
        st.sampled_from(sorted(KINDS)).map(lambda k: (KINDS[k], f"a JSON {k}")),
        ordinary_json().map(lambda v: (json.dumps(v), "random JSON")),
    )


@functools.cache
def unstorable_value() -> st.SearchStrategy[Valued]:
    """Values the api cannot store or publish as they are: it must refuse them (4xx)."""
    return st.one_of(
        st.sampled_from(UNSTORABLE_NUMBERS).map(lambda k: (NUMBERS[k], f"number {k}")),
        st.sampled_from(UNSTORABLE_STRINGS).map(lambda k: (STRINGS[k], f"string: {k}")),
        deep_value(min_depth=256),
    )


def obj(fields: Sequence[tuple[str, str]]) -> str:
    """A JSON object from (key, value text) pairs, in order, duplicates kept."""
    return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{v}" for k, v in fields) + "}"


def text_of(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


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
    if kind in ("UTF-16 encoded", "UTF-32 encoded", "cp1251 encoded"):
        codec = {"UTF-16 encoded": "utf-16", "UTF-32 encoded": "utf-32"}.get(kind, "cp1251")
        text = body.decode("utf-8", "replace")
        return text.encode(codec, "replace"), f"body: {kind}"
    if kind == "trailing garbage":
        junk = draw(st.sampled_from([b"}", b"x", b",", b"\x00", b"]]]"]))
        return body + junk, f"body: trailing garbage {short(junk)}"
    if kind == "leading garbage":
        junk = draw(st.sampled_from([b"x", b")]}'\n", b"\x00", b"["]))
        return junk + body, f"body: leading garbage {short(junk)}"
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


# --- credentials ------------------------------------------------------------------------

ADMIN_OK = ("admin key", "admin key, lowercase scheme", "admin PIN", "admin key and a wrong PIN")
ADMIN_BAD = (
    "none",
    "wrong key",
    "wrong PIN",
    "Basic scheme",
    "empty Bearer",
    "key with non-ASCII bytes",
    "PIN with non-ASCII bytes",
    "8 KB key",
    "two Authorization headers, wrong first",
)


def admin_headers(t: Target, kind: str) -> Headers:
    key = t.admin_key.encode()
    pin = t.admin_pin.encode()
    return {
        "admin key": [(b"authorization", b"Bearer " + key)],
        "admin key, lowercase scheme": [(b"authorization", b"bearer  " + key + b" ")],
        "admin PIN": [(b"x-admin-pin", pin)],
        "admin key and a wrong PIN": [(b"authorization", b"Bearer " + key), (b"x-admin-pin", b"0")],
        "none": [],
        "wrong key": [(b"authorization", b"Bearer " + key + b"x")],
        "wrong PIN": [(b"x-admin-pin", pin + b"0")],
        "Basic scheme": [(b"authorization", b"Basic " + base64.b64encode(b"admin:" + key))],
        "empty Bearer": [(b"authorization", b"Bearer")],
        "key with non-ASCII bytes": [(b"authorization", b"Bearer " + key + b"\xff\xb2")],
        "PIN with non-ASCII bytes": [(b"x-admin-pin", b"\xb2" + pin)],
        "8 KB key": [(b"authorization", b"Bearer " + b"k" * 8192)],
        "two Authorization headers, wrong first": [
            (b"authorization", b"Bearer nope"),
            (b"authorization", b"Bearer " + key),
        ],
    }[kind]


@functools.cache
@st.composite
def admin_auth(draw: st.DrawFn, t: Target, ok_share: float = 0.6) -> tuple[str, Headers, bool]:
    """(label, headers, authenticated)."""
    ok = draw(st.floats(0, 1)) < ok_share
    kind = draw(st.sampled_from(ADMIN_OK if ok else ADMIN_BAD))
    return kind, admin_headers(t, kind), ok


def server_view(value: bytes) -> str:
    """A header value as the api reads it (latin-1, surrounding blanks stripped)."""
    return value.strip(b" \t").decode("latin-1")


def sign(secret: str, timestamp: bytes, request_id: bytes, body_hash: str) -> bytes:
    message = f"{server_view(timestamp)}.{server_view(request_id)}.{body_hash}".encode()
    return b"sha256=" + hmac.new(secret.encode(), message, sha256).hexdigest().encode()


def now_ts() -> bytes:
    return str(int(time.time())).encode()


def bad_timestamps() -> dict[str, bytes]:
    now = int(time.time())
    return {
        "expired by 1 hour": str(now - 3600).encode(),
        "expired by 10 years": str(now - 315_360_000).encode(),
        "in the future by 1 hour": str(now + 3600).encode(),
        "year 9999": b"253402300799",
        "zero": b"0",
        "negative": b"-" + now_ts(),
        "fractional": now_ts() + b".5",
        "milliseconds": now_ts() + b"000",
        "30 digits": b"1" * 30,
        "5000 digits": b"9" * 5000,
        "above 2^64": str(2**64 + 7).encode(),
        "raw byte 0xB2 (²)": b"\xb2",
        "digits with a raw 0xB2/0xB3/0xB9": now_ts()[:-1] + b"\xb2",
        "raw 0xB9 0xB2 0xB3 (¹²³)": b"\xb9\xb2\xb3",
        "Arabic-Indic digits (UTF-8)": "١٧٦٣٧٠٠٠٠٠".encode(),
        "fullwidth digits (UTF-8)": "１７６３７００００００".encode(),
        "superscript digits (UTF-8)": "¹⁷⁶³".encode(),
        "hex": hex(now).encode(),
        "exponent": b"1.7e9",
        "NaN": b"NaN",
        "plus sign": b"+" + now_ts(),
        "trailing NBSP byte 0xA0": now_ts() + b"\xa0",
        "ISO date": b"2026-11-30T00:00:00Z",
        "letters": b"yesterday",
    }


BAD_SIGNATURES = (
    "zeros",
    "uppercase hex",
    "no sha256= prefix",
    "empty digest",
    "trailing raw byte 0xFF",
    "raw 0xB2 bytes",
    "10 KB",
    "wrong secret",
    "signed over another body",
    "sha512= prefix",
)


def bad_signature(kind: str, good: bytes, timestamp: bytes, request_id: bytes) -> bytes:
    if kind == "zeros":
        return b"sha256=" + b"0" * 64
    if kind == "uppercase hex":
        return b"sha256=" + good[7:].upper()
    if kind == "no sha256= prefix":
        return good[7:]
    if kind == "empty digest":
        return b"sha256="
    if kind == "trailing raw byte 0xFF":
        return good + b"\xff"
    if kind == "raw 0xB2 bytes":
        return b"sha256=" + b"\xb2" * 64
    if kind == "10 KB":
        return b"sha256=" + b"a" * 10240
    if kind == "wrong secret":
        return sign("not-the-secret", timestamp, request_id, EMPTY_BODY_SHA256)
    if kind == "signed over another body":
        return sign("x", timestamp, request_id, sha256(b"{}").hexdigest())
    return b"sha512=" + good[7:]


# --- body checks: never let a generated request be a valid one --------------------------

LANG_RE = re.compile(r"^[a-z]{2,3}$")


def push_refused(body: bytes, header_request_id: bytes | None, t: Target) -> bool:
    """True when the signed push surely fails before anything is written (mirrors the
    route's rules; anything it is unsure of counts as possibly valid)."""
    try:
        data = json.loads(body.decode("utf-8"))
    except RecursionError:
        return False
    except ValueError:  # also UnicodeDecodeError
        return True
    if not isinstance(data, dict):
        return True
    request_id = data.get("requestId")
    if not isinstance(request_id, str) or not 1 <= len(request_id) <= 200:
        return True
    if header_request_id is not None and server_view(header_request_id) != request_id:
        return True
    if request_id == t.seed_request_id:
        return True  # a replay or a conflict: nothing written
    if data.get("source") != t.push_source:
        return True
    lang = data.get("lang")
    if not isinstance(lang, str) or not LANG_RE.match(lang):
        return True
    entries = data.get("entries")
    if not isinstance(entries, list) or not 1 <= len(entries) <= t.max_entries:
        return True
    return not all(isinstance(e, dict) for e in entries)


def models_trigger_refused(body: bytes) -> bool:
    """True when POST /api/internal/sync-models refuses the body (it parses with orjson)."""
    if not body.strip():
        return False
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return True
    if not isinstance(data, dict):
        return True
    source = data.get("source")
    return source is not None and (not isinstance(source, str) or len(source) > 200)


SYNC_CREATE_FIELDS = {"domain", "scope", "mode", "request_id", "params", "payload"}


def sync_create_refused(body: bytes, t: Target) -> bool:
    """True when POST /v1/syncs surely writes nothing: not JSON, not the schema, an
    unknown domain, or the seed's request_id (a conflict)."""
    if not body:
        return True
    try:
        data = json.loads(body)
    except RecursionError:
        return False
    except ValueError:
        return True
    if not isinstance(data, dict) or set(data) - SYNC_CREATE_FIELDS:
        return True
    if data.get("request_id") == t.seed_request_id:
        return True
    rid = data.get("request_id")
    if rid is not None and (not isinstance(rid, str) or not 1 <= len(rid) <= 200):
        return True
    scope = data.get("scope")
    if scope is not None and (not isinstance(scope, str) or not 1 <= len(scope) <= 200):
        return True
    if data.get("domain") not in ("dictionary", "models"):
        return True
    if data.get("mode", "incremental") not in ("incremental", "full"):
        return True
    if "params" in data and not isinstance(data["params"], dict):
        return True
    payload = data.get("payload")
    if data["domain"] == "models":
        return payload is not None  # the models domain takes no payload
    if not isinstance(payload, dict):
        return True
    entries = payload.get("entries")
    lang = payload.get("lang")
    return not (
        isinstance(payload.get("source"), str)
        and payload["source"]
        and isinstance(lang, str)
        and LANG_RE.match(lang)
        and isinstance(entries, list)
        and entries
        and all(isinstance(e, dict) for e in entries)
    )


# --- the generators, one per route ------------------------------------------------------

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
    if draw(st.integers(0, 9)) < 8:
        return [(b"content-type", b"application/json")], ""
    name = draw(st.sampled_from(sorted(CONTENT_TYPES)))
    value = CONTENT_TYPES[name]
    label = f"content-type {name}" if name != "application/json" else ""
    return ([(b"content-type", value)] if value is not None else []), label


@functools.cache
@st.composite
def noise(draw: st.DrawFn) -> Headers:
    """Harmless extra headers: unknown names, printable or obs-text (0x80-0xFF) values."""
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


def q(value: str | bytes) -> bytes:
    raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")
    return quote_from_bytes(raw, safe="").encode()


@functools.cache
@st.composite
def unknown_query(draw: st.DrawFn) -> list[bytes]:
    pairs = []
    for _ in range(draw(st.integers(1, 4))):
        name = draw(
            st.sampled_from(["x_q", "__proto__", "x_ü", "x_%00", "x_a[b]", "x_" + "q" * 300])
        )
        value = draw(st.text(max_size=20))
        pairs.append(q(name) + b"=" + q(value))
    return pairs


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
    "Arabic-Indic digits": q("١٧"),
    "fullwidth digits": q("１７"),
    "bidi override": q("\u202e5"),
    "spaces": b"%20%205%20",
    "plus signs": b"+5+",
    "broken percent escape": b"%G1%",
    "10 KB": b"a" * 10240,
    "JSON": q('{"a":1}'),
    "array-style": b"1&x[]=2",
}


# Query values an integer parameter may fairly read as a number.
VALID_ISH = ("spaces", "plus signs", "array-style")


@functools.cache
@st.composite
def query_value(draw: st.DrawFn) -> tuple[bytes, str]:
    name = draw(st.sampled_from(sorted(QUERY_ODDITIES)))
    return QUERY_ODDITIES[name], name


def build(
    route: str,
    auth: str,
    label: str,
    method: str,
    path: bytes,
    query: Sequence[bytes] = (),
    headers: Headers | None = None,
    body: bytes = b"",
    **kw: Any,
) -> BadRequest:
    target = path + (b"?" + b"&".join(query) if query else b"")
    return BadRequest(
        route=route,
        auth=auth,
        label=label,
        method=method.encode(),
        target=target,
        headers=headers or [],
        body=body,
        **kw,
    )


def ordinary_entry(word: str) -> str:
    return obj([("en", text_of(word)), ("ru", text_of("слово")), ("level", '"A1"')])


ENTRY_FIELDS = ("frequencyRank", "level", "ru", "en", "ipaUk", "an unknown field")
PUSH_FIELDS = ("requestId", "source", "lang", "payloadVersion", "actorUsername", "entries")
PUSH_INVALIDATORS = (
    "source not accepted",
    "lang not a language code",
    "request id header differs",
    "entries over the limit",
    "an entry that is no object",
    "empty entries",
    "the seed's requestId (conflict)",
    "entries missing",
    "actorUsername too long",
)


@st.composite
def push_request(draw: st.DrawFn, t: Target) -> BadRequest:
    """POST /api/internal/dictionary-upserts: mostly correctly signed, never a valid batch."""
    rid = f"fuzz-{draw(st.uuids())}"
    header: list[tuple[str, str]] = [
        ("requestId", text_of(rid)),
        ("source", text_of(t.push_source)),
        ("payloadVersion", '"1"'),
        ("lang", '"en"'),
        ("actorUsername", '"fuzz"'),
    ]
    entries = [ordinary_entry(f"w{i}") for i in range(draw(st.integers(1, t.max_entries)))]
    header_rid = rid.encode()
    focus = draw(
        st.sampled_from(
            ["entry value"] * 4
            + ["field value"] * 2
            + ["corrupted"] * 2
            + ["signature"] * 4
            + ["framing", "top level", "invalidator"]
        )
    )
    label = ""
    where = ""
    if focus == "entry value":
        name = draw(st.sampled_from(ENTRY_FIELDS))
        value, what = draw(odd_value())
        key = "x-unknown" if name == "an unknown field" else name
        index = draw(st.integers(0, len(entries) - 1))
        entries[index] = obj([("en", '"word"'), (key, value)] if key != "en" else [(key, value)])
        label = f"entry value: {what}"
        where = f"entry.{key}"
    elif focus == "field value":
        name = draw(st.sampled_from([*PUSH_FIELDS, "an unknown field"]))
        value, what = draw(odd_value())
        if name == "entries":
            entries = []
            header.append(("entries", value))
        elif name == "an unknown field":
            header.append(("x-unknown", value))
        else:
            header = [(k, value if k == name else v) for k, v in header]
        label = f"batch field value: {what}"
        where = name
    invalidator = draw(st.sampled_from(PUSH_INVALIDATORS))
    if invalidator == "source not accepted":
        header = [(k, '"not-the-sender"' if k == "source" else v) for k, v in header]
    elif invalidator == "lang not a language code":
        header = [
            (
                k,
                draw(st.sampled_from(['"EN"', '"e"', '"engl"', '"en-US"', '"ру"']))
                if k == "lang"
                else v,
            )
            for k, v in header
        ]
    elif invalidator == "request id header differs":
        header_rid = f"other-{uuid.uuid4()}".encode()
    elif invalidator == "entries over the limit":
        entries += [ordinary_entry(f"x{i}") for i in range(t.max_entries + 1 - len(entries))]
    elif invalidator == "an entry that is no object":
        entries.append(draw(st.sampled_from(['"word"', "1", "null", "[]"])))
    elif invalidator == "empty entries":
        entries = []
    elif invalidator == "the seed's requestId (conflict)":
        header = [(k, text_of(t.seed_request_id) if k == "requestId" else v) for k, v in header]
        header_rid = t.seed_request_id.encode()
    elif invalidator == "actorUsername too long":
        header = [(k, text_of("a" * 201) if k == "actorUsername" else v) for k, v in header]
    fields = list(header)
    if invalidator != "entries missing" and not any(k == "entries" for k, _ in fields):
        fields.append(("entries", "[" + ",".join(entries) + "]"))
    body = obj(fields).encode("utf-8", "surrogatepass")
    if focus == "top level":
        body, label = draw(
            st.sampled_from(
                [
                    (b"[" + body + b"]", "body: an array"),
                    (b'"' + rid.encode() + b'"', "body: a string"),
                    (b"null", "body: null"),
                    (b"1e1000000", "body: number 1e1000000"),
                    (b"[" * 300 + b"]" * 300, "body: 300 nested arrays"),
                ]
            )
        )
    elif focus == "corrupted":
        body, label = draw(corrupted(body))
    framing, declared, chunks, framing_label = draw(
        framing_for(body, t.push_max_body, force=focus == "framing")
    )
    if focus == "framing" or (framing_label and not label):
        label = framing_label
    elif framing_label:
        label = f"{label}; {framing_label}"
    request = BadRequest(
        route="POST /api/internal/dictionary-upserts",
        auth="signed",
        label=label,
        method=b"POST",
        target=b"/api/internal/dictionary-upserts",
        body=body,
        framing=framing,
        declared=declared,
        chunks=chunks,
        must_refuse=True,
    )
    if framing == "declared":
        request.body = b"{" * min(len(body), 512)
    if framing == "chunked" and chunks == (65536,):
        request.body = oversize(body, t.push_max_body)
    received = request.received()
    if framing not in ("declared", "halfclose") and not push_refused(received, header_rid, t):
        header_rid = f"other-{uuid.uuid4()}".encode()  # the signed id is not the batch's
        invalidator = "request id header differs"
    secret = draw(st.sampled_from(t.push_secrets))
    timestamp = now_ts()
    body_hash = sha256(received).hexdigest()
    auth = "signed"
    mode = (
        draw(
            st.sampled_from(
                ["timestamp"] * 4 + ["signature"] * 2 + ["missing", "unsigned", "odd id"]
            )
        )
        if focus == "signature"
        else "good"
    )
    if mode == "timestamp":
        name = draw(st.sampled_from(sorted(bad_timestamps())))
        timestamp = bad_timestamps()[name]
        auth = "signed, bad timestamp"
        label = f"x-sync-timestamp: {name}"
    if mode == "odd id":
        name, header_rid = draw(
            st.sampled_from(
                [
                    ("raw non-ASCII bytes", b"fuzz-\xff\xb2-" + rid.encode()),
                    ("UTF-8 text", ("ид-" + rid).encode()),
                    ("300 characters", b"r" * 300),
                    ("spaces inside", b"a b c"),
                ]
            )
        )
        label = f"x-sync-request-id: {name}"
    signature = sign(secret, timestamp, header_rid, body_hash)
    if mode == "signature":
        name = draw(st.sampled_from(BAD_SIGNATURES))
        signature = bad_signature(name, signature, timestamp, header_rid)
        auth = "bad signature"
        label = f"x-sync-signature: {name}"
    headers: Headers = [
        (b"x-sync-timestamp", timestamp),
        (b"x-sync-request-id", header_rid),
        (b"x-sync-signature", signature),
    ]
    if mode == "missing":
        drop = draw(st.sets(st.sampled_from([h for h, _ in headers]), min_size=1))
        headers = [(h, v) for h, v in headers if h not in drop]
        auth = "signature headers missing"
        label = "missing " + ", ".join(sorted(h.decode() for h in drop))
    if mode == "unsigned":
        headers = []
        auth = "unsigned"
        label = "no signature"
    ctype, ctype_label = draw(content_type())
    request.headers = headers + ctype + draw(noise())
    request.auth = auth
    request.label = label or (ctype_label or f"invalid batch: {invalidator}")
    request.detail = (
        f"[{where or 'batch'}; {invalidator}] ts={short(timestamp, 24)} "
        f"rid={short(header_rid, 30)} body={short(received, 90)}"
    )
    return request


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
def framing_for(
    draw: st.DrawFn, body: bytes, limit: int, force: bool = False
) -> tuple[str, int, tuple[int, ...], str]:
    """How the body goes on the wire: (framing, declared length, chunk sizes, label)."""
    kind = draw(st.sampled_from(ODD_FRAMINGS if force else ["length"] * 24 + ODD_FRAMINGS))
    if kind == "length":
        return "length", 0, (), ""
    if kind == "chunked":
        sizes = tuple(draw(st.lists(st.integers(1, 5000), min_size=1, max_size=4)))
        return "chunked", 0, sizes, "chunked body" if force else ""
    if kind == "oversize chunked":
        return "chunked", 0, (65536,), "oversize body, chunked"
    if kind == "oversize declared":
        declared = draw(st.sampled_from([limit + 1, limit * 4, 2**31, 2**63 - 1]))
        return "declared", declared, (), "oversize body, declared Content-Length"
    if kind == "short" and len(body) > 1:
        return (
            "short",
            draw(st.integers(1, len(body) - 1)),
            (),
            "Content-Length shorter than the body",
        )
    if kind == "halfclose":
        return (
            "halfclose",
            len(body) + draw(st.integers(1, 5000)),
            (),
            "Content-Length longer than the body, then EOF",
        )
    return "long", 0, (), "Content-Length longer than the body"


def oversize(body: bytes, limit: int) -> bytes:
    """``body`` padded with blanks past ``limit`` bytes."""
    return body + b" " * (limit + 1 - len(body) + 100) if len(body) <= limit else body


@st.composite
def status_request(draw: st.DrawFn, t: Target) -> BadRequest:
    """GET /api/internal/dictionary-upserts/status: query, admin or the sender's signature."""
    choice = draw(st.sampled_from(["seed", "unknown", "odd", "missing", "long", "twice"]))
    rid_text = {
        "seed": t.seed_request_id,
        "unknown": f"nope-{draw(st.uuids())}",
        "long": "r" * 201,
    }.get(choice, "x")
    query = [b"requestId=" + q(rid_text)]
    label = f"requestId: {choice}"
    if choice == "odd":
        raw, name = draw(query_value())
        query = [b"requestId=" + raw]
        label = f"requestId: {name}"
        rid_text = server_view(raw)
    elif choice == "missing":
        query = []
    elif choice == "twice":
        query = [b"requestId=a", b"requestId=" + q(t.seed_request_id)]
    if draw(st.booleans()):
        query = [*query, *draw(unknown_query())]
    how = draw(
        st.sampled_from(
            [
                "admin",
                "admin",
                "signed",
                "signed",
                "bad timestamp",
                "bad timestamp",
                "bad timestamp",
                "bad signature",
                "signed other id",
            ]
        )
    )
    headers: Headers
    refuse = how in ("bad timestamp", "bad signature", "signed other id")
    if how == "admin":
        auth, headers, authed = draw(admin_auth(t))
        refuse = not authed
    else:
        secret = draw(st.sampled_from(t.push_secrets))
        timestamp = now_ts()
        rid = rid_text.encode("utf-8", "surrogatepass")
        auth = "signed"
        if how == "bad timestamp":
            name = draw(st.sampled_from(sorted(bad_timestamps())))
            timestamp = bad_timestamps()[name]
            label = f"x-sync-timestamp: {name}"
            auth = "signed, bad timestamp"
        if how == "signed other id":
            rid = b"other-id"
            auth = "signed for another id"
        signature = sign(secret, timestamp, rid, EMPTY_BODY_SHA256)
        if how == "bad signature":
            name = draw(st.sampled_from(BAD_SIGNATURES))
            signature = bad_signature(name, signature, timestamp, rid)
            label = f"x-sync-signature: {name}"
            auth = "bad signature"
        headers = [
            (b"x-sync-timestamp", timestamp),
            (b"x-sync-request-id", rid),
            (b"x-sync-signature", signature),
        ]
    return build(
        "GET /api/internal/dictionary-upserts/status",
        auth,
        label,
        "GET",
        b"/api/internal/dictionary-upserts/status",
        query,
        headers + draw(noise()),
        must_refuse=refuse,
        odd_if_ok=choice not in ("seed", "twice"),
        detail=f"?{short(b'&'.join(query), 70)}",
    )


JOB_IDS: dict[str, str] = {
    "not a UUID": "not-a-uuid",
    "zero": "0",
    "negative": "-1",
    "1e400": "1e400",
    "nil UUID": "00000000-0000-0000-0000-000000000000",
    "UUID in braces": "{%s}",
    "urn:uuid": "urn:uuid:%s",
    "UUID without dashes": "%s-nodash",
    "UUID plus a character": "%sa",
    "UUID uppercase": "%s-upper",
    "percent-encoded NUL": "%00",
    "percent-encoded 0xFF": "%FF",
    "superscript digits": "%C2%B2%C2%B3",
    "dot-dot": "..",
    "encoded dot-dot": "%2e%2e",
    "encoded slash": "abc%2Fdef",
    "null": "null",
    "10 KB": "a" * 10240,
    "SQL text": "1%27%20OR%20%271%27%3D%271",
    "Arabic-Indic digits": q("١٢٣").decode(),
    "random UUID (no such job)": "%s-random",
    "the seed job": "%s-seed",
}


@functools.cache
@st.composite
def job_id(draw: st.DrawFn, t: Target, seed_share: float = 0.2) -> tuple[bytes, str]:
    """(path segment, label)."""
    if draw(st.floats(0, 1)) < seed_share:
        return t.seed_job_id.encode(), "job id: the seed job"
    name = draw(st.sampled_from(sorted(JOB_IDS)))
    pattern = JOB_IDS[name]
    some = str(draw(st.uuids()))
    if pattern == "%s-nodash":
        value = some.replace("-", "")
    elif pattern == "%s-upper":
        value = some.upper()
    elif pattern == "%s-random":
        value = some
    elif pattern == "%s-seed":
        value = t.seed_job_id
    elif "%s" in pattern:
        value = q(pattern % some).decode()
    else:
        value = pattern
    return value.encode(), f"job id: {name}"


LAST_EVENT_IDS: dict[str, bytes] = {
    "empty": b"",
    "blank": b"   ",
    "negative": b"-1",
    "zero": b"0",
    "fractional": b"1.5",
    "exponent": b"1e3",
    "hex": b"0x10",
    "raw byte 0xB2 (²)": b"\xb2",
    "digits with a raw 0xB3": b"1\xb3",
    "raw 0xB9 0xB2 (¹²)": b"\xb9\xb2",
    "Arabic-Indic digits (UTF-8)": "١٧".encode(),
    "fullwidth digits (UTF-8)": "１２".encode(),
    "30 digits": b"9" * 30,
    "above 2^63": str(2**63 + 1).encode(),
    "2^31": str(2**31).encode(),
    "5000 digits": b"9" * 5000,
    "digits and letters": b"12abc",
    "raw bytes 0xFF 0xFE": b"\xff\xfe",
    "8 KB": b"7" * 8192,
    "padded with spaces": b" 3 ",
    "JSON": b'{"id":1}',
}


@st.composite
def sse_request(draw: st.DrawFn, t: Target) -> BadRequest:
    segment, id_label = draw(job_id(t, seed_share=0.6))
    auth, headers, authed = draw(admin_auth(t, ok_share=0.8))
    label = id_label
    last_event_id = b""
    if draw(st.integers(0, 9)) < 8:
        name = draw(st.sampled_from(sorted(LAST_EVENT_IDS)))
        last_event_id = LAST_EVENT_IDS[name]
        headers = [*headers, (b"last-event-id", last_event_id)]
        label = f"{id_label}, Last-Event-ID: {name}"
    if draw(st.booleans()):
        headers.append(
            (
                b"accept",
                draw(st.sampled_from([b"text/event-stream", b"application/json", b"*/*;q=\xff"])),
            )
        )
    return build(
        "GET /v1/syncs/{job_id}/events",
        auth,
        label,
        "GET",
        b"/v1/syncs/" + segment + b"/events",
        (),
        headers + draw(noise()),
        must_refuse=not authed,
        odd_if_ok="seed job" not in id_label,
        detail=f"/v1/syncs/{short(segment, 40)}/events {short(last_event_id, 40)}",
    )


@st.composite
def job_request(draw: st.DrawFn, t: Target) -> BadRequest:
    segment, label = draw(job_id(t))
    auth, headers, authed = draw(admin_auth(t))
    query = draw(unknown_query()) if draw(st.booleans()) else []
    return build(
        "GET /v1/syncs/{job_id}",
        auth,
        label,
        "GET",
        b"/v1/syncs/" + segment,
        query,
        headers + draw(noise()),
        must_refuse=not authed,
        odd_if_ok="seed job" not in label,
        detail=f"/v1/syncs/{short(segment, 60)}",
    )


@st.composite
def list_request(draw: st.DrawFn, t: Target) -> BadRequest:
    auth, headers, authed = draw(admin_auth(t, ok_share=0.8))
    query: list[bytes] = []
    labels = []
    odd = False
    for name in draw(
        st.sets(st.sampled_from(["domain", "status", "before", "limit", "unknown"]), min_size=1)
    ):
        if name == "unknown":
            query += draw(unknown_query())
            labels.append("unknown parameters")
            continue
        if name == "before" and draw(st.booleans()):
            value_name, raw = draw(
                st.sampled_from(
                    [
                        ("month 13", b"2026-13-01T00:00:00Z"),
                        ("offset +99:00", b"2026-01-01T00:00:00%2B99:00"),
                        ("year 0", b"0000-01-01"),
                        ("year 10000", b"10000-01-01T00:00:00"),
                        ("unix 1e20", b"100000000000000000000"),
                        ("unix -1e20", b"-100000000000000000000"),
                        ("leap second", b"2026-06-30T23:59:60Z"),
                    ]
                )
            )
        elif name == "domain" and draw(st.booleans()):
            value_name, raw = "65 characters", b"d" * 65
        elif name == "status" and draw(st.booleans()):
            value_name, raw = draw(
                st.sampled_from(
                    [
                        ("unknown status", b"done"),
                        ("regex text", b"queued%7Crunning"),
                        ("newline", b"queued%0A"),
                    ]
                )
            )
        else:
            raw, value_name = draw(query_value())
        query.append(name.encode() + b"=" + raw)
        labels.append(f"{name}: {value_name}")
        odd = odd or (name in ("limit", "status") and value_name not in VALID_ISH)
    return build(
        "GET /v1/syncs",
        auth,
        ", ".join(sorted(labels)),
        "GET",
        b"/v1/syncs",
        query,
        headers + draw(noise()),
        must_refuse=not authed,
        odd_if_ok=odd,
        detail=f"?{short(b'&'.join(query), 80)}",
    )


@st.composite
def param_request(draw: st.DrawFn, t: Target, route: str, path: bytes, name: str) -> BadRequest:
    """An admin GET with one integer query parameter (stats, models history)."""
    auth, headers, authed = draw(admin_auth(t, ok_share=0.8))
    raw, value_name = draw(query_value())
    query = [name.encode() + b"=" + raw]
    if draw(st.booleans()):
        query += draw(unknown_query())
    return build(
        route,
        auth,
        f"{name}: {value_name}",
        "GET",
        path,
        query,
        headers + draw(noise()),
        must_refuse=not authed,
        odd_if_ok=value_name not in VALID_ISH,
        detail=f"?{short(b'&'.join(query), 80)}",
    )


@st.composite
def create_request(draw: st.DrawFn, t: Target) -> BadRequest:
    """POST /v1/syncs: odd values where they reach the database, or a body the schema refuses."""
    auth, headers, authed = draw(admin_auth(t, ok_share=0.85))
    batch = obj(
        [
            ("source", text_of(t.push_source)),
            ("lang", '"en"'),
            ("entries", "[" + ordinary_entry(f"v1-{draw(st.integers(0, 10**6))}") + "]"),
        ]
    )
    focus = draw(
        st.sampled_from(
            ["new params", "new params", "reused params", "payload", "field", "corrupted", "schema"]
        )
    )
    if focus == "new params":
        # A new request whose params the api cannot store: it must be refused (4xx).
        value, what = draw(unstorable_value())
        # (The dictionary domain: a models job, if one got through, would hold back the
        # next models requests with 409s and hide what they would get.)
        fields = [("domain", '"dictionary"'), ("payload", batch), ("params", obj([("x", value)]))]
        label = f"params.x = {what} (new request)"
    elif focus == "reused params":
        value, what = draw(odd_value())
        fields = [
            ("request_id", text_of(t.seed_request_id)),
            ("domain", '"dictionary"'),
            ("payload", batch),
            ("params", obj([("x", value)])),
        ]
        label = f"params.x = {what} (the seed's request_id)"
    elif focus == "payload":
        value, what = draw(odd_value())
        where = draw(st.sampled_from(["entry", "field", "payload"]))
        if where == "entry":
            payload = obj(
                [
                    ("source", text_of(t.push_source)),
                    ("lang", '"en"'),
                    ("entries", "[" + obj([("en", '"w"'), ("frequencyRank", value)]) + "]"),
                ]
            )
        elif where == "field":
            payload = obj(
                [
                    ("source", text_of(t.push_source)),
                    ("lang", value),
                    ("entries", "[" + ordinary_entry("w") + "]"),
                ]
            )
        else:
            payload = value
        fields = [
            ("request_id", text_of(t.seed_request_id)),
            ("domain", '"dictionary"'),
            ("payload", payload),
        ]
        label = f"payload {where} = {what} (the seed's request_id)"
    elif focus == "field":
        name = draw(st.sampled_from(sorted(SYNC_CREATE_FIELDS)))
        value, what = draw(
            st.sampled_from(sorted(KINDS.items())).map(lambda kv: (kv[1], f"a JSON {kv[0]}"))
            | odd_value()
        )
        base = {"domain": '"models"', "request_id": text_of(t.seed_request_id)}
        base[name] = value
        fields = list(base.items())
        label = f"{name} = {what}"
    else:
        fields = draw(
            st.sampled_from(
                [
                    [("domain", '"nope"')],
                    [("domain", '"models"'), ("mode", '"sometimes"')],
                    [("domain", '"models"'), ("unknown", "1")],
                    [("domain", '""')],
                    [("domain", text_of("d" * 65))],
                    [("domain", '"models"'), ("payload", "{}")],
                    [("domain", '"dictionary"')],
                    [("domain", '"dictionary"'), ("payload", '{"lang":"en"}')],
                    [("domain", '"models"'), ("scope", '""')],
                    [("domain", '"models"'), ("request_id", text_of("r" * 201))],
                    [("domain", '"DICTIONARY"')],
                    [("domain", '"models"'), ("domain", '"nope"')],
                    [],
                ]
            )
        )
        label = "schema: " + (", ".join(f"{k}={short(v, 20)}" for k, v in fields) or "{}")
    body = obj(fields).encode("utf-8", "surrogatepass")
    if focus == "corrupted":
        body, label = draw(
            corrupted(
                obj([("request_id", text_of(t.seed_request_id)), ("domain", '"models"')]).encode()
            )
        )
    ctype, ctype_label = draw(content_type())
    framing, declared, chunks, framing_label = draw(framing_for(body, t.max_body))
    label = ", ".join(x for x in (label, ctype_label, framing_label) if x)
    request = build(
        "POST /v1/syncs",
        auth,
        label,
        "POST",
        b"/v1/syncs",
        (),
        headers + ctype + draw(noise()),
        body,
        framing=framing,
        declared=declared,
        chunks=chunks,
        must_refuse=True,
    )
    if framing == "chunked" and chunks == (65536,):
        request.body = oversize(body, t.max_body)
    if framing == "declared":
        request.body = body[:512]
    if (
        authed
        and framing not in ("declared", "halfclose")
        and not sync_create_refused(request.received(), t)
    ) and focus != "new params":
        request.headers = [(b"authorization", b"Bearer wrong"), *ctype]
        request.auth = "wrong key (body might be valid)"
    request.detail = short(request.received(), 140)
    return request


@st.composite
def models_trigger_request(draw: st.DrawFn, t: Target) -> BadRequest:
    """POST /api/internal/sync-models: token or body HMAC, never a body it accepts."""
    value, what = draw(odd_value())
    shape = draw(st.sampled_from(["source", "top", "unknown field"]))
    if shape == "source":
        body = obj([("source", value)]).encode("utf-8", "surrogatepass")
        label = f"source = {what}"
    elif shape == "top":
        body = value.encode("utf-8", "surrogatepass")
        label = f"body = {what}"
    else:
        body = obj([("source", text_of("s" * 201)), ("x", value)]).encode("utf-8", "surrogatepass")
        label = f"source too long, x = {what}"
    if draw(st.integers(0, 3)) == 0:
        body, label = draw(corrupted(body))
    framing, declared, chunks, framing_label = draw(framing_for(body, t.max_body))
    label = f"{label}; {framing_label}" if framing_label else label
    how = draw(
        st.sampled_from(
            ["token", "token", "hmac", "hmac", "wrong token", "wrong hmac", "none", "admin key"]
        )
    )
    request = build(
        "POST /api/internal/sync-models",
        how,
        label,
        "POST",
        b"/api/internal/sync-models",
        (),
        [],
        body,
        framing=framing,
        declared=declared,
        chunks=chunks,
        must_refuse=True,
    )
    if framing == "chunked" and chunks == (65536,):
        request.body = oversize(body, t.max_body)
    if framing == "declared":
        request.body = body[:512]
    received = request.received()
    if (
        how in ("token", "hmac")
        and framing not in ("declared", "halfclose")
        and not models_trigger_refused(received)
    ):
        how = "wrong token"
        request.auth = "wrong token (body might be accepted)"
    headers: Headers = {
        "token": [(b"authorization", b"Bearer " + t.models_token.encode())],
        "hmac": [
            (
                b"x-signature",
                hmac.new(t.models_secret.encode(), received, sha256).hexdigest().encode(),
            )
        ],
        "wrong token": [(b"authorization", b"Bearer " + t.models_token.encode() + b"\xb2")],
        "wrong hmac": [(b"x-signature", b"sha256=" + b"0" * 64)],
        "none": [],
        "admin key": [(b"authorization", b"Bearer " + t.admin_key.encode())],
    }[how]
    ctype, _ = draw(content_type())
    request.headers = headers + ctype + draw(noise())
    request.detail = short(received, 140)
    return request


@st.composite
def models_admin_trigger(draw: st.DrawFn, t: Target) -> BadRequest:
    """POST /api/admin/sync-models: authenticated only with an oversize declared body."""
    framing = draw(st.sampled_from(["length", "length", "chunked", "declared", "long", "short"]))
    body = draw(st.sampled_from([b"", b"{}", b'{"source":"x"}', b"\xff\xfe", b"[" * 300]))
    if framing == "short" and len(body) < 2:
        framing = "length"
    if framing == "declared":
        auth, headers, _ = draw(admin_auth(t, ok_share=0.7))
        return build(
            "POST /api/admin/sync-models",
            auth,
            "oversize body, declared Content-Length",
            "POST",
            b"/api/admin/sync-models",
            (),
            headers,
            body[:100],
            framing="declared",
            declared=t.max_body + draw(st.integers(1, 10**6)),
            must_refuse=True,
        )
    auth, headers, _ = draw(admin_auth(t, ok_share=0.0))
    return build(
        "POST /api/admin/sync-models",
        auth,
        f"body {short(body, 12)}, {framing}",
        "POST",
        b"/api/admin/sync-models",
        (),
        headers + draw(noise()),
        body,
        framing=framing,
        declared=max(1, len(body) - 1),
        chunks=(7,),
        must_refuse=True,
    )


PUBLIC_GETS = (
    b"/healthz",
    b"/readyz",
    b"/openapi.json",
    b"/docs",
    b"/redoc",
    b"/docs/oauth2-redirect",
)


@st.composite
def public_request(draw: st.DrawFn, t: Target) -> BadRequest:
    path = draw(st.sampled_from(PUBLIC_GETS))
    what = draw(st.sampled_from(["query", "headers", "body", "chunked body", "HTTP/1.0"]))
    query = draw(unknown_query()) if what == "query" else []
    headers = draw(noise())
    body = b""
    kw: dict[str, Any] = {}
    if what == "headers":
        headers += [
            (b"x-sync-timestamp", b"\xb2"),
            (b"last-event-id", b"\xb2"),
            (b"content-length", b"0"),
            (b"accept-encoding", b"\xff"),
        ]
    elif what in ("body", "chunked body"):
        body = draw(st.binary(max_size=200))
        kw["framing"] = "chunked" if what == "chunked body" else "length"
        kw["chunks"] = (3,)
    elif what == "HTTP/1.0":
        kw["version"] = b"HTTP/1.0"
        kw["keeps_alive"] = False
    route = "GET " + path.decode()
    return build(route, "none", f"GET with {what}", "GET", path, query, headers, body, **kw)


OTHER_METHODS = (
    "PUT",
    "PATCH",
    "DELETE",
    "OPTIONS",
    "HEAD",
    "TRACE",
    "PROPFIND",
    "MKCOL",
    "LOCK",
    "PURGE",
    "SEARCH",
    "CONNECT",
)


@st.composite
def method_request(draw: st.DrawFn, t: Target, routes: dict[str, set[str]]) -> BadRequest:
    """A method the path does not allow (405), with or without credentials and a body."""
    path = draw(st.sampled_from(sorted(routes)))
    allowed = routes[path]
    method = draw(st.sampled_from([m for m in (*OTHER_METHODS, "GET", "POST") if m not in allowed]))
    segment = t.seed_job_id if draw(st.booleans()) else str(draw(st.uuids()))
    concrete = path.replace("{job_id}", segment).encode()
    auth, headers, _ = draw(admin_auth(t))
    body = draw(st.sampled_from([b"", b"{}", b'{"domain":"models"}', b"\xff"]))
    if method == "CONNECT":
        body = b""
    return build(
        f"{method} {path}",
        auth,
        f"method {method} not allowed",
        method,
        concrete,
        (),
        headers + draw(noise()),
        body,
        must_refuse=True,
    )


UNKNOWN_PATHS = (
    b"/",
    b"/v2/syncs",
    b"/v1",
    b"/v1/",
    b"/v1/syncs/",
    b"/V1/SYNCS",
    b"//v1/syncs",
    b"/v1//syncs",
    b"/v1/syncs/%s/events/extra",
    b"/v1/syncs/%s/",
    b"/v1/syncs/../healthz",
    b"/v1/syncs/%2e%2e/%2e%2e/healthz",
    b"/api/internal/dictionary-upserts/",
    b"/api/internal/dictionary-upserts/status/x",
    b"/api/admin",
    b"/.env",
    b"/%00",
    b"/%FF%FE",
    b"/%C2%B2",
    b"/healthz;x=1",
    b"/healthz%20",
    b"/healthz/",
    b"/readyz/..",
    b"/" + b"a" * 8000,
    b"http://127.0.0.1/v1/syncs",
    b"*",
    b"/docs/../openapi.json",
    b"/static/x.js",
)


@st.composite
def unknown_path_request(draw: st.DrawFn, t: Target) -> BadRequest:
    pattern = draw(st.sampled_from(UNKNOWN_PATHS))
    path = pattern.replace(b"%s", t.seed_job_id.encode())
    method = draw(st.sampled_from(["GET", "POST", "DELETE"]))
    auth, headers, _ = draw(admin_auth(t))
    label = f"path {short(pattern, 40)}"
    body = b'{"domain":"nope"}' if method == "POST" else b""
    if method == "POST":
        headers = [*headers, (b"content-type", b"application/json")]
    return build(
        f"{method} (other paths)",
        auth,
        label,
        method,
        path,
        (),
        headers + draw(noise()),
        body,
        must_refuse=method != "GET",
    )


CONTROL = b"".join(bytes([c]) for c in (*range(1, 9), *range(11, 13), *range(14, 32), 127))


@st.composite
def parser_request(draw: st.DrawFn, t: Target) -> BadRequest:
    """Bytes HTTP/1.1 forbids: control characters in header values or the target, raw
    non-ASCII in the target, broken framing. Only uvicorn's parser sees these."""
    kind = draw(
        st.sampled_from(
            [
                "control character in a header value",
                "control character in the query",
                "raw non-ASCII in the query",
                "raw non-ASCII in the path",
                "raw space in the path",
                "unknown method token",
                "space in a header name",
                "obsolete line folding",
                "Content-Length and Transfer-Encoding",
                "two Content-Lengths",
                "Content-Length not a number",
                "Content-Length above 2^64",
                "bad chunk size",
                "HTTP/1.2",
                "NUL in a header value",
            ]
        )
    )
    template = draw(
        st.sampled_from(
            [
                "/v1/syncs",
                "/healthz",
                "/api/internal/dictionary-upserts/status",
                "/v1/syncs/{job_id}/events",
            ]
        )
    )
    path = template.replace("{job_id}", t.seed_job_id).encode()
    ctl = bytes([draw(st.sampled_from(list(CONTROL)))])
    high = bytes([draw(st.integers(0x80, 0xFF))])
    key = b"Bearer " + t.admin_key.encode()
    head = [b"GET " + path + b" HTTP/1.1", b"host: 127.0.0.1", b"authorization: " + key]
    body = b""
    if kind == "control character in a header value":
        name = draw(
            st.sampled_from([b"x-sync-timestamp", b"last-event-id", b"x-admin-pin", b"x-fuzz"])
        )
        head.append(name + b": 12" + ctl + b"34")
    elif kind == "control character in the query":
        head[0] = b"GET " + path + b"?requestId=a" + ctl + b" HTTP/1.1"
    elif kind == "raw non-ASCII in the query":
        head[0] = b"GET " + path + b"?requestId=" + high + b"\xb2 HTTP/1.1"
    elif kind == "raw non-ASCII in the path":
        head[0] = b"GET " + path + high + b" HTTP/1.1"
    elif kind == "raw space in the path":
        head[0] = b"GET " + path + b" x HTTP/1.1"
    elif kind == "unknown method token":
        head[0] = draw(st.sampled_from([b"FOO", b"G\xc9T", b"get"])) + b" " + path + b" HTTP/1.1"
    elif kind == "space in a header name":
        head.append(b"x fuzz: 1")
    elif kind == "obsolete line folding":
        head.append(b"x-fuzz: a")
        head.append(b" folded")
    elif kind == "Content-Length and Transfer-Encoding":
        head[0] = b"POST /v1/syncs HTTP/1.1"
        head += [b"content-length: 5", b"transfer-encoding: chunked"]
        body = b"2\r\n{}\r\n0\r\n\r\n"
    elif kind == "two Content-Lengths":
        head[0] = b"POST /v1/syncs HTTP/1.1"
        head += [b"content-length: 2", b"content-length: 3"]
        body = b"{}"
    elif kind == "Content-Length not a number":
        head[0] = b"POST /v1/syncs HTTP/1.1"
        head.append(
            b"content-length: " + draw(st.sampled_from([b"abc", b"-1", b"1.5", b"\xb2", b"0x10"]))
        )
        body = b"{}"
    elif kind == "Content-Length above 2^64":
        head[0] = b"POST /v1/syncs HTTP/1.1"
        head.append(b"content-length: " + str(2**64 + 1).encode())
    elif kind == "bad chunk size":
        head[0] = b"POST /v1/syncs HTTP/1.1"
        head.append(b"transfer-encoding: chunked")
        body = draw(
            st.sampled_from([b"zz\r\nab\r\n0\r\n\r\n", b"-1\r\n\r\n", b"ffffffffffffffffff\r\n"])
        )
    elif kind == "HTTP/1.2":
        head[0] = b"GET " + path + b" HTTP/1.2"
    else:
        head.append(b"x-fuzz: a\x00b")
    raw = b"\r\n".join(head) + b"\r\n\r\n" + body
    return BadRequest(
        route=f"(parser) {template}",
        auth="admin key",
        label=kind,
        method=b"GET",
        target=path,
        body=raw,
        framing="raw",
        parser_may_refuse=True,
        keeps_alive=False,
        must_refuse=kind.startswith("Content-Length") or "chunk" in kind or "Transfer" in kind,
        detail=short(raw, 140),
    )


# --- Schemathesis cases, made unable to write --------------------------------------------


def from_case(case: Case[Any], t: Target, auth_kind: str) -> BadRequest:
    """A Schemathesis case (negative data from the api's OpenAPI) on the wire."""
    method = case.method.upper()
    template = case.operation.path
    path = case.formatted_path.encode("utf-8", "surrogatepass")
    query = []
    for name, value in (case.query or {}).items():
        values = value if isinstance(value, list) else [value]
        for item in values:
            text = item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)
            query.append(q(str(name)) + b"=" + q(text))
    headers: Headers = []
    for name, value in (case.headers or {}).items():
        text = value if isinstance(value, str) else json.dumps(value)
        raw = text.encode("utf-8", "surrogatepass")
        raw = bytes(b if b >= 0x20 and b != 0x7F else 0x3F for b in raw)  # no control bytes
        if re.fullmatch(r"[A-Za-z0-9-]+", str(name)):
            headers.append((str(name).encode(), raw))
    body = b""
    if not isinstance(case.body, NotSet):
        body = (
            case.body
            if isinstance(case.body, bytes)
            else json.dumps(case.body, ensure_ascii=False, default=repr).encode(
                "utf-8", "surrogatepass"
            )
        )
        headers.append((b"content-type", (case.media_type or "application/json").encode()))
    request = build(
        f"{method} {template}",
        auth_kind,
        "schemathesis negative case",
        method,
        path,
        query,
        headers,
        body,
        must_refuse=method == "POST" or auth_kind not in ADMIN_OK,
        detail=f"{short(path, 50)}?{short(b'&'.join(query), 40)} {short(body, 60)}",
    )
    if template == "/api/internal/dictionary-upserts":
        rid = f"st-{uuid.uuid4()}".encode()
        if not push_refused(body, rid, t):
            rid = b"other-" + rid
        timestamp = now_ts()
        signature = sign(t.push_secrets[-1], timestamp, rid, sha256(body).hexdigest())
        request.headers += [
            (b"x-sync-timestamp", timestamp),
            (b"x-sync-request-id", rid),
            (b"x-sync-signature", signature),
        ]
        request.auth = "signed"
    elif auth_kind in ADMIN_OK and method == "POST" and not sync_create_refused(body, t):
        request.auth = "none (body might be valid)"
        request.must_refuse = True
    else:
        request.headers += (
            admin_headers(t, auth_kind) if auth_kind in (*ADMIN_OK, *ADMIN_BAD) else []
        )
    if template == "/api/admin/sync-models" and method == "POST":
        request.headers = [
            h for h in request.headers if h[0] not in (b"authorization", b"x-admin-pin")
        ]
    return request


@st.composite
def schemathesis_request(
    draw: st.DrawFn, t: Target, cases: st.SearchStrategy[Case[Any]]
) -> BadRequest:
    case = draw(cases)
    auth_kind = draw(st.sampled_from((*ADMIN_OK, *ADMIN_OK, "none", "wrong key")))
    return from_case(case, t, auth_kind)


def any_bad_request(
    t: Target, routes: dict[str, set[str]], cases: st.SearchStrategy[Case[Any]] | None
) -> st.SearchStrategy[BadRequest]:
    """Every kind of bad request, weighted towards the routes with the most to get wrong."""
    weighted: list[tuple[int, st.SearchStrategy[BadRequest]]] = [
        (30, push_request(t)),
        (15, create_request(t)),
        (8, status_request(t)),
        (9, sse_request(t)),
        (5, job_request(t)),
        (6, list_request(t)),
        (
            3,
            param_request(
                t,
                "GET /api/admin/dictionary/internal-sync/stats",
                b"/api/admin/dictionary/internal-sync/stats",
                "windowMinutes",
            ),
        ),
        (3, param_request(t, "GET /api/admin/sync-models", b"/api/admin/sync-models", "limit")),
        (2, models_admin_trigger(t)),
        (6, models_trigger_request(t)),
        (4, public_request(t)),
        (3, unknown_path_request(t)),
        (4, method_request(t, routes)),
        (2, parser_request(t)),
    ]
    if cases is not None:
        weighted.append((8, schemathesis_request(t, cases)))
    table = [s for weight, s in weighted for _ in range(weight)]
    return st.integers(0, len(table) - 1).flatmap(lambda i: table[i])


# --- the client: one keep-alive connection ------------------------------------------------


class WireError(Exception):
    """The connection failed before a whole answer arrived."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


@dataclass
class Answer:
    status: int
    headers: dict[bytes, bytes]
    body: bytes

    @property
    def closes(self) -> bool:
        return self.headers.get(b"connection", b"").lower() == b"close"


class Connection:
    """HTTP/1.1 over one socket, bytes as given; answers parsed strictly."""

    def __init__(self, port: int, timeout: float) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> str:
        """Send everything; '' or what went wrong (the server may have answered early)."""
        try:
            self.sock.sendall(data)
        except OSError as exc:
            return type(exc).__name__
        return ""

    def _fill(self) -> None:
        try:
            chunk = self.sock.recv(262144)
        except TimeoutError:
            raise WireError("no answer within the timeout") from None
        except ConnectionResetError:
            raise WireError("connection reset") from None
        except OSError as exc:
            raise WireError(type(exc).__name__) from None
        if not chunk:
            raise WireError("connection closed")
        self.buffer += chunk

    def _take(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self._fill()
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            if len(self.buffer) > 1 << 20:
                raise WireError("garbage instead of an answer")
            self._fill()
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def answer(self, head_only: bool = False) -> Answer:
        """The next final answer (1xx skipped)."""
        status, headers = self._head()
        try:
            return self._body(status, headers, head_only)
        except WireError as exc:
            raise WireError(f"{status} answer cut off after its head ({exc.kind})") from None

    def _head(self) -> tuple[int, dict[bytes, bytes]]:
        while True:
            while b"\r\n\r\n" not in self.buffer:
                if len(self.buffer) > 1 << 20:
                    raise WireError("garbage instead of an answer")
                self._fill()
            head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            parts = lines[0].split(b" ", 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
                raise WireError("garbage instead of an answer")
            status = int(parts[1])
            headers: dict[bytes, bytes] = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            if 100 <= status < 200:
                if status == 101:
                    raise WireError("switched protocols")
                continue
            return status, headers

    def _body(self, status: int, headers: dict[bytes, bytes], head_only: bool) -> Answer:
        if head_only or status in (204, 304):
            return Answer(status, headers, b"")
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            parts_out = []
            while True:
                size_line = self._line().split(b";")[0].strip()
                try:
                    size = int(size_line, 16)
                except ValueError:
                    raise WireError("garbage in a chunked answer") from None
                if size == 0:
                    while self._line():
                        pass
                    break
                parts_out.append(self._take(size))
                self._take(2)
            return Answer(status, headers, b"".join(parts_out))
        if b"content-length" in headers:
            return Answer(status, headers, self._take(int(headers[b"content-length"])))
        try:
            while True:
                self._fill()
        except WireError as exc:
            if exc.kind != "connection closed":
                raise
        body = self.buffer
        self.buffer = b""
        return Answer(status, headers, body)


@dataclass
class Outcome:
    """What one bad request got: the answer's status and anything wrong with it."""

    status: int | None
    problems: list[str]
    elapsed: float
    parser_refused: bool = False
    closed: bool = False
    announced_close: bool = False


def is_problem(answer: Answer, head_only: bool) -> str:
    """'' when a 4xx answer is an RFC 9457 problem document, else what is wrong."""
    ctype = answer.headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    if ctype != b"application/problem+json":
        return f"{answer.status} with content-type {short(ctype, 40) or 'none'}"
    if head_only:
        return ""
    try:
        data = orjson.loads(answer.body)
    except orjson.JSONDecodeError:
        return f"{answer.status} whose body is not JSON"
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("detail"), str)
        or not data["detail"].strip()
    ):
        return f"{answer.status} problem without a detail"
    if data.get("status") not in (None, answer.status):
        return f"{answer.status} problem saying status {data.get('status')}"
    return ""


def exchange(conn: Connection, request: BadRequest) -> Outcome:
    """Send one bad request, read its answer, judge it, and check the connection still
    serves a GET /healthz when it should. Leaves ``conn`` closed when it is done for."""
    head_only = request.method == b"HEAD"
    started = time.perf_counter()
    send_error = conn.send(request.wire())
    if request.framing == "halfclose" and not send_error:
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            send_error = type(exc).__name__
    problems: list[str] = []
    try:
        answer = conn.answer(head_only)
    except WireError as exc:
        conn.close()
        elapsed = time.perf_counter() - started
        if request.framing == "halfclose" and exc.kind == "connection closed":
            return Outcome(None, [], elapsed, closed=True)
        sent = f" (sending failed: {send_error})" if send_error else ""
        what = exc.kind if "cut off" in exc.kind else f"no answer: {exc.kind}"
        return Outcome(None, [f"{what}{sent}"], elapsed, closed=True)
    elapsed = time.perf_counter() - started
    parser_refused = answer.status == 400 and answer.body == PARSER_400
    if parser_refused and request.parser_may_refuse:
        conn.close()
        return Outcome(answer.status, [], elapsed, parser_refused=True, closed=True)
    if answer.status >= 500:
        problems.append(str(answer.status))
    elif answer.status >= 400:
        wrong = is_problem(answer, head_only)
        if wrong:
            problems.append(f"not a problem document: {wrong}")
    elif answer.status < 300 and request.must_refuse and request.method in BODY_METHODS:
        problems.append(f"{answer.status} for a request that must be refused")
    if request.framing == "short" and not answer.closes:
        try:
            pipelined = conn.answer()
            if pipelined.status != 200:
                problems.append(f"the pipelined GET /healthz answered {pipelined.status}")
        except WireError as exc:
            problems.append(f"the pipelined GET /healthz got no answer: {exc.kind}")
            conn.close()
            return Outcome(answer.status, problems, elapsed, closed=True)
    if answer.closes or not request.keeps_alive or request.framing == "halfclose":
        conn.close()
        announced = answer.closes and request.keeps_alive
        return Outcome(answer.status, problems, elapsed, closed=True, announced_close=announced)
    conn.send(HEALTHZ)  # a failure shows when reading the answer
    try:
        health = conn.answer()
    except WireError as exc:
        conn.close()
        kind = (
            "closed or reset" if exc.kind in ("connection closed", "connection reset") else exc.kind
        )
        problems.append(f"then the same connection failed GET /healthz: {kind}")
        return Outcome(answer.status, problems, elapsed, closed=True)
    if health.status != 200:
        problems.append(f"then GET /healthz on the same connection answered {health.status}")
    return Outcome(answer.status, problems, elapsed, closed=False)
