"""Seed 004's remote sender: signs a dictionary batch, pushes it with retries, polls its status."""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from tenacity import (
    RetryCallState,
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from schemas.signing import push_signature

TERMINAL = ("success", "failed")


class SendError(RuntimeError):
    """The push was refused, or retries ran out."""


class _Retryable(Exception):
    """A failure worth retrying: network trouble, 429 or 5xx."""


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, _Retryable | httpx.TransportError)


# Dataclasses and datetimes go on to ``json``, which refuses them as before: JSON has no
# such types, and a seed-004 receiver would not read them back as they were.
_ORJSON_OPTIONS = (
    orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
)


def encode_body(payload: dict[str, Any]) -> bytes:
    """The bytes a seed-004 sender signs: compact UTF-8 JSON, as JavaScript's
    ``JSON.stringify(payload)`` writes it for JSON's types (NaN and infinities as ``null``).

    orjson writes it 17 times faster than ``json`` (1 ms against 17 ms for 5,000 entries),
    the same bytes as ``json.dumps(..., ensure_ascii=False, separators=(",", ":"))`` but for
    floats under 1e-4, which it writes as JavaScript does (``0.00001``, ``1e-7``; ``json``:
    ``1e-05``, ``1e-07``) except in the 1e-6 decade. An integer past 64 bits, which orjson
    refuses, goes through ``json``; a type JSON lacks raises TypeError."""
    try:
        return orjson.dumps(payload, option=_ORJSON_OPTIONS)
    except orjson.JSONEncodeError:
        finite = _non_finite_as_null(payload)
        return json.dumps(finite, ensure_ascii=False, separators=(",", ":")).encode()


def _non_finite_as_null(value: Any) -> Any:
    """``value`` with NaN and infinities as None, as orjson and ``JSON.stringify`` write them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _non_finite_as_null(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_non_finite_as_null(item) for item in value]
    return value


def signed_headers(secret: str, request_id: str, body: bytes) -> dict[str, str]:
    timestamp = str(int(time.time()))
    return {
        "content-type": "application/json",
        "x-sync-timestamp": timestamp,
        "x-sync-request-id": request_id,
        "x-sync-signature": push_signature(secret, timestamp, request_id, body),
    }


def status_url(push_url: str) -> str:
    return push_url.rstrip("/") + "/status"


@dataclass
class DictionarySender:
    """Client of ``POST /api/internal/dictionary-upserts`` (env: ``RF_SYNC_*``)."""

    url: str
    secret: str
    source: str = "de-ai-worker"
    retries: int = 4
    timeout_s: float = 30.0
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30.0))
    on_retry: Callable[[int, str], None] | None = None

    def prepare(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Fill ``source``, and a ``requestId`` derived from the content, when left out.

        A derived id keeps re-sending the same file idempotent.
        """
        prepared = dict(payload)
        prepared.setdefault("source", self.source)
        if "requestId" not in prepared:
            digest = hashlib.sha256(encode_body(prepared)).hexdigest()[:32]
            prepared["requestId"] = f"sync-{digest}"
        return prepared

    def push(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Send the batch; retries network errors, 429 and 5xx with backoff and jitter."""
        body = encode_body(payload)
        request_id = str(payload["requestId"])

        def attempt() -> httpx.Response:
            # Re-sign every attempt: the timestamp must stay inside the server's window.
            headers = signed_headers(self.secret, request_id, body)
            response = self.client.post(self.url, content=body, headers=headers)
            if response.status_code == 429 or response.status_code >= 500:
                raise _Retryable(f"HTTP {response.status_code}: {response.text[:200]}")
            return response

        response = self._with_retries(attempt)
        if response.status_code >= 400:
            raise SendError(f"push refused: HTTP {response.status_code}: {response.text[:500]}")
        return dict(response.json())

    def status(self, request_id: str) -> dict[str, Any]:
        """The job's status, authenticated by signing the request id over an empty payload."""

        def attempt() -> httpx.Response:
            headers = signed_headers(self.secret, request_id, b"")
            response = self.client.get(
                status_url(self.url), params={"requestId": request_id}, headers=headers
            )
            if response.status_code == 429 or response.status_code >= 500:
                raise _Retryable(f"HTTP {response.status_code}")
            return response

        response = self._with_retries(attempt)
        if response.status_code >= 400:
            raise SendError(f"status refused: HTTP {response.status_code}: {response.text[:500]}")
        return dict(response.json())

    def wait(self, request_id: str, timeout_s: float = 600, poll_s: float = 1.0) -> dict[str, Any]:
        """Poll until the job is ``success`` or ``failed``."""
        deadline = time.monotonic() + timeout_s
        while True:
            state = self.status(request_id)
            if state.get("status") in TERMINAL:
                return state
            if time.monotonic() > deadline:
                raise SendError(f"job {request_id} still {state.get('status')} after {timeout_s}s")
            time.sleep(poll_s)

    def _with_retries(self, attempt: Callable[[], httpx.Response]) -> httpx.Response:
        def before_sleep(state: RetryCallState) -> None:
            if self.on_retry is not None and state.outcome is not None:
                self.on_retry(state.attempt_number, str(state.outcome.exception()))

        wrapped = retry(
            retry=retry_if_exception(_is_retryable),
            stop=stop_after_attempt(self.retries + 1),
            wait=wait_exponential_jitter(initial=0.5, max=10, jitter=0.5),
            before_sleep=before_sleep,
            reraise=True,
        )(attempt)
        try:
            return wrapped()
        except (_Retryable, httpx.TransportError) as exc:
            raise SendError(f"gave up after {self.retries + 1} attempts: {exc}") from exc
