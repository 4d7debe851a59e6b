"""/metrics on the api and the worker: what a push, a failing job, refusals, an SSE client
and a database outage do to them; a worker whose metrics port is taken; the dashboard."""

from __future__ import annotations

import json
import re
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cli.embedded import EmbeddedBroker, EmbeddedPostgres
from producers.publisher import SyncRequestPublisher
from tests.payloads import batch, entry, signed
from tests.sse_client import iter_events
from tests.stack import SECRET, Stack
from tests.waiting import wait_for

DOCS = Path(__file__).resolve().parent.parent / "docs"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def exposed(url: str) -> tuple[set[str], set[str]]:
    """The series names ``url`` exposes (a histogram's _bucket, _sum and _count too), and its
    metrics as the docs name them (a counter by its _total series, a histogram by its name)."""
    series: set[str] = set()
    metrics: set[str] = set()
    for family in text_string_to_metric_families(httpx.get(url, timeout=10).text):
        name = f"{family.name}_total" if family.type == "counter" else family.name
        metrics.add(name)
        series.add(name)
        if family.type == "histogram":
            series.update(f"{family.name}_{part}" for part in ("bucket", "sum", "count"))
    return series, metrics


def push(stack: Stack, payload: dict[str, object]) -> None:
    body, headers = signed(payload, SECRET)
    response = httpx.post(stack.push_url, content=body, headers=headers, timeout=30)
    assert response.status_code == 202, response.text


def job_status(stack: Stack, request_id: str) -> str | None:
    found = stack.scalar("SELECT status FROM sync_jobs WHERE request_id = %s", (request_id,))
    return None if found is None else str(found)


def finished(stack: Stack, request_id: str) -> str:
    def ended() -> str | None:
        status = job_status(stack, request_id)
        return status if status in ("succeeded", "failed") else None

    return wait_for(ended, timeout=60, what=f"job {request_id}")


def test_api_and_worker_metrics_move_with_a_push_and_a_failing_job(
    isolated_stack: Stack,
) -> None:
    stack = isolated_stack
    stack.start_worker()
    stack.start_api()
    good, bad = batch(["metric-ok"]), batch(entries=[entry("metric-bad", level="Z9")])
    push(stack, good)
    assert finished(stack, str(good["requestId"])) == "succeeded"
    push(stack, bad)
    assert finished(stack, str(bad["requestId"])) == "failed"
    job_id = stack.scalar("SELECT id FROM sync_jobs WHERE request_id = %s", (good["requestId"],))
    with stack.client() as admin, stack.client(admin=False) as anonymous:
        assert admin.get(f"/v1/syncs/{job_id}").status_code == 200
        assert anonymous.get("/v1/syncs").status_code == 401
        assert anonymous.get(f"/no/such/{uuid.uuid4()}").status_code == 404

    api = scrape(f"{stack.url}/metrics")
    push_route = {"route": "/api/internal/dictionary-upserts", "method": "POST"}
    assert value(api, "syncbus_http_requests_total", **push_route, status="202") == 2
    assert value(api, "syncbus_http_request_duration_seconds_count", **push_route) == 2
    job_route = {"route": "/v1/syncs/{job_id}", "method": "GET"}
    assert value(api, "syncbus_http_requests_total", **job_route, status="200") == 1
    assert value(api, "syncbus_http_auth_refusals_total", route="/v1/syncs", status="401") == 1
    unknown = {"route": "unmatched", "method": "GET", "status": "404"}
    assert value(api, "syncbus_http_requests_total", **unknown) == 1
    routes = {dict(labels).get("route") for _, labels in api}
    assert not any(str(job_id) in str(r) or "/no/such" in str(r) for r in routes), routes
    assert value(api, "syncbus_database_up") == 1
    assert value(api, "syncbus_jobs", domain="dictionary", status="queued") == 0
    assert value(api, "syncbus_queue_oldest_age_seconds", domain="dictionary") == 0
    assert value(api, "syncbus_outbox_backlog") is not None

    def counted() -> Samples | None:
        # The worker counts a job after its commit (and a failed one after its dead
        # letter's ack), a moment after the row says it ended.
        samples = scrape(stack.metrics_url())
        ended = [
            value(samples, "syncbus_jobs_processed_total", domain="dictionary", outcome=outcome)
            for outcome in ("succeeded", "failed")
        ]
        dead = value(samples, "syncbus_dead_letters_total", domain="dictionary")
        return samples if all(ended) and dead else None

    worker = wait_for(counted, timeout=10, what="the worker's counters of both jobs")
    for outcome in ("succeeded", "failed"):
        labels = {"domain": "dictionary", "outcome": outcome}
        assert value(worker, "syncbus_jobs_processed_total", **labels) == 1, outcome
        assert value(worker, "syncbus_job_duration_seconds_count", **labels) == 1, outcome
    assert value(worker, "syncbus_dead_letters_total", domain="dictionary") == 1
    assert value(worker, "syncbus_requests_waiting_for_database") == 0
    topic = f"{stack.env['SYNCBUS_TOPIC_PREFIX']}requests.dictionary"

    def lag_read() -> Samples | None:
        samples = scrape(stack.metrics_url())
        lags = [v for (n, labels), v in samples.items() if ("topic", topic) in labels]
        return samples if lags and all(v == 0 for v in lags) else None

    lags = wait_for(lag_read, timeout=30, what="the consumer lag of the dictionary topic")
    partitions = {dict(labels)["partition"] for (n, labels) in lags if ("topic", topic) in labels}
    assert partitions and all(p.isdigit() for p in partitions)
    lag_topics = {dict(labels)["topic"] for (n, labels) in lags if n == "syncbus_consumer_lag"}
    requests = f"{stack.env['SYNCBUS_TOPIC_PREFIX']}requests."
    assert all(t.startswith(requests) for t in lag_topics), "only the request topics"


