"""The reviewer report: one self-contained, escaped HTML page in Swedish and English, and the
same facts as JSON; and the short report that may travel with the data.

Golden files (tests/release/golden/) fix the structure of report.json, the verdict and the
thresholds, not the volatile figures; regenerate them with ``LSSSDC_UPDATE_GOLDEN=1``.
The page in a real browser: tests/release/test_report_browser.py (marked ``browser``).
"""

from __future__ import annotations

import copy
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lsssdc import policy as P
from lsssdc.release import report as rep
from lsssdc.release import report_facts as F
from lsssdc.release.report_i18n import EN, SV, TEXT, Lang
from tests.release.conftest import (
    DAGLIG,
    MORTALITY,
    Release,
    make_keystore,
    order_path,
    policy_path,
    prepare_order,
)

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("LSSSDC_UPDATE_GOLDEN") == "1"
SVL, ENL = Lang(SV), Lang(EN)


@pytest.fixture(scope="module")
def small_reports(tmp_path_factory: pytest.TempPathFactory, small) -> dict[str, Path]:
    """An unlinked releasable candidate and a refused one, from the small register."""
    root = tmp_path_factory.mktemp("report")
    store = make_keystore(root / "keys" / "k.json")
    dv = prepare_order(small, policy_path(DAGLIG[0]), order_path(DAGLIG[1]), store, root / "work", None)
    refused = prepare_order(
        small, policy_path(MORTALITY[0]), order_path(MORTALITY[1]), store, root / "work", None
    )
    assert (dv.verdict, refused.verdict) == ("releasable", "refused")
    return {"daglig": dv.path, "refused": refused.path, "root": root}


def _load(candidate: Path) -> tuple[str, dict[str, Any]]:
    html = (candidate / "report.html").read_text(encoding="utf-8")
    return html, json.loads((candidate / "report.json").read_text(encoding="utf-8"))


