# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A release, from order to delivery
#
# This notebook walks one research extract through the whole release flow of `lsssdc`:
#
# 1. **order**: a research project asks for variables and years; the **policy** says what may leave;
# 2. **prepare**: select, pseudonymise, coarsen, measure the risk, suppress, and let the gate decide;
# 3. **read the report**: the verdict, the risk before and after, what was suppressed;
# 4. **approve**: a reviewer signs the candidate's content hash;
# 5. **deliver**: the package is written exactly as approved;
# 6. **verify the ledger**: every step left a signed, hash-chained entry.
#
# **Synthetic data and demo keys only.** The registers below are generated; no real person is
# in them. The key store is opened with a published demo passphrase: never use it for real data.
#
# Everything is written to a temporary folder, and the notebook runs offline in well under a
# minute.

# %%
import json
import shutil
import tempfile
from pathlib import Path

import pandas as pd

import lsssdc
from lsssdc import policy as P
from lsssdc import release
from lsssdc.ledger.chain import Ledger
from lsssdc.errors import DisclosureRefused, LsssdcError
from lsssdc.identity.keystore import KeyStore
from lsssdc.register import files, rules, synth
from lsssdc.release import pipeline
from lsssdc.release.candidate import sha256_file

pd.set_option("display.width", 160)
pd.set_option("display.max_columns", 20)
pd.set_option("display.max_colwidth", 100)

POLICIES = Path(lsssdc.__file__).resolve().parent / "policies"
assert POLICIES.is_dir(), "the shipped policies travel with the package"

WORK = Path(tempfile.mkdtemp(prefix="lsssdc-walkthrough-"))
REGISTERS, CANDIDATES, DELIVERIES, KEYS = (WORK / d for d in ("registers", "work", "delivery", "keys"))
print("working in", WORK)

# %% [markdown]
# ## The registers (synthetic)
#
# Two synthetic LSS registers, each with its companion cause-of-death register: a small one
# (4,000 persons a year, 2010-2023) and one of the real register's size (about 75,000 persons a
# year, 2015-2023). The files are written and read back the way a real release
# reads them, and validated against the register's plausibility rules (F2.5.3). The inputs'
# SHA-256 hashes go into the report and the ledger, so a release always says which version of
# the data it was made from.


# %%
def make_registers(name: str, years: list[int], persons: int, seed: int):
    """Synthesise, write, read back and validate one register and its deaths."""
    result = synth.synthesise(years, persons=persons, seed=seed)
    paths = files.write_registers({"lss": result.register, "deaths": result.deaths}, REGISTERS / name)
    lss, deaths = files.read_register(paths["lss"]), files.read_deaths(paths["deaths"])
    validation = rules.validate(lss, deaths, source=str(paths["lss"]))
    print(
        f"{name}: {len(lss):,} register rows, {len(deaths):,} deaths; "
        f"validation: {validation.errors} errors, {validation.warnings} warnings"
    )
    assert validation.ok
    inputs = [
        pipeline.Input(f"register:{name}/{p.name}", "sha256:" + sha256_file(p), n)
        for p, n in ((paths["lss"], len(lss)), (paths["deaths"], len(deaths)))
    ]
    return lss, deaths, inputs


small, small_deaths, small_inputs = make_registers("small", list(range(2010, 2024)), 4_000, seed=7)
register, deaths, inputs = make_registers("larger", list(range(2015, 2024)), 75_000, seed=8)

# %% [markdown]
# ## Keys and the ledger
#
# The key store holds the pseudonymisation keys (one per project), the audit-index key and the
# signing keys of the actors. It is encrypted with a passphrase and refuses to live next to
# the data. The ledger trusts the actors' public keys from the key store.

# %%
# DEMO ONLY: a published passphrase, so that the notebook runs without questions. A real key
# store has a secret passphrase and lives on its own, away from data and candidates.
from lsssdc.demo import DEMO_PASSPHRASE

print("demo passphrase (public, never for real data):", DEMO_PASSPHRASE)
store = KeyStore.create(
    KEYS / "demo-keys.json", DEMO_PASSPHRASE, apart_from=[REGISTERS, CANDIDATES, DELIVERIES]
)
# each actor's key opens only with that actor's own secret, and each has a role
for actor, role in (("ordering-service", "preparer"), ("reviewer-demo", "reviewer")):
    store.add_signer(actor, f"{DEMO_PASSPHRASE} for {actor}", (role,))
(WORK / "ledger").mkdir()
ledger = Ledger.open(
    WORK / "ledger" / "ledger.sqlite", actor_keys=store.public_keys(), origin="lsssdc-walkthrough"
)
print("signers:", sorted(store.public_keys()))

