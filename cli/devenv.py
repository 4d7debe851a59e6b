"""``<data-dir>/dev.env``: what ``syncbus dev`` tells a second terminal, and how clients read it."""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path

FILE_NAME = "dev.env"
DEFAULT_PATH = Path(".syncbus") / FILE_NAME
PATH_VARIABLE = "SYNCBUS_DEV_ENV"
PUSH_PATH = "/api/internal/dictionary-upserts"
# The credentials `syncbus dev` gives its api and worker.
CREDENTIALS = (
    "ADMIN_API_KEY",
    "ADMIN_PIN",
    "INTERNAL_SYNC_SHARED_SECRET",
    "INTERNAL_SYNC_TOKEN",
    "INTERNAL_SYNC_SECRET",
)


def dev_env_values(env: Mapping[str, str], port: int) -> dict[str, str]:
    """Everything a client of the dev stack needs, from the environment its children got."""
    url = f"http://127.0.0.1:{port}"
    return {
        "DATABASE_URL": env["DATABASE_URL"],
        "KAFKA_BOOTSTRAP_SERVERS": env["KAFKA_BOOTSTRAP_SERVERS"],
        "SYNCBUS_URL": url,
        # topics, tail and replay name the dev stack's topics with it
        **(
            {"SYNCBUS_TOPIC_PREFIX": env["SYNCBUS_TOPIC_PREFIX"]}
            if "SYNCBUS_TOPIC_PREFIX" in env
            else {}
        ),
        **{key: env[key] for key in CREDENTIALS},
        "RF_SYNC_URL": url + PUSH_PATH,
        # The server accepts any of its comma-separated secrets; the sender signs with one.
        "RF_SYNC_SHARED_SECRET": env["INTERNAL_SYNC_SHARED_SECRET"].split(",")[0].strip(),
    }


def write_dev_env(path: Path, values: Mapping[str, str]) -> None:
    """``KEY=VALUE`` lines, readable by the owner only, replaced in one step."""
    for key, value in values.items():
        if "\n" in value or "=" in key:
            raise ValueError(f"{key} cannot be written to {path.name}")
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        os.fchmod(file.fileno(), 0o600)  # an older file of that name keeps its own mode
        file.write("".join(f"{key}={value}\n" for key, value in values.items()))
    os.replace(temporary, path)


def read_dev_env(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.lstrip().startswith("#"):
            values[key.strip()] = value
    return values


def dev_env_path(environ: Mapping[str, str]) -> Path:
    """``$SYNCBUS_DEV_ENV``, else ``.syncbus/dev.env`` in the current directory."""
    return Path(environ.get(PATH_VARIABLE) or DEFAULT_PATH)


def load_dev_env(environ: MutableMapping[str, str] = os.environ) -> Path | None:
    """Fill the variables ``environ`` lacks from the dev stack's file; the environment wins.

    Returns the file read, or None when there is none (no ``syncbus dev`` running).
    """
    path = dev_env_path(environ)
    try:
        values = read_dev_env(path)
    except FileNotFoundError:
        return None
    for key, value in values.items():
        if not environ.get(key):
            environ[key] = value
    return path
