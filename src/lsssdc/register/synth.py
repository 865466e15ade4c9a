"""Synthetic LSS register and companion registers: realistic, seeded, no real person.

The generator simulates a population of persons followed year by year: each year some leave
(the insats ends, they move away, or they die) and new persons enter, mostly young persons in
personkrets 1. Insatser come from each person's stable propensities and the age the person
turns that year, so a person keeps an insats for years and moves from korttidstillsyn to daglig
verksamhet as they grow up. Kommun sizes follow SCB's population (2023) and the codes follow
the division of each year (Knivsta inside Uppsala before 2003, Heby 1917 before 2007).

Calibration targets (published, see ``lsssdc/refdata/data/lss_marginals.md``): persons per
10,000 by personkrets, age group and sex (1 October 2021) and persons by insats (2021). The
population shares by age used to turn those rates into counts are rounded from SCB's 2021
population and are an approximation stated here, not a published table.

Personnummer are drawn at random (valid date, birth number and check digit; about 1 % are
samordningsnummer). They are unique within one synthesis. Any coincidence with a real
person's number is chance: no attribute of a real person is used.

By default the register breaks no error rule (it has the warnings real data have: hours above
the pre-2021 warning limits). ``inject`` adds an exact number of violations per rule.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lsssdc import refdata
from lsssdc.identity.personnummer import luhn_check_digit
from lsssdc.register import variables as V

DEFAULT_YEARS = tuple(range(1999, 2025))
DEFAULT_PERSONS = 75_000

# Age groups of the published rates (lower bounds) and rounded population shares (SCB 2021).
_AGE_LO = np.array([0, 20, 45, 65, 80])
_AGE_HI = np.array([19, 44, 64, 79, 99])
_POP_SHARE = np.array([0.228, 0.323, 0.247, 0.147, 0.055])

_INSATS_ORDER = V.INSATSER  # includes boende_vuxna (only 1999-2003)
_N_LATENT = 14
_MOVABLE = ("kontaktperson", "korttidsvistelse", "ledsagarservice", "avlosarservice")
#: Share of the population aged 65 or more (about a fifth in Sweden).
_POP_OLD_SHARE = 0.2
#: Share of persons a year served by two kommuner, each with its own insatser.
_TWO_KOMMUN_SHARE = 0.03


@dataclass
class SynthResult:
    """The synthetic registers and what was injected into them."""

    register: pd.DataFrame
    deaths: pd.DataFrame
    persons: pd.DataFrame  # one row per synthetic LSS person (internal truth, for tests)
    injected: dict[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# personnummer


_BIRTH_NUMBERS = 499  # birth numbers per date and sex: odd 1-997 (men), even 2-998 (women)


def make_personnummer(
    rng: np.random.Generator,
    birth: np.ndarray,
    sex: np.ndarray,
    samord: np.ndarray,
    taken: set[int] | np.ndarray | None = None,
) -> np.ndarray:
    """Unique 12-digit personnummer for birth dates (datetime64[D]), sex ("1"/"2") and a
    samordningsnummer flag, none of them in ``taken`` (keys yyyymmddnnn, see :func:`_pnr_key`).

    Vectorised: the persons of one birth date and sex get distinct birth numbers by construction
    (a random start and a random step through the 499 numbers, 499 being prime); the few that hit
    a taken number are redrawn."""
    n = len(birth)
    ymd = pd.DatetimeIndex(birth)
    # int64: the key yyyymmddnnn does not fit the int32 that DatetimeIndex fields come in
    year, month, day = (ymd.year.to_numpy(np.int64), ymd.month.to_numpy(np.int64), ymd.day.to_numpy(np.int64))
    day = np.where(samord, day + 60, day)
    male = sex == "1"
    date_key = (year * 100 + month) * 100 + day
    group = date_key * 2 + male
    order = np.argsort(group, kind="stable")
    sorted_group = group[order]
    starts = (
        np.flatnonzero(np.r_[True, sorted_group[1:] != sorted_group[:-1]]) if n else np.empty(0, np.int64)
    )
    sizes = np.diff(np.r_[starts, n])
    if n and sizes.max() > _BIRTH_NUMBERS:
        raise ValueError("too many synthetic persons for one birth date and sex (at most 499)")
    rank = np.arange(n) - np.repeat(starts, sizes)
    gid = np.repeat(np.arange(len(starts)), sizes)
    first = rng.integers(0, _BIRTH_NUMBERS, size=len(starts))
    step = rng.integers(1, _BIRTH_NUMBERS, size=len(starts))
    slot = np.empty(n, np.int64)
    slot[order] = (first[gid] + rank * step[gid]) % _BIRTH_NUMBERS
    nnn = slot * 2 + np.where(male, 1, 2)
    if taken is None:
        existing = np.empty(0, np.int64)
    elif isinstance(taken, set):
        existing = np.fromiter(taken, dtype=np.int64, count=len(taken))
    else:
        existing = np.asarray(taken, dtype=np.int64)
    key = date_key * 1000 + nnn
    todo = (
        np.flatnonzero(pd.Series(key).isin(existing).to_numpy()) if len(existing) else np.empty(0, np.int64)
    )
    if todo.size:
        # the numbers of everybody else, fixed: redraw only the few that hit a taken number
        fixed = np.sort(np.concatenate([np.delete(key, todo), existing]))
        accepted = np.empty(0, np.int64)
        for _ in range(100):  # rounds over the rows still to place, not over rows
            draw = rng.integers(0, _BIRTH_NUMBERS, size=todo.size) * 2 + 1
            nnn[todo] = np.where(male[todo], draw, draw + 1)
            new = date_key[todo] * 1000 + nnn[todo]
            pos = np.minimum(np.searchsorted(fixed, new), len(fixed) - 1)
            hit = (fixed[pos] == new) | np.isin(new, accepted) | pd.Series(new).duplicated().to_numpy()
            accepted = np.concatenate([accepted, new[~hit]])
            todo = todo[hit]
            if not todo.size:
                break
        else:  # pragma: no cover - needs nearly every birth number of a date taken
            raise ValueError("too many synthetic persons for the birth dates drawn")
    yy = year % 100
    digits = np.stack(
        [
            yy // 10,
            yy % 10,
            month // 10,
            month % 10,
            day // 10,
            day % 10,
            nnn // 100,
            (nnn // 10) % 10,
            nnn % 10,
        ],
        axis=1,
    )
    check = luhn_check_digit(digits)
    full = year.astype(np.int64) * 10**8 + (month * 100 + day) * 10**4 + nnn * 10 + check
    return full.astype(str)


def _pnr_key(pnr: np.ndarray) -> np.ndarray:
    """The key make_personnummer uses for uniqueness (12 digits without the check digit)."""
    return pnr.astype(np.int64) // 10


# --------------------------------------------------------------------------------------------
# the population of LSS persons


def _rates() -> pd.DataFrame:
    m = refdata.lss_marginals()
    r = m[m["table"] == "persons_per_10000_by_personkrets_age_sex"].copy()
    r = r[r["alder"].isin(["0-19 år", "20-44 år", "45-64 år", "65-79 år", "80- år"])]
    order = {"0-19 år": 0, "20-44 år": 1, "45-64 år": 2, "65-79 år": 3, "80- år": 4}
    r["group"] = r["alder"].map(order)
    return r[["group", "personkrets", "kon", "value"]]


def _cross_section(rng: np.random.Generator, n: int, young: float = 0.0) -> dict[str, np.ndarray]:
    """Draw n persons (age, sex, personkrets) from the published 2021 structure.

    ``young`` > 0 tilts the draw towards younger ages (for entrants)."""
    r = _rates()
    w = r["value"].to_numpy() * _POP_SHARE[r["group"].to_numpy()]
    pk1 = r["personkrets"].to_numpy() == "1"
    w = w * np.where(pk1, np.exp(-young * r["group"].to_numpy()), 1.0 - 0.25 * young)
    w = w / w.sum()
    pick = rng.choice(len(r), size=n, p=w)
    g = r["group"].to_numpy()[pick]
    lo, hi = _AGE_LO[g], _AGE_HI[g]
    u = rng.random(n)
    # within the open top group ages thin out; elsewhere uniform
    age = np.where(g == 4, lo + np.floor(-np.log1p(-u * 0.95) * 5), lo + np.floor(u * (hi - lo + 1)))
    if young > 0:  # entrants in the youngest group arrive as children, not as newborns
        age = np.where(g == 0, 2 + np.floor(rng.random(n) * 16), age)
    sex = np.where(r["kon"].to_numpy()[pick] == "M", "1", "2")
    pk = r["personkrets"].to_numpy()[pick].astype(str)
    return {"age": np.minimum(age, 99).astype(np.int16), "sex": sex, "pk": pk}


def _kommun_weights() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    b = refdata.befolkning().sort_values("kommun_kod")
    codes = b["kommun_kod"].to_numpy()
    w = b["folkmangd"].to_numpy(dtype=float)
    return codes, w / w.sum(), b["lan_kod"].to_numpy()


def _codes_for_year(codes: np.ndarray, year: int) -> np.ndarray:
    """Today's codes as they were in a year (Knivsta in Uppsala before 2003, Heby 1917 before 2007)."""
    out = codes.copy()
    if year < 2003:
        out[out == "0330"] = "0380"
    if year < 2007:
        out[out == "0331"] = "1917"
    return out


