"""Reading a Server-Sent Events stream with httpx (the CLI follows job progress with it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class SseEvent:
    id: str | None
    event: str
    data: dict[str, Any]


def iter_events(response: httpx.Response) -> Iterator[SseEvent]:
    """Parse frames as they arrive; comments (keep-alive pings) are skipped."""
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if line == "":
            if "data" in fields:
                data = json.loads(fields["data"])
                yield SseEvent(fields.get("id"), fields.get("event", "message"), data)
            fields = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        fields[name] = value[1:] if value.startswith(" ") else value
