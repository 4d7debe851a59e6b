"""Reading whole SSE streams in tests, with the CLI's parser."""

from __future__ import annotations

import httpx

from cli.sse import SseEvent, iter_events

__all__ = ["SseEvent", "iter_events", "read_all"]


def read_all(
    client: httpx.Client, url: str, headers: dict[str, str] | None = None
) -> list[SseEvent]:
    """Read a stream until the server closes it."""
    with client.stream("GET", url, headers=headers or {}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(iter_events(response))
