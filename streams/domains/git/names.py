"""What the repository hands to git, checked first: branch names, object ids, base paths."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from streams.domains.git.git_env import GitError

_OBJECT_ID = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
# Control characters, space and the characters check-ref-format refuses anywhere in a name.
_BAD_REF_CHARACTERS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def validate_branch(branch: str) -> str:
    """The branch name if git accepts it as a branch (check-ref-format --branch); GitError."""
    components = branch.split("/")
    if (
        not branch
        or branch.startswith("-")
        or branch in {"HEAD", "@"}
        or _BAD_REF_CHARACTERS.search(branch)
        or ".." in branch
        or "@{" in branch
        or branch.endswith(".")
        or any(not part or part.startswith(".") or part.endswith(".lock") for part in components)
    ):
        raise GitError(f"invalid branch name {branch[:200]!r}")
    return branch


def object_id(value: str) -> str:
    """The value if it is a full hexadecimal object id (sha-1 or sha-256); GitError."""
    if not _OBJECT_ID.fullmatch(value):
        raise GitError(f"invalid object id {value[:80]!r} (expected a full hexadecimal sha)")
    return value


def tree_path(base: str) -> str:
    """A base directory as a repository-relative posix path ('' for the root)."""
    parts = [part for part in PurePosixPath(base).parts if part not in {"/", "."}]
    if ".." in parts:
        raise GitError(f"invalid base path {base[:200]!r} (must stay inside the repository)")
    return "/".join(parts)
