"""The shape of the package: imports run one way (no cycle among module-level imports), no module
is longer than 800 lines and no function longer than 100, and the table attacker depends on the
table model only, never on the suppression it checks."""

from __future__ import annotations

import ast
from pathlib import Path

import lsssdc

ROOT = Path(lsssdc.__file__).parent


def _modules() -> dict[str, Path]:
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = list(p.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The lsssdc modules imported at module level (imports inside functions and under
    ``if TYPE_CHECKING`` run later or never, so they cannot close a cycle at import time)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    deps: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            deps.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package[: len(package) - node.level + 1] + ([node.module] if node.module else [])
                )
            for a in node.names:
                deps.add(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base)
    return {d for d in deps if d in known and d != name}


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, path, set(mods)) for name, path in mods.items()}


def test_no_import_cycle() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*trail[trail.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert cycles == [], "\n".join(" -> ".join(c) for c in cycles)
    assert len(graph) > 50  # the walk saw the package


def test_the_table_attacker_imports_only_the_model() -> None:
    graph = _graph()
    tables = {m for m in graph if m.startswith("lsssdc.disclosure.tables.")}
    model, lp = "lsssdc.disclosure.tables.model", "lsssdc.disclosure.tables.attack_lp"
    # the attacker and its linear programmes: the table model, and nothing of the suppression
    assert graph["lsssdc.disclosure.tables.attack"] & tables == {model, lp}
    assert graph[lp] & tables == {model}


#: a module longer than this holds more than one room's worth (split it by domain concept)
MAX_LINES = 800


def test_no_module_is_longer_than_the_limit() -> None:
    long = {
        name: n
        for name, path in _modules().items()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}, f"modules over {MAX_LINES} lines: {long}"


#: a function longer than this does more than one step (break it into named steps)
MAX_FUNCTION_LINES = 100


def test_no_function_is_longer_than_the_limit() -> None:
    long = {}
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > MAX_FUNCTION_LINES:
                    long[f"{name}.{node.name}"] = size
    assert long == {}, f"functions over {MAX_FUNCTION_LINES} lines: {long}"
