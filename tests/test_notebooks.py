"""The notebooks run, offline, on synthetic data: a cell that raises fails the suite.

Each notebook is executed with nbclient in the current Python's kernel ("python3" from
ipykernel), in a temporary working directory; the three run side by side, each in its own
kernel. The committed ``.ipynb`` files carry no outputs and match their jupytext
percent-format pairs (``notebooks/*.py``, the reviewable source); after editing a ``.py``
file, regenerate its pair with::

    jupytext --update --to ipynb notebooks/NN_name.py
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
NAMES = [p.stem for p in NOTEBOOKS]
#: Seconds a cell may take before the run counts as failed (each notebook takes a few seconds).
CELL_TIMEOUT = 120

pytestmark = [
    pytest.mark.notebook,
    # third-party deprecations inside the Jupyter machinery are not ours to fail on
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
]


def test_the_three_notebooks_are_there() -> None:
    assert NAMES == ["01_release_walkthrough", "02_tables_for_kommuner", "03_risk_exploration"]
    for p in NOTEBOOKS:
        assert p.with_suffix(".py").is_file(), f"{p.name} has no percent-format pair {p.stem}.py"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_committed_notebook_has_no_outputs_and_matches_its_pair(path: Path) -> None:
    nbformat = pytest.importorskip("nbformat", reason="install the test extra (nbformat)")
    jupytext = pytest.importorskip("jupytext", reason="install the test extra (jupytext)")
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, (
                f"{path.name}: clear the outputs before committing"
            )
    pair = jupytext.read(path.with_suffix(".py"))
    assert [(c.cell_type, c.source) for c in nb.cells] == [(c.cell_type, c.source) for c in pair.cells], (
        f"{path.name} differs from {path.stem}.py; run: jupytext --update --to ipynb notebooks/{path.stem}.py"
    )
    assert nb.metadata.kernelspec.name == "python3"


def _kernel_manager_class() -> type:
    """A kernel manager that only knows ipykernel's own "python3" spec: this interpreter."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class ThisPython(AsyncKernelManager):
        @default("kernel_spec_manager")
        def _only_native(self) -> KernelSpecManager:
            return KernelSpecManager(kernel_dirs=[], ensure_native_kernel=True)

    return ThisPython


class Runs(dict):
    """Notebook name -> (executed notebook, the failure or None); a short repr for tracebacks."""

    def __repr__(self) -> str:
        return f"<{len(self)} executed notebooks>"


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """Every notebook executed once, side by side (each in its own kernel and folder)."""
    nbformat = pytest.importorskip("nbformat", reason="install the test extra (nbformat)")
    nbclient = pytest.importorskip("nbclient", reason="install the test extra (nbclient)")
    pytest.importorskip("ipykernel", reason="install the test extra (ipykernel)")
    manager = _kernel_manager_class()
    spec = manager(kernel_name="python3").kernel_spec
    assert Path(spec.argv[0]).resolve() == Path(sys.executable).resolve()
    runs = []
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        client = nbclient.NotebookClient(
            nb,
            kernel_name="python3",
            kernel_manager_class=manager,
            timeout=CELL_TIMEOUT,
            allow_errors=False,
            resources={"metadata": {"path": str(tmp_path_factory.mktemp(path.stem))}},
        )
        runs.append((path.stem, nb, client))

    async def run_all() -> list[Any]:
        return await asyncio.gather(*(c.async_execute() for _, _, c in runs), return_exceptions=True)

    outcomes = asyncio.run(run_all())
    return Runs(
        (name, (nb, outcome if isinstance(outcome, BaseException) else None))
        for (name, nb, _), outcome in zip(runs, outcomes, strict=True)
    )


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs(name: str, executed: Runs) -> None:
    nb, failure = executed[name]
    if failure is not None:
        plain = re.sub(r"\x1b\[[0-9;]*m", "", str(failure))  # the kernel's colours
        pytest.fail(f"{name}.ipynb: a cell failed:\n{plain}")
    ran = [c for c in nb.cells if c.cell_type == "code"]
    assert ran and all(c.execution_count for c in ran), f"{name}.ipynb: not every cell ran"
    errors = [o for c in ran for o in c.outputs if o.output_type == "error"]
    assert not errors