class _Page(HTMLParser):
    """Per language (the lang of each <main>): the rows of every table (cell texts), the text;
    and for the whole page every src/href and the tags seen."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: dict[str, list[list[str]]] = {}
        self.text: dict[str, list[str]] = {}
        self.checks: dict[str, list[dict[str, str]]] = {}
        self.order: dict[str, list[str]] = {}
        self.links: list[str] = []
        self.tags: set[str] = set()
        self._lang = ""
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.add(tag)
        self.links += [
            v or "" for k, v in attrs if k in ("src", "href", "action", "srcset", "data", "xlink:href")
        ]
        if tag == "main":
            self._lang = a.get("lang") or ""
            self.rows[self._lang], self.text[self._lang] = [], []
            self.checks[self._lang], self.order[self._lang] = [], []
        if not self._lang:
            return
        if tag == "tr":
            self.rows[self._lang].append([])
            if a.get("data-check"):
                self.checks[self._lang].append({"name": a["data-check"] or "", "ok": a.get("data-ok") or ""})
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "section" or (tag == "div" and "verdict" in (a.get("class") or "")):
            self.order[self._lang].append(a.get("id") or a.get("class") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._lang and self.rows[self._lang]:
            self.rows[self._lang][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        if tag == "main":
            self._lang = ""

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._lang:
            self.text[self._lang].append(data)

    def all_text(self, lang: str) -> str:
        return " ".join(" ".join(self.text[lang]).split())


def _first(row: list[str]) -> str:
    """The first word of a row's first cell (a variable's code)."""
    words = row[0].split() if row else []
    return words[0] if words else ""


def _page(html: str) -> _Page:
    p = _Page()
    p.feed(html)
    return p


# --------------------------------------------------------------------------------------------
# self-contained, escaped, deterministic


def test_report_is_self_contained(candidate: Release) -> None:
    html, _ = _load(candidate.candidate)
    page = _page(html)
    assert "svg" in page.tags, "the report has no charts"
    assert page.links == []  # no image, no style sheet, no address of any kind
    assert not re.search(r"(src|href)\s*=", html, re.I)
    for tag in ("script", "link", "iframe", "img", "object", "embed", "base", "form"):
        assert tag not in page.tags, tag
    assert "@import" not in html and "url(" not in html
    assert re.findall(r"https?://[^\s\"'<]+", html) == ["http://www.w3.org/2000/svg"] * html.count("<svg")


def test_report_text_is_escaped(small_reports) -> None:
    _, report = _load(small_reports["refused"])
    evil = copy.deepcopy(report)
    evil["order"]["purpose"] = '<script>alert("x")</script>'
    evil["verdict"]["reasons"] = ['<img src="https://example.org/x.png">']
    evil["verdict"]["checks"][0]["reason"] = '<img src="https://example.org/y.png">'
    evil["verdict"]["checks"][0]["name"] = "<b>x</b>"
    evil["recodings"] = [{"variable": "<i>v</i>", "description": "<svg onload=alert(1)>"}]
    for html in (rep.render_html(evil), rep.render_summary(evil)):
        assert "<script>" not in html and '<img src="https' not in html and "<svg onload" not in html
        assert "<i>v</i>" not in html
    html = rep.render_html(evil)
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "&lt;img src=&#34;https://example.org/y.png&#34;&gt;" in html  # text, not a tag
    assert _page(html).links == []


def test_rendering_is_deterministic(small_reports) -> None:
    html, report = _load(small_reports["daglig"])
    assert rep.render_html(report) == html == rep.render_html(report)
    summary = (small_reports["daglig"] / rep.SUMMARY_FILE).read_text(encoding="utf-8")
    assert rep.render_summary(report) == summary
    # the page carries no time of its own making
    assert not re.search(r"\b20\d\d-\d\d-\d\dT\d\d:", html)


# --------------------------------------------------------------------------------------------
# the verdict and every check first, in both languages


@pytest.mark.parametrize("which", ["daglig", "refused"])
def test_verdict_and_every_check_first_in_both_languages(small_reports, which) -> None:
    html, report = _load(small_reports[which])
    page = _page(html)
    assert set(page.rows) == {SV, EN}
    decision = report["verdict"]["decision"]
    for lang in (SV, EN):
        # the verdict box, then the checks, before any other section
        assert page.order[lang][:2] == [f"{lang}-verdict", f"verdict {decision}"], page.order[lang]
        names = [c["name"] for c in report["verdict"]["checks"]]
        assert [c["name"] for c in page.checks[lang]] == names
        assert [c["ok"] for c in page.checks[lang]] == [
            str(c["ok"]).lower() for c in report["verdict"]["checks"]
        ]
    text = {lang: page.all_text(lang) for lang in (SV, EN)}
    if decision == "releasable":
        assert "Beslut: kan lämnas ut" in text[SV] and "Verdict: releasable" in text[EN]
    else:
        assert "Beslut: avslås" in text[SV] and "Verdict: refused" in text[EN]
    # figure, threshold and reason of every check, in each language's own words and numbers
    for c in report["verdict"]["checks"]:
        for lang, L in ((SV, SVL), (EN, ENL)):
            row = next(r for r in page.rows[lang] if len(r) == 5 and r[0].split()[-1] == c["name"])
            assert row[2] == " ".join(L.check_value(c, "figure").split())
            assert row[3] == " ".join(L.check_value(c, "threshold").split())
        en_row = next(r for r in page.rows[EN] if len(r) == 5 and r[0].split()[-1] == c["name"])
        assert en_row[4] == c["reason"]
        sv_row = next(r for r in page.rows[SV] if len(r) == 5 and r[0].split()[-1] == c["name"])
        assert sv_row[4] != c["reason"], "the Swedish reason is the English sentence"
    k = next(c for c in report["verdict"]["checks"] if c["name"] == "k")
    assert f"har {k['figure']} personer; policyn kräver {k['threshold']}" in text[SV]
    sup = next(c for c in report["verdict"]["checks"] if c["name"] == "suppression")
    assert f"{100 * sup['figure']:.2f}".replace(".", ",") + "\u00a0%" in "".join(page.text[SV])


def test_swedish_page_is_swedish(small_reports) -> None:
    page = _page(_load(small_reports["refused"])[0])
    sv, en = page.all_text(SV), page.all_text(EN)
    for word in ("Vad angriparen antas veta", "Grindens kontroller", "Informationsförlust", "l-diversitet"):
        assert word in sv
    for word in ("What the intruder is assumed to know", "The gate's checks", "Information loss"):
        assert word in en and word not in sv
    # every Swedish text has an English twin and both are used
    assert all(len(v) == 2 for v in TEXT.values())
    assert "ålder vid mätdatum i grupperna 0-17, 18-44, 45-64, 65-79, 80+" in sv
    assert SVL.n(12345) == "12\u00a0345" and ENL.n(12345) == "12,345"
    assert SVL.pct(0.14159) == "14,16\u00a0%" and ENL.pct(0.14159) == "14.16\u00a0%"


# --------------------------------------------------------------------------------------------
# the page and the JSON say the same


def test_verdict_order_and_linkage_in_the_page(candidate: Release) -> None:
    html, report = _load(candidate.candidate)
    assert report["verdict"]["decision"] == "releasable"
    assert 'class="verdict releasable"' in html and "Verdict: releasable" in html
    assert (
        "Reviewer report: order B2026-0023" in html and "Granskningsrapport: beställning B2026-0023" in html
    )
    rows = _page(html).rows[EN]
    assert ["Order", "B2026-0023"] in rows
    assert ["Project", report["order"]["project_id"]] in rows
    (link,) = report["linkage"]["registers"]
    row = next(r for r in rows if r and r[0] == "deaths")
    assert row[2:5] == [ENL.n(link["rows"]), ENL.n(link["matched_persons"]), ENL.n(link["unmatched_persons"])]
    assert row[-1] == "death_date"
    # the intruder: the report's own sentence (English) and its parts in both languages
    page = _page(html)
    assert report["risk"]["intruder"]["statement"] in page.all_text(EN)
    assert "Angriparen har den här leveransen och projektets tidigare leveranser i loggen" in page.all_text(
        SV
    )
    assert "R14: daglig verksamhet ges bara till personkrets 1 och 2" in page.all_text(SV)


def test_figures_in_the_page_are_those_of_the_json(candidate: Release) -> None:
    html, report = _load(candidate.candidate)
    page = _page(html)
    for lang, L in ((EN, ENL), (SV, SVL)):
        rows = page.rows[lang]
        for when in ("before", "after"):
            r = report["risk"][when]
            expected = [
                L.t(when),
                L.n(r["min_class_size"]),
                L.n(r["records_below_k"]),
                L.n(r["sample_uniques"]),
                L.num(r["expected_reidentifications"]),
            ]
            assert [" ".join(x.split()) for x in expected] in rows, when
        for var, facts in report["suppression"]["per_variable"].items():
            cells = [
                " ".join(x.split())
                for x in (L.n(facts["count"]), L.pct(facts["share"]), L.n(facts["persons"]))
            ]
            assert any(_first(r) == var and r[1:] == cells for r in rows), var
        for year, n in report["selection"]["rows_by_year"].items():
            assert [year, " ".join(L.n(n).split())] in rows
        # the small classes, one size at a time, as numbers
        before, after = report["risk"]["before"]["class_sizes"], report["risk"]["after"]["class_sizes"]
        for size, b in before["small"].items():
            a = after["small"][size]
            expected = [
                size,
                *(" ".join(L.n(x).split()) for x in (b["classes"], b["persons"], a["classes"], a["persons"])),
            ]
            assert expected in rows, size
        # information loss: three measures per variable
        for var, x in report["information_loss"]["per_variable"].items():
            share, tvd = " ".join(L.pct(x["suppressed_share"]).split()), L.num(x["total_variation"], 4)
            assert any(_first(r) == var and r[2:] == [share, tvd] for r in rows), var
    assert (
        f"{ENL.n(report['selection']['persons'])} persons in {ENL.n(report['selection']['rows'])} rows"
        in html
    )
    rows = page.rows[EN]
    for rec in report["recodings"]:
        assert [rec["variable"], rec["description"]] in rows
    t = report["policy"]["thresholds"]
    assert f"k = {t['k']}, l = {t['l']}" in html


def test_unlinked_order_has_no_linkage_table(small_reports) -> None:
    html, report = _load(small_reports["daglig"])
    assert report["linkage"] is None and 'class="linkage"' not in html
    assert "Verdict: releasable" in html and "B2026-0017" in html


def test_l_diversity_and_trajectories_in_the_page(small_reports) -> None:
    html, report = _load(small_reports["refused"])
    rows = _page(html).rows[EN]
    ld = report["risk"]["l_diversity"]
    assert set(ld) == {"bostad_vuxna", "daglig_verksamhet"}  # the delivered sensitive variables
    for var, x in ld.items():
        row = next(r for r in rows if _first(r) == var and len(r) == 5)
        assert row[1:] == [str(x["min"]), *(ENL.n(x["persons_by_l"][k]) for k in ("1", "2", "3"))]
    by = report["risk"]["trajectories"]["by_years"]
    assert sum(x["persons"] for x in by.values()) == report["selection"]["persons"]
    assert sum(x["withheld"] for x in by.values()) == report["risk"]["suppression"]["withheld_persons"]
    assert sum(x["below_k_before"] for x in by.values()) == report["risk"]["before"]["records_below_k"]
    for y, x in by.items():
        assert [y, *(ENL.n(x[k]) for k in ("persons", "below_k_before", "suppressed", "withheld"))] in rows


def test_refused_report_says_why_and_what_would_pass(small_reports) -> None:
    html, report = _load(small_reports["refused"])
    page = _page(html)
    assert report["verdict"]["decision"] == "refused" and report["verdict"]["reasons"]
    assert 'class="verdict refused"' in html and "The candidate does not meet its policy" in html
    for reason in report["verdict"]["reasons"]:
        assert html.count(reason) >= 2  # at the top and in the verdict section
    assert "What drives the refusal" in page.all_text(EN) and "Vad som orsakar avslaget" in page.all_text(SV)
    opts = report["risk"]["options"]
    assert opts["tried"] and all(o["below_k_before"] is not None for o in opts["tried"])
    nearest = opts["tried"][opts["nearest"]]
    assert (
        nearest["releasable"]
        and nearest["record_share"] <= report["policy"]["thresholds"]["max_suppressed_share"]
    )
    text = f"Nearest releasable option: leave out {' and '.join(nearest['variables'])}"
    assert text in page.all_text(EN)
    assert "Närmaste utlämningsbara alternativ: utelämna" in page.all_text(SV)


def test_the_nearest_option_is_what_the_gate_then_finds(small_reports, small, tmp_path) -> None:
    """Preparing the order without the variables the nearest option leaves out gives a releasable
    candidate with the figures the option reported: the options are the gate's own measure."""
    _, report = _load(small_reports["refused"])
    nearest = report["risk"]["options"]["tried"][report["risk"]["options"]["nearest"]]
    assert nearest["change"] == "leave_out"
    source = {"age_band": "age", "death_year": "death_date"}
    drop = {source.get(v, v) for v in nearest["variables"]}
    order = P.load_order(order_path(MORTALITY[1]))
    text = order_path(MORTALITY[1]).read_text(encoding="utf-8")
    kept = [v for v in order.variables if v not in drop]
    text = re.sub(r"\nvariables: \[[^\]]*\]", "\nvariables: [" + ", ".join(kept) + "]", text)
    if "death_date" in drop:
        text = re.sub(r"\nlinkages:.*", "\n", text, flags=re.S)
    path = tmp_path / "order.yaml"
    path.write_text(text, encoding="utf-8")
    store = make_keystore(tmp_path / "keys" / "k.json")
    cand = prepare_order(small, policy_path(MORTALITY[0]), path, store, tmp_path / "work", None)
    again = json.loads((cand.path / "report.json").read_text(encoding="utf-8"))
    assert cand.verdict == "releasable"
    assert again["risk"]["suppression"]["record_share"] == nearest["record_share"]
    assert again["risk"]["suppression"]["withheld_persons"] == nearest["withheld_persons"]
    assert again["risk"]["before"]["records_below_k"] == nearest["below_k_before"]


