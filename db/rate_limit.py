"""A rate limiter in PostgreSQL (GCRA), so every api replica counts against the same budget."""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

# now() is the transaction's start: the hit and the answer agree on one instant.
HIT = text(
    """
    INSERT INTO rate_limits AS r (bucket, tat)
    VALUES (:bucket, now() + make_interval(secs => :interval))
    ON CONFLICT (bucket) DO UPDATE
        SET tat = greatest(r.tat, now()) + make_interval(secs => :interval)
        WHERE greatest(r.tat, now()) + make_interval(secs => :interval)
              <= now() + make_interval(secs => :period)
    RETURNING extract(epoch FROM tat - now())
    """
)
AHEAD = text(
    "SELECT extract(epoch FROM greatest(tat, now()) - now()) FROM rate_limits "
    "WHERE bucket = :bucket"
)
FORGET_DRAINED = text("DELETE FROM rate_limits WHERE tat < now()")


@dataclass(frozen=True)
class Limit:
    """``count`` requests per ``period_s`` seconds, all of them at once if need be."""

    count: int
    period_s: float

    @property
    def interval_s(self) -> float:
        return self.period_s / self.count


@dataclass(frozen=True)
class Decision:
    """What the bucket says: ``remaining`` requests now, ``reset_s`` until it is full
    again, and for a refusal ``retry_after_s`` until the next request fits."""

    allowed: bool
    limit: Limit
    remaining: int
    reset_s: float
    retry_after_s: float = 0.0

    @property
    def retry_after(self) -> str:
        """``Retry-After`` in whole seconds, never 0 for a refusal."""
        return str(max(1, math.ceil(self.retry_after_s)))


def _decision(limit: Limit, ahead_s: float, allowed: bool) -> Decision:
    """From how far the bucket's arrival time runs ahead of now (after this request)."""
    room = max(0.0, limit.period_s - ahead_s)
    remaining = min(limit.count, math.floor(room / limit.interval_s + 1e-9))
    retry = 0.0 if allowed else max(0.0, ahead_s + limit.interval_s - limit.period_s)
    return Decision(allowed, limit, remaining, max(0.0, ahead_s), retry)


async def hit(conn: AsyncConnection, bucket: str, limit: Limit) -> Decision:
    """Spend one request from ``bucket``; refused (nothing spent) when it is empty."""
    params = {"bucket": bucket, "interval": limit.interval_s, "period": limit.period_s}
    row = (await conn.execute(HIT, params)).first()
    if row is not None:
        return _decision(limit, float(row[0]), allowed=True)
    return await peek(conn, bucket, limit)


async def peek(conn: AsyncConnection, bucket: str, limit: Limit) -> Decision:
    """Whether one more request would fit, spending nothing."""
    row = (await conn.execute(AHEAD, {"bucket": bucket})).first()
    ahead = float(row[0]) if row is not None else 0.0
    return _decision(limit, ahead, allowed=ahead + limit.interval_s <= limit.period_s + 1e-9)


async def forget_drained(conn: AsyncConnection) -> int:
    """Drop buckets that are full again (they hold nothing a fresh row would not)."""
    return (await conn.execute(FORGET_DRAINED)).rowcount
