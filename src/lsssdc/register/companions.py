"""Registers that LSS extracts are linked with, and the variables each can contribute.

Only what is named here can be asked for in an order's linkages; the policy then decides what
is allowed. Keys are personnummer (inside the agency, before pseudonymisation) or a project
pseudonym (for an extract another agency pseudonymised with the project's key).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Companion:
    name: str
    label_sv: str
    label_en: str
    cardinality: str  # "one" (at most one row per person) or "many"
    variables: dict[str, tuple[str, str]]  # name -> (label_sv, label_en)


COMPANIONS: dict[str, Companion] = {
    c.name: c
    for c in (
        Companion(
            "deaths",
            "Dödsorsaksregistret",
            "Cause of death register",
            "one",
            {"death_date": ("Dödsdatum", "Date of death")},
        ),
        Companion(
            "population",
            "Registret över totalbefolkningen",
            "Total population register",
            "one",
            {
                "kommun": ("Folkbokföringskommun", "Kommun of residence"),
                "birth_date": ("Födelsedatum", "Date of birth"),
                "sex": ("Kön", "Sex"),
            },
        ),
        Companion(
            "assistans",
            "Assistansersättning (Försäkringskassan)",
            "Assistance allowance (Swedish Social Insurance Agency)",
            "many",
            {
                "year": ("År", "Year"),
                "hours_per_week": ("Beviljade timmar per vecka", "Granted hours per week"),
            },
        ),
    )
}