def test_a_releasable_candidate_tries_no_options(small_reports) -> None:
    _, report = _load(small_reports["daglig"])
    assert report["risk"]["options"] is None


# --------------------------------------------------------------------------------------------
# the short report that travels with the data


def test_summary_holds_no_risk_detail(small_reports) -> None:
    folder = small_reports["daglig"]
    summary = (folder / rep.SUMMARY_FILE).read_text(encoding="utf-8")
    _, report = _load(folder)
    # rendered from an allow-list: a report without (or with other) risk figures gives the same page
    changed = copy.deepcopy(report)
    changed["risk"] = {"before": {"min_class_size": 999}, "intruder": {"statement": "SECRET"}}
    for v in changed["information_loss"]["per_variable"].values():
        v["total_variation"] = 0.987654
    assert rep.render_summary(changed) == summary
    text = " ".join(_page(summary).all_text(lang) for lang in (SV, EN))
    for word in (
        "intruder",
        "angripare",
        "class",
        "re-identification",
        "återidentifiering",
        "Total variation",
        "Totalvariation",
        "below k",
        "Unique",
    ):
        assert word not in text, word
    assert report["risk"]["intruder"]["statement"] not in summary
    # what it does show: both languages, k, the delivered rows and each variable's suppressed share
    page = _page(summary)
    assert set(page.rows) == {SV, EN}
    il = report["information_loss"]
    assert f"{ENL.n(il['rows_delivered'])} rows from {ENL.n(il['persons_delivered'])} persons" in text
    for var, x in il["per_variable"].items():
        assert any(
            _first(r) == var and r[-1] == ENL.pct(x["suppressed_share"]).replace("\u00a0", " ")
            for r in page.rows[EN]
        )


