"""`lsssdc demo`: the whole flow on synthetic data."""

import pytest

from lsssdc.cli import run


def test_demo_on_too_little_data_refuses_and_says_why(capsys, tmp_path):
    # 300 persons a year cannot meet k = 5 for the mortality order: the gate must refuse (exit 1)
    code = run(["demo", "--persons", "300", "--years", "2010-2021", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1
    assert "SYNTHETIC" in out and "refused" in out and "verified" in out
    assert (tmp_path / "registers" / "lss.parquet").is_file()
    assert not (tmp_path / "delivery").exists()


@pytest.mark.slow
def test_demo_runs_the_whole_flow(capsys, tmp_path):
    code = run(["demo", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "releasable" in out and "delivered package" in out and "verified" in out
