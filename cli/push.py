"""``syncbus send``: push one signed dictionary batch from a file and, if asked, wait for it."""

from __future__ import annotations

import json
import math
from pathlib import Path

from rich.console import Console

from cli.console import error
from producers.sender import DictionarySender, SendError


def _refuse(constant: str) -> float:
    raise ValueError(f"{constant} is not JSON")


def _finite(number: str) -> float:
    value = float(number)
    if not math.isfinite(value):
        raise ValueError(f"{number} is past the range of a JSON number")
    return value


def push(
    file: Path,
    *,
    url: str,
    secret: str,
    source: str,
    retries: int,
    wait: bool,
    timeout_s: float,
    console: Console,
) -> int:
    """Exit code: 0 accepted (or succeeded with ``wait``), 1 refused or failed, 2 bad file."""
    try:
        payload = json.loads(
            file.read_text(encoding="utf-8"), parse_constant=_refuse, parse_float=_finite
        )
    except (OSError, ValueError) as exc:
        error(console, f"cannot read {file}: {exc}")
        return 2
    if not isinstance(payload, dict):
        error(console, f"{file} must hold a JSON object")
        return 2

    def on_retry(attempt: int, reason: str) -> None:
        console.print(
            f"attempt {attempt} failed ({reason}); retrying", style="yellow", markup=False
        )

    sender = DictionarySender(
        url=url, secret=secret, source=source, retries=retries, on_retry=on_retry
    )
    payload = sender.prepare(payload)
    try:
        answer = sender.push(payload)
        console.print(
            f"{'replayed' if answer.get('replay') else 'queued'} "
            f"requestId={answer['requestId']} status={answer['status']}",
            markup=False,
            highlight=False,
        )
        if not wait:
            return 0
        with console.status(f"waiting for {answer['requestId']}"):
            final = sender.wait(str(answer["requestId"]), timeout_s=timeout_s)
        print(json.dumps(final, ensure_ascii=False), flush=True)
        if final["status"] != "success":
            error(console, f"failed: {final.get('errorMessage')}")
            return 1
        return 0
    except SendError as exc:
        error(console, str(exc))
        return 1
