"""The reviewer report and the short report that travels with the data: self-contained HTML.

The report dictionary is assembled by the pipeline from the steps' own records (and
:mod:`lsssdc.release.report_facts`); this module only renders it. Both pages hold Swedish and
English in one file, switched without script (a pair of radio buttons and the stylesheet);
charts are inline SVG drawn from the figures in the dictionary (:mod:`report_svg`); there is
no script, no image file and no address outside the page, and the same report gives the same
bytes. The reviewer report puts the verdict and every check first; the short report
(``data-report.html``) says what was released and how it was protected, with no risk figure.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from typing import Any

import jinja2
from markupsafe import Markup

from lsssdc.disclosure.membership import SHARE_BINS
from lsssdc.release import codebook
from lsssdc.release import report_svg as svg
from lsssdc.release.report_i18n import EN, LANGUAGES, SV, Lang, recoding_sv

#: The short report's file name in the candidate (and, when packaged, in the delivery).
SUMMARY_FILE = "data-report.html"

_ENV = jinja2.Environment(
    loader=jinja2.FunctionLoader(
        lambda name: (resources.files(__package__) / "templates" / name).read_text("utf-8")
    ),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def _plain(report: dict[str, Any]) -> dict[str, Any]:
    """The report as its JSON form, so a page made at prepare and one rendered later from
    report.json are the same bytes."""
    return json.loads(json.dumps(report, sort_keys=True, ensure_ascii=False, default=str))


def render_html(report: dict[str, Any]) -> str:
    """The reviewer report: every check, the intruder, risk, treatment, information loss."""
    data = _plain(report)
    views = [reviewer_view(data, lang) for lang in LANGUAGES]
    return _ENV.get_template("report.html.j2").render(r=data, views=views, langs=LANGUAGES)


def render_summary(report: dict[str, Any]) -> str:
    """The short report that may travel with the data: rendered from an allow-list of the
    report's parts (order, policy name and k, recodings, what a user sees of suppression), so
    no risk figure can reach it."""
    data = summary_facts(_plain(report))
    views = [summary_view(data, lang) for lang in LANGUAGES]
    return _ENV.get_template("summary.html.j2").render(views=views, langs=LANGUAGES)


# --------------------------------------------------------------------------------------------
# helpers


def _label(name: str, lang: Lang) -> str:
    d = codebook.describe(name)
    label = d["label_sv"] if lang.code == SV else d["label_en"]
    return "" if label == name else label


def _var(name: str, lang: Lang) -> Markup:
    label = _label(name, lang)
    out = Markup("<code>{}</code>").format(name)
    return out + Markup(' <span class="label">{}</span>').format(label) if label else out


def _vars(names: list[str], lang: Lang) -> Markup:
    return Markup(", ").join(_var(n, lang) for n in names)


def _recoding(x: dict[str, Any], L: Lang) -> tuple[Markup, str, str]:
    """Variable, description and the description's language (English where no Swedish exists)."""
    sv = recoding_sv(x) if L.code == SV else ""
    return Markup("<code>{}</code>").format(x["variable"]), sv or x["description"], L.code if sv else EN


def _codes(names: list[str]) -> Markup:
    return Markup(", ").join(Markup("<code>{}</code>").format(n) for n in names)


def _by_number(d: dict[str, Any]) -> list[tuple[int, Any]]:
    return sorted(((int(k), v) for k, v in d.items()), key=lambda kv: kv[0])


def _share_label(key: str, lang: Lang) -> str:
    if key == "no population":
        return lang.t("no_population")
    if key == ">1":
        return f">{lang.pct(1.0, 0)}"
    v = float(key[2:])
    digits = 0 if v >= 0.01 else 1
    return f"≤{lang.pct(v, digits)}"


# --------------------------------------------------------------------------------------------
# the reviewer report, one language at a time


