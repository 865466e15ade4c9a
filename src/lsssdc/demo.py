"""The whole flow on synthetic data with demo keys: what `lsssdc demo` runs.

DEMO KEYS ONLY: the key store is created with a fixed, published passphrase so that the demo
runs without questions. Never use it for real data.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lsssdc import policy as P
from lsssdc import release, shipped
from lsssdc.errors import InputDataError, Problem
from lsssdc.identity.keystore import KeyStore
from lsssdc.ledger.chain import Ledger
from lsssdc.register import files, population, rules, synth
from lsssdc.release import pipeline
from lsssdc.release.candidate import sha256_file

DEMO_PASSPHRASE = "lsssdc-demo-passphrase-NOT-A-SECRET"
DEMO_POLICY = "research-with-deaths"
DEMO_ORDER = "mortality-2010-2023"


@dataclass
class DemoResult:
    registers: Path
    validation: rules.ValidationReport
    candidate: Path
    verdict: str
    report: Path
    package: Path | None
    ledger: Path
    key_store: Path
    ledger_ok: bool


#: The file that marks a folder as a demo's own; only such a folder is ever cleared.
MARKER = ".lsssdc-demo"
#: What the demo writes into its folder; nothing else there is ever removed.
_WRITES = ("registers", "work", "delivery", "keys", "ledger", MARKER)


def _fresh_out(out: Path) -> Path:
    """Make ``out`` ready for a demo without deleting anything the demo did not write.

    A new or empty folder is used as it is; an earlier demo's folder (it holds the marker
    file and nothing but what a demo writes) is cleared; anything else is refused.
    """
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise InputDataError(
            Problem(
                "demo_out",
                "is not a folder (or is a symbolic link); give a new or empty folder",
                file=str(out),
            )
        )
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise InputDataError(
                Problem(
                    "demo_out",
                    f"the folder is not empty and is not an earlier demo's (no {MARKER} file); nothing was changed",
                    file=str(out),
                    hint="give a new or empty folder with --out",
                )
            )
        foreign = sorted(p.name for p in out.iterdir() if p.name not in _WRITES)
        if foreign:
            raise InputDataError(
                Problem(
                    "demo_out",
                    "an earlier demo's folder that now also holds files the demo did not write: "
                    + ", ".join(foreign[:10])
                    + "; nothing was changed",
                    file=str(out),
                    hint="move them away or give another folder with --out",
                )
            )
        for name in _WRITES:
            target = out / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text(
        "This folder was written by `lsssdc demo` (synthetic data, demo keys); a later demo may clear it.\n",
        encoding="utf-8",
    )
    return out


def run(
    out: Path, years: list[int], persons: int, seed: int = 0, say: Callable[[str], None] = print
) -> DemoResult:
    """Synthesise, validate, prepare, approve, deliver and verify, in ``out``."""
    out = _fresh_out(Path(out))
    regs, work, delivery, keys = out / "registers", out / "work", out / "delivery", out / "keys"
    say("SYNTHETIC DATA AND DEMO KEYS ONLY - no real person is in these files; never use the demo key store.")
    result = synth.synthesise(years, persons=persons, seed=seed)
    paths = files.write_registers({"lss": result.register, "deaths": result.deaths}, regs, "parquet")
    say(f"synthesised {len(result.register)} register rows and {len(result.deaths)} deaths -> {regs}")
    register = files.read_register(paths["lss"])
    deaths = files.read_deaths(paths["deaths"])
    validation = rules.validate(register, deaths, source=str(paths["lss"]))
    say(f"validated: {validation.errors} errors, {validation.warnings} warnings")
    pop_path = population.write(population.synthesise(years), regs / "population.parquet")
    pop = population.read(pop_path)
    say(f"synthetic population table (folkmängd per kommun, sex, age) -> {pop_path}")

    store = KeyStore.create(keys / "demo-keys.json", DEMO_PASSPHRASE, apart_from=[regs, work, delivery])
    # a key custodian first; every other actor is added by the custodian
    store.add_signer("key-custodian", f"{DEMO_PASSPHRASE} for key-custodian", ("custodian",))
    for name, role in (("ordering-service", "preparer"), ("reviewer-demo", "reviewer")):
        store.add_signer(name, f"{DEMO_PASSPHRASE} for {name}", (role,), by="key-custodian")
    ledger_path = out / "ledger" / "ledger.sqlite"
    ledger_path.parent.mkdir(parents=True, exist_ok=True)
    book = Ledger.open(ledger_path, actor_keys=store.public_keys(), origin="lsssdc-demo-ledger")
    policy_path, order_path = shipped.resolve(DEMO_POLICY, "policy"), shipped.resolve(DEMO_ORDER, "order")
    pol, order = P.load_policy(policy_path), P.load_order(order_path)
    inputs = [
        pipeline.Input(f"register:{p.name}", "sha256:" + sha256_file(p), n)
        for p, n in ((paths["lss"], len(register)), (paths["deaths"], len(deaths)), (pop_path, len(pop)))
    ]
    cand = pipeline.prepare(
        pol,
        order,
        register,
        keystore=store,
        work_dir=work,
        inputs=inputs,
        registers={"deaths": deaths},
        ledger=book,
        actor="ordering-service",
        policy_path=policy_path,
        order_path=order_path,
        population=pop,
    ).candidate
    say(f"prepared candidate {cand.path}: {cand.verdict}")
    say(f"reviewer report: {cand.path / 'report.html'}")
    package = None
    if cand.verdict == "releasable":
        release.approve(cand.path, "reviewer-demo", store, book)
        say("approved by reviewer-demo (demo key)")
        done = release.deliver(cand.path, delivery / order.order_id, store, book, "ordering-service")
        package = Path(done["package"])
        say(f"delivered package: {package}")
    book.checkpoint(store.get_signing_key("ordering-service")).write(out / "ledger" / "checkpoint.json")
    verified = book.verify()
    book.close()
    say(f"audit ledger: {ledger_path} ({'verified' if verified.ok else 'VERIFY FAILED'})")
    return DemoResult(
        regs,
        validation,
        cand.path,
        cand.verdict,
        cand.path / "report.html",
        package,
        ledger_path,
        keys / "demo-keys.json",
        verified.ok,
    )
