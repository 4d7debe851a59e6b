"""Points in time on the command line: ``10m`` ago (s, m, h, d) or an ISO 8601 timestamp."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

AGO = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class BadTime(ValueError):
    """Not a duration or a timestamp."""


def parse_when(text: str, *, now: datetime | None = None) -> datetime:
    """``10m`` (ten minutes ago), ``2h``, ``1d``, or ``2026-11-30T08:00:00`` (UTC unless
    it names its zone)."""
    now = now or datetime.now(UTC)
    value = text.strip()
    match = AGO.match(value)
    if match:
        amount, unit = float(match[1]), UNITS[match[2]]
        try:
            return now - timedelta(**{unit: amount})
        except OverflowError:
            raise BadTime(f"not a time: {text!r} is further back than year 1") from None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadTime(
            f"not a time: {text!r} (a duration ago like 10m, 2h, 1d, or an ISO 8601 timestamp)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def from_ms(stamp: int | None) -> str:
    """A Kafka timestamp as RFC 3339 UTC with milliseconds, or ``-`` when it has none."""
    if stamp is None:
        return "-"
    moment = datetime.fromtimestamp(stamp / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
