"""GET JSON from a source API: paced, retried by a classifier, failing with one redacted line."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from schemas.json_value import json_problem
from streams.sources.ratelimit import TokenBucket
from streams.sources.retry import (
    ResponseAction,
    ResponseClassifier,
    RetryPolicy,
    server_wait_seconds,
)

log = logging.getLogger(__name__)

BODY_SNIPPET_CHARS = 200
REDACTED = "[redacted]"
# Request headers whose values are credentials, besides any whose name says key/token/secret.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
_CREDENTIAL_WORDS = ("key", "token", "secret", "auth")
_SHORTEST_SECRET = 6  # shorter values are not worth hiding and would mangle every message

# Query parameters as a mapping, or as pairs for repeated and bracketed names that form
# encoding needs: [("created[gte]", 1704067200), ("types[]", "a"), ("types[]", "b")].
Params = Mapping[str, str | int] | Sequence[tuple[str, str | int]]


class SourceError(Exception):
    """A source could not be read; ``str()`` is the one-line message for the job's report."""


class FatalResponseError(SourceError):
    """The source answered with a status that trying again will not change."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class SkippableResponseError(FatalResponseError):
    """The classifier says this answer means "nothing here": skip the data, not the sync."""


class RetriesExhaustedError(SourceError):
    """Every attempt the retry policy allows failed; ``status`` is the last one's, if any."""

    def __init__(self, message: str, attempts: int, status: int | None) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.status = status


class MalformedResponseError(SourceError):
    """A 2xx answer whose body is not the JSON document expected."""


@dataclass(frozen=True)
class JsonResponse:
    """A parsed 2xx body, its headers, and the ``Link: rel="next"`` URL when there is one."""

    document: Any
    headers: httpx.Headers
    next_url: str | None
    attempts: int
    url: str
    label: str


@dataclass(frozen=True)
class _FailedAttempt:
    """One attempt that may pass next time: a retriable answer, a timeout, a broken link."""

    summary: str
    status: int | None = None
    server_wait_s: float | None = None
    timed_out: bool = False


def _attempts(count: int) -> str:
    return f"{count} attempt" if count == 1 else f"{count} attempts"


def _snippet(response: httpx.Response) -> str:
    text = " ".join(response.text.split())
    if len(text) > BODY_SNIPPET_CHARS:
        text = text[:BODY_SNIPPET_CHARS] + "..."
    return text


def _unlink(response: httpx.Response) -> None:
    """Break httpx 0.28's cycle between a response and its stream (encode/httpx#3733), once
    the body is read and the stream closed. Left in place, every response waits for the
    cyclic GC, which the worker runs rarely: a sync would hold each page's body until then."""
    response.stream = httpx.ByteStream(b"")


def _next_link(response: httpx.Response) -> str | None:
    url = response.links.get("next", {}).get("url")
    if not url:
        return None
    if url.startswith(("http://", "https://")):
        # Followed exactly as given: the next link already carries every query parameter.
        return url
    return str(response.url.join(url))


def credentials_in(headers: Iterable[tuple[str, str]]) -> set[str]:
    """Secrets in request headers: whole values, bare tokens, Basic auth's user and password."""
    found: set[str] = set()
    for name, value in headers:
        lowered = name.lower()
        if lowered not in CREDENTIAL_HEADERS and not any(w in lowered for w in _CREDENTIAL_WORDS):
            continue
        found.add(value)
        scheme, _, credential = value.strip().partition(" ")
        if not credential:
            continue
        found.add(credential.strip())
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credential.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                continue
            found.update(decoded.split(":", 1))
    return {secret for secret in found if len(secret) >= _SHORTEST_SECRET}


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced, longest first (a token inside its header value)."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


