"""The git domain over SSH against a real sshd (strict host key checking on and off), and one
lock per branch across workers: two workers racing on one branch pull one after the other."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from cli.sse import SseEvent
from tests.git_repos import WorkRepository, bare_clone, git
from tests.git_stack import (
    add_release,
    configure,
    log_lines,
    module_source,
    stored_tests,
    stream,
    sync,
    trigger,
)
from tests.sshd import SshServer
from tests.stack import Stack
from tests.waiting import wait_for

FILES = {"tests/test_remote.py": module_source("test_over_ssh", "test_again")}
LOCK = "SELECT pg_advisory_lock(hashtextextended('syncbus.git.branch:' || %s, 0))"


@pytest.fixture
def ssh_server(tmp_path: Path) -> Iterator[SshServer]:
    with SshServer(tmp_path / "sshd") as server:
        yield server


def test_ssh_with_strict_host_key_checking_on_and_off(
    isolated_stack: Stack, ssh_server: SshServer, tmp_path: Path
) -> None:
    work = WorkRepository(tmp_path / "work")
    work.commit_files(FILES)
    served = bare_clone(work, tmp_path / "served.git")
    known = ssh_server.write_known_hosts(tmp_path / "known_hosts")
    configure(
        isolated_stack,
        ssh_server.url(served),
        tmp_path,
        GIT_REPO_SSH_KEY_PATH=str(ssh_server.client_key),
        GIT_SSH_STRICT_HOST_KEY_CHECKING="true",
        GIT_SSH_KNOWN_HOSTS_PATH=str(known),
    )
    isolated_stack.start_worker()
    isolated_stack.start_api()
    release = add_release(isolated_stack, "7.0.0.0", "main")
    assert "Tests added: 2" in log_lines(sync(isolated_stack, release))

    # Strict, and the server's key is not known: refused, and nothing changes.
    (tmp_path / "empty_known_hosts").write_text("")
    isolated_stack.stop("worker")
    isolated_stack.env_overrides["GIT_SSH_KNOWN_HOSTS_PATH"] = str(tmp_path / "empty_known_hosts")
    isolated_stack.start_worker()
    events = sync(isolated_stack, release)
    assert events[-1].event == "error"
    assert "Host key verification failed" in events[-1].data["error"]

    # Not strict: the unknown key is accepted (and not written anywhere).
    isolated_stack.stop("worker")
    isolated_stack.env_overrides["GIT_SSH_STRICT_HOST_KEY_CHECKING"] = "false"
    work.commit_files({"tests/test_more.py": module_source("test_more")})
    push(work, served)
    isolated_stack.start_worker()
    assert "Tests added: 1" in log_lines(sync(isolated_stack, release))
    assert (tmp_path / "empty_known_hosts").read_text() == ""


def push(work: WorkRepository, bare: Path) -> None:
    git("push", "--quiet", str(bare), "HEAD:main", cwd=work.path)


def waiting_for_the_branch(stack: Stack) -> int:
    rows = stack.query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
    return int(rows[0][0])


def test_two_workers_racing_on_one_branch_pull_one_after_the_other(
    isolated_stack: Stack, tmp_path: Path
) -> None:
    work = WorkRepository(tmp_path / "remote")
    work.commit_files(FILES)
    configure(isolated_stack, work.url, tmp_path)
    isolated_stack.start_api()
    # Two workers as on two hosts (own consumer group, own local copy): both see every
    # request and whichever claims a job first runs it.
    for name in ("w1", "w2"):
        isolated_stack.env_overrides.update(
            {
                "SYNCBUS_WORKER_GROUP": f"{isolated_stack.name}-{name}",
                "GIT_REPO_LOCAL_PATH": str(tmp_path / f"local-{name}"),
            }
        )
        isolated_stack.start_worker(name)
    first = add_release(isolated_stack, "7.0.0.0", "main")
    second = add_release(isolated_stack, "7.0.1.0", "main")

    with psycopg.connect(isolated_stack.database_url, autocommit=True) as holder:
        holder.execute(LOCK, ("main",))  # the branch is busy: both syncs must wait for it
        jobs = []
        with isolated_stack.client() as http:
            for scope, release in (("one", first), ("two", second)):
                body = {"domain": "git", "scope": scope, "params": {"release_ids": [release]}}
                made = http.post("/v1/syncs", json=body)
                assert made.status_code == 202, made.text
                jobs.append(made.json()["id"])
        wait_for(lambda: waiting_for_the_branch(isolated_stack) == 2, timeout=60,
                 what="both workers waiting for the branch")  # fmt: skip
        for job in jobs:
            assert "Pulling latest changes from branch 'main'" not in log_lines(
                stream_so_far(isolated_stack, job)
            )
    for job in jobs:
        assert stream(isolated_stack, job)[-1].event == "complete"

    spans = []
    for job in jobs:
        rows = isolated_stack.query(
            "SELECT data ->> 'message', created_at FROM sync_events "
            "WHERE job_id = %s AND type = 'log' ORDER BY seq",
            (job,),
        )
        at = {message: when for message, when in rows}
        spans.append((at["Pulling latest changes from branch 'main'"],
                      next(w for m, w in rows if m.startswith("Discovered"))))  # fmt: skip
    (_a_start, a_end), (b_start, _b_end) = sorted(spans)
    assert a_end <= b_start, f"the two pulls overlapped: {spans}"


def test_a_release_triggered_again_while_it_syncs_syncs_after_it(
    isolated_stack: Stack, tmp_path: Path
) -> None:
    """Seed 002's trigger of a release whose sync runs: the second sync queues, reads the
    release's state once the first applied it, and succeeds (it was refused: synced by
    another job meanwhile)."""
    work = WorkRepository(tmp_path / "remote")
    work.commit_files(FILES)
    configure(isolated_stack, work.url, tmp_path)
    isolated_stack.start_worker()
    isolated_stack.start_api()
    release = add_release(isolated_stack, "7.0.0.0", "main")
    with psycopg.connect(isolated_stack.database_url, autocommit=True) as holder:
        holder.execute(LOCK, ("main",))  # the first sync runs, waiting for the branch
        first = trigger(isolated_stack, release)
        wait_for(lambda: waiting_for_the_branch(isolated_stack) == 1, timeout=60,
                 what="the first sync waiting for the branch")  # fmt: skip
        second = trigger(isolated_stack, release)
        assert second != first
        work.commit_files({"tests/test_more.py": module_source("test_more")})
    assert stream(isolated_stack, first)[-1].event == "complete"
    ended = stream(isolated_stack, second)[-1]
    assert ended.event == "complete", ended
    assert "tests/test_more.py::test_more" in stored_tests(isolated_stack, release)


def stream_so_far(stack: Stack, job: str) -> list[SseEvent]:
    rows = stack.query("SELECT type, data FROM sync_events WHERE job_id = %s ORDER BY seq", (job,))
    return [SseEvent(None, kind, data) for kind, data in rows]
