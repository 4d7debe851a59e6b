"""The git domain's discovery: files parsed (never imported) into summaries, tests collected from
them as pytest would, and the staging config; each on small trees written to disk."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from streams.domains.git import staging_config
from streams.domains.git.collection import DiscoveredTest, collect
from streams.domains.git.discovery import (
    MAX_FILE_BYTES,
    ModuleSummary,
    is_test_module,
    skipped_dirs,
    summarise,
    wanted,
)
from streams.domains.git.staging_config import parse_staging_config
from tests.git_discovery_trees import (
    TRICKY_TREE,
    by_nodeid,
    discover,
    summarise_tree,
    write_tree,
)


@pytest.fixture(scope="module")
def tricky(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DiscoveredTest]:
    root = write_tree(tmp_path_factory.mktemp("tricky"), TRICKY_TREE)
    listing = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    return by_nodeid(collect(summarise_tree(root), skipped=skipped_dirs(listing)))


def line_of(path: str, text: str, occurrence: int = 1) -> int:
    """The 1-based line of ``text``'s nth occurrence in a file of TRICKY_TREE."""
    source = TRICKY_TREE[path]
    assert isinstance(source, str)
    lines = [n for n, line in enumerate(source.lstrip("\n").splitlines(), 1) if text in line]
    return lines[occurrence - 1]


def ids_in(tests: dict[str, DiscoveredTest], module: str) -> set[str]:
    return {n.removeprefix(module + "::") for n in tests if n.startswith(module + "::")}


# Which files


def test_test_modules_are_pytest_default_python_files() -> None:
    assert is_test_module("a/test_x.py")
    assert is_test_module("a/x_test.py")
    assert is_test_module("test_.py")
    assert not is_test_module("a/tests.py")
    assert not is_test_module("a/test_x.pyc")
    assert not is_test_module("a/Test_x.py")  # case matters, as in pytest on POSIX
    assert not is_test_module("test_dir/conftest.py")


def test_wanted_skips_norecursedirs_below_base_only() -> None:
    assert wanted("tests/test_x.py", "")
    assert wanted("tests/test_x.py", "tests")
    assert wanted("tests/test_x.py", "/tests/")
    assert not wanted("tests/test_x.py", "test")  # a prefix of a directory name is not it
    assert not wanted("other/test_x.py", "tests")
    for skipped in ("build", "dist", ".tox", "x.egg", "node_modules", "venv", "CVS", "{arch}"):
        assert not wanted(f"tests/{skipped}/test_x.py", "tests"), skipped
    assert not wanted("tests/__pycache__/test_x.py", "")
    # The base itself may be such a directory: pytest does not skip what it was given.
    assert wanted("build/tests/test_x.py", "build/tests")


def test_virtualenvs_are_found_from_the_listing() -> None:
    listing = ["env/pyvenv.cfg", "env/lib/test_x.py", "conda/conda-meta/history", "a/test_y.py"]
    skipped = skipped_dirs(listing)
    assert {"env", "conda"} <= skipped
    assert not wanted("env/lib/test_x.py", "", skipped)
    assert wanted("a/test_y.py", "", skipped)
    assert skipped_dirs(["tests/.cache/x.py", "tests/ok/test_a.py"], "tests") == {"tests/.cache"}


# Functions and classes


def test_module_functions(tricky: dict[str, DiscoveredTest]) -> None:
    assert ids_in(tricky, "pkg/tests/test_functions.py") == {
        "test_in_except",  # defined in an except block: every branch counts
        "test_a",
        "test_async",
        "test_dup",
        "test_alias",
        "test_lambda",
        "check_nose_style",
    }
    dup = tricky["pkg/tests/test_functions.py::test_dup"]
    assert (dup.docstring, dup.class_name, dup.kind) == ("second", None, "pytest")
    alias = tricky["pkg/tests/test_functions.py::test_alias"]
    assert (alias.function, alias.line) == ("test_alias", tricky[alias.nodeid[:-6] + "_a"].line)


