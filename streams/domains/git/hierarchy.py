"""Classes of the tree as pytest sees them: MRO, unittest or not, abstract, __test__, marks."""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from functools import cache

from streams.domains.git.resolution import ClassRef, External, Tree
from streams.domains.git.summary import Entry, FunctionEntry, Mark

UNITTEST_CLASSES = frozenset(
    {
        "unittest.TestCase", "unittest.case.TestCase", "unittest.IsolatedAsyncioTestCase",
        "unittest.async_case.IsolatedAsyncioTestCase", "unittest.FunctionTestCase",
    }
)  # fmt: skip
ABC_NAMES = frozenset({"abc.ABC", "abc.ABCMeta"})


@cache
def _builtin_constructors(name: str) -> tuple[bool, bool]:
    """(has __init__, has __new__) of a builtin class, as pytest's hasinit/hasnew see it."""
    obj = getattr(builtins, name, None)
    if not isinstance(obj, type) or obj is object:
        return False, False
    init = next(vars(c)["__init__"] for c in obj.__mro__ if "__init__" in vars(c))
    new = next(vars(c)["__new__"] for c in obj.__mro__ if "__new__" in vars(c))
    return init is not vars(object)["__init__"], new is not vars(object)["__new__"]


def is_unittest_base(name: str) -> bool:
    """A class outside the tree that makes its subclasses unittest cases: unittest's own, and
    (a heuristic) any other whose name ends in TestCase (django.test.TestCase, absltest...)."""
    return name in UNITTEST_CLASSES or name.rpartition(".")[2].endswith("TestCase")


@dataclass(frozen=True)
class ClassInfo:
    classes: tuple[ClassRef | External, ...]  # the MRO, this class first
    unittest: bool
    abstract: bool
    test_attr: bool | None
    has_init: bool
    has_new: bool
    marks: tuple[Mark, ...]  # pytest's order: the MRO reversed


class Hierarchy:
    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self._infos: dict[ClassRef, ClassInfo | None] = {}

    def info(self, ref: ClassRef) -> ClassInfo | None:
        """None while ``ref`` is being worked out (an inheritance cycle)."""
        if ref in self._infos:
            return self._infos[ref]
        self._infos[ref] = None
        bases: list[ClassRef | External] = []
        for text in ref.entry.bases:
            base = self.tree.resolve(ref.path, text, ref.parent)
            if isinstance(base, ClassRef) and self.info(base) is None:
                continue  # an inheritance cycle
            if isinstance(base, ClassRef | External) and base != External("builtins.object"):
                bases.append(base)
        base_mros = [self._mro(b) for b in bases]
        mro = (ref, *_c3([list(m) for m in base_mros] + [list(bases)]))
        info = self._describe(ref, mro)
        self._infos[ref] = info
        return info

    def _mro(self, base: ClassRef | External) -> tuple[ClassRef | External, ...]:
        if isinstance(base, External):
            return (base,)
        info = self.info(base)
        return info.classes if info else (base,)

    def _describe(self, ref: ClassRef, mro: tuple[ClassRef | External, ...]) -> ClassInfo:
        classes = [c for c in mro if isinstance(c, ClassRef)]
        externals = [c.name for c in mro if isinstance(c, External)]
        metaclasses = [
            self.tree.resolve(c.path, c.entry.metaclass or "", c.parent) for c in classes
        ]
        is_abc = any(n in ABC_NAMES for n in externals) or any(
            isinstance(m, External) and m.name in ABC_NAMES for m in metaclasses
        )
        abstract = is_abc and any(
            isinstance(e, FunctionEntry) and e.abstract
            for name in {m.name for c in classes for m in c.entry.members}
            if (e := _first(classes, name)) is not None
        )
        test_attr = next(
            (c.entry.test_attr for c in classes if c.entry.test_attr is not None), None
        )
        return ClassInfo(
            classes=mro,
            unittest=any(is_unittest_base(n) for n in externals),
            abstract=abstract,
            test_attr=test_attr,
            has_init=_has(mro, "__init__"),
            has_new=_has(mro, "__new__"),
            marks=tuple(m for c in reversed(classes) for m in c.entry.marks),
        )


def _first(classes: list[ClassRef], name: str) -> Entry | None:
    for cls in classes:
        for member in cls.entry.members:
            if member.name == name:
                return member
    return None


def _has(mro: tuple[ClassRef | External, ...], dunder: str) -> bool:
    """pytest's hasinit/hasnew: a class of the MRO defines it (known builtins included)."""
    for cls in mro:
        if isinstance(cls, ClassRef):
            if any(m.name == dunder for m in cls.entry.members):
                return True
        elif cls.name.startswith("builtins."):
            init, new = _builtin_constructors(cls.name.removeprefix("builtins."))
            if init if dunder == "__init__" else new:
                return True
    return False


def _c3(sequences: list[list[ClassRef | External]]) -> list[ClassRef | External]:
    """C3 linearisation; an inconsistent hierarchy (Python would refuse it) falls back to
    depth-first order without repeats."""
    result: list[ClassRef | External] = []
    pending = [s[:] for s in sequences if s]
    while pending:
        for sequence in pending:
            head = sequence[0]
            if not any(head in other[1:] for other in pending):
                break
        else:
            rest = [c for s in pending for c in s]
            return result + [c for i, c in enumerate(rest) if c not in rest[:i]]
        result.append(head)
        pending = [s[1:] if s[0] == head else s for s in pending]
        pending = [s for s in pending if s]
    return result
