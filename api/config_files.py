"""``SYNCBUS_APPS_FILE``: the saas domain's app instances, read and checked at start."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from schemas.saas import AppsFile, missing_secrets


class AppsFileError(Exception):
    """The apps file cannot be used; ``lines`` say why, one problem each."""

    def __init__(self, path: str, lines: list[str]) -> None:
        super().__init__(f"{path}: " + "; ".join(lines))
        self.lines = [f"{path}: {line}" for line in lines]


def load(path: str, environ: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Every app of the file with its defaults filled in; AppsFileError naming each
    problem (unknown connector, bad cron, a secret variable that is not set...)."""
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise AppsFileError(path, [f"cannot read it: {exc.strerror}"]) from None
    except yaml.YAMLError as exc:
        raise AppsFileError(path, [f"not valid YAML: {exc}".splitlines()[0]]) from None
    try:
        apps = AppsFile.model_validate(document)
    except ValidationError as exc:
        raise AppsFileError(path, [_where(e) for e in exc.errors()]) from None
    resolved = [app.resolved() for app in apps.apps]
    env = dict(os.environ) if environ is None else environ
    problems = [
        f"app {app['app_key']}: the secret variable {name} is not set"
        for app in resolved
        for name in missing_secrets(app, env)
    ]
    if problems:
        raise AppsFileError(path, problems)
    return resolved


def _where(error: Any) -> str:
    loc = ".".join(str(p) for p in error.get("loc", ()))
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{loc}: {message}" if loc else message
