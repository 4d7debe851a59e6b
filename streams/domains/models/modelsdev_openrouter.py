"""models.dev and OpenRouter: GET each catalogue's document and read it as ``SourceModel``s."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

import httpx

from schemas.models import SourceModel
from schemas.settings import Settings
from streams.domains.models.readers import (
    FetchTally,
    as_count,
    as_date,
    as_number,
    as_object,
    as_slug,
    as_strings,
    as_text,
    as_unix_day,
    data_list,
    finish_tally,
    first_count,
    get_single_page,
    present_only,
    read_data_list,
    read_items,
    shape_error,
    usd_per_million,
)

MODELSDEV_PATH = "/api.json"
OPENROUTER_PATH = "/api/v1/models"

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


# --- models.dev ------------------------------------------------------------------------------


def _modelsdev_model(provider_key: str, model_key: str, item: object) -> SourceModel:
    if not isinstance(item, dict):
        raise TypeError("model is not an object")
    provider, model = provider_key.strip().lower(), model_key.strip().lower()
    if not provider or not model:
        raise ValueError("empty provider or model key")
    limit, cost = as_object(item.get("limit")), as_object(item.get("cost"))
    modalities = as_object(item.get("modalities"))
    released = as_text(item.get("release_date"))
    release_date = as_date(released)
    open_weights = item.get("open_weights")
    extras = present_only(
        {
            "family": as_text(item.get("family")),
            "knowledge": as_text(item.get("knowledge")),
            "last_updated": as_text(item.get("last_updated")),
            "release_date_raw": released if release_date and len(released or "") != 10 else None,
            "input_limit": as_count(limit.get("input")),
            "cache_read_price": usd_per_million(cost.get("cache_read")),
            "cache_write_price": usd_per_million(cost.get("cache_write")),
            "price_tiers": cost.get("tiers") if isinstance(cost.get("tiers"), list) else None,
            "experimental": True if item.get("experimental") is True else None,
        }
    )
    return SourceModel(
        source="modelsdev",
        source_id=f"{provider_key}/{model_key}",
        provider=provider,
        model=model,
        name=as_text(item.get("name")),
        context_length=as_count(limit.get("context")),
        max_output=as_count(limit.get("output")),
        input_price=usd_per_million(cost.get("input")),
        output_price=usd_per_million(cost.get("output")),
        input_modalities=as_strings(modalities.get("input")),
        output_modalities=as_strings(modalities.get("output")),
        capabilities=tuple(flag for flag in MODELSDEV_CAPABILITIES if item.get(flag) is True),
        release_date=release_date,
        open_weights=open_weights if isinstance(open_weights, bool) else None,
        status=as_slug(item.get("status")),
        extras=extras,
    )


def _modelsdev_items(
    document: dict[str, Any], tally: FetchTally
) -> Iterable[tuple[str, Callable[[], SourceModel]]]:
    for provider_key, provider in document.items():
        models = as_object(provider).get("models")
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
    document = await get_single_page(settings, client, tally, url)
    if not isinstance(document, dict):
        raise shape_error("modelsdev", "an object of providers", document)
    return [document]


def read_modelsdev(pages: list[Any], tally: FetchTally) -> list[SourceModel]:
    return finish_tally(tally, read_items(tally, _modelsdev_items(pages[0], tally)))


# --- OpenRouter ------------------------------------------------------------------------------


def _openrouter_modalities(architecture: dict[str, Any]) -> tuple[tuple[str, ...], ...]:
    inputs = as_strings(architecture.get("input_modalities"), OPENROUTER_MODALITIES)
    outputs = as_strings(architecture.get("output_modalities"), OPENROUTER_MODALITIES)
    if not inputs and not outputs and (summary := as_text(architecture.get("modality"))):
        # Older entries only have the summary "text+image->text".
        left, _, right = summary.partition("->")
        inputs = as_strings(left.split("+"), OPENROUTER_MODALITIES)
        outputs = as_strings(right.split("+"), OPENROUTER_MODALITIES)
    return inputs, outputs


def _openrouter_model(item: object) -> SourceModel:
    if not isinstance(item, dict):
        raise TypeError("model is not an object")
    source_id = as_text(item.get("id"))
    if source_id is None:
        raise ValueError("no 'id'")
    provider, slash, rest = source_id.lower().partition("/")
    model, _, variant = rest.partition(":")
    if not slash or not provider or not model:
        raise ValueError(f"id {source_id!r} is not 'provider/model'")
    canonical = as_slug(item.get("canonical_slug"))
    pricing, top = as_object(item.get("pricing")), as_object(item.get("top_provider"))
    inputs, outputs = _openrouter_modalities(as_object(item.get("architecture")))
    parameters = as_strings(item.get("supported_parameters"))
    created = as_number(item.get("created"))
    extras = present_only(
        {
            "variant": variant or None,
            "created": int(created) if created is not None else None,
            "knowledge_cutoff": as_text(item.get("knowledge_cutoff")),
            "expiration_date": as_text(item.get("expiration_date")),
            "cache_read_price": usd_per_million(pricing.get("input_cache_read"), per_token=True),
            "cache_write_price": usd_per_million(pricing.get("input_cache_write"), per_token=True),
            "reasoning_price": usd_per_million(pricing.get("internal_reasoning"), per_token=True),
        }
    )
    return SourceModel(
        source="openrouter",
        source_id=source_id,
        provider=provider,
        model=model,
        name=as_text(item.get("name")),
        context_length=first_count(top.get("context_length"), item.get("context_length")),
        max_output=as_count(top.get("max_completion_tokens")),
        input_price=usd_per_million(pricing.get("prompt"), per_token=True),
        output_price=usd_per_million(pricing.get("completion"), per_token=True),
        input_modalities=inputs,
        output_modalities=outputs,
        capabilities=tuple(
            sorted({OPENROUTER_CAPABILITIES[p] for p in parameters if p in OPENROUTER_CAPABILITIES})
        ),
        release_date=as_unix_day(created),
        hugging_face_id=as_text(item.get("hugging_face_id")),
        aliases=(canonical,) if canonical and canonical != f"{provider}/{model}" else (),
        extras=extras,
    )


async def get_openrouter(
    settings: Settings, client: httpx.AsyncClient, tally: FetchTally
) -> list[Any]:
    """OpenRouter ``/api/v1/models`` (no key needed): ``{"data": [model, ...]}``."""
    url = settings.openrouter_base_url.rstrip("/") + OPENROUTER_PATH
    return [data_list("openrouter", await get_single_page(settings, client, tally, url))]


def read_openrouter(pages: list[Any], tally: FetchTally) -> list[SourceModel]:
    return read_data_list(pages, tally, _openrouter_model)
