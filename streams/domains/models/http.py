"""GET a JSON document from a catalogue API: a deadline per request, retries obeying rate limits."""

from __future__ import annotations

import asyncio
import logging
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from schemas.settings import Settings

log = logging.getLogger(__name__)

USER_AGENT = "syncbus-models-sync"
BODY_SNIPPET_CHARS = 200
_RATELIMIT_PARAM = re.compile(r"^\s*([a-z]+)\s*=\s*([0-9]+)\s*$")


class SourceError(Exception):
    """A catalogue could not be read; ``str()`` is the message for the source's report."""


@dataclass(frozen=True)
class RequestPolicy:
    """How long one request may take and how often a failed one is tried again."""

    timeout_s: float
    attempts: int
    max_wait_s: float
    backoff_s: float = 0.5

    @classmethod
    def from_settings(cls, settings: Settings) -> RequestPolicy:
        return cls(
            timeout_s=settings.source_timeout_s,
            attempts=settings.source_retries + 1,
            max_wait_s=settings.source_max_retry_wait_s,
        )


@dataclass(frozen=True)
class JsonResponse:
    """A parsed 2xx body, its headers, and the ``Link: rel="next"`` URL when there is one."""

    document: Any
    headers: httpx.Headers
    next_url: str | None
    attempts: int


class _RetryableFailure(Exception):
    """One attempt failed in a way that may pass: 429, 5xx, a timeout or a broken connection."""

    def __init__(self, summary: str, server_wait_s: float | None = None) -> None:
        super().__init__(summary)
        self.summary = summary
        self.server_wait_s = server_wait_s

    def final_message(self, label: str, attempts: int, policy: RequestPolicy) -> str:
        message = f"{label}: {self.summary} after {_attempts(attempts)}"
        if self.server_wait_s is not None and self.server_wait_s > policy.max_wait_s:
            message += (
                f" (the server asked to wait {self.server_wait_s:g}s; waits are capped at"
                f" MODELS_SOURCE_MAX_RETRY_WAIT_S={policy.max_wait_s:g}s)"
            )
        return message


class _TimedOut(_RetryableFailure):
    def final_message(self, label: str, attempts: int, policy: RequestPolicy) -> str:
        return f"{label}: timed out after {policy.timeout_s:g}s ({_attempts(attempts)})"


def _attempts(count: int) -> str:
    return f"{count} attempt" if count == 1 else f"{count} attempts"


def new_client(settings: Settings) -> httpx.AsyncClient:
    """The shared client for one sync; redirects are reported, not followed (see ``get_json``)."""
    return httpx.AsyncClient(
        timeout=settings.source_timeout_s,
        headers={"Accept": "application/json", "User-Agent": USER_AGENT},
        follow_redirects=False,
    )


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delay-seconds or an HTTP date; None if unusable."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def ratelimit_reset_seconds(value: str | None) -> float | None:
    """Seconds until an exhausted quota resets, from an IETF ``RateLimit`` header.

    ``"api";r=0;t=55`` -> 55. Only items with ``r=0`` count; with several exhausted
    quotas the longest reset wins. None when no quota is exhausted or the header is unusable.
    """
    if not value:
        return None
    waits: list[float] = []
    for item in value.split(","):
        params: dict[str, int] = {}
        for part in item.split(";")[1:]:
            if match := _RATELIMIT_PARAM.match(part.lower()):
                params[match.group(1)] = int(match.group(2))
        if params.get("r") == 0 and "t" in params:
            waits.append(float(params["t"]))
    return max(waits) if waits else None


def server_wait_seconds(headers: httpx.Headers) -> float | None:
    """What the server asked us to wait before retrying, if it said."""
    reset = ratelimit_reset_seconds(headers.get("RateLimit"))
    if reset is not None:
        return reset
    return retry_after_seconds(headers.get("Retry-After"))


def _snippet(response: httpx.Response) -> str:
    text = " ".join(response.text.split())
    if len(text) > BODY_SNIPPET_CHARS:
        text = text[:BODY_SNIPPET_CHARS] + "..."
    return text


def _is_retryable_status(status: int) -> bool:
    return status in (408, 429) or status >= 500


def _next_link(response: httpx.Response) -> str | None:
    url = response.links.get("next", {}).get("url")
    if not url:
        return None
    if url.startswith(("http://", "https://")):
        # Followed exactly as given: the next link already carries every query parameter.
        return url
    return str(response.url.join(url))


async def _get_once(
    client: httpx.AsyncClient,
    url: str,
    label: str,
    policy: RequestPolicy,
    params: dict[str, str | int] | None,
    headers: dict[str, str] | None,
) -> httpx.Response:
    try:
        # httpx's timeout bounds each read; the outer deadline bounds the whole request.
        async with asyncio.timeout(policy.timeout_s):
            response = await client.get(
                url, params=params, headers=headers, timeout=policy.timeout_s
            )
    except (TimeoutError, httpx.TimeoutException) as exc:
        raise _TimedOut("timed out") from exc
    except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
        raise _RetryableFailure(f"connection failed ({type(exc).__name__}: {exc})") from exc
    except httpx.HTTPError as exc:
        raise SourceError(f"{label}: request failed: {type(exc).__name__}: {exc}") from exc
    if response.is_success:
        return response
    if _is_retryable_status(response.status_code):
        raise _RetryableFailure(
            f"HTTP {response.status_code}", server_wait_s=server_wait_seconds(response.headers)
        )
    if response.is_redirect:
        location = response.headers.get("Location", "?")
        raise SourceError(f"{label}: HTTP {response.status_code} redirect to {location}")
    detail = _snippet(response)
    raise SourceError(f"{label}: HTTP {response.status_code}" + (f": {detail}" if detail else ""))


async def get_json(
    client: httpx.AsyncClient,
    url: str,
    *,
    label: str,
    policy: RequestPolicy,
    params: dict[str, str | int] | None = None,
    headers: dict[str, str] | None = None,
) -> JsonResponse:
    """GET ``url`` and parse its JSON body, retrying 408/429/5xx, timeouts and broken connections.

    The wait before a retry is what the server asked for (``RateLimit`` with ``r=0``, else
    ``Retry-After``), otherwise exponential backoff with jitter; either is capped at
    ``policy.max_wait_s``. Raises ``SourceError`` whose message starts with ``label``.
    """
    backoff = wait_exponential_jitter(
        multiplier=policy.backoff_s, max=policy.max_wait_s, jitter=policy.backoff_s
    )

    def wait(state: RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome else None
        if isinstance(failure, _RetryableFailure) and failure.server_wait_s is not None:
            return min(failure.server_wait_s, policy.max_wait_s)
        return backoff(state)

    def before_sleep(state: RetryCallState) -> None:
        failure = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "%s: %s on attempt %d of %d; retrying in %.2fs",
            label,
            failure,
            state.attempt_number,
            policy.attempts,
            delay,
        )

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.attempts),
        wait=wait,
        retry=retry_if_exception_type(_RetryableFailure),
        before_sleep=before_sleep,
        reraise=True,
    )
    attempts = 0
    response: httpx.Response | None = None
    try:
        async for attempt in retrying:
            with attempt:
                attempts = attempt.retry_state.attempt_number
                response = await _get_once(client, url, label, policy, params, headers)
    except _RetryableFailure as failure:
        raise SourceError(failure.final_message(label, attempts, policy)) from failure
    if response is None:  # unreachable: tenacity either returned an attempt or raised
        raise SourceError(f"{label}: no response")
    try:
        document = orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        raise SourceError(f"{label}: malformed JSON: {exc}") from exc
    return JsonResponse(document, response.headers, _next_link(response), attempts)
