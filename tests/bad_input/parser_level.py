"""Bytes HTTP/1.1 forbids, which only uvicorn's parser sees: it may refuse them and close."""

from __future__ import annotations

from hypothesis import strategies as st

from tests.bad_input.request import BadRequest, Target, shorten
from tests.raw_http import head_and_body

CONTROL = b"".join(bytes([c]) for c in (*range(1, 9), *range(11, 13), *range(14, 32), 127))
PARSER_KINDS = [
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
PARSER_PATHS = [
    "/v1/syncs",
    "/healthz",
    "/api/internal/dictionary-upserts/status",
    "/v1/syncs/{job_id}/events",
]
POST_LINE = b"POST /v1/syncs HTTP/1.1"


def malform(draw: st.DrawFn, kind: str, path: bytes, head: list[bytes]) -> bytes:
    """Break ``head`` (request line first) in the way ``kind`` names; returns the body."""
    ctl = bytes([draw(st.sampled_from(list(CONTROL)))])
    high = bytes([draw(st.integers(0x80, 0xFF))])
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
        head += [b"x-fuzz: a", b" folded"]
    elif kind == "Content-Length and Transfer-Encoding":
        head[0] = POST_LINE
        head += [b"content-length: 5", b"transfer-encoding: chunked"]
        return b"2\r\n{}\r\n0\r\n\r\n"
    elif kind == "two Content-Lengths":
        head[0] = POST_LINE
        head += [b"content-length: 2", b"content-length: 3"]
        return b"{}"
    elif kind == "Content-Length not a number":
        head[0] = POST_LINE
        length = draw(st.sampled_from([b"abc", b"-1", b"1.5", b"\xb2", b"0x10"]))
        head.append(b"content-length: " + length)
        return b"{}"
    elif kind == "Content-Length above 2^64":
        head[0] = POST_LINE
        head.append(b"content-length: " + str(2**64 + 1).encode())
    elif kind == "bad chunk size":
        head[0] = POST_LINE
        head.append(b"transfer-encoding: chunked")
        return draw(
            st.sampled_from([b"zz\r\nab\r\n0\r\n\r\n", b"-1\r\n\r\n", b"ffffffffffffffffff\r\n"])
        )
    elif kind == "HTTP/1.2":
        head[0] = b"GET " + path + b" HTTP/1.2"
    else:
        head.append(b"x-fuzz: a\x00b")
    return b""


@st.composite
def parser_request(draw: st.DrawFn, t: Target) -> BadRequest:
    """Bytes HTTP/1.1 forbids: control characters in header values or the target, raw
    non-ASCII in the target, broken framing. Only uvicorn's parser sees these."""
    kind = draw(st.sampled_from(PARSER_KINDS))
    template = draw(st.sampled_from(PARSER_PATHS))
    path = template.replace("{job_id}", t.seed_job_id).encode()
    key = b"Bearer " + t.admin_key.encode()
    head = [b"GET " + path + b" HTTP/1.1", b"host: 127.0.0.1", b"authorization: " + key]
    body = malform(draw, kind, path, head)
    raw = head_and_body(head, body)
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
        detail=shorten(raw, 140),
    )
