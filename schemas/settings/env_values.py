"""How raw environment values become settings: comma-separated lists, empty meaning unset."""

from __future__ import annotations

from typing import Annotated

from pydantic_settings import NoDecode

# Read as one string (not JSON) and split by split_commas.
CommaList = Annotated[list[str], NoDecode]


def split_commas(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def empty_is_unset(value: object) -> object:
    """``VAR=`` (as compose writes ``${VAR:-}``) means the same as not setting VAR."""
    return None if isinstance(value, str) and not value.strip() else value
