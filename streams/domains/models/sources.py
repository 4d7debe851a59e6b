"""The four model catalogues: fetch them in parallel, normalise to ``SourceModel``, report each.

Each source's GET and reading live in ``modelsdev_openrouter`` and
``huggingface_artificialanalysis``; what they share (value readers, ``FetchTally``) in ``readers``.

Normalisation (what a merger can rely on):

- ``provider``/``model`` are lower-case slugs; ``source_id`` is the source's own id, unchanged.
- Prices are USD per 1M tokens, rounded to 6 decimals; a negative price (OpenRouter's "-1",
  "decided per request") is no price.
- Modalities are lower-case, with OpenRouter's ``file`` renamed ``pdf`` as models.dev says it.
- Capabilities use models.dev's words (``attachment``, ``reasoning``, ``structured_output``,
  ``temperature``, ``tool_call``), sorted.
- OpenRouter ``id`` ``provider/model[:variant]``: ``model`` is without the variant, which stays in
  ``source_id`` and ``extras["variant"]``; ``canonical_slug`` (when it differs) goes to ``aliases``.
  Its ``release_date`` is the day OpenRouter listed the model (``created``, also kept in extras as
  unix seconds): a merger should prefer any other source's date.
- A models.dev ``YYYY-MM`` date becomes the first of that month (raw value in extras).

Fields missing or of the wrong type are left empty. An item that cannot be a model at all (not an
object, no id) is skipped and counted in the report; a document of the wrong shape, or one whose
items are all unusable, fails that source only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from schemas.models import SOURCES, SourceModel, SourceName, SourceReport, SourceState
from schemas.settings import Settings
from streams.domains.models.http import SourceError
from streams.domains.models.huggingface_artificialanalysis import (
    AA_KEY_MISSING,
    get_artificialanalysis,
    get_huggingface,
    read_artificialanalysis,
    read_huggingface,
)
from streams.domains.models.modelsdev_openrouter import (
    get_modelsdev,
    get_openrouter,
    read_modelsdev,
    read_openrouter,
)
from streams.domains.models.readers import FetchTally, SourceSkipped
from streams.domains.models.state import SourcePart, input_fingerprint

__all__ = [
    "AA_KEY_MISSING",
    "Answer",
    "Answers",
    "SourceApi",
    "all_failed_message",
    "fetch_all",
    "fetch_answers",
    "read_answers",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceApi:
    """How one source is read: GET its pages (no parsing beyond their shape), then read them."""

    get: Callable[[Settings, httpx.AsyncClient, FetchTally], Awaitable[list[Any]]]
    read: Callable[[list[Any], FetchTally], list[SourceModel]]


SOURCE_APIS: dict[SourceName, SourceApi] = {
    "modelsdev": SourceApi(get_modelsdev, read_modelsdev),
    "openrouter": SourceApi(get_openrouter, read_openrouter),
    "huggingface": SourceApi(get_huggingface, read_huggingface),
    "artificialanalysis": SourceApi(get_artificialanalysis, read_artificialanalysis),
}


@dataclass
class Answer:
    """What one source answered: its pages, or (``failure``) the report of why there are none."""

    source: SourceName
    tally: FetchTally
    pages: list[Any]
    fetch_ms: int
    failure: SourceReport | None = None

    def report(
        self, state: SourceState, message: str | None, models: int = 0, extra_ms: int = 0
    ) -> SourceReport:
        return SourceReport(
            source=self.source,
            state=state,
            models=models,
            pages=self.tally.pages,
            duration_ms=self.fetch_ms + extra_ms,
            message=message,
        )


@dataclass
class Answers:
    """Every source's answer in ``SOURCES`` order, and one hash of them all (``state``)."""

    answers: list[Answer]
    fingerprint: str

    def reports_as(self, previous: Sequence[Mapping[str, Any]]) -> list[SourceReport] | None:
        """The reports ``read_answers`` would give, from those of a sync that read these very
        answers (equal fingerprints); None when one is missing. Timings are this fetch's."""
        stored = {r.get("source"): r for r in previous}
        reports: list[SourceReport] = []
        for answer in self.answers:
            if answer.failure is not None:
                reports.append(answer.failure)
                continue
            before = stored.get(answer.source)
            if before is None or before.get("state") not in ("ok", "failed"):
                return None
            try:
                models = int(before.get("models") or 0)
            except (TypeError, ValueError):
                return None
            message = before.get("message")
            state: SourceState = "ok" if before["state"] == "ok" else "failed"
            reports.append(
                answer.report(state, message if isinstance(message, str) else None, models)
            )
        return reports

    def unread_reports(self) -> list[SourceReport] | None:
        """The reports when no source answered at all (nothing to read), else None."""
        if any(a.failure is None for a in self.answers):
            return None
        return [a.failure for a in self.answers if a.failure is not None]


