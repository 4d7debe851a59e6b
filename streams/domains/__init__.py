"""Domain handlers, one package or module each; ``build_handlers`` maps a domain to its handler."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.settings import Settings
from streams.domains.base import DomainHandler
from streams.domains.dictionary import DictionaryHandler
from streams.domains.git.handler import GitHandler
from streams.domains.models.handler import ModelsHandler
from streams.domains.saas.handler import SaasHandler


def build_handlers(settings: Settings, engine: AsyncEngine) -> dict[str, DomainHandler]:
    return {
        "dictionary": DictionaryHandler(),
        "models": ModelsHandler(settings),
        "saas": SaasHandler(settings, engine),
        "git": GitHandler(settings, engine),
    }
