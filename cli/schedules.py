"""``syncbus schedules``: list, add, pause, resume, remove and run schedules through the api."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.console import error, make_console
from cli.devenv import DEFAULT_PATH, PATH_VARIABLE

if TYPE_CHECKING:  # the client is imported when a command runs: `syncbus` starts faster
    from cli.schedule_api import SchedulesApi

REFUSED = 2
HELP = f"""Manage the periodic syncs the leading worker fires, through the running api.

ID is a schedule's id or a name no other schedule has. Exit 0 ok, 1 the run failed
(run --wait), 2 refused, unreachable or not found.

Unset variables are read from {DEFAULT_PATH} (or ${PATH_VARIABLE})."""

app = typer.Typer(
    name="schedules",
    help=HELP,
    short_help="Manage periodic syncs: list, add, pause, resume, rm, run.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
console = make_console()

Url = Annotated[
    str, typer.Option("--url", envvar="SYNCBUS_URL", help="Base URL of the running api.")
]
AdminKey = Annotated[
    str | None,
    typer.Option(
        "--admin-key",
        envvar="ADMIN_API_KEY",
        show_default=False,
        help="The api's admin key (the first, if ADMIN_API_KEY lists several).",
    ),
]
ScheduleId = Annotated[
    str,
    typer.Argument(
        metavar="ID", show_default=False, help="The schedule's id, or its name if unique."
    ),
]
DEFAULT_URL = "http://127.0.0.1:8000"


@contextmanager
def _api(url: str, admin_key: str | None) -> Iterator[SchedulesApi]:
    """The api client; a refusal is printed as one line (plus an ambiguous name's matches)."""
    from cli.schedule_api import Refused, SchedulesApi

    if not admin_key:
        error(console, "ADMIN_API_KEY (or --admin-key) is required")
        raise typer.Exit(REFUSED)
    try:
        with SchedulesApi(url, admin_key.split(",")[0].strip()) as api:
            yield api
    except Refused as exc:
        error(console, str(exc))
        for line in exc.matches:
            console.print(f"  {line}", markup=False, highlight=False)
        raise typer.Exit(REFUSED) from None


def _out(line: str) -> None:
    make_console(stderr=False).print(line, markup=False, highlight=False)


@app.command("list", help="List the schedules: a table, or the api's JSON with --json.")
def list_schedules(
    domain: Annotated[
        str | None, typer.Option(show_default=False, help="Only this domain's schedules.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the api's JSON instead of a table.")
    ] = False,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
) -> None:
    from cli.schedule_api import schedules_table

    with _api(url, admin_key) as api:
        body = api.list(domain)
    if as_json:
        print(json.dumps(body))
    else:
        make_console(stderr=False).print(schedules_table(body["items"]))


@app.command(
    help="Create a schedule and print its next run.\n\n"
    "Give --cron (with --timezone) or --every; its syncs get each --param."
)
def add(
    name: Annotated[
        str, typer.Argument(metavar="NAME", show_default=False, help="The schedule's name.")
    ],
    domain: Annotated[
        str, typer.Option(show_default=False, help="Which domain it syncs (a pull domain).")
    ],
    scope: Annotated[
        str | None, typer.Option(show_default=False, help="Scope of the sync (default: default).")
    ] = None,
    mode: Annotated[
        str | None,
        typer.Option(show_default=False, help="full or incremental (default: the domain's)."),
    ] = None,
    cron: Annotated[
        str | None,
        typer.Option(show_default=False, help="Five-field cron expression, e.g. '0 2 * * *'."),
    ] = None,
    timezone: Annotated[
        str | None,
        typer.Option(show_default=False, help="IANA time zone the cron is read in (default UTC)."),
    ] = None,
    every: Annotated[
        str | None,
        typer.Option(show_default=False, help="Fire at this interval instead: 90s, 15m, 2h, 1d."),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            show_default=False,
            metavar="KEY=VALUE",
            help="A parameter of each sync, repeatable; a JSON VALUE (10, true) is kept as one.",
        ),
    ] = None,
    disabled: Annotated[
        bool, typer.Option("--disabled", help="Create it paused (resume starts it).")
    ] = False,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
) -> None:
    from cli.schedule_api import summary

    body = _new_schedule(name, domain, scope, mode, cron, timezone, every, param or [], disabled)
    with _api(url, admin_key) as api:
        created = api.create(body)
    _out(f"created {summary(created)}")


def _new_schedule(
    name: str,
    domain: str,
    scope: str | None,
    mode: str | None,
    cron: str | None,
    timezone: str | None,
    every: str | None,
    params: list[str],
    disabled: bool,
) -> dict[str, Any]:
    """The POST body; a mistake in the options is one line and exit 2."""
    from cli.schedule_api import parse_every, parse_params

    try:
        if (cron is None) == (every is None):
            raise ValueError("give exactly one of --cron and --every")
        if timezone is not None and cron is None:
            raise ValueError("--timezone applies to --cron only")
        body: dict[str, Any] = {"name": name, "domain": domain, "params": parse_params(params)}
        if every is not None:
            body["interval_seconds"] = parse_every(every)
    except ValueError as exc:
        error(console, str(exc))
        raise typer.Exit(REFUSED) from None
    optional = {"scope": scope, "mode": mode, "cron": cron, "timezone": timezone}
    body.update({key: value for key, value in optional.items() if value is not None})
    if disabled:
        body["enabled"] = False
    return body


@app.command(help="Pause a schedule: it stops firing and has no next run.")
def pause(schedule_id: ScheduleId, url: Url = DEFAULT_URL, admin_key: AdminKey = None) -> None:
    from cli.schedule_api import summary

    with _api(url, admin_key) as api:
        changed = api.update(api.resolve(schedule_id)["id"], {"enabled": False})
    _out(f"paused {summary(changed)}")


@app.command(help="Resume a paused schedule: its next run is counted from now.")
def resume(schedule_id: ScheduleId, url: Url = DEFAULT_URL, admin_key: AdminKey = None) -> None:
    from cli.schedule_api import summary

    with _api(url, admin_key) as api:
        changed = api.update(api.resolve(schedule_id)["id"], {"enabled": True})
    _out(f"resumed {summary(changed)}")


@app.command("rm", help="Delete a schedule (its past jobs stay).")
def remove(schedule_id: ScheduleId, url: Url = DEFAULT_URL, admin_key: AdminKey = None) -> None:
    from cli.schedule_api import where

    with _api(url, admin_key) as api:
        schedule = api.resolve(schedule_id)
        api.delete(schedule["id"])
    _out(f"deleted {where(schedule)} {schedule['id']}")


@app.command(
    help="Fire a schedule now, outside its timer. With --wait, follow the sync live like "
    "trigger --wait does; exit 1 if it fails."
)
def run(
    schedule_id: ScheduleId,
    wait: Annotated[bool, typer.Option(help="Follow progress until the sync ends.")] = False,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
) -> None:
    import httpx

    from cli.schedule_api import Refused, where
    from cli.trigger import follow

    with _api(url, admin_key) as api:
        schedule = api.resolve(schedule_id)
        job = api.run(schedule["id"])
        console.print(
            f"started {job['domain']} sync {job['id']} from schedule {where(schedule)}",
            markup=False,
            highlight=False,
        )
        if not wait:
            return
        try:
            code = follow(api.client, job["events_url"], console)
        except httpx.HTTPError as exc:
            raise Refused(f"lost the progress stream of {job['id']}: {exc}") from None
    raise typer.Exit(code)
