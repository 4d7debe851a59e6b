"""A real OpenSSH server for tests: own host key and config, a free 127.0.0.1 port, one user."""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from cli.processes import free_port

SSHD = Path("/usr/sbin/sshd")  # sshd refuses to run unless started by its absolute path
PRIVSEP_DIR = Path("/run/sshd")  # sshd running as root chroots its unprivileged child here
START_TIMEOUT_S = 10.0
# Newer OpenSSH (9.8+) penalises a source address after failed logins; tests fail on purpose.
OPTIONAL_SETTINGS = ("PerSourcePenalties no",)


def generate_key(path: Path, comment: str) -> Path:
    """A new ed25519 key pair without passphrase at path (and path.pub); the private key."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return path


def write_known_hosts(path: Path, port: int, host_public_key: str) -> Path:
    """A known_hosts file trusting host_public_key ('ssh-ed25519 AAAA...') at 127.0.0.1:port."""
    key_type, key_data = host_public_key.split()[:2]
    path.write_text(f"[127.0.0.1]:{port} {key_type} {key_data}\n")
    return path


class SshServer:
    """sshd -D -e on 127.0.0.1:<free port>, letting the current user in with a generated key."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = 0
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.host_key = directory / "ssh_host_ed25519_key"
        self.client_key = directory / "client_ed25519"
        self.log_path = directory / "sshd.log"
        self._config_path = directory / "sshd_config"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def host_public_key(self) -> str:
        """The server's host key as in a .pub file: 'ssh-ed25519 AAAA... comment'."""
        return self.host_key.with_suffix(".pub").read_text().strip()

    def url(self, repository: Path) -> str:
        """An ssh:// URL to a repository on this server, by its absolute path."""
        return f"ssh://{self.user}@127.0.0.1:{self.port}{repository.absolute()}"

    def write_known_hosts(self, path: Path) -> Path:
        """A known_hosts file holding this server's host key."""
        return write_known_hosts(path, self.port, self.host_public_key)

    def start(self) -> SshServer:
        """Start sshd and wait until it answers with its banner; RuntimeError if it cannot."""
        if not SSHD.is_file():
            raise RuntimeError(f"{SSHD} is missing: install the Debian package openssh-server")
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.getuid() == 0 and not PRIVSEP_DIR.is_dir():
            PRIVSEP_DIR.mkdir(mode=0o755, parents=True)
        generate_key(self.host_key, "syncbus-tests-host")
        generate_key(self.client_key, "syncbus-tests-client")
        (self.directory / "authorized_keys").write_text(
            self.client_key.with_suffix(".pub").read_text()
        )
        self.port = free_port()
        self._write_config()
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [str(SSHD), "-D", "-e", "-f", str(self._config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_until_ready()
        return self

    def stop(self) -> None:
        """Stop sshd (connections it still serves end with their clients)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def __enter__(self) -> SshServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _write_config(self) -> None:
        settings = [
            f"Port {self.port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {self.host_key}",
            f"PidFile {self.directory / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.directory / 'authorized_keys'}",
            f"AllowUsers {self.user}",
            "UsePAM no",
            "StrictModes no",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PrintMotd no",
            "LogLevel VERBOSE",
        ]
        for optional in OPTIONAL_SETTINGS:
            self._config_path.write_text("\n".join([*settings, optional]) + "\n")
            if self._config_problem() is None:
                settings.append(optional)
        self._config_path.write_text("\n".join(settings) + "\n")
        problem = self._config_problem()
        if problem is not None:
            raise RuntimeError(f"sshd refuses its test configuration: {problem}")

    def _config_problem(self) -> str | None:
        checked = subprocess.run(
            [str(SSHD), "-t", "-f", str(self._config_path)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return None if checked.returncode == 0 else checked.stderr.strip() or "sshd -t failed"

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"sshd exited with {self._process.returncode}: {self._log_tail()}"
                )
            if self._answers_banner():
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"sshd did not answer within {START_TIMEOUT_S:g} s: {self._log_tail()}")

    def _answers_banner(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection:
                return connection.recv(64).startswith(b"SSH-")
        except OSError:
            return False

    def _log_tail(self) -> str:
        lines = self.log_path.read_text(errors="replace").strip().splitlines()
        return " | ".join(lines[-10:]) or "no output"
