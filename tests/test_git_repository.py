"""The git domain's repository layer against real repositories, a real sshd and a mute server."""

from __future__ import annotations

import fcntl
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import psutil
import pytest

from streams.domains.git.git_env import redact_url
from streams.domains.git.names import validate_branch
from streams.domains.git.repository import LOCK_FILE, GitError, LocalRepository
from streams.domains.git.repository_config import GitConfig
from tests.git_repos import WorkRepository, git
from tests.sshd import SshServer, generate_key, write_known_hosts

TIMEOUT_MARGIN_S = 1.0


@pytest.fixture(scope="module")
def ssh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    with SshServer(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> WorkRepository:
    """A repository with one commit on main, reached through the sshd."""
    repository = WorkRepository(tmp_path_factory.mktemp("served") / "repo")
    repository.commit_files({"tests/test_a.py": "def test_a(): pass\n"})
    return repository


@pytest.fixture
def remote(tmp_path: Path) -> WorkRepository:
    return WorkRepository(tmp_path / "remote")


def local(
    url: str,
    path: Path,
    *,
    ssh_key_path: Path | None = None,
    strict_host_key_checking: bool = True,
    known_hosts_path: Path | None = None,
    timeout_s: float = 10.0,
) -> LocalRepository:
    config = GitConfig(
        url, path, ssh_key_path, strict_host_key_checking, known_hosts_path, timeout_s
    )
    return LocalRepository(config)


def git_processes_mentioning(text: str) -> list[psutil.Process]:
    """Live (not zombie) processes whose command line mentions text."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if text in cmdline and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(process)
    return found


def git_children() -> list[psutil.Process]:
    """This test process's git, ssh and shell descendants that are still alive."""
    alive = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.name() in {"git", "ssh", "sh"} and child.status() != psutil.STATUS_ZOMBIE:
                alive.append(child)
        except psutil.NoSuchProcess:
            continue
    return alive


class MuteServer:
    """Accepts TCP connections on 127.0.0.1 and never says a word."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._socket.getsockname()[1])
        self._connections: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> MuteServer:
        self._socket.settimeout(0.1)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(5)
        self._socket.close()
        for connection in self._connections:
            connection.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            self._connections.append(connection)


# --- file:// ---------------------------------------------------------------------------------


def test_fetch_two_branches_into_one_repository_and_list_files(
    remote: WorkRepository, tmp_path: Path
) -> None:
    remote.write(
        {
            "tests/test_a.py": "def test_a(): pass\n",
            "tests/unit/test_b.py": "def test_b(): pass\n",
            "tests/run.sh": "#!/bin/sh\n",
            "src/app.py": "print('app')\n",
        }
    )
    (remote.path / "tests/run.sh").chmod(0o755)
    remote.symlink("tests/link.py", "test_a.py")
    main = remote.commit()
    remote.branch("release/7")
    release = remote.commit_files({"tests/test_release.py": "def test_r(): pass\n"})

    repository = local(remote.url, tmp_path / "local")
    assert repository.fetch("main") == main
    assert repository.fetch("release/7") == release
    assert not (tmp_path / "local" / "tests").exists()  # no work tree, only the object database

    assert repository.list_files(main, "tests") == {
        "tests/test_a.py": (remote.blob_sha(main, "tests/test_a.py"), 19),
        "tests/unit/test_b.py": (remote.blob_sha(main, "tests/unit/test_b.py"), 19),
        "tests/run.sh": (remote.blob_sha(main, "tests/run.sh"), 10),
    }
    assert set(repository.list_files(release, "tests/")) == {
        "tests/test_a.py",
        "tests/unit/test_b.py",
        "tests/run.sh",
        "tests/test_release.py",
    }
    assert set(repository.list_files(main, "")) == {
        "tests/test_a.py",
        "tests/unit/test_b.py",
        "tests/run.sh",
        "src/app.py",
    }
    assert repository.list_files(main, "tests/unit") == {
        "tests/unit/test_b.py": (remote.blob_sha(main, "tests/unit/test_b.py"), 19)
    }
    assert repository.list_files(main, "test") == {}  # a base is a directory, not a prefix
    assert repository.list_files(main, "nowhere") == {}


def test_changed_paths_add_modify_delete_and_move(remote: WorkRepository, tmp_path: Path) -> None:
    before = remote.commit_files(
        {
            "tests/test_kept.py": "kept\n",
            "tests/test_modified.py": "old\n",
            "tests/test_deleted.py": "deleted\n",
            "tests/test_moved.py": "moved\n",
            "docs/guide.md": "guide\n",
        }
    )
    remote.write({"tests/test_added.py": "added\n", "tests/test_modified.py": "new\n"})
    remote.write({"docs/guide.md": "guide, changed\n"})
    remote.delete("tests/test_deleted.py")
    remote.move("tests/test_moved.py", "tests/sub/test_moved_here.py")
    after = remote.commit()

    repository = local(remote.url, tmp_path / "local")
    repository.fetch("main")
    assert repository.changed_paths(before, after, "tests") == {
        "tests/test_added.py",
        "tests/test_modified.py",
        "tests/test_deleted.py",
        "tests/test_moved.py",
        "tests/sub/test_moved_here.py",
    }
    assert "docs/guide.md" in (repository.changed_paths(before, after, "") or set())
    assert repository.changed_paths(after, after, "tests") == set()
    assert repository.changed_paths("0" * 40, after, "tests") is None


def test_changed_paths_is_none_after_a_force_push_dropped_the_old_commit(
    remote: WorkRepository, tmp_path: Path
) -> None:
    first = remote.commit_files({"tests/test_a.py": "a\n"})
    dropped = remote.commit_files({"tests/test_b.py": "b\n"})
    remote.reset_hard(first)
    rewritten = remote.commit_files({"tests/test_c.py": "c\n"})

    # A local repository that never held `dropped` (as after a force push and gc).
    repository = local(remote.url, tmp_path / "local")
    assert repository.fetch("main") == rewritten
    assert repository.changed_paths(dropped, rewritten, "tests") is None
    assert repository.changed_paths(first, rewritten, "tests") == {"tests/test_c.py"}


def test_read_blobs_streams_many_files_through_one_process(
    remote: WorkRepository, tmp_path: Path
) -> None:
    contents = {f"tests/test_{index}.py": f"# file {index}\n" * (index % 7) for index in range(300)}
    commit = remote.commit_files(contents)
    repository = local(remote.url, tmp_path / "local")
    repository.fetch("main")
    listing = repository.list_files(commit, "tests")
    wanted = sorted(listing, reverse=True)  # any order; the answer keeps it

    seen_pids: set[int] = set()
    read: list[tuple[str, bytes]] = []
    for index, item in enumerate(repository.read_blobs(listing[path][0] for path in wanted)):
        if index % 50 == 0:
            # cat-file may have written everything and exited (a zombie until reaped).
            seen_pids |= {
                child.pid for child in psutil.Process().children() if child.name() == "git"
            }
        read.append(item)

    assert len(seen_pids) == 1
    assert [sha for sha, _ in read] == [listing[path][0] for path in wanted]
    assert [content.decode() for _, content in read] == [contents[path] for path in wanted]
    assert git_children() == []


def test_read_blobs_stopped_early_ends_its_process_and_refuses_unknown_blobs(
    remote: WorkRepository, tmp_path: Path
) -> None:
    commit = remote.commit_files({f"f{index}.txt": str(index) for index in range(20)})
    repository = local(remote.url, tmp_path / "local")
    repository.fetch("main")
    shas = [sha for sha, _ in repository.list_files(commit, "").values()]

    blobs = repository.read_blobs(shas)
    next(blobs)
    blobs.close()  # type: ignore[attr-defined]
    assert git_children() == []

    with pytest.raises(GitError, match=r"blob 0{40} not found"):
        list(repository.read_blobs([shas[0], "0" * 40]))
    with pytest.raises(GitError, match="invalid object id"):
        repository.read_blobs(["--batch-all-objects"])
    assert list(repository.read_blobs([])) == []


def test_a_second_fetch_returns_the_new_tip(remote: WorkRepository, tmp_path: Path) -> None:
    first = remote.commit_files({"tests/test_a.py": "a\n"})
    repository = local(remote.url, tmp_path / "local")
    assert repository.fetch("main") == first
    assert repository.fetch("main") == first
    second = remote.commit_files({"tests/test_a.py": "a, again\n"})
    assert repository.fetch("main") == second
    assert repository.changed_paths(first, second, "tests") == {"tests/test_a.py"}
    assert repository.ls_remote_tip("main") == second
    assert repository.ls_remote_tip("absent") is None


def test_fetch_follows_a_changed_remote_url(tmp_path: Path) -> None:
    old_remote = WorkRepository(tmp_path / "old")
    old_remote.commit_files({"old.txt": "old\n"})
    old_remote.branch("only-old")
    old_remote.commit_files({"only.txt": "only\n"})
    new_remote = WorkRepository(tmp_path / "new")
    new_tip = new_remote.commit_files({"new.txt": "new\n"})

    path = tmp_path / "local"
    local(old_remote.url, path).fetch("main")
    local(old_remote.url, path).fetch("only-old")
    repository = local(new_remote.url, path)
    assert repository.fetch("main") == new_tip
    assert git("config", "--get", "remote.origin.url", cwd=path) == new_remote.url
    # The former remote's branches are gone with it.
    assert git("for-each-ref", "--format=%(refname)", cwd=path) == "refs/remotes/origin/main"


def test_a_branch_replacing_a_gone_branch_of_the_same_path_is_fetched(
    remote: WorkRepository, tmp_path: Path
) -> None:
    remote.commit_files({"a.txt": "a\n"})
    remote.branch("release/7")
    remote.commit_files({"b.txt": "b\n"})
    repository = local(remote.url, tmp_path / "local")
    repository.fetch("release/7")
    remote.switch("main")
    git("branch", "--quiet", "-D", "release/7", cwd=remote.path)
    remote.branch("release")
    assert repository.fetch("release") == remote.head()  # refs/remotes/origin/release/7 is gone
    with pytest.raises(GitError, match="branch 'release/7' not found"):
        repository.fetch("release/7")


def test_a_missing_repository_is_named(tmp_path: Path) -> None:
    url = (tmp_path / "nothing-here").as_uri()
    with pytest.raises(GitError) as raised:
        local(url, tmp_path / "local").fetch("main")
    assert str(raised.value) == f"repository not found at {url}"


def test_a_missing_branch_is_named(remote: WorkRepository, tmp_path: Path) -> None:
    remote.commit_files({"a.txt": "a\n"})
    with pytest.raises(GitError) as raised:
        local(remote.url, tmp_path / "local").fetch("release/nope")
    assert str(raised.value) == f"branch 'release/nope' not found in {remote.url}"


def test_an_option_as_branch_name_never_reaches_git(remote: WorkRepository, tmp_path: Path) -> None:
    remote.commit_files({"a.txt": "a\n"})
    marker = tmp_path / "pwned"
    repository = local(remote.url, tmp_path / "local")
    for branch in (f"--upload-pack=touch {marker}", f"-u touch {marker}", "main\n--all"):
        with pytest.raises(GitError, match="invalid branch name"):
            repository.fetch(branch)
        with pytest.raises(GitError, match="invalid branch name"):
            repository.ls_remote_tip(branch)
    assert not marker.exists()
    assert not (tmp_path / "local").exists()  # refused before anything ran


@pytest.mark.parametrize(
    "name",
    [
        "main",
        "release/7",
        "feature/x.y-z_1",
        "ünïcode",
        "a@b",
        "-leading-dash",
        "--upload-pack=x",
        "",
        "HEAD",
        "@",
        "a..b",
        ".hidden",
        "dir/.hidden",
        "a.lock",
        "dir/a.lock/b",
        "trailing.",
        "trailing/",
        "/leading",
        "double//slash",
        "has space",
        "tab\there",
        "tilde~1",
        "caret^",
        "colon:",
        "question?",
        "star*",
        "bracket[",
        "back\\slash",
        "at@{brace",
        "del\x7f",
    ],
)
def test_branch_names_are_checked_as_git_does(name: str, tmp_path: Path) -> None:
    git_accepts = not name.startswith("-") and name not in {"HEAD", "@"}
    if git_accepts:
        checked = subprocess.run(
            ["git", "check-ref-format", f"refs/heads/{name}"], capture_output=True, check=False
        )
        git_accepts = checked.returncode == 0
    if git_accepts:
        assert validate_branch(name) == name
    else:
        with pytest.raises(GitError, match="invalid branch name"):
            validate_branch(name)


def test_concurrent_fetches_into_one_path_all_succeed(
    remote: WorkRepository, tmp_path: Path
) -> None:
    tip = remote.commit_files({f"tests/test_{index}.py": "x\n" * index for index in range(50)})
    path = tmp_path / "local"
    start = threading.Barrier(4)
    results: list[str] = []
    errors: list[BaseException] = []

    def fetch() -> None:
        repository = local(remote.url, path)
        start.wait()
        try:
            for _ in range(5):
                results.append(repository.fetch("main"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert results == [tip] * 20


def test_a_held_lock_bounds_the_wait(remote: WorkRepository, tmp_path: Path) -> None:
    remote.commit_files({"a.txt": "a\n"})
    repository = local(remote.url, tmp_path / "local", timeout_s=0.5)
    repository.fetch("main")
    with (tmp_path / "local" / LOCK_FILE).open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        started = time.monotonic()
        with pytest.raises(GitError, match="waiting for the lock"):
            repository.fetch("main")
        assert 0.5 <= time.monotonic() - started < 0.5 + TIMEOUT_MARGIN_S
    assert repository.fetch("main") == remote.head()


def test_an_unset_url_or_timeout_fails_the_fetch_not_the_construction(tmp_path: Path) -> None:
    repository = local("", tmp_path / "local")  # a worker without GIT_REPO_URL still starts
    with pytest.raises(GitError, match="invalid GIT_REPO_URL"):
        repository.fetch("main")
    with pytest.raises(GitError, match="invalid GIT_REPO_URL"):
        local("--upload-pack=touch x", tmp_path / "local").ls_remote_tip("main")
    with pytest.raises(GitError, match="GIT_OPERATION_TIMEOUT_SECONDS must be positive"):
        local((tmp_path / "r").as_uri(), tmp_path / "local", timeout_s=0).fetch("main")
    assert not (tmp_path / "local").exists()


def test_credentials_never_appear_in_errors(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        closed_port = listener.getsockname()[1]
    for url in (
        f"https://user:s3cret-token@127.0.0.1:{closed_port}/repo.git",
        f"https://s3cret-token@127.0.0.1:{closed_port}/repo.git",
    ):
        with pytest.raises(GitError) as raised:
            local(url, tmp_path / "local", timeout_s=10).fetch("main")
        message = str(raised.value)
        assert "s3cret" not in message
        assert f"connection refused by 127.0.0.1:{closed_port}" in message
        assert "\n" not in message


def test_redact_url() -> None:
    assert redact_url("https://u:p@h/r.git") == "https://h/r.git"
    assert redact_url("https://token@h/r.git") == "https://h/r.git"
    assert redact_url("ssh://git@h:22/r.git") == "ssh://git@h:22/r.git"
    assert redact_url("ssh://git:pw@h/r.git") == "ssh://h/r.git"
    assert redact_url("git@h:r.git") == "git@h:r.git"
    assert redact_url("fatal: unable to access 'https://u:p@h/r/'") == (
        "fatal: unable to access 'https://h/r/'"
    )


# --- timeouts --------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["ssh", "git"])
def test_a_mute_server_times_out_and_leaves_no_process(scheme: str, tmp_path: Path) -> None:
    key = generate_key(tmp_path / "key", "mute")
    with MuteServer() as server:
        user = "git@" if scheme == "ssh" else ""
        url = f"{scheme}://{user}127.0.0.1:{server.port}/repo.git"
        # ssh's own ConnectTimeout (2 s) outlasts ours: only our kill can end it in time.
        repository = local(url, tmp_path / "local", ssh_key_path=key, timeout_s=1.5)
        started = time.monotonic()
        with pytest.raises(GitError) as raised:
            repository.fetch("release/7")
        elapsed = time.monotonic() - started
        assert "timed out" in str(raised.value) or "timeout" in str(raised.value)
        assert 1.5 <= elapsed < 1.5 + TIMEOUT_MARGIN_S
        assert git_children() == []
        assert git_processes_mentioning(str(server.port)) == []


# --- ssh:// against a real sshd --------------------------------------------------------------


def test_ssh_with_strict_host_key_checking_and_a_known_host(
    ssh_server: SshServer, served: WorkRepository, tmp_path: Path
) -> None:
    known_hosts = ssh_server.write_known_hosts(tmp_path / "known_hosts")
    repository = local(
        ssh_server.url(served.path),
        tmp_path / "local",
        ssh_key_path=ssh_server.client_key,
        known_hosts_path=known_hosts,
        timeout_s=20,
    )
    assert repository.fetch("main") == served.head()
    assert repository.ls_remote_tip("main") == served.head()
    with pytest.raises(GitError, match="branch 'absent' not found in ssh://"):
        repository.fetch("absent")


@pytest.mark.parametrize("known", ["empty", "another key"])
def test_ssh_refuses_an_unknown_host_key_when_strict(
    known: str, ssh_server: SshServer, served: WorkRepository, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "known_hosts"
    if known == "empty":
        known_hosts.write_text("")
    else:
        impostor = generate_key(tmp_path / "impostor", "impostor")
        write_known_hosts(known_hosts, ssh_server.port, impostor.with_suffix(".pub").read_text())
    repository = local(
        ssh_server.url(served.path),
        tmp_path / "local",
        ssh_key_path=ssh_server.client_key,
        known_hosts_path=known_hosts,
        timeout_s=20,
    )
    with pytest.raises(GitError) as raised:
        repository.fetch("main")
    assert str(raised.value) == (
        f"Host key verification failed for 127.0.0.1:{ssh_server.port} "
        "(GIT_SSH_STRICT_HOST_KEY_CHECKING is on)"
    )


def test_ssh_without_host_key_checking_needs_no_known_hosts(
    ssh_server: SshServer, served: WorkRepository, tmp_path: Path
) -> None:
    home_known_hosts = Path.home() / ".ssh" / "known_hosts"
    before = home_known_hosts.read_bytes() if home_known_hosts.exists() else None
    repository = local(
        ssh_server.url(served.path),
        tmp_path / "local",
        ssh_key_path=ssh_server.client_key,
        strict_host_key_checking=False,
        timeout_s=20,
    )
    assert repository.fetch("main") == served.head()
    after = home_known_hosts.read_bytes() if home_known_hosts.exists() else None
    assert after == before  # nothing learnt into the user's known_hosts


def test_ssh_with_an_unauthorised_key_is_denied(
    ssh_server: SshServer, served: WorkRepository, tmp_path: Path
) -> None:
    stranger = generate_key(tmp_path / "stranger", "stranger")
    repository = local(
        ssh_server.url(served.path),
        tmp_path / "local",
        ssh_key_path=stranger,
        known_hosts_path=ssh_server.write_known_hosts(tmp_path / "known_hosts"),
        timeout_s=20,
    )
    with pytest.raises(GitError) as raised:
        repository.fetch("main")
    assert str(raised.value) == (
        f"Permission denied (publickey) at 127.0.0.1:{ssh_server.port} for key {stranger}"
    )