def reviewer_view(r: dict[str, Any], L: Lang) -> dict[str, Any]:
    """Everything the page shows in one language: texts, formatted figures and charts."""
    verdict = r["verdict"]
    refused = verdict["decision"] != "releasable"
    checks = [
        {
            "name": c["name"],
            "title": L.check_title(c["name"]),
            "ok": c["ok"],
            "result": L.t("passed") if c["ok"] else L.t("failed"),
            "figure": L.check_value(c, "figure"),
            "threshold": L.check_value(c, "threshold"),
            "reason": L.check_reason(c) or c["reason"],
            "reason_lang": L.code if L.check_reason(c) else EN,
            "lead": "" if L.check_reason(c) else L.t("why_other"),
        }
        for c in verdict["checks"]
    ]
    reasons = [c for c in checks if not c["ok"]]
    risk = r.get("risk") or {}
    pol = r["policy"]
    t = pol["thresholds"]
    v: dict[str, Any] = {
        "lang": L.code,
        "t": L.t,
        "refused": refused,
        "verdict_text": L.t("verdict_refused" if refused else "verdict_releasable"),
        "verdict_end": L.t("verdict_fails" if refused else "verdict_meets"),
        "checks": checks,
        "reasons": reasons,
        "no_checks": not verdict["checks"],
        "order": _order_rows(r, L),
        "policy_rows": [
            (L.t("policy"), f"{pol['name']} — {pol.get('description', '')}"),
            (
                L.t("thresholds"),
                L.t(
                    "thresholds_text",
                    k=t["k"],
                    l=t["l"],
                    share=L.pct(t["max_suppressed_share"], 1),
                    tf=t.get("table_frequency"),
                ),
            ),
            (L.t("qis"), _vars(pol.get("quasi_identifiers") or [], L) or "—"),
            (L.t("sensitive"), _vars(pol.get("sensitive") or [], L) or "—"),
            (L.t("policy_file"), Markup("<code>{}</code>").format(pol.get("hash", ""))),
        ],
        "inputs": [(i["name"], i["hash"], L.n(i["rows"])) for i in r.get("inputs", [])],
        "selection": _selection(r, L),
        "linkage": _linkage(r, L),
        "recodings": [_recoding(x, L) for x in r["recodings"]],
        "tables": [
            (
                x["name"],
                L.n(x["cells"]),
                L.n(x["primary"]),
                L.n(x["secondary"]),
                L.t("audit_ok") if x["audit_ok"] else L.t("audit_failed"),
            )
            for x in (r.get("tables") or [])
        ],
        "table_history": _table_history(r, L) if r.get("table_history") else None,
        "cell_key": _cell_key(r, L) if r.get("cell_key") else None,
        "intruder": _intruder(r, risk, L),
        "risk": _risk(risk, t, L) if risk.get("before") else None,
        "ldiv": _ldiv(risk, t, L) if risk.get("before") else None,
        "traj": _traj(risk, L) if (risk.get("trajectories") or {}).get("by_years") else None,
        "membership": _membership(risk, L) if risk.get("before") else None,
        "treatment": _treatment(r, risk, checks, L) if risk.get("before") else None,
        "loss": _loss(r, L) if r.get("information_loss") else None,
    }
    return v


def _table_history(r: dict[str, Any], L: Lang) -> str:
    h = r["table_history"]

    def names(items: list[dict[str, Any]]) -> str:
        return ", ".join(f"{x['order_id']} ({x['entry']})" for x in items) or "—"

    return L.t(
        "table_history_text", tables=names(h.get("tables") or []), extracts=names(h.get("extracts") or [])
    )


def _cell_key(r: dict[str, Any], L: Lang) -> dict[str, Any]:
    figures = r["cell_key"]
    p = figures[0]["params"]
    return {
        "text": L.t("cell_key_text", d=p["D"], v=L.num(p["V"], 1), js1=max(p["js"] - 1, 0)),
        "rows": [
            (
                f["table"],
                L.num(f["mean_abs_error"]),
                L.num(f["mean_abs_error_leaves"]),
                L.num(f["mean_abs_error_margins"]),
                L.n(f["max_abs_error"]),
                L.pct(f["share_unchanged"], 1),
            )
            for f in figures
        ],
    }


