"""Which files pytest would collect, and one file parsed (never imported) into a ModuleSummary."""

from __future__ import annotations

import ast
from collections.abc import Collection, Iterable
from fnmatch import fnmatchcase

from streams.domains.git.ast_reader import ModuleReader
from streams.domains.git.summary import ModuleSummary, gc_paused

__all__ = [
    "MAX_FILE_BYTES", "ModuleSummary", "is_skipped_dir_name", "is_test_module", "skipped_dirs",
    "summarise", "wanted",
]  # fmt: skip

MAX_FILE_BYTES = 10 * 1024 * 1024
TOO_LARGE = "file larger than 10 MB, skipped"
PYTHON_FILES = ("test_*.py", "*_test.py")
# pytest's default norecursedirs, plus __pycache__ which it always skips.
NORECURSE_DIRS = (
    "*.egg", ".*", "_darcs", "build", "CVS", "dist", "node_modules", "venv", "{arch}",
    "__pycache__",
)  # fmt: skip
VENV_MARKERS = ("pyvenv.cfg", "conda-meta/history")


def is_test_module(path: str) -> bool:
    name = path.rpartition("/")[2]
    return any(fnmatchcase(name, pattern) for pattern in PYTHON_FILES)


def is_skipped_dir_name(name: str) -> bool:
    return any(fnmatchcase(name, pattern) for pattern in NORECURSE_DIRS)


def skipped_dirs(paths: Iterable[str], base: str = "") -> frozenset[str]:
    """The directories under ``base`` pytest would not enter, from a listing of the tree's
    files: those named as in norecursedirs, and virtualenvs (holding pyvenv.cfg)."""
    base = base.strip("/")
    skipped: set[str] = set()
    for path in paths:
        rest = _below(path, base)
        if rest is None:
            continue
        parts = rest.split("/")
        for depth in range(1, len(parts)):
            if is_skipped_dir_name(parts[depth - 1]):
                skipped.add("/".join(filter(None, (base, *parts[:depth]))))
                break
        for marker in VENV_MARKERS:
            if rest.endswith("/" + marker):
                skipped.add("/".join(filter(None, (base, rest[: -len(marker) - 1]))))
    return frozenset(skipped)


def wanted(path: str, base: str, skipped: Collection[str] = frozenset()) -> bool:
    """``path`` is a test module under ``base`` ('' for the root) that pytest, given ``base``,
    would collect: no directory between them is skipped (by name, or listed in ``skipped``)."""
    base = base.strip("/")
    rest = _below(path, base)
    if rest is None or not is_test_module(path):
        return False
    parts = rest.split("/")[:-1]
    if any(is_skipped_dir_name(part) for part in parts):
        return False
    prefix = base
    for part in parts:
        prefix = f"{prefix}/{part}" if prefix else part
        if prefix in skipped:
            return False
    return True


def _below(path: str, base: str) -> str | None:
    if not base:
        return path
    return path[len(base) + 1 :] if path.startswith(base + "/") else None


def summarise(path: str, source: bytes, *, too_large: bool = False) -> ModuleSummary:
    """The test-relevant bindings of one file; never raises for bad input (the summary then
    has ``error`` set and nothing else). ``too_large``: the caller did not read the file."""
    if too_large or len(source) > MAX_FILE_BYTES:
        return ModuleSummary(path, error=TOO_LARGE)
    with gc_paused():
        return _summarise(path, source)


def _summarise(path: str, source: bytes) -> ModuleSummary:
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as exc:
        return ModuleSummary(path, error=_syntax_error(exc))
    except (ValueError, MemoryError, RecursionError) as exc:
        return ModuleSummary(path, error=f"{type(exc).__name__}: {exc}")
    try:
        return ModuleReader(path).read(tree)
    except RecursionError:
        return ModuleSummary(path, error="RecursionError: nesting too deep to read")


def _syntax_error(exc: SyntaxError) -> str:
    message = exc.msg or str(exc)
    kind = type(exc).__name__
    if message.startswith("(unicode error) "):
        kind, message = "UnicodeDecodeError", message.removeprefix("(unicode error) ")
    return f"{kind}: {message} (line {exc.lineno})" if exc.lineno else f"{kind}: {message}"
