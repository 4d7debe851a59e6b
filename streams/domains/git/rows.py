"""A release's tests as rows of test_metadata, for the merge engine."""

from __future__ import annotations

from collections.abc import Iterator

from db.merge import MergeTarget
from schemas.json_value import storable_json, storable_text
from streams.domains.git.tree import TreeTests

TARGET = MergeTarget(
    "test_metadata",
    keys=("release_id", "nodeid"),
    columns=(
        "file", "line", "class_name", "function", "kind", "markers", "parametrize_count",
        "parametrize_ids", "docstring", "staging",
    ),
)  # fmt: skip


def _json(value: object) -> str:
    # JSON text: COPY hands it to the jsonb columns as it is, with no per-value adapter.
    # A test file's strings may hold what PostgreSQL refuses (a NUL): storable_json.
    return storable_json(value).decode()


def test_rows(release_id: int, tree: TreeTests) -> Iterator[tuple[object, ...]]:
    staging = tree.staging
    for test in tree.tests:
        facts = staging.get(test.nodeid)
        docstring = None if test.docstring is None else storable_text(test.docstring)
        yield (
            release_id, storable_text(test.nodeid), test.file, test.line, test.class_name,
            test.function, test.kind, _json(test.markers), test.parametrize_count,
            _json(test.parametrize_ids), docstring, _json(facts) if facts else "{}",
        )  # fmt: skip
