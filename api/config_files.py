"""The YAML files the api loads at start: app instances (saas) and releases (git), checked."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from schemas.git import ReleaseIn
from schemas.saas import AppsFile, missing_secrets

M = TypeVar("M", bound=BaseModel)


class ConfigFileError(Exception):
    """A configuration file cannot be used; ``lines`` say why, one problem each."""

    def __init__(self, path: str, lines: list[str]) -> None:
        super().__init__(f"{path}: " + "; ".join(lines))
        self.lines = [f"{path}: {line}" for line in lines]


class ReleasesFile(BaseModel):
    """``SYNCBUS_RELEASES_FILE``: ``releases: [{name, git_branch, active}]``."""

    model_config = ConfigDict(extra="forbid")

    releases: list[dict[str, Any]]


def load_apps(path: str, environ: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Every app of the file with its defaults filled in; ConfigFileError naming each
    problem (unknown connector, bad cron, a secret variable that is not set...)."""
    apps = _validated(path, AppsFile)
    resolved = [app.resolved() for app in apps.apps]
    env = dict(os.environ) if environ is None else environ
    problems = [
        f"app {app['app_key']}: the secret variable {name} is not set"
        for app in resolved
        for name in missing_secrets(app, env)
    ]
    if problems:
        raise ConfigFileError(path, problems)
    return resolved


def load_releases(path: str, default_branch: str) -> list[dict[str, Any]]:
    """Every release of the file; one without a ``git_branch`` key gets ``default_branch``
    (GIT_REPO_BRANCH), one with ``git_branch: null`` has none."""
    document = _validated(path, ReleasesFile)
    problems: list[str] = []
    found: list[dict[str, Any]] = []
    for number, entry in enumerate(document.releases):
        try:
            release = ReleaseIn.model_validate({"git_branch": default_branch, **entry})
        except ValidationError as exc:
            problems += [f"releases.{number}.{_where(e)}" for e in exc.errors()]
            continue
        found.append(release.model_dump())
    names = [r["name"] for r in found]
    problems += [
        f"release {n} is listed twice" for n in sorted({n for n in names if names.count(n) > 1})
    ]
    if problems:
        raise ConfigFileError(path, problems)
    return found


def _validated(path: str, model: type[M]) -> M:
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigFileError(path, [f"cannot read it: {exc.strerror}"]) from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigFileError(path, [f"not valid YAML: {exc}".splitlines()[0]]) from None
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise ConfigFileError(path, [_where(e) for e in exc.errors()]) from None


def _where(error: Any) -> str:
    loc = ".".join(str(p) for p in error.get("loc", ()))
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{loc}: {message}" if loc else message
