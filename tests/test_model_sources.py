"""The four model sources through the real client against a fake speaking each API's format."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, date, datetime

import httpx
import pytest

from schemas.models import SourceModel, SourceName, SourceReport
from schemas.settings import Settings
from streams.domains.models.http import (
    new_client,
    ratelimit_reset_seconds,
    retry_after_seconds,
)
from streams.domains.models.sources import AA_KEY_MISSING, all_failed_message, fetch_all
from tests.fake_catalogues import (
    AA_API_KEY,
    HF_PAGE2_CURSOR,
    PATHS,
    FakeCatalogues,
    unreachable_base_url,
)

Result = tuple[list[SourceModel], list[SourceReport]]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeCatalogues]:
    with FakeCatalogues() as running:
        yield running


@pytest.fixture
def fake(server: FakeCatalogues) -> FakeCatalogues:
    server.reset()
    return server


def settings_for(fake: FakeCatalogues, **overrides: object) -> Settings:
    """Exactly these values: neither the environment nor a .env file is read."""
    values: dict[str, object] = {
        **fake.settings_env(),
        "HUGGINGFACE_FILTER": "text-generation",
        "HUGGINGFACE_SORT": "downloads",
        "HUGGINGFACE_MAX_PAGES": 10,
        "MODELS_SOURCE_TIMEOUT_S": 2.0,
        "MODELS_SOURCE_RETRIES": 2,
        "MODELS_SOURCE_MAX_RETRY_WAIT_S": 0.05,
        **overrides,
    }
    return Settings.model_validate(values)


def sync(settings: Settings) -> Result:
    async def run() -> Result:
        async with new_client(settings) as client:
            return await fetch_all(settings, client)

    return asyncio.run(run())


def reports_by_source(reports: list[SourceReport]) -> dict[str, SourceReport]:
    return {report.source: report for report in reports}


def one(models: list[SourceModel], source: str, source_id: str) -> SourceModel:
    found = [m for m in models if m.source == source and m.source_id == source_id]
    assert len(found) == 1, f"{source} {source_id}: {found}"
    return found[0]


def gap_between_requests(fake: FakeCatalogues, source: SourceName) -> float:
    first, second = fake.requests(source)[:2]
    return second.at - first.at


def test_all_four_sources_parse_from_the_fixtures(fake: FakeCatalogues) -> None:
    models, reports = sync(settings_for(fake))

    assert [(r.source, r.state, r.models, r.pages, r.message) for r in reports] == [
        ("modelsdev", "ok", 8, 1, None),
        ("openrouter", "ok", 6, 1, None),
        ("huggingface", "ok", 6, 2, None),
        ("artificialanalysis", "ok", 5, 1, None),
    ]
    assert all_failed_message(reports) is None

    gpt41 = one(models, "openrouter", "openai/gpt-4.1")
    assert (gpt41.provider, gpt41.model, gpt41.name) == ("openai", "gpt-4.1", "OpenAI: GPT-4.1")
    assert (gpt41.input_price, gpt41.output_price) == (2.0, 8.0)
    assert gpt41.input_modalities == ("image", "text", "pdf")
    assert (gpt41.context_length, gpt41.max_output) == (1047576, None)
    assert gpt41.aliases == ("openai/gpt-4.1-2025-04-14",)
    assert gpt41.hugging_face_id is None  # "" in the payload
    assert gpt41.release_date == date(2025, 4, 14)
    assert gpt41.capabilities == ("structured_output", "temperature", "tool_call")
    assert gpt41.extras["created"] == 1744651385
    mini = one(models, "openrouter", "openai/gpt-4o-mini")
    assert (mini.input_price, mini.output_price) == (0.15, 0.6)
    assert mini.extras["cache_read_price"] == 0.075

    free = one(models, "openrouter", "meta-llama/llama-3.3-70b-instruct:free")
    assert (free.provider, free.model) == ("meta-llama", "llama-3.3-70b-instruct")
    assert (free.input_price, free.output_price) == (0.0, 0.0)
    assert free.extras["variant"] == "free"
    assert (free.context_length, free.max_output) == (65536, None)
    assert free.hugging_face_id == "meta-llama/Llama-3.3-70B-Instruct"
    assert free.aliases == ()  # canonical_slug is the base id
    paid = one(models, "openrouter", "meta-llama/llama-3.3-70b-instruct")
    assert (paid.input_price, paid.output_price, paid.max_output) == (0.1, 0.32, 16384)
    assert "variant" not in paid.extras

    hf = [m for m in models if m.source == "huggingface"]
    assert [m.extras["downloads"] for m in hf] == sorted(
        (m.extras["downloads"] for m in hf), reverse=True
    )
    llama = one(models, "huggingface", "meta-llama/Llama-3.3-70B-Instruct")
    assert (llama.provider, llama.model, llama.name) == (
        "meta-llama",
        "llama-3.3-70b-instruct",
        "Llama-3.3-70B-Instruct",
    )
    assert llama.hugging_face_id == "meta-llama/Llama-3.3-70B-Instruct"
    assert (llama.open_weights, llama.release_date) == (True, date(2024, 11, 26))
    assert llama.extras == {
        "downloads": 655120,
        "likes": 2543,
        "pipeline_tag": "text-generation",
        "library_name": "transformers",
        "license": "llama3.3",
    }
    assert one(models, "huggingface", "TinyLlama/TinyLlama-1.1B-Chat-v1.0").provider == "tinyllama"

    aa = one(models, "artificialanalysis", "9a86edc4-56c7-4503-8f38-79c37386c046")
    assert (aa.provider, aa.model, aa.name) == ("openai", "gpt-4-1", "GPT-4.1")
    assert (aa.input_price, aa.output_price, aa.release_date) == (2.0, 8.0, date(2025, 4, 14))
    assert aa.extras["intelligence_index"] == 43.4
    assert aa.extras["coding_index"] == 22.6
    assert aa.extras["median_output_tokens_per_second"] == 97.612
    assert aa.extras["aa_id"] == aa.source_id

    sonnet37 = one(models, "modelsdev", "anthropic/claude-3-7-sonnet-20250219")
    assert sonnet37.status == "deprecated"
    pro = one(models, "modelsdev", "google/gemini-2.5-pro")
    assert (pro.input_price, pro.output_price, pro.context_length, pro.max_output) == (
        1.25,
        10.0,
        1048576,
        65536,
    )
    assert pro.capabilities == (
        "attachment",
        "reasoning",
        "structured_output",
        "temperature",
        "tool_call",
    )
    assert pro.input_modalities == ("text", "image", "audio", "video", "pdf")
    assert (pro.open_weights, pro.release_date) == (False, date(2025, 6, 17))
    assert one(models, "modelsdev", "openai/gpt-5").extras["input_limit"] == 272000


def test_requests_are_the_documented_ones(fake: FakeCatalogues) -> None:
    sync(settings_for(fake, HUGGINGFACE_TOKEN="hf_test"))

    first, second = fake.requests("huggingface")
    assert first.query == {
        "search": ["llama"],
        "filter": ["text-generation"],
        "sort": ["downloads"],
        "limit": ["3"],
    }
    # The next link is followed exactly as given: the original parameters plus the cursor.
    assert second.query == {**first.query, "cursor": [HF_PAGE2_CURSOR]}
    assert first.headers["authorization"] == second.headers["authorization"] == "Bearer hf_test"
    assert fake.requests("artificialanalysis")[0].headers["x-api-key"] == AA_API_KEY
    assert "authorization" not in fake.requests("openrouter")[0].headers
    assert all(fake.count(path) == (2 if s == "huggingface" else 1) for s, path in PATHS.items())


def test_a_429_waits_as_long_as_retry_after_says(fake: FakeCatalogues) -> None:
    fake.throttle_next("openrouter", retry_after="1")

    models, reports = sync(settings_for(fake, MODELS_SOURCE_MAX_RETRY_WAIT_S=5))

    assert reports_by_source(reports)["openrouter"].state == "ok"
    assert len(fake.requests("openrouter")) == 2
    assert gap_between_requests(fake, "openrouter") >= 0.95
    assert len([m for m in models if m.source == "openrouter"]) == 6


def test_an_exhausted_ratelimit_wins_over_retry_after(fake: FakeCatalogues) -> None:
    # The Hub's own client sleeps exactly t when r=0; Retry-After: 0 would retry at once.
    fake.throttle_next("huggingface", ratelimit_reset_s=1, retry_after="0")

    _, reports = sync(settings_for(fake, MODELS_SOURCE_MAX_RETRY_WAIT_S=5))

    assert reports_by_source(reports)["huggingface"].state == "ok"
    assert len(fake.requests("huggingface")) == 3  # page 1 twice, then page 2
    assert gap_between_requests(fake, "huggingface") >= 0.95


def test_the_wait_a_server_asks_for_is_capped(fake: FakeCatalogues) -> None:
    fake.throttle_next("modelsdev", retry_after="3600")

    _, reports = sync(settings_for(fake, MODELS_SOURCE_MAX_RETRY_WAIT_S=0.2))

    assert reports_by_source(reports)["modelsdev"].state == "ok"
    assert 0.19 <= gap_between_requests(fake, "modelsdev") < 3


def test_a_throttled_source_that_never_recovers_says_so(fake: FakeCatalogues) -> None:
    fake.throttle_next("openrouter", times=3, retry_after="3600")

    _, reports = sync(settings_for(fake))

    assert reports_by_source(reports)["openrouter"].message == (
        "openrouter: HTTP 429 after 3 attempts (the server asked to wait 3600s;"
        " waits are capped at MODELS_SOURCE_MAX_RETRY_WAIT_S=0.05s)"
    )


def test_5xx_is_retried_until_it_passes(fake: FakeCatalogues) -> None:
    fake.fail_next("artificialanalysis", times=2, status=502)

    _, reports = sync(settings_for(fake))

    assert reports_by_source(reports)["artificialanalysis"].state == "ok"
    assert len(fake.requests("artificialanalysis")) == 3


def test_5xx_exhausted_fails_that_source_only(fake: FakeCatalogues) -> None:
    fake.fail_next("openrouter", times=3, status=503)

    models, reports = sync(settings_for(fake))

    by_source = reports_by_source(reports)
    assert by_source["openrouter"].state == "failed"
    assert by_source["openrouter"].message == "openrouter: HTTP 503 after 3 attempts"
    assert by_source["openrouter"].models == 0
    assert len(fake.requests("openrouter")) == 3
    assert {r.source: r.state for r in reports if r.source != "openrouter"} == {
        "modelsdev": "ok",
        "huggingface": "ok",
        "artificialanalysis": "ok",
    }
    assert {m.source for m in models} == {"modelsdev", "huggingface", "artificialanalysis"}
    assert all_failed_message(reports) is None


def test_a_slow_source_times_out(fake: FakeCatalogues) -> None:
    fake.delay("modelsdev", 30)

    _, reports = sync(settings_for(fake, MODELS_SOURCE_TIMEOUT_S=0.3, MODELS_SOURCE_RETRIES=1))

    by_source = reports_by_source(reports)
    assert by_source["modelsdev"].state == "failed"
    assert by_source["modelsdev"].message == "modelsdev: timed out after 0.3s (2 attempts)"
    assert by_source["modelsdev"].duration_ms < 5000
    assert by_source["openrouter"].state == "ok"


def test_malformed_json_fails_the_source_without_retrying(fake: FakeCatalogues) -> None:
    fake.serve_malformed("artificialanalysis")

    _, reports = sync(settings_for(fake))

    message = reports_by_source(reports)["artificialanalysis"].message or ""
    assert message.startswith("artificialanalysis: malformed JSON: ")
    assert len(fake.requests("artificialanalysis")) == 1


def test_a_document_of_the_wrong_shape_fails_the_source(fake: FakeCatalogues) -> None:
    fake.set_payload("openrouter", {"models": []})
    fake.set_payload("huggingface", {"error": "not a list"})

    _, reports = sync(settings_for(fake))

    by_source = reports_by_source(reports)
    assert by_source["openrouter"].message == (
        "openrouter: unexpected document: expected an object with a 'data' list, got dict"
    )
    assert by_source["huggingface"].state == "failed"


def test_bad_items_are_skipped_and_counted_and_unknown_fields_ignored(
    fake: FakeCatalogues,
) -> None:
    document = fake.payload("openrouter")
    minimal = {"id": "acme/new-model", "brand_new_field": {"x": 1}, "pricing": {"prompt": "-1"}}
    document["data"] += [42, {"name": "no id"}, {"id": "no-slash"}, minimal]
    fake.set_payload("openrouter", document)

    models, reports = sync(settings_for(fake))

    report = reports_by_source(reports)["openrouter"]
    assert (report.state, report.models) == ("ok", 7)
    assert report.message == "3 malformed item(s) skipped"
    new = one(models, "openrouter", "acme/new-model")
    assert (new.provider, new.model, new.input_price, new.context_length) == (
        "acme",
        "new-model",
        None,
        None,
    )


def test_a_source_whose_every_item_is_bad_fails(fake: FakeCatalogues) -> None:
    fake.set_payload("artificialanalysis", {"status": 200, "data": [1, "two", {}]})

    _, reports = sync(settings_for(fake))

    assert reports_by_source(reports)["artificialanalysis"].message == (
        "artificialanalysis: all 3 items are malformed"
    )


def test_a_replaced_payload_is_what_the_next_sync_sees(fake: FakeCatalogues) -> None:
    document = fake.payload("modelsdev")
    del document["anthropic"]
    fake.set_payload("modelsdev", document)
    fake.set_payload("huggingface", fake.payload("huggingface")[:2])

    models, reports = sync(settings_for(fake))

    by_source = reports_by_source(reports)
    assert (by_source["modelsdev"].models, by_source["huggingface"].models) == (5, 2)
    assert by_source["huggingface"].pages == 1
    assert not [m for m in models if m.provider == "anthropic" and m.source == "modelsdev"]


def test_a_source_that_disappears_fails_at_once(fake: FakeCatalogues) -> None:
    fake.disappear("openrouter")

    _, reports = sync(settings_for(fake))

    assert reports_by_source(reports)["openrouter"].message == (
        'openrouter: HTTP 404: {"error":"Not Found"}'
    )
    assert len(fake.requests("openrouter")) == 1


def test_a_dropped_connection_is_retried_then_reported(fake: FakeCatalogues) -> None:
    fake.disappear("huggingface", how="drop")

    _, reports = sync(settings_for(fake))

    message = reports_by_source(reports)["huggingface"].message or ""
    assert message.startswith("huggingface: connection failed (RemoteProtocolError: ")
    assert message.endswith(" after 3 attempts")
    assert len(fake.requests("huggingface")) == 3


def test_a_refused_connection_fails_that_source(fake: FakeCatalogues) -> None:
    settings = settings_for(fake, MODELSDEV_BASE_URL=unreachable_base_url())

    _, reports = sync(settings)

    message = reports_by_source(reports)["modelsdev"].message or ""
    assert message.startswith("modelsdev: connection failed (ConnectError: ")
    assert reports_by_source(reports)["openrouter"].state == "ok"


def test_the_page_cap_stops_hugging_face_and_says_so(fake: FakeCatalogues) -> None:
    models, reports = sync(settings_for(fake, HUGGINGFACE_MAX_PAGES=1))

    report = reports_by_source(reports)["huggingface"]
    assert (report.state, report.models, report.pages) == ("ok", 3, 1)
    assert report.message == "stopped at HUGGINGFACE_MAX_PAGES=1; more pages were available"
    assert len(fake.requests("huggingface")) == 1
    assert "meta-llama/Llama-3.3-70B-Instruct" not in {m.source_id for m in models}


def test_one_page_with_a_bigger_limit(fake: FakeCatalogues) -> None:
    _, reports = sync(settings_for(fake, HUGGINGFACE_PAGE_SIZE=100, HUGGINGFACE_SEARCH=None))

    report = reports_by_source(reports)["huggingface"]
    assert (report.models, report.pages) == (6, 1)
    assert "search" not in fake.requests("huggingface")[0].query


def test_a_failing_second_page_fails_hugging_face(fake: FakeCatalogues) -> None:
    fake.fail_next("huggingface", times=3, status=500, after=1)

    models, reports = sync(settings_for(fake))

    report = reports_by_source(reports)["huggingface"]
    assert report.message == "huggingface (page 2): HTTP 500 after 3 attempts"
    assert not [m for m in models if m.source == "huggingface"]


def test_artificial_analysis_without_a_key_is_skipped(fake: FakeCatalogues) -> None:
    models, reports = sync(settings_for(fake, ARTIFICIALANALYSIS_API_KEY=None))

    report = reports_by_source(reports)["artificialanalysis"]
    assert (report.state, report.message) == ("skipped", AA_KEY_MISSING)
    assert AA_KEY_MISSING == "ARTIFICIALANALYSIS_API_KEY not set; Artificial Analysis skipped"
    assert fake.requests("artificialanalysis") == []
    assert not [m for m in models if m.source == "artificialanalysis"]
    assert all_failed_message(reports) is None


def test_a_wrong_artificial_analysis_key_fails_clearly(fake: FakeCatalogues) -> None:
    _, reports = sync(settings_for(fake, ARTIFICIALANALYSIS_API_KEY="wrong"))

    assert reports_by_source(reports)["artificialanalysis"].message == (
        'artificialanalysis: HTTP 401: {"error":"Invalid API key"}'
    )


def test_every_source_failing_fails_every_report(fake: FakeCatalogues) -> None:
    fake.disappear("modelsdev")
    fake.serve_malformed("openrouter")
    fake.fail_next("huggingface", times=3, status=503)
    fake.disappear("artificialanalysis")

    models, reports = sync(settings_for(fake))

    assert models == []
    assert [(r.source, r.state) for r in reports] == [
        ("modelsdev", "failed"),
        ("openrouter", "failed"),
        ("huggingface", "failed"),
        ("artificialanalysis", "failed"),
    ]
    message = all_failed_message(reports) or ""
    assert message.startswith("no model source succeeded: modelsdev: HTTP 404")
    assert "huggingface: HTTP 503 after 3 attempts" in message


def test_the_fake_pages_hugging_face_like_the_hub(fake: FakeCatalogues) -> None:
    page1 = httpx.get(f"{fake.base_url}/api/models?search=llama&sort=downloads&limit=3")
    assert page1.headers["RateLimit"] == '"api";r=499;t=300'
    assert page1.headers["RateLimit-Policy"] == '"fixed window";"api";q=500;w=300'
    next_url = page1.links["next"]["url"]
    assert next_url == (
        f"{fake.base_url}/api/models?search=llama&sort=downloads&limit=3&cursor={HF_PAGE2_CURSOR}"
    )
    page2 = httpx.get(next_url)
    assert [m["id"] for m in page2.json()][-1] == "meta-llama/Llama-3.3-70B-Instruct"
    assert "Link" not in page2.headers
    unknown = httpx.get(f"{fake.base_url}/api/models?cursor=bm90LWEtY3Vyc29y")
    assert (unknown.status_code, unknown.json()) == (400, {"error": "Invalid cursor"})
    no_key = httpx.get(f"{fake.base_url}/api/v2/data/llms/models")
    assert (no_key.status_code, no_key.json()) == (401, {"error": "API key is required"})


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Thu, 01 Jan 2026 12:00:30 GMT", now) == 30.0
    assert retry_after_seconds("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("") is None


def test_ratelimit_counts_only_an_exhausted_quota() -> None:
    assert ratelimit_reset_seconds('"api";r=0;t=55') == 55.0
    assert ratelimit_reset_seconds('"api";r=12;t=55') is None
    assert ratelimit_reset_seconds('"api";r=3;t=9, "pages";r=0;t=20') == 20.0
    assert ratelimit_reset_seconds("garbage") is None
