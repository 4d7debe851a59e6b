"""``syncbus schedules``' client of ``/v1/schedules``: requests, refusals, ids, display."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import httpx
from rich.table import Table

from cli.http_client import BadOption, admin_client, shown
from cli.json_input import strict_loads

PATH = "/v1/schedules"
UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
EVERY = re.compile(r"(\d+)\s*(s|min|m|h|d)")
EVERY_HINT = "a whole number and a unit: 90s, 15m, 2h or 1d"


class Refused(Exception):
    """The api refused, could not be reached, or the id names no schedule: exit 2.

    ``str()`` is the one line to print; ``matches`` lists candidates of an ambiguous name.
    """

    def __init__(self, message: str, matches: list[str] | None = None) -> None:
        super().__init__(message)
        self.matches = matches or []


def parse_every(text: str) -> int:
    """``90s``, ``15m``/``15min``, ``2h``, ``1d`` in seconds; ValueError says what to give."""
    match = EVERY.fullmatch(text.strip().lower())
    if match is None or int(match[1]) == 0:
        raise ValueError(f"invalid --every '{text}': give {EVERY_HINT}")
    return int(match[1]) * UNITS[match[2]]


def parse_params(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; a VALUE that is JSON (``10``, ``true``, ``"x"``) is read as such."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"invalid --param '{item}': give KEY=VALUE")
        try:
            params[key.strip()] = strict_loads(value)
        except ValueError:  # not JSON (NaN included): the text itself
            params[key.strip()] = value
    return params


def describe_timer(schedule: dict[str, Any]) -> str:
    """``cron 0 2 * * * (UTC)`` or ``every 15 min``."""
    if schedule.get("cron"):
        return f"cron {schedule['cron']} ({schedule['timezone']})"
    seconds = int(schedule["interval_seconds"])
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"every {seconds // size} {unit}"
    return f"every {seconds} s"


def when(value: str | None) -> str:
    """An API timestamp as ``YYYY-MM-DD HH:MM:SS UTC``; ``-`` for none."""
    if not value:
        return "-"
    return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def where(schedule: dict[str, Any]) -> str:
    return f"{schedule['domain']}/{schedule['scope']}/{schedule['name']}"


def problem_line(response: httpx.Response) -> str:
    """``HTTP 422: <the problem document's detail>`` on one line."""
    try:
        body = response.json()
    except ValueError:
        body = response.text[:500]
    detail = body.get("detail", body) if isinstance(body, dict) else body
    return " ".join(f"HTTP {response.status_code}: {detail}".split())


class SchedulesApi:
    """An admin client of the running api's schedules."""

    def __init__(self, base_url: str, admin_key: str) -> None:
        self.base_url = base_url
        try:
            self.client = admin_client(base_url, admin_key)
        except BadOption as exc:
            raise Refused(str(exc)) from None

    def __enter__(self) -> SchedulesApi:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.client.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The answer when it is a success, else Refused with the reason in one line."""
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise Refused(" ".join(f"cannot reach {shown(self.base_url)}: {exc}".split())) from None
        if response.status_code >= 400:
            raise Refused(problem_line(response))
        return response

    def list(self, domain: str | None = None) -> dict[str, Any]:
        params = {"domain": domain} if domain else {}
        body: dict[str, Any] = self.request("GET", PATH, params=params).json()
        return body

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = self.request("POST", PATH, json=body).json()
        return created

    def update(self, schedule_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        changed: dict[str, Any] = self.request(
            "PATCH", f"{PATH}/{schedule_id}", json=changes
        ).json()
        return changed

    def delete(self, schedule_id: str) -> None:
        self.request("DELETE", f"{PATH}/{schedule_id}")

    def run(self, schedule_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self.request("POST", f"{PATH}/{schedule_id}/run").json()
        return job

    def resolve(self, ident: str) -> dict[str, Any]:
        """The schedule ``ident`` names: its id, or a name no other schedule has."""
        if _is_uuid(ident):
            try:
                found: dict[str, Any] = self.request("GET", f"{PATH}/{ident}").json()
                return found
            except Refused as exc:
                if not str(exc).startswith("HTTP 404"):
                    raise
                by_id = exc  # perhaps a name that looks like an id
        else:
            by_id = None
        named = [s for s in self.list()["items"] if s["name"] == ident]
        if len(named) == 1:
            return dict(named[0])
        if named:
            raise Refused(
                f"'{ident}' is ambiguous: {len(named)} schedules have that name; give the id",
                [f"{s['id']}  {where(s)}" for s in named],
            )
        raise by_id or Refused(f"no schedule has the id or name '{ident}'")


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def summary(schedule: dict[str, Any]) -> str:
    state = "enabled" if schedule["enabled"] else "paused"
    return (
        f"{where(schedule)} {schedule['id']}: {describe_timer(schedule)}, {state}, "
        f"next run {when(schedule['next_run'])}"
    )


def schedules_table(items: list[dict[str, Any]]) -> Table:
    table = Table(title=f"{len(items)} schedule(s)")
    columns = ("name", "domain/scope", "mode", "timer", "enabled", "next run", "last run")
    for column in (*columns, "last status", "id"):
        table.add_column(column, no_wrap=column in ("id", "next run", "last run"))
    for s in items:
        table.add_row(
            s["name"],
            f"{s['domain']}/{s['scope']}",
            s["mode"],
            describe_timer(s),
            "yes" if s["enabled"] else "no",
            when(s["next_run"]),
            when(s["last_run"]),
            s["last_status"] or "-",
            s["id"],
        )
    return table
