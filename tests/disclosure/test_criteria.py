"""The registry of privacy criteria: every rule a policy may set has one entry, and what each
declares of itself (monotone or not) holds of the data: a coarsening never makes a monotone
rule fail for a record that met it, and the one declared not monotone has a counterexample."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from lsssdc.disclosure import risk
from lsssdc.disclosure.criteria import REGISTRY, Criteria, DistinctL, EntropyL, KAnonymity
from lsssdc.errors import Problem


def test_every_rule_field_has_one_registry_entry() -> None:
    rule_fields = {f.name for f in dataclasses.fields(Criteria)} - {
        "sensitive",
        "max_suppressed_share",
        "missing_weight",
    }
    assert set(REGISTRY) == rule_fields
    c = Criteria(k=3, l_diversity=2, entropy_l=1.5, sensitive=("s", "t"))
    rules = c.rules()
    assert {r.name for r in rules} == set(REGISTRY)
    assert sum(isinstance(r, DistinctL) for r in rules) == 2 == sum(isinstance(r, EntropyL) for r in rules)
    assert not c.monotone and Criteria(k=3, l_diversity=2, sensitive=("s",)).monotone
    # the rules on classes first, then each sensitive attribute's rules together
    assert [(r.name, getattr(r, "attribute", None)) for r in rules] == [
        ("k", None),
        ("l_diversity", "s"),
        ("entropy_l", "s"),
        ("l_diversity", "t"),
        ("entropy_l", "t"),
    ]


@dataclasses.dataclass(frozen=True)
class _AtLeastTwoValues:
    """A criterion of the test's own: every class shows at least two values of ``s``."""

    name = "two_values"
    monotone = True
    about_sensitive = True
    attribute: str = "s"

    def failing(self, risk_: risk.ComboRisk) -> np.ndarray:
        return risk_.distinct[self.attribute] < 2

    def problem(self, records: int, report: risk.RiskReport) -> Problem:
        return Problem("two_values", f"{records} records see one value", row_count=records)


def test_a_criterion_added_to_the_registry_is_enforced_everywhere(monkeypatch) -> None:
    from lsssdc.disclosure import criteria

    monkeypatch.setitem(criteria.REGISTRY, "two_values", lambda c, sensitive: (_AtLeastTwoValues(),))
    df = _frame([(0, 0, 1), (0, 0, 1), (0, 0, 1), (1, 0, 1), (1, 0, 2), (1, 0, 3)])
    crit = Criteria(k=2, sensitive=("s",))
    report = risk.measure(df, ["a", "b"], crit)
    # the release's verdict and the treatments' notion of unsafe both see it
    assert [p.code for p in report.problems()] == ["two_values"] and not report.satisfied
    assert report.problems()[0].row_count == 3
    assert report.unsafe().tolist() == [True, True, True, False, False, False]
    assert crit.unsafe(report.per_combo, sensitive_only=True).any()


def _frame(draw_rows: list[tuple[int, int, int]]) -> pd.DataFrame:
    df = pd.DataFrame(draw_rows, columns=["a", "b", "s"])
    return df.astype({"a": "string", "b": "string", "s": "string"})


rows = st.lists(st.tuples(st.integers(0, 7), st.integers(0, 2), st.integers(0, 3)), min_size=1, max_size=60)


@given(rows, st.integers(1, 5), st.integers(1, 4))
@settings(max_examples=60, deadline=None)
def test_a_monotone_rule_never_fails_a_record_after_coarsening(data, k, ell) -> None:
    fine = _frame(data)
    coarse = fine.assign(a=(fine["a"].astype(int) // 2).astype("string"))  # a merge of categories
    crit = Criteria(k=k, l_diversity=ell, sensitive=("s",))
    before, after = risk.measure(fine, ["a", "b"], crit), risk.measure(coarse, ["a", "b"], crit)
    for rule in crit.rules():
        assert rule.monotone
        was = rule.failing(before.per_combo)[before.combos.of_row]
        now = rule.failing(after.per_combo)[after.combos.of_row]
        assert not (now & ~was).any(), rule  # no record newly fails
    # the rules agree with the figures an independent count gives
    size = fine.groupby(["a", "b"])["s"].transform("size").to_numpy()
    distinct = fine.groupby(["a", "b"])["s"].transform("nunique").to_numpy()
    assert np.array_equal(KAnonymity(k).failing(before.per_combo)[before.combos.of_row], size < k)
    assert np.array_equal(DistinctL("s", ell).failing(before.per_combo)[before.combos.of_row], distinct < ell)


def test_entropy_l_is_declared_not_monotone_because_a_merge_can_fail_a_record() -> None:
    # class a=0 holds two values evenly (entropy l = 2); merged with a=1, which holds one value
    # twenty times, the mixture is skewed: a record that met entropy l = 1.8 no longer does
    data = [(0, 0, 0), (0, 0, 1)] + [(1, 0, 2)] * 20
    fine = _frame(data)
    coarse = fine.assign(a="0")
    rule = EntropyL("s", 1.8)
    assert not rule.monotone
    crit = Criteria(entropy_l=1.8, sensitive=("s",))
    before, after = risk.measure(fine, ["a", "b"], crit), risk.measure(coarse, ["a", "b"], crit)
    was = rule.failing(before.per_combo)[before.combos.of_row]
    now = rule.failing(after.per_combo)[after.combos.of_row]
    assert not was[0] and now[0]
