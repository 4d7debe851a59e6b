"""The admin page over plain HTTP: sign-in and its limit, the session cookie, CSRF, expiry."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator
from http.cookies import SimpleCookie

import httpx
import pytest

from tests.payloads import batch, signed
from tests.stack import ADMIN_KEY, ADMIN_PIN, SECRET, Stack

COOKIE = "syncbus_admin"
FIELD = "csrf_token"
FAR = "0 2 * * *"
APP_SECRETS = {"STRIPE_KEY_ADMIN": "sk_test_admin", "STRIPE_HOOK_ADMIN": "whsec_admin"}
APP = {
    "app_key": "admin-eu",
    "connector": "stripe",
    "api_key_env": "STRIPE_KEY_ADMIN",
    "webhook_secret_env": "STRIPE_HOOK_ADMIN",
    "api_base": "http://127.0.0.1:9/",
    "mode": "full",
}


def sign_in(stack: Stack, credential: str, **headers: str) -> httpx.Response:
    answer = httpx.post(
        f"{stack.url}/admin/login", data={"credential": credential}, headers=headers
    )
    return answer


def morsel(answer: httpx.Response) -> dict[str, str | bool]:
    """The admin cookie as the answer set it: value and attributes."""
    jar: SimpleCookie = SimpleCookie()
    for header in answer.headers.get_list("set-cookie"):
        jar.load(header)
    found = jar[COOKIE]
    flags = {k.lower(): found[k] for k in found if found[k]}
    return {"value": found.value, **flags}


def session(stack: Stack, credential: str = ADMIN_KEY) -> str:
    answer = sign_in(stack, credential)
    assert answer.status_code == 303, answer.text
    return str(morsel(answer)["value"])


def browser(stack: Stack, token: str) -> httpx.Client:
    """A client that sends only the admin cookie (no credential header)."""
    return httpx.Client(base_url=stack.url, cookies={COOKIE: token}, timeout=30)


def is_page(answer: httpx.Response) -> bool:
    return answer.headers["content-type"].startswith("text/html") and "<main" in answer.text


def csrf_token(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', page)
    assert found, "the page carries a CSRF token"
    return found.group(1)


@pytest.fixture
def schedule(stack: Stack) -> Iterator[dict[str, str]]:
    with stack.client() as client:
        body = {"domain": "models", "name": f"admin-{uuid.uuid4().hex[:8]}", "cron": FAR}
        created = client.post("/v1/schedules", json=body)
        assert created.status_code == 201, created.text
        yield created.json()
        client.delete(f"/v1/schedules/{created.json()['id']}")


def test_sign_in_opens_a_strict_httponly_session_stored_hashed(stack: Stack) -> None:
    for credential in (ADMIN_KEY, ADMIN_PIN):
        answer = sign_in(stack, credential)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/admin/jobs"
        cookie = morsel(answer)
        assert cookie["httponly"] is True
        assert str(cookie["samesite"]).lower() == "strict"
        assert cookie["path"] == "/"
        assert "secure" not in cookie, "plain HTTP from a client that is no proxy"
        token = str(cookie["value"])
        assert len(token) >= 40
        digest = hashlib.sha256(token.encode()).hexdigest()
        stored = stack.query("SELECT token_sha256 FROM admin_sessions")
        assert (digest,) in stored and (token,) not in stored
        with browser(stack, token) as client:
            page = client.get("/admin/jobs")
        assert page.status_code == 200 and "<h1>Jobs</h1>" in page.text
        assert page.headers["cache-control"] == "no-store"
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert token not in page.text and credential not in page.text


def test_an_untrusted_forwarded_proto_does_not_make_the_cookie_secure(stack: Stack) -> None:
    answer = sign_in(stack, ADMIN_KEY, **{"x-forwarded-proto": "https"})
    assert "secure" not in morsel(answer)


def test_pages_without_a_session_send_to_the_sign_in_form(stack: Stack) -> None:
    pages = ("jobs", "schedules", "dictionary", "models", "git", "apps", f"jobs/{uuid.uuid4()}")
    for path in ("/admin", *(f"/admin/{p}" for p in pages)):
        answer = httpx.get(f"{stack.url}{path}")
        assert answer.status_code == 303, path
        assert answer.headers["location"] in ("/admin/login", "/admin/jobs"), path
    with browser(stack, "not-a-session") as client:
        assert client.get("/admin/jobs").headers["location"] == "/admin/login"
        assert client.get("/v1/syncs").status_code == 401


def test_wrong_credential_is_a_401_page(stack: Stack) -> None:
    answer = sign_in(stack, "not-the-key")
    assert answer.status_code == 401
    assert "text/html" in answer.headers["content-type"]
    assert "Wrong admin key or PIN" in answer.text
    assert COOKIE not in answer.headers.get("set-cookie", "")
    assert "not-the-key" not in answer.text
    assert sign_in(stack, "").status_code == 400


def test_forms_without_the_csrf_token_are_refused_and_change_nothing(
    stack: Stack, schedule: dict[str, str]
) -> None:
    token = session(stack)
    url = f"/admin/schedules/{schedule['id']}/pause"
    with browser(stack, token) as client:
        good = csrf_token(client.get("/admin/schedules").text)
        missing = client.post(url, data={})
        wrong = client.post(url, data={"csrf_token": "0" * 64})
        other = csrf_token(browser(stack, session(stack)).get("/admin/schedules").text)
        foreign = client.post(url, data={"csrf_token": other})
        for refused in (missing, wrong, foreign):
            assert refused.status_code == 403
        enabled = "SELECT enabled FROM schedules WHERE id = %s"
        assert stack.scalar(enabled, (schedule["id"],)) is True
        assert client.post("/admin/logout", data={}).status_code == 403
        assert client.get("/admin/jobs").status_code == 200, "still signed in"

        done = client.post(url, data={"csrf_token": good})
        assert done.status_code == 303 and done.headers["location"] == "/admin/schedules"
        assert stack.scalar(enabled, (schedule["id"],)) is False
        resumed = client.post(
            f"/admin/schedules/{schedule['id']}/resume", data={"csrf_token": good}
        )
        assert resumed.status_code == 303
        assert stack.scalar(enabled, (schedule["id"],)) is True


def test_the_page_refuses_what_the_api_refuses(stack: Stack, schedule: dict[str, str]) -> None:
    token = session(stack)
    with browser(stack, token) as client:
        good = csrf_token(client.get("/admin/schedules").text)
        timer = f"/admin/schedules/{schedule['id']}/timer"
        bad = client.post(timer, data={"csrf_token": good, "timer": "61 * * * *"})
        assert bad.status_code == 422 and "not a valid cron expression" in bad.text
        zero = client.post(timer, data={"csrf_token": good, "timer": "0"})
        assert zero.status_code == 422
        cron = "SELECT cron FROM schedules WHERE id = %s"
        assert stack.scalar(cron, (schedule["id"],)) == FAR
        changed = client.post(timer, data={"csrf_token": good, "timer": "3600"})
        assert changed.status_code == 303
        row = "SELECT cron, interval_seconds FROM schedules WHERE id = %s"
        assert stack.query(row, (schedule["id"],)) == [(None, 3600)]
        gone = client.post(f"/admin/schedules/{uuid.uuid4()}/pause", data={"csrf_token": good})
        assert gone.status_code == 404


def test_the_cookie_reads_the_api_but_never_writes(stack: Stack, schedule: dict[str, str]) -> None:
    token = session(stack)
    with browser(stack, token) as client:
        assert client.get("/v1/syncs").status_code == 200
        assert client.get("/v1/schedules").status_code == 200
        before = stack.scalar("SELECT count(*) FROM sync_jobs")
        create = client.post("/v1/syncs", json={"domain": "models"})
        assert create.status_code == 401
        assert "session cookie is accepted on GET only" in create.json()["detail"]
        patch = client.patch(f"/v1/schedules/{schedule['id']}", json={"enabled": False})
        assert patch.status_code == 401
        assert client.delete(f"/v1/schedules/{schedule['id']}").status_code == 401
        assert client.post("/api/admin/sync-models").status_code == 401
        # Seed 002's PIN-guarded routes (their SSE progress stream too) take it for reads.
        assert client.get("/api/v1/admin/metadata-sync/status").status_code == 200
        configure = client.post("/api/v1/admin/metadata-sync/configure", json={"enabled": True})
        assert configure.status_code == 401
        assert stack.scalar("SELECT count(*) FROM sync_jobs") == before
        enabled = "SELECT enabled FROM schedules WHERE id = %s"
        assert stack.scalar(enabled, (schedule["id"],)) is True


def test_an_idle_session_expires(stack: Stack) -> None:
    token = session(stack)
    digest = hashlib.sha256(token.encode()).hexdigest()
    with browser(stack, token) as client:
        assert client.get("/admin/jobs").status_code == 200
        stack.execute(
            "UPDATE admin_sessions SET last_seen_at = now() - interval '29 minutes' "
            "WHERE token_sha256 = %s",
            (digest,),
        )
        assert client.get("/admin/jobs").status_code == 200, "used within the idle time"
        stack.execute(
            "UPDATE admin_sessions SET last_seen_at = now() - interval '31 minutes' "
            "WHERE token_sha256 = %s",
            (digest,),
        )
        assert client.get("/v1/syncs").status_code == 401
        answer = client.get("/admin/jobs")
        assert answer.status_code == 303 and answer.headers["location"] == "/admin/login"
    assert (
        stack.scalar("SELECT count(*) FROM admin_sessions WHERE token_sha256 = %s", (digest,)) == 0
    )


def test_sign_out_ends_the_session_everywhere(stack: Stack, schedule: dict[str, str]) -> None:
    token = session(stack)
    body, headers = signed(batch(["signout"]), SECRET)
    pushed = httpx.post(stack.push_url, content=body, headers=headers, timeout=30)
    assert pushed.status_code == 202, pushed.text
    job_id = pushed.json()["jobId"]
    with browser(stack, token) as client:
        form = csrf_token(client.get("/admin/jobs").text)
        with client.stream("GET", f"/v1/syncs/{job_id}/events") as events:
            assert events.status_code == 200
        out = client.post("/admin/logout", data={"csrf_token": form})
        assert out.status_code == 303 and out.headers["location"] == "/admin/login"
        cleared = morsel(out)
        assert cleared["value"] == "" and cleared["max-age"] == "0"
    with browser(stack, token) as client:
        assert client.get("/admin/jobs").headers["location"] == "/admin/login"
        assert client.get(f"/v1/syncs/{job_id}/events").status_code == 401
        assert client.get("/v1/syncs").status_code == 401
        # The old cookie with its own CSRF token: a form of a session that is gone.
        stale = client.post(f"/admin/schedules/{schedule['id']}/pause", data={FIELD: form})
        assert stale.status_code == 403
    enabled = "SELECT enabled FROM schedules WHERE id = %s"
    assert stack.scalar(enabled, (schedule["id"],)) is True


def test_no_secret_in_any_url_and_no_admin_page_in_the_openapi_document(stack: Stack) -> None:
    answer = sign_in(stack, ADMIN_KEY)
    token = str(morsel(answer)["value"])
    locations = [answer.headers["location"]]
    with browser(stack, token) as client:
        for path in ("/admin", "/admin/login"):
            locations.append(client.get(path).headers["location"])
        pages = [client.get(p).text for p in ("/admin/jobs", "/admin/schedules", "/admin/models")]
    for location in locations:
        assert ADMIN_KEY not in location and token not in location
    for page in pages:
        for action in re.findall(r'<form method="(\w+)" action="([^"]*)"', page):
            assert action[0] == "post" or "filters" in page, action
            assert token not in action[1] and ADMIN_KEY not in action[1]
    # The query string is never read as a credential.
    query = httpx.get(f"{stack.url}/admin/login", params={"credential": ADMIN_KEY})
    assert query.status_code == 200 and "set-cookie" not in query.headers
    paths = httpx.get(f"{stack.url}/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/admin")]


def test_wrong_sign_ins_share_the_failed_authentication_limit(isolated_stack: Stack) -> None:
    stack = isolated_stack
    stack.env_overrides.update(
        {"SYNCBUS_AUTH_FAILURES_PER_MINUTE": "3", "INTERNAL_SYNC_TRUSTED_PROXIES": "127.0.0.1"}
    )
    stack.start_api()
    # Behind a trusted proxy that says HTTPS, the cookie is Secure.
    proxied = sign_in(stack, ADMIN_PIN, **{"x-forwarded-proto": "https"})
    assert proxied.status_code == 303 and morsel(proxied)["secure"] is True
    guesser = {"x-forwarded-for": "203.0.113.7"}
    codes = [sign_in(stack, f"guess-{i}", **guesser).status_code for i in range(3)]
    assert codes == [401, 401, 401]
    locked = sign_in(stack, ADMIN_KEY, **guesser)
    assert locked.status_code == 429, "even the right key, once locked out"
    assert int(locked.headers["retry-after"]) >= 1
    assert "set-cookie" not in locked.headers
    api = httpx.get(f"{stack.url}/v1/syncs", headers={"x-admin-pin": ADMIN_PIN, **guesser})
    assert api.status_code == 429, "the same limiter as the API's credentials"
    other = sign_in(stack, ADMIN_KEY, **{"x-forwarded-for": "203.0.113.8"})
    assert other.status_code == 303


def test_trigger_buttons_start_what_the_api_starts(isolated_stack: Stack) -> None:
    """No worker runs here: the models job stays queued, and nothing reaches out."""
    stack = isolated_stack
    stack.env_overrides.update(APP_SECRETS)
    stack.start_api()
    with stack.client() as admin:
        assert admin.post("/v1/apps", json=APP).status_code == 201
        assert admin.post("/v1/apps", json={**APP, "app_key": "admin-us"}).status_code == 201
        timers = [
            admin.post("/v1/schedules", json={"name": n, "domain": d, "scope": s, "cron": FAR})
            for n, d, s in (("m", "models", "default"), ("us", "saas", "admin-us"))
        ]
    models_timer, app_timer = (t.json()["id"] for t in timers)
    with browser(stack, session(stack)) as client:
        form = csrf_token(client.get("/admin/models").text)
        assert client.post("/admin/models/sync", data={}).status_code == 403
        started = client.post("/admin/models/sync", data={"csrf_token": form})
        assert started.status_code == 303
        job_id = started.headers["location"].rsplit("/", 1)[1]
        row = "SELECT domain, trigger, actor, status FROM sync_jobs WHERE id = %s"
        assert stack.query(row, (job_id,)) == [("models", "http", "admin", "queued")]
        again = client.post("/admin/models/sync", data={"csrf_token": form})
        assert again.status_code == 409 and "already running" in again.text
        assert client.get(started.headers["location"]).status_code == 200
        none = client.post("/admin/git/sync", data={"csrf_token": form})
        assert none.status_code == 400 and "git_branch" in none.text
        assert "Sync admin-eu now" in client.get("/admin/apps").text
        app_sync = client.post("/admin/apps/admin-eu/sync", data={"csrf_token": form})
        assert app_sync.status_code == 303
        job_id = app_sync.headers["location"].rsplit("/", 1)[1]
        assert stack.query(row, (job_id,)) == [("saas", "http", "admin", "queued")]
        busy = client.post("/admin/apps/admin-eu/sync", data={"csrf_token": form})
        assert busy.status_code == 409 and "already running" in busy.text
        unknown = client.post("/admin/apps/nope/sync", data={"csrf_token": form})
        assert unknown.status_code == 404
        # Run now: the API's rules, its refusal (a models job is active) and its job.
        refused = client.post(f"/admin/schedules/{models_timer}/run", data={FIELD: form})
        assert refused.status_code == 409 and "not fired" in refused.text
        ran = client.post(f"/admin/schedules/{app_timer}/run", data={FIELD: form})
        assert ran.status_code == 303
        job_id = ran.headers["location"].rsplit("/", 1)[1]
        assert stack.query(row, (job_id,)) == [("saas", "schedule", "admin", "queued")]
    with browser(stack, session(stack, ADMIN_PIN)) as client:
        form = csrf_token(client.get("/admin/apps").text)
        assert "Sync admin-eu now" not in client.get("/admin/apps").text
        refused = client.post("/admin/apps/admin-eu/sync", data={"csrf_token": form})
        assert refused.status_code == 403 and "admin key" in refused.text


def test_the_jobs_list_filters(stack: Stack) -> None:
    body, headers = signed(batch(["filtered"], lang="de"), SECRET)
    pushed = httpx.post(stack.push_url, content=body, headers=headers, timeout=30)
    job_id = pushed.json()["jobId"]
    with browser(stack, session(stack)) as client:
        assert job_id in client.get("/admin/jobs/rows").text
        assert job_id in client.get("/admin/jobs/rows", params={"domain": "dictionary"}).text
        assert job_id not in client.get("/admin/jobs/rows", params={"domain": "models"}).text
        assert job_id not in client.get("/admin/jobs/rows", params={"status": "cancelled"}).text
        assert (
            job_id not in client.get("/admin/jobs/rows", params={"since": "2999-01-01T00:00"}).text
        )
        assert job_id in client.get("/admin/jobs/rows", params={"since": "2000-01-01T00:00"}).text
        bad = client.get("/admin/jobs", params={"status": "bogus", "since": "yesterday"})
        assert bad.status_code == 400 and "status: one of" in bad.text and "since:" in bad.text


def test_bad_input_is_a_4xx_that_changes_nothing(stack: Stack, schedule: dict[str, str]) -> None:
    token = session(stack)
    sid = schedule["id"]
    counts = (
        "SELECT (SELECT count(*) FROM sync_jobs), (SELECT count(*) FROM admin_sessions), "
        "(SELECT cron FROM schedules WHERE id = %s), (SELECT enabled FROM schedules WHERE id = %s)"
    )
    multipart = {"content-type": "multipart/form-data; boundary=zzz"}
    urlencoded = {"content-type": "application/x-www-form-urlencoded"}
    with browser(stack, token) as client:
        form = csrf_token(client.get("/admin/schedules").text)

        def timer(value: str) -> httpx.Response:
            return client.post(f"/admin/schedules/{sid}/timer", data={FIELD: form, "timer": value})

        before = stack.query(counts, (sid, sid))
        answers = {
            "since too early": client.get(
                "/admin/jobs", params={"since": "0001-01-01T00:00+14:00"}
            ),
            "since too late": client.get("/admin/jobs", params={"since": "9999-12-31T23:59-14:00"}),
            "NUL filters": client.get(
                "/admin/jobs", params={"domain": "\x00", "status": "\x00", "since": "\x00"}
            ),
            "rows filter": client.get("/admin/jobs/rows", params={"domain": "é" * 70}),
            "NUL job": client.get("/admin/jobs/%00"),
            "long job": client.get("/admin/jobs/" + "9" * 5000),
            "long credential": client.post("/admin/login", data={"credential": "x" * 600}),
            "NUL credential": client.post("/admin/login", data={"credential": "\x00"}),
            "not UTF-8": client.post("/admin/login", content=b"credential=%FF", headers=urlencoded),
            "bad multipart": client.post("/admin/login", content=b"--zzz\r\nx", headers=multipart),
            "JSON login": client.post("/admin/login", json={"credential": ADMIN_KEY}),
            "huge seconds": timer("9" * 5000),
            "NUL timer": timer("\x00"),
            "blank timer": timer(" "),
            "too many seconds": timer("99999999999"),
            "bad multipart form": client.post(
                f"/admin/schedules/{sid}/pause", content=b"--zzz\r\nx", headers=multipart
            ),
            "non-hex token": client.post(f"/admin/schedules/{sid}/pause", data={FIELD: "é" * 64}),
            "NUL schedule": client.post("/admin/schedules/%00/pause", data={FIELD: form}),
            "NUL app": client.post("/admin/apps/%00/sync", data={FIELD: form}),
            "long app": client.post("/admin/apps/" + "a" * 100 + "/sync", data={FIELD: form}),
            "POST a page": client.post("/admin/jobs", data={FIELD: form}),
        }
        after = stack.query(counts, (sid, sid))
    refused = {name: answer.status_code for name, answer in answers.items()}
    assert all(400 <= status < 500 for status in refused.values()), refused
    # Every refusal is a page a person can read ("rows filter" asks for the rows alone).
    not_pages = {
        name: answer.headers["content-type"]
        for name, answer in answers.items()
        if name != "rows filter" and not is_page(answer)
    }
    assert not not_pages, f"answered without a page: {not_pages}"
    assert before == after


def test_errors_on_admin_paths_are_pages_and_api_errors_stay_problems(stack: Stack) -> None:
    with browser(stack, session(stack)) as client:
        unknown = client.get("/admin/no-such-page")
        wrong_method = client.delete("/admin/jobs")
        api_unknown = client.get("/v1/no-such-route")
        asset = client.get("/admin/static/no-such.css")
    for answer in (unknown, wrong_method):
        assert is_page(answer), answer.text
        assert "default-src 'self'" in answer.headers["content-security-policy"]
    assert unknown.status_code == 404 and "Not Found" in unknown.text
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"]
    assert api_unknown.status_code == 404
    assert api_unknown.headers["content-type"] == "application/problem+json"
    assert asset.status_code == 404 and "<main" not in asset.text
    # Signed in, the page keeps its navigation; a stranger's error page shows none.
    assert 'aria-label="Admin pages"' in unknown.text and "Sign out" in unknown.text
    stranger = httpx.get(f"{stack.url}/admin/no-such-page")
    assert stranger.status_code == 404 and is_page(stranger)
    assert 'aria-label="Admin pages"' not in stranger.text


def test_the_releases_page_syncs_a_release_and_configures_the_schedule(
    isolated_stack: Stack,
) -> None:
    """Seed 002's per-release trigger and its configure call, from the page: the API's
    rules and answers (no worker runs here: the job stays queued)."""
    stack = isolated_stack
    stack.start_api()
    pin = {"X-Admin-PIN": ADMIN_PIN}
    with stack.client(admin=False) as api:
        made = api.post(
            "/api/v1/admin/releases",
            json={"name": "7.0.0.0", "git_branch": "master", "active": True},
            headers=pin,
        )
        assert made.status_code == 201, made.text
    release_id = made.json()["id"]
    settings = "SELECT key, value FROM app_settings ORDER BY key"
    with browser(stack, session(stack, ADMIN_PIN)) as client:
        page = client.get("/admin/git").text
        assert f'action="/admin/git/releases/{release_id}/sync"' in page
        form = csrf_token(page)
        assert client.post(f"/admin/git/releases/{release_id}/sync", data={}).status_code == 403
        started = client.post(f"/admin/git/releases/{release_id}/sync", data={FIELD: form})
        assert started.status_code == 303, started.text
        job_id = started.headers["location"].rsplit("/", 1)[1]
        row = "SELECT domain, scope, status FROM sync_jobs WHERE id = %s"
        assert stack.query(row, (job_id,)) == [("git", "master", "queued")]
        # Seed 002's rule: a second trigger while the release's sync waits joins it.
        joined = client.post(f"/admin/git/releases/{release_id}/sync", data={FIELD: form})
        assert joined.status_code == 303
        assert joined.headers["location"] == started.headers["location"]
        for unknown in ("999999", "x1", "1" * 12):
            answer = client.post(f"/admin/git/releases/{unknown}/sync", data={FIELD: form})
            assert answer.status_code == 404 and "not found" in answer.text

        before = stack.query(settings)
        for bad in ("abc", "-1", "0", "nan", "1e9"):
            refused = client.post("/admin/git/configure", data={FIELD: form, "interval_hours": bad})
            assert refused.status_code == 422 and "Every (hours)" in refused.text, bad
        assert stack.query(settings) == before, "a refused form writes nothing"
        saved = client.post(
            "/admin/git/configure", data={FIELD: form, "enabled": "on", "interval_hours": "6"}
        )
        assert saved.status_code == 303
    with stack.client(admin=False) as api:
        status = api.get("/api/v1/admin/metadata-sync/status", headers=pin).json()
    assert (status["enabled"], status["interval_hours"]) == (True, 6.0)
    assert status["next_run"] is not None, "the schedule follows at once"
