"""Seed 002's metadata sync through the real api, broker, worker and PostgreSQL: the stream in
the seed's order, exact counts over real commits, nothing to do without a new commit, the
failure-rate guard, and incremental syncs equal to a full rediscovery."""

from __future__ import annotations

from pathlib import Path

import httpx
import psycopg
import pytest

from tests.git_repos import WorkRepository
from tests.git_stack import (
    add_release,
    client,
    configure,
    last_sync,
    log_lines,
    module_source,
    repository,
    stored_tests,
    stream,
    sync,
    trigger,
)
from tests.stack import Stack
from tests.waiting import wait_for

FILES = {
    "tests/test_alpha.py": module_source("test_one", "test_two"),
    "tests/test_beta.py": module_source("test_a", "test_b", "test_c", cls="TestBeta"),
    "tests/helpers.py": "def test_not_collected():\n    pass\n",
    "README.md": "not python\n",
}


@pytest.fixture
def remote(tmp_path: Path) -> WorkRepository:
    return repository(tmp_path / "remote", FILES)


@pytest.fixture
def git_stack(isolated_stack: Stack, remote: WorkRepository, tmp_path: Path) -> Stack:
    configure(isolated_stack, remote.url, tmp_path)
    isolated_stack.start_worker()
    isolated_stack.start_api()
    return isolated_stack


def test_first_sync_streams_the_seeds_lines_in_order(git_stack: Stack) -> None:
    release = add_release(git_stack, "7.0.0.0", "main")
    events = sync(git_stack, release)

    assert events[0].event == "connected"
    assert events[0].data["message"] == "Connected to sync progress stream"
    assert log_lines(events) == [
        "Starting metadata sync for release: 7.0.0.0",
        "Git branch: main",
        "Acquiring Git lock for branch 'main'",
        "Pulling latest changes from branch 'main'",
        "Discovered 5 tests (0 files failed)",
        "Comparing with existing metadata",
        "Applying updates: 5 new, 0 updated, 0 removed",
        "Added 5/5 new tests",
        "Updated 0/0 tests",
        "Removed 0/0 tests",
        "=== Sync Complete ===",
        "Tests discovered: 5",
        "Tests added: 5",
        "Tests updated: 0",
        "Tests removed: 0",
        "Files failed to parse: 0",
        "Sync completed successfully for 7.0.0.0",
    ]
    complete = events[-1]
    assert complete.event == "complete"
    assert {k: complete.data[k] for k in ("status", "success", "error")} == {
        "status": "completed",
        "success": True,
        "error": None,
    }
    ids = [int(e.id) for e in events[1:] if e.id is not None]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)

    stored = stored_tests(git_stack, release)
    assert sorted(stored) == [
        "tests/test_alpha.py::test_one",
        "tests/test_alpha.py::test_two",
        "tests/test_beta.py::TestBeta::test_a",
        "tests/test_beta.py::TestBeta::test_b",
        "tests/test_beta.py::TestBeta::test_c",
    ]
    assert stored["tests/test_beta.py::TestBeta::test_b"]["line"] == 5
    assert stored["tests/test_beta.py::TestBeta::test_b"]["class_name"] == "TestBeta"

    last = last_sync(git_stack)
    assert isinstance(last["id"], int)
    assert last["status"] == "success" and last["sync_type"] == "manual"
    assert (last["tests_discovered"], last["tests_added"]) == (5, 5)
    assert len(last["git_commit_hash"]) == 40
    assert "T" in last["started_at"] and "+" not in last["started_at"]
    assert "." not in last["completed_at"]


