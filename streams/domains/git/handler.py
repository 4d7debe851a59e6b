"""The git domain: pull each release's branch, discover its tests, merge them into test_metadata."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from psycopg import AsyncConnection, sql
from sqlalchemy.ext.asyncio import AsyncEngine

from db import git as store
from db.merge import Merge
from schemas.jobs import JobCounts
from schemas.settings import Settings
from streams.domains.base import DomainError, JobContext, Outcome
from streams.domains.git.branch_lock import branch_lock, hold_branch
from streams.domains.git.repository import GitError, LocalRepository
from streams.domains.git.repository_config import git_config
from streams.domains.git.rows import TARGET, test_rows
from streams.domains.git.tree import PARSER, TreeTests, discover


@dataclass
class ReleaseRun:
    """One release of a job: what its branch holds now, and what was done with it."""

    release: dict[str, Any]
    commit: str | None = None
    tree: TreeTests | None = None
    last: dict[str, Any] | None = None  # what the last successful sync recorded
    unchanged: bool = False  # the branch has not moved since the last successful sync
    discovered: int = 0
    timings_ms: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    error_details: dict[str, Any] | None = None
    merge: Merge | None = None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.release["name"])

    @property
    def branch(self) -> str:
        return str(self.release["git_branch"])


class GitHandler:
    """prepare: lock the branch, fetch, discover; stage: COPY the tests; apply: merge them."""

    announces_start = True  # seed 002's stream opens with "Starting metadata sync for ..."

    def __init__(self, settings: Settings, engine: AsyncEngine) -> None:
        self.settings = settings
        self.engine = engine
        self.repo = LocalRepository(git_config(settings))

    def _fingerprint(self) -> dict[str, Any]:
        """What discovery depends on besides the commit: change it and everything is redone."""
        return {
            "base": self.settings.test_discovery_base_path.strip("/"),
            "staging": self.settings.test_discovery_staging_config,
            "parser": PARSER,
        }

    async def _releases(self, ctx: JobContext) -> list[dict[str, Any]]:
        wanted = ctx.request.params.get("release_ids")
        async with self.engine.connect() as conn:
            if not wanted:
                return [dict(r) for r in await store.syncable_releases(conn)]
            found = [await store.get_release(conn, int(i)) for i in wanted]
        missing = [str(i) for i, r in zip(wanted, found, strict=True) if r is None]
        if missing:
            raise DomainError(f"Release {', '.join(missing)} not found")
        return [dict(r) for r in found if r is not None]

    async def waits_for_previous(self, ctx: JobContext) -> bool:
        """A sync of a release that an earlier job is syncing now reads the release's last
        synced commit only once that job has applied (else its apply refuses it): one
        release triggered again while it syncs. Different releases still overlap."""
        async with self.engine.connect() as conn:
            return await store.earlier_sync_running(conn, ctx.job_id)

    async def prepare(self, ctx: JobContext) -> list[ReleaseRun]:
        if not self.settings.git_repo_url:
            raise DomainError("GIT_REPO_URL is not set: the worker has no repository to pull")
        runs = [ReleaseRun(r) for r in await self._releases(ctx)]
        if not runs:
            raise DomainError("No active release has a git_branch configured")
        for run in runs:
            if not run.release["git_branch"]:
                run.error = f"Release {run.name} has no git_branch configured"
                continue
            try:
                await self._prepare_release(ctx, run)
            except (GitError, ValueError) as exc:
                run.error = str(exc)
            if run.error is not None:
                await ctx.emitter.log(f"Sync failed for {run.name}: {run.error}")
        if all(run.error is not None for run in runs):
            if len(runs) == 1:
                raise DomainError(str(runs[0].error), details=runs[0].error_details)
            raise DomainError("; ".join(f"{run.name}: {run.error}" for run in runs))
        return runs

    async def _prepare_release(self, ctx: JobContext, run: ReleaseRun) -> None:
        emit = ctx.emitter.log
        release_id = int(run.release["id"])
        await emit(f"Starting metadata sync for release: {run.name}")
        await emit(f"Git branch: {run.branch}")
        await emit(f"Acquiring Git lock for branch '{run.branch}'")
        async with branch_lock(self.engine, run.branch):
            await emit(f"Pulling latest changes from branch '{run.branch}'")
            fetch_started = time.perf_counter()
            run.commit = await asyncio.to_thread(self.repo.fetch, run.branch)
            run.timings_ms["fetch"] = round((time.perf_counter() - fetch_started) * 1000)
            async with self.engine.connect() as conn:
                run.last = await store.synced_commit(conn, release_id)
            incremental = ctx.request.mode == "incremental"
            same_rules = run.last is not None and all(
                run.last.get(k) == v for k, v in self._fingerprint().items()
            )
            if incremental and same_rules and run.last and run.last["commit"] == run.commit:
                run.unchanged = True
                await emit(
                    f"Branch '{run.branch}' is still at {run.commit[:12]}, as at the last "
                    "sync: nothing to do"
                )
                return
            run.tree = await discover(
                self.engine,
                self.repo,
                run.commit,
                base=self.settings.test_discovery_base_path,
                staging_config=self.settings.test_discovery_staging_config,
                reuse=incremental,
                since=run.last["commit"] if incremental and same_rules and run.last else None,
            )
            tree = run.tree
            run.timings_ms.update(tree.timings_ms)
            run.discovered = len(tree.tests)
            if tree.files is not None:
                async with self.engine.connect() as conn:
                    run.discovered += await store.count_tests(
                        conn, release_id, except_files=tree.files
                    )
            await emit(f"Discovered {run.discovered} tests ({len(tree.failed_files)} files failed)")
        limit = self.settings.metadata_sync_max_parse_failure_rate
        if tree.failed_files and tree.failure_rate > limit:
            run.error = (
                f"High failure rate: {len(tree.failed_files)} of {tree.test_files} test files "
                f"({tree.failure_rate:.0%}) failed to parse, above "
                f"METADATA_SYNC_MAX_PARSE_FAILURE_RATE ({limit:.0%}); nothing was changed"
            )
            run.error_details = {"failed_files": tree.failed_files}

    async def stage(
        self, ctx: JobContext, prepared: list[ReleaseRun], conn: AsyncConnection[Any]
    ) -> list[ReleaseRun]:
        for run in prepared:
            if run.tree is None or run.error is not None:
                continue
            tag = f"_release_{int(run.release['id'])}"
            started = time.perf_counter()
            run.merge = await Merge(conn, TARGET, tag=tag).begin()
            total = len(run.tree.tests)

            async def report(done: int, total: int = total) -> None:
                await ctx.emitter.progress(done, total)

            await run.merge.copy(test_rows(int(run.release["id"]), run.tree), on_progress=report)
            run.timings_ms["stage"] = round((time.perf_counter() - started) * 1000)
        return prepared

    async def apply(
        self, ctx: JobContext, staged: list[ReleaseRun], conn: AsyncConnection[Any]
    ) -> Outcome:
        summary: list[str] = []
        for run in staged:
            if run.error is not None:
                continue
            release_id = int(run.release["id"])
            if run.unchanged:
                run.counts = {"discovered": await _stored_count(conn, release_id)}
                continue
            assert run.merge is not None and run.tree is not None and run.commit is not None
            await hold_branch(conn, run.branch)
            if not await _still_there(conn, release_id):
                run.error = f"release {run.name} was deleted during its sync"
                if len(staged) == 1:
                    raise DomainError(run.error)
                continue
            if await _synced_state(conn, release_id) != run.last:
                run.error = (
                    f"release {run.name} was synced by another job meanwhile; this sync "
                    "changed nothing (sync again to be sure it is current)"
                )
                if len(staged) == 1:
                    raise DomainError(run.error)
                continue
            started = time.perf_counter()
            keep = None
            if run.tree.files is not None:  # tests of other files stay as stored
                keep = sql.SQL("t.file <> ALL(%(files)s)")
            merged = await run.merge.apply(
                delete_scope={"release_id": release_id},
                delete_keep=keep,
                keep_params={"files": sorted(run.tree.files or ())},
            )
            added, updated, removed = merged.created, merged.updated, merged.deleted
            run.timings_ms["merge"] = round((time.perf_counter() - started) * 1000)
            summary += [
                "Comparing with existing metadata",
                f"Applying updates: {added} new, {updated} updated, {removed} removed",
                f"Added {added}/{added} new tests",
                f"Updated {updated}/{updated} tests",
                f"Removed {removed}/{removed} tests",
            ]
            run.counts = {
                "discovered": run.discovered,
                "created": added,
                "updated": updated,
                "deleted": removed,
                "unchanged": run.discovered - added - updated,
                "errors": len(run.tree.failed_files),
            }
            state = {"commit": run.commit, **self._fingerprint()}
            await store.record_synced(conn, release_id, state)
        outcome = _outcome(staged)
        outcome.summary = summary
        return outcome


async def _synced_state(conn: AsyncConnection[Any], release_id: int) -> dict[str, Any] | None:
    cur = await conn.execute(store.SYNCED_STATE, {"scope": store.release_scope(release_id)})
    row = await cur.fetchone()
    return orjson.loads(row[0]) if row and row[0] else None


async def _still_there(conn: AsyncConnection[Any], release_id: int) -> bool:
    """The release exists, and cannot be deleted before this transaction ends."""
    cur = await conn.execute("SELECT 1 FROM releases WHERE id = %s FOR KEY SHARE", (release_id,))
    return await cur.fetchone() is not None


async def _stored_count(conn: AsyncConnection[Any], release_id: int) -> int:
    cur = await conn.execute(
        "SELECT count(*) FROM test_metadata WHERE release_id = %s", (release_id,)
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


def _outcome(runs: list[ReleaseRun]) -> Outcome:
    """Counts over every release, the seed's closing lines, one report per release."""
    total = {k: sum(r.counts.get(k, 0) for r in runs) for k in
             ("discovered", "created", "updated", "deleted", "unchanged", "errors")}  # fmt: skip
    failed = [r for r in runs if r.error is not None]
    total["errors"] += len(failed)
    commits = {r.commit for r in runs if r.commit}
    reports = [
        {
            "release_id": int(r.release["id"]),
            "release": r.name,
            "git_branch": r.release["git_branch"],
            "git_commit_hash": r.commit,
            "status": "failed" if r.error else "success",
            "error_message": r.error,
            "tests_discovered": r.counts.get("discovered", 0),
            "tests_added": r.counts.get("created", 0),
            "tests_updated": r.counts.get("updated", 0),
            "tests_removed": r.counts.get("deleted", 0),
            "files_failed": sorted(r.tree.failed_files) if r.tree else [],
            "files_parsed": r.tree.parsed if r.tree else 0,
            "timings_ms": r.timings_ms,
        }
        for r in runs
    ]
    parse_failures = sum(len(r.tree.failed_files) for r in runs if r.tree and not r.error)
    epilogue = [
        f"Tests discovered: {total['discovered']}",
        f"Tests added: {total['created']}",
        f"Tests updated: {total['updated']}",
        f"Tests removed: {total['deleted']}",
        f"Files failed to parse: {parse_failures}",
        *(f"Sync completed successfully for {r.name}" for r in runs if r.error is None),
        *(f"Sync failed for {r.name}: {r.error}" for r in failed),
    ]
    result: dict[str, Any] = {
        "releases": reports,
        "git_commit_hash": commits.pop() if len(commits) == 1 else None,
        "failed_releases": len(failed),
    }
    unparsed = {
        path: why
        for r in runs
        if r.tree and not r.error
        for path, why in r.tree.failed_files.items()
    }
    failures = [f"{r.name}: {r.error}" for r in failed]
    problems = list(failures)
    if unparsed:
        problems.append(f"{len(unparsed)} files failed to parse: " + ", ".join(sorted(unparsed)))
        result["error_details"] = {"failed_files": unparsed}
    if problems:
        result["error_message"] = "; ".join(problems)
    outcome = Outcome(counts=JobCounts(**total), result=result, epilogue=epilogue)
    outcome.problem = "; ".join(failures) or None
    return outcome
