"""What test collection needs to know of one module, as plain JSON (stored as jsonb per file)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Mark:
    """A pytest mark; for ``parametrize`` also its cases: ``count`` (-1 when not literal) and
    ``ids`` in pytest's order, ``None`` for a hidden id, the whole tuple ``None`` when unknown."""

    name: str
    count: int = 0
    ids: tuple[str | None, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        if self.name != "parametrize":
            return {"name": self.name}
        ids = None if self.ids is None else list(self.ids)
        return {"name": self.name, "count": self.count, "ids": ids}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Mark:
        ids = data.get("ids")
        return cls(data["name"], data.get("count", 0), None if ids is None else tuple(ids))


@dataclass(frozen=True, slots=True)
class FunctionEntry:
    """A ``def`` (or a lambda assigned to a name). ``descriptor``: wrapped in a property-like
    decorator, so not callable from the class; ``test_attr``: a literal ``__test__`` given to it."""

    name: str
    line: int
    docstring: str | None = None
    marks: tuple[Mark, ...] = ()
    fixture: bool = False
    descriptor: bool = False
    abstract: bool = False
    test_attr: bool | None = None


@dataclass(frozen=True, slots=True)
class ClassEntry:
    """A ``class``: its bases and metaclass as dotted source text ("" when not a name), marks
    (body ``pytestmark`` then decorators, as pytest stores them) and its own namespace."""

    name: str
    line: int
    docstring: str | None = None
    bases: tuple[str, ...] = ()
    metaclass: str | None = None
    marks: tuple[Mark, ...] = ()
    test_attr: bool | None = None
    members: tuple[Entry, ...] = ()


@dataclass(frozen=True, slots=True)
class ImportEntry:
    """``import a.b`` binds ``a`` (module "a"); ``import a.b as x`` and ``from a import b``
    bind module "a.b" / attribute "b" of "a"; ``level`` counts the dots of a relative import."""

    name: str
    module: str
    level: int = 0
    attr: str | None = None


@dataclass(frozen=True, slots=True)
class AliasEntry:
    """``name = other`` or ``name = mod.Other``: another name for whatever ``target`` is."""

    name: str
    target: str


@dataclass(frozen=True, slots=True)
class ValueEntry:
    """Any other binding: it hides what the name held before."""

    name: str


@dataclass(frozen=True, slots=True)
class StarImport:
    """``from module import *``, kept in place among the bindings."""

    module: str
    level: int = 0

    @property
    def name(self) -> str:
        return "*"


Entry = FunctionEntry | ClassEntry | ImportEntry | AliasEntry | ValueEntry | StarImport


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic GC off for a burst of allocations that makes no garbage cycles (an AST built
    and read, summaries or tests built): else collections keep scanning every summary kept so
    far, which made summarising and collecting a large tree up to twice as slow."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _marks_json(marks: tuple[Mark, ...]) -> list[dict[str, Any]]:
    return [m.to_json() for m in marks]


def _marks(data: dict[str, Any]) -> tuple[Mark, ...]:
    return tuple(Mark.from_json(m) for m in data.get("marks", ()))


def entry_to_json(entry: Entry) -> dict[str, Any]:
    """Keys holding their default value are left out: most functions are plain."""
    data: dict[str, Any]
    match entry:
        case FunctionEntry():
            data = {"kind": "def", "name": entry.name, "line": entry.line}
            _put(data, "doc", entry.docstring, None)
            _put(data, "marks", _marks_json(entry.marks), [])
            _put(data, "fixture", entry.fixture, False)
            _put(data, "descriptor", entry.descriptor, False)
            _put(data, "abstract", entry.abstract, False)
            _put(data, "test", entry.test_attr, None)
        case ClassEntry():
            data = {"kind": "class", "name": entry.name, "line": entry.line}
            _put(data, "doc", entry.docstring, None)
            _put(data, "bases", list(entry.bases), [])
            _put(data, "metaclass", entry.metaclass, None)
            _put(data, "marks", _marks_json(entry.marks), [])
            _put(data, "test", entry.test_attr, None)
            _put(data, "members", [entry_to_json(m) for m in entry.members], [])
        case ImportEntry():
            data = {"kind": "import", "name": entry.name, "module": entry.module}
            _put(data, "level", entry.level, 0)
            _put(data, "attr", entry.attr, None)
        case AliasEntry():
            data = {"kind": "alias", "name": entry.name, "target": entry.target}
        case ValueEntry():
            data = {"kind": "value", "name": entry.name}
        case StarImport():
            data = {"kind": "star", "module": entry.module}
            _put(data, "level", entry.level, 0)
    return data


def _put(data: dict[str, Any], key: str, value: object, default: object) -> None:
    if value is not default and value != default:
        data[key] = value


def entry_from_json(data: dict[str, Any]) -> Entry:
    kind = data["kind"]
    if kind == "def":
        return FunctionEntry(
            data["name"], data["line"], data.get("doc"), _marks(data), data.get("fixture", False),
            data.get("descriptor", False), data.get("abstract", False), data.get("test"),
        )  # fmt: skip
    if kind == "class":
        return ClassEntry(
            data["name"], data["line"], data.get("doc"), tuple(data.get("bases", ())),
            data.get("metaclass"), _marks(data), data.get("test"),
            tuple(entry_from_json(m) for m in data.get("members", ())),
        )  # fmt: skip
    if kind == "import":
        return ImportEntry(data["name"], data["module"], data.get("level", 0), data.get("attr"))
    if kind == "alias":
        return AliasEntry(data["name"], data["target"])
    if kind == "value":
        return ValueEntry(data["name"])
    if kind == "star":
        return StarImport(data["module"], data.get("level", 0))
    raise ValueError(f"unknown module summary entry kind {kind!r}")


@dataclass(frozen=True, slots=True)
class ModuleSummary:
    """One parsed file. ``error`` set means it could not be read and nothing else is known.
    ``members`` are the module's bindings in first-binding order, each holding its last value
    (as the module's ``__dict__`` would); ``exports`` is a literal ``__all__``."""

    path: str
    error: str | None = None
    test_attr: bool | None = None
    marks: tuple[Mark, ...] = ()
    exports: tuple[str, ...] | None = None
    members: tuple[Entry, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "error": self.error,
            "test": self.test_attr,
            "marks": _marks_json(self.marks),
            "exports": None if self.exports is None else list(self.exports),
            "members": [entry_to_json(m) for m in self.members],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModuleSummary:
        with gc_paused():
            return cls._from_json(data)

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> ModuleSummary:
        exports = data.get("exports")
        return cls(
            path=data["path"],
            error=data.get("error"),
            test_attr=data.get("test"),
            marks=_marks(data),
            exports=None if exports is None else tuple(exports),
            members=tuple(entry_from_json(m) for m in data.get("members", ())),
        )

    def dependencies(self) -> frozenset[str]:
        """Dotted names of the modules this one may take test classes or tests from: those
        holding its base classes, aliased names, star imports and imported test-named names.
        Relative imports are made absolute from the file's directory (``a/b/x.py``: ``.c`` is
        ``a.b.c``)."""
        imports = {m.name: m for m in self.members if isinstance(m, ImportEntry)}
        used: set[str] = set()  # dotted source text naming something imported
        found: set[str] = set()
        for member in self.members:
            if isinstance(member, StarImport):
                found.add(absolute_module(self.path, member.module, member.level))
            elif isinstance(member, ImportEntry) and member.name.lower().startswith("test"):
                used.add(member.name)
            elif isinstance(member, AliasEntry):
                used.add(member.target)
            elif isinstance(member, ClassEntry):
                used.update(_names_used(member))
        for text in used:
            head, *rest = text.split(".")
            if (imported := imports.get(head)) is not None:
                module = absolute_module(self.path, imported.module, imported.level)
                # ``from m import x``: x is m's (a class) or, with attributes after it, a module.
                inner = [imported.attr] if imported.attr and rest else []
                found.add(".".join([*filter(None, [module]), *inner, *rest[:-1]]))
        return frozenset(found)


def _names_used(entry: ClassEntry) -> set[str]:
    used = {text for text in (*entry.bases, entry.metaclass or "") if text}
    for member in entry.members:
        if isinstance(member, ClassEntry):
            used |= _names_used(member)
        elif isinstance(member, AliasEntry):
            used.add(member.target)
    return used


def absolute_module(path: str, module: str, level: int) -> str:
    """The dotted name ``from <level dots><module> import ...`` refers to, for the file at
    ``path`` (repo-relative), counting packages from the repository root."""
    if level == 0:
        return module
    package = path.split("/")[:-1]
    package = package[: max(0, len(package) - (level - 1))]
    return ".".join([*package, *([module] if module else [])])