def test_changes_between_commits_count_exactly_and_equal_a_full_rediscovery(
    git_stack: Stack, remote: WorkRepository
) -> None:
    release = add_release(git_stack, "7.0.0.0", "main")
    sync(git_stack, release)

    remote.write({"tests/test_alpha.py": module_source("test_one", "test_two_renamed")})
    remote.write({"tests/test_gamma.py": module_source("test_new")})
    remote.move("tests/test_beta.py", "tests/moved/test_beta.py")
    remote.commit("rename a test, move a file, add one")
    events = sync(git_stack, release)
    lines = log_lines(events)
    # Added: test_two_renamed, test_new and the three moved tests; removed: their old ids.
    assert "Applying updates: 5 new, 0 updated, 4 removed" in lines
    assert "Discovered 6 tests (0 files failed)" in lines
    stored = stored_tests(git_stack, release)
    assert "tests/moved/test_beta.py::TestBeta::test_a" in stored
    assert "tests/test_alpha.py::test_two" not in stored

    remote.write(
        {"tests/test_alpha.py": '"""Docs."""\n\n\ndef test_one():\n    """Now documented."""\n'}
    )
    remote.delete("tests/test_gamma.py")
    remote.commit("update one, delete a file")
    lines = log_lines(sync(git_stack, release))
    assert "Applying updates: 0 new, 1 updated, 2 removed" in lines
    assert stored_tests(git_stack, release)["tests/test_alpha.py::test_one"]["docstring"] == (
        "Now documented."
    )

    incremental = stored_tests(git_stack, release)
    rediscover = {"release_ids": [release]}
    with git_stack.client() as http:
        full = http.post(
            "/v1/syncs",
            json={"domain": "git", "scope": "main", "mode": "full", "params": rediscover},
        )
    assert full.status_code == 202, full.text
    lines = log_lines(stream(git_stack, full.json()["id"]))
    assert "Applying updates: 0 new, 0 updated, 0 removed" in lines
    assert stored_tests(git_stack, release) == incremental


def test_no_new_commit_completes_at_once(git_stack: Stack) -> None:
    release = add_release(git_stack, "7.0.0.0", "main")
    sync(git_stack, release)
    lines = log_lines(sync(git_stack, release))
    assert any("nothing to do" in line for line in lines), lines
    assert "Comparing with existing metadata" not in lines
    assert lines[-1] == "Sync completed successfully for 7.0.0.0"
    assert "Tests discovered: 5" in lines and "Tests added: 0" in lines


def test_a_high_parse_failure_rate_changes_nothing(
    git_stack: Stack, remote: WorkRepository
) -> None:
    release = add_release(git_stack, "7.0.0.0", "main")
    sync(git_stack, release)
    before = stored_tests(git_stack, release)

    remote.write({"tests/test_alpha.py": "def test_one(:\n", "tests/test_beta.py": b"\xff\xfe"})
    remote.commit("break two of two test files")
    events = sync(git_stack, release)
    assert events[-1].event == "error"
    assert "High failure rate" in events[-1].data["error"]
    assert "Discovered 0 tests (2 files failed)" in log_lines(events)
    assert stored_tests(git_stack, release) == before, "nothing removed"
    last = last_sync(git_stack)
    assert last["status"] == "failed" and "High failure rate" in last["error_message"]
    details = git_stack.query(
        "SELECT error_details FROM sync_jobs WHERE domain = 'git' ORDER BY number DESC LIMIT 1"
    )[0][0]
    assert set(details["failed_files"]) == {"tests/test_alpha.py", "tests/test_beta.py"}
    assert "SyntaxError" in details["failed_files"]["tests/test_alpha.py"]


def test_a_few_broken_files_are_counted_and_listed(
    git_stack: Stack, remote: WorkRepository
) -> None:
    remote.write({f"tests/test_more_{i}.py": module_source("test_x") for i in range(8)})
    remote.write({"tests/test_broken.py": "def test_(:\n"})
    remote.commit("ten test files, one broken")
    release = add_release(git_stack, "7.0.0.0", "main")
    lines = log_lines(sync(git_stack, release))
    assert "Discovered 13 tests (1 files failed)" in lines
    assert "Files failed to parse: 1" in lines
    last = last_sync(git_stack)
    assert last["status"] == "success"
    assert "tests/test_broken.py" in last["error_message"]


def test_strings_postgresql_cannot_store_are_stored_replaced(
    git_stack: Stack, remote: WorkRepository
) -> None:
    """A test file may spell a NUL or a lone surrogate in a docstring: stored with U+FFFD
    in their place, where they failed the whole sync. (Parametrize ids are escaped the
    way pytest escapes them, so they never hold one.)"""
    source = "def test_nul():\n    'a \\x00 and a \\ud800'\n"
    remote.write({"tests/test_odd.py": source})
    remote.commit("odd strings")
    release = add_release(git_stack, "7.0.0.0", "main")
    sync(git_stack, release)
    assert last_sync(git_stack)["status"] == "success", last_sync(git_stack)
    tests = stored_tests(git_stack, release)
    assert tests["tests/test_odd.py::test_nul"]["docstring"] == "a \ufffd and a \ufffd"


