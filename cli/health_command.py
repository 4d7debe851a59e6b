"""The ``syncbus health`` command: its options, the models check's table, the hand-off of --all."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cli.config import load_settings
from cli.console import make_console

console = make_console()
HELP = (
    "Check the models sync's health (seed 003).\n\n"
    "With --all, every domain's: the leader's alert rules (SYNCBUS_ALERT_* thresholds) for "
    "each, the models check (SYNCBUS_HEALTH_*, or the options below) and the database.\n\n"
    "Exit 0 healthy, 1 warning, 2 critical.\n\n"
)
# health's options for the models check, and the settings they override with --all.
HEALTH_OPTIONS = {
    "max_sync_age_hours": "health_max_sync_age_hours",
    "min_models": "health_min_models",
    "max_failure_rate": "health_max_failure_rate",
    "recent": "health_recent_syncs",
}


def register(app: typer.Typer, client_note: str) -> None:
    """Add ``health`` to ``app``."""
    app.command(help=HELP + client_note)(health)


def health(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    all_domains: Annotated[
        bool,
        typer.Option("--all", help="Report every domain by the alert rules, and the database."),
    ] = False,
    max_sync_age_hours: Annotated[
        float,
        typer.Option(min=0, help="Warn when the last good sync is older (critical at twice)."),
    ] = 25,
    min_models: Annotated[
        int, typer.Option(min=0, help="Warn when fewer models are stored (critical at none).")
    ] = 100,
    max_failure_rate: Annotated[
        float,
        typer.Option(min=0, max=100, help="Warn when more of the recent syncs failed, in %."),
    ] = 20,
    recent: Annotated[
        int, typer.Option(min=1, help="How many recent finished syncs the failure rate counts.")
    ] = 10,
) -> None:
    from rich.table import Table

    from db.model_health import HealthConfig, check_health

    if all_domains:
        from cli.health import check_all, print_report

        settings = load_settings(console)
        given = {  # an option on the command line wins over its SYNCBUS_HEALTH_* setting
            setting: ctx.params[option]
            for option, setting in HEALTH_OPTIONS.items()
            if getattr(ctx.get_parameter_source(option), "name", None) == "COMMANDLINE"
        }
        everything = check_all(settings.model_copy(update=given))
        print_report(everything, as_json, make_console(stderr=False))
        raise typer.Exit(everything.exit_code)
    config = HealthConfig(max_sync_age_hours, min_models, max_failure_rate, recent)
    report = check_health(load_settings(console).libpq_url, config)
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
        make_console(stderr=False).print(table)
    raise typer.Exit(report.exit_code)
