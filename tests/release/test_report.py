"""The reviewer report: one self-contained, escaped HTML page and the same facts as JSON.

Golden files (tests/release/golden/) fix the structure of report.json, the verdict and the
thresholds, not the volatile figures; regenerate them with ``LSSSDC_UPDATE_GOLDEN=1``.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from lsssdc.release import report as rep
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
    return {"daglig": dv.path, "refused": refused.path}


def _load(candidate: Path) -> tuple[str, dict[str, Any]]:
    html = (candidate / "report.html").read_text(encoding="utf-8")
    return html, json.loads((candidate / "report.json").read_text(encoding="utf-8"))


class _Page(HTMLParser):
    """The rows of every table (cell texts), every src/href, and the tags seen."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self.links: list[str] = []
        self.tags: set[str] = set()
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.links += [v or "" for k, v in attrs if k in ("src", "href", "action", "srcset", "data")]
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self.rows:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _page(html: str) -> _Page:
    p = _Page()
    p.feed(html)
    return p


# --------------------------------------------------------------------------------------------
# self-contained and escaped


def test_report_is_self_contained(candidate: Release) -> None:
    html, _ = _load(candidate.candidate)
    page = _page(html)
    assert page.links, "the report has no images"
    for link in page.links:
        assert link.startswith("data:image/png;base64,"), link[:40]
        png = base64.b64decode(link.split(",", 1)[1], validate=True)
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", html, re.I)
    assert "script" not in page.tags and "link" not in page.tags and "iframe" not in page.tags
    assert "@import" not in html and "url(" not in html


def test_report_text_is_escaped(small_reports) -> None:
    _, report = _load(small_reports["refused"])
    evil = copy.deepcopy(report)
    evil["order"]["purpose"] = '<script>alert("x")</script>'
    evil["verdict"]["reasons"] = ['<img src="https://example.org/x.png">']
    html = rep.render_html(evil)
    assert "<script>" not in html and '<img src="https' not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "&lt;img src=&#34;https://example.org/x.png&#34;&gt;" in html  # text, not a tag
    assert all(link.startswith("data:") for link in _page(html).links)


def test_rendering_is_deterministic(small_reports) -> None:
    html, report = _load(small_reports["daglig"])
    assert rep.render_html(report) == html == rep.render_html(report)


# --------------------------------------------------------------------------------------------
# the page and the JSON say the same


def test_verdict_order_and_linkage_in_the_page(candidate: Release) -> None:
    html, report = _load(candidate.candidate)
    assert report["verdict"]["decision"] == "releasable"
    assert 'class="verdict releasable"' in html and "Verdict: releasable" in html
    assert "Reviewer report: order B2026-0023" in html
    rows = _page(html).rows
    assert ["Order", "B2026-0023"] in rows
    assert ["Project", report["order"]["project_id"]] in rows
    # the linkage table of a linked order
    assert "<h2>Linkage</h2>" in html
    (link,) = report["linkage"]["registers"]
    row = next(r for r in rows if r and r[0] == "deaths")
    assert row[2:5] == [str(link["rows"]), str(link["matched_persons"]), str(link["unmatched_persons"])]
    assert row[-1] == "death_date"


def test_figures_in_the_page_are_those_of_the_json(candidate: Release) -> None:
    html, report = _load(candidate.candidate)
    rows = _page(html).rows
    for when in ("before", "after"):
        r = report["risk"][when]
        expected = [
            when,
            str(r["min_class_size"]),
            str(r["records_below_k"]),
            str(r["sample_uniques"]),
            f"{r['expected_reidentifications']:.2f}",
        ]
        assert expected in rows, when
    for var, facts in report["suppression"]["per_variable"].items():
        assert [f"{var}", str(facts["count"]), f"{100 * facts['share']:.2f} %"] in rows, var
    for year, n in report["selection"]["rows_by_year"].items():
        assert [year, str(n)] in rows
    assert f"{report['selection']['persons']} persons in {report['selection']['rows']} rows" in html
    for rec in report["recodings"]:
        assert [rec["variable"], rec["description"]] in rows
    t = report["policy"]["thresholds"]
    assert f"k = {t['k']}, l = {t['l']}" in html


def test_unlinked_order_has_no_linkage_table(small_reports) -> None:
    html, report = _load(small_reports["daglig"])
    assert report["linkage"] is None and "<h2>Linkage</h2>" not in html
    assert "Verdict: releasable" in html and "B2026-0017" in html


def test_refused_report_says_why(small_reports) -> None:
    html, report = _load(small_reports["refused"])
    assert report["verdict"]["decision"] == "refused" and report["verdict"]["reasons"]
    assert 'class="verdict refused"' in html and "The candidate does not meet its policy" in html
    for reason in report["verdict"]["reasons"]:
        assert html.count(reason) >= 2  # at the top and in the verdict section


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
