"""One module's AST read into its summary: bindings in order, classes, decorators' marks."""

from __future__ import annotations

import ast
from inspect import cleandoc

from streams.domains.git.marks import PytestNames, dotted
from streams.domains.git.summary import (
    AliasEntry,
    ClassEntry,
    Entry,
    FunctionEntry,
    ImportEntry,
    Mark,
    ModuleSummary,
    StarImport,
    ValueEntry,
)

_NOT_CALLABLE = {"property", "cached_property", "abstractproperty", "setter", "getter", "deleter"}
_ABSTRACT = {"abstractmethod", "abstractproperty", "abstractclassmethod", "abstractstaticmethod"}
_ATTRS_CLASSES = {
    "attr.s",
    "attr.attrs",
    "attr.define",
    "attrs.define",
    "attr.frozen",
    "attrs.frozen",
}
_NESTED = (ast.If, ast.Try, ast.TryStar, ast.With, ast.AsyncWith, ast.For, ast.AsyncFor, ast.While)


class _Scope:
    """A module's or class body's bindings: first-binding order, last value (a dict's)."""

    def __init__(self) -> None:
        self.bindings: dict[str, Entry] = {}
        self.stars = 0
        self.test_attr: bool | None = None
        self.marks: list[Mark] = []
        self.exports: list[str] | None = None
        self.attr_flags: dict[str, bool | None] = {}  # name.__test__ = ...

    def bind(self, entry: Entry) -> None:
        self.bindings[entry.name] = entry
        self.attr_flags.pop(entry.name, None)

    def members(self) -> tuple[Entry, ...]:
        result: list[Entry] = []
        for name, entry in self.bindings.items():
            if name in self.attr_flags and isinstance(entry, FunctionEntry | ClassEntry):
                result.append(_with_test_attr(entry, self.attr_flags[name]))
            else:
                result.append(entry)
        return tuple(result)


def _with_test_attr(entry: FunctionEntry | ClassEntry, flag: bool | None) -> Entry:
    if isinstance(entry, FunctionEntry):
        return FunctionEntry(
            entry.name, entry.line, entry.docstring, entry.marks, entry.fixture,
            entry.descriptor, entry.abstract, flag,
        )  # fmt: skip
    return ClassEntry(
        entry.name, entry.line, entry.docstring, entry.bases, entry.metaclass, entry.marks,
        flag, entry.members,
    )  # fmt: skip


def _flag(node: ast.expr) -> bool | None:
    """A literal ``__test__``: True only for ``True`` itself (pytest's ``is True``), False for
    any falsy constant, None when not a constant."""
    if isinstance(node, ast.Constant):
        return True if node.value is True else (False if not node.value else None)
    return None