def test_both_branches_of_a_condition_are_taken(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "test_cond.py": """
                import sys

                if sys.version_info >= (3,):
                    def test_new():
                        pass
                    def test_both():
                        "new"
                else:
                    def test_old():
                        pass
                    def test_both():
                        "old"
            """
        },
    )
    tests = by_nodeid(discover(tmp_path))
    assert set(tests) == {f"test_cond.py::{n}" for n in ("test_new", "test_both", "test_old")}
    assert tests["test_cond.py::test_both"].docstring == "old"  # the last definition wins


def test_classes_nested_and_skipped(tricky: dict[str, DiscoveredTest]) -> None:
    assert ids_in(tricky, "pkg/tests/test_classes.py") == {
        "TestOuter::test_a",
        "TestOuter::TestInner::test_b",
        "TestOuter::TestInner::TestDeeper::test_c",
        "TestReEnabled::test_x",
        "TestReEnabled::test_y",
        "NamedOtherwise::test_nose_style",
        "TestKinds::test_static",
        "TestKinds::test_classmethod",
        "TestKinds::test_alias",
        "TestKinds::test_lambda",
        "TestGeneric::test_generic",
        "TestGenericChild::test_from_generic_base",
        "TestNotReallyAbstract::test_marked_abstract",
    }
    deeper = tricky["pkg/tests/test_classes.py::TestOuter::TestInner::TestDeeper::test_c"]
    assert deeper.class_name == "TestOuter::TestInner::TestDeeper"
    assert deeper.function == "test_c"


def test_module_with_test_false_gives_nothing(tricky: dict[str, DiscoveredTest]) -> None:
    assert not ids_in(tricky, "pkg/tests/test_module_disabled.py")
    assert not ids_in(tricky, "pkg/tests/test_broken.py")


def test_unittest_cases(tricky: dict[str, DiscoveredTest]) -> None:
    module = "pkg/tests/test_unittest.py"
    assert ids_in(tricky, module) == {
        "Checks::test_a",
        "Checks::test_b",
        "AsyncChecks::test_async",
        "OnlyRunTest::runTest",
        "WithNestedClass::test_yes",
        "TestHolder::InnerCase::test_inner_case",
        "Marked::test_marked",
    }
    assert {tricky[f"{module}::{n}"].kind for n in ("Checks::test_a", "OnlyRunTest::runTest")} == {
        "unittest"
    }
    order = [n for n in tricky if n.startswith(f"{module}::Checks::")]
    assert order == [f"{module}::Checks::test_a", f"{module}::Checks::test_b"]  # sorted


def test_inheritance_across_modules(tricky: dict[str, DiscoveredTest]) -> None:
    module = "pkg/tests/test_inherit.py"
    assert ids_in(tricky, module) == {
        "TestChild::test_inherited",
        "TestChild::test_own",
        "TestViaModule::test_inherited",
        "CaseChild::test_extra",
        "CaseChild::test_from_helper",
        "TestDiamond::test_diamond",
        "TestChildNested::TestNested::test_nested_inherited",
        "TestConcrete::test_abstract_inherited",
        "TestFromSrc::test_from_src_layout",
    }
    inherited = tricky[f"{module}::TestChild::test_inherited"]
    assert inherited.file == module
    assert inherited.line == line_of("pkg/tests/base.py", "def test_inherited(self):")
    # Left, Right(Diamond): C3 puts Right's override before Diamond's method.
    diamond = tricky[f"{module}::TestDiamond::test_diamond"]
    assert diamond.line == line_of("pkg/tests/base.py", "def test_diamond(self):", 2)
    names = [n for n in tricky if n.startswith(f"{module}::TestChild::")]
    assert names == [f"{module}::TestChild::test_inherited", f"{module}::TestChild::test_own"]
    assert tricky[f"{module}::CaseChild::test_from_helper"].kind == "unittest"
    deeper = "pkg/tests/deeper/test_relative.py"
    assert ids_in(tricky, deeper) == {
        "TestTwoDots::test_inherited",
        "TestModuleAttr::test_inherited",
        "TestModuleAttr::test_more",
    }
    assert ids_in(tricky, "tests_flat/test_flat.py") == {"TestFlat::test_flat_inherited"}


