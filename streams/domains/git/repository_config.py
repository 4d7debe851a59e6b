"""The repository's settings (GIT_*): where branches come from and are kept, how to reach them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from schemas.settings import Settings


@dataclass(frozen=True)
class GitConfig:
    """Where the branches come from, where they are kept, and how to reach the remote."""

    url: str
    local_path: Path
    ssh_key_path: Path | None = None
    strict_host_key_checking: bool = True
    known_hosts_path: Path | None = None
    timeout_s: float = 30.0


def git_config(settings: Settings) -> GitConfig:
    """The repository settings (GIT_*) as the repository layer takes them."""
    return GitConfig(
        url=settings.git_repo_url or "",
        local_path=Path(settings.git_repo_local_path),
        ssh_key_path=Path(settings.git_repo_ssh_key_path)
        if settings.git_repo_ssh_key_path
        else None,
        strict_host_key_checking=settings.git_ssh_strict_host_key_checking,
        known_hosts_path=(
            Path(settings.git_ssh_known_hosts_path) if settings.git_ssh_known_hosts_path else None
        ),
        timeout_s=settings.git_operation_timeout_s,
    )
