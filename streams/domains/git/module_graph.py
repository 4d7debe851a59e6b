"""Which modules of a tree take test classes or tests from which: the reach of a change.

Resolution errs on the side of more: a dotted name stands for every file it could name (any
path whose module name ends with it), so a change is never missed, at worst a few more test
modules are collected again than needed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping


def module_name(path: str) -> str:
    """``a/b/c.py`` -> ``a.b.c``; ``a/b/__init__.py`` -> ``a.b``."""
    parts = path.removesuffix(".py").split("/")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


class ModuleGraph:
    """Edges from a module to the files its dependencies may name, over ``paths`` (the
    commit's modules plus any deleted by the change, so their dependents are found too)."""

    def __init__(self, paths: Iterable[str], dependencies: Mapping[str, Iterable[str]]) -> None:
        self._by_suffix: dict[str, set[str]] = defaultdict(set)
        for path in paths:
            parts = module_name(path).split(".")
            for start in range(len(parts)):
                self._by_suffix[".".join(parts[start:])].add(path)
        self.uses: dict[str, set[str]] = {}
        self.used_by: dict[str, set[str]] = defaultdict(set)
        for path, names in dependencies.items():
            targets = {t for name in names for t in self._by_suffix.get(name, ())} - {path}
            self.uses[path] = targets
            for target in targets:
                self.used_by[target].add(path)

    def dependents(self, changed: Iterable[str]) -> set[str]:
        """``changed`` and every module taking from them, directly or not."""
        return _reach(changed, self.used_by)

    def closure(self, paths: Iterable[str], present: Iterable[str]) -> set[str]:
        """``paths`` and everything they take from, directly or not, among ``present``."""
        return _reach(paths, self.uses) & set(present)


def _reach(start: Iterable[str], edges: Mapping[str, set[str]]) -> set[str]:
    seen = set(start)
    todo = list(seen)
    while todo:
        for neighbour in edges.get(todo.pop(), ()):
            if neighbour not in seen:
                seen.add(neighbour)
                todo.append(neighbour)
    return seen
