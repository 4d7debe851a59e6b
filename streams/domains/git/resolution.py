"""Names in a tree of module summaries resolved to the classes, functions and modules they hold."""

from __future__ import annotations

import builtins
import sys
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from streams.domains.git.summary import (
    AliasEntry,
    ClassEntry,
    Entry,
    FunctionEntry,
    ImportEntry,
    ModuleSummary,
    StarImport,
    absolute_module,
)

# Never looked for in the tree: pytest has imported them before any test module.
OUTSIDE = frozenset(sys.stdlib_module_names) | {"pytest", "_pytest", "pluggy"}
MAX_DEPTH = 30  # alias and re-export chains longer than this are not followed


@dataclass(frozen=True)
class ModuleRef:
    path: str


@dataclass(frozen=True)
class External:
    """Something outside the tree, by its dotted name (``unittest.TestCase``)."""

    name: str


@dataclass(frozen=True)
class FunctionRef:
    path: str
    entry: FunctionEntry = field(compare=False)


@dataclass(frozen=True)
class ClassRef:
    """A class of the tree: its module, its qualified name, and the class whose body it is
    defined in (where its bases are looked up first)."""

    path: str
    qualname: tuple[str, ...]
    entry: ClassEntry = field(compare=False)
    parent: ClassRef | None = field(default=None, compare=False)


Resolved = ModuleRef | External | FunctionRef | ClassRef | None


