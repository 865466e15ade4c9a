"""What a user installs: every import declared, every module importable in a fresh environment."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import venv
from importlib import metadata
from pathlib import Path

import pytest

import lsssdc

PACKAGE = Path(lsssdc.__file__).resolve().parent
ROOT = Path(__file__).resolve().parents[1]


def _imported_top_levels() -> dict[str, str]:
    """Every top-level module the package imports anywhere (also inside functions), with a file."""
    found: dict[str, str] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for n in names:
                found.setdefault(n.split(".")[0], str(path.relative_to(PACKAGE)))
    return found


def _declared() -> set[str]:
    out = set()
    for req in metadata.requires("lsssdc") or []:
        if "extra ==" in req:
            continue
        out.add(re.split(r"[\s<>=!~;\[(]", req, maxsplit=1)[0].lower().replace("_", "-"))
    return out


def test_every_imported_module_is_declared_or_standard() -> None:
    dists = metadata.packages_distributions()
    declared = _declared()
    missing = []
    for top, where in _imported_top_levels().items():
        if top in sys.stdlib_module_names or top in ("lsssdc", "__future__"):
            continue
        owners = {d.lower().replace("_", "-") for d in dists.get(top, [])}
        if not owners & declared:
            missing.append(f"{top} (imported in {where}; from {sorted(owners) or 'nothing installed'})")
    assert not missing, "imported but not declared in pyproject's dependencies: " + "; ".join(missing)


def test_the_tests_run_against_the_installed_package_when_ci_says_so() -> None:
    if os.environ.get("LSSSDC_EXPECT_INSTALLED") != "1":
        pytest.skip("only checked where LSSSDC_EXPECT_INSTALLED=1 (.ci/run)")
    assert "site-packages" in PACKAGE.parts, (
        f"lsssdc was imported from {PACKAGE}, not from an installed wheel"
    )


_IMPORT_ALL = """
import importlib, pkgutil, sys
import lsssdc
bad = []
for m in pkgutil.walk_packages(lsssdc.__path__, "lsssdc."):
    try:
        importlib.import_module(m.name)
    except Exception as exc:
        bad.append(f"{m.name}: {type(exc).__name__}: {exc}")
import lsssdc.cli
print("\\n".join(bad))
sys.exit(1 if bad else 0)
"""


@pytest.mark.slow
def test_every_module_imports_in_a_fresh_environment(tmp_path: Path) -> None:
    """Build the wheel, install it with only its declared dependencies, import every module."""
    if not (ROOT / "pyproject.toml").is_file():
        pytest.skip("needs the source tree to build the wheel")
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), str(ROOT)],
        check=True,
        timeout=600,
    )
    wheel = next(dist.glob("lsssdc-*.whl"))
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env_dir)
    py = env_dir / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "--quiet", str(wheel)], check=True, timeout=900)
    done = subprocess.run(
        [str(py), "-c", _IMPORT_ALL], capture_output=True, text=True, cwd=tmp_path, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    shipped = subprocess.run(
        [str(env_dir / "bin" / "lsssdc"), "policy", "list", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert shipped.returncode == 0 and "research-with-deaths" in shipped.stdout, shipped.stderr
