"""The models domain end to end: seed 000's internal trigger, seed 003's admin routes and health
check, against the real broker, PostgreSQL, api and worker, with the catalogues served locally."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli.embedded import EmbeddedBroker, EmbeddedPostgres
from tests.fake_catalogues import FakeCatalogues
from tests.kafka_tools import read_topic
from tests.sse_client import read_all
from tests.stack import ADMIN_KEY, ADMIN_PIN, Stack
from tests.waiting import wait_for

TOKEN = "dev_token"
HMAC_SECRET = "dev_secret"
WAIT_BOUND_S = 3


@pytest.fixture(scope="module")
def catalogues() -> Iterator[FakeCatalogues]:
    with FakeCatalogues() as fake:
        yield fake


@pytest.fixture(scope="module")
def models(
    postgres: EmbeddedPostgres, broker: EmbeddedBroker, workdir: Path, catalogues: FakeCatalogues
) -> Iterator[Stack]:
    stack = Stack(postgres, broker, workdir)
    stack.env_overrides.update(
        {
            **catalogues.settings_env(),
            "INTERNAL_SYNC_TOKEN": TOKEN,
            "INTERNAL_SYNC_SECRET": HMAC_SECRET,
            "SYNCBUS_MODELS_WAIT_S": str(WAIT_BOUND_S),
            "MODELS_SOURCE_TIMEOUT_S": "10",
            "MODELS_SOURCE_RETRIES": "1",
            "MODELS_SOURCE_MAX_RETRY_WAIT_S": "0.2",
        }
    )
    stack.create()
    stack.start_worker()
    stack.start_api()
    yield stack
    stack.discard()


@pytest.fixture(autouse=True)
def fresh_catalogues(catalogues: FakeCatalogues) -> None:
    catalogues.reset()


def internal_sync(stack: Stack, body: bytes = b'{"source":"test"}') -> httpx.Response:
    return httpx.post(
        f"{stack.url}/api/internal/sync-models",
        content=body,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        timeout=60,
    )


def catalogue(stack: Stack) -> dict[str, tuple[Any, ...]]:
    rows = stack.query("SELECT id, name, input_price, output_price, sources FROM model_catalog")
    return {r[0]: r[1:] for r in rows}


def test_internal_trigger_runs_a_full_sync_and_answers_with_the_seed_headers(models: Stack) -> None:
    response = internal_sync(models)

    assert response.status_code == 200, response.text
    body = response.json()
    log_id = response.headers["X-Sync-Log-ID"]
    assert str(uuid.UUID(log_id)) == body["syncLogId"]
    assert response.headers["X-Response-Time"].endswith("ms")
    assert response.headers["X-Models-Processed"] == str(body["modelsProcessed"])
    assert body["success"] is True
    assert {s["source"]: s["state"] for s in body["sources"]} == {
        "modelsdev": "ok", "openrouter": "ok", "huggingface": "ok", "artificialanalysis": "ok"
    }  # fmt: skip
    stored = catalogue(models)
    assert len(stored) == body["modelsProcessed"] == body["added"]
    sonnet = stored["anthropic/claude-sonnet-4-20250514"]
    assert sonnet[0] == "Claude Sonnet 4"
    assert sonnet[3] == ["artificialanalysis", "modelsdev", "openrouter"]
    llama = stored["meta-llama/llama-3.3-70b-instruct"]
    assert (float(llama[1]), float(llama[2])) == (0.1, 0.32)
    assert "tinyllama/tinyllama-1.1b-chat-v1.0" in stored

    # Seed 000's verification queries, verbatim.
    latest = models.query(
        "SELECT * FROM public.model_sync_log ORDER BY sync_started_at DESC LIMIT 5"
    )[0]
    columns = [
        r[0]
        for r in models.query(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'model_sync_log' ORDER BY ordinal_position"
        )
    ]
    row = dict(zip(columns, latest, strict=True))
    assert str(row["id"]) == log_id and row["added_by_user_id"] is None
    assert row["models_processed"] == body["modelsProcessed"]
    by_status = dict(models.query("SELECT status, COUNT(*) FROM public.model_access GROUP BY 1"))
    assert by_status["deprecated"] == 1  # claude-3-7-sonnet, per models.dev
    assert by_status["active"] == len(stored) - 1
    audit = models.query(
        "SELECT action, actor_user_id FROM public.admin_audit_log WHERE job_id = %s", (log_id,)
    )
    assert audit == [("sync.scheduled", None)]
    history = models.scalar("SELECT count(*) FROM model_snapshots WHERE sync_id = %s", (log_id,))
    assert history == len(stored)


def test_second_sync_with_nothing_changed_writes_nothing(models: Stack) -> None:
    internal_sync(models)
    before = dict(models.query("SELECT id, xmin::text FROM model_catalog"))
    snapshots = models.scalar("SELECT count(*) FROM model_snapshots")

    body = internal_sync(models).json()

    assert (body["added"], body["updated"], body["removed"]) == (0, 0, 0)
    assert body["unchanged"] == body["modelsProcessed"] == len(before)
    assert dict(models.query("SELECT id, xmin::text FROM model_catalog")) == before
    assert models.scalar("SELECT count(*) FROM model_snapshots") == snapshots


def messages(stack: Stack, job_id: str) -> list[str]:
    rows = stack.query(
        "SELECT data->>'message' FROM sync_events WHERE job_id = %s AND type = 'log' ORDER BY seq",
        (job_id,),
    )
    return [m for (m,) in rows]


def compared(body: dict[str, Any]) -> dict[str, Any]:
    """A sync's answer without what differs between two runs of the same sync."""
    sources = [{k: v for k, v in s.items() if k != "duration_ms"} for s in body["sources"]]
    return {**{k: v for k, v in body.items() if k != "syncLogId"}, "sources": sources}


