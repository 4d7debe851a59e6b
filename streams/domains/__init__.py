"""Domain handlers, one package or module each; ``build_handlers`` maps a domain to its handler."""

from __future__ import annotations

from schemas.settings import Settings
from streams.domains.base import DomainHandler
from streams.domains.dictionary import DictionaryHandler
from streams.domains.models.handler import ModelsHandler


def build_handlers(settings: Settings) -> dict[str, DomainHandler]:
    return {"dictionary": DictionaryHandler(), "models": ModelsHandler(settings)}