# %% [markdown]
# ## The order and the policy
#
# An order names a policy. Loading is strict (unknown keys, wrong types and unquoted codes are
# errors with the file and the line), and the order is checked against the policy: anything
# the policy does not allow is refused by name.

# %%
mortality_policy = P.load_policy(POLICIES / "research-with-deaths.yaml")
mortality_order = P.load_order(POLICIES / "orders" / "mortality-2010-2023.yaml")
P.check_order(mortality_order, mortality_policy)

pd.Series(
    {
        "order": mortality_order.order_id,
        "project": mortality_order.project_id,
        "policy": mortality_order.policy,
        "years": f"{min(mortality_order.years)}-{max(mortality_order.years)}",
        "variables": ", ".join(mortality_order.variables),
        "linked": ", ".join(f"{x.register_name}: {', '.join(x.variables)}" for x in mortality_order.linkages),
        "k": mortality_policy.thresholds.k,
        "largest share of records suppressed": f"{mortality_policy.thresholds.max_suppressed_share:.0%}",
        "quasi-identifiers": ", ".join(mortality_policy.quasi_identifiers),
    }
).to_frame("value")

# %% [markdown]
# ## A refusal, on purpose
#
# The mortality order links the year of death. In the small register too many persons have a
# history (their years, age bands, sex, personkrets and year of death) shared by fewer than
# k - 1 others: reaching k would need suppressed values for more records than the policy
# allows. The gate refuses, says why, and the refusal goes on the ledger too. (`lsssdc demo`
# runs the same order on a register of real size, where it passes.)

# %%
prepared = pipeline.prepare(
    mortality_policy,
    mortality_order,
    small,
    keystore=store,
    work_dir=CANDIDATES,
    inputs=small_inputs,
    registers={"deaths": small_deaths},
    ledger=ledger,
    actor="ordering-service",
    policy_path=POLICIES / "research-with-deaths.yaml",
    order_path=POLICIES / "orders" / "mortality-2010-2023.yaml",
)
# prepare returns the candidate it wrote and the report that candidate was rendered from
refused = prepared.candidate
print("verdict:", refused.verdict)
for reason in prepared.report.verdict.reasons:
    print(" -", reason)
assert refused.verdict == "refused"
assert not (refused.path / "data.parquet").exists()  # a refused candidate carries no data

# %%
try:
    release.approve(refused.path, "reviewer-demo", store, ledger)
except DisclosureRefused as exc:
    print("approval refused:", exc.problems[0].render())
else:
    raise AssertionError("a refused candidate must not be approvable")

# %% [markdown]
# ## A releasable order
#
# The daglig verksamhet order asks for no linkage; its policy gives age in bands. It is
# prepared from the register of real size.

# %%
dv_policy_path = POLICIES / "research-standard.yaml"
dv_order_path = POLICIES / "orders" / "daglig-verksamhet-2015-2023.yaml"
dv_policy, dv_order = P.load_policy(dv_policy_path), P.load_order(dv_order_path)
candidate = pipeline.prepare(
    dv_policy,
    dv_order,
    register,
    keystore=store,
    work_dir=CANDIDATES,
    inputs=inputs,
    ledger=ledger,
    actor="ordering-service",
    policy_path=dv_policy_path,
    order_path=dv_order_path,
).candidate
print("candidate:", candidate.path.name, "->", candidate.verdict)
print("content hash:", candidate.content_hash)
assert candidate.verdict == "releasable"

# %% [markdown]
# ## Reading the report
#
# `report.json` and `report.html` are two renderings of the same facts. The reviewer reads
# the HTML; here we read the JSON. First the gate's checks:

# %%
report = json.loads((candidate.path / "report.json").read_text(encoding="utf-8"))
pd.DataFrame(report["verdict"]["checks"])

# %% [markdown]
# Risk is measured on persons, not rows: a class is the set of persons whose released rows over
# all their years are the same (docs/intruder-model.md states the intruder this protects
# against). Before treatment many persons are alone with their history; after treatment every
# class holds at least k persons.

# %%
risk = report["risk"]
figures = ["k", "records_below_k", "sample_uniques", "expected_reidentifications", "max_risk"]
print("quasi-identifiers:", ", ".join(risk["quasi_identifiers"]))
print(risk["intruder"]["statement"])
pd.DataFrame({when: {f: risk[when][f] for f in figures} for when in ("before", "after")}, dtype=object)

# %% [markdown]
# Records by the size of their class (the number of persons they cannot be told apart from):

