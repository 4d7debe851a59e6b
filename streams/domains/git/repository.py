"""The local repository of the git domain: fetch one branch, read trees and blobs, no checkout."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from streams.domains.git.blob_stream import stream_blobs
from streams.domains.git.git_env import (
    Completed,
    FailureContext,
    GitError,
    complete_git,
    explain_failure,
    git_environment,
    redact_url,
    run_git,
)
from streams.domains.git.names import object_id, tree_path, validate_branch
from streams.domains.git.repository_config import GitConfig

__all__ = ["GitError", "LocalRepository"]

REMOTE = "origin"
LOCK_FILE = "syncbus-fetch.lock"
_REGULAR_FILE_MODES = (b"100644", b"100755")
# Auto gc/maintenance after a fetch must not detach: it would outlive the timeout's kill.
_NO_DETACH = ("-c", "gc.autoDetach=false", "-c", "maintenance.autoDetach=false")


def _path_text(raw: bytes) -> str:
    # Git paths are bytes; a non-UTF-8 name is kept readable rather than failing the sync.
    return raw.decode("utf-8", "replace")


class LocalRepository:
    """A bare repository at GIT_REPO_LOCAL_PATH holding the fetched branches of one remote."""

    def __init__(self, config: GitConfig) -> None:
        # Nothing is checked here: a worker without GIT_REPO_URL still starts (fetch refuses).
        self._config = config
        self._root = config.local_path.absolute()
        self._url_text = redact_url(config.url)

    @functools.cached_property
    def _env(self) -> dict[str, str]:
        return git_environment(
            self._config.ssh_key_path,
            self._config.strict_host_key_checking,
            self._config.known_hosts_path,
            self._config.timeout_s,
        )

    def _require_remote(self) -> None:
        if not self._config.url or self._config.url.startswith("-"):
            raise GitError(f"invalid GIT_REPO_URL {self._url_text[:200]!r}")
        if self._config.timeout_s <= 0:
            raise GitError(
                f"GIT_OPERATION_TIMEOUT_SECONDS must be positive, not {self._config.timeout_s:g}"
            )

    @property
    def git_dir(self) -> Path:
        """The repository's git directory: local_path itself, or its .git of an existing clone."""
        dot_git = self._root / ".git"
        return dot_git if dot_git.is_dir() else self._root

    def fetch(self, branch: str) -> str:
        """Fetch the branch from the remote into the local repository; its tip commit's sha."""
        validate_branch(branch)
        self._require_remote()
        context = self._context(f"git fetch of branch '{branch}'", branch)
        tracking_ref = f"refs/remotes/{REMOTE}/{branch}"
        with self._fetch_lock(context):
            self._ensure_repository(context)
            fetch = [
                *_NO_DETACH,
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-recurse-submodules",
                "--no-write-fetch-head",
                REMOTE,
                f"+refs/heads/{branch}:{tracking_ref}",
            ]
            fetched = self._complete(fetch, context)
            if fetched.returncode != 0 and "cannot lock ref" in fetched.stderr:
                # A gone branch 'a/b' blocks a new 'a' (or the reverse): drop it and retry.
                self._delete_refs(context, conflicting_with=tracking_ref)
                fetched = self._complete(fetch, context)
            if fetched.returncode != 0:
                raise GitError(explain_failure(fetched.stderr, context))
            tip = self._git(["rev-parse", "--verify", f"{tracking_ref}^{{commit}}"], context)
        return tip.decode().strip()

    def list_files(self, commit: str, base: str) -> dict[str, tuple[str, int]]:
        """Every regular file under base in the commit: path -> (blob sha, size in bytes)."""
        path = tree_path(base)
        args = ["ls-tree", "-r", "-z", "--long", "--full-tree", object_id(commit)]
        if path:
            args += ["--", path]
        listing = self._git(args, self._context(f"git ls-tree of {commit[:12]}"))
        files: dict[str, tuple[str, int]] = {}
        for entry in listing.split(b"\0"):
            if not entry:
                continue
            meta, raw_path = entry.split(b"\t", 1)
            mode, kind, sha, size = meta.split()
            if kind == b"blob" and mode in _REGULAR_FILE_MODES:
                files[_path_text(raw_path)] = (sha.decode(), int(size))
        return files

    def changed_paths(self, old_commit: str, new_commit: str, base: str) -> set[str] | None:
        """Paths under base that differ between the commits; None when old_commit is unknown."""
        old, new, path = object_id(old_commit), object_id(new_commit), tree_path(base)
        context = self._context(f"git diff of {old[:12]}..{new[:12]}")
        if self._complete(["cat-file", "-e", f"{old}^{{commit}}"], context).returncode != 0:
            return None
        args = ["--literal-pathspecs", "diff-tree", "-r", "-z", "--name-only", "--no-renames"]
        args += [old, new]
        if path:
            args += ["--", path]
        names = self._git(args, context)
        return {_path_text(name) for name in names.split(b"\0") if name}

    def read_blobs(self, shas: Iterable[str]) -> Iterator[tuple[str, bytes]]:
        """(sha, content) of each blob, in input order, from one `git cat-file --batch`."""
        wanted = [object_id(sha) for sha in shas]
        return self._stream_blobs(wanted)

    def ls_remote_tip(self, branch: str) -> str | None:
        """The branch's tip on the remote, without fetching; None when it has no such branch."""
        ref = f"refs/heads/{validate_branch(branch)}"
        self._require_remote()
        context = self._context(f"git ls-remote of branch '{branch}'", branch)
        # Inside the local repository if there is one, not whatever repository the cwd is in.
        cwd = self.git_dir if self.git_dir.is_dir() else None
        listing = run_git(
            ["ls-remote", self._config.url, ref], self._env, cwd, self._config.timeout_s, context
        )
        for line in listing.decode().splitlines():
            sha, _, name = line.partition("\t")
            if name == ref:
                return sha
        return None

    def _context(self, action: str, branch: str | None = None) -> FailureContext:
        return FailureContext(
            action=f"{action} from {self._url_text}" if branch is not None else action,
            url=self._config.url,
            branch=branch,
            strict_host_key_checking=self._config.strict_host_key_checking,
            ssh_key_path=self._config.ssh_key_path,
        )

    def _git(self, args: list[str], context: FailureContext, stdin: bytes | None = None) -> bytes:
        completed = self._complete(args, context, stdin)
        if completed.returncode != 0:
            raise GitError(explain_failure(completed.stderr, context))
        return completed.stdout

    def _complete(
        self, args: list[str], context: FailureContext, stdin: bytes | None = None
    ) -> Completed:
        git_dir = self.git_dir
        if not git_dir.is_dir():
            raise GitError(f"no local repository at {git_dir}: fetch a branch first")
        return complete_git(
            [f"--git-dir={git_dir}", *args],
            self._env,
            git_dir,
            self._config.timeout_s,
            context,
            stdin,
        )

    def _delete_refs(self, context: FailureContext, conflicting_with: str | None = None) -> None:
        """Delete the remote's tracking refs: all, or those in a path conflict with one ref."""
        listing = self._git(
            ["for-each-ref", "--format=%(refname)", f"refs/remotes/{REMOTE}/"], context
        )
        names = listing.decode().splitlines()
        if conflicting_with is not None:
            names = [
                name
                for name in names
                if name.startswith(f"{conflicting_with}/")
                or conflicting_with.startswith(f"{name}/")
            ]
        if names:
            commands = "".join(f"delete {name}\n" for name in names)
            self._git(["update-ref", "--stdin"], context, stdin=commands.encode())

    @contextlib.contextmanager
    def _fetch_lock(self, context: FailureContext) -> Iterator[None]:
        """Exclusive use of the local repository across threads and processes on this host."""
        git_dir = self.git_dir
        git_dir.mkdir(parents=True, exist_ok=True)
        lock_path = git_dir / LOCK_FILE
        # One open file description per call: flock then also excludes threads of one process.
        descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            deadline = time.monotonic() + self._config.timeout_s
            pause = 0.002
            while True:
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise GitError(
                            f"{context.action} timed out after {self._config.timeout_s:g} s "
                            f"waiting for the lock {lock_path} held by another fetch"
                        ) from None
                    time.sleep(min(pause, remaining))
                    pause = min(pause * 2, 0.05)
            yield
        finally:
            os.close(descriptor)  # releases the lock

    def _ensure_repository(self, context: FailureContext) -> None:
        """Create the bare repository on first use; point its remote at the configured URL."""
        if not (self.git_dir / "HEAD").is_file():
            self._git(["init", "--bare", "--quiet"], context)
        configured = self._git(
            ["config", "--default", "", "--get", f"remote.{REMOTE}.url"], context
        )
        if configured.decode().rstrip("\n") == self._config.url:
            return
        self._git(["config", f"remote.{REMOTE}.url", self._config.url], context)
        # Tips fetched from the former URL are not this remote's branches any more.
        self._delete_refs(context)

    def _stream_blobs(self, wanted: list[str]) -> Iterator[tuple[str, bytes]]:
        if not wanted:
            return
        if not self.git_dir.is_dir():
            raise GitError(f"no local repository at {self.git_dir}: fetch a branch first")
        yield from stream_blobs(self.git_dir, self._env, self._config.timeout_s, wanted)
