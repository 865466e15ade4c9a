"""The error-code catalogue against the code: every code a Problem is built with is listed, none
is listed that is no longer used, no two are near-twins, and each code's errors share one exit
class (the one listed). The codes are found here by reading the source, not from the catalogue."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import lsssdc
from lsssdc import errors
from lsssdc.error_codes import CATALOGUE, markdown

ROOT = Path(lsssdc.__file__).parent
DOCS = Path(__file__).resolve().parents[1] / "docs" / "error-codes.md"
#: the error classes and their exit codes, from the hierarchy itself
CLASSES = {
    name: cls.exit_code
    for name, cls in vars(errors).items()
    if isinstance(cls, type) and issubclass(cls, errors.LsssdcError)
}


def _name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _codes_in_use() -> dict[str, set[int | None]]:
    """Per code, the exit codes of the errors its Problems are raised in (None: not found at
    the call, e.g. a problem collected into a list or a report)."""
    found: dict[str, set[int | None]] = defaultdict(set)
    for path in sorted(ROOT.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parent = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and _name(node.func) == "Problem"):
                continue
            code = None
            if node.args and isinstance(node.args[0], ast.Constant):
                code = node.args[0].value
            for kw in node.keywords:
                if kw.arg == "code" and isinstance(kw.value, ast.Constant):
                    code = kw.value.value
            if not isinstance(code, str):
                continue
            exit_code = None
            up = parent.get(node)
            while up is not None:
                if isinstance(up, ast.Call) and _name(up.func) in CLASSES:
                    exit_code = CLASSES[str(_name(up.func))]
                    break
                if isinstance(up, ast.FunctionDef | ast.AsyncFunctionDef):
                    returns = _name(up.returns) if up.returns is not None else None
                    exit_code = CLASSES.get(returns) if returns else None
                    break
                up = parent.get(up)
            found[code].add(exit_code)
    return found


def test_every_code_in_use_is_listed_and_every_listed_code_is_used() -> None:
    used = _codes_in_use()
    assert len(used) > 150  # the walk saw the package
    assert sorted(set(used) - set(CATALOGUE)) == [], "codes missing from lsssdc/error_codes.py"
    assert sorted(set(CATALOGUE) - set(used)) == [], "codes listed but no longer used"


def test_a_code_exits_the_same_wherever_it_is_raised() -> None:
    for code, exits in _codes_in_use().items():
        known = exits - {None}
        assert len(known) <= 1, f"{code} is raised with exit codes {sorted(known)}"
        if known:
            assert CATALOGUE[code].exit == next(iter(known)), f"{code}: the catalogue gives another exit"


def test_no_two_codes_are_near_twins() -> None:
    stems: dict[str, list[str]] = defaultdict(list)
    for code in CATALOGUE:
        assert code.isascii() and code == code.lower() and " " not in code, code
        stems[code.removesuffix("s").replace("_", "")].append(code)
    assert [c for c in stems.values() if len(c) > 1] == []


def test_the_reference_is_the_catalogue() -> None:
    assert DOCS.read_text(encoding="utf-8") == markdown(), (
        "run: python -m lsssdc.error_codes > docs/error-codes.md"
    )
