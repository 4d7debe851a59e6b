"""A generated model catalogue in the four sources' real wire formats, and a local server for it.

:func:`generate` makes ``count`` distinct models, each listed by one to four of models.dev,
OpenRouter, Hugging Face and Artificial Analysis, spelled the way each source spells it (formats
as in ``tests/fixtures/models``): provider slugs that only meet through the documented aliases
(``meta-llama``/``meta``, ``qwen``/``Qwen``/``alibaba``, ``mistralai``/``mistral``...), dates
appended to models.dev keys and OpenRouter ``canonical_slug``, Artificial Analysis slugs with
dots as dashes and the size moved to the end, Hugging Face repo names in their own case, some
OpenRouter slugs that only join their Hugging Face repo through ``hugging_face_id``, and
OpenRouter ``:free`` variants. Every model's spellings meet by the matching rules of
docs/models.md and no two models' do, so the sync must find exactly ``count`` models.

:func:`render` turns models into pre-serialised bodies; :class:`CatalogueServer` serves them on
127.0.0.1 (threaded, keep-alive, bodies written as they are), Hugging Face in pages chained by
absolute ``Link: <...>; rel="next"`` URLs and Artificial Analysis only with ``x-api-key``.
"""

from __future__ import annotations

import base64
import dataclasses
import random
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, parse_qsl, quote, urlencode, urlsplit

import orjson

from schemas.models import SOURCES, SourceName
from streams.domains.models.unify import provider_key

PATHS: dict[SourceName, str] = {
    "modelsdev": "/api.json",
    "openrouter": "/api/v1/models",
    "huggingface": "/api/models",
    "artificialanalysis": "/api/v2/data/llms/models",
}
SOURCE_BY_PATH = {path: source for source, path in PATHS.items()}
HF_MAX_LIMIT = 1000
HF_PIPELINE = "text-generation"
# Sources with prices, best first (docs/models.md precedence; Hugging Face has none).
PRICE_PRECEDENCE: tuple[SourceName, ...] = ("modelsdev", "openrouter", "artificialanalysis")

# Which sources list a model, and how often (marginals ~45% models.dev, ~44% OpenRouter,
# ~40% Hugging Face, ~20% Artificial Analysis; ~35% of the models are listed by 2-4 sources).
_SETS: tuple[tuple[tuple[SourceName, ...], float], ...] = (
    (("huggingface",), 0.22),
    (("modelsdev",), 0.20),
    (("openrouter",), 0.18),
    (("artificialanalysis",), 0.05),
    (("modelsdev", "openrouter"), 0.08),
    (("modelsdev", "artificialanalysis"), 0.03),
    (("openrouter", "artificialanalysis"), 0.02),
    (("huggingface", "openrouter"), 0.05),
    (("huggingface", "modelsdev"), 0.03),
    (("huggingface", "artificialanalysis"), 0.01),
    (("modelsdev", "openrouter", "artificialanalysis"), 0.04),
    (("huggingface", "modelsdev", "openrouter"), 0.04),
    (("huggingface", "openrouter", "artificialanalysis"), 0.01),
    (("huggingface", "modelsdev", "artificialanalysis"), 0.01),
    (("huggingface", "modelsdev", "openrouter", "artificialanalysis"), 0.03),
)
FREE_VARIANT_SHARE = 0.04  # OpenRouter models that also have a ":free" variant
OR_OWN_SPELLING_SHARE = 0.25  # OpenRouter slugs that meet their HF repo only by hugging_face_id
DATED_KEY_SHARE = 0.4  # closed models whose models.dev key ends in -YYYYMMDD


@dataclass(frozen=True)
class Org:
    """A model maker, as each source writes it (``None``: not listed there)."""

    name: str
    modelsdev: str | None
    openrouter: str | None
    huggingface: str | None
    artificialanalysis: str | None
    families: tuple[str, ...]
    closed: bool = False
    community: bool = False

    def slug(self, source: SourceName) -> str | None:
        value: str | None = getattr(self, source)
        return value

    @property
    def key(self) -> str:
        """The provider as matching folds it (docs/models.md aliases)."""
        slug = next(s for s in (self.modelsdev, self.artificialanalysis, self.huggingface) if s)
        return provider_key(slug)