class ModuleReader:
    def __init__(self, path: str) -> None:
        self.path = path
        self.names = PytestNames()

    def read(self, tree: ast.Module) -> ModuleSummary:
        scope = _Scope()
        self._body(tree.body, scope, module=True)
        exports = None if scope.exports is None else tuple(scope.exports)
        members = scope.members()
        return ModuleSummary(self.path, None, scope.test_attr, tuple(scope.marks), exports, members)

    def _body(self, body: list[ast.stmt], scope: _Scope, *, module: bool) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                scope.bind(self._function(node))
            elif isinstance(node, ast.ClassDef):
                scope.bind(self._class(node))
            elif isinstance(node, ast.Import | ast.ImportFrom):
                self._import(node, scope, module=module)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    self._assign(target, node.value, scope, module=module)
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                self._assign(node.target, node.value, scope, module=module)
            elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
                self._augment(node, scope)
            elif isinstance(node, ast.Delete):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        scope.bindings.pop(target.id, None)
            elif isinstance(node, _NESTED):
                # Conditional code: take every branch, in order (the last binding wins).
                for part in ("body", "orelse", "finalbody"):
                    self._body(getattr(node, part, []), scope, module=module)
                for handler in getattr(node, "handlers", []):
                    self._body(handler.body, scope, module=module)
            elif isinstance(node, ast.Match):
                for case in node.cases:
                    self._body(case.body, scope, module=module)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> FunctionEntry:
        fixture = descriptor = abstract = False
        for decorator in node.decorator_list:
            name = dotted(decorator.func if isinstance(decorator, ast.Call) else decorator)
            last = (name or "").rpartition(".")[2]
            fixture = fixture or last in ("fixture", "yield_fixture")
            descriptor = descriptor or last in _NOT_CALLABLE
            abstract = abstract or last in _ABSTRACT
        return FunctionEntry(
            node.name, node.lineno, _docstring(node), self._decorator_marks(node),
            fixture, descriptor, abstract,
        )  # fmt: skip

    def _decorator_marks(
        self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
    ) -> tuple[Mark, ...]:
        # Decorators apply bottom-up and pytest appends each mark: the bottom one comes first.
        return tuple(self.names.marks(node.decorator_list[::-1]))

    def _class(self, node: ast.ClassDef) -> ClassEntry:
        scope = _Scope()
        self._body(node.body, scope, module=False)
        bases = tuple(dotted(_unsubscripted(b)) or "" for b in node.bases)
        metaclass = next((k.value for k in node.keywords if k.arg == "metaclass"), None)
        members = scope.members()
        if any(_is_dataclass(d) for d in node.decorator_list) and "__init__" not in scope.bindings:
            members += (ValueEntry("__init__"),)  # the generated constructor
        return ClassEntry(
            node.name, node.lineno, _docstring(node), bases,
            None if metaclass is None else dotted(metaclass) or "",
            (*scope.marks, *self._decorator_marks(node)), scope.test_attr, members,
        )  # fmt: skip

    def _import(self, node: ast.Import | ast.ImportFrom, scope: _Scope, *, module: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                local = alias.asname or alias.name.partition(".")[0]
                target = alias.name if alias.asname else local
                scope.bind(ImportEntry(local, target))
                if module:
                    self.names.bind_import(local, target, None)
            return
        source = node.module or ""
        for alias in node.names:
            if alias.name == "*":
                scope.bindings[f"*{scope.stars}"] = StarImport(source, node.level)
                scope.stars += 1
                continue
            local = alias.asname or alias.name
            scope.bind(ImportEntry(local, source, node.level, alias.name))
            if module:  # a relative import never binds pytest's names, but may rebind one
                self.names.bind_import(local, "." * node.level + source, alias.name)

    def _assign(self, target: ast.expr, value: ast.expr, scope: _Scope, *, module: bool) -> None:
        if isinstance(target, ast.Tuple | ast.List):
            for element in target.elts:
                if isinstance(element, ast.Name):
                    scope.bind(ValueEntry(element.id))
            return
        if isinstance(target, ast.Attribute) and target.attr == "__test__":
            if isinstance(target.value, ast.Name):
                scope.attr_flags[target.value.id] = _flag(value)
            return
        if not isinstance(target, ast.Name):
            return
        name = target.id
        if name == "__test__":
            scope.test_attr = _flag(value)
        elif name == "pytestmark":
            scope.marks = self.names.pytestmark(value)
        elif name == "__all__" and module:
            scope.exports = _strings(value)
        if module:
            self.names.bind_value(name, value)
        if isinstance(value, ast.Lambda):
            scope.bind(FunctionEntry(name, value.lineno))
        elif (text := dotted(value)) is not None and text != name:
            scope.bind(AliasEntry(name, text))
        else:
            scope.bind(ValueEntry(name))

    def _augment(self, node: ast.AugAssign, scope: _Scope) -> None:
        assert isinstance(node.target, ast.Name)
        name = node.target.id
        added = _strings(node.value)
        if name == "__all__" and scope.exports is not None and added is not None:
            scope.exports = [*scope.exports, *added]
        elif name == "pytestmark":
            scope.marks = [*scope.marks, *self.names.pytestmark(node.value)]


def _docstring(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> str | None:
    """``ast.get_docstring`` without its slow checks for the deprecated node classes."""
    first = node.body[0] if node.body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        text = first.value.value
        return cleandoc(text) if isinstance(text, str) else None
    return None


def _unsubscripted(node: ast.expr) -> ast.expr:
    return node.value if isinstance(node, ast.Subscript) else node  # Generic[T] -> Generic


def _is_dataclass(node: ast.expr) -> bool:
    if isinstance(node, ast.Call):
        if any(k.arg == "init" and _flag(k.value) is False for k in node.keywords):
            return False
        node = node.func
    name = dotted(node) or ""
    return name.rpartition(".")[2] == "dataclass" or name in _ATTRS_CLASSES


def _strings(node: ast.expr) -> list[str] | None:
    if not isinstance(node, ast.List | ast.Tuple):
        return None
    found = [e.value for e in node.elts if isinstance(e, ast.Constant)]
    if len(found) != len(node.elts) or not all(isinstance(v, str) for v in found):
        return None
    return [str(v) for v in found]
