"""What a JSON value must be for PostgreSQL and orjson to store it: checked at the edge.

Python's ``json`` reads ``1e400`` as ``inf``, keeps integers of any size, lone surrogates
(``"\\ud800"``) and NUL characters, and nests as deep as its recursion allows; PostgreSQL's
jsonb and text refuse each of these, and orjson refuses integers beyond 64 bits and nesting
beyond 255 levels. A request carrying one is bad input (4xx), never a failed write (5xx).
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

import orjson
from pydantic import AfterValidator

MAX_DEPTH = 64
MAX_PARAMS_BYTES = 65_536
INT_MIN = -(2**63)
INT_MAX = 2**64 - 1


def text_problem(value: str, *, controls: bool = True) -> str | None:
    """Why PostgreSQL cannot store ``value`` as text (or, with ``controls=False``, why it is
    no identifier), or None."""
    if "\x00" in value:
        return "contains a NUL character"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "contains a lone UTF-16 surrogate (not valid Unicode)"
    if not controls and any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return "contains a control character"
    return None


def json_problem(value: Any, max_depth: int = MAX_DEPTH, *, read_back: bool = False) -> str | None:
    """Why ``value`` (as parsed from JSON) cannot be stored, naming where, or None.
    ``read_back``: the value is also read back from jsonb into a model (parameters)."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        where = path or "the value"
        if isinstance(item, dict | list):
            if depth >= max_depth:
                return f"{where}: nested deeper than {max_depth} levels"
            children = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in children:
                if isinstance(key, str) and (reason := text_problem(key)):
                    return f"{where}: a key {reason}"
                stack.append((child, f"{path}.{key}" if path else str(key), depth + 1))
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not INT_MIN <= item <= INT_MAX:
                return f"{where}: integer out of range (64 bits at most)"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"{where}: number out of range (not a finite double)"
            # jsonb writes 1e20 as 100000000000000000000: it would read back as an integer
            # beyond 64 bits, which orjson (and this check) refuse.
            if read_back and not INT_MIN <= item <= INT_MAX:
                return f"{where}: number out of range (at most 64-bit integer magnitude)"
        elif isinstance(item, str) and (reason := text_problem(item)):
            return f"{where}: {reason}"
    return None


def _storable(value: Any) -> Any:
    reason = json_problem(value)
    if reason is not None:
        raise ValueError(reason)
    return value


def _storable_params(value: dict[str, Any]) -> dict[str, Any]:
    reason = json_problem(value, read_back=True)
    if reason is not None:
        raise ValueError(reason)
    return value


def _params(value: dict[str, Any]) -> dict[str, Any]:
    _storable_params(value)
    size = len(orjson.dumps(value))
    if size > MAX_PARAMS_BYTES:
        raise ValueError(f"params take {size} bytes as JSON; at most {MAX_PARAMS_BYTES}")
    return value


def _identifier(value: str) -> str:
    reason = text_problem(value, controls=False)
    if reason is not None:
        raise ValueError(reason)
    return value


# Any JSON value PostgreSQL's jsonb and orjson both take.
StorableJson = Annotated[Any, AfterValidator(_storable)]
StorableObject = Annotated[dict[str, Any], AfterValidator(_storable)]
# A request's parameters: stored in jsonb and read back into a request model.
StorableParams = Annotated[dict[str, Any], AfterValidator(_storable_params)]
# ...as a caller of the api gives them (they travel inside every Kafka request).
Params = Annotated[dict[str, Any], AfterValidator(_params)]
# A short name or id: printable text (no NUL, control characters or lone surrogates).
Identifier = Annotated[str, AfterValidator(_identifier)]


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(value: str) -> str:
    """``value`` with each NUL and lone surrogate replaced by U+FFFD: text PostgreSQL
    stores. For what syncbus reads from elsewhere (a test file's docstring), not what it
    is sent (that is refused: json_problem)."""
    return _UNSTORABLE.sub("\ufffd", value) if _UNSTORABLE.search(value) else value


def storable_json(value: Any) -> bytes:
    """orjson's bytes of ``value``, its strings made storable (storable_text) when any of
    them needs it."""
    try:
        data = orjson.dumps(value)
    except orjson.JSONEncodeError:  # a lone surrogate
        return orjson.dumps(_scrubbed(value))
    return orjson.dumps(_scrubbed(value)) if b"\\u0000" in data else data


def _scrubbed(value: Any) -> Any:
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return {
            storable_text(k) if isinstance(k, str) else k: _scrubbed(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrubbed(v) for v in value]
    return value