def test_summary_only_for_a_releasable_candidate(small_reports) -> None:
    assert (small_reports["daglig"] / rep.SUMMARY_FILE).is_file()
    assert not (small_reports["refused"] / rep.SUMMARY_FILE).exists()
    manifest = json.loads((small_reports["daglig"] / "candidate.json").read_text(encoding="utf-8"))
    assert rep.SUMMARY_FILE in json.dumps(manifest)  # sealed with the candidate


# --------------------------------------------------------------------------------------------
# the figures the report adds, on frames with known answers


def test_class_distribution_is_exact_for_small_classes() -> None:
    # classes of sizes 1, 1, 2, 5, 5 and 40: persons carry their class's size
    sizes = np.array([1, 1, 2, 2, *[5] * 10, *[40] * 40])
    d = F.class_distribution(sizes, k=5)
    assert d["small"]["1"] == {"persons": 2, "classes": 2}
    assert d["small"]["2"] == {"persons": 2, "classes": 1}
    assert d["small"]["5"] == {"persons": 10, "classes": 2}
    assert d["small"]["9"] == {"persons": 0, "classes": 0}
    assert [(b["from"], b["to"], b["persons"], b["classes"]) for b in d["log2_bins"]] == [
        (1, 1, 2, 2),
        (2, 3, 2, 1),
        (4, 7, 10, 2),
        (8, 15, 0, 0),
        (16, 31, 0, 0),
        (32, 63, 40, 1),
    ]
    assert d["largest"] == 40 and d["classes"] == 6


