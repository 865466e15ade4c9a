"""The type checker is part of the test run: mypy over the whole package, with the settings in
pyproject.toml ([tool.mypy]), must report nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_package_type_checks(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api", reason="mypy comes with the test extra")
    out, err, status = api.run(
        [
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / "mypy-cache"),
            str(ROOT / "src" / "lsssdc"),
        ]
    )
    assert status == 0, out + err
