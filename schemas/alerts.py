"""Alerts: a condition a rule found, an alert as the API lists it, and the webhook's text."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

AlertSeverity = Literal["warning", "critical"]
AlertStatus = Literal["open", "resolved"]


class Condition(BaseModel):
    """Something wrong now. ``key`` names it (rule and subject): an alert opens when a key
    appears and resolves when it is gone."""

    key: str
    rule: str
    severity: AlertSeverity
    summary: str
    details: dict[str, Any] = Field(default_factory=dict)


class AlertView(BaseModel):
    """An alert, open or resolved."""

    id: int
    key: str
    rule: str
    severity: AlertSeverity
    status: AlertStatus
    summary: str
    details: dict[str, Any]
    opened_at: datetime
    last_seen_at: datetime
    resolved_at: datetime | None


class AlertList(BaseModel):
    items: list[AlertView]


def webhook_message(alert: AlertView, event: Literal["opened", "resolved"]) -> dict[str, str]:
    """The body Slack (``text``) and Discord (``content``) incoming webhooks both accept."""
    if event == "opened":
        line = f"[syncbus] {alert.severity.upper()}: {alert.summary}"
    else:
        line = f"[syncbus] RESOLVED: {alert.summary}"
    return {"text": line, "content": line[:2000]}