def test_a_release_deleted_during_its_sync_fails_saying_so(git_stack: Stack) -> None:
    """Deleted while its sync waits for the branch: the job fails naming why, where its
    tests' insert failed on the missing release as an internal error."""
    release = add_release(git_stack, "7.0.0.0", "main")
    lock = "SELECT pg_advisory_lock(hashtextextended('syncbus.git.branch:' || %s, 0))"
    with psycopg.connect(git_stack.database_url, autocommit=True) as holder:
        holder.execute(lock, ("main",))  # the branch is busy: the sync waits for it
        job_id = trigger(git_stack, release)
        waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        wait_for(lambda: git_stack.scalar(waiting) == 1, timeout=60, what="the sync to wait")
        with client(git_stack) as http:
            assert http.delete(f"/releases/{release}").status_code == 204
    stream(git_stack, job_id)  # to its end
    ended = "SELECT status, error_message FROM sync_jobs WHERE id = %s"
    assert git_stack.query(ended, (job_id,)) == [
        ("failed", "release 7.0.0.0 was deleted during its sync")
    ]


def test_trigger_all_syncs_each_active_release_with_a_branch(
    git_stack: Stack, remote: WorkRepository
) -> None:
    remote.branch("release/6")
    remote.commit_files({"tests/test_six.py": module_source("test_six")}, "six")
    six = add_release(git_stack, "6.0.0.0", "release/6")
    seven = add_release(git_stack, "7.0.0.0", "main")
    add_release(git_stack, "5.4.0.0", None)
    add_release(git_stack, "old", "main", active=False)
    add_release(git_stack, "9.0.0.0", "release/9")  # no such branch: this one fails
    with client(git_stack) as http:
        answer = http.post("/metadata-sync/trigger")
    assert answer.status_code == 200
    assert answer.json()["message"] == "Metadata sync started for all active releases"
    job_id = answer.json()["job_id"]
    events = stream(git_stack, job_id)
    lines = log_lines(events)
    assert "Sync completed successfully for 6.0.0.0" in lines
    assert "Sync completed successfully for 7.0.0.0" in lines
    assert any(line.startswith("Sync failed for 9.0.0.0: ") for line in lines)
    # The job went through, but the stream's end says what it left undone.
    assert git_stack.scalar("SELECT status FROM sync_jobs WHERE id = %s", (job_id,)) == "succeeded"
    end = events[-1]
    assert (end.event, end.data["success"]) == ("complete", False)
    assert str(end.data["error"]).startswith("9.0.0.0: ")
    assert not any("5.4.0.0" in line or "old" in line for line in lines)
    assert "tests/test_six.py::test_six" in stored_tests(git_stack, six)
    assert "tests/test_six.py::test_six" not in stored_tests(git_stack, seven)


def test_seed_error_answers(git_stack: Stack) -> None:
    no_branch = add_release(git_stack, "5.4.0.0", None)
    with client(git_stack) as http:
        missing = http.post("/metadata-sync/trigger/999")
        assert (missing.status_code, missing.json()["detail"]) == (404, "Release 999 not found")
        bare = http.post(f"/metadata-sync/trigger/{no_branch}")
        assert (bare.status_code, bare.json()["detail"]) == (
            400,
            "Release 5.4.0.0 has no git_branch configured",
        )
        assert http.post("/metadata-sync/trigger").status_code == 400
    release = add_release(git_stack, "7.0.0.0", "main")
    same_branch = add_release(git_stack, "7.0.1.0", "main")
    git_stack.stop("worker")  # the first sync stays queued
    first = trigger(git_stack, release)
    # Another release of the branch queues behind it (seed 002's syncs wait for the
    # branch's Git lock); the same release again, while its sync waits, joins that sync.
    other = trigger(git_stack, same_branch)
    assert other != first
    assert trigger(git_stack, release) == first
    assert trigger(git_stack, same_branch) == other
    git_stack.start_worker()
    assert stream(git_stack, first)[-1].event == "complete"
    assert stream(git_stack, other)[-1].event == "complete"
    third = trigger(git_stack, release)
    assert third != first, "a finished sync is not joined"
    assert stream(git_stack, third)[-1].event == "complete"

    status = f"{git_stack.url}/api/v1/admin/metadata-sync/status"
    assert httpx.get(status).status_code == 401
    assert httpx.get(status, headers={"X-Admin-PIN": "wrong"}).status_code == 403


