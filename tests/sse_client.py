"""A minimal Server-Sent Events reader over httpx (what a curl -N client sees)."""

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
    """Parse frames as they arrive; comments (pings) are skipped."""
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if line == "":
            if "data" in fields:
                yield SseEvent(
                    fields.get("id"), fields.get("event", "message"), json.loads(fields["data"])
                )
            fields = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        fields[name] = value[1:] if value.startswith(" ") else value


def read_all(
    client: httpx.Client, url: str, headers: dict[str, str] | None = None
) -> list[SseEvent]:
    """Read a stream until the server closes it."""
    with client.stream("GET", url, headers=headers or {}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(iter_events(response))
