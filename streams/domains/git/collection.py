"""From the module summaries of a tree to its tests, as ``pytest --collect-only`` would list them.

pytest's default conventions are reproduced without importing anything: test modules
``test_*.py``/``*_test.py``; functions named ``test*`` (not fixtures, not properties); classes
named ``Test*`` (or with ``__test__ = True``) without ``__init__``/``__new__``, their ``test*``
methods including inherited ones (base classes before subclasses, as pytest orders them) and
their nested test classes; ``unittest.TestCase`` subclasses whatever their name, with unittest's
sorted ``test*`` names (or ``runTest``); ``__test__`` falsy on a module, class (inherited) or
function; abstract classes skipped; and, as pytest's ``collect_imported_tests`` defaults to
true, test classes and functions a test module imports are collected there too.

Limitations (only running the code could tell):

- Conditions are not evaluated: every branch of an ``if``/``try`` binds, the last one wins.
- Names built at runtime (``setattr``, ``globals()[...]``, class decorators or metaclasses
  that add tests, ``exec``, generated suites such as jsonschema's ``_suite``) are not seen;
  nor are ``conftest.py`` hooks (``pytest_collect_file``, ``pytest_pycollect_makeitem``,
  ``pytest_generate_tests``, ``collect_ignore``) or ini options other than the defaults.
- A base class that does not resolve to a module of the tree is taken to add nothing, except
  ``unittest`` classes and, by name, outside classes ending in ``TestCase`` (taken as unittest
  cases) and builtins (``Exception`` subclasses have an ``__init__``).
- Module names resolve as pytest's default "prepend" import mode would find them: under the
  importing module's first non-package directory, from the root, else the one module whose
  path ends with the name (the closest to the importer if several do; none if still a tie).
  Star imports are expanded in place, but a name bound explicitly anywhere in the module wins.
- Modules pytest cannot import (a missing dependency, a test module name used twice in
  ``rootdir``-less directories, a generator test function) or that skip themselves
  (``pytest.importorskip``, ``pytest.skip(allow_module_level=True)``) still yield their tests.
- Parametrize counts need literal argument lists (or a module-level name bound to one, or
  ``range(n)``); ids also need literal values and ids (a dynamic ``pytest_make_parametrize_id``
  hook or ``ids=callable`` makes them unknown). Marks given to single cases through
  ``pytest.param(..., marks=...)`` are not in ``markers``.
- Files are parsed with this interpreter's grammar (Python 3.11): newer syntax is an error.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from streams.domains.git.discovery import wanted
from streams.domains.git.hierarchy import ClassInfo, Hierarchy
from streams.domains.git.marks import combine
from streams.domains.git.resolution import ClassRef, FunctionRef, Resolved, Tree
from streams.domains.git.summary import (
    ClassEntry,
    Entry,
    FunctionEntry,
    Mark,
    ModuleSummary,
    gc_paused,
)


@dataclass(frozen=True)
class DiscoveredTest:
    nodeid: str  # "pkg/test_x.py::TestClass::test_name", no parametrize suffix
    file: str  # the collecting module (an inherited test's def may live elsewhere)
    line: int  # 1-based line of the def
    class_name: str | None  # "TestClass", "Outer::Inner"; None for module-level functions
    function: str
    markers: tuple[str, ...]  # sorted, unique, without "parametrize"
    parametrize_count: int  # 0 not parametrized, -1 not countable from literals
    parametrize_ids: tuple[str, ...]  # empty when not parametrized or not known
    docstring: str | None
    kind: str  # "pytest" or "unittest"

    def to_row(self) -> dict[str, Any]:
        return {
            "nodeid": self.nodeid,
            "file": self.file,
            "line": self.line,
            "class_name": self.class_name,
            "function": self.function,
            "markers": list(self.markers),
            "parametrize_count": self.parametrize_count,
            "parametrize_ids": list(self.parametrize_ids),
            "docstring": self.docstring,
            "kind": self.kind,
        }


def collect(
    modules: Mapping[str, ModuleSummary],
    *,
    base: str = "",
    skipped: Collection[str] = frozenset(),
) -> list[DiscoveredTest]:
    """The tests of every module that ``wanted(path, base, skipped)`` (a test module under
    ``base``), in pytest's order; the other modules only lend base classes and imports."""
    tree = Tree(modules)
    classes = Hierarchy(tree)
    tests: list[DiscoveredTest] = []
    paths = sorted((p for p in modules if wanted(p, base, skipped)), key=lambda p: p.split("/"))
    with gc_paused():
        for path in paths:
            summary = modules[path]
            if summary.error is None and summary.test_attr is not False:
                _ModuleCollector(tree, classes, summary, tests).run()
    return tests


