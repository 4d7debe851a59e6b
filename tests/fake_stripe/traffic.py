"""What arrives and what goes wrong: the request log's entries and faults on demand."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import orjson

from tests.fake_stripe.wire import (
    API_ERROR_MESSAGE,
    LOCK_TIMEOUT_MESSAGE,
    RATE_LIMIT_MESSAGE,
    StripeError,
)

Drop = Literal["before_response", "mid_body"]


@dataclass(frozen=True)
class RecordedRequest:
    """One request as it arrived; ``query`` keeps Stripe's form pairs in order, ``at`` is
    ``time.monotonic()``, header names are lower-case."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    api_key: str | None
    at: float

    def values(self, name: str) -> list[str]:
        """Every value sent under ``name`` (e.g. ``"types[]"``, ``"created[gte]"``)."""
        return [value for key, value in self.query if key == name]


@dataclass
class Fault:
    """A canned answer (or a dropped connection) for the next ``remaining`` requests whose
    path starts with ``path``."""

    path: str
    remaining: int
    status: int = 0
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: Drop | None = None


def take_fault(faults: list[Fault], path: str) -> Fault | None:
    """The first pending fault for ``path``, counted down (the caller holds the lock)."""
    for fault in faults:
        if path.startswith(fault.path):
            fault.remaining -= 1
            if fault.remaining <= 0:
                faults.remove(fault)
            return fault
    return None


def throttle(
    path: str,
    n: int,
    should_retry: bool | None,
    retry_after: float | None,
    code: Literal["rate_limit", "lock_timeout"],
    reason: str | None,
) -> Fault:
    """Stripe's 429: type ``invalid_request_error`` with code ``rate_limit`` (or
    ``lock_timeout``); headers only when asked for."""
    message = RATE_LIMIT_MESSAGE if code == "rate_limit" else LOCK_TIMEOUT_MESSAGE
    headers = retry_headers(should_retry)
    if retry_after is not None:
        headers["Retry-After"] = f"{retry_after:g}"
    if reason is not None:
        headers["Stripe-Rate-Limited-Reason"] = reason
    return _canned(path, n, StripeError(429, message, code=code), headers)


def failure(
    path: str, n: int, status: int, should_retry: bool | None, message: str = API_ERROR_MESSAGE
) -> Fault:
    """An ``api_error`` answer with ``status``."""
    error = StripeError(status, message, type="api_error")
    return _canned(path, n, error, retry_headers(should_retry))


def retry_headers(should_retry: bool | None) -> dict[str, str]:
    if should_retry is None:
        return {}
    return {"Stripe-Should-Retry": "true" if should_retry else "false"}


def _canned(path: str, n: int, error: StripeError, headers: dict[str, str]) -> Fault:
    return Fault(path, n, error.status, orjson.dumps(error.body()), headers)
