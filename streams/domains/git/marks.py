"""pytest marks read from source: decorators, ``pytestmark``, and parametrize's cases and ids."""

from __future__ import annotations

import ast
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from streams.domains.git.summary import Mark

LONG_STRING_ID = 100  # pytest 9's default "short" strategy: longer str/bytes get argname+index
_NON_PRINTABLE = {i: f"\\x{i:02x}" for i in range(128) if i not in range(32, 127)}
_NON_PRINTABLE.update({ord("\t"): "\\t", ord("\r"): "\\r", ord("\n"): "\\n"})


class _Unknown(Exception):
    """A value or id that only running the code could tell."""


def dotted(node: ast.expr) -> str | None:
    """``a.b.c`` for a chain of names and attributes, else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


@dataclass
class PytestNames:
    """How this module spells pytest's names, as its imports and assignments so far bind them."""

    modules: set[str] = field(default_factory=set)  # bound to the pytest module
    mark: set[str] = field(default_factory=set)  # bound to pytest.mark
    param: set[str] = field(default_factory=set)
    hidden: set[str] = field(default_factory=set)  # pytest.HIDDEN_PARAM
    mark_vars: dict[str, ast.expr] = field(default_factory=dict)  # slow = pytest.mark.slow
    literals: dict[str, ast.expr] = field(default_factory=dict)  # CASES = [...], NAME = "x"

    def bind_import(self, local: str, module: str, attr: str | None) -> None:
        for names in (self.modules, self.mark, self.param, self.hidden):
            names.discard(local)
        if attr is None:
            if module == "pytest":
                self.modules.add(local)
        elif module in ("pytest", "_pytest.mark") and attr in ("mark", "MARK_GEN"):
            self.mark.add(local)
        elif module == "pytest" and attr == "param":
            self.param.add(local)
        elif module == "pytest" and attr == "HIDDEN_PARAM":
            self.hidden.add(local)

    def bind_value(self, local: str, value: ast.expr) -> None:
        self.mark_vars.pop(local, None)
        self.literals.pop(local, None)
        if isinstance(value, ast.List | ast.Tuple | ast.Constant):
            self.literals[local] = value
        elif self.mark_name(value) is not None:
            self.mark_vars[local] = value

    def _is(self, node: ast.expr, names: set[str], attr: str) -> bool:
        text = dotted(node)
        if text is None:
            return False
        head, _, rest = text.partition(".")
        return (not rest and head in names) or (head in self.modules and rest == attr)

    def mark_name(self, node: ast.expr) -> str | None:
        """The mark ``node`` applies (``pytest.mark.x``, ``mark.x(...)``, ``.with_args``)."""
        if isinstance(node, ast.Call):
            node = node.func
        if isinstance(node, ast.Attribute) and node.attr == "with_args":
            node = node.value
        if isinstance(node, ast.Name) and node.id in self.mark_vars:
            return self.mark_name(self.mark_vars[node.id])
        if not isinstance(node, ast.Attribute):
            return None
        return node.attr if self._is(node.value, self.mark, "mark") else None

    def marks(self, nodes: list[ast.expr]) -> list[Mark]:
        """The marks among ``nodes`` (decorators bottom-up, or pytestmark's list items)."""
        found = []
        for node in nodes:
            expr = self.mark_vars.get(node.id, node) if isinstance(node, ast.Name) else node
            name = self.mark_name(expr)
            if name == "parametrize" and isinstance(expr, ast.Call):
                found.append(self._parametrize(expr))
            elif name is not None:
                found.append(Mark(name, -1) if name == "parametrize" else Mark(name))
        return found

    def pytestmark(self, value: ast.expr) -> list[Mark]:
        items = value.elts if isinstance(value, ast.List | ast.Tuple) else [value]
        return self.marks(items)

    def _parametrize(self, call: ast.Call) -> Mark:
        args = {k.arg: k.value for k in call.keywords if k.arg}
        argnames_node = call.args[0] if call.args else args.get("argnames")
        values_node = call.args[1] if len(call.args) > 1 else args.get("argvalues")
        if isinstance(values_node, ast.Name):
            values_node = self.literals.get(values_node.id, values_node)
        cases = _cases(values_node)
        if cases is None:
            return Mark("parametrize", -1)
        try:
            names, force_tuple = _argnames(argnames_node)
            ids = self._ids(names, force_tuple, cases, args.get("ids"))
        except _Unknown:
            return Mark("parametrize", max(len(cases), 1))
        return Mark("parametrize", len(ids), tuple(_unique(ids)))

    def _ids(
        self, names: list[str], force_tuple: bool, cases: list[ast.expr], ids_node: ast.expr | None
    ) -> list[str | None]:
        if not cases:  # pytest runs (skips) one case of NOTSET values
            return ["NOTSET"]
        if isinstance(ids_node, ast.Name):
            ids_node = self.literals.get(ids_node.id, ids_node)
        given: list[ast.expr] = []
        if isinstance(ids_node, ast.List | ast.Tuple):
            given = ids_node.elts
        elif ids_node is not None and not _is_none(ids_node):
            raise _Unknown  # a callable or computed ids
        resolved: list[str | None] = []
        for index, case in enumerate(cases):
            explicit = None
            if isinstance(case, ast.Call) and self._is(case.func, self.param, "param"):
                explicit = next((k.value for k in case.keywords if k.arg == "id"), None)
                values: list[ast.expr] | None = list(case.args)
            elif force_tuple:
                values = [case]
            else:
                values = _displayed(case)
            if explicit is not None and not _is_none(explicit):
                resolved.append(self._given_id(explicit))
            elif index < len(given) and not _is_none(given[index]):
                resolved.append(self._given_id(given[index]))
            elif values is None or len(values) != len(names):
                raise _Unknown
            else:
                resolved.append(
                    "-".join(
                        _auto_id(self._constant(v), n, index)
                        for v, n in zip(values, names, strict=True)
                    )
                )
        return resolved

    def _constant(self, node: ast.expr) -> ast.expr:
        """A module-level name bound to a constant (``LONG = "..."``) stands for it."""
        if isinstance(node, ast.Name):
            found = self.literals.get(node.id)
            if isinstance(found, ast.Constant):
                return found
        return node

    def _given_id(self, node: ast.expr) -> str | None:
        if self._is(node, self.hidden, "HIDDEN_PARAM"):
            return None
        value = _literal(self._constant(node))
        if isinstance(value, str | bytes):
            return _ascii_escaped(value)
        if isinstance(value, int | float | complex | bool):
            return str(value)
        raise _Unknown