def test_a_directory_that_becomes_a_virtualenv_loses_its_tests_in_an_incremental_sync(
    git_stack: Stack, remote: WorkRepository
) -> None:
    """pytest does not enter a virtualenv (a directory holding pyvenv.cfg); adding one
    changes no Python file, so the incremental sync must look at every file again."""
    remote.commit_files(
        {
            "tests/test_top.py": "def test_top():\n    pass\n",
            "tests/env/test_inside.py": "def test_inside():\n    pass\n",
        },
        "two test modules",
    )
    release = add_release(git_stack, "7.0.0.0", "main")
    sync(git_stack, release)
    assert "tests/env/test_inside.py::test_inside" in stored_tests(git_stack, release)
    remote.commit_files({"tests/env/pyvenv.cfg": "home = /usr/bin\n"}, "a virtualenv")
    sync(git_stack, release)
    stored = set(stored_tests(git_stack, release))
    assert "tests/test_top.py::test_top" in stored
    assert "tests/env/test_inside.py::test_inside" not in stored
    remote.delete("tests/env/pyvenv.cfg")
    remote.commit("no longer a virtualenv")
    sync(git_stack, release)
    assert "tests/env/test_inside.py::test_inside" in stored_tests(git_stack, release)


def full_rediscovery(stack: Stack, release: int, scope: str) -> list[str]:
    """A full sync (every file parsed again, nothing reused): its log lines."""
    with stack.client() as http:
        body = {
            "domain": "git",
            "scope": scope,
            "mode": "full",
            "params": {"release_ids": [release]},
        }
        made = http.post("/v1/syncs", json=body)
    assert made.status_code == 202, made.text
    return log_lines(stream(stack, made.json()["id"]))


def test_a_change_to_a_shared_base_class_reaches_every_module_using_it(
    git_stack: Stack, remote: WorkRepository
) -> None:
    remote.write(
        {
            "tests/base.py": "class BaseSuite:\n    def test_shared(self):\n        pass\n",
            "tests/test_a.py": "from base import BaseSuite\n\n\nclass TestA(BaseSuite):\n"
            "    def test_own(self):\n        pass\n",
            "tests/deep/test_b.py": "from tests.base import BaseSuite as Suite\n\n\n"
            "class TestB(Suite):\n    pass\n",
        }
    )
    remote.commit("a shared base class")
    release = add_release(git_stack, "7.0.0.0", "main")
    sync(git_stack, release)
    stored = stored_tests(git_stack, release)
    assert {
        "tests/test_a.py::TestA::test_shared",
        "tests/deep/test_b.py::TestB::test_shared",
    } <= set(stored)

    remote.write(
        {"tests/base.py": "class BaseSuite:\n    def test_common(self):\n        pass\n\n"
         "    def test_extra(self):\n        pass\n"}
    )  # fmt: skip
    remote.commit("the base class changes, its users do not")
    lines = log_lines(sync(git_stack, release))
    assert "Applying updates: 4 new, 0 updated, 2 removed" in lines
    assert "tests/deep/test_b.py::TestB::test_extra" in stored_tests(git_stack, release)

    remote.delete("tests/base.py")
    remote.commit("the base class goes")
    lines = log_lines(sync(git_stack, release))
    assert "Applying updates: 0 new, 0 updated, 4 removed" in lines
    incremental = stored_tests(git_stack, release)
    assert "Applying updates: 0 new, 0 updated, 0 removed" in full_rediscovery(
        git_stack, release, "main"
    )
    assert stored_tests(git_stack, release) == incremental
