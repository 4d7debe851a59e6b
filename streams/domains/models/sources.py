"""The four model catalogues: fetch them in parallel, normalise to ``SourceModel``, report each.

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
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any

import httpx
from pydantic import ValidationError

from schemas.models import SOURCES, SourceModel, SourceName, SourceReport, SourceState
from schemas.settings import Settings
from streams.domains.models.http import RequestPolicy, SourceError, get_json
from streams.domains.models.state import DocumentDigest, SourcePart, input_fingerprint
from streams.sources.paginators import LinkHeaderPaginator, PageRequest, PaginationLoopError

log = logging.getLogger(__name__)

MODELSDEV_PATH = "/api.json"
OPENROUTER_PATH = "/api/v1/models"
HUGGINGFACE_PATH = "/api/models"
ARTIFICIALANALYSIS_PATH = "/api/v2/data/llms/models"
AA_KEY_MISSING = "ARTIFICIALANALYSIS_API_KEY not set; Artificial Analysis skipped"

MODELSDEV_CAPABILITIES = (
    "attachment",
    "reasoning",
    "structured_output",
    "temperature",
    "tool_call",
)
# OpenRouter ``supported_parameters`` that mean a models.dev capability.
OPENROUTER_CAPABILITIES = {
    "reasoning": "reasoning",
    "structured_outputs": "structured_output",
    "temperature": "temperature",
    "tools": "tool_call",
}
OPENROUTER_MODALITIES = {"file": "pdf"}
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


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _slug(value: object) -> str | None:
    text = _text(value)
    return text.lower() if text else None


def _count(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and value >= 0 else None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _usd_per_million(value: object, *, per_token: bool = False) -> float | None:
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


def _date(value: object) -> date | None:
    """``YYYY-MM-DD``, an ISO timestamp (its UTC-written day) or ``YYYY-MM`` (first of month)."""
    text = _text(value)
    if text is None:
        return None
    try:
        if len(text) == 7:
            return date.fromisoformat(f"{text}-01")
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def _unix_day(value: object) -> date | None:
    seconds = _number(value)
    if seconds is None or seconds <= 0:
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC).date()
    except (OverflowError, OSError, ValueError):
        return None


def _strings(value: object, rename: dict[str, str] | None = None) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    found: dict[str, None] = {}
    for item in value:
        if text := _slug(item):
            found[(rename or {}).get(text, text)] = None
    return tuple(found)


def _present(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _first_count(*values: object) -> int | None:
    for value in values:
        if (count := _count(value)) is not None:
            return count
    return None


def _read_items(
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


def _finish(tally: FetchTally, models: list[SourceModel]) -> list[SourceModel]:
    """Fail a source whose items were all unusable; drop repeated ids (HF pages can overlap)."""
    if not models and tally.skipped:
        raise SourceError(f"{tally.source}: all {tally.skipped} items are malformed")
    unique: dict[str, SourceModel] = {}
    for model in models:
        unique.setdefault(model.source_id, model)
    if len(unique) < len(models):
        tally.notes.append(f"{len(models) - len(unique)} repeated id(s) dropped")
    return list(unique.values())


def _shape_error(label: str, expected: str, document: object) -> SourceError:
    return SourceError(
        f"{label}: unexpected document: expected {expected}, got {type(document).__name__}"
    )


async def _get_single_page(
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


def _data_list(label: str, document: object) -> list[Any]:
    """``{"data": [item, ...]}``'s items."""
    items = _object(document).get("data")
    if not isinstance(items, list):
        raise _shape_error(label, "an object with a 'data' list", document)
    return items


# --- models.dev ------------------------------------------------------------------------------