def _org(name: str, slugs: str, families: str, closed: bool = False) -> Org:
    """``slugs``: models.dev, OpenRouter, Hugging Face, Artificial Analysis; ``-`` = not there."""
    md, op, hf, aa = (None if s == "-" else s for s in slugs.split())
    return Org(name, md, op, hf, aa, tuple(families.split()), closed=closed)


ORGS: tuple[Org, ...] = (
    _org("OpenAI", "openai openai openai openai", "gpt o gpt-oss chatgpt", closed=True),
    _org(
        "Anthropic",
        "anthropic anthropic - anthropic",
        "claude-sonnet claude-opus claude-haiku",
        closed=True,
    ),
    _org(
        "Google", "google google google google", "gemini-pro gemini-flash gemini-flash-lite gemma"
    ),
    _org("xAI", "xai x-ai - xai", "grok grok-mini grok-code", closed=True),
    _org(
        "Mistral",
        "mistral mistralai mistralai mistral",
        "mistral-large mistral-small ministral codestral magistral devstral pixtral mixtral",
    ),
    _org("Meta", "meta meta-llama meta-llama meta", "llama llama-guard code-llama"),
    _org("Alibaba", "alibaba qwen Qwen alibaba", "qwen qwq qwen-vl qwen-coder"),
    _org(
        "DeepSeek",
        "deepseek deepseek deepseek-ai deepseek",
        "deepseek deepseek-coder deepseek-r deepseek-prover",
    ),
    _org("Moonshot AI", "moonshotai moonshotai moonshotai moonshot", "kimi-k kimi-dev moonlight"),
    _org("Cohere", "cohere cohere - cohere", "command-r command-a aya-expanse", closed=True),
    _org(
        "Amazon",
        "amazon amazon - amazon",
        "nova-pro nova-lite nova-micro nova-premier",
        closed=True,
    ),
    _org("AI21 Labs", "ai21 ai21 - ai21", "jamba jamba-mini", closed=True),
    _org("Microsoft", "microsoft microsoft microsoft microsoft", "phi phi-mini wizardlm orca"),
    _org("NVIDIA", "nvidia nvidia nvidia nvidia", "nemotron llama-nemotron nemotron-nano"),
    _org(
        "Nous Research",
        "nousresearch nousresearch NousResearch nousresearch",
        "hermes nous-capybara deephermes",
    ),
    _org("IBM", "ibm-granite ibm-granite ibm-granite ibm-granite", "granite granite-guardian"),
    _org("TII", "- - tiiuae -", "falcon falcon-h"),
    _org("Allen AI", "allenai allenai allenai allenai", "olmo tulu molmo"),
)
# fmt: off
_COMMUNITY = (
    "TheBloke", "unsloth", "bartowski", "mlx-community", "lmstudio-community", "mradermacher",
    "cognitivecomputations", "teknium", "HuggingFaceH4", "01-ai", "stabilityai", "bigcode",
    "EleutherAI", "openchat", "upstage", "internlm", "THUDM", "baichuan-inc", "Salesforce",
    "databricks", "togethercomputer", "lmsys", "WizardLMTeam", "jondurbin", "Open-Orca",
    "OpenAssistant", "h2oai", "NousResearch-community", "huihui-ai", "Undi95", "TheDrummer",
    "SicariusSicariiStuff", "Sao10K", "anthracite-org", "arcee-ai", "intervitens", "LoneStriker",
    "turboderp", "QuantFactory", "second-state", "NexaAIDev", "MaziyarPanahi", "DavidAU",
)
_BASES = (
    "llama", "mistral", "mixtral", "qwen", "gemma", "phi", "yi", "falcon", "deepseek", "olmo",
    "granite", "hermes", "starcoder", "codellama", "solar", "zephyr", "openhermes", "dolphin",
    "tinyllama", "smollm", "internlm", "glm", "baichuan", "stablelm", "pythia", "mpt",
)
_FLAVOURS = (
    "dolphin", "airoboros", "samantha", "tess", "wizard", "neural", "nous", "orca", "synthia",
    "magnum", "rocinante", "cydonia", "stheno", "euryale", "lumimaid", "hathor", "celeste",
)
_VERSIONS = (
    "1", "1.5", "2", "2.5", "3", "3.1", "3.2", "3.3", "3.5", "3.7", "4", "4.1", "4.5", "5", "5.1",
    "6", "7", "2407", "2411", "2501", "2503", "2506", "2507", "0905", "v2", "v3", "v3.1", "v3.2",
    "r1", "k2",
)
_SIZES = (
    "0.5b", "1b", "1.5b", "3b", "4b", "7b", "8b", "9b", "12b", "14b", "22b", "27b", "32b", "34b",
    "70b", "72b", "110b", "405b", "8x7b", "8x22b", "30b-a3b", "235b-a22b", "120b", "20b",
)
_VARIANTS = (
    "instruct", "chat", "base", "it", "mini", "nano", "pro", "flash", "lite", "turbo", "preview",
    "thinking", "reasoning", "coder", "vision", "vl", "plus", "max", "exp", "fast", "high", "audio",
)
_QUANTS = (
    "gguf", "awq", "gptq", "exl2", "mlx-4bit", "mlx-8bit", "abliterated", "uncensored", "dpo",
    "sft", "orpo", "lora", "merged", "fp8", "int4", "bnb-4bit", "i1-gguf", "imatrix",
)
_UPPER = {"gpt", "vl", "awq", "gptq", "gguf", "fp8", "dpo", "sft", "orpo", "mlx", "exl2", "glm"}
_LICENSES = ("apache-2.0", "mit", "llama3.1", "llama3.3", "gemma", "other", "cc-by-nc-4.0")
_LIBRARIES = ("transformers", "transformers", "transformers", "gguf", "mlx", "vllm", None)
_PARAMETERS = (
    "max_tokens", "temperature", "top_p", "stop", "frequency_penalty", "presence_penalty",
    "seed", "tools", "tool_choice", "response_format", "structured_outputs", "reasoning",
    "include_reasoning", "top_k",
)
# fmt: on
_DATE_SUFFIX = re.compile(r"-(?:\d{8}|\d{4}-\d{2}-\d{2})$")
_TOKEN_SPLIT = re.compile(r"[-_.\s/]+")
_HF_EPOCH = datetime(2022, 3, 2, 23, 29, 4, tzinfo=UTC)


