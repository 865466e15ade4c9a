"""The reviewer report: one self-contained HTML file and the same facts as JSON.

The report dictionary is assembled by the pipeline from the steps' own records; this module
only renders it. Plots are drawn from the figures in the dictionary (class-size and risk
distributions), with matplotlib's Agg backend and fixed metadata, and embedded as PNG so the
page needs no network.
"""

from __future__ import annotations

import base64
import io
import json
from importlib import resources
from typing import Any

import jinja2

_ENV = jinja2.Environment(
    loader=jinja2.FunctionLoader(
        lambda name: (resources.files(__package__) / "templates" / name).read_text("utf-8")
    ),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _bar_png(
    title: str, labels: list[str], before: list[float], after: list[float] | None, ylabel: str
) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=100)
    x = list(range(len(labels)))
    width = 0.4 if after is not None else 0.8
    ax.bar(
        [i - (width / 2 if after is not None else 0) for i in x],
        before,
        width=width,
        label="before",
        color="#9aa0a6",
    )
    if after is not None:
        ax.bar([i + width / 2 for i in x], after, width=width, label="after", color="#1a73e8")
        ax.legend(frameon=False)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def plots(report: dict[str, Any]) -> dict[str, str]:
    """PNG plots (base64) of the class-size and per-record risk distributions before and after."""
    risk = report.get("risk") or {}
    out = {}
    before, after = risk.get("before") or {}, risk.get("after") or {}
    for key, title, ylabel in (
        ("class_size_histogram", "Records by size of their equivalence class", "records"),
        ("risk_histogram", "Records by re-identification risk (1 / class size)", "records"),
    ):
        hb, ha = before.get(key), after.get(key)
        if hb:
            labels = sorted(hb, key=_lower_bound)
            out[title] = _bar_png(
                title, labels, [hb[k] for k in labels], [ha.get(k, 0) for k in labels] if ha else None, ylabel
            )
    return out


def _lower_bound(label: str) -> float:
    """Order of a histogram bin ("1", "3-4", "100+", "<0.05", "0.05-0.1") on its axis."""
    head = label.lstrip("<").split("-")[0].rstrip("+")
    try:
        return float(head) - (0.5 if label.startswith("<") else 0.0)
    except ValueError:
        return float("inf")


def render_html(report: dict[str, Any]) -> str:
    """The page of exactly what report.json holds: the report is read as its JSON form first,
    so the page made at prepare and one rendered later from report.json are the same bytes."""
    data = json.loads(json.dumps(report, sort_keys=True, ensure_ascii=False, default=str))
    data["plots"] = plots(data)
    return _ENV.get_template("report.html.j2").render(r=data)
