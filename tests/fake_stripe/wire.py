"""Stripe's wire conventions: form-encoded query parameters, error bodies, API key masking."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

ParamValue = str | list[str] | dict[str, str]
Params = dict[str, ParamValue]

DOCS = "https://stripe.com/docs"
NO_KEY_MESSAGE = (
    "You did not provide an API key. You need to provide your API key in the Authorization "
    "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See "
    "https://stripe.com/docs/api#authentication for details, or we can help at "
    "https://support.stripe.com/."
)
RATE_LIMIT_MESSAGE = (
    "Request rate limit exceeded. You can learn more about rate limits here "
    "https://stripe.com/docs/rate-limits."
)
LOCK_TIMEOUT_MESSAGE = (
    "This object cannot be accessed right now because another API request or Stripe process is "
    "currently accessing it. If you see this error intermittently, retry the request. If you see "
    "this error frequently and are making multiple concurrent requests to a single object, make "
    "your requests serially or at a lower rate."
)
API_ERROR_MESSAGE = "An unknown error occurred"
KEY_PREFIXES = ("sk_test_", "sk_live_", "rk_test_", "rk_live_", "pk_test_", "pk_live_")
_KEY = re.compile(r"^([^\[\]]+)(?:\[([^\[\]]*)\])?$")
_INTEGER = re.compile(r"^-?[0-9]+$")


class StripeError(Exception):
    """An error answer: HTTP status plus Stripe's ``{"error": {...}}`` body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param

    def body(self) -> dict[str, Any]:
        """The JSON document Stripe sends, keys sorted as Stripe's are."""
        error: dict[str, Any] = {"message": self.message, "type": self.type}
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = f"{DOCS}/error-codes/{self.code.replace('_', '-')}"
        if self.param is not None:
            error["param"] = self.param
        return {"error": dict(sorted(error.items()))}


def mask_key(key: str) -> str:
    """A key as Stripe echoes it in errors: its prefix, stars, then the last four characters."""
    prefix = next((p for p in KEY_PREFIXES if key.startswith(p)), "")
    rest = key[len(prefix) :]
    if len(rest) <= 4:
        return prefix + "*" * len(rest)
    return prefix + "*" * (len(rest) - 4) + rest[-4:]


def api_key_of(authorization: str | None) -> str | None:
    """The key of ``Bearer <key>`` or of Basic auth's user name (``curl -u sk_test_...:``)."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value or None
    if scheme.lower() == "basic":
        try:
            user = base64.b64decode(value, validate=True).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user or None
    return None


def unknown_parameter(name: str) -> StripeError:
    return StripeError(
        400, f"Received unknown parameter: {name}", code="parameter_unknown", param=name
    )


def parse_params(pairs: list[tuple[str, str]]) -> Params:
    """Form pairs to values: ``a=1`` a string, ``a[]=1``/``a[0]=1`` a list, ``a[k]=1`` a dict."""
    params: Params = {}
    for key, value in pairs:
        match = _KEY.match(key)
        if match is None:
            raise unknown_parameter(key)
        name, sub = match.group(1), match.group(2)
        current = params.get(name)
        if sub is None:
            if current is not None and not isinstance(current, str):
                raise StripeError(400, f"Invalid {name}: mixed forms", param=name)
            params[name] = value
        elif sub == "" or sub.isdigit():
            if current is None:
                params[name] = current = []
            if not isinstance(current, list):
                raise StripeError(400, f"Invalid array for {name}", param=name)
            current.append(value)
        else:
            if current is None:
                params[name] = current = {}
            if not isinstance(current, dict):
                raise StripeError(400, f"Invalid hash for {name}", param=name)
            current[sub] = value
    return params


def integer(value: ParamValue, param: str) -> int:
    """A parameter that must be an integer, as Stripe's ``Invalid integer`` error says."""
    if not isinstance(value, str) or not _INTEGER.match(value):
        raise StripeError(
            400, f"Invalid integer: {value}", code="parameter_invalid_integer", param=param
        )
    return int(value)


def boolean(value: ParamValue, param: str) -> bool:
    if value in ("true", "false"):
        return value == "true"
    raise StripeError(400, f"Invalid boolean: {value}", param=param)


def string(value: ParamValue, param: str) -> str:
    if not isinstance(value, str):
        raise StripeError(400, f"Invalid string: {value}", param=param)
    return value


def string_list(value: ParamValue, param: str) -> list[str]:
    if not isinstance(value, list):
        raise StripeError(400, f"Invalid array for {param}", param=param)
    return value


def limit_of(params: Params) -> int:
    """``limit``, 1..100, default 10."""
    if "limit" not in params:
        return 10
    limit = integer(params["limit"], "limit")
    if limit < 1:
        raise StripeError(400, "This value must be greater than or equal to 1.", param="limit")
    if limit > 100:
        raise StripeError(400, "This value must be less than or equal to 100.", param="limit")
    return limit


def created_bounds(params: Params) -> tuple[int | None, int | None]:
    """``created`` / ``created[gt|gte|lt|lte]`` as [low, high) bounds in unix seconds."""
    raw = params.get("created")
    if raw is None:
        return None, None
    if isinstance(raw, str):
        exact = integer(raw, "created")
        return exact, exact + 1
    if isinstance(raw, list):
        raise StripeError(400, "Invalid hash for created", param="created")
    low: int | None = None
    high: int | None = None
    for op, text in raw.items():
        value = integer(text, f"created[{op}]")
        if op in ("gt", "gte"):
            bound = value + 1 if op == "gt" else value
            low = bound if low is None else max(low, bound)
        elif op in ("lt", "lte"):
            bound = value if op == "lt" else value + 1
            high = bound if high is None else min(high, bound)
        else:
            raise unknown_parameter(f"created[{op}]")
    return low, high
