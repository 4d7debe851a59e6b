"""supasaasy's answers: the paths that speak its error format, that format, its headers."""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes, urlsplit

import orjson

from tests.bad_input.request import BadRequest, shorten
from tests.raw_http import RawResponse

# Every method on these paths is supasaasy's (seed 001): its error body, not a problem
# document. Matched on the path as the api routes it (percent-decoded).
SAASY_PATH = re.compile(
    rb"/(?:sync|functions/v1/sync|webhook/[^/]+|functions/v1/job-status/[^/]+|sync/jobs/[^/]+)"
)
SYNC_PATHS = (b"/sync", b"/functions/v1/sync")
CORS_ORIGIN = "https://admin.fuzz.example"  # SYNCBUS_CORS_ORIGINS of the suite's stack


def routed_path(target: bytes) -> bytes:
    """The path the api routes ``target`` by: no query, percent-decoded."""
    path = urlsplit(target).path if target.startswith(b"http") else target.split(b"?", 1)[0]
    return unquote_to_bytes(path)


def speaks_saasy(request: BadRequest) -> bool:
    return (
        request.framing != "raw" and SAASY_PATH.fullmatch(routed_path(request.target)) is not None
    )


def saasy_fault(answer: RawResponse, head_only: bool) -> str:
    """'' when a 4xx answer is supasaasy's error body, else what is wrong: exactly
    ``{"error": "<text>", "success": false}``, and ``job_id`` on a 409."""
    ctype = answer.headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    if ctype != b"application/json":
        return f"{answer.status} with content-type {shorten(ctype, 40) or 'none'}"
    if head_only:
        return ""
    try:
        data = orjson.loads(answer.body)
    except orjson.JSONDecodeError:
        return f"{answer.status} whose body is not JSON"
    if not isinstance(data, dict):
        return f"{answer.status} whose body is no object"
    error = data.get("error")
    if not isinstance(error, str) or not error.strip():
        return f"{answer.status} without an error text"
    if data.get("success") is not False:
        return f"{answer.status} with success {shorten(repr(data.get('success')), 20)}"
    extra = set(data) - {"error", "success", *(("job_id",) if answer.status == 409 else ())}
    if extra:
        return f"{answer.status} error body with {', '.join(sorted(extra))}"
    return ""


def saasy_header_faults(request: BadRequest, answer: RawResponse) -> list[str]:
    """RateLimit headers on every answer to POST /sync, Retry-After on a 429, and CORS
    headers only on a preflight, only for the configured origin."""
    faults = []
    path = routed_path(request.target)
    if request.method == b"POST" and path in SYNC_PATHS:
        missing = [h for h in ("RateLimit", "RateLimit-Policy") if answer.header(h) is None]
        if missing:
            faults.append(f"{answer.status} without {' and '.join(missing)}")
    if answer.status == 429 and answer.header("Retry-After") is None:
        faults.append("429 without Retry-After")
    allowed = answer.header("Access-Control-Allow-Origin")
    if allowed is not None and (request.method != b"OPTIONS" or allowed != CORS_ORIGIN):
        faults.append(f"{answer.status} with Access-Control-Allow-Origin {shorten(allowed, 40)}")
    return faults
