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


def test_demo_refuses_a_folder_it_did_not_write_and_changes_nothing(capsys, tmp_path):
    (tmp_path / "thesis.tex").write_text("years of work", encoding="utf-8")
    (tmp_path / "registers").mkdir()
    code = run(["demo", "--persons", "300", "--years", "2020-2021", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert str(tmp_path) in err and "not empty" in err and "nothing was changed" in err
    assert len(err.strip().splitlines()) == 1
    assert (tmp_path / "thesis.tex").read_text(encoding="utf-8") == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["registers", "thesis.tex"]


def test_demo_clears_only_an_earlier_demo_and_refuses_one_with_foreign_files(capsys, tmp_path):
    out = tmp_path / "demo"
    args = ["demo", "--persons", "300", "--years", "2020-2021", "--out", str(out)]
    assert run(args) == 1  # too few persons: refused, but a demo folder was written
    assert (out / ".lsssdc-demo").is_file()
    assert run(args) == 1  # an earlier demo's folder is cleared and used again
    capsys.readouterr()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    assert run(args) == 2
    err = capsys.readouterr().err
    assert "notes.txt" in err and "nothing was changed" in err
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert (out / "registers" / "lss.parquet").is_file()


def test_demo_refuses_a_file_or_a_symlink_as_its_folder(capsys, tmp_path):
    f = tmp_path / "file"
    f.write_text("x", encoding="utf-8")
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    for target in (f, link):
        assert run(["demo", "--persons", "300", "--years", "2020-2021", "--out", str(target)]) == 2
    assert f.read_text(encoding="utf-8") == "x" and not (tmp_path / "elsewhere").exists()