def test_total_variation_and_information_loss() -> None:
    extract = pd.DataFrame(
        {
            "p": ["a", "a", "b", "c", "d"],
            "year": [2010, 2011, 2010, 2010, 2010],
            "sex": ["1", "1", "2", "2", "1"],
            "flag": [0, 1, 0, 0, 1],
        }
    )
    # person d withheld; sex suppressed on b's row
    treated = extract.iloc[:4].copy()
    treated["sex"] = ["1", "1", "..", "2"]
    treated["suppressed"] = ["", "", "sex", ""]
    il = F.information_loss(extract, treated, [], "p", ["year", "sex"])
    sex = il["per_variable"]["sex"]
    assert sex["suppressed_rows"] == 1 and sex["suppressed_share"] == 0.25
    # extract: 1 3/5, 2 2/5; seen: 1 2/3, 2 1/3 -> TVD = |0.6 - 0.6667| = 0.0667
    assert sex["total_variation"] == pytest.approx(1 / 15, abs=1e-6)
    assert il["per_variable"]["flag"]["total_variation"] == pytest.approx(
        0.5 * (abs(3 / 5 - 3 / 4) + abs(2 / 5 - 1 / 4)), abs=1e-6
    )
    assert il["rows_withheld"] == 1 and il["persons_delivered"] == 3
    # (1 suppressed value + 1 withheld row x 2 quasi-identifiers) / (5 rows x 2)
    assert il["quasi_identifier_values_not_shown"] == pytest.approx(0.3)
    assert F.total_variation(extract["sex"], extract["sex"]) == 0.0
    assert F.total_variation(pd.Series(["1"]), pd.Series(["2"])) == 1.0


def test_trajectories_count_persons_by_their_years() -> None:
    extract = pd.DataFrame({"p": ["a", "a", "a", "b", "c", "c"], "year": [1, 2, 3, 1, 1, 2]})
    treated = pd.DataFrame(
        {"p": ["a", "a", "a", "b"], "year": [1, 2, 3, 1], "suppressed": ["sex", "sex", "sex", ""]}
    )
    before_sizes = np.array([1, 3, 1])  # persons in the order first seen: a, b, c
    t = F.trajectories(extract, treated, "p", before_sizes, k=2)
    assert t["by_years"] == {
        "1": {"persons": 1, "below_k_before": 0, "suppressed": 0, "withheld": 0},
        "2": {"persons": 1, "below_k_before": 1, "suppressed": 0, "withheld": 1},
        "3": {"persons": 1, "below_k_before": 1, "suppressed": 1, "withheld": 0},
    }


