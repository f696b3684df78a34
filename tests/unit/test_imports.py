"""The package's import structure, read from the source with `ast` (nothing is imported).

Rules, for every module under dlseminar/:

1. No import cycle. The graph has one node per module (a package is its `__init__.py`) and an
   edge for every import statement that names a project module, wherever it stands: at the top
   of the file or inside a function. A function-level import runs the first time the function is
   called, so a cycle through one is still a cycle (it only moves the failure to run time).
   Only imports under `if TYPE_CHECKING:` are left out: they never run.
   `from a.b import c` is an edge to `a.b.c` when that is a module, else to `a.b`; an edge
   goes only to the module named, not to the packages above it that Python imports first, so a
   package `__init__` that imports its own submodules (to register them) is no cycle by itself.
   Relative imports are resolved against the importing module's package.

2. No private name taken from another module. A name with one leading underscore (`_x`, not a
   dunder) is private to the module that defines it: `from m import _x`, or `m._x` where `m` is
   a project module bound by an import, fails in any other module. Likewise a module whose own
   name starts with an underscore is private to its package. The one exception is a package's
   `__init__.py`, which may take names from its own submodules to re-export them.
   Shared code belongs under a public name in the lowest module that every user may import.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "dlseminar"
ROOT = PKG.parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


class _Reader(ast.NodeVisitor):
    """Collects one module's imports of project modules, its module aliases and private uses."""

    def __init__(self, name: str, is_pkg: bool, modules: dict[str, Path]):
        self.name, self.modules = name, modules
        self.package = name if is_pkg else name.rpartition(".")[0]
        self.edges: list[tuple[str, int]] = []  # (target module, line)
        self.aliases: dict[str, str] = {}  # local name -> project module it is bound to
        self.private: list[tuple[str, str, int]] = []  # (target module, name, line)

    def visit_If(self, node: ast.If):
        if _is_type_checking(node.test):
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import):
        for alias in node.names:
            if alias.name in self.modules:
                self.edges.append((alias.name, node.lineno))
                if alias.asname:
                    self.aliases[alias.asname] = alias.name

    def visit_ImportFrom(self, node: ast.ImportFrom):
        if node.level:
            base = self.package.split(".")
            base = base[: len(base) - (node.level - 1)]
            full = ".".join(base + ([node.module] if node.module else []))
        else:
            full = node.module or ""
        if full not in self.modules:
            return
        for alias in node.names:
            sub = f"{full}.{alias.name}"
            if sub in self.modules:
                self.edges.append((sub, node.lineno))
                self.aliases[alias.asname or alias.name] = sub
            else:
                self.edges.append((full, node.lineno))
                if _is_private(alias.name):
                    self.private.append((full, alias.name, node.lineno))

    def visit_Attribute(self, node: ast.Attribute):
        if isinstance(node.value, ast.Name) and _is_private(node.attr):
            target = self.aliases.get(node.value.id)
            if target is not None:
                self.private.append((target, node.attr, node.lineno))
        self.generic_visit(node)


def _read_all():
    modules = _modules()
    readers = {}
    for name, path in modules.items():
        reader = _Reader(name, path.name == "__init__.py", modules)
        reader.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        readers[name] = reader
    return modules, readers


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module, or a module importing itself."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def strong(v):  # Tarjan; the package is small enough for recursion
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph[v]:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def _one_loop(graph: dict[str, set[str]], comp: list[str]) -> list[str]:
    """A shortest path from the component's first module back to itself, for the message."""
    start, members = comp[0], set(comp)
    prev, frontier = {}, [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return path[::-1] + [start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return comp


def test_the_reader_sees_the_package():
    modules, _ = _read_all()
    assert {"dlseminar.cli", "dlseminar.registry", "dlseminar.engine", "dlseminar.engine.trainer"} <= set(modules)


def test_the_reader_resolves_imports_and_finds_private_names():
    modules = dict.fromkeys(["p", "p.a", "p.b", "p.sub", "p.sub.c", "p.sub._hidden"])
    source = """
from typing import TYPE_CHECKING
import p.a as alias
from .. import b
from ..a import thing, _secret
from ._hidden import x
if TYPE_CHECKING:
    import p.sub
def later():
    from .c import y
    return alias._inner, b.public
"""
    reader = _Reader("p.sub.d", False, modules)
    reader.visit(ast.parse(source))
    # relative imports resolved; the function-level import counts; the TYPE_CHECKING one (p.sub) does not
    assert sorted({t for t, _ in reader.edges}) == ["p.a", "p.b", "p.sub._hidden", "p.sub.c"]
    assert ("p.a", "_secret", 5) in reader.private and ("p.a", "_inner", 11) in reader.private
    assert not any(name == "public" for _, name, _ in reader.private)


def test_loop_finder_reports_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _one_loop(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle():
    modules, readers = _read_all()
    graph = {m: {t for t, _ in r.edges if t != m} for m, r in readers.items()}
    lines = defaultdict(list)
    for m, r in readers.items():
        for t, line in r.edges:
            lines[m, t].append(line)
    problems = []
    for comp in _cycles(graph):
        loop = _one_loop(graph, comp)
        steps = [f"{a} (line {min(lines[a, b])}) -> {b}" for a, b in zip(loop, loop[1:])]
        problems.append(f"cycle of {len(comp)} modules {comp}; one loop:\n    " + "\n    ".join(steps))
    assert not problems, "import cycles:\n" + "\n".join(problems)


def test_no_private_name_from_another_module():
    modules, readers = _read_all()
    problems = []
    for m, r in readers.items():
        is_init = modules[m].name == "__init__.py"
        uses = list(r.private)
        # a module whose own name is private belongs to its package
        uses += [(t, "", line) for t, line in r.edges
                 if _is_private(t.rpartition(".")[2]) and not m.startswith(t.rpartition(".")[0] + ".")]
        for target, name, line in uses:
            if target == m or (is_init and target.startswith(m + ".")):
                continue
            what = f"{target}.{name}" if name else f"private module {target}"
            problems.append(f"{modules[m].relative_to(ROOT)}:{line} uses {what}")
    assert not problems, "private names used outside their module:\n" + "\n".join(problems)
