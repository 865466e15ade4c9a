"""The codebook of a delivery, in Swedish and English, and its machine-readable twin.

Both are rendered from the register catalogue (:mod:`lsssdc.register.variables`) and the
candidate's metadata (recodings, suppression), so they cannot disagree with the data.
"""

from __future__ import annotations

from typing import Any

from lsssdc.disclosure.persons import SUPPRESSED
from lsssdc.register import variables as V
from lsssdc.register.companions import COMPANIONS

PSEUDONYM_SV = "Pseudonym för personen, nyckelstyrd och unik för projektet."
PSEUDONYM_EN = "Pseudonym of the person, keyed and specific to the project."

#: Missing-value codes of a delivery: code -> (Swedish, English). Every format declares them.
MISSING: dict[str, tuple[str, str]] = {
    "": ("Inget värde", "No value"),
    SUPPRESSED: ("Undertryckt av sekretesskäl", "Suppressed for confidentiality"),
}
_DEATH_NOTE_SV = (
    'Från dödsorsaksregistret. Tomt: ingen död registrerad; "..": undertryckt (kolumnen `suppressed` '
    "namnger den)."
)
_DEATH_NOTE_EN = (
    'From the cause of death register. Empty: no death recorded; "..": suppressed (the column '
    "`suppressed` names it)."
)

_EXTRA = {
    "pseudonym": ("Pseudonym", "Pseudonym", PSEUDONYM_SV, PSEUDONYM_EN, "string"),
    "lopnummer": (
        "Löpnummer",
        "Serial number",
        "Löpnummer inom leveransen (rang av pseudonymen).",
        "Serial number within the delivery (rank of the pseudonym).",
        "integer",
    ),
    "age_band": ("Åldersgrupp vid mätdatum", "Age band at the measurement date", "", "", "string"),
    "lan": ("Län", "County (län)", "Tvåsiffrig länskod.", "Two-digit county code.", "string"),
    "kommungrupp": ("Kommungrupp (SKR 2017)", "Municipality group (SKR 2017)", "", "", "string"),
    "death_year": ("Dödsår", "Year of death", _DEATH_NOTE_SV, _DEATH_NOTE_EN, "year"),
    "death_month": (
        "Dödsmånad (ÅÅÅÅ-MM)",
        "Month of death (YYYY-MM)",
        _DEATH_NOTE_SV,
        _DEATH_NOTE_EN,
        "yearmonth",
    ),
    "suppressed": (
        "Undertryckta variabler",
        "Suppressed variables",
        'Namnen på radens undertryckta variabler. Ett undertryckt värde är ".." (året: tomt); '
        'ett tomt dödsår betyder ingen död, ".." att dödsåret är undertryckt.',
        'Names of the variables suppressed on the row. A suppressed value is ".." (the year: empty); '
        'an empty year of death means no death, ".." that it is suppressed.',
        "string",
    ),
}


def describe(name: str) -> dict[str, Any]:
    """Labels, notes and value set of one delivered column."""
    if name in V.BY_NAME:
        v = V.BY_NAME[name]
        return {
            "name": name,
            "label_sv": v.label_sv,
            "label_en": v.label_en,
            "note_sv": v.note_sv,
            "note_en": v.note_en,
            "years": v.years_text() if v.kind != "derived" else "",
            "lss": v.lss or "",
            "values": {k: {"sv": sv, "en": en} for k, (sv, en) in v.values.items()},
            "type": {"flag": "integer", "amount": "number", "year": "integer"}.get(v.kind, "string"),
            "unit": v.unit or "",
        }
    if name in _EXTRA:
        sv, en, nsv, nen, typ = _EXTRA[name]
        return {
            "name": name,
            "label_sv": sv,
            "label_en": en,
            "note_sv": nsv,
            "note_en": nen,
            "years": "",
            "lss": "",
            "values": {},
            "type": typ,
            "unit": "",
        }
    for comp in COMPANIONS.values():
        for var, (sv, en) in comp.variables.items():
            if name in (var, f"{comp.name}_{var}"):
                return {
                    "name": name,
                    "label_sv": f"{sv} ({comp.label_sv})",
                    "label_en": f"{en} ({comp.label_en})",
                    "note_sv": "",
                    "note_en": "",
                    "years": "",
                    "lss": "",
                    "values": {},
                    "type": "date" if var.endswith("date") else "string",
                    "unit": "",
                }
    return {
        "name": name,
        "label_sv": name,
        "label_en": name,
        "note_sv": "",
        "note_en": "",
        "years": "",
        "lss": "",
        "values": {},
        "type": "string",
        "unit": "",
    }


def codebook_markdown(columns: list[str], meta: dict[str, Any]) -> str:
    """Codebook in Swedish and English (Markdown)."""
    recodings = {r.get("variable"): r for r in meta.get("recodings", []) if isinstance(r, dict)}
    suppressed = meta.get("suppressed_share", {}) or {}
    lines = ["# Kodbok / Codebook", "", f"Beställning / Order: {meta.get('order_id', '')}", ""]
    for name in columns:
        d = describe(name)
        lines += [f"## `{name}`", "", f"- **Sv:** {d['label_sv']}", f"- **En:** {d['label_en']}"]
        if d["lss"]:
            lines.append(f"- LSS: {d['lss']}")
        if d["years"]:
            lines.append(f"- År / Years: {d['years']}")
        if d["note_sv"]:
            lines.append(f"- Not: {d['note_sv']}")
        if d["note_en"]:
            lines.append(f"- Note: {d['note_en']}")
        if d["values"]:
            lines.append("- Värden / Values:")
            lines += [f"  - `{k}`: {v['sv']} / {v['en']}" for k, v in d["values"].items()]
        if name in recodings:
            r = recodings[name]
            lines.append(f"- Grovindelad / Coarsened: {r.get('description', '')}")
        if suppressed.get(name):
            lines.append(
                f"- Undertryckta värden / Suppressed values: {suppressed[name]:.2%} "
                f"(`{SUPPRESSED}`; ett tal: tomt / a number: empty)"
            )
        lines.append("")
    return "\n".join(lines)


def table_schema(columns: list[str], dtypes: dict[str, str]) -> dict[str, Any]:
    """Frictionless Table Schema (v2): codes stay strings, value labels are ``categories`` (and an
    ``enum`` a validator checks), and both missing-value codes are declared with their labels."""
    fields = []
    for name in columns:
        d = describe(name)
        typ = dtypes.get(name, d["type"])
        if typ == "string" and d["type"] in ("year", "yearmonth"):
            typ = d["type"]  # text in the data for its marker, a year to a reader
        f: dict[str, Any] = {"name": name, "type": typ, "title": d["label_en"], "description": d["note_en"]}
        if d["values"]:
            codes = [int(k) if typ == "integer" else k for k in d["values"]]
            f["categories"] = [
                {"value": c, "label": v["en"]} for c, v in zip(codes, d["values"].values(), strict=True)
            ]
            f["constraints"] = {"enum": codes}
        fields.append(f)
    missing = [{"value": code, "label": en} for code, (_, en) in MISSING.items()]
    return {"fields": fields, "missingValues": missing}
