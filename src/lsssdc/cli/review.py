"""`lsssdc review`: the queue of candidates waiting for a reviewer, read from the ledger."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from lsssdc.cli.audit import LEDGER_OPTION
from lsssdc.cli.keys import open_keystore
from lsssdc.cli.root import app
from lsssdc.errors import EXIT_OK, InputDataError, Problem

review_app = typer.Typer(help="The review queue, read from the ledger.", no_args_is_help=True)
app.add_typer(review_app, name="review")


def _items(ledger: str, key_store: Path):
    from lsssdc.identity import actors
    from lsssdc.ledger.chain import Ledger
    from lsssdc.release.review import queue

    store = open_keystore(key_store)
    led = Ledger.open(ledger, actor_keys=store.public_keys(), create=False, readonly=True)
    try:
        # the actors release decisions count (anchored on the ledger), so queue and decisions agree
        return queue(led, actors.trust(store, led, ledger).keys)
    finally:
        led.close()


@review_app.command("list")
def list_queue(
    ledger: str = LEDGER_OPTION,
    key_store: Path = typer.Option(..., "--key-store", help="Trust the actors' keys in this key store."),
    show_all: bool = typer.Option(False, "--all", help="Also decided, delivered and refused candidates."),
    as_json: bool = typer.Option(False, "--json", help="Print the queue as JSON."),
) -> int:
    """Candidates waiting for a decision: order, project, verdict, who prepared it and when, who
    has approved and how many reviewers the policy needs.

    Example: lsssdc review list --ledger postgresql://lsssdc@db/ledger --key-store keys.json
    """
    items = _items(ledger, key_store)
    shown = [i for i in items if show_all or i.status in ("waiting for review", "approved, not delivered")]
    if as_json:
        typer.echo(json.dumps([i.to_dict() for i in shown], indent=2))
        return EXIT_OK
    if not shown:
        typer.echo("no candidate is waiting for a decision")
    for i in shown:
        typer.echo(
            f"{i.order_id:<12} {i.project_id:<16} {i.status:<24} prepared by {i.prepared_by} at {i.prepared_at} "
            f"(entry {i.prepare_entry}); approvals {len(i.approved_by)}/{i.reviewers_required}"
            + (f" by {', '.join(i.approved_by)}" if i.approved_by else "")
            + f"; {i.content_hash[:19]}..."
        )
    return EXIT_OK


@review_app.command("show")
def show(
    order: str = typer.Argument(..., help="The order id."),
    ledger: str = LEDGER_OPTION,
    key_store: Path = typer.Option(..., "--key-store", help="Trust the actors' keys in this key store."),
    work: Path = typer.Option(Path("work"), "--work", help="The work area of candidates."),
) -> int:
    """Where each candidate of an order stands, and the report to open for the newest one.

    Example: lsssdc review show B2026-0023 --ledger ledger.sqlite --key-store keys.json
    """
    from lsssdc import names

    names.check(order, "the order id")
    items = [i for i in _items(ledger, key_store) if i.order_id == order]
    if not items:
        raise InputDataError(Problem("no_order", f"the ledger holds no candidate of order '{order}'"))
    for i in items:
        typer.echo(f"entry {i.prepare_entry}: {i.status}; {i.content_hash}")
        if i.rejected_by:
            typer.echo(f"  rejected by {', '.join(i.rejected_by)} (final for this content)")
    # the attempt folders whose sealed content hash is on the ledger
    import json as _json

    known = {i.content_hash: i for i in items}
    for folder in sorted(names.inside(work, order).glob("*/candidate.json")):
        h = _json.loads(folder.read_text(encoding="utf-8")).get("content_hash")
        if h in known:
            typer.echo(f"report: {folder.parent / 'report.html'} ({known[h].status})")
    return EXIT_OK
