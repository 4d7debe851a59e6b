"""``syncbus send``: push one signed dictionary batch from a file and, if asked, wait for it."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from cli.console import error
from cli.http_client import BadOption, checked_url
from cli.json_input import strict_loads
from producers.sender import DictionarySender, SendError


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
        payload = strict_loads(file.read_text(encoding="utf-8"))
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

    try:
        checked_url(url)
    except BadOption as exc:
        error(console, str(exc))
        return 2
    sender = DictionarySender(
        url=url, secret=secret, source=source, retries=retries, on_retry=on_retry
    )
    payload = sender.prepare(payload)
    request_id = payload["requestId"]
    if not (isinstance(request_id, str) and request_id.isascii() and request_id.isprintable()):
        error(console, f"{file}: requestId must be printable ASCII text (it is signed in a header)")
        return 2
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