def test_imported_and_star_imported_tests(tricky: dict[str, DiscoveredTest]) -> None:
    assert ids_in(tricky, "pkg/tests/test_star.py") == {
        "TestShared::test_shared",
        "test_shared_function",
    }
    imported = ids_in(tricky, "pkg/tests/test_imported.py")
    assert {"TestOuter::test_a", "TestOuter::TestInner::test_b", "test_renamed"} <= imported


def test_skipped_directories_and_suffix_style(tricky: dict[str, DiscoveredTest]) -> None:
    files = {t.file for t in tricky.values()}
    assert "pkg/tests/checks_test.py" in files
    assert not files & {
        "build/test_in_build.py",
        ".hidden/test_hidden.py",
        "node_modules/pkg/test_nm.py",
        "envdir/test_in_venv.py",
    }


def test_unresolvable_and_ambiguous_bases_add_nothing(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "a/tests/base.py": "class Base:\n    def test_a(self):\n        pass\n",
            "b/tests/base.py": "class Base:\n    def test_b(self):\n        pass\n",
            "c/test_x.py": """
                from tests.base import Base
                from somewhere_else import Thing


                class TestAmbiguous(Base):
                    def test_own(self):
                        pass


                class TestUnknown(Thing):
                    pass
            """,
        },
    )
    assert [t.nodeid for t in discover(tmp_path)] == ["c/test_x.py::TestAmbiguous::test_own"]


def test_the_closest_of_several_matching_modules_wins(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "a/tests/base.py": "class Base:\n    def test_a(self):\n        pass\n",
            "b/tests/base.py": "class Base:\n    def test_b(self):\n        pass\n",
            "b/tests/sub/test_x.py": "from tests.base import Base\nclass TestX(Base):\n    pass\n",
        },
    )
    assert [t.nodeid for t in discover(tmp_path)] == ["b/tests/sub/test_x.py::TestX::test_b"]


def test_the_importers_directory_comes_first(tmp_path: Path) -> None:
    """pytest puts a test module's first non-package directory on sys.path."""
    write_tree(
        tmp_path,
        {
            "t/helpers.py": "class Base:\n    def test_near(self):\n        pass\n",
            "t/sub/helpers.py": "class Base:\n    def test_far(self):\n        pass\n",
            "t/test_a.py": "from helpers import Base\nclass TestA(Base):\n    pass\n",
        },
    )
    assert [t.nodeid for t in discover(tmp_path)] == ["t/test_a.py::TestA::test_near"]


def test_outside_testcase_classes_count_as_unittest_by_name(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "test_dj.py": """
                from django.test import TestCase


                class Views(TestCase):
                    def test_z(self):
                        pass

                    def test_y(self):
                        pass
            """
        },
    )
    tests = discover(tmp_path)
    assert [(t.nodeid, t.kind) for t in tests] == [
        ("test_dj.py::Views::test_y", "unittest"),
        ("test_dj.py::Views::test_z", "unittest"),
    ]


# Markers and parametrize


def test_markers_from_every_level(tricky: dict[str, DiscoveredTest]) -> None:
    other = tricky["pkg/tests/test_params.py::TestParamClass::test_other"]
    assert other.markers == ("module_mark", "skipif", "slow")
    assert tricky["pkg/tests/test_params.py::test_given_ids"].markers == ("module_mark",)


def test_marker_spellings(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "test_marks.py": """
                import pytest as pt
                from pytest import mark as m

                slow = pt.mark.slow
                pytestmark = pt.mark.everywhere


                @slow
                @m.usefixtures("tmp_path")
                @pt.mark.flaky.with_args(3)
                @pt.mark.parametrize("x", [1])
                def test_f(x):
                    pass


                class Base:
                    pytestmark = [pt.mark.from_base]


                @pt.mark.on_class
                class TestC(Base):
                    pytestmark = pt.mark.in_body

                    def test_m(self):
                        pass
            """
        },
    )
    tests = by_nodeid(discover(tmp_path))
    assert tests["test_marks.py::test_f"].markers == ("everywhere", "flaky", "slow", "usefixtures")
    assert tests["test_marks.py::TestC::test_m"].markers == (
        "everywhere",
        "from_base",
        "in_body",
        "on_class",
    )


