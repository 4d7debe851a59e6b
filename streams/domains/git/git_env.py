"""Running git for the git domain: SSH options, a hard timeout per process, one-line errors."""

from __future__ import annotations

import contextlib
import math
import os
import re
import shlex
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

# Variables that would point git at another repository than the one we pass explicitly.
_REPOSITORY_VARIABLES = frozenset(
    {
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_IMPLICIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_COMMON_DIR",
        "GIT_NAMESPACE",
        "GIT_GRAFT_FILE",
        "GIT_NO_REPLACE_OBJECTS",
        "GIT_REPLACE_REF_BASE",
        "GIT_SHALLOW_FILE",
        "GIT_PREFIX",
        "GIT_INTERNAL_SUPER_PREFIX",
    }
)
_URL_USERINFO = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)([^/@\s]*)@")
_SCP_LIKE = re.compile(r"^(?:(?P<user>[^@/:]+)@)?(?P<host>\[[^\]/]+\]|[^:/]+):(?!//)")
_DEFAULT_PORTS = {"ssh": 22, "git+ssh": 22, "ssh+git": 22, "git": 9418, "http": 80, "https": 443}
_MAX_DETAIL = 300


class GitError(Exception):
    """A git operation failed; the message is one line and never holds credentials."""


@dataclass(frozen=True)
class FailureContext:
    """What a failed command was doing, to turn git's stderr into a clear message."""

    action: str  # "git fetch of branch 'release/7'"
    url: str
    branch: str | None = None
    strict_host_key_checking: bool = True
    ssh_key_path: Path | None = None


def redact_url(url: str) -> str:
    """The URL without credentials: https drops its userinfo, others drop a password."""

    def strip(match: re.Match[str]) -> str:
        scheme, userinfo = match.group(1), match.group(2)
        if scheme.lower().startswith(("http", "ftp")) or ":" in userinfo:
            return scheme
        return match.group(0)

    return _URL_USERINFO.sub(strip, url)


def remote_host(url: str) -> str | None:
    """'host:port' of a remote URL (ssh, scp-like, git, http[s]); None for local paths."""
    if "://" in url:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not parts.hostname:
            return None
        try:
            port = parts.port or _DEFAULT_PORTS[scheme]
        except ValueError:
            return parts.hostname
        return f"{parts.hostname}:{port}"
    match = _SCP_LIKE.match(url)
    if match is None or url.startswith(("/", ".")):
        return None
    return f"{match.group('host').strip('[]')}:22"


def _ssh_path(path: Path) -> str:
    # ssh splits option values on spaces unless quoted and expands '%' tokens in these paths.
    text = str(path)
    if '"' in text:
        raise GitError(f"unsupported character '\"' in path {text}")
    return '"' + text.replace("%", "%%") + '"'


