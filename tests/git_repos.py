"""Real Git repositories for tests: write, move and delete files, commit, branch, read shas."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

# Tests must not depend on the machine's git configuration (identity, signing, hooks).
GIT_TEST_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "Syncbus Tests",
    "GIT_AUTHOR_EMAIL": "tests@syncbus.invalid",
    "GIT_COMMITTER_NAME": "Syncbus Tests",
    "GIT_COMMITTER_EMAIL": "tests@syncbus.invalid",
    "LC_ALL": "C",
}


def git(*args: str, cwd: Path) -> str:
    """Run git in cwd with the tests' configuration; its stdout, stripped."""
    completed = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **GIT_TEST_ENV},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if completed.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {completed.stderr.strip()}")
    return completed.stdout.strip()


class WorkRepository:
    """A repository with a work tree, used as the remote that the code under test fetches."""

    def __init__(self, path: Path, branch: str = "main") -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        git("init", "--quiet", f"--initial-branch={branch}", str(path), cwd=path)

    @property
    def url(self) -> str:
        """A file:// URL to this repository."""
        return self.path.as_uri()

    def write(self, files: Mapping[str, str | bytes]) -> None:
        """Create or overwrite files (repo-relative posix paths) in the work tree."""
        for relative, content in files.items():
            target = self.path / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            data = content.encode() if isinstance(content, str) else content
            target.write_bytes(data)

    def delete(self, *relatives: str) -> None:
        """Remove files from the work tree and the index."""
        git("rm", "--quiet", "--", *relatives, cwd=self.path)

    def move(self, source: str, destination: str) -> None:
        """Rename or move a file (git mv), creating the destination's directory."""
        (self.path / destination).parent.mkdir(parents=True, exist_ok=True)
        git("mv", "--", source, destination, cwd=self.path)

    def symlink(self, relative: str, target: str) -> None:
        """Create a symbolic link in the work tree."""
        link = self.path / relative
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)

    def commit(self, message: str = "change") -> str:
        """Stage everything and commit; the new commit's sha."""
        git("add", "--all", cwd=self.path)
        git("commit", "--quiet", "--allow-empty", "--no-verify", "-m", message, cwd=self.path)
        return self.head()

    def commit_files(self, files: Mapping[str, str | bytes], message: str = "change") -> str:
        """Write the files and commit them; the new commit's sha."""
        self.write(files)
        return self.commit(message)

    def branch(self, name: str, start: str = "HEAD") -> None:
        """Create a branch at start and switch the work tree to it."""
        git("switch", "--quiet", "-c", name, start, cwd=self.path)

    def switch(self, name: str) -> None:
        """Switch the work tree to an existing branch."""
        git("switch", "--quiet", name, cwd=self.path)

    def head(self) -> str:
        """The sha of the commit checked out."""
        return git("rev-parse", "HEAD", cwd=self.path)

    def blob_sha(self, commit: str, relative: str) -> str:
        """The sha of a file's blob in a commit."""
        return git("rev-parse", f"{commit}:{relative}", cwd=self.path)

    def reset_hard(self, commit: str) -> None:
        """Move the current branch to commit (a force push, seen from a fetcher)."""
        git("reset", "--quiet", "--hard", commit, cwd=self.path)


def bare_clone(source: WorkRepository, path: Path) -> Path:
    """A bare copy of the repository (what a server usually holds)."""
    git("clone", "--quiet", "--bare", str(source.path), str(path), cwd=source.path)
    return path
