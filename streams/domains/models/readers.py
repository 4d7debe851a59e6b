"""What every catalogue source shares: defensive value readers, the fetch tally, item reading."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any

import httpx
from pydantic import ValidationError

from schemas.models import SourceModel, SourceName
from schemas.settings import Settings
from streams.domains.models.http import RequestPolicy, SourceError, get_json
from streams.domains.models.state import DocumentDigest

log = logging.getLogger(__name__)

LOGGED_SKIPS_PER_SOURCE = 3
# Reasons an item is unusable, as raised while reading it (including by SourceModel itself).
_ITEM_ERRORS = (ValidationError, ValueError, TypeError, KeyError, AttributeError)


class SourceSkipped(Exception):
    """A source that is deliberately not read (e.g. no API key); ``str()`` says why."""


@dataclass
class FetchTally:
    """What one fetch saw besides its models: pages read (and a hash of them), items skipped,
    notes for the report."""

    source: SourceName
    pages: int = 0
    skipped: int = 0
    notes: list[str] = field(default_factory=list)
    digest: DocumentDigest = field(default_factory=DocumentDigest)

    def skip(self, where: str, reason: object) -> None:
        self.skipped += 1
        if self.skipped <= LOGGED_SKIPS_PER_SOURCE:
            log.warning("%s: skipped malformed item %s: %s", self.source, where, reason)

    def message(self) -> str | None:
        parts = list(self.notes)
        if self.skipped:
            parts.insert(0, f"{self.skipped} malformed item(s) skipped")
        return "; ".join(parts) or None


# --- defensive readers: the wrong type reads as missing -------------------------------------


def as_object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_text(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def as_slug(value: object) -> str | None:
    text = as_text(value)
    return text.lower() if text else None


def as_count(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and value >= 0 else None


def as_number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def usd_per_million(value: object, *, per_token: bool = False) -> float | None:
    """A price as USD per 1M tokens; numbers or numeric strings, negative means none."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    if not amount.is_finite() or amount < 0:
        return None
    if per_token:
        amount *= 1_000_000
    return round(float(amount), 6)


def as_date(value: object) -> date | None:
    """``YYYY-MM-DD``, an ISO timestamp (its UTC-written day) or ``YYYY-MM`` (first of month)."""
    text = as_text(value)
    if text is None:
        return None
    try:
        if len(text) == 7:
            return date.fromisoformat(f"{text}-01")
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def as_unix_day(value: object) -> date | None:
    seconds = as_number(value)
    if seconds is None or seconds <= 0:
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC).date()
    except (OverflowError, OSError, ValueError):
        return None


def as_strings(value: object, rename: dict[str, str] | None = None) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    found: dict[str, None] = {}
    for item in value:
        if text := as_slug(item):
            found[(rename or {}).get(text, text)] = None
    return tuple(found)


def present_only(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def first_count(*values: object) -> int | None:
    for value in values:
        if (count := as_count(value)) is not None:
            return count
    return None


def read_items(
    tally: FetchTally,
    items: Iterable[tuple[str, Callable[[], SourceModel]]],
) -> list[SourceModel]:
    """Build each item, skipping (and counting) the unusable ones."""
    models: list[SourceModel] = []
    for where, build in items:
        try:
            models.append(build())
        except _ITEM_ERRORS as exc:
            tally.skip(where, exc)
    return models


def finish_tally(tally: FetchTally, models: list[SourceModel]) -> list[SourceModel]:
    """Fail a source whose items were all unusable; drop repeated ids (HF pages can overlap)."""
    if not models and tally.skipped:
        raise SourceError(f"{tally.source}: all {tally.skipped} items are malformed")
    unique: dict[str, SourceModel] = {}
    for model in models:
        unique.setdefault(model.source_id, model)
    if len(unique) < len(models):
        tally.notes.append(f"{len(models) - len(unique)} repeated id(s) dropped")
    return list(unique.values())


def shape_error(label: str, expected: str, document: object) -> SourceError:
    return SourceError(
        f"{label}: unexpected document: expected {expected}, got {type(document).__name__}"
    )


async def get_single_page(
    settings: Settings,
    client: httpx.AsyncClient,
    tally: FetchTally,
    url: str,
    headers: dict[str, str] | None = None,
) -> Any:
    """The document of a source that answers in one page."""
    response = await get_json(
        client,
        url,
        label=tally.source,
        policy=RequestPolicy.from_settings(settings),
        headers=headers,
    )
    tally.pages = 1
    tally.digest.add(response.document)
    return response.document


def data_list(label: str, document: object) -> list[Any]:
    """``{"data": [item, ...]}``'s items."""
    items = as_object(document).get("data")
    if not isinstance(items, list):
        raise shape_error(label, "an object with a 'data' list", document)
    return items


def read_data_list(
    pages: list[Any], tally: FetchTally, build: Callable[[object], SourceModel]
) -> list[SourceModel]:
    """A one-page ``{"data": [item, ...]}`` source's models: ``build`` of each item."""
    items = ((f"data[{n}]", partial(build, item)) for n, item in enumerate(pages[0]))
    return finish_tally(tally, read_items(tally, items))
