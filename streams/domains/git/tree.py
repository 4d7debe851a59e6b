"""The tests of one commit: parse only what no earlier sync parsed, collect as pytest would.

A file is parsed once per content (``git_modules``, by path and blob id), whatever the
release or commit holding it. After a release's first sync, a sync reads the Git diff from
the last synced commit and collects again only the test modules the change can affect: the
changed ones and those taking test classes or tests from them, directly or not. The tests of
every other file stay as stored, so the result is the one a full rediscovery would give.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from db import git_modules
from schemas.json_value import storable_json
from streams.domains.git.collection import DiscoveredTest, collect
from streams.domains.git.discovery import (
    MAX_FILE_BYTES,
    VENV_MARKERS,
    ModuleSummary,
    skipped_dirs,
    summarise,
    wanted,
)
from streams.domains.git.module_graph import ModuleGraph
from streams.domains.git.repository import LocalRepository
from streams.domains.git.staging_config import parse_staging_config

PARSER = "1"  # bump when summaries change shape or meaning: older ones are parsed again


@dataclass
class TreeTests:
    """What a commit defines. ``files`` None: ``tests`` are all of its tests; otherwise they
    are the tests of ``files`` only (changed, deleted or affected paths), and the stored
    tests of every other file stand."""

    tests: list[DiscoveredTest]
    files: frozenset[str] | None
    test_files: int
    failed_files: dict[str, str] = field(default_factory=dict)  # every failing test file
    parsed: int = 0  # files this sync parsed (the others were parsed by an earlier one)
    staging: dict[str, dict[str, str]] = field(default_factory=dict)  # nodeid -> facts
    timings_ms: dict[str, int] = field(default_factory=dict)

    @property
    def failure_rate(self) -> float:
        return len(self.failed_files) / self.test_files if self.test_files else 0.0


@dataclass
class Commit:
    """The commit's Python files under the discovery base, and what is known of each."""

    listed: Mapping[str, tuple[str, int]]  # every file of the commit: path -> (blob, size)
    modules: dict[str, str]  # Python files under base: path -> blob sha
    test_paths: frozenset[str]
    skipped: frozenset[str]
    facts: dict[str, tuple[str | None, list[str]]]  # path -> (error, dependencies)
    fresh: dict[str, ModuleSummary]  # parsed by this sync
    timings_ms: dict[str, int] = field(default_factory=dict)


async def discover(
    engine: AsyncEngine,
    repo: LocalRepository,
    commit: str,
    *,
    base: str,
    staging_config: str | None,
    reuse: bool,
    since: str | None,
) -> TreeTests:
    """The tests ``commit`` defines under ``base``. With ``reuse``, files parsed before are
    not read again; with ``since`` (the last synced commit), only what the diff from it can
    affect is collected again."""
    known = await _known_commit(engine, repo, commit, base, reuse=reuse)
    started = time.perf_counter()
    changed = None
    if since is not None:
        changed = await asyncio.to_thread(repo.changed_paths, since, commit, "")
    if changed is not None and staging_config and staging_config.strip("/") in changed:
        changed = None  # new staging facts for every test
    if changed is not None and any(_marks_a_virtualenv(path) for path in changed):
        changed = None  # a directory became, or stopped being, a virtualenv pytest skips
    if changed is None:
        summaries = {**await _load(engine, known, set(known.modules)), **known.fresh}
        tests = await asyncio.to_thread(collect, summaries, base=base, skipped=known.skipped)
        found = _found(known, tests, None)
    else:
        python = {p for p in changed if p.endswith(".py")}
        deps = {p: deps for p, (_, deps) in known.facts.items()}
        graph = ModuleGraph(set(known.modules) | python, deps)
        affected = graph.dependents(python) & set(known.modules)
        summaries = await _load(engine, known, graph.closure(affected, known.modules))
        every = await asyncio.to_thread(collect, summaries, base=base, skipped=known.skipped)
        tests = [t for t in every if t.file in affected]
        found = _found(known, tests, frozenset(changed | affected))
    found.timings_ms = {**known.timings_ms, "collect": _ms_since(started)}
    if staging_config:
        found.staging = await _staging(repo, known.listed, staging_config, found.tests)
    return found


