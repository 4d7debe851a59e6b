"""The generic /v1 API, admin auth, problem details, health and OpenAPI."""

from __future__ import annotations

import uuid

import httpx

from tests.payloads import batch
from tests.stack import ADMIN_PIN, Stack
from tests.waiting import wait_for


def wait_succeeded(client: httpx.Client, job_id: str) -> dict[str, object]:
    def done() -> dict[str, object] | None:
        job = client.get(f"/v1/syncs/{job_id}").json()
        return job if job["status"] in ("succeeded", "failed") else None

    return wait_for(done, what=f"job {job_id}")


def test_create_read_and_list_a_sync(stack: Stack) -> None:
    payload = batch(["v1-alpha", "v1-beta"])
    del payload["requestId"]
    with stack.client() as client:
        response = client.post("/v1/syncs", json={"domain": "dictionary", "payload": payload})
        assert response.status_code == 202, response.text
        job = response.json()
        assert response.headers["location"] == f"/v1/syncs/{job['id']}"
        assert (job["domain"], job["scope"], job["status"]) == ("dictionary", "en", "queued")
        assert job["events_url"] == f"/v1/syncs/{job['id']}/events"

        final = wait_succeeded(client, job["id"])
        assert final["status"] == "succeeded"
        assert final["counts"] == {
            "discovered": 2, "created": 2, "updated": 0, "deleted": 0, "unchanged": 0, "errors": 0
        }  # fmt: skip

        listed = client.get("/v1/syncs", params={"domain": "dictionary", "limit": 500}).json()
        assert job["id"] in {item["id"] for item in listed["items"]}
        failed_only = client.get("/v1/syncs", params={"status": "failed"}).json()
        assert all(item["status"] == "failed" for item in failed_only["items"])


def test_a_mode_the_domain_lacks_is_422(stack: Stack) -> None:
    before = stack.scalar("SELECT count(*) FROM sync_jobs")
    with stack.client() as client:
        refused = client.post("/v1/syncs", json={"domain": "models", "mode": "incremental"})
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"] == "mode: the models domain syncs full only"
    assert stack.scalar("SELECT count(*) FROM sync_jobs") == before


def test_paging_skips_no_job_created_in_the_same_instant(stack: Stack) -> None:
    """A scheduler tick creates its jobs in one transaction: they share created_at, and a
    page that ends among them must not make the next page (created before it) skip some."""
    tied = {
        str(row[0])
        for row in stack.query(
            "INSERT INTO sync_jobs (id, request_id, domain, scope, mode, trigger, status) "
            "SELECT gen_random_uuid(), 'tie-' || gen_random_uuid(), 'dictionary', 'ties', "
            "'incremental', 'http', 'cancelled' FROM generate_series(1, 5) RETURNING id"
        )
    }
    seen: list[str] = []
    params: dict[str, str | int] = {"domain": "dictionary", "status": "cancelled", "limit": 2}
    with stack.client() as client:
        while True:
            page = client.get("/v1/syncs", params=params).json()
            seen += [item["id"] for item in page["items"]]
            if page["next_before"] is None:
                break
            params["before"] = page["next_before"]
    assert tied <= set(seen), "a job created with others in one instant was skipped"
    assert len(seen) == len(set(seen)), "a job was listed twice"


def test_request_id_makes_creation_idempotent(stack: Stack) -> None:
    request_id = f"v1-{uuid.uuid4()}"
    body = {"domain": "dictionary", "request_id": request_id, "payload": batch(["idem"])}
    with stack.client() as client:
        first = client.post("/v1/syncs", json=body)
        second = client.post("/v1/syncs", json=body)
        other = client.post("/v1/syncs", json={**body, "payload": batch(["different"])})
    assert first.status_code == 202
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert other.status_code == 409
    assert stack.scalar("SELECT count(*) FROM sync_jobs WHERE request_id = %s", (request_id,)) == 1


def test_bad_requests_are_problem_details(stack: Stack) -> None:
    with stack.client() as client:
        unknown = client.post("/v1/syncs", json={"domain": "nope"})
        wrong_type = client.post("/v1/syncs", json={"domain": "dictionary", "payload": [1]})
        bad_batch = client.post(
            "/v1/syncs", json={"domain": "dictionary", "payload": {"lang": "en", "entries": []}}
        )
        extra = client.post("/v1/syncs", json={"domain": "dictionary", "surprise": 1})
        not_json = client.post(
            "/v1/syncs", content=b"{", headers={"content-type": "application/json"}
        )
        missing = client.get(f"/v1/syncs/{uuid.uuid4()}")
        not_uuid = client.get("/v1/syncs/not-a-uuid")
    assert unknown.status_code == 422 and "unknown domain" in unknown.json()["detail"]
    assert wrong_type.status_code == 422
    assert bad_batch.status_code == 422 and "payload" in bad_batch.json()["detail"]
    assert extra.status_code == 422
    assert not_json.status_code == 422
    assert missing.status_code == 404
    assert not_uuid.status_code == 422
    for response in (unknown, wrong_type, bad_batch, extra, not_json, missing, not_uuid):
        assert response.headers["content-type"] == "application/problem+json"
        assert {"type", "title", "status", "detail"} <= set(response.json())


