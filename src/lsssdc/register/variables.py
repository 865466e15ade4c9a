"""The LSS register's variables as data: names, labels, value sets, LSS paragraphs, years.

Source: Socialstyrelsen's quality declaration of the register (F3.2, K1.2.2, K1.2.3, K2.2.3).
Used by validation, synthesis and the codebook of every delivery, so that a variable is
described in exactly one place.

Historical breaks that the catalogue encodes:

* measurement date: 1 June 1999-2000, 1 September 2001-2002, 1 October from 2003;
* personkrets is not collected 2004-2006; in 1999-2003 the value 4 occurs and means group 3;
* the two adult housing flags (9 § 9) were reported together as ``boende_vuxna`` 1999-2003;
* boendekommun is not collected 2004-2006;
* hours and days per month are collected from 2007 only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

FIRST_YEAR = 1999
#: The last year the register's rules are documented for; later years use the newest rules.
LAST_YEAR = 2025


@dataclass(frozen=True)
class Variable:
    """One register variable. ``years`` are the years it is collected (inclusive bounds)."""

    name: str
    label_sv: str
    label_en: str
    kind: str  # identifier | code | flag | amount | year | derived
    dtype: str  # the pandas dtype in memory
    lss: str | None = None  # the LSS paragraph, where one applies
    first_year: int = FIRST_YEAR
    last_year: int = LAST_YEAR
    gap: tuple[int, int] | None = None  # years inside [first, last] without the variable
    values: dict[str, tuple[str, str]] = field(default_factory=dict)  # code -> (sv, en)
    minimum: float | None = None
    maximum: float | None = None
    unit: str | None = None
    note_sv: str = ""
    note_en: str = ""

    def collected(self, year: int) -> bool:
        if not (self.first_year <= year <= self.last_year):
            return False
        return not (self.gap and self.gap[0] <= year <= self.gap[1])

    def collected_mask(self, years: pd.Series | np.ndarray) -> np.ndarray:
        y = np.asarray(years)
        ok = (y >= self.first_year) & (y <= self.last_year)
        if self.gap:
            ok &= ~((y >= self.gap[0]) & (y <= self.gap[1]))
        return ok

    def years_text(self) -> str:
        """A human description of the years, e.g. '1999-2003, 2007-2025'."""
        spans = [(self.first_year, self.last_year)]
        if self.gap:
            spans = [(self.first_year, self.gap[0] - 1), (self.gap[1] + 1, self.last_year)]
        return ", ".join(f"{a}-{b}" for a, b in spans if a <= b)


_FLAG = {"0": ("insatsen ges inte", "not given"), "1": ("insatsen ges", "given")}


def _flag(name: str, sv: str, en: str, lss: str, **kw: Any) -> Variable:
    return Variable(name, sv, en, "flag", "Int8", lss=lss, values=_FLAG, **kw)


def _amount(name: str, sv: str, en: str, unit: str, lss: str) -> Variable:
    return Variable(
        name,
        sv,
        en,
        "amount",
        "Float64",
        lss=lss,
        first_year=2007,
        minimum=0,
        unit=unit,
        note_sv="Samlades inte in 1999-2006.",
        note_en="Not collected 1999-2006.",
    )


_KOMMUN_NOTE_EN = "Four-digit kommun code of the year (Heby 1917 until 2006, 0331 from 2007)."
_KOMMUN_NOTE_SV = "Fyrsiffrig kommunkod för året (Heby 1917 till 2006, 0331 från 2007)."

CATALOGUE: tuple[Variable, ...] = (
    Variable(
        "year",
        "År",
        "Year",
        "year",
        "int16",
        minimum=FIRST_YEAR,
        maximum=LAST_YEAR,
        note_sv="Statistikår; mätdatum enligt measurement_date.",
        note_en="Register year; see the measurement date per year.",
    ),
    Variable(
        "personnummer",
        "Personnummer",
        "Personal identity number",
        "identifier",
        "string",
        note_sv="12 siffror; samordningsnummer har dag + 60. Lämnas aldrig ut.",
        note_en="12 digits; samordningsnummer have day + 60. Never released.",
    ),
    Variable(
        "kommun",
        "Verkställande och rapporterande kommun",
        "Kommun that implements and reports",
        "code",
        "string",
        note_sv=_KOMMUN_NOTE_SV,
        note_en=_KOMMUN_NOTE_EN,
    ),
    Variable(
        "beslutande_kommun",
        "Beslutande kommun",
        "Kommun that decided the insatser",
        "code",
        "string",
        note_sv=_KOMMUN_NOTE_SV,
        note_en=_KOMMUN_NOTE_EN,
    ),
    Variable(
        "boendekommun",
        "Boendekommun",
        "Kommun where the LSS housing is",
        "code",
        "string",
        gap=(2004, 2006),
        note_sv="Endast för personer med boende enligt 9 § 8 eller 9 LSS. Saknas 2004-2006.",
        note_en="Only for persons with housing under 9 § 8 or 9 LSS. Missing 2004-2006.",
    ),
    Variable(
        "personkrets",
        "Personkrets",
        "Group of persons under 1 § LSS",
        "code",
        "string",
        lss="1 §",
        gap=(2004, 2006),
        values={
            "1": (
                "Utvecklingsstörning, autism eller autismliknande tillstånd",
                "Intellectual disability, autism or autism-like conditions",
            ),
            "2": (
                "Betydande och bestående begåvningsmässigt funktionshinder efter hjärnskada i vuxen ålder",
                "Significant lasting intellectual impairment after brain injury in adulthood",
            ),
            "3": (
                "Andra varaktiga fysiska eller psykiska funktionshinder",
                "Other lasting major physical or mental impairments",
            ),
            "4": ("Grupp 3 (kod som förekom 1999-2003)", "Group 3 (code used 1999-2003)"),
        },
        note_sv="Samlades inte in 2004-2006. Värdet 4 (1999-2003) betyder grupp 3.",
        note_en="Not collected 2004-2006. The value 4 (1999-2003) means group 3.",
    ),
    _flag("personlig_assistans", "Personlig assistans", "Personal assistance", "9 § 2"),
    _flag("ledsagarservice", "Ledsagarservice", "Escort service", "9 § 3"),
    _flag("kontaktperson", "Kontaktperson", "Contact person", "9 § 4"),
    _flag("avlosarservice", "Avlösarservice i hemmet", "Relief service in the home", "9 § 5"),
    _flag(
        "korttidsvistelse", "Korttidsvistelse utanför det egna hemmet", "Short stay away from home", "9 § 6"
    ),
    _flag(
        "korttidstillsyn",
        "Korttidstillsyn för skolungdom över 12 år",
        "Short-term supervision for schoolchildren over 12",
        "9 § 7",
    ),
    _flag(
        "familjehem",
        "Boende i familjehem för barn och ungdomar",
        "Family home for children and young persons",
        "9 § 8",
    ),
    _flag(
        "bostad_barn",
        "Bostad med särskild service för barn och ungdomar",
        "Residence with special service for children and young persons",
        "9 § 8",
    ),
    _flag(
        "boende_vuxna",
        "Boende vuxna (bostad med särskild service eller annan särskilt anpassad bostad)",
        "Adult housing (residence with special service or other specially adapted residence)",
        "9 § 9",
        last_year=2003,
        note_sv="Rapporterades 1999-2003; från 2004 uppdelad på bostad_vuxna och annan_bostad_vuxna.",
        note_en="Reported 1999-2003; split into bostad_vuxna and annan_bostad_vuxna from 2004.",
    ),
    _flag(
        "bostad_vuxna",
        "Bostad med särskild service för vuxna",
        "Residence with special service for adults",
        "9 § 9",
        first_year=2004,
        note_sv="Ingår i boende_vuxna 1999-2003.",
        note_en="Part of boende_vuxna 1999-2003.",
    ),
    _flag(
        "annan_bostad_vuxna",
        "Annan särskilt anpassad bostad för vuxna",
        "Other specially adapted residence for adults",
        "9 § 9",
        first_year=2004,
        note_sv="Ingår i boende_vuxna 1999-2003.",
        note_en="Part of boende_vuxna 1999-2003.",
    ),
    _flag("daglig_verksamhet", "Daglig verksamhet", "Daily activities", "9 § 10"),
    _amount(
        "hours_personlig_assistans",
        "Beslutade timmar personlig assistans per månad",
        "Decided hours of personal assistance per month",
        "hours per month",
        "9 § 2",
    ),
    _amount(
        "hours_ledsagarservice",
        "Beslutade timmar ledsagarservice per månad",
        "Decided hours of escort service per month",
        "hours per month",
        "9 § 3",
    ),
    _amount(
        "hours_avlosarservice",
        "Beslutade timmar avlösarservice per månad",
        "Decided hours of relief service per month",
        "hours per month",
        "9 § 5",
    ),
    _amount(
        "days_korttidsvistelse",
        "Beslutade dygn korttidsvistelse per månad",
        "Decided days of short stay per month",
        "days per month",
        "9 § 6",
    ),
)

#: Variables derived from the personnummer and the measurement date (never stored by kommuner).
DERIVED: tuple[Variable, ...] = (
    Variable(
        "sex",
        "Kön",
        "Sex",
        "derived",
        "string",
        values={"1": ("Man", "Man"), "2": ("Kvinna", "Woman")},
        note_sv="Härlett ur personnumrets näst sista siffra.",
        note_en="Derived from the second-to-last digit of the personnummer.",
    ),
    Variable(
        "birth_year",
        "Födelseår",
        "Year of birth",
        "derived",
        "Int16",
        note_sv="Härlett ur personnumret.",
        note_en="Derived from the personnummer.",
    ),
    Variable(
        "age",
        "Ålder vid mätdatum",
        "Age at the measurement date",
        "derived",
        "Int16",
        minimum=0,
        unit="years",
        note_sv="Fyllda år vid årets mätdatum.",
        note_en="Completed years at the measurement date.",
    ),
)

BY_NAME: dict[str, Variable] = {v.name: v for v in CATALOGUE + DERIVED}

#: The insats flags, in the order of the reporting form.
INSATSER: tuple[str, ...] = tuple(v.name for v in CATALOGUE if v.kind == "flag")
#: Housing insatser: a person may have at most one (rule 5).
HOUSING: tuple[str, ...] = ("familjehem", "bostad_barn", "boende_vuxna", "bostad_vuxna", "annan_bostad_vuxna")
#: Amount variable -> the insats it belongs to.
AMOUNTS: dict[str, str] = {
    "hours_personlig_assistans": "personlig_assistans",
    "hours_ledsagarservice": "ledsagarservice",
    "hours_avlosarservice": "avlosarservice",
    "days_korttidsvistelse": "korttidsvistelse",
}
KOMMUN_COLUMNS: tuple[str, ...] = ("kommun", "beslutande_kommun", "boendekommun")
#: Columns every register file must have (the year-dependent ones may be empty).
COLUMNS: tuple[str, ...] = tuple(v.name for v in CATALOGUE)


def get(name: str) -> Variable:
    """The catalogue entry for a variable, by its stable name."""
    return BY_NAME[name]


@cache
def measurement_date(year: int) -> dt.date:
    """The register's measurement date (referensdatum) for a year."""
    if year < FIRST_YEAR:
        raise ValueError(f"the LSS register has individual data from {FIRST_YEAR}, not {year}")
    if year <= 2000:
        return dt.date(year, 6, 1)
    if year <= 2002:
        return dt.date(year, 9, 1)
    return dt.date(year, 10, 1)