class Tree:
    def __init__(self, modules: Mapping[str, ModuleSummary]) -> None:
        self.modules = modules
        self.by_name: dict[str, str] = {}  # dotted name from the root -> path
        self.by_suffix: dict[str, list[str]] = defaultdict(list)
        self.packages = {p[: -len("/__init__.py")] for p in modules if p.endswith("/__init__.py")}
        for path in sorted(modules, key=lambda p: p.endswith("__init__.py")):
            parts = path.removesuffix(".py").split("/")
            if parts[-1] == "__init__":
                parts.pop()
            if not parts or not path.endswith(".py"):
                continue
            self.by_name[".".join(parts)] = path  # a package wins over a same-named module
            for start in range(len(parts)):
                self.by_suffix[".".join(parts[start:])].append(path)
        self._namespaces: dict[int, dict[str, Entry]] = {}
        self._found: dict[tuple[str, str], str | None] = {}
        self._exports: dict[str, tuple[str, ...] | None] = {}

    # Modules

    def _basedir(self, path: str) -> list[str]:
        """Where pytest's default import mode puts ``path`` on sys.path: the first directory up
        that is not a package."""
        parts = path.split("/")[:-1]
        while parts and "/".join(parts) in self.packages:
            parts.pop()
        return parts

    def find_module(self, name: str, importer: str) -> str | None:
        """The tree's file for absolute module ``name`` imported from ``importer``: under the
        importer's base directory, from the root, or the one file whose path ends with it
        (the closest to the importer when several do)."""
        directory = importer.rpartition("/")[0]
        key = (name, directory)
        if key in self._found:
            return self._found[key]
        found = None
        if name.partition(".")[0] not in OUTSIDE:
            base = ".".join(self._basedir(importer))
            found = self.by_name.get(f"{base}.{name}" if base else name) or self.by_name.get(name)
            candidates = self.by_suffix.get(name, [])
            if found is None and len(candidates) == 1:
                found = candidates[0]
            elif found is None and candidates:
                found = _closest(candidates, importer)
        self._found[key] = found
        return found

    def module_ref(self, name: str, importer: str, *, relative: bool) -> Resolved:
        if relative:
            path = self.by_name.get(name)
            return ModuleRef(path) if path else None
        path = self.find_module(name, importer)
        return ModuleRef(path) if path else External(name)

    def namespace(self, members: tuple[Entry, ...]) -> dict[str, Entry]:
        key = id(members)
        found = self._namespaces.get(key)
        if found is None:
            found = {m.name: m for m in members if not isinstance(m, StarImport)}
            self._namespaces[key] = found
        return found

    def exported(self, path: str, depth: int = 0) -> tuple[str, ...]:
        """What ``from <path's module> import *`` binds."""
        if path in self._exports:
            return self._exports[path] or ()
        self._exports[path] = None  # a star-import cycle ends here
        summary = self.modules[path]
        if summary.exports is not None:
            names = summary.exports
        else:
            names = tuple(n for n, _ in self.module_items(path, depth) if not n.startswith("_"))
        self._exports[path] = names
        return names

    def module_items(self, path: str, depth: int = 0) -> Iterator[tuple[str, Resolved]]:
        """The module's namespace in order, star imports expanded in place (explicit bindings
        win over star-imported names wherever they are)."""
        members = self.modules[path].members
        own = self.namespace(members)
        seen: set[str] = set()
        for member in members:
            if not isinstance(member, StarImport):
                seen.add(member.name)
                yield member.name, self.entry_ref(path, member, None, depth)
                continue
            source = self._star_source(path, member)
            if source is None or depth > MAX_DEPTH:
                continue
            for name in self.exported(source, depth + 1):
                if name not in own and name not in seen:
                    seen.add(name)
                    yield name, self.lookup(source, name, depth + 1)

    def _star_source(self, path: str, star: StarImport) -> str | None:
        name = absolute_module(path, star.module, star.level)
        ref = self.module_ref(name, path, relative=star.level > 0)
        return ref.path if isinstance(ref, ModuleRef) else None

    # Names

    def lookup(self, path: str, name: str, depth: int = 0) -> Resolved:
        summary = self.modules.get(path)
        if summary is None or depth > MAX_DEPTH:
            return None
        entry = self.namespace(summary.members).get(name)
        if entry is not None:
            return self.entry_ref(path, entry, None, depth)
        for star in reversed([m for m in summary.members if isinstance(m, StarImport)]):
            source = self._star_source(path, star)
            if source is not None and name in self.exported(source, depth + 1):
                return self.lookup(source, name, depth + 1)
        if hasattr(builtins, name):
            return External(f"builtins.{name}")
        return None

    def entry_ref(self, path: str, entry: Entry, owner: ClassRef | None, depth: int) -> Resolved:
        """What a binding of ``path`` (in class ``owner``'s body, if any) holds."""
        if isinstance(entry, FunctionEntry):
            return FunctionRef(path, entry)
        if isinstance(entry, ClassEntry):
            qualname = (*owner.qualname, entry.name) if owner else (entry.name,)
            return ClassRef(path, qualname, entry, owner)
        if isinstance(entry, ImportEntry):
            return self._imported(path, entry, depth + 1)
        if isinstance(entry, AliasEntry):
            return self.resolve(path, entry.target, owner, depth + 1)
        return None

    def _imported(self, path: str, entry: ImportEntry, depth: int) -> Resolved:
        relative = entry.level > 0
        module = absolute_module(path, entry.module, entry.level)
        ref = self.module_ref(module, path, relative=relative)
        if entry.attr is None:
            return ref
        if isinstance(ref, ModuleRef):
            found = self.lookup(ref.path, entry.attr, depth)
            if found is not None:
                return found
        submodule = f"{module}.{entry.attr}" if module else entry.attr
        sub = self.module_ref(submodule, path, relative=relative)
        if isinstance(sub, ModuleRef) or isinstance(ref, External):
            return sub
        return None

    def attribute(self, ref: Resolved, attr: str, depth: int) -> Resolved:
        if isinstance(ref, External):
            return External(f"{ref.name}.{attr}")
        if isinstance(ref, ClassRef):
            entry = self.namespace(ref.entry.members).get(attr)
            return None if entry is None else self.entry_ref(ref.path, entry, ref, depth)
        if not isinstance(ref, ModuleRef):
            return None
        found = self.lookup(ref.path, attr, depth)
        if found is None and ref.path.endswith("__init__.py"):
            package = ref.path.removesuffix("__init__.py")
            for candidate in (f"{package}{attr}.py", f"{package}{attr}/__init__.py"):
                if candidate in self.modules:
                    return ModuleRef(candidate)
        return found

    def resolve(self, path: str, text: str, scope: ClassRef | None, depth: int = 0) -> Resolved:
        """Dotted source text ``text`` as seen from module ``path`` (inside the body of class
        ``scope``, if any: its own names come first)."""
        if not text or depth > MAX_DEPTH:
            return None
        head, *rest = text.split(".")
        entry = self.namespace(scope.entry.members).get(head) if scope else None
        if entry is not None and scope is not None:
            ref = self.entry_ref(path, entry, scope, depth)
        else:
            ref = self.lookup(path, head, depth)
        for attr in rest:
            ref = self.attribute(ref, attr, depth + 1)
        return ref


def _closest(candidates: list[str], importer: str) -> str | None:
    """The candidate sharing the most leading directories with ``importer``, if only one does."""
    parts = importer.split("/")

    def shared(path: str) -> int:
        count = 0
        for mine, theirs in zip(parts, path.split("/")[:-1], strict=False):
            if mine != theirs:
                break
            count += 1
        return count

    scores = sorted(((shared(c), c) for c in candidates), reverse=True)
    return scores[0][1] if scores[0][0] > scores[1][0] else None
