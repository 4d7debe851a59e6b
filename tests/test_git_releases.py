"""Releases through the seed's admin routes and SYNCBUS_RELEASES_FILE, and their stored tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_run import captured
from tests.git_stack import client, configure, repository, stored_tests, sync
from tests.stack import Stack

RELEASES = """\
releases:
  - name: 7.0.0.0
    git_branch: main
  - name: 6.5.0.0
  - name: 5.4.0.0
    git_branch: null
    active: false
"""


@pytest.fixture
def releases_stack(isolated_stack: Stack, tmp_path: Path) -> Stack:
    source = '''import pytest

pytestmark = pytest.mark.smoke


class TestLogin:
    @pytest.mark.slow
    @pytest.mark.parametrize("user", ["alice", "bob"])
    def test_login(self, user):
        """Logs in."""
'''
    remote = repository(tmp_path / "remote", {"suite/tests/test_login.py": source})
    path = tmp_path / "releases.yaml"
    path.write_text(RELEASES)
    configure(
        isolated_stack,
        remote.url,
        tmp_path,
        SYNCBUS_RELEASES_FILE=str(path),
        GIT_REPO_BRANCH="develop",
        TEST_DISCOVERY_BASE_PATH="suite",
    )
    isolated_stack.start_worker()
    isolated_stack.start_api()
    return isolated_stack


def test_releases_from_the_file_then_the_api(releases_stack: Stack) -> None:
    with client(releases_stack) as http:
        listed = {r["name"]: r for r in http.get("/releases").json()}
        assert {n: (r["git_branch"], r["active"]) for n, r in listed.items()} == {
            "7.0.0.0": ("main", True),
            "6.5.0.0": ("develop", True),  # GIT_REPO_BRANCH when the file names none
            "5.4.0.0": (None, False),
        }
        assert all(isinstance(r["id"], int) for r in listed.values())

        made = http.post("/releases", json={"name": "8.0.0.0", "git_branch": "release/8"})
        assert made.status_code == 201 and made.json()["active"] is True
        new_id = made.json()["id"]
        assert made.headers["location"] == f"/api/v1/admin/releases/{new_id}"
        assert http.post("/releases", json={"name": "8.0.0.0"}).status_code == 409
        assert http.post("/releases", json={"name": "x", "git_branch": "-x"}).status_code == 422
        assert http.post("/releases", json={"name": "x", "extra": 1}).status_code == 422

        changed = http.patch(f"/releases/{new_id}", json={"git_branch": None, "active": False})
        assert (changed.json()["git_branch"], changed.json()["active"]) == (None, False)
        assert http.patch(f"/releases/{new_id}", json={"name": "7.0.0.0"}).status_code == 409
        assert http.patch("/releases/999", json={"active": True}).status_code == 404
        assert http.delete(f"/releases/{new_id}").status_code == 204
        assert http.get(f"/releases/{new_id}").status_code == 404


def test_stored_tests_carry_their_metadata(releases_stack: Stack) -> None:
    with client(releases_stack) as http:
        release = next(r["id"] for r in http.get("/releases").json() if r["name"] == "7.0.0.0")
    sync(releases_stack, release)
    (test,) = stored_tests(releases_stack, release).values()
    assert test["nodeid"] == "suite/tests/test_login.py::TestLogin::test_login"
    assert (test["file"], test["line"], test["class_name"]) == (
        "suite/tests/test_login.py",
        9,
        "TestLogin",
    )
    assert test["markers"] == ["slow", "smoke"]
    assert (test["parametrize_count"], test["parametrize_ids"]) == (2, ["alice", "bob"])
    assert test["docstring"] == "Logs in."
    with client(releases_stack) as http:
        filtered = http.get(f"/releases/{release}/tests", params={"file": "nope.py"}).json()
        assert filtered == []
        assert http.get("/releases/999/tests").status_code == 404


def test_a_bad_releases_file_stops_the_api_with_reasons(tmp_path: Path) -> None:
    path = tmp_path / "releases.yaml"
    path.write_text(
        "releases:\n  - name: ' padded'\n  - git_branch: a..b\n  - name: x\n  - name: x\n"
    )
    done = captured("api", cwd=tmp_path, SYNCBUS_RELEASES_FILE=str(path))
    assert done.returncode == 2
    assert "releases.0.name" in done.stderr and "surrounding spaces" in done.stderr
    assert "releases.1.name: Field required" in done.stderr
    assert "'a..b' is not a valid git branch name" in done.stderr
    assert "release x is listed twice" in done.stderr