def _epoch(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def _key(provider_key: str, slug: str) -> str:
    """The match key of docs/models.md (provider folded, sorted slug tokens, no date)."""
    base = _DATE_SUFFIX.sub("", slug.lower().partition(":")[0])
    return provider_key + "/" + "-".join(sorted(t for t in _TOKEN_SPLIT.split(base) if t))


def _title(token: str) -> str:
    if token in _UPPER:
        return token.upper()
    if re.fullmatch(r"[0-9.x]+b|a[0-9]+b", token):
        return token.upper()
    return token[:1].upper() + token[1:]


@dataclass(frozen=True)
class Model:
    """One distinct model and how each source that lists it describes it."""

    index: int
    org: Org
    sources: tuple[SourceName, ...]
    tokens: tuple[str, ...]  # natural spelling, e.g. ("llama", "3.3", "70b", "instruct")
    size: str | None  # one of the tokens; Artificial Analysis moves it to the end
    or_tokens: tuple[str, ...]  # OpenRouter's spelling (may differ: joined by hugging_face_id)
    hf_owner: str | None
    dated: str | None  # YYYYMMDD appended to the models.dev key and OpenRouter canonical_slug
    released: date
    context: int
    max_output: int
    prices: dict[SourceName, tuple[Decimal, Decimal]]  # USD per 1M tokens, input and output
    free_variant: bool
    open_weights: bool
    reasoning: bool
    vision: bool
    downloads: int
    likes: int
    aa_id: str
    hf_object_id: str
    intelligence: float

    def slug(self) -> str:
        return "-".join(self.tokens)

    def display(self) -> str:
        return " ".join(_title(t) for t in self.tokens)

    def hf_repo(self) -> str:
        return f"{self.hf_owner}/" + "-".join(_title(t) for t in self.tokens)

    def price_winner(self) -> SourceName | None:
        """The source whose price the catalogue shows (price precedence of docs/models.md)."""
        return next((s for s in PRICE_PRECEDENCE if s in self.sources), None)


def _pick_set(rng: random.Random) -> tuple[SourceName, ...]:
    sets = [s for s, _ in _SETS]
    return rng.choices(sets, weights=[w for _, w in _SETS])[0]


def _pick_org(rng: random.Random, sources: tuple[SourceName, ...]) -> Org:
    if sources == ("huggingface",) and rng.random() < 0.7:
        name = rng.choice(_COMMUNITY)
        return Org(name, None, None, name, None, (), community=True)
    fits = [o for o in ORGS if all(o.slug(s) for s in sources)]
    return rng.choice(fits)


def _tokens(rng: random.Random, org: Org) -> tuple[tuple[str, ...], str | None, str | None]:
    """(tokens, size token, version token) of a plausible model name for ``org``."""
    if org.community and not org.families:
        parts: list[str] = []
        if rng.random() < 0.3:
            parts.append(rng.choice(_FLAVOURS))
        parts.append(rng.choice(_BASES))
        version = rng.choice(_VERSIONS)
        size = rng.choice(_SIZES)
        parts += [version, size]
        if rng.random() < 0.7:
            parts.append(rng.choice(_VARIANTS))
        parts += rng.sample(_QUANTS, rng.choice((1, 1, 2)))
        return tuple(parts), size, version
    parts = rng.choice(org.families).split("-")
    version = rng.choice(_VERSIONS)
    parts.append(version)
    sized = None if org.closed else rng.choice(_SIZES)
    if sized is not None:
        parts.append(sized)
    parts += rng.sample(_VARIANTS, rng.choice((0, 1, 1, 2)))
    return tuple(parts), sized, version


def _price(rng: random.Random) -> tuple[Decimal, Decimal]:
    cents = rng.choice((2, 5, 10, 15, 20, 30, 40, 50, 60, 80, 100, 125, 200, 250, 300, 500))
    ratio = rng.choice((2, 3, 4, 5, 8))
    return Decimal(cents) / 100, Decimal(cents * ratio) / 100


def generate(count: int, seed: int = 7) -> list[Model]:
    """``count`` distinct models, deterministic for ``seed``."""
    rng = random.Random(seed)
    used: set[str] = set()
    models: list[Model] = []
    while len(models) < count:
        sources = _pick_set(rng)
        org = _pick_org(rng, sources)
        tokens, size, version = _tokens(rng, org)
        key = _key(org.key, "-".join(tokens))
        if key in used:
            continue
        or_tokens = tokens
        if (
            "openrouter" in sources
            and "huggingface" in sources
            and len(tokens) > 1
            and tokens[1] == version
            and rng.random() < OR_OWN_SPELLING_SHARE
        ):
            # e.g. qwen/qwen2.5-72b-instruct on OpenRouter for Qwen/Qwen-2.5-72B-Instruct.
            joined = (tokens[0] + version, *tokens[2:])
            if _key(org.key, "-".join(joined)) not in used:
                or_tokens = joined
        used.add(key)
        used.add(_key(org.key, "-".join(or_tokens)))
        released = date(2022, 3, 3) + timedelta(days=rng.randrange(1580))
        prices: dict[SourceName, tuple[Decimal, Decimal]] = {
            s: _price(rng) for s in sources if s != "huggingface"
        }
        models.append(
            Model(
                index=len(models),
                org=org,
                sources=tuple(s for s in SOURCES if s in sources),
                tokens=tokens,
                size=size,
                or_tokens=or_tokens,
                hf_owner=org.huggingface,
                dated=released.strftime("%Y%m%d")
                if org.closed and rng.random() < DATED_KEY_SHARE
                else None,
                released=released,
                context=rng.choice((8192, 32768, 65536, 131072, 200000, 262144, 1048576)),
                max_output=rng.choice((4096, 8192, 16384, 32768, 65536)),
                prices=prices,
                free_variant="openrouter" in sources and rng.random() < FREE_VARIANT_SHARE,
                open_weights=not org.closed or "huggingface" in sources,
                reasoning=rng.random() < 0.3,
                vision=rng.random() < 0.35,
                downloads=int(rng.paretovariate(0.9) * 50),
                likes=int(rng.paretovariate(1.1) * 3),
                aa_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                # An ObjectId's first 8 hex digits are its creation time.
                hf_object_id=f"{_epoch(released) - 3 * 86400:08x}{rng.getrandbits(64):016x}",
                intelligence=round(rng.uniform(5, 70), 1),
            )
        )
    return models


def change(models: list[Model], fraction: float, seed: int) -> tuple[list[Model], list[str]]:
    """A copy with ``fraction`` of the models changed where the catalogue will see it: the
    input price in the source that wins the price, else (Hugging Face only) the like count.
    Returns the new list and, per changed model, what changed (``"openrouter price"``...)."""
    rng = random.Random(seed)
    picked = rng.sample(range(len(models)), round(len(models) * fraction))
    changed = list(models)
    what: list[str] = []
    for i in picked:
        model = models[i]
        winner = model.price_winner()
        if winner is None:
            changed[i] = dataclasses.replace(model, likes=model.likes + rng.randint(1, 50))
            what.append("likes")
            continue
        inp, out = model.prices[winner]
        new = (inp * Decimal("1.25")).quantize(Decimal("0.0001")) if inp else Decimal("0.1")
        changed[i] = dataclasses.replace(model, prices={**model.prices, winner: (new, out)})
        what.append(f"{winner} price")
    return changed, what


# --- rendering -------------------------------------------------------------------------------


def _per_token(price: Decimal) -> str:
    return format((price / 1_000_000).normalize(), "f")


def _modelsdev_item(m: Model) -> tuple[str, str, dict[str, Any]]:
    provider = m.org.modelsdev
    assert provider is not None
    key = m.slug() + (f"-{m.dated}" if m.dated else "")
    inp, out = m.prices["modelsdev"]
    item: dict[str, Any] = {
        "id": key,
        "name": m.display(),
        "family": m.tokens[0],
        "attachment": m.vision,
        "reasoning": m.reasoning,
        "tool_call": True,
        "structured_output": m.index % 3 != 0,
        "temperature": True,
        "knowledge": (m.released - timedelta(days=200)).strftime("%Y-%m"),
        "release_date": m.released.isoformat(),
        "last_updated": m.released.isoformat(),
        "modalities": {
            "input": ["text", "image", "pdf"] if m.vision else ["text"],
            "output": ["text"],
        },
        "open_weights": m.open_weights,
        "limit": {"context": m.context, "output": m.max_output},
        "cost": {"input": float(inp), "output": float(out), "cache_read": float(inp / 10)},
    }
    return provider, key, item


def _openrouter_items(m: Model) -> list[dict[str, Any]]:
    provider = m.org.openrouter
    assert provider is not None
    model_id = f"{provider}/" + "-".join(m.or_tokens)
    inp, out = m.prices["openrouter"]
    hf_id: str | None = m.hf_repo() if m.open_weights and m.hf_owner else None
    if hf_id is None and m.index % 2:
        hf_id = ""
    name = f"{m.org.name}: {m.display()}"
    created = _epoch(m.released) + 15 * 3600
    inputs = ["text", "image", "file"] if m.vision else ["text"]
    parameters = [p for n, p in enumerate(_PARAMETERS) if (m.index >> (n % 8)) & 1 or n < 4]
    if m.reasoning:
        parameters += ["reasoning", "include_reasoning"]
    item: dict[str, Any] = {
        "id": model_id,
        "canonical_slug": model_id + (f"-{m.dated}" if m.dated else ""),
        "hugging_face_id": hf_id,
        "name": name,
        "created": created,
        "description": f"{name} is a {m.size or 'frontier'} model from {m.org.name}, tuned for "
        "instruction following, tool use and long documents. It supports a context of "
        f"{m.context:,} tokens...",
        "context_length": m.context,
        "architecture": {
            "modality": "+".join(inputs) + "->text",
            "input_modalities": inputs,
            "output_modalities": ["text"],
            "tokenizer": _title(m.tokens[0]),
            "instruct_type": None,
        },
        "pricing": {
            "prompt": _per_token(inp),
            "completion": _per_token(out),
            "input_cache_read": _per_token(inp / 10),
        },
        "top_provider": {
            "context_length": m.context,
            "max_completion_tokens": m.max_output if m.index % 4 else None,
            "is_moderated": m.org.closed,
        },
        "per_request_limits": None,
        "supported_parameters": sorted(set(parameters)),
        "default_parameters": {"temperature": None, "top_p": None, "frequency_penalty": None},
        "supported_voices": None,
        "knowledge_cutoff": (m.released - timedelta(days=180)).isoformat(),
        "expiration_date": None,
        "links": {"details": f"/api/v1/models/{model_id}/endpoints"},
    }
    items = [item]
    if m.free_variant:
        free = {
            **item,
            "id": f"{model_id}:free",
            "name": f"{name} (free)",
            "context_length": min(m.context, 65536),
            "pricing": {"prompt": "0", "completion": "0"},
            "top_provider": {**item["top_provider"], "context_length": min(m.context, 65536)},
            "links": {"details": f"/api/v1/models/{model_id}:free/endpoints"},
        }
        items.append(free)
    return items


def _huggingface_item(m: Model) -> dict[str, Any]:
    repo = m.hf_repo()
    created = datetime(m.released.year, m.released.month, m.released.day, tzinfo=UTC)
    created = max(created - timedelta(days=3, hours=m.index % 24), _HF_EPOCH)
    license_name = _LICENSES[m.index % len(_LICENSES)]
    tags = [
        "transformers",
        "safetensors",
        m.tokens[0],
        HF_PIPELINE,
        "conversational",
        "en",
        f"license:{license_name}",
        "autotrain_compatible",
        "text-generation-inference",
        "endpoints_compatible",
        "region:us",
    ]
    item: dict[str, Any] = {
        "_id": m.hf_object_id,
        "id": repo,
        "likes": m.likes,
        "trendingScore": m.likes // 10,
        "private": False,
        "downloads": m.downloads,
        "tags": tags,
        "pipeline_tag": HF_PIPELINE,
    }
    library = _LIBRARIES[m.index % len(_LIBRARIES)]
    if library is not None:
        item["library_name"] = library
    item["createdAt"] = created.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    item["modelId"] = repo
    return item


def _artificialanalysis_item(m: Model) -> dict[str, Any]:
    slug_tokens = [t.replace(".", "-") for t in m.tokens if t != m.size]
    if m.size is not None:
        slug_tokens.append(m.size.replace(".", "-"))
    inp, out = m.prices["artificialanalysis"]
    name_tokens = [t for t in m.tokens if t != m.size] + ([m.size] if m.size else [])
    creator = m.org.artificialanalysis
    assert creator is not None
    score = m.intelligence
    return {
        "id": m.aa_id,
        "name": " ".join(_title(t) for t in name_tokens),
        "slug": "-".join(slug_tokens),
        "release_date": m.released.isoformat(),
        "model_creator": {
            "id": str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{creator}.creators.example")),
            "name": m.org.name,
            "slug": creator,
        },
        "evaluations": {
            "artificial_analysis_intelligence_index": score,
            "artificial_analysis_coding_index": round(score * 0.6, 1),
            "artificial_analysis_math_index": round(min(score * 1.4, 99), 1),
            "mmlu_pro": round(0.3 + score / 120, 3),
            "gpqa": round(0.2 + score / 100, 3),
            "hle": round(score / 400, 3),
            "livecodebench": round(score / 90, 3),
            "scicode": round(score / 160, 3),
            "math_500": round(min(0.5 + score / 140, 0.99), 3),
            "aime": round(score / 80, 3),
        },
        "pricing": {
            "price_1m_blended_3_to_1": float((inp * 3 + out) / 4),
            "price_1m_input_tokens": float(inp),
            "price_1m_output_tokens": float(out),
        },
        "median_output_tokens_per_second": round(40 + (m.index % 200) * 1.3, 3),
        "median_time_to_first_token_seconds": round(0.2 + (m.index % 50) / 25, 3),
        "median_time_to_first_answer_token": round(0.4 + (m.index % 70) / 10, 3),
    }


@dataclass
class HfPage:
    body: bytes
    next_cursor: str | None


@dataclass
class Rendered:
    """What the server answers, already serialised."""

    bodies: dict[SourceName, bytes]  # all but Hugging Face, which is paged
    hf_items: list[dict[str, Any]]
    records: Counter[SourceName]  # items per source, OpenRouter variants included
    variants: int
    _pages: dict[int, tuple[list[HfPage], dict[str, int]]] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def size(self, source: SourceName, hf_page_size: int) -> int:
        """Bytes of JSON ``source`` serves (all pages, for Hugging Face)."""
        if source == "huggingface":
            return sum(len(p.body) for p in self.hf_pages(hf_page_size)[0])
        return len(self.bodies[source])

    def hf_pages(self, limit: int) -> tuple[list[HfPage], dict[str, int]]:
        """Pages of ``limit`` items (rendered once per limit) and the page index of each cursor."""
        with self._lock:
            if limit not in self._pages:
                pages: list[HfPage] = []
                cursors: dict[str, int] = {}
                for start in range(0, max(len(self.hf_items), 1), limit):
                    chunk = self.hf_items[start : start + limit]
                    cursor = None
                    if start + limit < len(self.hf_items):
                        cursor = _cursor_after(chunk[-1])
                        cursors[cursor] = len(pages) + 1
                    pages.append(HfPage(orjson.dumps(chunk), cursor))
                self._pages[limit] = (pages, cursors)
            return self._pages[limit]


def _cursor_after(item: dict[str, Any]) -> str:
    """The 2022-documented shape: base64 of a Mongo range query on the sort key and _id."""
    value = item["downloads"]
    query = {"$or": [{"downloads": value, "_id": {"$gt": item["_id"]}}, {"downloads": {"$lt": value}}]}  # fmt: skip  # noqa: E501
    return base64.b64encode(orjson.dumps(query)).decode()


def render(models: list[Model], hf_page_size: int) -> Rendered:
    """Every source's document for ``models``; Hugging Face sorted by downloads, paged."""
    modelsdev: dict[str, dict[str, Any]] = {}
    openrouter: list[dict[str, Any]] = []
    huggingface: list[dict[str, Any]] = []
    aa: list[dict[str, Any]] = []
    for m in models:
        if "modelsdev" in m.sources:
            provider, key, item = _modelsdev_item(m)
            entry = modelsdev.setdefault(
                provider,
                {
                    "id": provider,
                    "env": [f"{provider.upper().replace('-', '_')}_API_KEY"],
                    "npm": "@ai-sdk/openai-compatible",
                    "name": m.org.name,
                    "doc": f"https://docs.{provider}.example/models",
                    "models": {},
                },
            )
            entry["models"][key] = item
        if "openrouter" in m.sources:
            openrouter.extend(_openrouter_items(m))
        if "huggingface" in m.sources:
            huggingface.append(_huggingface_item(m))
        if "artificialanalysis" in m.sources:
            aa.append(_artificialanalysis_item(m))
    huggingface.sort(key=lambda item: (-item["downloads"], item["_id"]))
    variants = sum(1 for item in openrouter if ":" in item["id"])
    rendered = Rendered(
        bodies={
            "modelsdev": orjson.dumps(modelsdev),
            "openrouter": orjson.dumps({"data": openrouter}),
            "artificialanalysis": orjson.dumps(
                {
                    "status": 200,
                    "prompt_options": {"parallel_queries": 1, "prompt_length": "medium"},
                    "data": aa,
                }
            ),
        },
        hf_items=huggingface,
        records=Counter(
            {
                "modelsdev": sum(len(p["models"]) for p in modelsdev.values()),
                "openrouter": len(openrouter),
                "huggingface": len(huggingface),
                "artificialanalysis": len(aa),
            }
        ),
        variants=variants,
    )
    rendered.hf_pages(hf_page_size)  # rendered now, not while a sync waits
    return rendered


# --- serving ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Served:
    """One answered request: ``started``/``finished`` are ``time.monotonic()``."""

    source: SourceName | None
    status: int
    size: int
    started: float
    finished: float


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64
    owner: CatalogueServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-answer is no news here."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body leave at once, no delayed-ACK stall
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: :meth:`CatalogueServer.served` is the log."""

    def do_GET(self) -> None:
        self.server.owner.answer(self)

    def send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class CatalogueServer:
    """The four APIs on one 127.0.0.1 port; :meth:`publish` swaps what they serve."""

    def __init__(self, aa_api_key: str) -> None:
        self.aa_api_key = aa_api_key
        self._rendered: Rendered | None = None
        self._served: list[Served] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self.port = int(self._server.server_address[1])
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="catalogue-server",
            daemon=True,
        )

    def __enter__(self) -> CatalogueServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def publish(self, rendered: Rendered) -> None:
        self._rendered = rendered

    def served(self, clear: bool = False) -> list[Served]:
        with self._lock:
            found = list(self._served)
            if clear:
                self._served.clear()
        return found

    def answer(self, handler: _Handler) -> None:
        started = time.monotonic()
        parts = urlsplit(handler.path)
        source = SOURCE_BY_PATH.get(parts.path)
        rendered = self._rendered
        status, body = 404, b'{"error":"Not Found"}'
        headers: dict[str, str] = {}
        if source is not None and rendered is not None:
            if source == "huggingface":
                status, body, headers = self._huggingface(rendered, parts.path, parts.query)
            elif source == "artificialanalysis" and not handler.headers.get("x-api-key"):
                status, body = 401, b'{"error":"API key is required"}'
            elif source == "artificialanalysis" and (
                handler.headers.get("x-api-key") != self.aa_api_key
            ):
                status, body = 401, b'{"error":"Invalid API key"}'
            else:
                status, body = 200, rendered.bodies[source]
        handler.send(status, body, headers)
        with self._lock:
            self._served.append(Served(source, status, len(body), started, time.monotonic()))

    def _huggingface(
        self, rendered: Rendered, path: str, query_string: str
    ) -> tuple[int, bytes, dict[str, str]]:
        query = parse_qs(query_string, keep_blank_values=True)
        if query.get("search", [""])[0] or any(f != HF_PIPELINE for f in query.get("filter", [])):
            # Every generated item is a text-generation model; other queries are not imitated.
            return 400, b'{"error":"the bench serves filter=text-generation without search"}', {}
        try:
            limit = min(int(query.get("limit", [str(HF_MAX_LIMIT)])[0]), HF_MAX_LIMIT)
        except ValueError:
            return 400, b'{"error":"Invalid limit"}', {}
        pages, cursors = rendered.hf_pages(max(limit, 1))
        index = 0
        if "cursor" in query:
            found = cursors.get(query["cursor"][0])
            if found is None:
                return 400, b'{"error":"Invalid cursor"}', {}
            index = found
        page = pages[index]
        headers = {
            "RateLimit": f'"api";r={max(0, 499 - index)};t=300',
            "RateLimit-Policy": '"fixed window";"api";q=500;w=300',
        }
        if page.next_cursor is not None:
            kept = [(k, v) for k, v in parse_qsl(query_string) if k != "cursor"]
            cursor = quote(page.next_cursor, safe="")
            headers["Link"] = (
                f'<{self.base_url}{path}?{urlencode(kept)}&cursor={cursor}>; rel="next"'
            )
        return 200, page.body, headers


def describe(models: list[Model]) -> dict[str, Any]:
    """Facts about a generated catalogue for the report."""
    per_source: Counter[str] = Counter(s for m in models for s in m.sources)
    by_count: Counter[int] = Counter(len(m.sources) for m in models)
    return {
        "per_source": dict(per_source),
        "by_count": dict(sorted(by_count.items())),
        "or_own_spelling": sum(1 for m in models if m.or_tokens != m.tokens),
        "dated": sum(1 for m in models if m.dated),
        "free_variants": sum(1 for m in models if m.free_variant),
    }
