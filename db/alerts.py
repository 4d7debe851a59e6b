"""The alert store: open and resolve each alert once, queue its webhook notifications."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import func, select, text, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from db import outbox_rows
from db.schedule_tables import alert_notifications, alerts
from schemas.alerts import AlertView, Condition
from schemas.events import AlertEvent
from schemas.topics import Topics

AlertChange = Literal["opened", "resolved"]


@dataclass(frozen=True)
class Changed:
    """An alert that opened or resolved in this pass, and its event's outbox row."""

    alert: AlertView
    event: AlertChange
    outbox_id: int


async def open_alerts(conn: AsyncConnection) -> dict[str, RowMapping]:
    rows = (await conn.execute(select(alerts).where(alerts.c.status == "open"))).mappings()
    return {r["key"]: r for r in rows}


async def reconcile(
    conn: AsyncConnection, conditions: Sequence[Condition], topics: Topics, *, notify: bool
) -> list[Changed]:
    """Make the open alerts match ``conditions``: open what is new, resolve what is gone,
    refresh what goes on (no new notification for it). Each change gets an event on
    ``syncbus.alerts`` and, with ``notify``, a webhook notification."""
    current = await open_alerts(conn)
    wanted = {c.key: c for c in conditions}
    changed: list[Changed] = []
    for key, condition in wanted.items():
        if key in current:
            await conn.execute(
                update(alerts)
                .where(alerts.c.id == current[key]["id"])
                .values(
                    last_seen_at=func.now(),
                    severity=condition.severity,
                    summary=condition.summary,
                    details=condition.details,
                )
            )
            continue
        insert = alerts.insert().values(**condition.model_dump()).returning(*alerts.c)
        row = (await conn.execute(insert)).mappings().one()
        changed.append(await _record(conn, row, "opened", topics, notify))
    for key, row in current.items():
        if key in wanted:
            continue
        stmt = (
            update(alerts)
            .where(alerts.c.id == row["id"])
            .values(status="resolved", resolved_at=func.now())
            .returning(*alerts.c)
        )
        resolved = (await conn.execute(stmt)).mappings().one()
        changed.append(await _record(conn, resolved, "resolved", topics, notify))
    return changed


async def _record(
    conn: AsyncConnection, row: RowMapping, event: AlertChange, topics: Topics, notify: bool
) -> Changed:
    alert = AlertView.model_validate(dict(row))
    envelope = AlertEvent(
        request_id=f"alert:{alert.id}:{event}",
        alert_id=alert.id,
        event=event,
        key=alert.key,
        rule=alert.rule,
        severity=alert.severity,
        summary=alert.summary,
        details=alert.details,
        opened_at=alert.opened_at,
        resolved_at=alert.resolved_at,
    )
    message = outbox_rows.outbox_row(
        topic=topics.alerts,
        key=alert.key,
        value=envelope.to_json(),
        headers=envelope.kafka_headers(),
        request_id=None,
    )
    outbox_id = await outbox_rows.add_outbox_row(conn, message)
    if notify:
        await conn.execute(alert_notifications.insert().values(alert_id=alert.id, event=event))
    return Changed(alert, event, outbox_id)


async def list_alerts(
    conn: AsyncConnection, status: str | None, limit: int
) -> Sequence[RowMapping]:
    stmt = select(alerts).order_by(alerts.c.opened_at.desc(), alerts.c.id.desc()).limit(limit)
    if status:
        stmt = stmt.where(alerts.c.status == status)
    return (await conn.execute(stmt)).mappings().all()


# An alert's notices go out in order: one waits while an earlier one for the same key is
# still being retried, or a "resolved" posted during the "opened" one's backoff would be
# read before it, and the alert taken for open. By key, not alert row: an alert that opens
# again is a new row, and a chat tells the two apart only by their text.
PENDING = text(
    "SELECT n.id AS notification_id, n.event, n.attempts, a.id AS alert_id, a.key, a.rule, "
    "a.severity, a.status, a.summary, a.details, a.opened_at, a.last_seen_at, a.resolved_at "
    "FROM alert_notifications n "
    "JOIN alerts a ON a.id = n.alert_id "
    "WHERE n.delivered_at IS NULL AND n.gave_up_at IS NULL AND n.next_attempt_at <= now() "
    "AND NOT EXISTS (SELECT FROM alert_notifications e JOIN alerts ea ON ea.id = e.alert_id "
    "WHERE ea.key = a.key AND e.id < n.id AND e.delivered_at IS NULL AND e.gave_up_at IS NULL) "
    "ORDER BY n.id LIMIT :n"
)


async def pending_notifications(conn: AsyncConnection, limit: int = 20) -> Sequence[RowMapping]:
    """Notifications due for (another) delivery, oldest first, with their alert's fields;
    none while an earlier one for the same alert key is neither delivered nor given up."""
    return (await conn.execute(PENDING, {"n": limit})).mappings().all()


async def delivered(conn: AsyncConnection, notification_id: int) -> None:
    await conn.execute(
        update(alert_notifications)
        .where(alert_notifications.c.id == notification_id)
        .values(delivered_at=func.now(), attempts=alert_notifications.c.attempts + 1)
    )


async def retry_later(
    conn: AsyncConnection, notification_id: int, error: str, at: datetime | None
) -> None:
    """Note a failed delivery; ``at`` None gives up (the alert itself stays listed)."""
    values: dict[str, object] = {
        "attempts": alert_notifications.c.attempts + 1,
        "last_error": error[:500],
    }
    if at is None:
        values["gave_up_at"] = func.now()
    else:
        values["next_attempt_at"] = at
    await conn.execute(
        update(alert_notifications)
        .where(alert_notifications.c.id == notification_id)
        .values(**values)
    )
