"""Usage errors are one clear line and exit 2 on the installed command; help shows no Python types."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lsssdc.cli import command, run

SCRIPT = Path(sys.executable).parent / "lsssdc"


def _installed(*args: str) -> subprocess.CompletedProcess[str]:
    if not SCRIPT.exists():
        pytest.skip("the lsssdc console script is not installed next to this Python")
    env = {**os.environ, "COLUMNS": "100"}
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--bogus"], "No such option: --bogus"),
        (["prepare"], "Missing option '--policy'"),
        (["synth", "--persons", "many"], "'--persons'"),
        (["synth", "--bogus"], "No such option: --bogus"),
        (["nosuchcommand"], "No such command"),
        (["audit", "verify", "--bogus"], "No such option"),
    ],
)
def test_a_usage_error_is_one_line_and_exit_2(args: list[str], says: str) -> None:
    done = _installed(*args)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("lsssdc: usage error:") and says in lines[0]
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""


def test_version() -> None:
    from importlib.metadata import version

    done = _installed("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"lsssdc {version('lsssdc')}"


def _commands(cmd, path=()):
    yield path
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def test_no_help_text_shows_a_python_type(capsys) -> None:
    paths = list(_commands(command()))
    assert len(paths) > 20
    for path in paths:
        assert run([*path, "--help"]) == 0
        text = capsys.readouterr().out
        assert "Usage:" in text
        shown = re.findall(
            r"<(?:path|str|int|float|bool|list\[.*?\]|dict\[.*?\])>|\bNoneType\b|\bPosixPath\b", text
        )
        assert not shown, f"lsssdc {' '.join(path)} --help shows {shown}"