def _order_rows(r: dict[str, Any], L: Lang) -> list[tuple[str, Any]]:
    o = r["order"]
    rec = o.get("recipient") or {}
    return [
        (L.t("order_id"), o["order_id"]),
        (L.t("diarienummer"), o.get("diarienummer", "")),
        (L.t("project"), o.get("project_id", "")),
        (L.t("ethics"), o.get("ethics_approval") or "—"),
        (L.t("recipient"), f"{rec.get('name', '')}, {rec.get('organisation', '')}"),
        (L.t("purpose"), o.get("purpose", "")),
        (L.t("years"), ", ".join(str(y) for y in o.get("years", []))),
        (L.t("order_file"), Markup("<code>{}</code>").format(o.get("hash", ""))),
    ]


def _selection(r: dict[str, Any], L: Lang) -> dict[str, Any]:
    s = r["selection"]
    return {
        "rule": s.get("population_rule", ""),
        "text": L.t(
            "population_text",
            persons=L.n(s.get("persons", 0)),
            rows=L.n(s.get("rows", 0)),
            register=L.n(s.get("register_rows", 0)),
        ),
        "years": [(y, L.n(n)) for y, n in _by_number(s.get("rows_by_year", {}))],
        "delivered": _vars(r.get("delivered_variables", []), L),
    }


def _linkage(r: dict[str, Any], L: Lang) -> list[tuple[Any, ...]]:
    link = r.get("linkage") or {}
    return [
        (
            x["register"],
            x["key"],
            L.n(x["rows"]),
            L.n(x["matched_persons"]),
            L.n(x["unmatched_persons"]),
            L.pct(x["match_share"], 1),
            f"{L.n(x['duplicate_keys'])} ({x['duplicates_resolution']})",
            L.n(x["changed_numbers_applied"]),
            L.n(x["samordningsnummer"]),
            ", ".join(x["variables"]),
        )
        for x in link.get("registers") or []
    ]


def _intruder(r: dict[str, Any], risk: dict[str, Any], L: Lang) -> dict[str, Any] | None:
    intr = risk.get("intruder")
    if not intr:
        return {"missing": True} if risk else None
    knows = [q for q in intr.get("knows", []) if q != "year"]
    hist = r.get("history") or {}
    earlier = [d.get("order_id", "?") for d in hist.get("deliveries", [])]
    holds = (
        L.t("intruder_holds_ledger", earlier=", ".join(earlier) or L.t("intruder_holds_none"))
        if hist.get("ledger")
        else L.t("intruder_holds_alone")
    )
    rules = [L.rule(x) for x in (risk.get("treatment") or {}).get("implications", [])]
    return {
        "missing": False,
        "knows": Markup(L.t("intruder_knows", variables="{}")).format(_vars(knows, L)),
        "rules": rules,
        "holds": holds,
        "guarantee": L.t("intruder_guarantee", k=r["policy"]["thresholds"]["k"]),
        "statement": intr.get("statement", "") if L.code == EN else "",
    }