def test_parametrize_counts_and_ids(tricky: dict[str, DiscoveredTest]) -> None:
    def cases(name: str) -> tuple[int, tuple[str, ...]]:
        test = tricky[f"pkg/tests/test_params.py::{name}"]
        return test.parametrize_count, test.parametrize_ids

    auto = ("1", "a", "True", "None", "2.5", "-3", "by", "x7", "\\xe9", "a b", "1j", "x11")
    assert cases("test_auto_ids") == (14, (*auto, "t\\tb", "x13"))
    assert cases("test_given_ids") == (2, ("first", "second"))
    # The decorator nearest the def is applied first and varies slowest.
    assert cases("test_stacked") == (4, ("2-0", "2-1", "3-0", "3-1"))
    assert cases("test_param_ids") == (3, ("one", "3-4", "5-6"))
    assert cases("test_duplicates") == (5, ("1_0", "1_1", "1_2", "a0", "a1"))
    assert cases("test_empty") == (1, ("NOTSET",))
    assert cases("test_module_literal") == (2, ("1-2", "3-4"))
    assert cases("test_not_literal") == (-1, ())
    assert cases("test_range_and_partial_ids") == (6, ("i1-0", "i1-1", "i1-2", "j-0", "j-1", "j-2"))
    assert cases("test_long_string") == (2, ("x0", "short"))
    assert cases("test_hidden") == (2, ("", "2"))
    assert cases("test_trailing_comma") == (2, ("1", "2"))
    assert cases("TestParamClass::test_other") == (2, ("1", "2"))
    method = cases("TestParamClass::test_method")
    assert method == (4, ("u-1", "u-2", "v-1", "v-2"))  # the method's own first, then the class's
    unittest_case = tricky["pkg/tests/test_unittest.py::Marked::test_marked"]
    assert (unittest_case.parametrize_count, unittest_case.parametrize_ids) == (0, ())
    assert unittest_case.markers == ("slow",)


def test_module_level_parametrize_multiplies(tricky: dict[str, DiscoveredTest]) -> None:
    one = tricky["pkg/tests/test_module_param.py::test_one"]
    assert (one.parametrize_count, one.parametrize_ids) == (2, ("p", "q"))
    two = tricky["pkg/tests/test_module_param.py::TestIn::test_two"]
    assert two.parametrize_ids == ("1-p", "1-q", "2-p", "2-q")


def test_countable_but_not_nameable_cases(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "test_p.py": """
                import pytest

                @pytest.mark.parametrize("x", [object(), len])
                def test_objects(x):
                    pass

                @pytest.mark.parametrize("x", [1, 2], ids=str)
                def test_callable_ids(x):
                    pass

                @pytest.mark.parametrize("x", [1, 2])
                @pytest.mark.parametrize("y", make())
                def test_one_unknown(x, y):
                    pass
            """
        },
    )
    tests = by_nodeid(discover(tmp_path))
    assert tests["test_p.py::test_objects"].parametrize_count == 2
    assert tests["test_p.py::test_objects"].parametrize_ids == ()
    assert tests["test_p.py::test_callable_ids"].parametrize_count == 2
    assert tests["test_p.py::test_callable_ids"].parametrize_ids == ()
    assert tests["test_p.py::test_one_unknown"].parametrize_count == -1
    assert tests["test_p.py::test_one_unknown"].parametrize_ids == ()


# Docstrings, lines, rows