def _modelsdev_model(provider_key: str, model_key: str, item: object) -> SourceModel:
    if not isinstance(item, dict):
        raise TypeError("model is not an object")
    provider, model = provider_key.strip().lower(), model_key.strip().lower()
    if not provider or not model:
        raise ValueError("empty provider or model key")
    limit, cost = _object(item.get("limit")), _object(item.get("cost"))
    modalities = _object(item.get("modalities"))
    released = _text(item.get("release_date"))
    release_date = _date(released)
    open_weights = item.get("open_weights")
    extras = _present(
        {
            "family": _text(item.get("family")),
            "knowledge": _text(item.get("knowledge")),
            "last_updated": _text(item.get("last_updated")),
            "release_date_raw": released if release_date and len(released or "") != 10 else None,
            "input_limit": _count(limit.get("input")),
            "cache_read_price": _usd_per_million(cost.get("cache_read")),
            "cache_write_price": _usd_per_million(cost.get("cache_write")),
            "price_tiers": cost.get("tiers") if isinstance(cost.get("tiers"), list) else None,
            "experimental": True if item.get("experimental") is True else None,
        }
    )
    return SourceModel(
        source="modelsdev",
        source_id=f"{provider_key}/{model_key}",
        provider=provider,
        model=model,
        name=_text(item.get("name")),
        context_length=_count(limit.get("context")),
        max_output=_count(limit.get("output")),
        input_price=_usd_per_million(cost.get("input")),
        output_price=_usd_per_million(cost.get("output")),
        input_modalities=_strings(modalities.get("input")),
        output_modalities=_strings(modalities.get("output")),
        capabilities=tuple(flag for flag in MODELSDEV_CAPABILITIES if item.get(flag) is True),
        release_date=release_date,
        open_weights=open_weights if isinstance(open_weights, bool) else None,
        status=_slug(item.get("status")),
        extras=extras,
    )


def _modelsdev_items(
    document: dict[str, Any], tally: FetchTally
) -> Iterable[tuple[str, Callable[[], SourceModel]]]:
    for provider_key, provider in document.items():
        models = _object(provider).get("models")
        if not isinstance(models, dict):
            tally.skip(f"provider {provider_key!r}", "no 'models' object")
            continue
        for model_key, item in models.items():
            yield (
                f"{provider_key}/{model_key}",
                partial(_modelsdev_model, provider_key, model_key, item),
            )


async def get_modelsdev(
    settings: Settings, client: httpx.AsyncClient, tally: FetchTally
) -> list[Any]:
    """models.dev ``/api.json``: an object of providers, each with an object of models."""
    url = settings.modelsdev_base_url.rstrip("/") + MODELSDEV_PATH
    document = await _get_single_page(settings, client, tally, url)
    if not isinstance(document, dict):
        raise _shape_error("modelsdev", "an object of providers", document)
    return [document]


def read_modelsdev(pages: list[Any], tally: FetchTally) -> list[SourceModel]:
    return _finish(tally, _read_items(tally, _modelsdev_items(pages[0], tally)))


# --- OpenRouter ------------------------------------------------------------------------------


def _openrouter_modalities(architecture: dict[str, Any]) -> tuple[tuple[str, ...], ...]:
    inputs = _strings(architecture.get("input_modalities"), OPENROUTER_MODALITIES)
    outputs = _strings(architecture.get("output_modalities"), OPENROUTER_MODALITIES)
    if not inputs and not outputs and (summary := _text(architecture.get("modality"))):
        # Older entries only have the summary "text+image->text".
        left, _, right = summary.partition("->")
        inputs = _strings(left.split("+"), OPENROUTER_MODALITIES)
        outputs = _strings(right.split("+"), OPENROUTER_MODALITIES)
    return inputs, outputs


def _openrouter_model(item: object) -> SourceModel:
    if not isinstance(item, dict):
        raise TypeError("model is not an object")
    source_id = _text(item.get("id"))
    if source_id is None:
        raise ValueError("no 'id'")
    provider, slash, rest = source_id.lower().partition("/")
    model, _, variant = rest.partition(":")
    if not slash or not provider or not model:
        raise ValueError(f"id {source_id!r} is not 'provider/model'")
    canonical = _slug(item.get("canonical_slug"))
    pricing, top = _object(item.get("pricing")), _object(item.get("top_provider"))
    inputs, outputs = _openrouter_modalities(_object(item.get("architecture")))
    parameters = _strings(item.get("supported_parameters"))
    created = _number(item.get("created"))
    extras = _present(
        {
            "variant": variant or None,
            "created": int(created) if created is not None else None,
            "knowledge_cutoff": _text(item.get("knowledge_cutoff")),
            "expiration_date": _text(item.get("expiration_date")),
            "cache_read_price": _usd_per_million(pricing.get("input_cache_read"), per_token=True),
            "cache_write_price": _usd_per_million(pricing.get("input_cache_write"), per_token=True),
            "reasoning_price": _usd_per_million(pricing.get("internal_reasoning"), per_token=True),
        }
    )
    return SourceModel(
        source="openrouter",
        source_id=source_id,
        provider=provider,
        model=model,
        name=_text(item.get("name")),
        context_length=_first_count(top.get("context_length"), item.get("context_length")),
        max_output=_count(top.get("max_completion_tokens")),
        input_price=_usd_per_million(pricing.get("prompt"), per_token=True),
        output_price=_usd_per_million(pricing.get("completion"), per_token=True),
        input_modalities=inputs,
        output_modalities=outputs,
        capabilities=tuple(
            sorted({OPENROUTER_CAPABILITIES[p] for p in parameters if p in OPENROUTER_CAPABILITIES})
        ),
        release_date=_unix_day(created),
        hugging_face_id=_text(item.get("hugging_face_id")),
        aliases=(canonical,) if canonical and canonical != f"{provider}/{model}" else (),
        extras=extras,
    )