def _probabilities(turns: np.ndarray, age: np.ndarray, pk: np.ndarray) -> dict[str, np.ndarray]:
    """Probability of each insats given the age turned this year, age, and personkrets."""
    t = turns
    pk1, pk2, pk3 = pk == "1", pk == "2", pk == "3"
    child = t <= 17
    p = {}
    p["daglig_verksamhet"] = (
        np.select(
            [t < 17, t <= 19, t <= 22, age <= 64, age <= 66, age <= 68],
            [0.0, 0.25, 0.55, 0.80, 0.40, 0.12],
            0.0,
        )
        * (pk1 | pk2)
        * np.where(pk2, 0.6, 1.0)
    )
    p["adult_housing"] = np.select([t < 18, t <= 22, age <= 64], [0.0, 0.18, 0.52], 0.62) * np.where(
        pk3, 0.35, 1.0
    )
    p["child_housing"] = np.where((t >= 4) & (t <= 17), 0.06, 0.0)
    p["kontaktperson"] = np.select([t <= 6, t <= 12, t <= 22, age <= 64], [0.03, 0.13, 0.20, 0.09], 0.07)
    p["korttidsvistelse"] = np.select([t <= 6, t <= 12, t <= 17, t <= 22], [0.45, 0.60, 0.50, 0.10], 0.006)
    p["korttidstillsyn"] = np.where((t >= 13) & (t <= 20), 0.50, 0.0)
    p["avlosarservice"] = np.select([t <= 6, t <= 12, t <= 17, t <= 22], [0.22, 0.27, 0.18, 0.06], 0.012)
    p["ledsagarservice"] = np.select([t <= 12, t <= 22, age <= 64], [0.02, 0.06, 0.11], 0.09)
    p["personlig_assistans"] = np.where(pk3, 0.30, np.where(child, 0.05, 0.035))
    return p


