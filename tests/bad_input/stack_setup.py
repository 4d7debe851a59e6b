"""The stack the suite fuzzes: its settings, its seed job, schedule, app and releases (and a
git job), its row counts."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import yaml

from tests.bad_input.request import Target
from tests.bad_input.saas_answers import CORS_ORIGIN
from tests.bad_input.saas_validity import configured_app, set_secret_vars
from tests.payloads import batch
from tests.stack import ADMIN_KEY, ADMIN_PIN, OLD_SECRET, SECRET, Stack
from tests.waiting import wait_for

MODELS_TOKEN = "fuzz-models-token"
MODELS_SECRET = "fuzz-models-secret"
SEED_REQUEST_ID = "bad-input-seed"
MAX_ENTRIES = 3
MAX_BODY = 256 * 1024
PUSH_MAX_BODY = 512 * 1024
SAAS_MAX_BODY = 1024 * 1024  # seed 001's limit, not a setting
APP_KEY = "stripe_fuzz"
APP_RESOURCES = ("customer", "product", "price")  # not every resource: some are refused
WEBHOOK_SECRETS = "whsec_fuzz_old,whsec_fuzz_new"  # a rotation: both are valid
NOWHERE = "http://127.0.0.1:9"  # if a sync started, its sources would fail at once
ENV = {
    "SYNCBUS_AUTH_FAILURES_PER_MINUTE": "1000000",  # let the generator past the auth checks
    "SYNCBUS_SYNC_RATE_LIMIT": "1000000",  # and past POST /sync's rate limit
    "SYNCBUS_CORS_ORIGINS": CORS_ORIGIN,
    # Alerts evaluated every second: the one the failed git seed job opens is there before
    # the rows are counted, not opened halfway through the run.
    "SYNCBUS_ALERT_INTERVAL_S": "1",
    "SYNCBUS_DICTIONARY_MAX_ENTRIES": str(MAX_ENTRIES),
    "SYNCBUS_MAX_BODY_BYTES": str(MAX_BODY),
    "SYNCBUS_DICTIONARY_MAX_BODY_BYTES": str(PUSH_MAX_BODY),
    "INTERNAL_SYNC_TOKEN": MODELS_TOKEN,
    "INTERNAL_SYNC_SECRET": MODELS_SECRET,
    # No models sync may start; if one did, its sources would fail at once, not on the net.
    "MODELSDEV_BASE_URL": NOWHERE,
    "OPENROUTER_BASE_URL": NOWHERE,
    "HUGGINGFACE_BASE_URL": NOWHERE,
    "ARTIFICIALANALYSIS_BASE_URL": NOWHERE,
}
# The tables issue 8 names, and those of schedules, alerts and the saas domain; every
# other table of the public and supasaasy schemas is counted as well.
NAMED_TABLES = (
    "sync_jobs",
    "sync_payloads",
    "outbox",
    "sync_events",
    "audit_log",
    "dictionary_entries",
    "dictionary_audit_log",
    "dictionary_versions",
    "model_catalog",
    "schedules",
    "alerts",
    "alert_notifications",
    "saas_apps",
    "supasaasy.entities",
    "sync_state",
    "releases",
    "test_metadata",
    "git_modules",
    "app_settings",
)
# Tables whose rows a bad request could change without adding or removing any (a release
# renamed, the sync configuration stored again): their contents are compared too.
CHECKSUMMED_TABLES = ("releases", "app_settings", "schedules")
# The rate limiter's buckets: failed authentication (and every POST /sync) writes there.
UNCOUNTED_TABLES = ("rate_limits",)
SCHEDULE = {"name": "bad-input-seed", "domain": "models", "interval_seconds": 3600}
# Seed 002's releases: one with a branch, inactive (so that a sync of every active release
# has nothing to do), and an active one without a branch.
BRANCH_RELEASE = {"name": "fuzz-branch", "git_branch": "fuzz/main", "active": False}
PLAIN_RELEASE = {"name": "fuzz-plain", "git_branch": None, "active": True}
RELEASES = (BRANCH_RELEASE, PLAIN_RELEASE)
GIT_ALERT = "SELECT count(*) FROM alerts WHERE key = 'job_failed:git' AND status = 'open'"
PIN = {"X-Admin-PIN": ADMIN_PIN}


def target() -> Target:
    """What the generators know of the stack (``configure`` prepares it; the seed job's and
    schedule's ids come once they exist)."""
    return Target(
        admin_key=ADMIN_KEY,
        admin_pin=ADMIN_PIN,
        push_secrets=(OLD_SECRET, SECRET),
        push_source="de-ai-worker",
        models_token=MODELS_TOKEN,
        models_secret=MODELS_SECRET,
        seed_job_id="",
        seed_request_id=SEED_REQUEST_ID,
        max_entries=MAX_ENTRIES,
        max_body=MAX_BODY,
        push_max_body=PUSH_MAX_BODY,
        app_key=APP_KEY,
        app_resources=APP_RESOURCES,
        app_api_base=NOWHERE,
        webhook_secret=WEBHOOK_SECRETS,
        saas_max_body=SAAS_MAX_BODY,
        schedule_id="",
        schedule_domain=str(SCHEDULE["domain"]),
    )


def configure(stack: Stack, t: Target) -> None:
    """The suite's settings, and one saas app in an apps file, with its secrets set."""
    apps = Path(stack.log_dir) / f"apps-{stack.name}.yaml"
    apps.write_text(yaml.safe_dump({"apps": [configured_app(t)]}), encoding="utf-8")
    api_key_env, webhook_env = set_secret_vars(t)
    stack.env_overrides.update(
        {
            **ENV,
            "SYNCBUS_APPS_FILE": str(apps),
            api_key_env: "sk_test_fuzz",
            webhook_env: t.webhook_secret,
        }
    )


def create_seed_job(stack: Stack) -> str:
    """A finished dictionary job: its id, request id and events are what some bad
    requests point at (SSE replay, status, request_id conflicts)."""
    payload = batch(["seedword"], request_id=SEED_REQUEST_ID)
    body = {"domain": "dictionary", "request_id": SEED_REQUEST_ID, "payload": payload}
    with stack.client() as client:
        created = client.post("/v1/syncs", json=body)
    assert created.status_code == 202, created.text
    job_id = str(created.json()["id"])
    wait_for(
        lambda: (
            stack.scalar("SELECT status FROM sync_jobs WHERE id = %s", (job_id,))
            in ("succeeded", "failed")
        ),
        timeout=60,
        what="the seed job to finish",
    )
    assert stack.scalar("SELECT status FROM sync_jobs WHERE id = %s", (job_id,)) == "succeeded"
    wait_for(
        lambda: stack.scalar("SELECT count(*) FROM outbox") == 0,
        timeout=30,
        what="the outbox to drain",
    )
    return job_id


def create_seed_schedule(stack: Stack) -> str:
    """A disabled schedule (it never fires): what PATCH and GET of an existing one reach."""
    with stack.client() as client:
        created = client.post("/v1/schedules", json={**SCHEDULE, "enabled": False})
        assert created.status_code == 201, created.text
        app = client.get(f"/v1/apps/{APP_KEY}")
        assert app.status_code == 200, f"the apps file's app is not there: {app.text}"
    return str(created.json()["id"])


def create_git_seed(stack: Stack, t: Target) -> Target:
    """The two releases, and one git sync of the branch release, finished: it fails, the
    stack having no repository (GIT_REPO_URL), and its progress stream is what some bad
    requests replay."""
    with stack.client(admin=False) as client:
        made = [client.post("/api/v1/admin/releases", json=r, headers=PIN) for r in RELEASES]
        assert all(r.status_code == 201 for r in made), [r.text for r in made]
        branch_id, plain_id = (int(r.json()["id"]) for r in made)
        started = client.post(f"/api/v1/admin/metadata-sync/trigger/{branch_id}", headers=PIN)
        assert started.status_code == 200, started.text
        nothing = client.post("/api/v1/admin/metadata-sync/trigger", headers=PIN)
        assert nothing.status_code == 400, f"a sync of every release would start: {nothing.text}"
    job_id = str(started.json()["job_id"])
    wait_for(
        lambda: stack.scalar("SELECT status FROM sync_jobs WHERE id = %s", (job_id,)) == "failed",
        timeout=60,
        what="the git seed job to fail",
    )
    wait_for(
        lambda: stack.scalar("SELECT count(*) FROM outbox") == 0,
        timeout=30,
        what="the outbox to drain",
    )
    wait_for(
        lambda: stack.scalar(GIT_ALERT) == 1,
        timeout=30,
        what="the alert the failed git job opens",
    )
    names = tuple(str(r["name"]) for r in RELEASES)
    return dataclasses.replace(
        t,
        branch_release_id=branch_id,
        plain_release_id=plain_id,
        release_names=names,
        git_job_id=job_id,
    )


def row_counts(stack: Stack) -> dict[str, int]:
    tables = [
        name if schema == "public" else f"{schema}.{name}"
        for schema, name in stack.query(
            "SELECT schemaname, tablename FROM pg_tables "
            "WHERE schemaname IN ('public', 'supasaasy') "
            "AND tablename <> 'alembic_version' ORDER BY 1, 2"
        )
    ]
    missing = [t for t in NAMED_TABLES if t not in tables]
    assert not missing, f"tables gone from the schema: {missing}"
    counts = {
        t: int(stack.scalar(f"SELECT count(*) FROM {quoted_table(t)}"))
        for t in tables
        if t not in UNCOUNTED_TABLES
    }
    for table in CHECKSUMMED_TABLES:
        rows = stack.query(f"SELECT t::text FROM {quoted_table(table)} t ORDER BY 1")
        digest = hashlib.sha256(repr(rows).encode()).hexdigest()
        counts[f"{table} (checksum of the rows)"] = int(digest[:12], 16)
    return counts


def quoted_table(name: str) -> str:
    return ".".join(f'"{part}"' for part in name.split("."))
