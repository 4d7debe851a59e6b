"""``syncbus trigger <domain>``: start a sync over HTTP and follow it with a progress bar."""

from __future__ import annotations

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cli.console import error
from cli.http_client import BadOption, admin_client, shown
from cli.sse import SseEvent, iter_events

TRIGGER_PATHS = {"models": "/api/admin/sync-models"}


def trigger(domain: str, *, base_url: str, admin_key: str, wait: bool, console: Console) -> int:
    """Exit code: 0 started (or succeeded with --wait), 1 failed, 2 refused."""
    path = TRIGGER_PATHS.get(domain)
    if path is None:
        error(console, f"no trigger for domain '{domain}' (known: {', '.join(TRIGGER_PATHS)})")
        return 2
    try:
        client = admin_client(base_url, admin_key)
    except BadOption as exc:
        error(console, str(exc))
        return 2
    with client:
        try:
            response = client.post(path)
        except httpx.HTTPError as exc:
            error(console, f"cannot reach {shown(base_url)}: {exc}")
            return 2
        if response.status_code != 202:
            error(console, f"HTTP {response.status_code}: {_detail(response)}")
            return 2
        started = response.json()
        console.print(f"started {domain} sync {started['syncLogId']}")
        if not wait:
            return 0
        try:
            return follow(client, started["eventsUrl"], console)
        except httpx.HTTPError as exc:
            error(console, f"lost the progress stream from {shown(base_url)}: {exc}")
            return 2


def follow(client: httpx.Client, events_url: str, console: Console) -> int:
    """Show a job's SSE stream live until it ends; 0 when it completed, else 1."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    last_log = ""
    end: SseEvent | None = None
    with (
        Progress(*columns, console=console, transient=True) as progress,
        client.stream("GET", events_url, timeout=None) as response,
    ):
        task = progress.add_task("syncing", total=None)
        for event in iter_events(response):
            if event.event == "log":
                last_log = str(event.data.get("message", ""))
                progress.console.print(last_log, markup=False, highlight=False)
            elif event.event == "progress":
                progress.update(
                    task, completed=event.data.get("processed", 0), total=event.data.get("total")
                )
            elif event.event in ("complete", "error", "timeout"):
                end = event
                break
    # The outcome goes after the progress bar is gone, as the last line.
    if end is None:
        error(console, "the stream ended before the sync finished")
        return 1
    if end.event == "complete":
        console.print(f"[green]done[/green] {end.data.get('counts', {})}")
        return 0
    if end.event == "timeout":
        error(console, str(end.data.get("message") or "the stream timed out"))
        return 1
    reason = str(end.data.get("error") or "")
    # The worker's last log line ("Sync failed: <reason>") has said why already.
    error(console, f"sync failed: {reason}" if reason and reason not in last_log else "sync failed")
    return 1


def _detail(response: httpx.Response) -> str:
    """A problem document's ``detail``, else the body as text."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    return str(body.get("detail", body)) if isinstance(body, dict) else str(body)