def _marks_a_virtualenv(path: str) -> bool:
    return any(path == marker or path.endswith("/" + marker) for marker in VENV_MARKERS)


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def _found(known: Commit, tests: list[DiscoveredTest], files: frozenset[str] | None) -> TreeTests:
    failed = {p: error for p in known.test_paths if (error := known.facts[p][0]) is not None}
    return TreeTests(tests, files, len(known.test_paths), failed, len(known.fresh))


async def _known_commit(
    engine: AsyncEngine, repo: LocalRepository, commit: str, base: str, *, reuse: bool
) -> Commit:
    """List the commit, and parse (and store) the Python files no earlier sync parsed."""
    started = time.perf_counter()
    listed = await asyncio.to_thread(repo.list_files, commit, "")
    prefix = f"{base.strip('/')}/" if base.strip("/") else ""
    modules = {
        p: sha for p, (sha, _) in listed.items() if p.endswith(".py") and p.startswith(prefix)
    }
    skipped = skipped_dirs(listed, base)
    facts: dict[str, tuple[str | None, list[str]]] = {}
    if reuse:
        async with engine.connect() as conn:
            facts = await git_modules.module_index(conn, modules, PARSER)
    missing = {p: listed[p] for p in modules if p not in facts}
    timings = {"list": _ms_since(started)}
    started = time.perf_counter()
    fresh = await asyncio.to_thread(_summarise_all, repo, missing)
    timings["parse"] = _ms_since(started)
    started = time.perf_counter()
    if fresh:
        rows = [
            (p, modules[p], storable_json(s.to_json()), s.error, sorted(s.dependencies()))
            for p, s in fresh.items()
        ]
        async with engine.begin() as conn:
            await git_modules.store_summaries(conn, PARSER, rows)
        facts.update({p: (s.error, sorted(s.dependencies())) for p, s in fresh.items()})
    timings["store"] = _ms_since(started)
    test_paths = frozenset(p for p in modules if wanted(p, base, skipped))
    return Commit(listed, modules, test_paths, skipped, facts, fresh, timings)


async def _load(engine: AsyncEngine, known: Commit, paths: set[str]) -> dict[str, ModuleSummary]:
    """The summaries of ``paths``: parsed by this sync, or stored by an earlier one."""
    stored = {p: known.modules[p] for p in paths if p not in known.fresh}
    async with engine.connect() as conn:
        found = await git_modules.cached_summaries(conn, stored, PARSER)
    loaded = await asyncio.to_thread(
        lambda: {p: ModuleSummary.from_json(d) for p, d in found.items()}
    )
    return {**loaded, **{p: known.fresh[p] for p in paths if p in known.fresh}}


def _summarise_all(
    repo: LocalRepository, files: Mapping[str, tuple[str, int]]
) -> dict[str, ModuleSummary]:
    """Parse ``files`` (path -> (blob, size)), reading every blob in one pass; a blob held at
    several paths is read once, a file over 10 MB not at all."""
    summaries = {
        path: summarise(path, b"", too_large=True)
        for path, (_, size) in files.items()
        if size > MAX_FILE_BYTES
    }
    paths_of: dict[str, list[str]] = {}
    for path, (sha, size) in files.items():
        if size <= MAX_FILE_BYTES:
            paths_of.setdefault(sha, []).append(path)
    for sha, content in repo.read_blobs(list(paths_of)):
        for path in paths_of[sha]:
            summaries[path] = summarise(path, content)
    return summaries


async def _staging(
    repo: LocalRepository,
    listed: Mapping[str, tuple[str, int]],
    config_path: str,
    tests: list[DiscoveredTest],
) -> dict[str, dict[str, str]]:
    """TEST_DISCOVERY_STAGING_CONFIG's facts per test; raises ValueError when the file is
    missing or malformed (the sync then fails and changes nothing)."""
    entry = listed.get(config_path.strip("/"))
    if entry is None:
        raise ValueError(f"TEST_DISCOVERY_STAGING_CONFIG {config_path} is not in this commit")
    blobs = await asyncio.to_thread(lambda: list(repo.read_blobs([entry[0]])))
    try:
        text = blobs[0][1].decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"TEST_DISCOVERY_STAGING_CONFIG {config_path} is not UTF-8") from None
    try:
        config = parse_staging_config(text)
    except ValueError as exc:
        raise ValueError(f"TEST_DISCOVERY_STAGING_CONFIG {config_path}: {exc}") from None
    return {
        t.nodeid: facts for t in tests if (facts := config.for_test(t.nodeid, t.file, t.markers))
    }