def measurement_dates(years: pd.Series) -> pd.Series:
    """The measurement date of each row's year (same index), by a lookup over the years' span."""
    s = years if isinstance(years, pd.Series) else pd.Series(years)
    y = s.to_numpy(dtype=np.int64)
    if len(y) == 0:
        return pd.Series(np.array([], dtype="datetime64[ns]"), index=s.index)
    lo, hi = int(y.min()), int(y.max())
    table = np.array([np.datetime64(measurement_date(v), "ns") for v in range(lo, hi + 1)])
    return pd.Series(table[y - lo], index=s.index)


def collected_in(year: int) -> list[str]:
    """The variables collected in a year."""
    return [v.name for v in CATALOGUE if v.collected(year)]


def catalogue_frame() -> pd.DataFrame:
    """The catalogue as a table (for the codebook and the README)."""
    rows = []
    for v in CATALOGUE + DERIVED:
        rows.append(
            {
                "name": v.name,
                "label_sv": v.label_sv,
                "label_en": v.label_en,
                "kind": v.kind,
                "lss": v.lss or "",
                "years": v.years_text() if v.kind != "derived" else "",
                "values": "; ".join(f"{k} = {sv}" for k, (sv, _) in v.values.items()),
                "note_en": v.note_en,
            }
        )
    return pd.DataFrame(rows)
