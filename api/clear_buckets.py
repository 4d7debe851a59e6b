"""Addresses with no failed authentication a moment ago: their requests skip the limiter query.

Every signed or authenticated request first asks PostgreSQL whether its address is over the
failed-authentication limit (api/auth.py), a transaction of its own on the path of every
push and every status poll. An address whose bucket was empty (no failure at all) is
remembered for ``ttl_s``; a failure this replica counts forgets it at once. So at most one
wrong guess per replica and ``ttl_s`` goes unchecked against failures counted by *other*
replicas, while the limit itself (several failures a minute) is unchanged.
"""

from __future__ import annotations

import time

TTL_S = 1.0
MAX_ADDRESSES = 10_000


class ClearBuckets:
    """Buckets seen empty, each until a deadline (monotonic time)."""

    def __init__(self, ttl_s: float = TTL_S, max_size: int = MAX_ADDRESSES) -> None:
        self._ttl_s = ttl_s
        self._max_size = max_size
        self._until: dict[str, float] = {}

    def is_clear(self, bucket: str) -> bool:
        until = self._until.get(bucket)
        if until is None:
            return False
        if until <= time.monotonic():
            del self._until[bucket]
            return False
        return True

    def saw_clear(self, bucket: str) -> None:
        if len(self._until) >= self._max_size:
            self._until.clear()  # many addresses at once: start over rather than grow
        self._until[bucket] = time.monotonic() + self._ttl_s

    def forget(self, bucket: str) -> None:
        self._until.pop(bucket, None)
