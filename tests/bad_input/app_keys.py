"""App keys right and wrong: the configured app, unknown ones, and keys outside the pattern."""

from __future__ import annotations

import functools
import re

from hypothesis import strategies as st

from tests.bad_input.request import Target, quoted

# Seed 001's app_key: 1 to 64 of these characters and nothing else (not even a final newline).
APP_KEY_RULE = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Well-formed keys no app has (the stack configures one app, Target.app_key).
UNKNOWN_KEYS = ("nope", "stripe_prod", "a", "A-1_b", "k" * 64, "STRIPE_TEST", "0")
# Keys outside ^[A-Za-z0-9_-]{1,64}$, as text: (label, key).
BAD_KEYS: dict[str, str] = {
    "empty": "",
    "65 characters": "k" * 65,
    "10000 characters": "k" * 10000,
    "space inside": "bad key",
    "trailing newline": "nope\n",
    "leading newline": "\nnope",
    "trailing space": "nope ",
    "dot": "a.b",
    "slash": "a/b",
    "dot-dot": "..",
    "backslash": "a\\b",
    "NUL character": "a\x00b",
    "control character U+0001": "a\x01b",
    "DEL character": "a\x7fb",
    "tab": "a\tb",
    "Cyrillic letters": "ключ",
    "fullwidth letters": "ｓｔｒｉｐｅ",
    "Arabic-Indic digits": "١٢٣",
    "superscript digit": "key²",
    "dotless i (upper() is ASCII)": "ı",
    "long s (upper() is S)": "ſtripe",
    "combining accent": "e\u0301",
    "zero-width space": "a\u200bb",
    "bidi override": "\u202ekey",
    "emoji": "😀",
    "lone surrogate": "\ud800",
    "SQL text": "x' OR '1'='1",
    "percent sign": "a%b",
    "question mark": "a?b",
    "hash": "a#b",
    "JSON text": '{"a":1}',
    "the configured key with a trailing newline": "{app}\n",
    "the configured key, 65 characters": "{app}" + "k" * 64,
}

# What storage and environment lookups choke on, and what Python's "$" lets through: drawn
# more often than the rest.
FEATURED_BAD_KEYS = (
    "NUL character",
    "trailing newline",
    "the configured key with a trailing newline",
    "lone surrogate",
    "control character U+0001",
)


def well_formed(key: object) -> bool:
    """Whether ``key`` is a string matching seed 001's pattern exactly."""
    return isinstance(key, str) and APP_KEY_RULE.fullmatch(key) is not None


def env_suffix(key: str) -> str:
    """The suffix of an app's default secret variables (STRIPE_API_KEY_<suffix>)."""
    return key.upper().replace("-", "_")


@functools.cache
@st.composite
def app_key(draw: st.DrawFn, t: Target, known_share: float = 0.3) -> tuple[str, str]:
    """(key, label): the configured app's, an unknown well-formed one, or a bad one."""
    roll = draw(st.floats(0, 1))
    if roll < known_share:
        return t.app_key, "the configured app"
    if roll < known_share + (1 - known_share) / 3:
        return draw(st.sampled_from(UNKNOWN_KEYS)), "an unknown app"
    name = draw(st.sampled_from(FEATURED_BAD_KEYS if draw(st.booleans()) else sorted(BAD_KEYS)))
    return BAD_KEYS[name].replace("{app}", t.app_key), f"app_key: {name}"


# Keys as raw bytes inside a JSON string: control bytes JSON forbids, bytes UTF-8 forbids.
RAW_KEYS: dict[str, bytes] = {
    "raw control byte 0x01": b"a\x01b",
    "raw NUL byte": b"a\x00b",
    "raw newline": b"nope\n",
    "raw DEL byte": b"a\x7fb",
    "raw latin-1 byte 0xE9": b"caf\xe9",
    "raw 0xB2 (²)": b"key\xb2",
    "raw UTF-8 Cyrillic": "ключ".encode(),
    "raw UTF-8 zero-width space": "a\u200bb".encode(),
}


@st.composite
def raw_key_body(draw: st.DrawFn, rest: bytes) -> tuple[bytes, str]:
    """A JSON object whose app_key holds raw bytes, then ``rest`` (',"k":v' pairs or b'')."""
    name = draw(st.sampled_from(sorted(RAW_KEYS)))
    return b'{"app_key":"' + RAW_KEYS[name] + b'"' + rest + b"}", f"app_key: {name}"


# Path segments for an app key: (label, raw bytes of the segment).
RAW_SEGMENTS: dict[str, bytes] = {
    "raw byte 0xFF": b"a\xffb",
    "raw UTF-8 Cyrillic": "ключ".encode(),
    "raw 0xB2 (²)": b"key\xb2",
    "raw control byte 0x01": b"a\x01b",
    "raw space": b"a b",
    "raw tab": b"a\tb",
}
# Segments that are not one key: (label, bytes).
ODD_SEGMENTS: dict[str, bytes] = {
    "encoded slash": b"a%2Fb",
    "broken percent escape": b"%G1",
    "encoded dot-dot": b"%2e%2e",
    "encoded NUL": b"%00",
    "encoded 0xFF": b"%FF",
    "matrix parameter": b"nope;x=1",
    "8 KB": b"k" * 8192,
}


@functools.cache
@st.composite
def app_segment(draw: st.DrawFn, t: Target, known_share: float = 0.3) -> tuple[bytes, str, bool]:
    """(path segment, label, whether uvicorn's parser may refuse it) for /…/{app_key}."""
    roll = draw(st.integers(0, 29))
    if roll == 0:
        name = draw(st.sampled_from(sorted(RAW_SEGMENTS)))
        return RAW_SEGMENTS[name], f"app_key segment: {name}", True
    if roll < 4:
        name = draw(st.sampled_from(sorted(ODD_SEGMENTS)))
        return ODD_SEGMENTS[name], f"app_key segment: {name}", False
    key, label = draw(app_key(t, known_share))
    return quoted(key), label, False
