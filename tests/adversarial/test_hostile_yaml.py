"""Hostile policy and order files: refused as input problems (exit 2) quickly, never expanded."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import pytest

from lsssdc.cli import run
from lsssdc.errors import PolicyError
from lsssdc.policy import load_order, load_policy

BOMB = "\n".join(
    ["a: &a [x, x, x, x, x, x, x, x, x]"]
    + [f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]" for i in range(8)]
)

CASES = {
    "alias bomb": "policy_version: 1\n" + BOMB + "\n",
    "python tag": "policy_version: 1\nname: !!python/object/apply:os.system ['true']\n",
    "custom tag": "policy_version: 1\nname: !secret x\n",
    "binary tag": "policy_version: 1\nname: !!binary aGVsbG8=\n",
    "huge number": "policy_version: 1\nthresholds:\n  k: " + "9" * 5000 + "\n",
    "deep nesting": "policy_version: 1\nx: " + "[" * 200 + "]" * 200 + "\n",
    "long value": "policy_version: 1\nname: " + "a" * 100_000 + "\n",
    "merge key": "policy_version: 1\nbase: &b {k: 5}\nthresholds:\n  <<: *b\n",
    "bare merge key": "policy_version: 1\nthresholds:\n  <<: {k: 5}\n",
    "impossible date": "policy_version: 1\nname: 2023-02-30\n",
    "bare value key": "policy_version: 1\n=: 2\n",
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("loader", [load_policy, load_order])
def test_hostile_yaml_is_refused_fast(tmp_path: Path, case: str, loader) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_text(CASES[case], encoding="utf-8")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.process_time()
    with pytest.raises(PolicyError) as info:
        loader(path)
    assert time.process_time() - started < 2.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 200_000  # KiB
    assert info.value.exit_code == 2
    assert all(p.file == str(path) for p in info.value.problems)


def test_a_file_over_the_size_bound_is_not_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    with path.open("w", encoding="utf-8") as fh:
        fh.write("policy_version: 1\n# " + "x" * (64 << 20) + "\n")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert "larger than" in str(info.value)


def test_the_cli_says_one_clear_thing_and_exits_2(tmp_path: Path, capsys) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(CASES["alias bomb"], encoding="utf-8")
    assert run(["policy", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "aliases" in err and str(path) in err and "internal error" not in err


@pytest.mark.parametrize("rule", ["  p_percent: 100\n", "  dominance: {n: 1, k: 100}\n"])
def test_a_policy_whose_table_rule_cannot_hold_is_refused_at_the_check(tmp_path: Path, capsys, rule) -> None:
    # an insider's policy that looks strict but protects nothing (a p% or dominance share of
    # 100 %): refused by `policy check`, naming the file and line, before any table is made
    path = tmp_path / "lax.yaml"
    text = "policy_version: 1\nname: lax\nallowed_variables: [year, kommun, insats]\nthresholds:\n" + rule
    path.write_text(text, encoding="utf-8")
    assert run(["policy", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and ":5" in err and "Traceback" not in err and "internal error" not in err
