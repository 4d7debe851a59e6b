"""Blob contents out of one `git cat-file --batch`, its process group killed at the timeout."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

from streams.domains.git.git_env import GitError, kill_group, start_git


def stream_blobs(
    git_dir: Path, env: dict[str, str], timeout_s: float, wanted: list[str]
) -> Iterator[tuple[str, bytes]]:
    """(sha, content) of each wanted blob, in order; GitError on a missing blob or a failure."""
    action = f"git cat-file of {len(wanted)} blobs"
    process = start_git(
        [f"--git-dir={git_dir}", "cat-file", "--batch", "--buffer"],
        env,
        git_dir,
        stdin=subprocess.PIPE,
    )
    timed_out = threading.Event()

    def expire() -> None:
        timed_out.set()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)

    watchdog = threading.Timer(timeout_s, expire)
    watchdog.daemon = True
    writer = threading.Thread(target=_write_requests, args=(process, wanted), daemon=True)
    watchdog.start()
    writer.start()
    try:
        assert process.stdout is not None
        for sha in wanted:
            header = process.stdout.readline()
            fields = header.split()
            if len(fields) == 2 and fields[1] == b"missing":
                raise GitError(f"blob {sha} not found in the local repository {git_dir}")
            if not header.endswith(b"\n") or len(fields) != 3:
                raise _batch_failure(process, action, timed_out, timeout_s)
            if fields[1] != b"blob":
                raise GitError(f"object {sha} is a {fields[1].decode()}, not a blob")
            size = int(fields[2])
            content = process.stdout.read(size + 1)  # the content and its newline
            if len(content) != size + 1:
                raise _batch_failure(process, action, timed_out, timeout_s)
            yield sha, content[:size]
    finally:
        watchdog.cancel()
        kill_group(process)
        writer.join(timeout=5)


def _batch_failure(
    process: subprocess.Popen[bytes], action: str, timed_out: threading.Event, timeout_s: float
) -> GitError:
    if timed_out.is_set():
        return GitError(f"{action} timed out after {timeout_s:g} s")
    stderr = kill_group(process)
    detail = stderr.strip().splitlines()[-1] if stderr.strip() else "no error output"
    return GitError(f"{action} failed (exit {process.returncode}): {detail[:200]}")


def _write_requests(process: subprocess.Popen[bytes], wanted: list[str]) -> None:
    assert process.stdin is not None
    with contextlib.suppress(OSError, ValueError):  # the reader stopped early and closed it
        process.stdin.write("".join(f"{sha}\n" for sha in wanted).encode())
        process.stdin.close()
