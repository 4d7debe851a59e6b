"""Hugging Face and Artificial Analysis: GET each one's pages and read them as ``SourceModel``s."""

from __future__ import annotations

from functools import partial
from typing import Any

import httpx

from schemas.models import SourceModel
from schemas.settings import Settings
from streams.domains.models.http import RequestPolicy, get_json
from streams.domains.models.readers import (
    FetchTally,
    SourceSkipped,
    as_count,
    as_date,
    as_number,
    as_object,
    as_slug,
    as_text,
    data_list,
    finish_tally,
    get_single_page,
    present_only,
    read_data_list,
    read_items,
    shape_error,
    usd_per_million,
)
from streams.sources.paginators import LinkHeaderPaginator, PageRequest, PaginationLoopError

HUGGINGFACE_PATH = "/api/models"
ARTIFICIALANALYSIS_PATH = "/api/v2/data/llms/models"
AA_KEY_MISSING = "ARTIFICIALANALYSIS_API_KEY not set; Artificial Analysis skipped"


# --- Hugging Face ----------------------------------------------------------------------------


def _huggingface_model(item: object) -> SourceModel:
    if not isinstance(item, dict):
        raise TypeError("model is not an object")
    repo_id = as_text(item.get("id")) or as_text(item.get("modelId"))
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
        release_date=as_date(item.get("createdAt")),
        open_weights=True,
        hugging_face_id=repo_id,
        extras=present_only(
            {
                "downloads": as_count(item.get("downloads")),
                "likes": as_count(item.get("likes")),
                "pipeline_tag": as_text(item.get("pipeline_tag")),
                "library_name": as_text(item.get("library_name")),
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
            raise shape_error(label, "a JSON array of models", response.document)
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
    return finish_tally(tally, read_items(tally, items))


# --- Artificial Analysis ---------------------------------------------------------------------


def _artificialanalysis_model(item: object) -> SourceModel:
    if not isinstance(item, dict):
        raise TypeError("model is not an object")
    aa_id, slug = as_text(item.get("id")), as_slug(item.get("slug"))
    creator = as_object(item.get("model_creator"))
    provider = as_slug(creator.get("slug"))
    if aa_id is None and slug is None:
        raise ValueError("neither 'id' nor 'slug'")
    pricing, evaluations = as_object(item.get("pricing")), as_object(item.get("evaluations"))
    return SourceModel(
        source="artificialanalysis",
        # AA asks clients to key on ``id``: names and slugs can change.
        source_id=aa_id or f"{provider}/{slug}",
        provider=provider,
        model=slug,
        name=as_text(item.get("name")),
        input_price=usd_per_million(pricing.get("price_1m_input_tokens")),
        output_price=usd_per_million(pricing.get("price_1m_output_tokens")),
        release_date=as_date(item.get("release_date")),
        extras=present_only(
            {
                "aa_id": aa_id,
                "aa_creator_id": as_text(creator.get("id")),
                "intelligence_index": as_number(
                    evaluations.get("artificial_analysis_intelligence_index")
                ),
                "coding_index": as_number(evaluations.get("artificial_analysis_coding_index")),
                "math_index": as_number(evaluations.get("artificial_analysis_math_index")),
                "blended_price": usd_per_million(pricing.get("price_1m_blended_3_to_1")),
                "median_output_tokens_per_second": as_number(
                    item.get("median_output_tokens_per_second")
                ),
                "median_time_to_first_token_seconds": as_number(
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
    document = await get_single_page(settings, client, tally, url, headers)
    return [data_list("artificialanalysis", document)]


def read_artificialanalysis(pages: list[Any], tally: FetchTally) -> list[SourceModel]:
    return read_data_list(pages, tally, _artificialanalysis_model)
