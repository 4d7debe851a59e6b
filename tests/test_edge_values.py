"""Values that passed the first checks and broke further in: each is now a 4xx that says why
and writes nothing, or a conflict the database settles (409), never a 500."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import psycopg

from db import git as releases_db
from db import saas as apps_db
from db.engine import create_engine
from tests.payloads import batch, entry, signed
from tests.stack import ADMIN_KEY, SECRET, Stack
from tests.waiting import wait_for

COUNTS = (
    "SELECT (SELECT count(*) FROM saas_apps), (SELECT count(*) FROM schedules), "
    "(SELECT count(*) FROM sync_jobs), (SELECT count(*) FROM releases)"
)
JSON = {"content-type": "application/json"}
APP = {"app_key": "edge-app", "connector": "stripe", "api_base": "http://127.0.0.1:9/"}


def refusals(stack: Stack, requests: dict[str, tuple[str, str, dict[str, Any]]]) -> dict[str, Any]:
    """Each request's status and problem detail, checking that none of them wrote a row."""
    before = stack.query(COUNTS)
    answers = {}
    with stack.client() as client:
        for name, (method, path, body) in requests.items():
            # Escaped as JSON allows, so a lone surrogate reaches the server as it is.
            content = json.dumps(body).encode()
            answer = client.request(method, path, content=content, headers=JSON)
            answers[name] = (answer.status_code, answer.json().get("detail", ""))
    assert stack.query(COUNTS) == before, "a refused request wrote something"
    return answers


def test_app_values_that_broke_further_in_are_refused(stack: Stack) -> None:
    answers = refusals(
        stack,
        {
            "surrogate connector": ("POST", "/v1/apps", {**APP, "connector": "\ud800"}),
            "surrogate resource": ("POST", "/v1/apps", {**APP, "resources": ["\ud800"]}),
            "surrogate api_base": ("POST", "/v1/apps", {**APP, "api_base": "\ud800"}),
            "NUL in api_base": ("POST", "/v1/apps", {**APP, "api_base": "http://x/\x00"}),
            "cron that never fires": ("POST", "/v1/apps", {**APP, "schedule": "0 0 31 2 *"}),
        },
    )
    assert all(status == 422 for status, _ in answers.values()), answers
    assert "never fires" in answers["cron that never fires"][1]


def test_an_app_reads_only_its_connectors_secrets(isolated_stack: Stack) -> None:
    stack = isolated_stack
    secrets = {"STRIPE_KEY_EDGE": "sk_test_edge", "STRIPE_WEBHOOK_SECRET_EDGE_APP": "whsec_edge"}
    stack.env_overrides.update(secrets)
    stack.start_api()
    answers = refusals(
        stack,
        {
            "the database URL": ("POST", "/v1/apps", {**APP, "api_key_env": "DATABASE_URL"}),
            "the admin key": ("POST", "/v1/apps", {**APP, "webhook_secret_env": "ADMIN_API_KEY"}),
        },
    )
    assert answers == {
        "the database URL": (
            422,
            "body: Value error, api_key_env: must name a variable starting with STRIPE_",
        ),
        "the admin key": (
            422,
            "body: Value error, webhook_secret_env: must name a variable starting with STRIPE_",
        ),
    }
    with stack.client() as client:
        created = client.post("/v1/apps", json={**APP, "api_key_env": "STRIPE_KEY_EDGE"})
        assert created.status_code == 201, created.text
        changed = client.patch("/v1/apps/edge-app", json={"api_key_env": "PATH"})
        assert changed.status_code == 422, changed.text
        assert client.get("/v1/apps/edge-app").json()["api_key_env"] == "STRIPE_KEY_EDGE"
        assert client.delete("/v1/apps/edge-app").status_code == 204


def test_schedules_that_never_fire_or_name_a_zone_folder_are_refused(stack: Stack) -> None:
    schedule = {"name": "edge", "domain": "models", "interval_seconds": 60}
    answers = refusals(
        stack,
        {
            "Feb 31": ("POST", "/v1/schedules", {**schedule, "cron": "0 0 31 2 *"}),
            "Feb 30": ("POST", "/v1/schedules", {**schedule, "cron": "0 0 30 2 *"}),
            "a zone folder": ("POST", "/v1/schedules", {**schedule, "timezone": "Europe"}),
        },
    )
    assert {name: status for name, (status, _) in answers.items()} == {
        "Feb 31": 422,
        "Feb 30": 422,
        "a zone folder": 422,
    }
    assert "unknown time zone 'Europe'" in answers["a zone folder"][1]


def test_a_branch_too_long_to_be_a_scope_is_refused(stack: Stack) -> None:
    release = {"name": "edge-release", "git_branch": "b" * 201}
    answers = refusals(stack, {"201 characters": ("POST", "/api/v1/admin/releases", release)})
    assert answers["201 characters"][0] == 422