class SourceClient:
    """GETs JSON documents from one provider account over a shared ``httpx.AsyncClient``.

    Each attempt first takes a token from ``bucket`` (the account's pace), then has
    ``timeout_s`` to complete. ``classifier`` decides what an answer means; network errors
    and timeouts are always retried. Waits follow ``retry``. Every message and log line has
    the credentials of the request headers (and ``secrets``) replaced by ``[redacted]``.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        timeout_s: float,
        retry: RetryPolicy | None = None,
        classifier: ResponseClassifier | None = None,
        bucket: TokenBucket | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        self.http = http
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self.classifier = classifier or ResponseClassifier()
        self.bucket = bucket
        self._secrets = {s for s in secrets if len(s) >= _SHORTEST_SECRET}

    async def get_json(
        self,
        url: str,
        *,
        label: str,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> JsonResponse:
        """GET ``url`` and parse its JSON body, retrying what the classifier calls retriable.

        Raises a ``SourceError`` whose one-line message starts with ``label``:
        ``FatalResponseError`` (or ``SkippableResponseError``) at once, ``RetriesExhaustedError``
        when the budget is spent, ``MalformedResponseError`` for a body that is not JSON.
        """
        timeout = timeout_s if timeout_s is not None else self.timeout_s
        secrets = self._secrets | credentials_in(self.http.headers.items())
        secrets |= credentials_in((headers or {}).items())
        query = params if params is None or isinstance(params, Mapping) else tuple(params)
        attempt = 0
        while True:
            attempt += 1
            if self.bucket is not None:
                await self.bucket.acquire()
            outcome = await self._attempt(url, label, query, headers, timeout, secrets)
            if isinstance(outcome, httpx.Response):
                return self._parsed(outcome, label, attempt)
            if attempt >= self.retry.attempts:
                message = self._final_message(outcome, label, attempt, timeout)
                raise RetriesExhaustedError(redact(message, secrets), attempt, outcome.status)
            delay = self.retry.wait_before_retry(attempt, outcome.server_wait_s)
            log.warning(
                "%s: %s on attempt %d of %d; retrying in %.2fs",
                label,
                redact(outcome.summary, secrets),
                attempt,
                self.retry.attempts,
                delay,
            )
            await asyncio.sleep(delay)

    async def _attempt(
        self,
        url: str,
        label: str,
        params: Mapping[str, str | int] | tuple[tuple[str, str | int], ...] | None,
        headers: Mapping[str, str] | None,
        timeout_s: float,
        secrets: set[str],
    ) -> httpx.Response | _FailedAttempt:
        """One GET: an accepted response, a failure worth retrying, or a raised SourceError."""
        try:
            # httpx's timeout bounds each read; the outer deadline bounds the whole request.
            async with asyncio.timeout(timeout_s):
                response = await self.http.get(
                    url, params=params, headers=headers, timeout=timeout_s
                )
        except (TimeoutError, httpx.TimeoutException):
            return _FailedAttempt("timed out", timed_out=True)
        except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            return _FailedAttempt(f"connection failed ({type(exc).__name__}: {exc})")
        except httpx.HTTPError as exc:
            message = f"{label}: request failed: {type(exc).__name__}: {exc}"
            raise SourceError(redact(message, secrets)) from exc
        _unlink(response)
        action = self.classifier.classify(response)
        if action is ResponseAction.ACCEPT:
            return response
        described = self.classifier.describe(response)
        if action is ResponseAction.RETRY:
            wait = server_wait_seconds(response.headers)
            return _FailedAttempt(described, response.status_code, wait)
        if response.is_redirect:
            location = response.headers.get("Location", "?")
            message = f"{label}: {described} redirect to {location}"
        else:
            detail = _snippet(response)
            message = f"{label}: {described}" + (f": {detail}" if detail else "")
        error = SkippableResponseError if action is ResponseAction.SKIP else FatalResponseError
        raise error(redact(message, secrets), response.status_code)

    def _final_message(
        self, failure: _FailedAttempt, label: str, attempts: int, timeout: float
    ) -> str:
        if failure.timed_out:
            return f"{label}: timed out after {timeout:g}s ({_attempts(attempts)})"
        message = f"{label}: {failure.summary} after {_attempts(attempts)}"
        asked, cap = failure.server_wait_s, self.retry.max_wait_s
        if asked is not None and asked > cap:
            message += (
                f" (the server asked to wait {asked:g}s; waits are capped at"
                f" {self.retry.max_wait_name}={cap:g}s)"
            )
        return message

    @staticmethod
    def _parsed(response: httpx.Response, label: str, attempts: int) -> JsonResponse:
        try:
            document = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise MalformedResponseError(f"{label}: malformed JSON: {exc}") from exc
        # orjson takes a NUL in a string, PostgreSQL's jsonb and text do not: the whole run's
        # transaction would fail. Looked for only when the bytes may hold one.
        if b"\\u0000" in response.content and (reason := json_problem(document)) is not None:
            raise MalformedResponseError(f"{label}: cannot be stored: {reason}")
        return JsonResponse(
            document=document,
            headers=response.headers,
            next_url=_next_link(response),
            attempts=attempts,
            url=str(response.url),
            label=label,
        )