def test_an_unchanged_resync_skips_the_diff_and_answers_as_the_full_diff_does(
    models: Stack,
) -> None:
    first = internal_sync(models).json()
    skipped = internal_sync(models).json()
    # Every row rewritten as it was: new xmins, same content, so the catalogue no longer has
    # the signature the last sync left and the next sync must diff in full.
    rewritten = models.execute("UPDATE model_catalog SET name = name")
    before = dict(models.query("SELECT id, xmin::text FROM model_catalog"))
    snapshots = models.scalar("SELECT count(*) FROM model_snapshots")

    diffed = internal_sync(models).json()

    said = messages(models, skipped["syncLogId"])
    assert f"Sources unchanged since sync {first['syncLogId']}" in " ".join(said), said
    assert not any(m.startswith("Unified ") for m in said)
    assert any(m.startswith("Unified ") for m in messages(models, diffed["syncLogId"]))
    assert rewritten == len(before) == skipped["unchanged"]
    assert compared(skipped) == compared(diffed)
    assert (diffed["added"], diffed["updated"], diffed["removed"]) == (0, 0, 0)
    assert dict(models.query("SELECT id, xmin::text FROM model_catalog")) == before
    assert models.scalar("SELECT count(*) FROM model_snapshots") == snapshots


def test_a_catalogue_written_since_the_last_sync_is_diffed_in_full(models: Stack) -> None:
    internal_sync(models)
    synced = catalogue(models)
    models.execute("DELETE FROM model_catalog WHERE id = 'openai/gpt-4.1'")
    models.execute("UPDATE model_catalog SET name = 'renamed' WHERE id = 'openai/gpt-4o-mini'")
    models.execute(
        "INSERT INTO model_catalog (id, provider, name) VALUES ('stray/model', 'stray', 'x')"
    )

    body = internal_sync(models).json()

    assert (body["added"], body["updated"], body["removed"]) == (1, 1, 1), body
    assert catalogue(models) == synced
    assert any(m.startswith("Unified ") for m in messages(models, body["syncLogId"]))


