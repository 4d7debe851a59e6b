"""Domain handlers, one module each; ``HANDLERS`` maps a domain name to its handler."""

from __future__ import annotations

from streams.domains.base import DomainHandler
from streams.domains.dictionary import DictionaryHandler

HANDLERS: dict[str, DomainHandler] = {"dictionary": DictionaryHandler()}
