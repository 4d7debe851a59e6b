"""Token buckets that pace requests to a provider account, one per account for the whole process."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable


class TokenBucket:
    """``rate`` requests a second on average, up to ``burst`` at once after a quiet spell.

    ``await acquire()`` before each request. A caller that finds no token reserves the next
    one and sleeps until it is due, so callers are served in the order they asked, nobody
    polls, and a cancelled waiter hands its token back. It holds no event-loop object, so
    it outlives any one loop; it is not thread-safe (the worker's loop is one thread).
    """

    def __init__(
        self, rate: float, burst: int = 1, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        _check_pace(rate, burst)
        self.rate, self.burst = rate, burst
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()

    def configure(self, rate: float, burst: int = 1) -> None:
        """Change the pace; tokens already saved up are kept, up to the new burst."""
        _check_pace(rate, burst)
        self._refill()
        self.rate, self.burst = rate, burst
        self._tokens = min(self._tokens, float(burst))

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def reserve(self) -> float:
        """Take a token now, possibly one not yet earned; the seconds until it is."""
        self._refill()
        self._tokens -= 1.0
        return max(0.0, -self._tokens / self.rate)

    async def acquire(self) -> None:
        """Wait for this caller's token (at once when one is saved up)."""
        wait = self.reserve()
        if wait <= 0:
            return
        try:
            await asyncio.sleep(wait)
        except asyncio.CancelledError:
            self._refill()
            self._tokens = min(float(self.burst), self._tokens + 1.0)
            raise


def _check_pace(rate: float, burst: int) -> None:
    if not rate > 0:
        raise ValueError(f"rate must be positive, not {rate}")
    if burst < 1:
        raise ValueError(f"burst must be at least 1, not {burst}")


class TokenBuckets:
    """One bucket per key, made on first use; a later ``get`` with other numbers re-paces it."""

    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}

    def get(self, key: str, rate: float, burst: int = 1) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(rate, burst)
        elif (bucket.rate, bucket.burst) != (rate, burst):
            bucket.configure(rate, burst)
        return bucket


# The worker process's buckets: every collection and app of one provider account shares one.
SHARED_BUCKETS = TokenBuckets()


def account_key(provider: str, credential: str) -> str:
    """A bucket key naming one provider account without holding its secret: ``stripe:9f86d0...``."""
    digest = hashlib.sha256(credential.encode()).hexdigest()[:16]
    return f"{provider}:{digest}"
