"""The reports in a real browser: the system's Chromium renders a releasable and a refused
reviewer report and the short data report, with no console error and no request beyond the
file itself; the rendered DOM holds the verdict, every check and both languages; the language
switch works without script; the print stylesheet hides the switch. Screenshots (and the
printed PDF) of each go to a folder the test prints: ``$LSSSDC_TEST_ARTIFACTS/browser`` when
set (``.ci/run`` sets it), else pytest's temporary folder.

Marked ``browser``: not in the default run; skipped without Chromium, failed instead under
``LSSSDC_REQUIRE_BROWSER=1``. Driver: tests/browser.py (DevTools over a pipe, no library).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lsssdc.release import report as rep
from lsssdc.release.report_i18n import EN, SV, Lang
from tests import browser
from tests.release.conftest import DAGLIG, MORTALITY, make_keystore, order_path, policy_path, prepare_order

pytestmark = pytest.mark.browser

#: Read from the rendered page: per <main>, whether it shows, its verdict, checks and charts.
_DOM = """(() => {
  const out = {};
  for (const m of document.querySelectorAll('main')) {
    const box = m.querySelector('.verdict');
    const first = m.querySelector('section');
    out[m.lang] = {
      shown: getComputedStyle(m).display !== 'none',
      verdict: box ? box.dataset.verdict : null,
      verdictText: box ? box.textContent.trim().split('\\n')[0] : null,
      firstSection: first ? first.id : null,
      checks: [...m.querySelectorAll('tr.check')].map(r => ({
        name: r.dataset.check, ok: r.dataset.ok,
        cells: [...r.cells].map(c => c.textContent.replace(/\\s+/g, ' ').trim())})),
      charts: [...m.querySelectorAll('svg.chart')].map(s => Math.round(s.getBoundingClientRect().width)),
      h1: (m.querySelector('h1') || {}).textContent,
    };
  }
  return out;
})()"""


@pytest.fixture(scope="module")
def chromium() -> Iterator[browser.Chromium]:
    with browser.Chromium(browser.require()) as c:
        yield c


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return browser.artifacts(tmp_path_factory, "browser")


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory, small) -> dict[str, Path]:
    """A releasable candidate (daglig verksamhet) and a refused one (mortality, shipped policy)."""
    browser.require()
    root = tmp_path_factory.mktemp("browser-reports")
    store = make_keystore(root / "keys" / "k.json")
    ok = prepare_order(small, policy_path(DAGLIG[0]), order_path(DAGLIG[1]), store, root / "work", None)
    no = prepare_order(small, policy_path(MORTALITY[0]), order_path(MORTALITY[1]), store, root / "work", None)
    assert (ok.verdict, no.verdict) == ("releasable", "refused")
    return {"releasable": ok.path, "refused": no.path}


def _no_errors(page: browser.Page) -> None:
    assert page.errors() == [], page.errors()
    # nothing but the file itself is fetched: no image, font, style sheet or address
    assert page.requests == [page.url], page.requests


def _shown(dom: dict[str, Any]) -> list[str]:
    return [lang for lang, m in dom.items() if m["shown"]]


@pytest.mark.parametrize("which", ["releasable", "refused"])
def test_reviewer_report_in_chromium(chromium, reports, shots, which, capsys) -> None:
    folder = reports[which]
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    assert report["verdict"]["decision"] == which
    page = chromium.open(folder / "report.html")
    _no_errors(page)
    dom = chromium.evaluate(_DOM)

    # both languages are in the page; Swedish shows first, English is one click away
    assert set(dom) == {SV, EN}
    assert _shown(dom) == [SV]
    checks = report["verdict"]["checks"]
    for lang in (SV, EN):
        m, L = dom[lang], Lang(lang)
        assert m["verdict"] == which and m["firstSection"] == f"{lang}-verdict"
        assert m["verdictText"].startswith(
            L.t("verdict_releasable" if which == "releasable" else "verdict_refused")
        )
        assert [c["name"] for c in m["checks"]] == [c["name"] for c in checks]
        for seen, c in zip(m["checks"], checks, strict=True):
            assert seen["ok"] == str(c["ok"]).lower()
            assert seen["cells"][1] == L.t("passed" if c["ok"] else "failed")
            assert seen["cells"][2] == " ".join(L.check_value(c, "figure").split())
            assert seen["cells"][3] == " ".join(L.check_value(c, "threshold").split())
        assert m["charts"], f"{lang}: no chart"
    assert [c["cells"][4] for c in dom[EN]["checks"]] == [c["reason"] for c in checks]
    assert dom[SV]["h1"].startswith("Granskningsrapport") and dom[EN]["h1"].startswith("Reviewer report")
    assert all(w > 300 for w in dom[SV]["charts"]), dom[SV]["charts"]  # drawn, at a readable size
    chromium.screenshot(shots / f"report-{which}-sv.png")

    # the switch, by a click on its label as a reader would
    chromium.evaluate("document.querySelector('label[for=\"lang-en\"]').click()")
    dom = chromium.evaluate(_DOM)
    assert _shown(dom) == [EN]
    assert all(w > 300 for w in dom[EN]["charts"]), dom[EN]["charts"]
    chromium.screenshot(shots / f"report-{which}-en.png")

    # print: the switch is hidden, the chosen language printed
    chromium.call("Emulation.setEmulatedMedia", {"media": "print"})
    try:
        hidden = chromium.evaluate("getComputedStyle(document.querySelector('nav.switch')).display")
        assert hidden == "none" and _shown(chromium.evaluate(_DOM)) == [EN]
    finally:
        chromium.call("Emulation.setEmulatedMedia", {"media": ""})
    chromium.pdf(shots / f"report-{which}-en.pdf")
    _no_errors(chromium.collect(browser.Page(page.url, requests=[page.url])))
    shutil.copyfile(folder / "report.html", shots / f"report-{which}.html")
    with capsys.disabled():
        print(f"\n[browser] {which} report: screenshots in {shots}")


def test_data_report_in_chromium(chromium, reports, shots, capsys) -> None:
    folder = reports["releasable"]
    page = chromium.open(folder / rep.SUMMARY_FILE)
    _no_errors(page)
    text = chromium.evaluate(
        "Object.fromEntries([...document.querySelectorAll('main')].map(m => [m.lang, m.textContent]))"
    )
    assert set(text) == {SV, EN}
    assert "Om leveransen B2026-0017" in text[SV] and "About delivery B2026-0017" in text[EN]
    for lang in (SV, EN):
        assert "intruder" not in text[lang] and "angripare" not in text[lang]
    chromium.screenshot(shots / "data-report-releasable-sv.png")
    with capsys.disabled():
        print(f"\n[browser] data report: screenshot in {shots}")


def test_a_console_error_is_caught(chromium, tmp_path) -> None:
    """The checks above can fail: a script error, a console error and a missing file are seen."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!DOCTYPE html><html><body><p>x</p><img src="missing.png">'
        "<script>console.error('boom'); undefined_function();</script></body></html>",
        encoding="utf-8",
    )
    page = chromium.open(bad)
    errors = page.errors()
    assert any("console.error: boom" in e for e in errors), errors
    assert any("undefined_function" in e for e in errors), errors
    assert any("ERR_FILE_NOT_FOUND" in e for e in errors), errors
    assert len(page.requests) == 2  # the page and the image it asked for