def _risk(risk: dict[str, Any], t: dict[str, Any], L: Lang) -> dict[str, Any]:
    k = int(t["k"])
    rows = []
    for when in ("before", "after"):
        f = risk.get(when)
        if f:
            rows.append(
                (
                    L.t(when),
                    L.n(f["min_class_size"]),
                    L.n(f["records_below_k"]),
                    L.n(f["sample_uniques"]),
                    L.num(f["expected_reidentifications"]),
                )
            )
    before = (risk.get("before") or {}).get("class_sizes")
    after = (risk.get("after") or {}).get("class_sizes")
    out: dict[str, Any] = {"rows": rows, "sizes_chart": None, "small": [], "risk_chart": None, "limit": 0}
    if not before:
        return out
    nb = max(len(before["log2_bins"]), len((after or {}).get("log2_bins", [])))

    def persons(cs: dict[str, Any] | None) -> list[int]:
        got = [b["persons"] for b in (cs or {}).get("log2_bins", [])]
        return got + [0] * (nb - len(got))

    edges = [2**i for i in range(nb)]
    groups = [str(lo) if lo == 1 else f"{lo}–{2 * lo - 1}" for lo in edges]
    series = [(L.t("before"), persons(before), "s0")]
    if after:
        series.append((L.t("after"), persons(after), "s1"))
    out["sizes_chart"] = svg.bars(
        L.t("chart_sizes"),
        groups,
        series,
        log=True,
        x_label=L.t("class_size"),
        y_label=L.t("persons"),
        fmt=L.n,
        marker=(math.log2(k), f"k = {k}"),
    )
    small_b = dict(_by_number(before["small"]))
    small_a = dict(_by_number((after or {}).get("small", {})))
    out["limit"] = max(small_b) if small_b else 0
    out["small"] = [
        (
            str(s),
            L.n(small_b[s]["classes"]),
            L.n(small_b[s]["persons"]),
            L.n(small_a.get(s, {}).get("classes", 0)) if after else "–",
            L.n(small_a.get(s, {}).get("persons", 0)) if after else "–",
            s < k,
        )
        for s in sorted(small_b)
    ]

    def ccdf(cs: dict[str, Any]) -> list[tuple[float, float]]:
        small = dict(_by_number(cs["small"]))
        pts, cum = [], 0
        for s in sorted(small):
            cum += small[s]["persons"]
            pts.append((1.0 / s, float(cum)))
        limit = max(small) if small else 0
        cum = 0
        for b in cs["log2_bins"]:
            cum += b["persons"]
            if b["to"] > limit:
                pts.append((1.0 / b["to"], float(cum)))
        return pts

    lines = [(L.t("before"), ccdf(before), "s0")]
    if after:
        lines.append((L.t("after"), ccdf(after), "s1"))
    out["risk_chart"] = svg.lines(
        L.t("chart_risk"),
        lines,
        x_label=L.t("risk_axis"),
        y_label=L.t("persons"),
        x_fmt=lambda x: L.num(x, max(0, round(-math.log10(x)))),
        y_fmt=L.n,
        marker=(1.0 / k, f"1/k = 1/{k}"),
    )
    return out


def _ldiv(risk: dict[str, Any], t: dict[str, Any], L: Lang) -> dict[str, Any]:
    ld = risk.get("l_diversity") or {}
    return {
        "explain": L.t("ldiv_explain", l=t["l"]),
        "rows": [
            (
                _var(s, L),
                L.n(x["min"]),
                L.n(x["persons_by_l"].get("1", 0)),
                L.n(x["persons_by_l"].get("2", 0)),
                L.n(x["persons_by_l"].get("3", 0)),
                x["min"] < int(t["l"]),
            )
            for s, x in ld.items()
        ],
    }


def _traj(risk: dict[str, Any], L: Lang) -> dict[str, Any]:
    by = _by_number(risk["trajectories"]["by_years"])
    names = ("persons", "below_k_before", "suppressed", "withheld")
    labels = ("traj_persons", "traj_below", "traj_suppressed", "traj_withheld")
    series = [
        (L.t(lab), [x[n] for _, x in by], f"s{i}")
        for i, (n, lab) in enumerate(zip(names, labels, strict=True))
    ]
    return {
        "chart": svg.bars(
            L.t("traj"),
            [str(y) for y, _ in by],
            series,
            log=True,
            x_label=L.t("years_in"),
            y_label=L.t("persons"),
            fmt=L.n,
        ),
        "head": [L.t(lab) for lab in labels],
        "rows": [(str(y), *(L.n(x[n]) for n in names)) for y, x in by],
    }


def _membership(risk: dict[str, Any], L: Lang) -> dict[str, Any]:
    m = risk.get("membership")
    if not m:
        return {"text": L.t("membership_none"), "chart": None}
    worst = m.get("worst") or {}
    bound = m.get("bound")
    text = L.t(
        "membership_text",
        share=L.pct(m["max_share"]),
        worst=", ".join(f"{c} {worst.get(c)}" for c in m.get("columns", [])),
        groups=L.n(m.get("groups", 0)),
        bound=L.t("membership_bound", bound=L.pct(bound, 0))
        if bound is not None
        else L.t("membership_nobound"),
    )
    hist = m.get("histogram")
    chart = None
    if hist:
        keys = [f"<={b:g}" for b in SHARE_BINS] + [">1", "no population"]
        chart = svg.bars(
            L.t("chart_membership"),
            [_share_label(k, L) for k in keys],
            [(L.t("groups"), [hist.get(k, 0) for k in keys], "s1")],
            log=True,
            x_label=L.t("share_axis"),
            y_label=L.t("groups"),
            fmt=L.n,
        )
    return {"text": text, "chart": chart}


