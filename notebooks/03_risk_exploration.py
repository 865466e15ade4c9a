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
# # Risk against information: k, l and coarsening
#
# A person in an extract can be found by what an outsider may know about them: age, sex,
# kommun, personkrets (the **quasi-identifiers**). The policy asks that every combination of
# those be shared by at least **k** persons, and (for a **sensitive** variable such as
# personlig assistans) that a group shows at least **l** different values. Two tools get there:
#
# - **coarsening** (age in bands, kommun to län): every person loses some detail;
# - **local suppression** (blanking single values): a few persons lose one value each.
#
# This notebook shows how the choice of k, of the age bands and of the geographic level moves
# the risk and the cost. The figures come from `lsssdc.disclosure` (`measure`,
# `suppress_locally`, `generalise`); the plots use matplotlib's Agg backend, so the notebook
# runs without a display. **Synthetic data only**, one year of 20,000 persons (the real
# register holds about 75,000 a year: smaller data are riskier, which makes the effects easy
# to see).

# %%
import shutil
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Image, display

import lsssdc
from lsssdc import coarsen as C
from lsssdc import policy as P
from lsssdc.disclosure import Criteria, generalise, measure, suppress_locally
from lsssdc.register import synth
from lsssdc.release.extract import derive

pd.set_option("display.width", 160)
POLICIES = Path(lsssdc.__file__).resolve().parent / "policies"
FIGURES = Path(tempfile.mkdtemp(prefix="lsssdc-risk-"))