def test_a_signed_push_whose_header_has_control_characters_is_a_422(stack: Stack) -> None:
    before = stack.query(COUNTS)
    answers = {}
    for field, value in (("actorUsername", "bob\x01"), ("requestId", "edge\t1")):
        payload = {**batch(entries=[entry("edge")]), field: value}
        body, headers = signed(payload, SECRET)
        answer = httpx.post(stack.push_url, content=body, headers=headers, timeout=30)
        answers[field] = (answer.status_code, answer.text)
    assert stack.query(COUNTS) == before
    assert all(status == 422 for status, _ in answers.values()), answers


def test_a_name_taken_between_the_look_and_the_rename_is_a_conflict(stack: Stack) -> None:
    ids = [
        stack.scalar("INSERT INTO releases (name) VALUES (%s) RETURNING id", (name,))
        for name in ("edge-a", "edge-b")
    ]

    async def rename_while_another_holds_the_name() -> bool:
        engine = create_engine(stack.settings, pool_size=2)
        other = await psycopg.AsyncConnection.connect(stack.database_url)
        try:
            # Another transaction renames a to X and has not committed: the look in
            # change_release does not see it, and the update then waits on the unique index.
            await other.execute("UPDATE releases SET name = 'edge-x' WHERE id = %s", (ids[0],))
            async with engine.begin() as conn:
                rename = releases_db.change_release(conn, ids[1], {"name": "edge-x"})
                task = asyncio.create_task(rename)
                await wait_for_lock_wait(stack)
                await other.commit()
                try:
                    await task
                except releases_db.ReleaseNameTaken:
                    return True
                return False
        finally:
            await other.close()
            await engine.dispose()

    # The route turns ReleaseNameTaken into a 409; an IntegrityError would be a 500.
    assert asyncio.run(rename_while_another_holds_the_name())
    assert stack.scalar("SELECT name FROM releases WHERE id = %s", (ids[1],)) == "edge-b"
    stack.execute("DELETE FROM releases WHERE id = ANY(%s)", (ids,))


async def wait_for_lock_wait(stack: Stack) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    query = (
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND query LIKE 'UPDATE releases SET name=%%'"
    )
    while stack.scalar(query) == 0:
        assert loop.time() < deadline, "the rename never waited on the other transaction"
        await asyncio.sleep(0.01)


def test_creating_an_app_that_exists_changes_nothing(stack: Stack) -> None:
    values = {
        "app_key": "edge-twice",
        "connector": "stripe",
        "api_key_env": "STRIPE_KEY_EDGE",
        "webhook_secret_env": "STRIPE_HOOK_EDGE",
        "api_base": "http://127.0.0.1:9",
        "resources": ["customer"],
        "schedule": None,
        "mode": "incremental",
        "sync_from": None,
    }

    async def create_twice() -> tuple[Any, Any]:
        engine = create_engine(stack.settings, pool_size=1)
        try:
            async with engine.begin() as conn:
                first = await apps_db.create_app(conn, values, origin="api")
            async with engine.begin() as conn:
                second = await apps_db.create_app(
                    conn, {**values, "resources": ["subscription"]}, origin="api"
                )
            return first, second
        finally:
            await engine.dispose()

    first, second = asyncio.run(create_twice())
    assert first is not None and second is None, "the second create must not replace the app"
    stored = stack.scalar("SELECT resources FROM saas_apps WHERE app_key = 'edge-twice'")
    assert list(stored) == ["customer"]
    stack.execute("DELETE FROM saas_apps WHERE app_key = 'edge-twice'")


def test_an_app_stored_before_the_rule_reads_no_foreign_secret(stack: Stack) -> None:
    stack.execute(
        "INSERT INTO saas_apps (app_key, connector, api_key_env, webhook_secret_env, api_base, "
        "resources, mode, origin) VALUES ('edge-old', 'stripe', 'PATH', 'HOME', "
        "'http://127.0.0.1:9', ARRAY['customer'], 'incremental', 'api')"
    )
    try:
        started = httpx.post(
            f"{stack.url}/sync",
            json={"app_key": "edge-old"},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=30,
        )
        assert started.status_code == 202, started.text
        failed = "SELECT error_message FROM sync_jobs WHERE domain = 'saas' AND scope = 'edge-old'"
        message = wait_for(lambda: stack.scalar(failed + " AND status = 'failed'"), what="failure")
        assert message.startswith("api_key_env PATH does not start with STRIPE_"), message
        hook = httpx.post(f"{stack.url}/webhook/edge-old", content=b"{}", timeout=30)
        assert hook.status_code == 400 and hook.json()["error"].startswith("Invalid signature")
    finally:
        stack.execute("DELETE FROM saas_apps WHERE app_key = 'edge-old'")
