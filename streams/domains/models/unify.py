"""Matching the sources' records to one model each, and merging them by documented precedence.

Matching (docs/models.md): records are linked when they share a Hugging Face repo id, when one
names the other in its aliases (OpenRouter ``canonical_slug``), or when their match keys are
equal. A match key is the provider (aliases folded, e.g. meta-llama -> meta) plus the sorted
tokens of the model slug without a trailing date or ``:variant`` (so ``claude-sonnet-4-20250514``,
``claude-4-sonnet`` and ``anthropic/claude-sonnet-4`` meet). A group never holds two different
records from the same source; OpenRouter ``:variant`` entries (``:free``) join their base model
as extras instead of becoming models of their own.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from schemas.models import SourceModel, SourceName, UnifiedModel

PROVIDER_ALIASES = {
    "meta-llama": "meta",
    "facebook": "meta",
    "mistralai": "mistral",
    "x-ai": "xai",
    "google-deepmind": "google",
    "deepseek-ai": "deepseek",
    "qwen": "alibaba",
    "moonshotai": "moonshot",
}
_DATE_SUFFIX = re.compile(r"-(?:\d{8}|\d{4}-\d{2}-\d{2})$")
_TOKEN_SPLIT = re.compile(r"[-_.\s/]+")

# Which source wins a field when they disagree, first is best.
PRECEDENCE: dict[str, tuple[SourceName, ...]] = {
    "id": ("modelsdev", "openrouter", "huggingface", "artificialanalysis"),
    "name": ("modelsdev", "openrouter", "artificialanalysis", "huggingface"),
    "context_length": ("modelsdev", "openrouter", "huggingface", "artificialanalysis"),
    "max_output": ("modelsdev", "openrouter", "huggingface", "artificialanalysis"),
    "price": ("modelsdev", "openrouter", "artificialanalysis", "huggingface"),
    "modalities": ("modelsdev", "openrouter", "huggingface", "artificialanalysis"),
    "capabilities": ("modelsdev", "openrouter", "huggingface", "artificialanalysis"),
    "release_date": ("modelsdev", "artificialanalysis", "huggingface", "openrouter"),
    "open_weights": ("modelsdev", "huggingface", "openrouter", "artificialanalysis"),
    "status": ("modelsdev", "openrouter", "huggingface", "artificialanalysis"),
}


def provider_key(provider: str | None) -> str:
    value = (provider or "").lower()
    return PROVIDER_ALIASES.get(value, value)


def _split_variant(model: str) -> tuple[str, str | None]:
    base, _, variant = model.partition(":")
    return base, variant or None


def match_key(provider: str | None, model: str | None) -> str | None:
    """``meta/3-3-70b-instruct-llama`` style key: provider plus sorted slug tokens."""
    if not model:
        return None
    base, _ = _split_variant(model.lower())
    base = _DATE_SUFFIX.sub("", base)
    tokens = sorted(t for t in _TOKEN_SPLIT.split(base) if t)
    return f"{provider_key(provider)}/{'-'.join(tokens)}" if tokens else None


def _alias_key(alias: str) -> str | None:
    provider, _, model = alias.lower().partition("/")
    return match_key(provider, model) if model else None


def is_variant(record: SourceModel) -> bool:
    return record.source == "openrouter" and ":" in record.source_id


class _Groups:
    """Union-find over record indexes, refusing merges that pair two records of one source."""

    def __init__(self, records: Sequence[SourceModel]) -> None:
        self.parent = list(range(len(records)))
        self.sources: list[set[SourceName]] = [{r.source} for r in records]

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb or self.sources[ra] & self.sources[rb]:
            return
        self.parent[rb] = ra
        self.sources[ra] |= self.sources[rb]


def _link_by(groups: _Groups, keyed: Iterable[tuple[str | None, int]]) -> None:
    first: dict[str, int] = {}
    for key, index in keyed:
        if key is None:
            continue
        if key in first:
            groups.union(first[key], index)
        else:
            first[key] = index


def unify(records: Sequence[SourceModel]) -> list[UnifiedModel]:
    """One ``UnifiedModel`` per real model, sorted by id."""
    bases = [r for r in records if not is_variant(r)]
    variants = [r for r in records if is_variant(r)]
    groups = _Groups(bases)
    hf = [((r.hugging_face_id or "").lower() or None, i) for i, r in enumerate(bases)]
    _link_by(groups, hf)
    own = [(match_key(r.provider, r.model), i) for i, r in enumerate(bases)]
    aliases = [(_alias_key(a), i) for i, r in enumerate(bases) for a in r.aliases]
    _link_by(groups, [*own, *aliases])

    members: dict[int, list[SourceModel]] = defaultdict(list)
    for i, record in enumerate(bases):
        members[groups.find(i)].append(record)
    unified = [_merge(group) for group in members.values()]
    by_openrouter_id = {
        m.source_ids["openrouter"]: n for n, m in enumerate(unified) if "openrouter" in m.source_ids
    }
    for variant in variants:
        base_id, name = _split_variant(variant.source_id)
        target = by_openrouter_id.get(base_id)
        if target is None:
            unified.append(_merge([variant]))
            continue
        model = unified[target]
        found = dict(model.extras.get("openrouter_variants", {}))
        found[name or ""] = {
            "id": variant.source_id,
            "context_length": variant.context_length,
            "input_price": variant.input_price,
            "output_price": variant.output_price,
        }
        unified[target] = model.model_copy(
            update={"extras": {**model.extras, "openrouter_variants": found}}
        )
    return _unique_ids(unified)


def _pick(group: Sequence[SourceModel], field: str, attr: str) -> Any:
    by_source = {r.source: r for r in group}
    for source in PRECEDENCE[field]:
        record = by_source.get(source)
        if record is not None:
            value = getattr(record, attr)
            if value not in (None, (), ""):
                return value
    return None


def _canonical_id(group: Sequence[SourceModel]) -> tuple[str, str]:
    by_source = {r.source: r for r in group}
    for source in PRECEDENCE["id"]:
        record = by_source.get(source)
        if record is not None and record.model:
            provider = (record.provider or "unknown").lower()
            model, _ = _split_variant(record.model.lower())
            return f"{provider}/{model}", provider
    first = group[0]
    return first.source_id.lower(), (first.provider or "unknown").lower()


def _merge(group: Sequence[SourceModel]) -> UnifiedModel:
    model_id, provider = _canonical_id(group)
    extras: dict[str, Any] = {r.source: r.extras for r in group if r.extras}
    return UnifiedModel(
        id=model_id,
        provider=provider,
        name=_pick(group, "name", "name") or model_id,
        context_length=_pick(group, "context_length", "context_length"),
        max_output=_pick(group, "max_output", "max_output"),
        input_price=_pick(group, "price", "input_price"),
        output_price=_pick(group, "price", "output_price"),
        input_modalities=_pick(group, "modalities", "input_modalities") or (),
        output_modalities=_pick(group, "modalities", "output_modalities") or (),
        capabilities=_pick(group, "capabilities", "capabilities") or (),
        release_date=_pick(group, "release_date", "release_date"),
        open_weights=_pick(group, "open_weights", "open_weights"),
        status=_pick(group, "status", "status") or "active",
        sources=tuple(sorted({r.source for r in group})),
        source_ids={r.source: r.source_id for r in group},
        extras=extras,
    )


def _unique_ids(models: list[UnifiedModel]) -> list[UnifiedModel]:
    """Two groups that picked the same id keep both: the later one is qualified by source."""
    seen: set[str] = set()
    result: list[UnifiedModel] = []
    for model in sorted(models, key=lambda m: (m.id, m.sources)):
        unique = model
        if model.id in seen:
            unique = model.model_copy(update={"id": f"{model.id}@{model.sources[0]}"})
        seen.add(unique.id)
        result.append(unique)
    return result
