"""Settings for a command: read once, and a misconfiguration said in one line, never a traceback."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import typer
from psycopg.conninfo import conninfo_to_dict
from pydantic import ValidationError
from rich.console import Console

from cli.console import error
from schemas.settings import Settings
from schemas.settings.infrastructure import NOT_A_POSTGRESQL_URL

# Exit code of a command that cannot run as configured (the api and worker use it too).
MISCONFIGURED = 2


def load_settings(console: Console) -> Settings:
    """``Settings()``, or one line per invalid variable (its name and why) and exit 2."""
    try:
        return Settings()
    except ValidationError as exc:
        for line in invalid_settings(exc):
            error(console, line)
        raise typer.Exit(MISCONFIGURED) from None


def invalid_settings(exc: ValidationError) -> list[str]:
    """``invalid VAR: reason`` per error; the value itself is left out, it may be a secret."""
    lines = []
    for err in exc.errors(include_input=False, include_url=False):
        name = ".".join(str(part) for part in err["loc"]) or "settings"
        reason = err["msg"].removeprefix("Value error, ").removeprefix(f"{name}: ")
        if reason[:1].isupper() and reason[1:2].islower():  # "Input should ..." reads on
            reason = reason[:1].lower() + reason[1:]
        lines.append(f"invalid {name}: {reason}")
    return lines


def database_url_problem(settings: Settings) -> str | None:
    """Why DATABASE_URL cannot name a PostgreSQL database, or None (the URL is left out)."""
    url = settings.libpq_url
    try:
        parts = conninfo_to_dict(url) if url.startswith("postgresql://") else {}
    except psycopg.ProgrammingError:
        parts = {}
    if parts and str(parts.get("port") or 5432).isdigit():
        return None
    return NOT_A_POSTGRESQL_URL


def database_unreachable(settings: Settings, exc: BaseException) -> str:
    """``cannot connect to PostgreSQL at host:port (DATABASE_URL): reason``, without the URL.

    The URL may hold a password, so only its host and port are named.
    """
    parts = conninfo_to_dict(settings.libpq_url)
    where = f"{parts.get('host') or 'localhost'}:{parts.get('port') or 5432}"
    return f"cannot connect to PostgreSQL at {where} (DATABASE_URL): {_reason(exc)}"


def _reason(exc: BaseException) -> str:
    """libpq's own words, first line, without the repeated 'connection to server ...' prefix."""
    cause = getattr(exc, "orig", None) or exc
    first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    reason = first.rsplit(" failed: ", 1)[-1].strip()
    reason = reason.removeprefix("FATAL:").strip()
    return reason[:1].lower() + reason[1:]


def check_config_files(settings: Settings, console: Console) -> None:
    """The api refuses to start on a bad ``SYNCBUS_APPS_FILE`` or ``SYNCBUS_RELEASES_FILE``:
    one line per problem, exit 2."""
    from api.config_files import ConfigFileError, load_apps, load_releases

    checks: list[tuple[str, Callable[[], object]]] = []
    if settings.apps_file:
        apps = settings.apps_file
        checks.append(("SYNCBUS_APPS_FILE", lambda: load_apps(apps)))
    if settings.releases_file:
        path, branch = settings.releases_file, settings.git_repo_branch
        checks.append(("SYNCBUS_RELEASES_FILE", lambda: load_releases(path, branch)))
    failed = False
    for variable, check in checks:
        try:
            check()
        except ConfigFileError as exc:
            failed = True
            for line in exc.lines:
                error(console, f"invalid {variable} {line}")
    if failed:
        raise typer.Exit(MISCONFIGURED) from None
