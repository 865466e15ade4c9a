"""`lsssdc tables`: a table order from the register to audited files, or a refusal."""

import dataclasses
import json
import types
from pathlib import Path

import pytest

from lsssdc.cli import run
from lsssdc.disclosure.tables import attack as table_audit
from lsssdc.register import files, synth
from lsssdc.release import table_orders
from lsssdc.shipped import folder as _shipped_folder

SHIPPED = _shipped_folder()

ROOT = Path(__file__).resolve().parents[2]
POLICY = SHIPPED / "public-tables.yaml"
ORDER = SHIPPED / "orders" / "kommun-tables-2023.yaml"


@pytest.fixture(scope="module")
def register(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reg")
    result = synth.synthesise(years=[2023], persons=8000, seed=3)
    return files.write_registers({"lss": result.register}, out)["lss"]


def _args(register: Path, out: Path) -> list[str]:
    return [
        "tables",
        "--policy",
        str(POLICY),
        "--order",
        str(ORDER),
        "--register",
        str(register),
        "--out",
        str(out),
    ]


def test_tables_are_written_with_hidden_cells_and_a_passed_audit(register, tmp_path, capsys):
    out = tmp_path / "t"
    assert run([*_args(register, out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["audit"]["passed"] is True
    csv = (out / "persons-per-kommun-and-insats.csv").read_text(encoding="utf-8-sig")
    assert ".." in csv  # 8,000 persons over 290 kommuner leave small cells to hide
    assert (out / "audit.json").is_file() and (out / "persons-per-lan-sex-age.json").is_file()


def test_a_failed_audit_refuses_and_writes_nothing(register, tmp_path, capsys, monkeypatch):
    real = table_audit.audit

    def failing(protected, **kw):
        return dataclasses.replace(real(protected, **kw), passed=False)

    # only the release gate's audit fails; the suppression's own checks run as usual
    monkeypatch.setattr(table_orders, "table_audit", types.SimpleNamespace(audit=failing))
    out = tmp_path / "t"
    assert run(_args(register, out)) == 1
    assert "nothing was written" in capsys.readouterr().err
    assert not out.exists()


def test_a_microdata_policy_refuses_tables_by_name(register, tmp_path, capsys):
    policy = SHIPPED / "research-standard.yaml"
    code = run(
        [
            "tables",
            "--policy",
            str(policy),
            "--order",
            str(ORDER),
            "--register",
            str(register),
            "--out",
            str(tmp_path / "t"),
        ]
    )
    assert code == 1
    assert "public-tables" in capsys.readouterr().err