_Chain = tuple[tuple[str, ClassInfo], ...]  # the enclosing classes, outermost first


class _ModuleCollector:
    def __init__(
        self, tree: Tree, classes: Hierarchy, summary: ModuleSummary, out: list[DiscoveredTest]
    ) -> None:
        self.tree = tree
        self.classes = classes
        self.path = summary.path
        self.module_marks = summary.marks
        self.out = out

    def run(self) -> None:
        for name, ref in self.tree.module_items(self.path):
            self._item(name, ref, ())

    def _item(self, name: str, ref: Resolved, chain: _Chain) -> None:
        """pytest_pycollect_makeitem for one name of a module or class namespace."""
        if isinstance(ref, ClassRef):
            info = self.classes.info(ref)
            if info is None or info.abstract:
                return
            if info.unittest:
                self._unittest_case(name, info, chain)
            elif name.startswith("Test") or info.test_attr is True:
                self._test_class(name, info, chain)
        elif isinstance(ref, FunctionRef):
            entry = ref.entry
            named = name.startswith("test") or entry.test_attr is True
            if (
                named
                and not entry.fixture
                and not entry.descriptor
                and entry.test_attr is not False
            ):
                self._emit(name, entry, chain, "pytest")

    def _test_class(self, name: str, info: ClassInfo, chain: _Chain) -> None:
        if info.test_attr is False or info.has_init or info.has_new:
            return
        inner = (*chain, (name, info))
        seen: set[str] = set()
        groups: list[list[tuple[ClassRef, Entry]]] = []
        for cls in info.classes:
            if not isinstance(cls, ClassRef):
                continue
            group = []
            for member in cls.entry.members:
                if member.name not in seen and member.name != "*":
                    seen.add(member.name)
                    group.append((cls, member))
            groups.append(group)
        for group in reversed(groups):  # pytest: inherited items before the subclass's own
            for cls, member in group:
                if isinstance(member, FunctionEntry):
                    self._item(member.name, FunctionRef(cls.path, member), inner)
                elif not member.name.startswith("__"):
                    self._item(member.name, self.tree.entry_ref(cls.path, member, cls, 0), inner)

    def _unittest_case(self, name: str, info: ClassInfo, chain: _Chain) -> None:
        if info.test_attr is False:
            return
        found: dict[str, tuple[ClassRef, Entry]] = {}
        for cls in info.classes:
            if isinstance(cls, ClassRef):
                for member in cls.entry.members:
                    if member.name.startswith(("test", "runTest")) and member.name not in found:
                        found[member.name] = (cls, member)
        inner = (*chain, (name, info))
        tests = [
            (n, r) for n in sorted(found) if n.startswith("test") and (r := self._call(found[n]))
        ]
        if not tests and "runTest" in found and (run := self._call(found["runTest"])):
            tests = [("runTest", run)]
        for test_name, entry in tests:
            if not (isinstance(entry, FunctionEntry) and entry.test_attr is False):
                self._emit(test_name, entry, inner, "unittest")

    def _call(self, found: tuple[ClassRef, Entry]) -> FunctionEntry | ClassEntry | None:
        """The def or class ``getattr(case, name)`` gives when callable (unittest's test)."""
        cls, member = found
        ref = self.tree.entry_ref(cls.path, member, cls, 0)
        if isinstance(ref, FunctionRef):
            return None if ref.entry.descriptor else ref.entry
        return ref.entry if isinstance(ref, ClassRef) else None

    def _emit(self, name: str, entry: FunctionEntry | ClassEntry, chain: _Chain, kind: str) -> None:
        own = entry.marks if isinstance(entry, FunctionEntry) else ()
        marks: list[Mark] = [*own]
        for _, info in reversed(chain):  # pytest: the item, its classes inside out, the module
            marks.extend(info.marks)
        marks.extend(self.module_marks)
        count, ids = 0, tuple[str, ...]()
        if kind == "pytest":  # pytest does not parametrize unittest methods
            count, ids = combine([m for m in marks if m.name == "parametrize"])
        class_name = "::".join(n for n, _ in chain) or None
        self.out.append(
            DiscoveredTest(
                nodeid="::".join(filter(None, (self.path, class_name, name))),
                file=self.path,
                line=entry.line,
                class_name=class_name,
                function=name,
                markers=tuple(sorted({m.name for m in marks} - {"parametrize"})),
                parametrize_count=count,
                parametrize_ids=ids,
                docstring=entry.docstring,
                kind=kind,
            )
        )
