"""What a bad request is: the api it targets, the request itself and its bytes on the wire."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_from_bytes

from tests.raw_http import Headers, encode_request, head_and_body, request_head

HEALTHZ = encode_request(b"GET", b"/healthz", [])


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
    app_key: str  # the one saas app the stack configures
    app_resources: tuple[str, ...]
    app_api_base: str
    webhook_secret: str
    saas_max_body: int
    schedule_id: str  # a disabled schedule made before the run
    schedule_domain: str
    # Seed 002's releases, made before the run: an inactive one with a git branch (so that
    # a sync of every active release has nothing to do) and an active one without.
    branch_release_id: int = 0
    plain_release_id: int = 0
    release_names: tuple[str, ...] = ()  # the two releases' names, in that order
    git_job_id: str = ""  # a finished (failed) git sync: what its progress stream replays

    @property
    def release_ids(self) -> tuple[int, int]:
        return (self.branch_release_id, self.plain_release_id)


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
    expect: tuple[int, ...] = ()  # when given, any other status is a failure
    detail: str = ""

    def received(self) -> bytes:
        """The body as the server reads it."""
        if self.framing == "short":
            return self.body[: self.declared]
        if self.framing == "long":
            return self.body + HEALTHZ
        return self.body

    def wire(self) -> bytes:
        if self.framing == "raw":
            return self.body
        if self.framing == "length":
            return encode_request(self.method, self.target, self.headers, self.body, self.version)
        lines = request_head(self.method, self.target, self.headers, self.version)
        body = self.body
        if self.framing == "chunked":
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
        return head_and_body(lines, body)

    def example(self) -> str:
        """A short picture of the request for the report."""
        return (self.detail or self.target.decode("latin-1")[:80])[:160]


def chunked(body: bytes, sizes: Sequence[int]) -> bytes:
    """``body`` in chunks of ``sizes`` (cycled), then the last chunk."""
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
    """A BadRequest for ``path`` with ``query`` (already encoded name=value pairs)."""
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


def shorten(value: bytes | str, limit: int = 60) -> str:
    """``value`` escaped to printable ASCII and cut to about ``limit`` characters."""
    text = value if isinstance(value, str) else value.decode("latin-1")
    text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else f"{text[: limit - 12]}…({len(text)} chars)"


def quoted(value: str | bytes) -> bytes:
    """``value`` percent-encoded for a path segment or query, every reserved byte escaped."""
    raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")
    return quote_from_bytes(raw, safe="").encode()
