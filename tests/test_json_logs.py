"""SYNCBUS_LOG_FORMAT=json: every line of the api and the worker is a JSON object, the lines
about a job name it, its request and domain (in text too), and no secret is logged."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import httpx

from cli.logs import JsonFormatter
from schemas.log_context import JobContextFilter, job_logging, set_job_id
from tests.payloads import batch, entry, signed
from tests.stack import ADMIN_KEY, ADMIN_PIN, OLD_SECRET, SECRET, Stack
from tests.waiting import wait_for

SECRETS = (ADMIN_KEY, ADMIN_PIN, SECRET, OLD_SECRET)


def push_and_finish(stack: Stack, payload: dict[str, Any]) -> tuple[str, str]:
    """The job's id and final status."""
    body, headers = signed(payload, SECRET)
    response = httpx.post(stack.push_url, content=body, headers=headers, timeout=30)
    assert response.status_code == 202, response.text
    sql = "SELECT id, status FROM sync_jobs WHERE request_id = %s"

    def ended() -> tuple[str, str] | None:
        rows = stack.query(sql, (payload["requestId"],))
        if rows and rows[0][1] in ("succeeded", "failed"):
            return str(rows[0][0]), str(rows[0][1])
        return None

    return wait_for(ended, timeout=60, what=f"job {payload['requestId']}")


def json_lines(text: str) -> list[dict[str, Any]]:
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            raise AssertionError(f"line {number} is not JSON: {line!r}") from None
        assert isinstance(entry, dict), line
        assert {"time", "level", "logger", "message"} <= entry.keys(), line
        entries.append(entry)
    return entries


def test_every_line_is_json_and_a_jobs_lines_name_it(isolated_stack: Stack) -> None:
    stack = isolated_stack
    stack.env_overrides["SYNCBUS_LOG_FORMAT"] = "json"
    stack.start_worker()
    stack.start_api()
    good, bad = batch(["json-log-ok"]), batch(entries=[entry("json-log-bad", level="Z9")])
    jobs = {
        str(good["requestId"]): push_and_finish(stack, good),
        str(bad["requestId"]): push_and_finish(stack, bad),
    }
    assert sorted(status for _, status in jobs.values()) == ["failed", "succeeded"]
    stack.stop_all()  # the shutdown's lines too

    api, worker = stack.log("api"), stack.log("worker")
    api_lines, worker_lines = json_lines(api), json_lines(worker)
    assert any(e["logger"].startswith("uvicorn") for e in api_lines), "uvicorn's own lines"
    assert any(e["logger"] == "streams.worker" for e in worker_lines)
    for request_id, (job_id, status) in jobs.items():
        about = [e for e in worker_lines if job_id in e["message"] or request_id in e["message"]]
        assert about, f"no line about job {job_id}"
        for line in about:
            assert line.get("job_id") == job_id, line
            assert line.get("request_id") == request_id, line
            assert line.get("domain") == "dictionary", line
        level = "INFO" if status == "succeeded" else "WARNING"
        assert any(status in e["message"] and e["level"] == level for e in about), about
    for secret in SECRETS:
        assert secret not in api and secret not in worker


def test_text_lines_about_a_job_end_with_its_ids(stack: Stack) -> None:
    payload = batch(["text-log-ok"])
    job_id, status = push_and_finish(stack, payload)
    assert status == "succeeded"
    suffix = f"[job_id={job_id} request_id={payload['requestId']} domain=dictionary]"
    line = wait_for(
        lambda: next((x for x in stack.log("worker").splitlines() if job_id in x), None),
        what="the job's line",
    )
    assert line.endswith(suffix), line


def test_an_exception_is_one_field_of_one_line() -> None:
    formatter, context = JsonFormatter(), JobContextFilter()
    with job_logging(request_id="req-1", domain="models"):
        set_job_id("job-1")
        try:
            _ = 1 / 0
        except ZeroDivisionError:
            record = logging.LogRecord(
                "streams.pipeline", logging.ERROR, __file__, 1, "job %s broke", ("job-1",),
                sys.exc_info(),
            )  # fmt: skip
        context.filter(record)
    outside = logging.LogRecord("x", logging.INFO, __file__, 1, "plain", (), None)
    context.filter(outside)

    line = formatter.format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "job job-1 broke"
    assert entry["level"] == "ERROR"
    assert (entry["job_id"], entry["request_id"], entry["domain"]) == ("job-1", "req-1", "models")
    assert entry["exc"].startswith("Traceback") and "ZeroDivisionError" in entry["exc"]
    assert json.loads(formatter.format(outside)).keys() == {"time", "level", "logger", "message"}
