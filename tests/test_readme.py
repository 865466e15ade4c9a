"""README.md's commands, as written: the two set-up commands and the release tour."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.readme import section_code, setup_commands


def test_there_are_two_setup_commands_that_work_from_any_folder() -> None:
    cmds = setup_commands()
    assert len(cmds) == 2
    assert "lsssdc demo" in cmds[0] and "pytest" in cmds[1]
    for c in cmds:
        assert " -e " not in c, "an editable install tests the checkout, not what users get"
        # the only path either command names is the clone, through LSSSDC_SRC
        assert re.findall(r'"\$\{LSSSDC_SRC:-\.\}', c)


def test_the_tour_names_no_repository_path() -> None:
    tour = section_code("A release, step by step")
    assert "policies/" not in tour and "/secure/" not in tour


@pytest.mark.slow
def test_the_release_tour_runs_verbatim_from_an_empty_folder(tmp_path: Path) -> None:
    tour = section_code("A release, step by step")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("LSSSDC_PASSPHRASE", None)
    env.pop("LSSSDC_ACTOR_SECRET", None)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", tour],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "intact" in done.stdout
    assert any((tmp_path / "out").glob("B2026-0023/**/datapackage.json"))