def ssh_command(
    ssh_key_path: Path | None,
    strict_host_key_checking: bool,
    known_hosts_path: Path | None,
    timeout_s: float,
) -> str:
    """The GIT_SSH_COMMAND: never prompts, checks host keys as configured, bounded connect."""
    words = ["ssh"]
    if ssh_key_path is not None:
        words += ["-i", str(ssh_key_path).replace("%", "%%"), "-o", "IdentitiesOnly=yes"]
    words += ["-o", "BatchMode=yes"]
    if strict_host_key_checking:
        words += ["-o", "StrictHostKeyChecking=yes"]
        if known_hosts_path is not None:
            words += ["-o", f"UserKnownHostsFile={_ssh_path(known_hosts_path)}"]
    else:
        words += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
        words += ["-o", "GlobalKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]
    words += ["-o", f"ConnectTimeout={max(1, math.ceil(timeout_s))}"]
    return shlex.join(words)


def git_environment(
    ssh_key_path: Path | None,
    strict_host_key_checking: bool,
    known_hosts_path: Path | None,
    timeout_s: float,
) -> dict[str, str]:
    """The process environment for git: no prompts, our SSH command, English messages."""
    env = {name: value for name, value in os.environ.items() if name not in _REPOSITORY_VARIABLES}
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["GIT_SSH_COMMAND"] = ssh_command(
        ssh_key_path, strict_host_key_checking, known_hosts_path, timeout_s
    )
    env["LC_ALL"] = "C"  # stderr is matched against git's and ssh's English messages
    env["LANGUAGE"] = "C"
    return env


def start_git(
    args: Sequence[str], env: dict[str, str], cwd: Path | None, *, stdin: int = subprocess.DEVNULL
) -> subprocess.Popen[bytes]:
    """Start git in a process group of its own, so a kill also reaches its ssh or helper."""
    try:
        return subprocess.Popen(
            ["git", *args],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    except OSError as exc:
        raise GitError(f"cannot run git: {exc.strerror or exc}") from None


def kill_group(process: subprocess.Popen[bytes]) -> str:
    """Kill git and everything it started, reap it, close its pipes; the stderr left unread."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)
    stderr = b""
    if process.stderr is not None:
        # Without blocking: a process that escaped the group may still hold the pipe open.
        with contextlib.suppress(OSError, ValueError, TypeError):
            os.set_blocking(process.stderr.fileno(), False)
            stderr = process.stderr.read() or b""
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    return stderr.decode("utf-8", "replace")


@dataclass(frozen=True)
class Completed:
    """A git command that ran to its end within the timeout."""

    returncode: int
    stdout: bytes
    stderr: str


def complete_git(
    args: Sequence[str],
    env: dict[str, str],
    cwd: Path | None,
    timeout_s: float,
    context: FailureContext,
    stdin: bytes | None = None,
) -> Completed:
    """Run git to its end; GitError (its process group killed) when it outlasts timeout_s."""
    process = start_git(
        args, env, cwd, stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE
    )
    try:
        stdout, stderr = process.communicate(stdin, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        kill_group(process)
        raise GitError(f"{context.action} timed out after {timeout_s:g} s") from None
    except BaseException:
        kill_group(process)
        raise
    return Completed(process.returncode, stdout, stderr.decode("utf-8", "replace"))


def run_git(
    args: Sequence[str],
    env: dict[str, str],
    cwd: Path | None,
    timeout_s: float,
    context: FailureContext,
    stdin: bytes | None = None,
) -> bytes:
    """Run git to its end within timeout_s and return its stdout; GitError otherwise."""
    completed = complete_git(args, env, cwd, timeout_s, context, stdin)
    if completed.returncode != 0:
        raise GitError(explain_failure(completed.stderr, context))
    return completed.stdout


def explain_failure(stderr: str, context: FailureContext) -> str:
    """One clear line for a failed command, from git's or ssh's stderr; credentials removed."""
    url = redact_url(context.url)
    host = remote_host(context.url) or url
    text = stderr.lower()
    if "couldn't find remote ref" in text and context.branch is not None:
        message = f"branch '{context.branch}' not found in {url}"
    elif "host key verification failed" in text:
        message = f"Host key verification failed for {host}"
        if context.strict_host_key_checking:
            message += " (GIT_SSH_STRICT_HOST_KEY_CHECKING is on)"
    elif "permission denied (publickey" in text:
        key = context.ssh_key_path or "ssh's default keys (GIT_REPO_SSH_KEY_PATH is not set)"
        message = f"Permission denied (publickey) at {host} for key {key}"
    elif "could not resolve host" in text:
        message = f"could not resolve host {host.rsplit(':', 1)[0]}"
    elif "connection refused" in text or "couldn't connect to server" in text:
        message = f"connection refused by {host}"
    elif "timed out" in text or "timeout" in text:
        message = f"GitCommandError: Connection timeout ({host})"
    elif "terminal prompts disabled" in text or "could not read username" in text:
        message = f"authentication required for {url} and no credentials are available"
    elif "authentication failed" in text:
        message = f"authentication failed for {url}"
    elif (
        "does not appear to be a git repository" in text
        or "repository not found" in text
        or re.search(r"repository '[^']*' not found", text)
    ):
        message = f"repository not found at {url}"
    else:
        message = f"{context.action} failed: {_last_error_line(stderr)}"
    return _one_line(redact_url(message))


def _last_error_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith(("fatal:", "error:")):
            return line.split(":", 1)[1].strip()
    return lines[-1] if lines else "no error output"


def _one_line(message: str) -> str:
    line = " ".join(message.split())
    return line if len(line) <= _MAX_DETAIL else line[: _MAX_DETAIL - 3] + "..."