def _change(o: dict[str, Any], L: Lang) -> str:
    if o["change"] == "wider_age_bands":
        return L.t("wider_age_bands", bands=", ".join(o.get("bands") or []))
    return L.t("leave_out", variables=L.join(o["variables"]))


def _treatment(
    r: dict[str, Any], risk: dict[str, Any], checks: list[dict[str, Any]], L: Lang
) -> dict[str, Any]:
    sup = risk.get("suppression") or {}
    per = sup.get("per_variable") or {}
    order = sorted(per, key=lambda q: (-per[q]["count"], q))
    levels = (risk.get("treatment") or {}).get("levels") or []
    level_rows = [
        (_codes(x["suppressed"]) if x["suppressed"] else L.t("nothing"), L.n(x["persons"])) for x in levels
    ]
    if sup.get("withheld_persons"):
        level_rows.append((L.t("withheld_row"), L.n(sup["withheld_persons"])))
    opts = risk.get("options")
    options = None
    if opts:
        rows = [
            (
                L.t("as_prepared"),
                L.n((risk.get("before") or {}).get("records_below_k")),
                L.pct(opts["as_prepared"]["record_share"]),
                L.n((risk.get("after") or {}).get("min_class_size")),
                L.n(sup.get("withheld_persons")),
                L.pct(opts["as_prepared"]["values_not_shown"]),
                L.t("refused_outcome", checks=", ".join(c["name"] for c in checks if not c["ok"])),
                False,
            )
        ]
        for i, o in enumerate(opts["tried"]):
            rows.append(
                (
                    _change(o, L),
                    L.n(o["below_k_before"]),
                    L.pct(o["record_share"]),
                    L.n(o["min_class_size"]),
                    L.n(o["withheld_persons"]),
                    L.pct(o["values_not_shown"]),
                    L.t("ok_outcome")
                    if o["releasable"]
                    else L.t("refused_outcome", checks=", ".join(o["failed"])),
                    i == opts["nearest"],
                )
            )
        nearest = opts["tried"][opts["nearest"]] if opts["nearest"] is not None else None
        options = {
            "rows": rows,
            "nearest": L.t(
                "nearest",
                change=_change(nearest, L),
                share=L.pct(nearest["record_share"]),
                lost=L.pct(nearest["values_not_shown"]),
            )
            if nearest
            else L.t("nearest_none", share=L.pct(opts["as_prepared"]["record_share"])),
        }
    return {
        "text": L.t(
            "treatment_text",
            share=L.pct(sup.get("record_share", 0)),
            withheld=L.n(sup.get("withheld_persons", 0)),
            rows=L.n(sup.get("withheld_rows", 0)),
        )
        if sup
        else "",
        "top": L.t(
            "drivers_variables", variables=L.join([f"{q} ({L.pct(per[q]['share'])})" for q in order[:3]])
        )
        if order
        else "",
        "levels": level_rows,
        "per_variable": [
            (_var(q, L), L.n(per[q]["count"]), L.pct(per[q]["share"]), L.n(per[q]["persons"])) for q in order
        ],
        "options": options,
    }


