"""`lsssdc tables`: the ordering service's tables with cell suppression and the attacker's audit."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import typer

from lsssdc.cli.root import app, working
from lsssdc.errors import EXIT_OK


@app.command()
def tables(
    policy: str = typer.Option(
        ..., "--policy", help="A tables policy: a shipped name (e.g. public-tables) or a YAML file."
    ),
    order: str = typer.Option(
        ..., "--order", help="The order: a YAML file, or a shipped example order's name."
    ),
    register: list[Path] = typer.Option(..., "--register", help="LSS register file(s), CSV or Parquet."),
    out: Path = typer.Option(Path("tables"), "--out", help="Directory for the tables (CSV, xlsx, JSON)."),
    as_json: bool = typer.Option(False, "--json", help="Print the audit summary as JSON."),
) -> int:
    """DRAFT tables, not for publication: build the ordered tables, hide small cells and enough
    others, audit them with an attacker's linear programmes, and write them with ".." for hidden
    cells (refused, exit 1, if the audit fails). Nothing is approved or logged: publishable
    tables come only from prepare, approve and deliver.

    Example: lsssdc tables --policy public-tables --order kommun-tables-2023
    --register lss.parquet --out tables/
    """
    from lsssdc import policy as P
    from lsssdc.register import files
    from lsssdc.release.table_orders import make_tables

    pol, ordr = P.load_policy(policy), P.load_order(order)
    with working("reading the register") as step:
        frames = [files.read_register(f) for f in register]
        reg = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        step.done(f"{len(reg):,} rows")
    with working("suppressing and auditing the tables") as step:
        summary = make_tables(pol, ordr, reg, out)
        cells = sum(int(t.get("cells", 0)) for t in summary.get("tables", []) if isinstance(t, dict))
        step.done(f"{len(summary.get('tables', []))} tables, {cells:,} cells")
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
    else:
        audit = summary["audit"].get("summary", {})
        typer.echo(
            f"DRAFT tables for order {ordr.order_id} (not for publication: not reviewed, approved or logged): "
            f"audit {'passed' if audit.get('passed', True) else 'FAILED'}"
        )
        for f in summary["files"]:
            typer.echo(f"  {f}")
    return EXIT_OK