def show(fig: plt.Figure, name: str) -> None:
    """Save a figure as PNG (fixed metadata, so the same figure gives the same bytes) and show it."""
    path = FIGURES / f"{name}.png"
    fig.savefig(path, dpi=100, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    display(Image(filename=str(path)))


# %% [markdown]
# ## The data and the policy's choices
#
# Age and sex are derived from the personnummer, which is then dropped: risk is measured on the
# quasi-identifiers only. The policy `research-standard` bands age, coarsens kommun to län, and
# sets k and the largest share of records that may be suppressed (printed below).

# %%
policy = P.load_policy(POLICIES / "research-standard.yaml")
K, MAX_SHARE = policy.thresholds.k, policy.thresholds.max_suppressed_share
POLICY_BANDS = C.AgeBands(policy.hierarchies.age.cuts, open_top=policy.hierarchies.age.open_top)

people = derive(synth.synthesise([2023], persons=20_000, seed=3).register)
people = people[["age", "sex", "kommun", "personkrets", "personlig_assistans"]].reset_index(drop=True)
people["age_band"] = C.band_ages(people["age"], POLICY_BANDS).values
for level in ("lan", "kommungrupp", "riket"):
    people[level] = C.recode_kommun(people["kommun"], level).values
people["kommun_merged"] = C.merge_small_kommuner(people["kommun"], C.MergeSmallKommuner(20_000)).values
print(
    f"{len(people):,} records; policy: k = {K}, at most {MAX_SHARE:.0%} suppressed; "
    f"bands {', '.join(POLICY_BANDS.labels)}"
)
people.drop(columns=["kommun_merged", "riket"]).head()


# %%
def assess(
    df: pd.DataFrame, qis: list[str], k: int, l_div: int | None = None, missing_weight: int = 1
) -> dict:
    """Risk before treatment, and what local suppression must blank to reach k (and l)."""
    sensitive = ["personlig_assistans"] if l_div else []
    criteria = Criteria(
        k=k, l_diversity=l_div, sensitive=sensitive, max_suppressed_share=1.0, missing_weight=missing_weight
    )
    before = measure(df, qis, criteria)
    _, done = suppress_locally(df, qis, criteria)
    return {
        "combinations": before.combinations,
        "uniques": before.sample_uniques,
        "below k": before.records_below_k,
        "below l": sum(before.records_below_l.values()),
        "share below k": before.records_below_k / len(df),
        "share suppressed": done.records_suppressed_share,
        "values suppressed": sum(done.suppressed_values.values()),
        "k after": done.after.k,
    }


QIS = ["age_band", "sex", "lan", "personkrets"]

# %% [markdown]
# ## Raising k
#
# With the policy's coarsening fixed, a higher k leaves more persons in too small a class, and
# local suppression must blank more values. The dashed line is the policy's limit on the share
# of records with a suppressed value: beyond it the release would be refused.

# %%
by_k = pd.DataFrame.from_dict({k: assess(people, QIS, k) for k in range(2, 11)}, orient="index")
by_k.index.name = "k"
by_k[["combinations", "below k", "share below k", "share suppressed", "values suppressed", "k after"]]

# %%
fig, ax = plt.subplots(figsize=(7, 3.8))
ax.plot(by_k.index, 100 * by_k["share below k"], marker="o", label="records below k before treatment")
ax.plot(by_k.index, 100 * by_k["share suppressed"], marker="s", label="records with a suppressed value")
ax.axhline(100 * MAX_SHARE, color="grey", linestyle="--", label="policy limit")
ax.set_xlabel("k")
ax.set_ylabel("% of records")
ax.set_title("Age bands, sex, län, personkrets")
ax.legend()
show(fig, "k")
assert (by_k["k after"] >= by_k.index).all()
assert by_k["below k"].is_monotonic_increasing

# %% [markdown]
# ## Wider age bands, and what a blank means
#
# Age in single years is close to an identifier; bands of 5, 10 or 20 years merge classes.
# Here k is the policy's and the other quasi-identifiers stay as they are. The information
# cost is measured with the loss metric (Iyengar's LM): a value generalised to a band that
# covers g of the G ages seen costs (g - 1) / (G - 1), a suppressed value costs 1, and LM is
# the mean over records and quasi-identifiers (0: nothing lost, 1: everything blanked).
#
# How much must be blanked depends on how a blank is read. By default (`missing_weight=1`,
# sdcMicro's alpha = 1) a blanked age may be *any* age, so it counts in the class of every
# record it could match: a few hundred blanked ages then vouch for everybody, and single years
# look cheap. The stricter reading (`missing_weight=0`) lets a blank widen only its own
# record's class. Under it, fine detail needs far more suppression, and wider bands are what
# make k affordable.


# %%
def age_loss(bands: C.AgeBands | None, missing_weight: int) -> float:
    """LM of the release at these bands, after local suppression to reach k."""
    levels = [bands] if bands is not None else []
    hierarchies = [
        C.age_hierarchy("age", *levels),
        C.identity_hierarchy("sex"),
        C.identity_hierarchy("lan"),
        C.identity_hierarchy("personkrets"),
    ]
    fixed = {"age": len(levels)}
    criteria = Criteria(k=K, max_suppressed_share=1.0, missing_weight=missing_weight)
    _, rep = generalise(
        people, hierarchies, criteria, min_levels=fixed, max_levels=fixed, suppression="local"
    )
    return rep.utility["loss_metric"]


schemes = {
    "1 year": None,
    **{f"{w} years": C.AgeBands.of_width(w, 80) for w in (2, 5, 10, 20)},
    "policy": POLICY_BANDS,
}
rows = {}
for label, bands in schemes.items():
    frame = people.assign(age_band=C.band_ages(people["age"], bands).values if bands else people["age"])
    default, strict = assess(frame, QIS, K), assess(frame, QIS, K, missing_weight=0)
    rows[label] = {
        "combinations": default["combinations"],
        "below k": default["below k"],
        "suppressed (blank = any)": default["share suppressed"],
        "suppressed (strict)": strict["share suppressed"],
        "LM (blank = any)": age_loss(bands, 1),
        "LM (strict)": age_loss(bands, 0),
    }
by_width = pd.DataFrame.from_dict(rows, orient="index")
by_width

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
x = range(len(by_width))
for ax, what in zip(axes, ("suppressed", "LM"), strict=True):
    ax.bar(
        [i - 0.2 for i in x], 100 * by_width[f"{what} (blank = any)"], width=0.4, label="a blank is any value"
    )
    ax.bar([i + 0.2 for i in x], 100 * by_width[f"{what} (strict)"], width=0.4, label="strict")
    ax.set_xticks(list(x), by_width.index, rotation=30, ha="right")
axes[0].axhline(100 * MAX_SHARE, color="grey", linestyle="--", label="policy limit")
axes[0].set_title(f"records with a suppressed value at k = {K} (%)")
axes[1].set_title("information loss LM (%)")
axes[0].legend()
show(fig, "age_bands")
assert by_width.loc["20 years", "below k"] < by_width.loc["1 year", "below k"]
assert (by_width["suppressed (strict)"] >= by_width["suppressed (blank = any)"] - 1e-12).all()

# %% [markdown]
# ## Kommun, kommungrupp or län
#
# 290 kommuner make many small classes; merging kommuner under 20,000 inhabitants into the
# rest of their län helps; the 21 län or SKR's kommungrupper (9 groups of similar kommuner,
# spread over the whole country) help more. Riket drops geography altogether.

# %%
levels = {
    "kommun": "kommun",
    "kommun, small merged": "kommun_merged",
    "län": "lan",
    "kommungrupp": "kommungrupp",
    "riket": "riket",
}
by_geo = pd.DataFrame.from_dict(
    {
        name: assess(people, ["age_band", "sex", column, "personkrets"], K)
        | {"units": people[column].nunique()}
        for name, column in levels.items()
    },
    orient="index",
)
by_geo[["units", "combinations", "uniques", "below k", "share suppressed"]]

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
axes[0].bar(range(len(by_geo)), 100 * by_geo["share below k"], color="tab:orange")
axes[0].set_title(f"records below k = {K} (%)")
axes[1].bar(range(len(by_geo)), 100 * by_geo["share suppressed"], color="tab:blue")
axes[1].axhline(100 * MAX_SHARE, color="grey", linestyle="--", label="policy limit")
axes[1].set_title("records with a suppressed value (%)")
axes[1].legend()
for ax in axes:
    ax.set_xticks(range(len(by_geo)), by_geo.index, rotation=30, ha="right")
show(fig, "geography")
assert by_geo.loc["län", "share suppressed"] < by_geo.loc["kommun", "share suppressed"]

# %% [markdown]
# ## l-diversity: a group must not give away the sensitive value
#
# k protects against finding a person; it does not stop an outsider learning something when
# everyone in a class shares the sensitive value. With l = 2 for personlig assistans, every
# class must hold persons with and without it. Few persons have personlig assistans, so
# l = 2 costs much more than k alone.

# %%
by_l = pd.DataFrame.from_dict(
    {
        name: assess(people, ["age_band", "sex", column, "personkrets"], K, l_div=2)
        for name, column in levels.items()
        if column != "riket"
    },
    orient="index",
)
pd.concat(
    {
        "k only": by_geo.loc[by_l.index, ["share suppressed"]],
        f"k = {K} and l = 2": by_l[["below l", "share suppressed"]],
    },
    axis=1,
)

# %% [markdown]
# ## Letting the search choose
#
# `generalise` searches the lattice of levels (age: years, 5-, 10-, 20-year bands; kommun:
# kommun, small ones merged, län, riket) for the combination with the least information loss
# that meets k with at most the policy's share of records suppressed. As k grows the search
# moves up the lattice.

# %%
age_levels = {C.AgeBands.of_width(w, 80): f"{w}-year bands" for w in (5, 10, 20)}
level_names = {"as_is": "as it is", C.MergeSmallKommuner(20_000).name: "small kommuner merged"}
level_names |= {bands.name: label for bands, label in age_levels.items()}
hierarchies = [
    C.age_hierarchy("age", *age_levels),
    C.identity_hierarchy("sex"),
    C.kommun_hierarchy("kommun", C.MergeSmallKommuner(20_000), "lan", "riket"),
    C.identity_hierarchy("personkrets"),
]
chosen = {}
for k in range(2, 11):
    _, rep = generalise(people, hierarchies, Criteria(k=k, max_suppressed_share=MAX_SHARE))
    levels_chosen = rep.to_dict()["chosen"]["levels"]
    chosen[k] = {
        "age": level_names.get(levels_chosen["age"]["name"], levels_chosen["age"]["name"]),
        "kommun": level_names.get(levels_chosen["kommun"]["name"], levels_chosen["kommun"]["name"]),
        "suppressed": rep.records_suppressed,
        "loss (LM)": round(rep.utility["loss_metric"], 4),
        "nodes measured": rep.evaluated,
    }
search = pd.DataFrame.from_dict(chosen, orient="index")
search.index.name = "k"
search

# %%
fig, ax = plt.subplots(figsize=(7, 3.8))
ax.plot(search.index, search["loss (LM)"], marker="o")
ax.set_xlabel("k")
ax.set_ylabel("information loss (LM)")
ax.set_title(f"Least-loss generalisation, at most {MAX_SHARE:.0%} suppressed")
show(fig, "lattice")
assert search["loss (LM)"].is_monotonic_increasing

# %% [markdown]
# ## What to take from this
#
# - Each step of k costs a little; the policy's limit on suppression is what turns "costly"
#   into "refused".
# - Geography is the strongest lever: kommun is far riskier than anything coarser, and
#   merging the small kommuner already removes much of the risk.
# - Single years of age look cheap only when a blank counts for everybody (the default
#   reading). Under the strict reading, bands of five to ten years lose the least.
# - l-diversity on a rare sensitive value is expensive: ask for it where the value is
#   sensitive, not by default.

# %%
shutil.rmtree(FIGURES)