@pytest.fixture
def db_stack(
    own_postgres: EmbeddedPostgres, broker: EmbeddedBroker, workdir: Path
) -> Iterator[Stack]:
    stack = Stack(own_postgres, broker, workdir).create()
    yield stack
    stack.stop_all()


def test_database_gauges_sse_clients_and_a_database_outage(db_stack: Stack) -> None:
    stack = db_stack
    stack.start_api()  # no worker: the queued job stays queued
    job_id = uuid.uuid4()
    stack.execute(
        "INSERT INTO sync_jobs (id, request_id, domain, scope, mode, trigger, created_at) "
        "VALUES (%s, 'metrics-queued', 'models', 'default', 'full', 'api', "
        "now() - interval '90 seconds')",
        (job_id,),
    )
    stack.execute(
        "INSERT INTO alerts (key, rule, severity, summary) "
        "VALUES ('queued_past_sla:models', 'queued_past_sla', 'warning', 'a job waits')"
    )
    url = f"{stack.url}/metrics"

    def gauges() -> Samples | None:
        samples = scrape(url)
        return samples if value(samples, "syncbus_jobs", domain="models", status="queued") else None

    samples = wait_for(gauges, what="the queued job in the gauges")  # at most a second cached
    assert value(samples, "syncbus_jobs", domain="models", status="queued") == 1
    assert value(samples, "syncbus_jobs", domain="models", status="running") == 0
    assert (value(samples, "syncbus_queue_oldest_age_seconds", domain="models") or 0) >= 90
    assert value(samples, "syncbus_alerts_open", rule="queued_past_sla", severity="warning") == 1
    assert value(samples, "syncbus_sse_clients") == 0

    with (
        stack.client() as client,
        client.stream("GET", f"/v1/syncs/{job_id}/events") as stream,
    ):
        assert stream.status_code == 200
        events = iter_events(stream)  # kept: a dropped iterator closes the stream
        assert next(events).event == "connected"
        assert value(scrape(url), "syncbus_sse_clients") == 1
    wait_for(lambda: value(scrape(url), "syncbus_sse_clients") == 0, what="the client to go")

    stack.postgres.stop()
    try:

        def database_down() -> Samples | None:
            samples = scrape(url)
            return samples if value(samples, "syncbus_database_up") == 0 else None

        down = wait_for(database_down, timeout=30, what="syncbus_database_up 0")
        assert not [name for name, _ in down if name == "syncbus_jobs"]
        assert value(
            down, "syncbus_http_requests_total", route="/metrics", method="GET", status="200"
        )
    finally:
        stack.postgres.start()
    wait_for(lambda: value(scrape(url), "syncbus_database_up") == 1, what="the database back")
    assert "Traceback" not in stack.log("api")