async def get_openrouter(
    settings: Settings, client: httpx.AsyncClient, tally: FetchTally
) -> list[Any]:
    """OpenRouter ``/api/v1/models`` (no key needed): ``{"data": [model, ...]}``."""
    url = settings.openrouter_base_url.rstrip("/") + OPENROUTER_PATH
    return [_data_list("openrouter", await _get_single_page(settings, client, tally, url))]


def read_openrouter(pages: list[Any], tally: FetchTally) -> list[SourceModel]:
    items = pages[0]
    return _finish(
        tally,
        _read_items(
            tally,
            ((f"data[{n}]", partial(_openrouter_model, item)) for n, item in enumerate(items)),
        ),
    )


# --- Hugging Face ----------------------------------------------------------------------------


def _huggingface_model(item: object) -> SourceModel:
    if not isinstance(item, dict):
        raise TypeError("model is not an object")
    repo_id = _text(item.get("id")) or _text(item.get("modelId"))
    if repo_id is None:
        raise ValueError("no 'id'")
    owner, slash, repo_name = repo_id.partition("/")
    if not slash:  # legacy repos without an owner, e.g. "gpt2"
        owner, repo_name = "", repo_id
    raw_tags = item.get("tags")
    tags = [tag for tag in raw_tags if isinstance(tag, str)] if isinstance(raw_tags, list) else []
    license_name = next((tag.partition(":")[2] for tag in tags if tag.startswith("license:")), "")
    return SourceModel(
        source="huggingface",
        source_id=repo_id,
        provider=owner.lower() or None,
        model=repo_name.lower(),
        name=repo_name,
        release_date=_date(item.get("createdAt")),
        open_weights=True,
        hugging_face_id=repo_id,
        extras=_present(
            {
                "downloads": _count(item.get("downloads")),
                "likes": _count(item.get("likes")),
                "pipeline_tag": _text(item.get("pipeline_tag")),
                "library_name": _text(item.get("library_name")),
                "license": license_name or None,
            }
        ),
    )


def _huggingface_params(settings: Settings) -> dict[str, str | int]:
    wanted: dict[str, str | int | None] = {
        "search": settings.huggingface_search,
        "filter": settings.huggingface_filter,
        "sort": settings.huggingface_sort,
        "limit": settings.huggingface_page_size,
    }
    return {name: value for name, value in wanted.items() if value not in (None, "")}


def _same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


