"""JSON a user gives on the command line or in a file, read as the api will store it."""

from __future__ import annotations

import json
import math
from typing import Any


def strict_loads(text: str) -> Any:
    """``json.loads`` without ``NaN``, ``Infinity`` and numbers past a double's range
    (``1e400``), which no JSON document holds and neither PostgreSQL nor orjson store.
    Raises ValueError."""
    return json.loads(text, parse_constant=_refuse, parse_float=_finite)


def _refuse(constant: str) -> float:
    raise ValueError(f"{constant} is not JSON")


def _finite(number: str) -> float:
    value = float(number)
    if not math.isfinite(value):
        raise ValueError(f"{number} is past the range of a JSON number")
    return value
