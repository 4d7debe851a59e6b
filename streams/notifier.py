"""Posting alerts to a Slack or Discord incoming webhook, retried with backoff, never blocking."""

from __future__ import annotations

import logging
from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from db import alerts, schedules
from producers.quiet import Quiet
from schemas.alerts import AlertView, webhook_message

log = logging.getLogger(__name__)

TIMEOUT_S = 5.0
MAX_BACKOFF_S = 300.0


def backoff(attempts: int) -> timedelta:
    """2 s, 4 s, 8 s ... at most five minutes between two tries of one notification."""
    return timedelta(seconds=min(MAX_BACKOFF_S, 2.0 ** max(1, attempts)))


class Notifier:
    """Delivers pending notifications; the leader runs it as its own duty, so a slow or
    failing webhook delays nothing else. No database connection is held while posting."""

    def __init__(self, engine: AsyncEngine, url: str, max_attempts: int) -> None:
        self._engine = engine
        self._url = url
        self._max_attempts = max_attempts
        self._quiet = Quiet(log, "alert webhook")

    async def deliver(self) -> int:
        async with self._engine.connect() as conn:
            pending = await alerts.pending_notifications(conn)
        delivered = 0
        async with httpx.AsyncClient(timeout=TIMEOUT_S) as client:
            for row in pending:
                alert = AlertView.model_validate({**dict(row), "id": row["alert_id"]})
                notification = row["notification_id"]
                error = await self._post(client, webhook_message(alert, row["event"]))
                async with self._engine.begin() as conn:
                    if error is None:
                        await alerts.delivered(conn, notification)
                        delivered += 1
                        continue
                    attempts = row["attempts"] + 1
                    when = None
                    if attempts < self._max_attempts:
                        when = await schedules.now(conn) + backoff(attempts)
                    await alerts.retry_later(conn, notification, error, when)
                self._quiet.failed(
                    f"{error} (alert {alert.id}, attempt {attempts}{'' if when else ', giving up'})"
                )
        if delivered:
            self._quiet.succeeded()
        return delivered

    async def _post(self, client: httpx.AsyncClient, body: dict[str, str]) -> str | None:
        """None when the webhook took it, else why not (never the URL: it is a secret)."""
        try:
            response = await client.post(self._url, json=body)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}"
        if response.status_code >= 300:
            return f"HTTP {response.status_code}"
        return None