async def get_huggingface(
    settings: Settings, client: httpx.AsyncClient, tally: FetchTally
) -> list[Any]:
    """Hugging Face ``/api/models``: pages of bare arrays, chained by ``Link: rel="next"``.

    Reads at most ``HUGGINGFACE_MAX_PAGES`` pages and notes in the tally when that cut it short.
    A page that fails fails the whole source: a partial list would look like removed models.
    """
    policy = RequestPolicy.from_settings(settings)
    first_url = settings.huggingface_base_url.rstrip("/") + HUGGINGFACE_PATH
    origin = httpx.URL(first_url)
    auth = {"Authorization": f"Bearer {settings.huggingface_token}"}
    paginator = LinkHeaderPaginator()
    request: PageRequest | None = PageRequest(
        first_url, tuple(_huggingface_params(settings).items())
    )
    pages: list[Any] = []
    while request is not None:
        page = tally.pages + 1
        label = "huggingface" if page == 1 else f"huggingface (page {page})"
        # The token goes only to the configured origin, wherever a next link points.
        send_token = settings.huggingface_token and _same_origin(httpx.URL(request.url), origin)
        response = await get_json(
            client,
            request.url,
            label=label,
            policy=policy,
            params=request.params or None,
            headers=auth if send_token else None,
        )
        tally.pages = page
        tally.digest.add(response.document)
        if not isinstance(response.document, list):
            raise _shape_error(label, "a JSON array of models", response.document)
        pages.append(response.document)
        try:
            request = paginator.next_request(request, response)
        except PaginationLoopError:
            tally.notes.append(f"page {page} linked back to an earlier page; stopped there")
            request = None
        if request is not None and page >= settings.huggingface_max_pages:
            tally.notes.append(
                f"stopped at HUGGINGFACE_MAX_PAGES={settings.huggingface_max_pages};"
                " more pages were available"
            )
            request = None
    return pages


def read_huggingface(pages: list[Any], tally: FetchTally) -> list[SourceModel]:
    items = (
        (f"page {page} [{n}]", partial(_huggingface_model, item))
        for page, document in enumerate(pages, start=1)
        for n, item in enumerate(document)
    )
    return _finish(tally, _read_items(tally, items))


# --- Artificial Analysis ---------------------------------------------------------------------


def _artificialanalysis_model(item: object) -> SourceModel:
    if not isinstance(item, dict):
        raise TypeError("model is not an object")
    aa_id, slug = _text(item.get("id")), _slug(item.get("slug"))
    creator = _object(item.get("model_creator"))
    provider = _slug(creator.get("slug"))
    if aa_id is None and slug is None:
        raise ValueError("neither 'id' nor 'slug'")
    pricing, evaluations = _object(item.get("pricing")), _object(item.get("evaluations"))
    return SourceModel(
        source="artificialanalysis",
        # AA asks clients to key on ``id``: names and slugs can change.
        source_id=aa_id or f"{provider}/{slug}",
        provider=provider,
        model=slug,
        name=_text(item.get("name")),
        input_price=_usd_per_million(pricing.get("price_1m_input_tokens")),
        output_price=_usd_per_million(pricing.get("price_1m_output_tokens")),
        release_date=_date(item.get("release_date")),
        extras=_present(
            {
                "aa_id": aa_id,
                "aa_creator_id": _text(creator.get("id")),
                "intelligence_index": _number(
                    evaluations.get("artificial_analysis_intelligence_index")
                ),
                "coding_index": _number(evaluations.get("artificial_analysis_coding_index")),
                "math_index": _number(evaluations.get("artificial_analysis_math_index")),
                "blended_price": _usd_per_million(pricing.get("price_1m_blended_3_to_1")),
                "median_output_tokens_per_second": _number(
                    item.get("median_output_tokens_per_second")
                ),
                "median_time_to_first_token_seconds": _number(
                    item.get("median_time_to_first_token_seconds")
                ),
            }
        ),
    )


async def get_artificialanalysis(
    settings: Settings, client: httpx.AsyncClient, tally: FetchTally
) -> list[Any]:
    """Artificial Analysis ``/api/v2/data/llms/models`` with ``x-api-key``.

    Raises ``SourceSkipped`` when ``ARTIFICIALANALYSIS_API_KEY`` is not set.
    """
    if not settings.artificialanalysis_api_key:
        raise SourceSkipped(AA_KEY_MISSING)
    url = settings.artificialanalysis_base_url.rstrip("/") + ARTIFICIALANALYSIS_PATH
    headers = {"x-api-key": settings.artificialanalysis_api_key}
    document = await _get_single_page(settings, client, tally, url, headers)
    return [_data_list("artificialanalysis", document)]


def read_artificialanalysis(pages: list[Any], tally: FetchTally) -> list[SourceModel]:
    items = pages[0]
    return _finish(
        tally,
        _read_items(
            tally,
            (
                (f"data[{n}]", partial(_artificialanalysis_model, item))
                for n, item in enumerate(items)
            ),
        ),
    )


# --- all together ----------------------------------------------------------------------------


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