def test_a_source_failing_again_the_same_way_keeps_its_models_without_a_diff(
    models: Stack, catalogues: FakeCatalogues
) -> None:
    internal_sync(models)
    synced = catalogue(models)
    catalogues.disappear("huggingface")
    partial = internal_sync(models).json()
    after_partial = catalogue(models)
    catalogues.disappear("huggingface", "drop")  # another failure, the same input

    again = internal_sync(models).json()

    said = messages(models, again["syncLogId"])
    assert any(m.startswith("Sources unchanged since sync ") for m in said), said
    assert "Partial sync: huggingface did not answer; their models were kept" in said
    hf = {s["source"]: s for s in again["sources"]}["huggingface"]
    assert hf["state"] == "failed" and "404" not in hf["message"]  # this run's own failure
    # What a full diff would say: every model read unchanged, the Hugging Face ones kept.
    hf_partial = {s["source"]: s for s in partial["sources"]}["huggingface"]
    assert hf_partial["state"] == "failed" and "404" in hf_partial["message"]
    ok_sources = [s for s in compared(again)["sources"] if s["source"] != "huggingface"]
    assert ok_sources == [s for s in compared(partial)["sources"] if s["source"] != "huggingface"]
    assert again["modelsProcessed"] == again["unchanged"] == partial["modelsProcessed"]
    assert (again["added"], again["updated"], again["removed"]) == (0, 0, 0)
    assert catalogue(models) == after_partial and set(after_partial) == set(synced)
    errors = models.scalar("SELECT errors FROM sync_jobs WHERE id = %s", (again["syncLogId"],))
    assert errors == 1


