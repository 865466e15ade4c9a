"""Adversarial tests: each tries to break one guarantee the way THREATS.md's attacker would.

The checks here read what an attacker ends up holding (files on disk, the raw SQLite ledger)
with code of their own; they never call the functions whose guarantee they test to decide
whether the attack worked.
"""

from pathlib import Path

import pytest

from tests.conftest import ACTOR_SECRET
from tests.release.conftest import (
    CUSTODIAN,
    DAGLIG,
    make_keystore,
    open_ledger,
    order_path,
    policy_path,
    prepare_order,
    small,  # noqa: F401 - the shared synthetic register fixture
)

SIGNERS = ("ordering-service", "reviewer-a", "reviewer-b")


@pytest.fixture
def site(tmp_path: Path, small) -> dict:  # noqa: F811 - the fixture, by name
    """A work area with a key store, a ledger and one releasable candidate prepared on it."""
    store = make_keystore(tmp_path / "keys" / "k.json", SIGNERS)
    # the ordering service also holds the reviewer role: only the ledger's four-eyes rule stops it
    store.add_signer("preparer-reviewer", ACTOR_SECRET, ("preparer", "reviewer"), by=CUSTODIAN)
    book = open_ledger(tmp_path / "ledger" / "ledger.sqlite", store)
    cand = prepare_order(small, policy_path(DAGLIG[0]), order_path(DAGLIG[1]), store, tmp_path / "work", book)
    assert cand.verdict == "releasable"
    yield {"root": tmp_path, "store": store, "ledger": book, "cand": cand.path, "small": small}
    book.close()