def test_wider_age_bands_merge_two_by_two() -> None:
    values = pd.Series(["0-17", "18-44", "45-64", "65-79", "80+", "18-44"])
    merged, labels = F._wider_bands(values, [0, 18, 45, 65, 80], True)
    assert labels == ["0-44", "45-79", "80+"]
    assert merged.tolist() == ["0-44", "0-44", "45-79", "45-79", "80+", "0-44"]
    # a closed top keeps its upper end; two bands cannot be made wider
    merged, labels = F._wider_bands(pd.Series(["0-6", "7-12", "13-17"]), [0, 7, 13, 18], False)
    assert labels == ["0-12", "13-17"] and merged.tolist() == ["0-12", "0-12", "13-17"]
    assert F._wider_bands(pd.Series(["0-17", "18+"]), [0, 18], True) is None


def test_l_diversity_counts_value_sets_per_class() -> None:
    from lsssdc.disclosure.persons import PersonClasses

    rows = pd.DataFrame({"p": ["a", "a", "b", "c", "d"], "dv": [0, 1, 0, 1, 1]})
    codes, uniques = pd.factorize(rows["p"], sort=False)
    groups = np.array([0, 0, 1, 1])  # a and b in one class, c and d in another
    classes = PersonClasses(codes.astype(np.int64), len(uniques), groups, np.bincount(groups)[groups])
    ld = F.l_diversity(rows, classes, ["dv"])
    # a {0,1} and b {0}: l = 2; c {1} and d {1}: l = 1
    assert ld["dv"] == {"min": 1, "persons_by_l": {"1": 2, "2": 2, "3": 0}}


# --------------------------------------------------------------------------------------------
# golden structure


_DATA_KEY = re.compile(r"[<>]?\d[\d.]*(?:[-+][\d.]*)?|\d{2}R?")


def structure(obj: Any) -> Any:
    """The shape of a report: keys and value types, with data-valued keys (years, codes, bins)
    folded into one, and lists shown by their first element."""
    if isinstance(obj, dict):
        if obj and all(_DATA_KEY.fullmatch(str(k)) for k in obj):
            return {"<data>": structure(obj[sorted(obj)[0]])}
        return {k: structure(obj[k]) for k in sorted(obj)}
    if isinstance(obj, list):
        return [structure(obj[0])] if obj else []
    if isinstance(obj, bool):
        return "bool"
    if isinstance(obj, int | float):
        return "number"
    if obj is None:
        return "null"
    return "string"


def golden_view(report: dict[str, Any]) -> dict[str, Any]:
    risk = report.get("risk") or {}
    return {
        "structure": structure(report),
        "verdict": {
            "decision": report["verdict"]["decision"],
            "checks": [(c["name"], c["ok"]) for c in report["verdict"]["checks"]],
            "reasons": len(report["verdict"]["reasons"]),
        },
        "thresholds": report["policy"]["thresholds"],
        "quasi_identifiers": risk.get("quasi_identifiers"),
        "criteria": (risk.get("after") or risk.get("before") or {}).get("criteria"),
        "delivered_variables": report["delivered_variables"],
    }


def _golden(name: str, view: dict[str, Any]) -> None:
    path = GOLDEN / name
    text = json.dumps(view, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"missing golden file {path}; run with LSSSDC_UPDATE_GOLDEN=1"
    assert json.loads(text) == json.loads(path.read_text(encoding="utf-8"))


def test_golden_report_of_the_linked_order(candidate: Release) -> None:
    _golden(f"report-mortality-{candidate.name}.json", golden_view(_load(candidate.candidate)[1]))


def test_golden_report_of_a_refused_order(small_reports) -> None:
    _golden("report-refused.json", golden_view(_load(small_reports["refused"])[1]))


def test_golden_view_notices_a_missing_section(candidate: Release) -> None:
    report = _load(candidate.candidate)[1]
    changed = copy.deepcopy(report)
    del changed["risk"]["after"]["records_below_k"]
    assert golden_view(changed) != golden_view(report)
    changed = copy.deepcopy(report)
    changed["policy"]["thresholds"]["k"] = 3
    assert golden_view(changed) != golden_view(report)