def test_the_seeds_curl_and_openssl_examples_work_verbatim(models: Stack) -> None:
    env = {**os.environ, "INTERNAL_SYNC_TOKEN": TOKEN, "INTERNAL_SYNC_SECRET": HMAC_SECRET}
    url = f"{models.url}/api/internal/sync-models"
    bearer = (
        f'curl -s -X POST {url} -H "Authorization: Bearer $INTERNAL_SYNC_TOKEN" '
        """-H "Content-Type: application/json" -d '{"source":"local-test"}' | jq"""
    )
    hmac = f"""body='{{"source":"local-test-hmac"}}'
sig=$(printf "%s" "$body" | openssl dgst -sha256 -hmac "$INTERNAL_SYNC_SECRET" -binary | xxd -p -c 256)
curl -s -X POST {url} \\
   -H "X-Signature: $sig" -H "Content-Type: application/json" \\
    -d "$body" | jq"""  # noqa: E501  (seed 000's command, verbatim)
    for script in (bearer, hmac):
        result = subprocess.run(
            ["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60, check=True
        )
        assert json.loads(result.stdout)["success"] is True, result.stdout
    requested_by = models.query(
        "SELECT requested_by FROM model_sync_log ORDER BY sync_started_at DESC LIMIT 2"
    )
    assert requested_by == [("local-test-hmac",), ("local-test",)]


def test_bad_credentials_are_refused(models: Stack) -> None:
    url = f"{models.url}/api/internal/sync-models"
    body = b'{"source":"x"}'
    signature_of_other = "0" * 64
    attempts = [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {TOKEN}"},
        {"X-Signature": signature_of_other},
        {"X-Signature": "not hex"},
    ]
    before = models.scalar("SELECT count(*) FROM sync_jobs")
    for headers in attempts:
        response = httpx.post(url, content=body, headers=headers)
        assert response.status_code == 401, (headers, response.text)
    bad_json = httpx.post(url, content=b"{", headers={"Authorization": f"Bearer {TOKEN}"})
    assert bad_json.status_code == 400
    assert models.scalar("SELECT count(*) FROM sync_jobs") == before


def test_changed_and_removed_models_are_logged_and_published(
    models: Stack, catalogues: FakeCatalogues
) -> None:
    internal_sync(models)
    modelsdev = catalogues.payload("modelsdev")
    modelsdev["openai"]["models"]["gpt-4.1"]["cost"]["input"] = 2.5
    catalogues.set_payload("modelsdev", modelsdev)
    hf = [m for m in catalogues.payload("huggingface") if not m["id"].startswith("TinyLlama/")]
    catalogues.set_payload("huggingface", hf)

    response = internal_sync(models)

    body = response.json()
    assert (body["added"], body["updated"], body["removed"]) == (0, 1, 1), body
    assert "tinyllama/tinyllama-1.1b-chat-v1.0" not in catalogue(models)
    assert float(catalogue(models)["openai/gpt-4.1"][1]) == 2.5
    log_id = body["syncLogId"]
    history = models.query(
        "SELECT model_id, change FROM model_snapshots WHERE sync_id = %s ORDER BY change", (log_id,)
    )
    assert history == [
        ("openai/gpt-4.1", "changed"),
        ("tinyllama/tinyllama-1.1b-chat-v1.0", "removed"),
    ]
    logs = models.query(
        "SELECT data->>'message' FROM sync_events WHERE job_id = %s AND type = 'log'", (log_id,)
    )
    assert any("tinyllama/tinyllama-1.1b-chat-v1.0" in (m or "") for (m,) in logs)
    events = read_topic(
        models.broker.bootstrap,
        f"{models.env['SYNCBUS_TOPIC_PREFIX']}changes.models",
        until=lambda vs: sum(1 for v in vs if v["job_id"] == log_id) >= 2,
    )
    mine = {(v["key"], v["change"]) for v in events if v["job_id"] == log_id}
    assert mine == {
        ("openai/gpt-4.1", "changed"),
        ("tinyllama/tinyllama-1.1b-chat-v1.0", "removed"),
    }


def test_a_failing_source_is_partial_success_and_keeps_its_models(
    models: Stack, catalogues: FakeCatalogues
) -> None:
    internal_sync(models)  # the fixtures' full catalogue again
    before = catalogue(models)
    catalogues.disappear("huggingface")

    response = internal_sync(models)

    body = response.json()
    assert response.status_code == 200 and body["success"] is True
    states = {s["source"]: s for s in body["sources"]}
    assert states["huggingface"]["state"] == "failed"
    assert "404" in states["huggingface"]["message"]
    assert body["removed"] == 0
    assert set(catalogue(models)) == set(before)  # Hugging Face-only models were kept
    job = models.query(
        "SELECT errors, result->'sources' FROM sync_jobs WHERE id = %s", (body["syncLogId"],)
    )[0]
    assert job[0] == 1
    assert {s["source"]: s["state"] for s in job[1]}["huggingface"] == "failed"


def test_all_sources_failing_fails_the_job_and_changes_nothing(
    models: Stack, catalogues: FakeCatalogues
) -> None:
    before = catalogue(models)
    for source in ("modelsdev", "openrouter", "huggingface", "artificialanalysis"):
        catalogues.disappear(source)

    response = internal_sync(models)

    assert response.status_code == 502
    body = response.json()
    assert body["success"] is False
    assert body["error"].startswith("no model source succeeded")
    sources = {s["source"]: s["state"] for s in body["sources"]}
    assert set(sources) == {"modelsdev", "openrouter", "huggingface", "artificialanalysis"}
    assert "ok" not in sources.values(), "each source says how it failed"
    history = models.client().get("/api/admin/sync-models", params={"limit": 1}).json()
    assert history[0]["id"] == body["syncLogId"] and len(history[0]["sources"]) == 4
    assert catalogue(models) == before
    audit = models.query(
        "SELECT action, actor_user_id FROM admin_audit_log WHERE job_id = %s", (body["syncLogId"],)
    )
    assert audit == [("sync.scheduled_failed", None)]


def test_a_second_trigger_while_one_runs_is_409_and_a_long_run_answers_202(
    models: Stack, catalogues: FakeCatalogues
) -> None:
    catalogues.delay("modelsdev", WAIT_BOUND_S + 2)
    first: list[httpx.Response] = []
    caller = threading.Thread(target=lambda: first.append(internal_sync(models)))
    caller.start()
    running = wait_for(
        lambda: models.scalar("SELECT id FROM model_sync_log WHERE status = 'running'"),
        what="the first sync to run",
    )

    second = internal_sync(models)
    admin = httpx.post(f"{models.url}/api/admin/sync-models", headers={"X-Admin-PIN": ADMIN_PIN})
    caller.join(30)

    assert second.status_code == 409
    assert second.headers["X-Sync-Log-ID"] == str(running)
    assert second.json()["syncLogId"] == str(running)
    assert admin.status_code == 409
    assert first[0].status_code == 202
    assert first[0].headers["X-Sync-Log-ID"] == str(running)
    assert first[0].json()["status"] == "running"
    wait_for(
        lambda: (
            models.scalar("SELECT status FROM model_sync_log WHERE id = %s", (running,))
            == "succeeded"
        ),
        timeout=30,
        what="the slow sync to finish",
    )


def test_admin_history_and_trigger(models: Stack) -> None:
    url = f"{models.url}/api/admin/sync-models"
    assert httpx.get(url).status_code == 401
    started = httpx.post(url, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert started.status_code == 202
    job_id = started.json()["syncLogId"]
    with models.client() as client:
        events = read_all(client, started.json()["eventsUrl"])
    assert events[-1].event == "complete"
    # Unified afresh, or (the catalogue as an earlier sync of these sources left it) not at all.
    said = [e.data.get("message", "") for e in events]
    assert any(m.startswith(("Unified ", "Sources unchanged since sync ")) for m in said), said

    history = httpx.get(url, params={"limit": 50}, headers={"X-Admin-PIN": ADMIN_PIN}).json()
    assert history[0]["id"] == job_id
    assert history[0]["added_by_user_id"] == "admin"
    assert history[0]["status"] == "succeeded"
    assert {s["source"] for s in history[0]["sources"]} == {
        "modelsdev", "openrouter", "huggingface", "artificialanalysis"
    }  # fmt: skip
    started_at = [h["sync_started_at"] for h in history]
    assert started_at == sorted(started_at, reverse=True)
    assert any(h["status"] == "failed" for h in history)


def test_models_via_v1_are_exclusive_and_take_no_payload(models: Stack) -> None:
    with models.client() as client:
        refused = client.post("/v1/syncs", json={"domain": "models", "payload": {"x": 1}})
        accepted = client.post("/v1/syncs", json={"domain": "models", "mode": "full"})
    assert refused.status_code == 422
    assert accepted.status_code == 202
    job_id = accepted.json()["id"]
    wait_for(
        lambda: (
            models.scalar("SELECT status FROM sync_jobs WHERE id = %s", (job_id,)) == "succeeded"
        ),
        what="v1 models sync",
    )


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        env={**os.environ, **env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_trigger_command_follows_progress_to_the_end(models: Stack) -> None:
    result = cli(
        "trigger", "models", "--wait", env={"SYNCBUS_URL": models.url, "ADMIN_API_KEY": ADMIN_KEY}
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "started models sync" in result.stderr
    assert "done" in result.stderr
    refused = cli("trigger", "models", env={"SYNCBUS_URL": models.url, "ADMIN_API_KEY": "nope"})
    assert refused.returncode == 2


def test_health_command_exit_codes_table_and_json(models: Stack) -> None:
    env = {"DATABASE_URL": models.database_url}
    healthy = cli("health", "--min-models", "5", "--max-failure-rate", "100", env=env)
    assert healthy.returncode == 0, healthy.stdout
    assert "sync freshness" in healthy.stdout and "ok" in healthy.stdout

    few = cli("health", "--json", "--min-models", "100000", "--max-failure-rate", "100", env=env)
    assert few.returncode == 1
    report = json.loads(few.stdout)
    assert report["status"] == "warning"
    volume = next(c for c in report["checks"] if c["name"] == "data volume")
    assert volume["severity"] == "warning"

    failing = cli("health", "--json", "--min-models", "5", "--max-failure-rate", "0", env=env)
    assert failing.returncode == 1  # the all-sources-down run above failed
    assert json.loads(failing.stdout)["checks"][3]["severity"] == "warning"

    unreachable = cli("health", env={"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})
    assert unreachable.returncode == 2
    assert "critical" in unreachable.stdout


def test_throttled_and_malformed_sources_through_the_running_service(
    models: Stack, catalogues: FakeCatalogues
) -> None:
    catalogues.throttle_next("openrouter", retry_after="1")
    catalogues.serve_malformed("artificialanalysis")

    body = internal_sync(models).json()

    states = {s["source"]: s for s in body["sources"]}
    assert states["openrouter"]["state"] == "ok"  # waited as told, then succeeded
    openrouter_calls = catalogues.requests("openrouter")
    assert len(openrouter_calls) == 2
    assert openrouter_calls[1].at - openrouter_calls[0].at >= 0.2  # capped Retry-After honoured
    assert states["artificialanalysis"]["state"] == "failed"
    assert "malformed" in states["artificialanalysis"]["message"].lower()
    assert body["success"] is True and body["removed"] == 0
