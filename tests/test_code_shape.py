"""The shape of the code: no import cycle among planner's modules or its stage packages (lazy imports included),
no module over 600 lines, no function over 80 lines without a one-line reason beside it (``# long: <why>`` on
its ``def`` line or the line above). Read from the source with ``ast``: nothing is imported."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "planner"
MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 80
_REASON = re.compile(r"#\s*long:\s*\S")

# Debt, by owner (lines when listed). A listed item is not failed while its owner works on it, may shrink but
# never grow, and must be removed once it fits; the test fails for any new offender. Every entry was cleared on
# 2026-12-01; new code gets no entry.
FILE_DEBT: dict[str, int] = {  # module -> lines
}
FUNCTION_DEBT: dict[tuple[str, str], int] = {  # (module, function) -> lines
}
CYCLE_DEBT: list[set[str]] = [  # modules of a known cycle, by owner
]


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for p in PACKAGE.rglob("*.py"):
        parts = list(p.relative_to(ROOT).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (p, is_pkg)
    return out


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth (lazy ones inside functions too), except under ``if TYPE_CHECKING``."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append(child)
            visit(child)

    visit(tree)
    return found


def _import_graph() -> dict[str, set[str]]:
    mods = _modules()

    def owner(name: str) -> str:
        while name not in mods:
            name = name.rsplit(".", 1)[0]
        return name

    graph: dict[str, set[str]] = defaultdict(set)
    for name, (path, is_pkg) in mods.items():
        pkg = name if is_pkg else name.rsplit(".", 1)[0]
        for node in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                graph[name] |= {owner(a.name) for a in node.names if a.name.split(".")[0] == "planner"}
                continue
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "planner":
                continue
            for a in node.names:
                sub = f"{target}.{a.name}"
                graph[name].add(sub if sub in mods else owner(target))
        graph[name].discard(name)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[set[str]] = []
    counter = 0
    for root in sorted(set(graph) | {m for v in graph.values() for m in v}):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                elif nxt in on:
                    low[v] = min(low[v], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = set()
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.add(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(comp)
    return out


def _stage(module: str) -> str:
    """The stage a module belongs to: its package under planner (``planner.safety``), or itself at the root."""
    return ".".join(module.split(".")[:2])


def test_no_import_cycle_between_modules():
    cycles = [c for c in _cycles(_import_graph()) if c not in CYCLE_DEBT]
    assert not cycles, f"import cycles: {[sorted(c) for c in cycles]}"


def test_no_import_cycle_between_stage_packages():
    graph = _import_graph()
    stages: dict[str, set[str]] = defaultdict(set)
    debt = {m for c in CYCLE_DEBT for m in c}
    for a, targets in graph.items():
        for b in targets:
            if _stage(a) != _stage(b) and not (a in debt and b in debt):
                stages[_stage(a)].add(_stage(b))
    cycles = _cycles(stages)
    assert not cycles, f"stage-level import cycles: {[sorted(c) for c in cycles]}"


def test_the_cycle_check_finds_a_cycle(tmp_path, monkeypatch):
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    code = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .x import y\ndef f():\n    from .z import w\n"
    names = [n.module for n in _runtime_imports(ast.parse(code)) if isinstance(n, ast.ImportFrom)]
    assert names == ["typing", "z"]


def _functions(path: Path):
    lines = path.read_text(encoding="utf-8").splitlines()
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            near = lines[max(start - 2, 0) : node.body[0].lineno - 1]
            yield node.name, node.end_lineno - start + 1, any(_REASON.search(x) for x in near)


def test_modules_are_at_most_600_lines():
    too_long = {}
    for p in sorted(PACKAGE.rglob("*.py")):
        rel = p.relative_to(ROOT).as_posix()
        n = len(p.read_text(encoding="utf-8").splitlines())
        if n > MAX_FILE_LINES and n > FILE_DEBT.get(rel, 0):
            too_long[rel] = n
    assert not too_long, (
        f"modules over {MAX_FILE_LINES} lines, or longer than their listed debt (split them): {too_long}"
    )
    fixed = [
        m
        for m in FILE_DEBT
        if not (ROOT / m).is_file() or len((ROOT / m).read_text(encoding="utf-8").splitlines()) <= MAX_FILE_LINES
    ]
    assert not fixed, f"no longer over the limit: remove from FILE_DEBT: {fixed}"


def test_functions_are_at_most_80_lines_or_say_why():
    """Debt is a ratchet: a listed function may shrink, never grow, and leaves the list once it fits."""
    too_long: dict[str, int] = {}
    fixed: list[str] = []
    for p in sorted(PACKAGE.rglob("*.py")):
        rel = p.relative_to(ROOT).as_posix()
        for name, n, reason in _functions(p):
            if n > MAX_FUNCTION_LINES and n > FUNCTION_DEBT.get((rel, name), 0) and not reason:
                too_long[f"{rel}:{name}"] = n
            elif (rel, name) in FUNCTION_DEBT and n <= MAX_FUNCTION_LINES:
                fixed.append(f"{rel}:{name}")
    assert not too_long, (
        f"functions over {MAX_FUNCTION_LINES} lines (or over their listed debt) without a '# long: <why>' comment "
        f"beside their def: {too_long}"
    )
    assert not fixed, f"no longer over the limit: remove from FUNCTION_DEBT: {fixed}"


def test_the_slow_list_names_real_tests():
    from conftest import SLOW_TESTS

    for node in SLOW_TESTS:
        path, name = node.split("::")
        tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
        assert any(isinstance(n, ast.FunctionDef) and n.name == name for n in tree.body), f"no test {node}"
