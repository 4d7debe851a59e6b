"""collect() against ``pytest --collect-only`` on installed projects' test suites and a tree of
awkward cases: the same node ids, and where we know them the same parametrize cases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

from streams.domains.git.collection import DiscoveredTest, collect
from streams.domains.git.discovery import skipped_dirs, summarise
from tests.git_discovery_trees import TRICKY_TREE, summarise_tree, write_tree

SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])

# Discovery bases under site-packages, each summarised alone as the git domain does.
PROJECTS = [
    "jsonschema/tests",
    "referencing/tests",
    "greenlet/tests",
    "certifi/tests",
    "jsonschema_specifications/tests",
    "sqlalchemy/testing",  # its suite's classes are not named Test*: nothing is collected
    "mypy/test",  # data-driven suites need mypy's repo conftest: neither side sees their cases
    "mypyc/test",
    "aiohttp/test_utils.py",  # TestClient/TestServer have __init__: nothing is collected
    "annotated_types/test_cases.py",
]

# pytest cannot import these (a collection error): both side leave them out. They need a
# checkout of the external JSON-Schema-Test-Suite / referencing-suite, and build their test
# classes at runtime from its files anyway (which only running them could reproduce).
KNOWN_COLLECTION_ERRORS = {
    "jsonschema/tests/test_jsonschema_test_suite.py",
    "referencing/tests/test_referencing_suite.py",
}

# Not installed, but imported at module level by greenlet's tests (objgraph), jsonschema's
# test_exceptions (jsonpath_ng) and mypyc's librt_cache (filelock): collecting only needs the
# names to exist, so the pytest subprocess gets stand-ins.
STAND_INS = {
    "objgraph.py": "def count(*args, **kwargs):\n    return 0\n",
    "jsonpath_ng.py": "def parse(*args, **kwargs):\n    raise NotImplementedError\n",
    "filelock.py": "class FileLock:\n    def __init__(self, *args, **kwargs):\n        pass\n",
}

RECORDER = textwrap.dedent(
    """
    import json
    import os

    _errors = []


    def pytest_collectreport(report):
        if report.failed:
            _errors.append(report.nodeid.split("::")[0])


    def pytest_collection_finish(session):
        with open(os.environ["GIT_DISCOVERY_OUT"], "w") as out:
            json.dump({"items": [i.nodeid for i in session.items], "errors": _errors}, out)
    """
)


@dataclass
class Collected:
    items: dict[str, list[str]]  # node id without parametrize suffix -> pytest's node ids
    errors: set[str]  # files pytest could not collect


def pytest_collect(rootdir: Path, paths: list[Path], scratch: Path) -> Collected:
    """``pytest --collect-only`` in a subprocess: no ini (an empty one), no plugins besides a
    recorder, node ids relative to ``rootdir``, nothing written next to the tests."""
    helpers = scratch / "recorder"
    helpers.mkdir(parents=True)
    (helpers / "git_discovery_recorder.py").write_text(RECORDER)
    for name, source in STAND_INS.items():
        (helpers / name).write_text(source)
    (scratch / "empty.ini").write_text("")
    out = scratch / "collected.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHON"))}
    env |= {
        "PYTHONPATH": str(helpers),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        "GIT_DISCOVERY_OUT": str(out),
    }
    command = [
        sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
        "-p", "git_discovery_recorder", "-c", str(scratch / "empty.ini"),
        "--rootdir", str(rootdir), "--continue-on-collection-errors", *map(str, paths),
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=scratch, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.exists(), done.stdout + done.stderr
    data = json.loads(out.read_text())
    items: dict[str, list[str]] = defaultdict(list)
    for nodeid in data["items"]:
        items[nodeid.split("[")[0]].append(nodeid)
    return Collected(dict(items), set(data["errors"]))


def compare(base: str, ours: list[DiscoveredTest], theirs: Collected) -> None:
    """Same node ids under ``base``; and each test's cases as far as we claim to know them."""
    mine = {t.nodeid: t for t in ours if t.file not in theirs.errors}
    prefix = base if base.endswith(".py") else f"{base}/" if base else ""
    pytest_ids = {
        n for n in theirs.items if n.startswith(prefix) and n.split("::")[0] not in theirs.errors
    }
    only_ours, only_pytest = sorted(set(mine) - pytest_ids), sorted(pytest_ids - set(mine))
    assert not only_ours and not only_pytest, (
        f"only ours: {only_ours}\nonly pytest's: {only_pytest}"
    )
    for nodeid, test in mine.items():
        items = sorted(theirs.items[nodeid])
        if test.parametrize_count == 0:
            assert items == [nodeid]
        elif test.parametrize_count > 0:
            assert len(items) == test.parametrize_count, (nodeid, items)
        if test.parametrize_ids:
            expected = sorted(f"{nodeid}[{i}]" if i else nodeid for i in test.parametrize_ids)
            assert items == expected


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Collected:
    scratch = tmp_path_factory.mktemp("installed")
    missing = [p for p in PROJECTS if not (SITE_PACKAGES / p).exists()]
    assert not missing, f"not installed by pyproject.toml's dependencies: {missing}"
    collected = pytest_collect(SITE_PACKAGES, [SITE_PACKAGES / p for p in PROJECTS], scratch)
    assert collected.errors <= KNOWN_COLLECTION_ERRORS, collected.errors
    return collected


@pytest.mark.parametrize("base", PROJECTS)
def test_installed_projects_collect_as_pytest_does(base: str, installed: Collected) -> None:
    start = SITE_PACKAGES / base
    files = [start] if start.is_file() else sorted(start.rglob("*.py"))
    summaries = {}
    for path in files:
        relative = path.relative_to(SITE_PACKAGES).as_posix()
        summaries[relative] = summarise(relative, path.read_bytes())
    tests = collect(summaries, base=base)
    compare(base, tests, installed)
    assert all(t.nodeid.startswith(base) for t in tests)


def test_projects_have_tests_to_compare(installed: Collected) -> None:
    """The comparison above is not vacuous: the suites hold many tests and parametrized ones."""
    assert len(installed.items) > 1000
    assert sum(len(v) > 1 for v in installed.items.values()) >= 10


def test_awkward_tree_collects_as_pytest_does(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "tree", TRICKY_TREE)
    theirs = pytest_collect(root, [root], tmp_path / "scratch")
    # The one file that does not parse: pytest reports it, we record why and give no tests.
    assert theirs.errors == {"pkg/tests/test_broken.py"}
    listing = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    summaries = summarise_tree(root)
    assert summaries["pkg/tests/test_broken.py"].error is not None
    ours = collect(summaries, skipped=skipped_dirs(listing))
    compare("", ours, theirs)
    assert len(ours) > 50
