"""``syncbus``: dev, api, worker, migrate, send. Thin: each command hands off to a package."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cli.logs import configure
from schemas.settings import Settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
console = Console(stderr=True)


@app.command()
def dev(
    port: Annotated[int, typer.Option(help="Port of the HTTP API.")] = 8000,
    data_dir: Annotated[Path, typer.Option(help="Where embedded PostgreSQL keeps data.")] = Path(
        ".syncbus"
    ),
) -> None:
    """Run everything on this machine: embedded broker and PostgreSQL, the api and a worker."""
    from cli.dev import run_dev

    sys.exit(run_dev(port=port, data_dir=data_dir, console=console))


@app.command()
def api(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
) -> None:
    """Run the HTTP API (uvicorn)."""
    import uvicorn

    from api.app import create_app

    settings = Settings()
    configure(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        access_log=False,
        proxy_headers=False,
        timeout_graceful_shutdown=5,
    )


@app.command()
def worker() -> None:
    """Run the Faust worker: an agent per domain, outbox relay and reconciler."""
    from streams.worker import run_worker

    settings = Settings()
    configure(settings.log_level)
    run_worker(settings)


@app.command()
def migrate() -> None:
    """Apply database migrations (Alembic) up to the newest."""
    from db.migrate import upgrade

    settings = Settings()
    configure(settings.log_level)
    upgrade(settings)
    console.print("[green]database is up to date[/green]")


@app.command()
def send(
    file: Annotated[Path, typer.Option("--file", "-f", help="Batch to push (JSON).")],
    wait: Annotated[bool, typer.Option(help="Poll until success/failed.")] = False,
    url: Annotated[str | None, typer.Option(envvar="RF_SYNC_URL")] = None,
    secret: Annotated[
        str | None, typer.Option(envvar="RF_SYNC_SHARED_SECRET", show_default=False)
    ] = None,
    source: Annotated[str, typer.Option(envvar="RF_SYNC_SOURCE")] = "de-ai-worker",
    retries: Annotated[int, typer.Option(envvar="RF_SYNC_RETRIES", min=0, max=20)] = 4,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits.")] = 600.0,
) -> None:
    """Push a signed dictionary batch (seed 004's DE sender); exit 1 if it fails."""
    from producers.sender import DictionarySender, SendError

    target = url or "http://127.0.0.1:8000/api/internal/dictionary-upserts"
    if not secret:
        console.print("[red]RF_SYNC_SHARED_SECRET (or --secret) is required[/red]")
        raise typer.Exit(2)
    try:
        payload = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        console.print(f"[red]cannot read {file}: {exc}[/red]")
        raise typer.Exit(2) from None
    if not isinstance(payload, dict):
        console.print(f"[red]{file} must hold a JSON object[/red]")
        raise typer.Exit(2)

    def on_retry(attempt: int, reason: str) -> None:
        console.print(f"[yellow]attempt {attempt} failed ({reason}); retrying[/yellow]")

    sender = DictionarySender(
        url=target, secret=secret, source=source, retries=retries, on_retry=on_retry
    )
    payload = sender.prepare(payload)
    try:
        answer = sender.push(payload)
        console.print(
            f"{'replayed' if answer.get('replay') else 'queued'} "
            f"requestId={answer['requestId']} status={answer['status']}"
        )
        if wait:
            with console.status(f"waiting for {answer['requestId']}"):
                final = sender.wait(str(answer["requestId"]), timeout_s=timeout)
            print(json.dumps(final, ensure_ascii=False))
            if final["status"] != "success":
                console.print(f"[red]failed: {final.get('errorMessage')}[/red]")
                raise typer.Exit(1)
    except SendError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None


@app.command()
def health(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    max_sync_age_hours: Annotated[float, typer.Option(min=0)] = 25,
    min_models: Annotated[int, typer.Option(min=0)] = 100,
    max_failure_rate: Annotated[float, typer.Option(min=0, max=100)] = 20,
    recent: Annotated[int, typer.Option(min=1)] = 10,
) -> None:
    """Models sync health (seed 003): exit 0 healthy, 1 warning, 2 critical."""
    from rich.table import Table

    from db.model_health import HealthConfig, check_health

    config = HealthConfig(max_sync_age_hours, min_models, max_failure_rate, recent)
    report = check_health(Settings().libpq_url, config)
    if as_json:
        print(json.dumps(report.as_dict()))
    else:
        colours = {"ok": "green", "warning": "yellow", "critical": "red"}
        table = Table(title=f"models sync health: {report.severity}")
        for column in ("check", "status", "detail"):
            table.add_column(column)
        for check in report.checks:
            colour = colours[check.severity]
            table.add_row(check.name, f"[{colour}]{check.severity}[/{colour}]", check.detail)
        Console().print(table)
    raise typer.Exit(report.exit_code)


@app.command("trigger")
def trigger_command(
    domain: Annotated[str, typer.Argument(help="Which domain to sync (models).")],
    wait: Annotated[bool, typer.Option(help="Follow progress until the sync ends.")] = False,
    url: Annotated[str, typer.Option(envvar="SYNCBUS_URL")] = "http://127.0.0.1:8000",
    admin_key: Annotated[
        str | None, typer.Option(envvar="ADMIN_API_KEY", show_default=False)
    ] = None,
) -> None:
    """Start a sync through the running api; with --wait show a live progress bar."""
    from cli.trigger import trigger

    if not admin_key:
        console.print("[red]ADMIN_API_KEY (or --admin-key) is required[/red]")
        raise typer.Exit(2)
    raise typer.Exit(
        trigger(domain, base_url=url, admin_key=admin_key.split(",")[0], wait=wait, console=console)
    )


@app.command("export-schemas")
def export_schemas() -> None:
    """Regenerate schemas/jsonschema/*.json from the envelope models."""
    from cli.export_schemas import write

    for path in write():
        console.print(f"wrote {path}")


def main() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()
