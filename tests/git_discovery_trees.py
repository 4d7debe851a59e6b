"""Python trees written to disk and discovered as the git domain does (every .py summarised)."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

from streams.domains.git.collection import DiscoveredTest, collect
from streams.domains.git.discovery import summarise
from streams.domains.git.summary import ModuleSummary


def write_tree(root: Path, files: Mapping[str, str | bytes]) -> Path:
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content).lstrip("\n"), encoding="utf-8")
    return root


def summarise_tree(root: Path, base: str = "") -> dict[str, ModuleSummary]:
    """Every .py under ``root/base``, by its path relative to ``root``."""
    start = root / base if base else root
    summaries = {}
    for path in sorted(start.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        if "__pycache__" not in relative:
            summaries[relative] = summarise(relative, path.read_bytes())
    return summaries


def discover(root: Path, base: str = "") -> list[DiscoveredTest]:
    return collect(summarise_tree(root, base), base=base)


def by_nodeid(tests: list[DiscoveredTest]) -> dict[str, DiscoveredTest]:
    return {t.nodeid: t for t in tests}


# The awkward cases at once; pytest collects this tree cleanly except test_broken.py.
TRICKY_TREE: dict[str, str | bytes] = {
    "conftest.py": """
        import sys
        from pathlib import Path

        sys.path.insert(0, str(Path(__file__).parent / "src"))
    """,
    "src/lib/__init__.py": "",
    "src/lib/testing_base.py": """
        class LibSuite:
            def test_from_src_layout(self):
                pass
    """,
    "pkg/__init__.py": "",
    "pkg/tests/__init__.py": "",
    "pkg/tests/base.py": """
        import abc
        import unittest


        class BaseSuite:
            def test_inherited(self):
                pass

            def helper(self):
                pass


        class BaseWithInit:
            def __init__(self):
                self.x = 1

            def test_never(self):
                pass


        class HelperCase(unittest.TestCase):
            def test_from_helper(self):
                pass


        class Diamond:
            def test_diamond(self):
                pass


        class Left(Diamond):
            pass


        class Right(Diamond):
            def test_diamond(self):
                pass


        class WithNested:
            class TestNested:
                def test_nested_inherited(self):
                    pass


        class AbstractSuite(abc.ABC):
            @abc.abstractmethod
            def run_it(self): ...

            def test_abstract_inherited(self):
                pass
    """,
    "pkg/tests/shared_tests.py": """
        __all__ = ["TestShared", "test_shared_function"]


        class TestShared:
            def test_shared(self):
                pass


        def test_shared_function():
            pass


        def test_not_exported():
            pass
    """,
    "pkg/tests/test_inherit.py": """
        from pkg.tests import base as base_mod
        from .base import AbstractSuite, BaseSuite, BaseWithInit, Left, Right, WithNested
        from lib.testing_base import LibSuite


        class TestChild(BaseSuite):
            def test_own(self):
                pass


        class TestViaModule(base_mod.BaseSuite):
            pass


        class CaseChild(base_mod.HelperCase):
            def test_extra(self):
                pass


        class TestInitInherited(BaseWithInit):
            def test_still_never(self):
                pass


        class TestDiamond(Left, Right):
            pass


        class TestChildNested(WithNested):
            pass


        class TestShadowed(BaseSuite):
            test_inherited = None


        class TestStillAbstract(AbstractSuite):
            def test_concrete(self):
                pass


        class TestConcrete(AbstractSuite):
            def run_it(self):
                pass


        class TestFromSrc(LibSuite):
            pass
    """,
    "pkg/tests/deeper/__init__.py": "",
    "pkg/tests/deeper/test_relative.py": """
        from ..base import BaseSuite as Renamed
        from .. import base


        class TestTwoDots(Renamed):
            pass


        class TestModuleAttr(base.BaseSuite):
            def test_more(self):
                pass
    """,
    "pkg/tests/test_unittest.py": """
        import unittest
        from unittest import IsolatedAsyncioTestCase
        from unittest import TestCase as TC

        import pytest


        class Checks(TC):
            def test_b(self):
                pass

            def test_a(self):
                pass

            def helper(self):
                pass


        class AsyncChecks(IsolatedAsyncioTestCase):
            async def test_async(self):
                pass


        class OnlyRunTest(unittest.TestCase):
            def runTest(self):
                pass


        class WithNestedClass(unittest.TestCase):
            class TestInner:
                def test_not_collected(self):
                    pass

            def test_yes(self):
                pass


        class Disabled(unittest.TestCase):
            __test__ = False

            def test_no(self):
                pass


        class Marked(unittest.TestCase):  # pytest does not parametrize unittest methods
            @pytest.mark.parametrize("x", [1, 2])
            @pytest.mark.slow
            def test_marked(self, x=0):
                pass


        class TestHolder:
            class InnerCase(unittest.TestCase):
                def test_inner_case(self):
                    pass
    """,
    "pkg/tests/test_classes.py": """
        import abc
        import dataclasses
        from typing import Generic, TypeVar

        import pytest

        T = TypeVar("T")


        class TestOuter:
            def test_a(self):
                pass

            class TestInner:
                def test_b(self):
                    pass

                class TestDeeper:
                    def test_c(self):
                        pass

            class Helper:
                def test_not_collected(self):
                    pass


        class TestWithInit:
            def __init__(self):
                pass

            def test_never(self):
                pass


        class TestWithNew:
            def __new__(cls):
                return super().__new__(cls)

            def test_never(self):
                pass


        class TestNoTest:
            __test__ = False

            def test_x(self):
                pass


        class TestReEnabled(TestNoTest):
            __test__ = True

            def test_y(self):
                pass


        class TestSubOfDisabled(TestNoTest):
            def test_z(self):
                pass


        class NamedOtherwise:
            __test__ = True

            def test_nose_style(self):
                pass


        class TestKinds:
            @staticmethod
            def test_static():
                pass

            @classmethod
            def test_classmethod(cls):
                pass

            @property
            def test_property(self):
                return 1

            @pytest.fixture
            def test_fixture(self):
                return 1

            test_alias = test_static
            test_lambda = lambda self: None  # noqa: E731


        class TestAbstract(abc.ABC):
            @abc.abstractmethod
            def test_abstract(self): ...

            def test_concrete(self):
                pass


        @dataclasses.dataclass
        class TestDataclass:
            value: int = 0

            def test_never(self):
                pass


        class TestError(Exception):
            def test_never(self):
                pass


        class TestGeneric(Generic[T]):
            def test_generic(self):
                pass


        class GenericBase(Generic[T]):
            def test_from_generic_base(self):
                pass


        class TestGenericChild(GenericBase[int]):
            pass


        class TestNotReallyAbstract:  # abstractmethod without ABCMeta: nothing is abstract
            @abc.abstractmethod
            def test_marked_abstract(self):
                pass


        class TestLater:
            def test_first(self):
                pass


        TestLater.__test__ = False
    """,
    "pkg/tests/test_functions.py": """
        import pytest

        try:
            import does_not_exist  # noqa: F401
        except ImportError:

            def test_in_except():
                pass


        def test_a():
            pass


        async def test_async():
            pass


        def test_dup():
            "first"


        def test_dup():  # noqa: F811
            "second"


        test_alias = test_a
        test_lambda = lambda: None  # noqa: E731


        def helper():
            pass


        def test_disabled():
            pass


        test_disabled.__test__ = False


        def check_nose_style():
            pass


        check_nose_style.__test__ = True


        @pytest.fixture
        def test_fixture_named():
            return 1


        def test_removed():
            pass


        del test_removed
    """,
    "pkg/tests/test_module_disabled.py": """
        __test__ = False


        def test_never():
            pass
    """,
    "pkg/tests/test_star.py": """
        from pkg.tests.shared_tests import *  # noqa: F403
    """,
    "pkg/tests/test_imported.py": """
        from pkg.tests.test_classes import TestOuter  # noqa: F401
        from pkg.tests.test_functions import test_a as test_renamed  # noqa: F401
    """,
    "pkg/tests/checks_test.py": """
        def test_suffix_style():
            pass
    """,
    "pkg/tests/test_params.py": """
        import pytest
        from pytest import mark

        pytestmark = [pytest.mark.module_mark]

        CASES = [(1, 2), (3, 4)]
        LONG = (  # one literal of 101 characters
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        )


        @pytest.mark.parametrize(
            "x",
            [
                1, "a", True, None, 2.5, -3, b"by", (1, 2), "\\u00e9", "a b", 1j, ...,
                b"t\\tb", [len],
            ],
        )
        def test_auto_ids(x):
            pass


        @pytest.mark.parametrize("a,b", [(1, 2), (3, 4)], ids=["first", "second"])
        def test_given_ids(a, b):
            pass


        @pytest.mark.parametrize("x", [0, 1])
        @pytest.mark.parametrize("y", [2, 3])
        def test_stacked(x, y):
            pass


        @pytest.mark.parametrize(
            ("n", "m"),
            [pytest.param(1, 2, id="one"), pytest.param(3, 4, marks=pytest.mark.xfail), (5, 6)],
        )
        def test_param_ids(n, m):
            pass


        @pytest.mark.parametrize("x", [1, 1, "1", "a", "a"])
        def test_duplicates(x):
            pass


        @pytest.mark.parametrize("x", [])
        def test_empty(x):
            pass


        @pytest.mark.parametrize("a,b", CASES)
        def test_module_literal(a, b):
            pass


        @pytest.mark.parametrize("x", list(range(3)))
        def test_not_literal(x):
            pass


        @pytest.mark.parametrize("x", range(3))
        @pytest.mark.parametrize("y", ["i", "j"], ids=["i1", None])
        def test_range_and_partial_ids(x, y):
            pass


        @pytest.mark.parametrize("x", [LONG, "short"])
        def test_long_string(x):
            pass


        @pytest.mark.parametrize("x", [pytest.param(1, id=pytest.HIDDEN_PARAM), 2])
        def test_hidden(x):
            pass


        @pytest.mark.parametrize("x,", [(1,), (2,)])
        def test_trailing_comma(x):
            pass


        @pytest.mark.parametrize("x", [1, 2])
        class TestParamClass:
            @pytest.mark.parametrize("y", ["u", "v"])
            def test_method(self, x, y):
                pass

            @mark.slow
            @pytest.mark.skipif(True, reason="never")
            def test_other(self, x):
                pass
    """,
    "pkg/tests/test_module_param.py": """
        import pytest

        pytestmark = pytest.mark.parametrize("m", ["p", "q"])


        def test_one(m):
            pass


        class TestIn:
            @pytest.mark.parametrize("k", [1, 2])
            def test_two(self, m, k):
                pass
    """,
    "tests_flat/helpers_flat.py": """
        class FlatBase:
            def test_flat_inherited(self):
                pass
    """,
    "tests_flat/test_flat.py": """
        from helpers_flat import FlatBase


        class TestFlat(FlatBase):
            pass
    """,
    "build/test_in_build.py": "def test_skipped():\n    pass\n",
    ".hidden/test_hidden.py": "def test_skipped():\n    pass\n",
    "node_modules/pkg/test_nm.py": "def test_skipped():\n    pass\n",
    "envdir/pyvenv.cfg": "home = /usr/bin\n",
    "envdir/test_in_venv.py": "def test_skipped():\n    pass\n",
    "pkg/tests/test_broken.py": "def test_broken(:\n    pass\n",
}
