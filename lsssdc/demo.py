"""The whole flow on synthetic data with demo keys: what `lsssdc demo` runs.

DEMO KEYS ONLY: the key store is created with a fixed, published passphrase so that the demo
runs without questions. Never use it for real data.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from lsssdc import policy as P
from lsssdc import release
from lsssdc.audit.ledger import Ledger
from lsssdc.identity.keystore import KeyStore
from lsssdc.register import files, rules, synth
from lsssdc.release import pipeline
from lsssdc.release.candidate import sha256_file

DEMO_PASSPHRASE = "lsssdc-demo-passphrase-NOT-A-SECRET"
DEMO_POLICY = "research-with-deaths.yaml"
DEMO_ORDER = "mortality-2010-2023.yaml"


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


def _policies_dir() -> Path:
    """The shipped policies (the repository's policies/ folder)."""
    here = Path(__file__).resolve().parent.parent / "policies"
    if here.is_dir():
        return here
    return Path(str(resources.files("lsssdc") / "policies"))


def run(
    out: Path, years: list[int], persons: int, seed: int = 0, say: Callable[[str], None] = print
) -> DemoResult:
    """Synthesise, validate, prepare, approve, deliver and verify, in ``out``."""
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    regs, work, delivery, keys = out / "registers", out / "work", out / "delivery", out / "keys"
    say("SYNTHETIC DATA AND DEMO KEYS ONLY - no real person is in these files; never use the demo key store.")
    result = synth.synthesise(years, persons=persons, seed=seed)
    paths = files.write_registers({"lss": result.register, "deaths": result.deaths}, regs, "parquet")
    say(f"synthesised {len(result.register)} register rows and {len(result.deaths)} deaths -> {regs}")
    register = files.read_register(paths["lss"])
    deaths = files.read_deaths(paths["deaths"])
    validation = rules.validate(register, deaths, source=str(paths["lss"]))
    say(f"validated: {validation.errors} errors, {validation.warnings} warnings")

    store = KeyStore.create(keys / "demo-keys.json", DEMO_PASSPHRASE, apart_from=[regs, work, delivery])
    for name in ("ordering-service", "reviewer-demo"):
        store.add_signer(name)
    ledger_path = out / "ledger" / "ledger.sqlite"
    ledger_path.parent.mkdir(parents=True, exist_ok=True)
    book = Ledger.open(ledger_path, actor_keys=store.public_keys(), origin="lsssdc-demo-ledger")
    pdir = _policies_dir()
    policy_path, order_path = pdir / DEMO_POLICY, pdir / "orders" / DEMO_ORDER
    pol, order = P.load_policy(policy_path), P.load_order(order_path)
    inputs = [
        pipeline.Input(f"register:{p.name}", "sha256:" + sha256_file(p), n)
        for p, n in ((paths["lss"], len(register)), (paths["deaths"], len(deaths)))
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
    )
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