def _loss(r: dict[str, Any], L: Lang) -> dict[str, Any]:
    il = r["information_loss"]
    per = il["per_variable"]
    names = list(r.get("delivered_variables") or per)
    names = [n for n in names if n in per]

    def gen(x: dict[str, Any]) -> str:
        g = x.get("generalised")
        if not g:
            return L.t("as_registered")
        cats = (
            L.t("categories", before=L.n(g["categories_before"]), after=L.n(g["categories_after"]))
            if g.get("categories_before") is not None
            else ""
        )
        return f"{g.get('from_level')} → {g.get('to_level')}" + (f"; {cats}" if cats else "")

    rows = [
        (_var(n, L), gen(per[n]), L.pct(per[n]["suppressed_share"]), L.num(per[n]["total_variation"], 4))
        for n in names
    ]
    chart = svg.hbars(
        L.t("chart_loss"),
        names,
        [
            (L.t("suppressed_share"), [per[n]["suppressed_share"] for n in names], "s2"),
            (L.t("tvd"), [per[n]["total_variation"] for n in names], "s1"),
        ],
        x_label=L.t("share_scale"),
        fmt=lambda x: L.num(x, 3),
        tick_fmt=lambda x: L.num(x, 2),
    )
    return {
        "text": L.t(
            "loss_text",
            not_shown=L.pct(il["quasi_identifier_values_not_shown"]),
            withheld=L.pct(il["rows_withheld_share"]),
            rows=L.n(il["rows_withheld"]),
        ),
        "rows": rows,
        "chart": chart,
    }


# --------------------------------------------------------------------------------------------
# the short report


def summary_facts(r: dict[str, Any]) -> dict[str, Any]:
    """The parts of the report the short report may show: nothing from the risk section, and of
    information loss only what a user can count in the delivered data themselves."""
    o = r["order"]
    il = r.get("information_loss") or {}
    return {
        "version": r.get("version"),
        "order": {
            k: o.get(k) for k in ("order_id", "diarienummer", "project_id", "purpose", "years", "recipient")
        },
        "policy": {"name": r["policy"]["name"], "k": r["policy"]["thresholds"]["k"]},
        "delivered_variables": list(r.get("delivered_variables") or []),
        "recodings": [
            {
                k: x.get(k)
                for k in ("variable", "source", "description", "operation", "parameters", "to_level")
            }
            for x in r.get("recodings", [])
        ],
        "rows_delivered": il.get("rows_delivered"),
        "rows_withheld": il.get("rows_withheld"),
        "persons": il.get("persons_delivered"),
        "per_variable": {
            v: {
                "generalised": x.get("generalised"),
                "suppressed_share": x.get("suppressed_share"),
            }
            for v, x in (il.get("per_variable") or {}).items()
        },
    }


def summary_view(s: dict[str, Any], L: Lang) -> dict[str, Any]:
    o = s["order"]
    rec = o.get("recipient") or {}
    per = s["per_variable"]
    names = [n for n in s["delivered_variables"] if n in per]

    def gen(x: dict[str, Any]) -> str:
        g = x.get("generalised")
        return f"{g.get('from_level')} → {g.get('to_level')}" if g else L.t("as_registered")

    k = int(s["policy"]["k"])
    return {
        "lang": L.code,
        "t": L.t,
        "title": L.t("summary_title", order=o["order_id"]),
        "order": [
            (L.t("order_id"), o["order_id"]),
            (L.t("diarienummer"), o.get("diarienummer") or ""),
            (L.t("project"), o.get("project_id") or ""),
            (L.t("recipient"), f"{rec.get('name', '')}, {rec.get('organisation', '')}"),
            (L.t("purpose"), o.get("purpose") or ""),
            (L.t("policy"), s["policy"]["name"]),
        ],
        "delivered": L.t(
            "summary_delivered",
            rows=L.n(s["rows_delivered"]),
            persons=L.n(s["persons"]),
            years=", ".join(str(y) for y in o.get("years") or []),
        )
        if s["rows_delivered"] is not None
        else "",
        "variables": _vars(s["delivered_variables"], L),
        "k": L.t("summary_k", k=k, k_minus=k - 1),
        "withheld": L.t("summary_withheld", rows=L.n(s["rows_withheld"])) if s.get("rows_withheld") else "",
        "recodings": [_recoding(x, L) for x in s["recodings"]],
        "rows": [(_var(n, L), gen(per[n]), L.pct(per[n]["suppressed_share"])) for n in names],
        "version": s.get("version"),
    }