def test_docstrings_lines_and_rows(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "t/test_doc.py": '''
                import pytest


                @pytest.mark.slow
                def test_documented():
                    """First line.

                    Body.
                        Indented detail.
                    """


                class TestX:
                    def test_plain(self):
                        pass
            '''
        },
    )
    tests = discover(tmp_path)
    assert [(t.function, t.line, t.docstring) for t in tests] == [
        ("test_documented", 5, "First line.\n\nBody.\n    Indented detail."),
        ("test_plain", 14, None),
    ]
    row = tests[0].to_row()
    assert row == {
        "nodeid": "t/test_doc.py::test_documented",
        "file": "t/test_doc.py",
        "line": 5,
        "class_name": None,
        "function": "test_documented",
        "markers": ["slow"],
        "parametrize_count": 0,
        "parametrize_ids": [],
        "docstring": "First line.\n\nBody.\n    Indented detail.",
        "kind": "pytest",
    }
    assert json.loads(json.dumps(row)) == row


# Files that cannot be read


@pytest.mark.parametrize(
    ("source", "error"),
    [
        (b"def test_x(:\n    pass\n", "SyntaxError: invalid syntax (line 1)"),
        (
            b"x = 1\n\nclass A:\n    def f(self)\n        pass\n",
            "SyntaxError: expected ':' (line 4)",
        ),
        (b'x = "\xff"\n', "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff"),
        (b"x = 1\x00\n", "SyntaxError: source code string cannot contain null bytes"),
        (b"# coding: nonsense\n", "SyntaxError: unknown encoding: nonsense"),
    ],
)
def test_unreadable_files_give_an_error_and_nothing_else(source: bytes, error: str) -> None:
    summary = summarise("pkg/test_bad.py", source)
    assert summary.error is not None and summary.error.startswith(error)
    assert summary == ModuleSummary("pkg/test_bad.py", error=summary.error)
    assert collect({"pkg/test_bad.py": summary}) == []


def test_declared_encodings_are_honoured() -> None:
    source = '# -*- coding: latin-1 -*-\ndef test_é():\n    "café"\n'.encode("latin-1")
    tests = collect({"test_l.py": summarise("test_l.py", source)})
    assert [(t.function, t.docstring) for t in tests] == [("test_é", "café")]


def test_files_over_ten_megabytes_are_skipped() -> None:
    big = b"def test_x():\n    pass\n" + b"#" * MAX_FILE_BYTES
    assert summarise("test_big.py", big).error == "file larger than 10 MB, skipped"
    assert summarise("test_big.py", b"", too_large=True).error == "file larger than 10 MB, skipped"
    just_fits = b"def test_x():\n    pass\n#"
    assert summarise("test_ok.py", just_fits.ljust(MAX_FILE_BYTES, b"#")).error is None


def test_deeply_nested_source_is_an_error_not_a_crash() -> None:
    assert summarise("test_deep.py", b"x = " + b"(" * 300 + b")" * 300).error is not None
    nested = "".join(f"{'    ' * i}class C{i}:\n" for i in range(120)) + "    " * 120 + "pass\n"
    assert summarise("test_deep.py", nested.encode()).error is not None


# Summaries as JSON


def test_summaries_survive_json(tmp_path: Path) -> None:
    write_tree(tmp_path, TRICKY_TREE)
    summaries = summarise_tree(tmp_path)
    for summary in summaries.values():
        stored = json.loads(json.dumps(summary.to_json()))
        assert stored == summary.to_json()  # plain JSON types only
        assert ModuleSummary.from_json(stored) == summary
    restored = {p: ModuleSummary.from_json(s.to_json()) for p, s in summaries.items()}
    assert collect(restored) == collect(summaries)


def test_dependencies_name_modules_lending_classes(tmp_path: Path) -> None:
    write_tree(tmp_path, TRICKY_TREE)
    summaries = summarise_tree(tmp_path)
    assert summaries["pkg/tests/test_inherit.py"].dependencies() == {
        "pkg.tests.base",
        "lib.testing_base",
    }
    assert summaries["pkg/tests/deeper/test_relative.py"].dependencies() == {"pkg.tests.base"}
    assert summaries["pkg/tests/test_star.py"].dependencies() == {"pkg.tests.shared_tests"}
    assert summaries["pkg/tests/test_imported.py"].dependencies() == {
        "pkg.tests.test_classes",
        "pkg.tests.test_functions",
    }
    assert summaries["pkg/tests/test_functions.py"].dependencies() == frozenset()
    source = b"import a.b\nimport c.d as cd\nclass T(a.b.Base, cd.Mixin):\n    pass\n"
    assert summarise("x/test_y.py", source).dependencies() == {"a.b", "c.d"}


