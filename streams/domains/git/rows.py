"""A release's tests as rows of test_metadata, for the merge engine."""

from __future__ import annotations

from collections.abc import Iterator

import orjson

from db.merge import MergeTarget
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
    return orjson.dumps(value).decode()


def test_rows(release_id: int, tree: TreeTests) -> Iterator[tuple[object, ...]]:
    staging = tree.staging
    for test in tree.tests:
        facts = staging.get(test.nodeid)
        yield (
            release_id, test.nodeid, test.file, test.line, test.class_name, test.function,
            test.kind, _json(test.markers), test.parametrize_count, _json(test.parametrize_ids),
            test.docstring, _json(facts) if facts else "{}",
        )  # fmt: skip
