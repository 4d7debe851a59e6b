"""When a source request is tried again and how long to wait: the policy, the classifier, waits."""

from __future__ import annotations

import enum
import math
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

_RATELIMIT_PARAM = re.compile(r"^\s*([a-z]+)\s*=\s*([0-9]+)\s*$")


@dataclass(frozen=True)
class RetryPolicy:
    """How often a failed request is tried, and how long to wait between tries.

    The wait before retry ``n`` is ``backoff_s * 2**(n-1)``, capped at ``max_wait_s``, of which
    the fraction ``jitter`` is random (0.5: somewhere between half and all of it). A wait the
    server asks for replaces the backoff, without jitter, under the same cap. ``max_wait_name``
    is the setting that sets the cap, named in messages so an operator knows what to change.
    """

    attempts: int = 4
    backoff_s: float = 0.5
    max_wait_s: float = 30.0
    jitter: float = 0.5
    max_wait_name: str = "max_wait_s"

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {self.attempts}")
        if self.backoff_s < 0 or self.max_wait_s < 0:
            raise ValueError("backoff_s and max_wait_s must not be negative")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be between 0 and 1, not {self.jitter}")

    def wait_before_retry(self, retry: int, server_wait_s: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1 is the first retry)."""
        if server_wait_s is not None:
            return min(server_wait_s, self.max_wait_s)
        backoff = min(self.max_wait_s, self.backoff_s * 2.0 ** min(retry - 1, 64))
        # Jitter spreads retries out; it needs no cryptographic randomness.
        return backoff * (1.0 - self.jitter * random.random())  # noqa: S311


class ResponseAction(enum.Enum):
    """What the caller should do with one HTTP answer."""

    ACCEPT = "accept"  # a usable answer: read its body
    RETRY = "retry"  # may pass if tried again, while the retry budget lasts
    FAIL = "fail"  # will not pass by trying again: stop with an error now
    SKIP = "skip"  # nothing to read here by design: the caller skips this data, the sync goes on


class ResponseClassifier:
    """The default mapping of an HTTP answer to a ``ResponseAction``, and its wording.

    2xx is accepted; 408, 429 and every 5xx are retried; anything else fails. A connector
    whose provider says more (a header, an error code in the body) subclasses and overrides
    ``classify``, calling ``super().classify`` for what it does not decide itself.
    """

    retry_statuses: frozenset[int] = frozenset({408, 429})

    def classify(self, response: httpx.Response) -> ResponseAction:
        if response.is_success:
            return ResponseAction.ACCEPT
        if response.status_code in self.retry_statuses or response.status_code >= 500:
            return ResponseAction.RETRY
        return ResponseAction.FAIL

    def notes(self, response: httpx.Response) -> list[str]:
        """Words that explain the status in messages: ``HTTP 429 (rate limited)``."""
        return ["rate limited"] if response.status_code == 429 else []

    def describe(self, response: httpx.Response) -> str:
        """The answer in a message: ``HTTP 429 (rate limited)``."""
        notes = self.notes(response)
        return f"HTTP {response.status_code}" + (f" ({'; '.join(notes)})" if notes else "")


class ShouldRetryHeaderClassifier(ResponseClassifier):
    """A provider header saying ``true``/``false`` decides; without it, the status does.

    ``true`` retries any failed answer, even a 4xx; ``false`` never retries, even a 429 or
    5xx. ``also_retry`` adds statuses the provider documents as worth retrying (Stripe: 409).
    """

    def __init__(self, header: str, *, also_retry: Iterable[int] = ()) -> None:
        self.header = header
        self.retry_statuses = ResponseClassifier.retry_statuses | frozenset(also_retry)

    def classify(self, response: httpx.Response) -> ResponseAction:
        said = response.headers.get(self.header, "").strip().lower()
        if not response.is_success and said in ("true", "false"):
            return ResponseAction.RETRY if said == "true" else ResponseAction.FAIL
        return super().classify(response)

    def notes(self, response: httpx.Response) -> list[str]:
        said = response.headers.get(self.header)
        return super().notes(response) + ([f"{self.header}: {said}"] if said else [])


# stripe-python's rules (``_http_client.py::_should_retry``), plus 429 and 5xx without the header.
STRIPE_RESPONSES = ShouldRetryHeaderClassifier("Stripe-Should-Retry", also_retry=(409,))


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


def _legacy_ratelimit_reset_seconds(headers: httpx.Headers) -> float | None:
    """Earlier drafts' ``RateLimit-Remaining: 0`` with ``RateLimit-Reset`` in delta-seconds."""
    if headers.get("RateLimit-Remaining", "").strip() != "0":
        return None
    try:
        seconds = float(headers.get("RateLimit-Reset", ""))
    except ValueError:
        return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def server_wait_seconds(headers: httpx.Headers) -> float | None:
    """What the server asked us to wait before retrying, if it said.

    An exhausted ``RateLimit`` quota wins over ``Retry-After``: the Hugging Face Hub sends
    ``Retry-After: 0`` beside ``r=0;t=N`` and its own client sleeps ``t``.
    """
    reset = ratelimit_reset_seconds(headers.get("RateLimit"))
    if reset is None:
        reset = _legacy_ratelimit_reset_seconds(headers)
    if reset is not None:
        return reset
    return retry_after_seconds(headers.get("Retry-After"))