# Staging config

STAGING = """
[DEFAULT]
owner = qa
pool = shared

[pkg/*]
pool = glob

[marker:slow]
pool = slow-pool
timeout = 600

[pkg/test_x.py]
pool = file-pool

[pkg/test_x.py::TestA]
pool = class-pool

[pkg/test_x.py::TestA::TestB]
pool = inner-pool

[pkg/test_x.py::TestA::test_one]
pool = exact
Mixed_Case = 100%
"""


def test_staging_config_precedence() -> None:
    config = parse_staging_config(STAGING)
    facts = config.for_test("pkg/test_x.py::TestA::test_one", "pkg/test_x.py", ("slow",))
    assert facts == {"owner": "qa", "pool": "exact", "timeout": "600", "Mixed_Case": "100%"}
    facts = config.for_test("pkg/test_x.py::TestA::test_two", "pkg/test_x.py", ())
    assert facts == {"owner": "qa", "pool": "class-pool"}
    facts = config.for_test("pkg/test_x.py::TestA::TestB::test_b", "pkg/test_x.py", ())
    assert facts["pool"] == "inner-pool"
    assert (
        config.for_test("pkg/test_x.py::test_f", "pkg/test_x.py", ("slow",))["pool"] == "file-pool"
    )
    assert (
        config.for_test("pkg/test_y.py::test_f", "pkg/test_y.py", ("slow",))["pool"] == "slow-pool"
    )
    assert config.for_test("pkg/test_y.py::test_f", "pkg/test_y.py", ())["pool"] == "glob"
    assert config.for_test("other/test_z.py::test_f", "other/test_z.py", ()) == {
        "owner": "qa",
        "pool": "shared",
    }
    # The file section matches that file only, not another one its name starts.
    assert config.for_test("pkg/test_x.pyz::t", "pkg/test_x.pyz", ())["pool"] == "glob"


def test_the_documented_example_works() -> None:
    documentation = staging_config.__doc__
    assert documentation is not None
    example = documentation.split("::\n\n", 1)[1].split("\n\nA section", 1)[0]
    config = parse_staging_config(textwrap.dedent(example))
    ok = config.for_test(
        "tests/test_login.py::TestLogin::test_ok", "tests/test_login.py", ("slow",)
    )
    assert ok == {"owner": "qa", "pool": "fast", "timeout": "600"}
    other = config.for_test("tests/test_login.py::test_f", "tests/test_login.py", ())
    assert other == {"owner": "qa", "pool": "login"}
    assert config.for_test("tests/api/v1/test_a.py::test_f", "tests/api/v1/test_a.py", ()) == {
        "owner": "qa",
        "pool": "api",
    }


def test_staging_config_ties_go_to_the_later_section() -> None:
    config = parse_staging_config(
        "[marker:a]\nk = a\n[marker:b]\nk = b\n[t*]\ng = 1\n[*x*]\ng = 2\n"
    )
    assert config.for_test("t_x.py::t", "t_x.py", ("b", "a")) == {"k": "b", "g": "2"}


def test_staging_config_without_default_gives_nothing_elsewhere() -> None:
    config = parse_staging_config("[a/test_x.py::test_y]\nk = v\n")
    assert config.for_test("a/test_x.py::test_y", "a/test_x.py", ()) == {"k": "v"}
    assert config.for_test("a/test_x.py::test_z", "a/test_x.py", ()) == {}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("k = v\n", "no section headers"),
        ("[a]\nk = 1\n[a]\nk = 2\n", "already exists"),
        ("[a]\nk = 1\nk = 2\n", "already exists"),
        ("[a]\njust a line\n", "not a valid INI file"),
        ("[marker:]\nk = v\n", "names no marker"),
    ],
)
def test_malformed_staging_config_is_a_value_error(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_staging_config(text)