def _is_none(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _literal(node: ast.expr) -> object:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise _Unknown from None


def _cases(node: ast.expr | None) -> list[ast.expr] | None:
    if isinstance(node, ast.List | ast.Tuple):
        return None if any(isinstance(e, ast.Starred) for e in node.elts) else list(node.elts)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "range"
        and 1 <= len(node.args) <= 3
        and not node.keywords
        and all(isinstance(a, ast.Constant) and type(a.value) is int for a in node.args)
    ):
        bounds = [
            a.value for a in node.args if isinstance(a, ast.Constant) and type(a.value) is int
        ]
        steps = range(*bounds)
        if len(steps) <= 10_000:
            return [ast.Constant(i) for i in steps]
    return None


def _argnames(node: ast.expr | None) -> tuple[list[str], bool]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        names = [n.strip() for n in node.value.split(",") if n.strip()]
        return names, len(names) == 1 and not node.value.rstrip().endswith(",")
    if isinstance(node, ast.List | ast.Tuple):
        strings = [e.value for e in node.elts if isinstance(e, ast.Constant)]
        if len(strings) == len(node.elts) and all(isinstance(n, str) for n in strings):
            return [str(n) for n in strings], False
    raise _Unknown


def _displayed(node: ast.expr) -> list[ast.expr] | None:
    if isinstance(node, ast.List | ast.Tuple):
        return None if any(isinstance(e, ast.Starred) for e in node.elts) else list(node.elts)
    return None


def _auto_id(node: ast.expr, argname: str, index: int) -> str:
    """pytest's id for a value it was not given an id for (``IdMaker._idval``)."""
    if isinstance(node, ast.Lambda):
        return "<lambda>"
    if isinstance(node, ast.GeneratorExp):
        return "<genexpr>"
    if isinstance(node, ast.List | ast.Tuple | ast.Dict | ast.Set | ast.ListComp | ast.SetComp):
        return f"{argname}{index}"  # containers have no __name__
    if isinstance(node, ast.DictComp):
        return f"{argname}{index}"
    value = node.value if isinstance(node, ast.Constant) else _literal(node)
    if isinstance(value, str | bytes):
        return f"{argname}{index}" if len(value) > LONG_STRING_ID else _ascii_escaped(value)
    if value is None or isinstance(value, int | float | complex | bool):
        return str(value)
    return f"{argname}{index}"  # Ellipsis: no id of its own


def _ascii_escaped(value: str | bytes) -> str:
    if isinstance(value, bytes):
        text = value.decode("ascii", "backslashreplace")
    else:
        text = value.encode("unicode_escape").decode("ascii")
    return text.translate(_NON_PRINTABLE)


def _unique(ids: list[str | None]) -> list[str | None]:
    """pytest's suffixes for ids that repeat within one parametrize: a0, a1 (1_0, 1_1...)."""
    counts = Counter(ids)
    if len(counts) == len(ids):
        return ids
    current = Counter(ids)
    suffixes: dict[str, int] = defaultdict(int)
    result = list(ids)
    for index, text in enumerate(ids):
        if text is None or counts[text] < 2:
            continue
        sep = "_" if text and text[-1].isdigit() else ""
        new = f"{text}{sep}{suffixes[text]}"
        while current[new]:
            suffixes[text] += 1
            new = f"{text}{sep}{suffixes[text]}"
        current[text] -= 1
        current[new] += 1
        result[index] = new
        suffixes[text] += 1
    return result


def combine(marks: list[Mark]) -> tuple[int, tuple[str, ...]]:
    """Cases and ids of a test from its parametrize marks in pytest's order (the function's
    bottom decorator first, then class and module ones): the first varies slowest."""
    if not marks:
        return 0, ()
    count = 1
    parts: list[tuple[str, ...]] | None = [()]
    for mark in marks:
        if mark.count < 0:
            return -1, ()
        count *= mark.count
        if mark.ids is None or parts is None:
            parts = None
        else:
            parts = [old if new is None else (*old, new) for old in parts for new in mark.ids]
    return count, () if parts is None else tuple("-".join(p) for p in parts)
