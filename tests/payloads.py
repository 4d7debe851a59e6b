"""Dictionary batches shaped like seed 004's example, and signing helpers for tests."""

from __future__ import annotations

import uuid
from typing import Any

from producers.sender import encode_body, signed_headers

SEED_ENTRY: dict[str, Any] = {
    "en": "hello",
    "ru": "привет",
    "level": "A0",
    "register": "разговорная",
    "accent": "both",
    "frequencyRank": 1200,
    "rarity": "не редкое",
    "ipaUk": "həˈləʊ",
    "ipaUs": "həˈloʊ",
    "example": "Hello, how are you?",
    "exampleRu": "Привет, как дела?",
}


def entry(word: str, **fields: Any) -> dict[str, Any]:
    return {**SEED_ENTRY, "en": word, "example": f"{word}!", **fields}


def batch(
    words: list[str] | None = None,
    *,
    request_id: str | None = None,
    lang: str = "en",
    entries: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "requestId": request_id or f"test-{uuid.uuid4()}",
        "source": "de-ai-worker",
        "payloadVersion": "1",
        "lang": lang,
        "actorUsername": "admin_username",
        "entries": entries if entries is not None else [entry(w) for w in (words or ["hello"])],
    }


def signed(payload: dict[str, Any], secret: str) -> tuple[bytes, dict[str, str]]:
    body = encode_body(payload)
    return body, signed_headers(secret, str(payload["requestId"]), body)