# %%
sizes = pd.DataFrame({when: risk[when]["class_size_histogram"] for when in ("before", "after")})
sizes.index.name = "persons in the class"
sizes.loc[sorted(sizes.index, key=lambda label: int(label.split("-")[0].rstrip("+")))]

# %% [markdown]
# What the treatment suppressed, per quasi-identifier (always on every row of a person; the
# suppression order names what goes first), how many persons were withheld, and what the
# coarsening did:

# %%
suppression = report["suppression"]
print(
    f"rows with a suppressed value or withheld: {suppression['records']} ({suppression['record_share']:.2%}); "
    f"persons withheld: {suppression['withheld_persons']}; order: {' -> '.join(suppression['order'])}"
)
pd.DataFrame.from_dict(suppression["per_variable"], orient="index")

# %%
pd.DataFrame(report["recodings"])[["source", "variable", "operation", "to_level", "changed", "description"]]

# %%
html = candidate.path / "report.html"
print(f"the reviewer's report: {html} ({html.stat().st_size:,} bytes)")
print("candidate files:", ", ".join(sorted(candidate.manifest["files"])))

# %% [markdown]
# ## Approve
#
# The reviewer signs the candidate's content hash with their own key, on the ledger. The
# ledger, not a file, is what delivery trusts: a signed prepare entry for these bytes, an
# approval by a reviewer who is not the preparer, no rejection, and the bytes on disk unchanged.

# %%
approval = release.approve(candidate.path, "reviewer-demo", store, ledger)
{k: approval[k] for k in ("reviewer", "decision", "order_id", "content_hash", "time")}

# %% [markdown]
# ## Deliver
#
# The package appears in one rename (never half-written), with the data as CSV, Parquet, Stata,
# SPSS and SAS files with their labels (Swedish in the files, English in the Parquet schema and in
# the `.do`, `.sps` and `.sas` files beside them), a codebook, the policy and the order, a Data
# Package descriptor and a SHA-256 manifest.

# %%
delivered = release.deliver(candidate.path, DELIVERIES / dv_order.order_id, store, ledger, "ordering-service")
package = Path(delivered["package"])
pd.DataFrame([(p.name, p.stat().st_size) for p in sorted(package.iterdir())], columns=["file", "bytes"])

# %%
print("\n".join((package / "codebook.md").read_text(encoding="utf-8").splitlines()[:30]))

# %%
data = pd.read_csv(package / "data.csv", dtype=str)
assert "personnummer" not in data.columns
print(f"{len(data):,} rows, columns: {', '.join(data.columns)}")
data.drop(columns=[dv_policy.pseudonymisation.column]).head()

# %% [markdown]
# A `..` in a quasi-identifier (an empty year) is a suppressed value, and the column `suppressed`
# names it: the recipient sees that something was blanked, never what.
#
# ## Verify the ledger
#
# Every prepare, refusal, approval and delivery is one signed entry, chained to the one before
# and summarised by a Merkle tree; `verify` recomputes all of it. A checkpoint signed by the
# ordering service pins the ledger's size and root.

# %%
pd.DataFrame(
    [
        {
            "seq": e.seq,
            "kind": e.kind,
            "actor": e.actor,
            "order": e.payload.get("order_id"),
            "verdict": e.payload.get("verdict", ""),
            "hash": e.hash[:16] + "...",
        }
        for e in ledger.entries()
    ]
)

# %%
checkpoint = ledger.checkpoint(store.get_signing_key("ordering-service"))
checkpoint.write(WORK / "ledger" / "checkpoint.json")
verified = ledger.verify()
print("ledger verified:", verified.ok, "| entries:", verified.size, "| root:", verified.root[:16] + "...")
assert verified.ok

# %% [markdown]
# ## Tampering is caught
#
# Change one byte of the approved candidate's data and try to deliver it again: the content
# hash no longer matches what the reviewer signed, so delivery refuses, writes nothing and adds
# nothing to the ledger.

# %%
data_file = candidate.path / "data.parquet"
raw = bytearray(data_file.read_bytes())
raw[len(raw) // 2] ^= 0x01
data_file.write_bytes(bytes(raw))

entries_before = verified.size
second = DELIVERIES / (dv_order.order_id + "-again")
try:
    release.deliver(candidate.path, second, store, ledger, "ordering-service")
except LsssdcError as exc:
    print(f"delivery refused ({exc.kind}):", exc.problems[0].render())
else:
    raise AssertionError("a changed candidate must not be delivered")
assert not second.exists()
after = ledger.verify()
assert after.ok and after.size == entries_before
print("ledger still verifies with", after.size, "entries")

# %%
ledger.close()
shutil.rmtree(WORK)