def _simulate(rng: np.random.Generator, years: list[int], persons: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (person table, person-year table) for the LSS population."""
    codes, kw, _lan = _kommun_weights()
    first = years[0]
    cap = persons * (2 + len(years))  # generous upper bound on persons ever
    birth_days = np.empty(cap, "datetime64[D]")
    sex = np.empty(cap, "<U1")
    pk = np.empty(cap, "<U1")
    home = np.empty(cap, np.int16)
    active = np.zeros(cap, bool)
    exit_year = np.full(cap, 9999, np.int16)
    death = np.full(cap, np.datetime64("NaT"), "datetime64[D]")
    n_used = 0

    def add(k: int, year: int, young: float) -> None:
        nonlocal n_used
        cs = _cross_section(rng, k, young)
        ref = np.datetime64(V.measurement_date(year))
        # birth date: age at the measurement date, day of year uniform
        offset = rng.integers(0, 365, size=k)
        b = ref - ((cs["age"].astype(np.int64) * 36525) // 100 + offset).astype("timedelta64[D]")
        sl = slice(n_used, n_used + k)
        birth_days[sl] = b
        sex[sl] = cs["sex"]
        pk[sl] = cs["pk"]
        home[sl] = rng.choice(len(codes), size=k, p=kw)
        active[sl] = True
        n_used += k

    add(persons, first, 0.0)
    rows = []
    prev_ref = None
    for year in years:
        ref = np.datetime64(V.measurement_date(year))
        if prev_ref is not None:
            idx = np.flatnonzero(active[:n_used])
            age = (ref - birth_days[idx]).astype(np.int64) * 100 // 36525
            hazard = 0.03 + 0.035 * (age >= 45) + 0.06 * (age >= 65) + 0.10 * (age >= 80) + 0.03 * (age <= 21)
            leave = rng.random(len(idx)) < hazard
            die = leave & (rng.random(len(idx)) < np.where(age >= 65, 0.75, 0.15))
            gone = idx[leave]
            active[gone] = False
            exit_year[gone] = year - 1
            span = (ref - prev_ref).astype(np.int64)
            dead = idx[die]
            death[dead] = prev_ref + (1 + rng.integers(0, span - 1, size=len(dead))).astype("timedelta64[D]")
            movers = idx[~leave & (rng.random(len(idx)) < 0.02)]
            home[movers] = rng.choice(len(codes), size=len(movers), p=kw)
            n_new = persons - int(active[:n_used].sum())
            if n_new > 0:
                add(n_new, year, 1.4)
        idx = np.flatnonzero(active[:n_used])
        rows.append(pd.DataFrame({"pid": idx.astype(np.int32), "year": np.int16(year)}))
        prev_ref = ref
    exit_year[:n_used][active[:n_used]] = years[-1]
    n = n_used
    samord = rng.random(n) < 0.01
    pnr = make_personnummer(rng, birth_days[:n], sex[:n], samord)
    people = pd.DataFrame(
        {
            "pid": np.arange(n, dtype=np.int32),
            "personnummer": pnr,
            "birth_date": birth_days[:n].astype("datetime64[ns]"),
            "sex": sex[:n],
            "personkrets": pk[:n],
            "home": home[:n],
            "exit_year": exit_year[:n],
            "death_date": death[:n].astype("datetime64[ns]"),
            "samordningsnummer": samord,
        }
    )
    latent = rng.random((n, _N_LATENT))
    for i in range(_N_LATENT):
        people[f"_u{i}"] = latent[:, i]
    py = pd.concat(rows, ignore_index=True)
    return people, py


def _amounts(
    rng: np.random.Generator, base: np.ndarray, year: np.ndarray, median: float, sigma: float, cap: np.ndarray
) -> np.ndarray:
    noise = rng.normal(0, 0.08, size=len(base))
    v = median * np.exp(sigma * base + noise)
    return np.clip(np.round(v), 1, cap)


def _build_register(rng: np.random.Generator, people: pd.DataFrame, py: pd.DataFrame) -> pd.DataFrame:
    codes, _kw, lan_of = _kommun_weights()
    p = people.iloc[py["pid"].to_numpy()].reset_index(drop=True)
    year = py["year"].to_numpy()
    ref = V.measurement_dates(py["year"])
    birth = p["birth_date"]
    turns = year - birth.dt.year.to_numpy()
    age = ((ref - birth).dt.days.to_numpy() * 100) // 36525
    pk = p["personkrets"].to_numpy()
    u = p[[f"_u{i}" for i in range(_N_LATENT)]].to_numpy()
    prob = _probabilities(turns, age, pk)
    n = len(py)
    flag = {name: np.zeros(n, np.int8) for name in _INSATS_ORDER}
    for j, name in enumerate(
        (
            "daglig_verksamhet",
            "kontaktperson",
            "korttidsvistelse",
            "korttidstillsyn",
            "avlosarservice",
            "ledsagarservice",
            "personlig_assistans",
        )
    ):
        flag[name] = (u[:, j] < prob[name]).astype(np.int8)
    flag["korttidstillsyn"][flag["daglig_verksamhet"] == 1] = 0  # never both (rule 6)
    adult = u[:, 7] < prob["adult_housing"]
    childh = (u[:, 7] < prob["child_housing"]) & ~adult
    flag["familjehem"] = (childh & (u[:, 8] < 0.2)).astype(np.int8)
    flag["bostad_barn"] = (childh & (u[:, 8] >= 0.2)).astype(np.int8)
    annan = u[:, 9] < 0.065
    flag["bostad_vuxna"] = (adult & ~annan).astype(np.int8)
    flag["annan_bostad_vuxna"] = (adult & annan).astype(np.int8)
    # every row has at least one insats (rule 8): a person without any gets a kontaktperson
    none = np.ones(n, bool)
    for name in _INSATS_ORDER:
        none &= flag[name] == 0
    flag["kontaktperson"][none] = 1

    home_codes = codes[p["home"].to_numpy()]
    # second kommun: a few persons get one non-housing insats from a neighbouring kommun
    # (persons with at least two insatser, one of them movable; the rate is set among those so
    # that about _TWO_KOMMUN_SHARE of all persons are served by two kommuner)
    movable = np.stack([flag[k] for k in _MOVABLE], axis=1)
    n_ins = sum(flag[k].astype(int) for k in _INSATS_ORDER)
    eligible = (movable.sum(axis=1) > 0) & (n_ins >= 2)
    rate = min(1.0, _TWO_KOMMUN_SHARE / max(float(eligible.mean()), 1e-9))
    second = eligible & (u[:, 10] < rate)
    which = np.argmax(movable, axis=1)
    # a neighbour: another kommun of the same län, chosen by the person's latent draw
    lan_home = lan_of[p["home"].to_numpy()]
    order = np.argsort(lan_of, kind="stable")
    lan_sorted = lan_of[order]
    start = np.searchsorted(lan_sorted, lan_home, side="left")
    count = np.searchsorted(lan_sorted, lan_home, side="right") - start
    other_idx = order[start + np.floor(u[:, 11] * count).astype(int)]
    second &= other_idx != p["home"].to_numpy()
    # Knivsta (0330) was part of Uppsala (0380) before 2003: never a "second" kommun there
    pair = {"0330", "0380"}
    second &= ~(np.isin(codes[p["home"].to_numpy()], list(pair)) & np.isin(codes[other_idx], list(pair)))
    other_codes = codes[other_idx]

    out = pd.DataFrame({"year": year.astype(np.int16), "pid": py["pid"].to_numpy()})
    for k in _INSATS_ORDER:
        out[k] = flag[k]
    out["kommun"] = home_codes
    out["beslutande_kommun"] = home_codes
    housing = (
        flag["familjehem"] | flag["bostad_barn"] | flag["bostad_vuxna"] | flag["annan_bostad_vuxna"]
    ) == 1
    bk_other = u[:, 12] < 0.05
    out["boendekommun"] = np.where(housing, np.where(bk_other, other_codes, home_codes), None)  # type: ignore[assignment]
    out["personkrets"] = np.where((pk == "3") & (u[:, 13] < 0.4), "4", pk)  # recoded below per year

    # hours and days (from 2007), stable per person with small yearly noise
    z = rng.standard_normal((len(people), 4))[py["pid"].to_numpy()]
    pa_cap = np.where(year >= 2022, 1488, 744)
    out["hours_personlig_assistans"] = _amounts(rng, z[:, 0], year, 160, 0.7, pa_cap)
    out["hours_ledsagarservice"] = _amounts(rng, z[:, 1], year, 14, 0.6, np.full(n, 744))
    out["hours_avlosarservice"] = _amounts(rng, z[:, 2], year, 18, 0.6, np.full(n, 744))
    out["days_korttidsvistelse"] = _amounts(rng, z[:, 3], year, 6, 0.45, np.full(n, 31))

    # the second kommun's row: the moved insats leaves the home row
    sec_rows = out.loc[second].copy()
    moved = np.array(_MOVABLE)[which[second]]
    for k in _INSATS_ORDER:
        sec_rows[k] = (moved == k).astype(np.int8)
    sec_rows["kommun"] = other_codes[second]
    sec_rows["beslutande_kommun"] = np.where(u[second, 12] < 0.5, home_codes[second], other_codes[second])
    sec_rows["boendekommun"] = None
    for j, k in enumerate(_MOVABLE):
        out.loc[second & (which == j), k] = 0
    return pd.concat([out, sec_rows], ignore_index=True)


def _finalise(reg: pd.DataFrame, people: pd.DataFrame) -> pd.DataFrame:
    """Apply the historical breaks and each year's kommun codes; order and type the columns."""
    year = reg["year"].to_numpy()
    for col in V.KOMMUN_COLUMNS:
        vals = reg[col].to_numpy(dtype=object)
        has = pd.notna(vals)
        fixed = vals.copy()
        for y in np.unique(year):  # one pass per year (26), not per row
            m = (year == y) & has
            fixed[m] = _codes_for_year(vals[m].astype(str), int(y))
        reg[col] = fixed
    pk = reg["personkrets"].to_numpy(dtype=object)
    pk = np.where((pk == "4") & (year > 2003), "3", pk)
    reg["personkrets"] = np.where((year >= 2004) & (year <= 2006), None, pk)  # type: ignore[call-overload]
    reg.loc[(year >= 2004) & (year <= 2006), "boendekommun"] = None
    boende = (reg["bostad_vuxna"] | reg["annan_bostad_vuxna"]).to_numpy()
    reg["boende_vuxna"] = boende
    for name in V.INSATSER:
        coll = V.get(name).collected_mask(year)
        reg[name] = pd.array(np.where(coll, reg[name].to_numpy(), 0), dtype="Int8").copy()
        reg.loc[~coll, name] = pd.NA
    for amount, insats in V.AMOUNTS.items():
        keep = (reg[insats].fillna(0).to_numpy() == 1) & (year >= 2007)
        reg[amount] = pd.array(np.where(keep, reg[amount].to_numpy(dtype=float), np.nan), dtype="Float64")
    reg["personnummer"] = people["personnummer"].to_numpy()[reg["pid"].to_numpy()]
    reg = reg.sort_values(["year", "kommun", "personnummer"], kind="stable").reset_index(drop=True)
    out = pd.DataFrame({c: reg[c] for c in V.COLUMNS})
    for col in ("personnummer", "kommun", "beslutande_kommun", "boendekommun", "personkrets"):
        out[col] = out[col].astype("string[pyarrow]")
    out["year"] = out["year"].astype("int16")
    out.attrs["pid"] = reg["pid"].to_numpy()
    return out


def synthesise(
    years: list[int] | tuple[int, ...] | range = DEFAULT_YEARS,
    persons: int = DEFAULT_PERSONS,
    seed: int = 0,
    inject: dict[str, int] | None = None,
) -> SynthResult:
    """Synthesise the LSS register and its death register for ``years``.

    ``persons`` is the number of persons per year. ``inject`` maps rule ids (``"R01"``...) to the
    number of violations to add; see :func:`inject_violations`.
    """
    years = sorted({int(y) for y in years})
    if not years or years[0] < V.FIRST_YEAR or years[-1] > V.LAST_YEAR:
        raise ValueError(f"years must lie within {V.FIRST_YEAR}-{V.LAST_YEAR}")
    if years != list(range(years[0], years[-1] + 1)):
        raise ValueError("years must be consecutive (persons are followed from year to year)")
    if persons < 1:
        raise ValueError("persons must be at least 1")
    rng = np.random.default_rng(seed)
    people, py = _simulate(rng, years, persons)
    reg = _build_register(rng, people, py)
    reg = _finalise(reg, people)
    pid = reg.attrs.pop("pid")
    dead = people[people["death_date"].notna()]
    deaths = pd.DataFrame(
        {"personnummer": dead["personnummer"].astype("string[pyarrow]"), "death_date": dead["death_date"]}
    ).reset_index(drop=True)
    result = SynthResult(
        register=reg, deaths=deaths, persons=people.drop(columns=[f"_u{i}" for i in range(_N_LATENT)])
    )
    result.register.attrs.clear()
    if inject:
        inject_violations(result, inject, seed=seed, pid=pid)
    return result


# --------------------------------------------------------------------------------------------
# injected violations


def inject_violations(
    result: SynthResult, counts: dict[str, int], seed: int = 0, pid: np.ndarray | None = None
) -> None:
    """Add exactly ``counts[rule]`` violations of each rule to ``result`` (in place), each rule's
    by its injector in :mod:`lsssdc.register.injectors`."""
    from lsssdc.register.injectors import inject  # local: the injectors read the rules' frame

    inject(result, counts, seed=seed)


# --------------------------------------------------------------------------------------------
# companion registers


def synthesise_population(result: SynthResult, size: int, seed: int = 0, year: int = 2024) -> pd.DataFrame:
    """A population register (RTB-like) on 31 December ``year``: every LSS person who is
    folkbokförd (samordningsnummer holders are not) plus others, ``size`` rows in all.

    Columns: personnummer, birth_date, sex, kommun (folkbokföringskommun, codes of ``year``)."""
    rng = np.random.default_rng([seed, 11])
    people = result.persons[~result.persons["samordningsnummer"]]
    people = people[people["death_date"].isna() | (people["death_date"].dt.year > year)]
    k = size - len(people)
    if k < 0:
        raise ValueError(f"a population of {size} cannot hold the {len(people)} LSS persons")
    codes, kw, _ = _kommun_weights()
    end = np.datetime64(dt.date(year, 12, 31))
    # an approximate Swedish age structure: even up to 65, then thinning (mean remaining 12 years)
    old_age = rng.random(k) < _POP_OLD_SHARE
    age = np.where(
        old_age,
        np.minimum(65 + np.floor(rng.exponential(12.0, size=k)), 105),
        np.floor(rng.random(k) * 65),
    ).astype(np.int64)
    birth = end - (age * 36525 // 100 + rng.integers(0, 365, size=k)).astype("timedelta64[D]")
    sex = np.where(rng.random(k) < 0.5, "1", "2")
    taken = _pnr_key(result.persons["personnummer"].to_numpy())
    pnr = make_personnummer(rng, birth, sex, np.zeros(k, bool), taken=taken)
    home = rng.choice(len(codes), size=k, p=kw)
    lss_codes = codes[people["home"].to_numpy()]
    pop = pd.DataFrame(
        {
            "personnummer": np.concatenate([people["personnummer"].to_numpy(), pnr]),
            "birth_date": np.concatenate([people["birth_date"].to_numpy(), birth.astype("datetime64[ns]")]),
            "sex": np.concatenate([people["sex"].to_numpy(), sex]),
            "kommun": _codes_for_year(np.concatenate([lss_codes, codes[home]]), year),
        }
    )
    order = rng.permutation(len(pop))
    pop = pop.iloc[order].reset_index(drop=True)
    for col in ("personnummer", "sex", "kommun"):
        pop[col] = pop[col].astype("string[pyarrow]")
    return pop


def synthesise_assistans(result: SynthResult, seed: int = 0) -> pd.DataFrame:
    """Försäkringskassan's assistansersättning: persons and decided hours per week, per year.

    About a fifth of the LSS persons of a year have assistansersättning (such persons are not in
    the register with kommunal personlig assistans); hours are above the 20-hour threshold."""
    rng = np.random.default_rng([seed, 13])
    reg = result.register
    cand = reg[(reg["personlig_assistans"].fillna(0) == 0)][["year", "personnummer"]]
    cand = cand.drop_duplicates()
    pick = rng.random(len(cand)) < 0.19
    out = cand.loc[pick].reset_index(drop=True)
    base = rng.lognormal(np.log(115), 0.35, size=len(out))
    out["hours_per_week"] = np.clip(np.round(base), 21, 168).astype("int16")
    return out.sort_values(["year", "personnummer"], kind="stable").reset_index(drop=True)