def _failure(answer: Answer, exc: Exception) -> SourceReport:
    source = answer.source
    if isinstance(exc, SourceSkipped):
        log.warning("%s", exc)
        state: SourceState = "skipped"
        message = str(exc)
    elif isinstance(exc, SourceError):
        log.warning("model source failed: %s", exc)
        state, message = "failed", str(exc)
    else:
        log.error("%s: unexpected error", source, exc_info=exc)
        state, message = "failed", f"{source}: unexpected error: {exc!r}"
    return answer.report(state, message)


async def _fetch_answer(
    source: SourceName, settings: Settings, client: httpx.AsyncClient
) -> Answer:
    answer = Answer(source, FetchTally(source), [], 0)
    started = time.monotonic()
    failed: Exception | None = None
    try:
        answer.pages = await SOURCE_APIS[source].get(settings, client, answer.tally)
    except Exception as exc:
        failed = exc
    answer.fetch_ms = round((time.monotonic() - started) * 1000)
    if failed is not None:
        answer.failure = _failure(answer, failed)
    return answer


async def fetch_answers(settings: Settings, client: httpx.AsyncClient) -> Answers:
    """GET every source at once; one failing never stops the others. Nothing is parsed beyond
    JSON: ``read_answers`` does that, and is not needed when the fingerprint says the
    answers are those the last sync read."""
    answers = await asyncio.gather(*(_fetch_answer(s, settings, client) for s in SOURCES))
    parts = [
        SourcePart(a.source, a.failure.state if a.failure else "ok", a.tally.digest, a.tally.notes)
        for a in answers
    ]
    return Answers(list(answers), input_fingerprint(parts))


def _read_answer(answer: Answer) -> tuple[list[SourceModel], SourceReport]:
    if answer.failure is not None:
        return [], answer.failure
    started = time.monotonic()
    try:
        models = SOURCE_APIS[answer.source].read(answer.pages, answer.tally)
    except Exception as exc:
        return [], _failure(answer, exc)
    log.info("%s: %d models", answer.source, len(models))
    read_ms = round((time.monotonic() - started) * 1000)
    return models, answer.report("ok", answer.tally.message(), len(models), read_ms)


def read_answers(answers: Answers) -> tuple[list[SourceModel], list[SourceReport]]:
    """Normalise every answer: the models of the sources that succeeded, and one report per
    source (``SOURCES`` order). Whether the sync as a whole failed is ``all_failed_message``."""
    read = [_read_answer(a) for a in answers.answers]
    return [m for models, _ in read for m in models], [report for _, report in read]


async def fetch_all(
    settings: Settings, client: httpx.AsyncClient
) -> tuple[list[SourceModel], list[SourceReport]]:
    """``fetch_answers`` then ``read_answers``."""
    return read_answers(await fetch_answers(settings, client))


def all_failed_message(reports: Sequence[SourceReport]) -> str | None:
    """The job's error message when no source succeeded (skipped ones included), else None."""
    if any(report.state == "ok" for report in reports):
        return None
    details = "; ".join(report.message or f"{report.source}: {report.state}" for report in reports)
    return f"no model source succeeded: {details}"
