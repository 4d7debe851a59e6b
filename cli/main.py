"""The ``syncbus`` command: its options and help; each command hands off to a package."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from cli.config import (
    MISCONFIGURED,
    check_config_files,
    database_unreachable,
    database_url_problem,
    load_settings,
)
from cli.console import error, make_console
from cli.devenv import DEFAULT_PATH, PATH_VARIABLE, PUSH_PATH, load_dev_env
from cli.health_command import register as register_health_command
from cli.logs import configure
from cli.operate import register as register_operator_commands
from cli.schedules import app as schedules_app

HELP = f"""syncbus keeps data in PostgreSQL in step with outside sources. Systems ask it to
sync over HTTP, on a schedule or by publishing to Kafka; a worker fetches the data, applies
only what changed and reports progress you can follow live. syncbus dev runs all of it on
this machine; the api and worker commands are the two services of a deployment; send,
trigger, schedules, health, migrate, topics, tail, replay and inspect are clients of a
running one.

Every setting is an environment variable. The client commands also read {DEFAULT_PATH} in
the current directory (or the file ${PATH_VARIABLE} names), which a running syncbus dev
writes, for each variable the environment does not set: the environment always wins."""
CLIENT_NOTE = f"Unset variables are read from {DEFAULT_PATH} (or ${PATH_VARIABLE})."
# The commands that are clients of a running stack and so read the dev stack's file.
CLIENT_COMMANDS = frozenset(
    {"health", "trigger", "send", "migrate", "schedules", "topics", "tail", "replay", "inspect"}
)
app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help=HELP,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
)
console = make_console()
app.add_typer(schedules_app)


@app.callback()
def _read_dev_env(ctx: typer.Context) -> None:
    # Runs before the command's own options are parsed, so their env vars see the file too.
    if ctx.invoked_subcommand in CLIENT_COMMANDS:
        try:
            load_dev_env()
        except (OSError, UnicodeDecodeError) as exc:
            console.print(f"ignoring the dev stack's settings: {exc}", style="yellow", markup=False)


@app.command()
def dev(
    port: Annotated[
        int, typer.Option(min=1, max=65535, help="Port of the HTTP API on 127.0.0.1.")
    ] = 8000,
    kafka_port: Annotated[
        int,
        typer.Option(
            min=1,
            max=65535,
            help="Port of the embedded broker (unused if KAFKA_BOOTSTRAP_SERVERS).",
        ),
    ] = 9092,
    pg_port: Annotated[
        int,
        typer.Option(
            min=0,
            max=65535,
            help="Port of the embedded PostgreSQL, 0 for any free one (unused if DATABASE_URL).",
        ),
    ] = 0,
    data_dir: Annotated[
        Path, typer.Option(help="PostgreSQL data, logs, dev.env and dev.lock.")
    ] = Path(".syncbus"),
) -> None:
    """Run everything here: broker, PostgreSQL, api and a worker.

    The broker and PostgreSQL are embedded (pip-installed binaries) unless
    KAFKA_BOOTSTRAP_SERVERS or DATABASE_URL name others. While it runs, DATA_DIR/dev.env holds
    the addresses and credentials the other commands need in a second terminal. Ctrl-C stops
    everything.
    """
    from cli.dev import DevOptions, run_dev

    options = DevOptions(port=port, kafka_port=kafka_port, pg_port=pg_port, data_dir=data_dir)
    sys.exit(run_dev(options, console))


@app.command()
def api(
    host: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
) -> None:
    """Run the HTTP API (uvicorn)."""
    import uvicorn

    from api.app import create_app

    settings = load_settings(console)
    check_config_files(settings, console)
    configure(settings.log_level, settings.log_format)
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,  # uvicorn's loggers propagate to ours (text or JSON lines)
        log_level=settings.log_level.lower(),
        access_log=False,
        proxy_headers=False,
        timeout_graceful_shutdown=5,
    )


@app.command()
def worker() -> None:
    """Run the Faust worker: agents, outbox relay, reconciler."""
    from streams.worker import run_worker

    settings = load_settings(console)
    configure(settings.log_level, settings.log_format)
    run_worker(settings)


@app.command(help=f"Apply database migrations (Alembic) up to the newest.\n\n{CLIENT_NOTE}")
def migrate() -> None:
    from sqlalchemy.exc import OperationalError

    from db.migrate import upgrade

    settings = load_settings(console)
    configure(settings.log_level)
    problem = database_url_problem(settings)
    if problem is not None:
        error(console, problem)
        raise typer.Exit(MISCONFIGURED)
    try:
        upgrade(settings)
    except OperationalError as exc:
        error(console, database_unreachable(settings, exc))
        raise typer.Exit(MISCONFIGURED) from None
    console.print("database is up to date", style="green")


@app.command(
    help="Push a signed dictionary batch (seed 004's sender).\n\n"
    "Exit 0 when accepted (with --wait: when it succeeded), 1 when refused, failed or "
    "unreachable, 2 for bad usage (no secret, an unreadable batch, a bad --url).\n\n" + CLIENT_NOTE
)
def send(
    file: Annotated[Path, typer.Option("--file", "-f", help="Batch to push (JSON).")],
    wait: Annotated[bool, typer.Option(help="Poll until success/failed.")] = False,
    url: Annotated[
        str, typer.Option(envvar="RF_SYNC_URL", help="The api's dictionary push route.")
    ] = "http://127.0.0.1:8000" + PUSH_PATH,
    secret: Annotated[
        str | None,
        typer.Option(
            envvar="RF_SYNC_SHARED_SECRET",
            show_default=False,
            help="Secret that signs the batch: one of the api's INTERNAL_SYNC_SHARED_SECRET.",
        ),
    ] = None,
    source: Annotated[
        str, typer.Option(envvar="RF_SYNC_SOURCE", help="Sender name, for a batch without one.")
    ] = "de-ai-worker",
    retries: Annotated[
        int,
        typer.Option(
            envvar="RF_SYNC_RETRIES", min=0, max=20, help="Retries of network errors, 429, 5xx."
        ),
    ] = 4,
    timeout: Annotated[float, typer.Option(min=0, help="Seconds --wait waits.")] = 600.0,
) -> None:
    from cli.push import push

    if not secret:
        error(console, "RF_SYNC_SHARED_SECRET (or --secret) is required")
        raise typer.Exit(2)
    raise typer.Exit(
        push(
            file,
            url=url,
            secret=secret,
            source=source,
            retries=retries,
            wait=wait,
            timeout_s=timeout,
            console=console,
        )
    )


register_health_command(app, CLIENT_NOTE)  # here: --help lists commands in this order


@app.command(
    "trigger",
    help="Start a sync through the running api.\n\n"
    "With --wait, follow it with a live progress bar; exit 1 if it fails.\n\n" + CLIENT_NOTE,
)
def trigger_command(
    domain: Annotated[str, typer.Argument(help="Which domain to sync (models).")],
    wait: Annotated[bool, typer.Option(help="Follow progress until the sync ends.")] = False,
    url: Annotated[
        str, typer.Option(envvar="SYNCBUS_URL", help="Base URL of the running api.")
    ] = "http://127.0.0.1:8000",
    admin_key: Annotated[
        str | None,
        typer.Option(
            envvar="ADMIN_API_KEY",
            show_default=False,
            help="The api's admin key (the first, if ADMIN_API_KEY lists several).",
        ),
    ] = None,
) -> None:
    from cli.trigger import trigger

    if not admin_key:
        error(console, "ADMIN_API_KEY (or --admin-key) is required")
        raise typer.Exit(2)
    raise typer.Exit(
        trigger(domain, base_url=url, admin_key=admin_key.split(",")[0], wait=wait, console=console)
    )


@app.command("export-schemas")
def export_schemas() -> None:
    """Regenerate schemas/jsonschema/*.json from the models."""
    from cli.export_schemas import write

    for path in write():
        console.print(f"wrote {path}")


register_operator_commands(app, CLIENT_NOTE)


def main() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()
