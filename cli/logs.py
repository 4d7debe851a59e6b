"""Logging for syncbus processes: one line per record, never a secret."""

from __future__ import annotations

import logging


def configure(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("faust", "mode", "httpx", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    # aiokafka logs dozens of errors a second while the broker is away; Faust reconnects.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