def test_worker_metrics_during_a_database_outage(db_stack: Stack) -> None:
    stack = db_stack
    stack.start_worker()
    prefix = stack.env["SYNCBUS_TOPIC_PREFIX"]
    topic = f"{prefix}requests.dictionary"

    def worker_metrics(ok: Callable[[Samples], bool]) -> Callable[[], Samples | None]:
        def probe() -> Samples | None:
            samples = scrape(stack.metrics_url())
            return samples if ok(samples) else None

        return probe

    def lag(samples: Samples) -> float | None:
        """The topic's lag, None before the worker reports any (it refreshes the gauge
        by clearing and setting it again)."""
        lags = [v for (n, labels), v in samples.items() if ("topic", topic) in labels]
        return sum(lags) if lags else None

    with SyncRequestPublisher(stack.broker.bootstrap, topic_prefix=prefix) as publisher:
        warm = publisher.publish("dictionary", payload=batch(["metric-warm"]), scope="en")
        wait_for(lambda: job_status(stack, warm.request_id) == "succeeded", timeout=60)
        stack.postgres.stop()
        try:
            waiting = [
                publisher.publish("dictionary", payload=batch([f"metric-wait-{n}"]), scope="en")
                for n in range(2)
            ]

            def stuck(samples: Samples) -> bool:
                return (
                    (value(samples, "syncbus_requests_waiting_for_database") or 0) >= 1
                    and (value(samples, "syncbus_database_waits_total") or 0) >= 2
                    and lag(samples) == 2
                )

            during = wait_for(
                worker_metrics(stuck),
                timeout=45,
                what="a request waiting for PostgreSQL, two behind on the topic",
            )
        finally:
            stack.postgres.start()
    assert value(during, "syncbus_dead_letters_total", domain="dictionary") is None
    ids = [request.request_id for request in waiting]
    wait_for(
        lambda: all(job_status(stack, i) == "succeeded" for i in ids), timeout=60, what="the jobs"
    )
    processed = {"domain": "dictionary", "outcome": "succeeded"}
    after = wait_for(
        worker_metrics(
            lambda s: (
                value(s, "syncbus_requests_waiting_for_database") == 0
                and lag(s) == 0
                and value(s, "syncbus_jobs_processed_total", **processed) is not None
            )
        ),
        timeout=30,
        what="the worker caught up",
    )
    assert value(after, "syncbus_jobs_processed_total", **processed) == 3


def test_a_taken_metrics_port_is_one_warning_and_the_worker_runs_on(
    isolated_stack: Stack,
) -> None:
    stack = isolated_stack
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        stack.env_overrides["SYNCBUS_WORKER_METRICS_PORT"] = str(port)
        stack.start_worker()
        stack.start_api()
        payload = batch(["metric-port-taken"])
        push(stack, payload)
        assert finished(stack, str(payload["requestId"])) == "succeeded"
    log = stack.log("worker")
    warnings = [line for line in log.splitlines() if "SYNCBUS_WORKER_METRICS_PORT" in line]
    assert len(warnings) == 1, log
    assert f":{port}" in warnings[0] and "WARNING" in warnings[0]
    assert "Traceback" not in log


def dashboard_exprs() -> list[str]:
    def walk(node: object) -> Iterator[str]:
        if isinstance(node, dict):
            for key, item in node.items():
                if key == "expr" and isinstance(item, str):
                    yield item
                else:
                    yield from walk(item)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    return list(walk(json.loads((DOCS / "grafana-dashboard.json").read_text())))


def test_dashboard_and_docs_name_only_metrics_the_service_exposes(stack: Stack) -> None:
    api_series, api_metrics = exposed(f"{stack.url}/metrics")
    worker_series, worker_metrics = exposed(stack.metrics_url())
    exprs = dashboard_exprs()
    assert len(exprs) >= 10
    pattern = r"\b(?:syncbus|process|python)_[a-z0-9_]+"
    used = {name for expr in exprs for name in re.findall(pattern, expr)}
    missing = used - api_series - worker_series
    assert used and not missing, f"the dashboard uses what nothing exposes: {sorted(missing)}"
    ours = {name for name in api_metrics | worker_metrics if name.startswith("syncbus_")}
    documented = set(re.findall(r"`(syncbus_[a-z0-9_]+)`", (DOCS / "monitoring.md").read_text()))
    assert not ours - documented, f"undocumented: {sorted(ours - documented)}"
    assert not documented - ours, f"documented, not exposed: {sorted(documented - ours)}"