def test_admin_credentials_are_required_and_either_form_works(stack: Stack) -> None:
    with stack.client(admin=False) as client:
        assert client.get("/v1/syncs").status_code == 401
        assert client.get("/v1/syncs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/v1/syncs", headers={"Authorization": "Basic abc"}).status_code == 401
        assert client.get("/v1/syncs", headers={"X-Admin-PIN": ADMIN_PIN}).status_code == 200
        denied = client.get("/v1/syncs")
    assert denied.headers["www-authenticate"] == "Bearer"
    assert "ADMIN_API_KEY" in denied.json()["detail"]


def test_oversize_v1_body_is_413(stack: Stack) -> None:
    with stack.client() as client:
        response = client.post(
            "/v1/syncs",
            content=b'{"domain":"dictionary","payload":"' + b"x" * 1_100_000 + b'"}',
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 413
    assert response.json()["status"] == 413


def test_parameters_too_big_or_out_of_range_are_422_and_write_nothing(stack: Stack) -> None:
    """Parameters travel inside every Kafka request (at most 64 KiB of them), and come back
    from jsonb: 1e20 would read back as an integer beyond 64 bits."""
    counts = "SELECT (SELECT count(*) FROM sync_jobs), (SELECT count(*) FROM schedules)"
    before = stack.query(counts)
    big, huge_number = {"pad": "x" * 70_000}, {"x": 1e20}
    schedule = {"name": "edge-params", "domain": "models", "cron": "0 2 * * *"}
    with stack.client() as client:
        answers = {
            "sync, big": client.post("/v1/syncs", json={"domain": "models", "params": big}),
            "sync, 1e20": client.post(
                "/v1/syncs", json={"domain": "models", "params": huge_number}
            ),
            "schedule, big": client.post("/v1/schedules", json={**schedule, "params": big}),
            "schedule, 1e20": client.post(
                "/v1/schedules", json={**schedule, "params": huge_number}
            ),
        }
    assert {name: a.status_code for name, a in answers.items()} == dict.fromkeys(answers, 422)
    assert "at most 65536" in answers["sync, big"].json()["detail"]
    assert "number out of range" in answers["schedule, 1e20"].json()["detail"]
    assert stack.query(counts) == before


def test_health_readiness_and_openapi(stack: Stack) -> None:
    with stack.client(admin=False) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"database": "ok", "broker": "ok", "config_files": "ok"}
        paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/v1/syncs",
        "/v1/syncs/{job_id}",
        "/v1/syncs/{job_id}/events",
        "/api/internal/dictionary-upserts",
        "/api/internal/dictionary-upserts/status",
        "/api/admin/dictionary/internal-sync/stats",
    } <= set(paths)


def test_the_running_api_serves_docs_offline_and_declares_its_credentials(stack: Stack) -> None:
    with stack.client(admin=False) as client:
        docs = client.get("/docs")
        spec = client.get("/openapi.json").json()
    assert docs.status_code == 200 and "/docs/static/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["AdminKey"] == {
        "type": "http", "scheme": "bearer", "description": "`ADMIN_API_KEY`"
    }  # fmt: skip
    assert schemes["AdminPin"]["name"] == "X-Admin-PIN"
    paths = spec["paths"]
    admin: list[dict[str, list[str]]] = [{"AdminKey": []}, {"AdminPin": []}]
    assert paths["/v1/syncs"]["post"]["security"] == admin
    assert paths["/api/admin/dictionary/internal-sync/stats"]["get"]["security"] == admin
    signed: dict[str, list[str]] = {"SyncTimestamp": [], "SyncRequestId": [], "SyncSignature": []}
    assert paths["/api/internal/dictionary-upserts"]["post"]["security"] == [signed]
    assert {schemes[name]["name"] for name in signed} == {
        "x-sync-timestamp", "x-sync-request-id", "x-sync-signature"
    }  # fmt: skip
    assert paths["/api/internal/sync-models"]["post"]["security"] == [
        {"InternalToken": []}, {"InternalSignature": []}
    ]  # fmt: skip
    assert "security" not in paths["/healthz"]["get"]
