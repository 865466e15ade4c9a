"""`lsssdc audit list` and `audit person` on a ledger the release workflow wrote (prepare,
approve, deliver), not on payloads a test wrote: each delivery names its order, project and
package, and a person is found in exactly the deliveries that held them."""

from __future__ import annotations

import io
import json
import sys

import pandas as pd

from lsssdc.cli import run
from tests.release.conftest import PASSPHRASE, Release


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = run(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_list_and_person_name_order_project_and_delivery(
    linked_release: Release, capsys, monkeypatch
) -> None:
    r = linked_release
    manifest = json.loads((r.candidate / "candidate.json").read_text(encoding="utf-8"))
    order_id, project_id = manifest["order_id"], manifest["project_id"]
    package = r.package.name

    code, out, err = _run(["audit", "list", "-l", str(r.ledger), "--kind", "deliver"], capsys)
    assert code == 0, err
    lines = [x for x in out.splitlines() if " deliver " in x]
    assert len(lines) == 1
    assert f"order={order_id}" in lines[0] and f"project={project_id}" in lines[0]
    assert f"delivery={package}" in lines[0]
    code, out, err = _run(["audit", "list", "-l", str(r.ledger), "--json"], capsys)
    assert code == 0, err
    kinds = [e["kind"] for e in json.loads(out)]
    assert kinds[-3:] == ["prepare", "approve", "deliver"]

    # who was delivered: the persons of the delivered rows, by the keyed tags the package holds;
    # the register's persons are asked about one a line (never on the command line)
    persons = pd.unique(r.register.register["personnummer"]).tolist()
    monkeypatch.setenv("LSSSDC_PASSPHRASE", PASSPHRASE)
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(persons) + "\n"))
    key_store = r.keystore.path
    code, out, err = _run(
        ["audit", "person", "-l", str(r.ledger), "--key-store", str(key_store), "--json"], capsys
    )
    assert code == 0, err
    answers = json.loads(out)
    assert len(answers) == len(persons)
    found = [d for a in answers for d in a["deliveries"]]
    held = sum(1 for a in answers if a["deliveries"])
    summary = json.loads((r.candidate / "metadata.json").read_text(encoding="utf-8"))["person_index"]
    assert held == summary["persons"] > 0  # every delivered person, and nobody else
    assert {(d["order"], d["project"], d["delivery"]) for d in found} == {(order_id, project_id, package)}
    for text in (out, err):
        assert not any(p in text for p in persons[:500])
