"""A syncbus whose git domain pulls a repository the test builds, and the seed's client calls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.git_repos import WorkRepository
from tests.sse_client import SseEvent, iter_events
from tests.stack import ADMIN_PIN, Stack

ADMIN = "/api/v1/admin"
PIN = {"X-Admin-PIN": ADMIN_PIN}


def configure(stack: Stack, url: str, directory: Path, **settings: str) -> None:
    stack.env_overrides.update(
        {
            "GIT_REPO_URL": url,
            "GIT_REPO_LOCAL_PATH": str(directory / "local-repo"),
            "GIT_OPERATION_TIMEOUT_SECONDS": "30",
            **settings,
        }
    )


def client(stack: Stack) -> httpx.Client:
    return httpx.Client(base_url=f"{stack.url}{ADMIN}", headers=PIN, timeout=60)


def add_release(stack: Stack, name: str, branch: str | None, active: bool = True) -> int:
    with client(stack) as http:
        made = http.post("/releases", json={"name": name, "git_branch": branch, "active": active})
    assert made.status_code == 201, made.text
    return int(made.json()["id"])


def trigger(stack: Stack, release_id: int) -> str:
    with client(stack) as http:
        answer = http.post(f"/metadata-sync/trigger/{release_id}")
    assert answer.status_code == 200, answer.text
    return str(answer.json()["job_id"])


def stream(stack: Stack, job_id: str) -> list[SseEvent]:
    """The job's whole progress stream (it closes once the job has ended)."""
    with client(stack) as http, http.stream("GET", f"/metadata-sync/progress/{job_id}") as answer:
        assert answer.status_code == 200, answer.read()
        return list(iter_events(answer))


def log_lines(events: list[SseEvent]) -> list[str]:
    return [str(e.data["message"]) for e in events if e.event == "log"]


def sync(stack: Stack, release_id: int) -> list[SseEvent]:
    """Trigger a release's sync and read its stream to the end."""
    return stream(stack, trigger(stack, release_id))


def stored_tests(stack: Stack, release_id: int) -> dict[str, dict[str, Any]]:
    with client(stack) as http:
        answer = http.get(f"/releases/{release_id}/tests")
    assert answer.status_code == 200, answer.text
    return {t["nodeid"]: t for t in answer.json()}


def last_sync(stack: Stack) -> dict[str, Any]:
    with client(stack) as http:
        return dict(http.get("/metadata-sync/status").json()["last_sync"])


def module_source(*names: str, cls: str | None = None) -> str:
    """Source of a test module with test functions ``names`` (in class ``cls`` if given)."""
    if cls is None:
        return "".join(f"def {n}():\n    assert True\n\n\n" for n in names)
    body = "".join(f"    def {n}(self):\n        assert True\n\n" for n in names)
    return f"class {cls}:\n{body}"


def repository(path: Path, files: dict[str, str], branch: str = "main") -> WorkRepository:
    repo = WorkRepository(path, branch=branch)
    repo.commit_files(files, "first")
    return repo
