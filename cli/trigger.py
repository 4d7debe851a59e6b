"""``syncbus trigger <domain>``: start a sync over HTTP and follow it with a progress bar."""

from __future__ import annotations

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cli.sse import iter_events

TRIGGER_PATHS = {"models": "/api/admin/sync-models"}


def trigger(domain: str, *, base_url: str, admin_key: str, wait: bool, console: Console) -> int:
    """Exit code: 0 started (or succeeded with --wait), 1 failed, 2 refused."""
    path = TRIGGER_PATHS.get(domain)
    if path is None:
        console.print(
            f"[red]no trigger for domain '{domain}' (known: {', '.join(TRIGGER_PATHS)})[/red]"
        )
        return 2
    headers = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
        try:
            response = client.post(path)
        except httpx.HTTPError as exc:
            console.print(f"[red]cannot reach {base_url}: {exc}[/red]")
            return 2
        if response.status_code != 202:
            detail = response.json().get("detail", response.text) if response.content else ""
            console.print(f"[red]HTTP {response.status_code}: {detail}[/red]")
            return 2
        started = response.json()
        console.print(f"started {domain} sync {started['syncLogId']}")
        if not wait:
            return 0
        return _follow(client, started["eventsUrl"], console)


def _follow(client: httpx.Client, events_url: str, console: Console) -> int:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with (
        Progress(*columns, console=console, transient=True) as progress,
        client.stream("GET", events_url, timeout=None) as response,
    ):
        task = progress.add_task("syncing", total=None)
        for event in iter_events(response):
            if event.event == "log":
                progress.console.print(event.data.get("message", ""))
            elif event.event == "progress":
                progress.update(
                    task, completed=event.data.get("processed", 0), total=event.data.get("total")
                )
            elif event.event == "complete":
                counts = event.data.get("counts", {})
                console.print(f"[green]done[/green] {counts}")
                return 0
            elif event.event in ("error", "timeout"):
                console.print(f"[red]{event.data.get('error') or event.data.get('message')}[/red]")
                return 1
    console.print("[red]the stream ended before the sync finished[/red]")
    return 1
