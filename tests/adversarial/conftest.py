"""Adversarial tests: each tries to break one guarantee the way THREATS.md's attacker would.

The checks here read what an attacker ends up holding (files on disk, the raw SQLite ledger)
with code of their own; they never call the functions whose guarantee they test to decide
whether the attack worked.
"""

from tests.release.conftest import small  # noqa: F401 - the shared synthetic register fixture
