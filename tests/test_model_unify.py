"""Matching and precedence across the four catalogues, on the fixtures' real disagreements."""

from __future__ import annotations

from datetime import date

from schemas.models import SourceModel
from streams.domains.models.unify import match_key, unify


def rec(source: str, source_id: str, **fields: object) -> SourceModel:
    provider, _, model = source_id.partition("/")
    defaults: dict[str, object] = {"provider": provider, "model": model}
    return SourceModel.model_validate(
        {"source": source, "source_id": source_id, **defaults, **fields}
    )


MODELSDEV_SONNET = rec(
    "modelsdev",
    "anthropic/claude-sonnet-4-20250514",
    name="Claude Sonnet 4",
    context_length=200000,
    max_output=64000,
    input_price=3.0,
    output_price=15.0,
    release_date=date(2025, 5, 22),
    open_weights=False,
    capabilities=("attachment", "reasoning", "tool_call"),
)
OPENROUTER_SONNET = rec(
    "openrouter",
    "anthropic/claude-sonnet-4",
    name="Anthropic: Claude Sonnet 4",
    context_length=200000,
    max_output=64000,
    input_price=3.0,
    output_price=15.0,
    aliases=("anthropic/claude-4-sonnet-20250522",),
)
AA_SONNET = rec(
    "artificialanalysis",
    "22d7acc2-aa",
    provider="anthropic",
    model="claude-4-sonnet",
    name="Claude 4 Sonnet",
    input_price=3.0,
    output_price=15.0,
    extras={"intelligence_index": 44.4},
)
OPENROUTER_LLAMA = rec(
    "openrouter",
    "meta-llama/llama-3.3-70b-instruct",
    name="Meta: Llama 3.3 70B Instruct",
    context_length=131072,
    input_price=0.1,
    output_price=0.32,
    hugging_face_id="meta-llama/Llama-3.3-70B-Instruct",
)
OPENROUTER_LLAMA_FREE = rec(
    "openrouter",
    "meta-llama/llama-3.3-70b-instruct:free",
    model="llama-3.3-70b-instruct:free",
    context_length=65536,
    input_price=0.0,
    output_price=0.0,
    hugging_face_id="meta-llama/Llama-3.3-70B-Instruct",
)
HF_LLAMA = rec(
    "huggingface",
    "meta-llama/Llama-3.3-70B-Instruct",
    model="llama-3.3-70b-instruct",
    provider="meta-llama",
    hugging_face_id="meta-llama/Llama-3.3-70B-Instruct",
    open_weights=True,
    release_date=date(2024, 11, 26),
    extras={"downloads": 655120, "likes": 2543},
)
AA_LLAMA = rec(
    "artificialanalysis",
    "900fbd1b-aa",
    provider="meta",
    model="llama-3-3-instruct-70b",
    name="Llama 3.3 Instruct 70B",
    input_price=0.59,
    output_price=0.79,
    release_date=date(2024, 12, 6),
)
HF_TINY = rec("huggingface", "TinyLlama/TinyLlama-1.1B-Chat-v1.0", provider="tinyllama",
              model="tinyllama-1.1b-chat-v1.0", open_weights=True)  # fmt: skip


def by_id(records: list[SourceModel]) -> dict[str, object]:
    return {m.id: m for m in unify(records)}


def test_match_keys_fold_dates_order_dots_and_provider_aliases() -> None:
    assert match_key("anthropic", "claude-sonnet-4-20250514") == match_key(
        "anthropic", "claude-4-sonnet"
    )
    assert match_key("google", "gemini-2.5-pro") == match_key("google", "gemini-2-5-pro")
    assert match_key("meta-llama", "llama-3.3-70b-instruct") == match_key(
        "meta", "llama-3-3-instruct-70b"
    )
    assert match_key("openai", "gpt-4o") != match_key("openai", "gpt-4o-mini")
    assert match_key("openai", None) is None


def test_sonnet_from_three_sources_is_one_model_with_models_dev_winning() -> None:
    models = unify([AA_SONNET, OPENROUTER_SONNET, MODELSDEV_SONNET])
    assert len(models) == 1
    sonnet = models[0]
    assert sonnet.id == "anthropic/claude-sonnet-4-20250514"
    assert sonnet.name == "Claude Sonnet 4"
    assert sonnet.sources == ("artificialanalysis", "modelsdev", "openrouter")
    assert sonnet.source_ids["openrouter"] == "anthropic/claude-sonnet-4"
    assert sonnet.extras["artificialanalysis"] == {"intelligence_index": 44.4}
    assert sonnet.release_date == date(2025, 5, 22)


def test_llama_joins_by_hugging_face_id_and_free_variant_becomes_an_extra() -> None:
    models = by_id([OPENROUTER_LLAMA_FREE, HF_LLAMA, OPENROUTER_LLAMA, AA_LLAMA, HF_TINY])
    assert set(models) == {
        "meta-llama/llama-3.3-70b-instruct",
        "tinyllama/tinyllama-1.1b-chat-v1.0",
    }
    llama = unify([OPENROUTER_LLAMA_FREE, HF_LLAMA, OPENROUTER_LLAMA, AA_LLAMA])[0]
    assert llama.sources == ("artificialanalysis", "huggingface", "openrouter")
    # OpenRouter's paid entry beats Artificial Analysis on price; the free variant does not count.
    assert (llama.input_price, llama.output_price) == (0.1, 0.32)
    assert llama.context_length == 131072
    assert llama.extras["openrouter_variants"]["free"]["input_price"] == 0.0
    # Release date: Artificial Analysis beats Hugging Face's repo creation date.
    assert llama.release_date == date(2024, 12, 6)
    assert llama.open_weights is True
    assert llama.extras["huggingface"]["downloads"] == 655120


def test_two_records_of_one_source_never_merge() -> None:
    older = rec("modelsdev", "openai/gpt-4o-2024-05-13", name="GPT-4o (May)")
    newer = rec("modelsdev", "openai/gpt-4o-2024-08-06", name="GPT-4o (Aug)")
    router = rec("openrouter", "openai/gpt-4o", name="OpenAI: GPT-4o")
    models = by_id([older, newer, router])
    assert len(models) == 2
    assert {"openai/gpt-4o-2024-05-13", "openai/gpt-4o-2024-08-06"} == set(models)


def test_a_lone_variant_still_becomes_a_model() -> None:
    lone = rec("openrouter", "acme/tiny:free", model="tiny:free", input_price=0.0)
    models = unify([lone])
    assert [m.id for m in models] == ["acme/tiny"]
