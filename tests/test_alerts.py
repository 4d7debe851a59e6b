"""Alerts open once and resolve once: listed, published on Kafka, posted to a webhook."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from cli.processes import free_port
from db import alerts as db_alerts
from db.engine import create_engine
from tests.kafka_tools import read_topic
from tests.payloads import batch, entry, signed
from tests.stack import SECRET, Stack
from tests.waiting import wait_for


class Webhook:
    """A local Slack/Discord-style incoming webhook: records bodies, fails the first N."""

    def __init__(self, fail_first: int) -> None:
        self.received: list[dict[str, Any]] = []
        self.refused = 0
        self._fail = fail_first
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length))
                if hook._fail > 0:
                    hook._fail -= 1
                    hook.refused += 1
                    self.send_response(500)
                else:
                    hook.received.append(body)
                    self.send_response(200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.port = free_port()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/T000/B000"

    def texts(self) -> list[str]:
        return [str(b["text"]) for b in self.received]

    def __enter__(self) -> Webhook:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    with Webhook(fail_first=1) as hook:
        yield hook


def alerts(stack: Stack, **params: str) -> list[dict[str, Any]]:
    with stack.client() as client:
        return list(client.get("/v1/alerts", params=params).json()["items"])


def test_a_failed_job_opens_one_alert_that_resolves_once(
    isolated_stack: Stack, webhook: Webhook
) -> None:
    stack = isolated_stack
    stack.env_overrides.update(
        {
            "SYNCBUS_ALERT_INTERVAL_S": "0.3",
            "SYNCBUS_ALERT_FAILED_WINDOW_S": "4",
            "SYNCBUS_ALERT_WEBHOOK_URL": webhook.url,
            "SYNCBUS_LEADER_POLL_S": "0.5",
            "SYNCBUS_SCHEDULER_TICK_S": "0.2",
            "MODELS_SYNC_CRON": "",
        }
    )
    stack.start_worker()
    stack.start_api()
    payload = batch(entries=[entry("fine"), {"en": "", "ru": "пусто"}])
    body, headers = signed(payload, SECRET)
    assert httpx.post(stack.push_url, content=body, headers=headers).status_code == 202

    opened = wait_for(lambda: alerts(stack, status="open"), timeout=30, what="the alert")
    assert [(a["key"], a["rule"], a["severity"]) for a in opened] == [
        ("job_failed:dictionary", "job_failed", "critical")
    ]
    assert "1 dictionary sync(s) failed" in opened[0]["summary"]
    assert "entry 1" in opened[0]["summary"], "the latest error says what went wrong"

    wait_for(lambda: webhook.received, timeout=30, what="the webhook, after one refusal")
    resolved = wait_for(lambda: alerts(stack, status="resolved"), timeout=30, what="resolve")
    assert resolved[0]["id"] == opened[0]["id"] and resolved[0]["resolved_at"]
    wait_for(lambda: len(webhook.received) >= 2, timeout=30, what="the resolved message")

    assert webhook.refused == 1
    texts = webhook.texts()
    assert len(texts) == 2, texts  # dozens of passes, one message each way
    assert texts[0].startswith("[syncbus] CRITICAL: 1 dictionary sync(s) failed")
    assert texts[1].startswith("[syncbus] RESOLVED: ")
    assert all(b["content"] == b["text"] for b in webhook.received), "Discord reads content"
    assert alerts(stack) == resolved, "one alert in all"

    events = read_topic(
        stack.broker.bootstrap,
        f"{stack.env['SYNCBUS_TOPIC_PREFIX']}alerts",
        until=lambda vs: len(vs) >= 2,
    )
    assert [(e["event"], e["key"]) for e in events] == [
        ("opened", "job_failed:dictionary"),
        ("resolved", "job_failed:dictionary"),
    ]
    assert events[0]["_headers"]["schema"] == "syncbus.alert/v1"
    assert "T000" not in stack.log("worker"), "the webhook URL is a secret"


def test_queued_past_its_sla_and_a_missed_schedule_open_warnings(isolated_stack: Stack) -> None:
    stack = isolated_stack
    stack.env_overrides.update(
        {
            "SYNCBUS_ALERT_INTERVAL_S": "0.3",
            "SYNCBUS_ALERT_QUEUED_SLA_S": "1",
            "SYNCBUS_ALERT_SCHEDULE_GRACE_S": "1",
            "SYNCBUS_LEADER_POLL_S": "0.5",
            # The scheduler ticks when the worker starts to lead, then not for an hour.
            "SYNCBUS_SCHEDULER_TICK_S": "3600",
            "MODELS_SYNC_CRON": "",
            # Nobody consumes requests: the reconciler would otherwise republish them.
            "SYNCBUS_RECONCILE_AFTER_S": "3600",
        }
    )
    stack.start_api()
    # A job recorded but never published (no outbox row): nothing can consume it, so it
    # stays queued however fast the worker joins its consumer group.
    stack.execute(
        "INSERT INTO sync_jobs (id, request_id, domain, scope, mode, trigger) "
        "VALUES (gen_random_uuid(), 'late', 'dictionary', 'default', 'full', 'push')"
    )
    stack.start_worker()
    wait_for(lambda: "this worker leads" in stack.log("worker"), what="a leader")
    with stack.client() as client:
        made = client.post(
            "/v1/schedules", json={"domain": "models", "name": "late", "interval_seconds": 60}
        ).json()
    make_late = "UPDATE schedules SET next_run = now() - interval '1 minute' WHERE id = %s"
    stack.execute(make_late, (made["id"],))
    rearmed = False

    def both_open() -> dict[str, str] | None:
        nonlocal rearmed
        if not rearmed and "schedule models/default/late fired" in stack.log("worker"):
            # The leader's one tick came after the update and fired it: late again, for good.
            stack.execute(make_late, (made["id"],))
            rearmed = True
        # One read: until rearmed, that tick can still resolve the missed one right after.
        severities = {a["key"]: a["severity"] for a in alerts(stack, status="open")}
        return severities if severities.keys() >= expected else None

    expected = {"queued_past_sla:dictionary", f"schedule_missed:{made['id']}"}
    severities = wait_for(both_open, timeout=30, what="both warnings")
    assert {severities[k] for k in expected} == {"warning"}


def test_a_resolved_notice_waits_while_its_opened_notice_is_retried(
    isolated_stack: Stack,
) -> None:
    """Posted during the "opened" notice's backoff, a "resolved" one would be read first
    and the alert taken for open: an alert's notices go out in order, those of the alert
    opened again for the same key too (a new alert row). Another key's are not held up,
    and a notice given up on holds nothing."""
    stack = isolated_stack
    add_alert = (
        "INSERT INTO alerts (key, rule, severity, status, summary) "
        "VALUES (%s, 'job_failed', 'critical', %s, 'summary') RETURNING id"
    )
    notify = (
        "INSERT INTO alert_notifications (alert_id, event, attempts, next_attempt_at) "
        "VALUES (%s, %s, %s, now() + make_interval(secs => %s)) RETURNING id"
    )
    with stack.db() as db:
        (resolved_alert,) = db.execute(add_alert, ("job_failed:a", "resolved")).fetchone() or ()
        (other_alert,) = db.execute(add_alert, ("job_failed:b", "open")).fetchone() or ()
        (reopened,) = db.execute(add_alert, ("job_failed:a", "open")).fetchone() or ()
        (in_backoff,) = db.execute(notify, (resolved_alert, "opened", 1, 3600)).fetchone() or ()
        (resolved,) = db.execute(notify, (resolved_alert, "resolved", 0, -1)).fetchone() or ()
        db.execute(notify, (reopened, "opened", 0, -1))
        db.execute(notify, (other_alert, "opened", 0, -1))

    def due() -> list[tuple[int, str]]:
        async def read() -> list[tuple[int, str]]:
            engine = create_engine(stack.settings, pool_size=1)
            try:
                async with engine.connect() as conn:
                    rows = await db_alerts.pending_notifications(conn)
                return [(row["alert_id"], row["event"]) for row in rows]
            finally:
                await engine.dispose()

        return asyncio.run(read())

    assert due() == [(other_alert, "opened")]
    stack.execute("UPDATE alert_notifications SET gave_up_at = now() WHERE id = %s", (in_backoff,))
    assert due() == [(resolved_alert, "resolved"), (other_alert, "opened")]
    stack.execute("UPDATE alert_notifications SET delivered_at = now() WHERE id = %s", (resolved,))
    assert due() == [(reopened, "opened"), (other_alert, "opened")]
