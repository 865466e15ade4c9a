"""The release workflow on the command line: prepare, approve, reject, deliver."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import typer

from lsssdc.cli.keys import KEY_STORE_HELP, open_keystore
from lsssdc.cli.root import app, working
from lsssdc.errors import EXIT_OK, EXIT_REFUSED, InputDataError, Problem
from lsssdc.identity.keystore import check_apart

LEDGER_HELP = "The audit ledger: a SQLite file (created when missing) or a postgresql:// URL."


def _sha256(path: Path) -> str:
    from lsssdc.release.candidate import sha256_file

    return "sha256:" + sha256_file(path)


@contextlib.contextmanager
def _session(key_store: Path, ledger: str, actor: str) -> Iterator[tuple[Any, Any]]:
    """The key store with ``actor``'s key unlocked and the ledger (trusting the store's signers)."""
    from lsssdc.ledger.chain import Ledger

    store = open_keystore(key_store, actor)
    book = Ledger.open(ledger, actor_keys=store.public_keys())
    try:
        yield store, book
    finally:
        book.close()


def _rows_and_years(df: pd.DataFrame) -> str:
    """How much was read: rows, and the years they cover when there is a year column."""
    if "year" not in df.columns or df.empty:
        return f"{len(df):,} rows"
    years = pd.to_numeric(df["year"], errors="coerce").dropna()
    if years.empty:
        return f"{len(df):,} rows"
    return f"{len(df):,} rows, {int(years.min())}-{int(years.max())} ({years.nunique()} years)"


def _parse_links(links: list[str]) -> dict[str, Path]:
    out = {}
    for item in links:
        name, sep, file = item.partition("=")
        if not sep or not name or not file:
            raise InputDataError(Problem("usage", f"--link takes REGISTER=FILE, not {item!r}"))
        out[name.strip()] = Path(file.strip())
    return out


#: one definition of the checkpoint folder option, shared by approve, reject and deliver
CHECKPOINTS = typer.Option(
    None,
    "--checkpoints",
    envvar="LSSSDC_CHECKPOINTS",
    help="Folder outside the work area for the signed ledger head of this decision "
    "(else the policy's delivery.checkpoints).",
)


@app.command()
def prepare(
    policy: str = typer.Option(
        ..., "--policy", help="The policy: a shipped policy's name (`lsssdc policy list`) or a YAML file."
    ),
    order: str = typer.Option(
        ..., "--order", help="The order: a YAML file, or a shipped example order's name."
    ),
    register: list[Path] = typer.Option(..., "--register", help="LSS register file(s), CSV or Parquet."),
    link: list[str] = typer.Option(
        [], "--link", help="A register to link, as NAME=FILE (e.g. deaths=d.parquet)."
    ),
    population: Path | None = typer.Option(
        None,
        "--population",
        help="Population table (folkmängd per year, kommun, sex, age; CSV or Parquet): measures how much "
        "of a population group the delivery covers (needed when the policy sets max_presence).",
    ),
    work: Path = typer.Option(Path("work"), "--work", help="Work area for candidates."),
    key_store: Path = typer.Option(..., "--key-store", help=KEY_STORE_HELP),
    ledger: str = typer.Option(..., "--ledger", help=LEDGER_HELP),
    actor: str = typer.Option(
        "ordering-service", "--actor", help="Who prepares (a signer in the key store)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the verdict as JSON."),
) -> int:
    """Prepare a candidate release and its reviewer report; refused candidates say why (exit 1).

    Example: lsssdc prepare --policy research-with-deaths --order order.yaml
    --register lss.parquet --link deaths=deaths.parquet --key-store /secure/keys.json --ledger ledger.sqlite
    """
    from lsssdc import policy as P
    from lsssdc.register import files
    from lsssdc.release import pipeline

    pol = P.load_policy(policy)
    ordr = P.load_order(order)
    with working("reading the register") as step:
        frames = []
        for i, f in enumerate(register, 1):
            frames.append(files.read_register(f))
            if len(register) > 1:
                step.progress(f"file {i} of {len(register)}: {len(frames[-1]):,} rows")
        reg = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        step.done(_rows_and_years(reg))
    inputs = [
        pipeline.Input(f"register:{f.name}", _sha256(f), len(df))
        for f, df in zip(register, frames, strict=True)
    ]
    others = {}
    for name, path in _parse_links(link).items():
        df = files.read_deaths(path) if name == "deaths" else files.read_table(path)
        others[name] = df
        inputs.append(pipeline.Input(f"{name}:{path.name}", _sha256(path), len(df)))
    pop = None
    if population is not None:
        from lsssdc.register import population as popmod

        with working("reading the population table") as step:
            pop = popmod.read(population)
            step.done(f"{len(pop):,} rows")
        inputs.append(pipeline.Input(f"population:{population.name}", _sha256(population), len(pop)))
    check_apart(key_store, [work])  # candidates hold data: never in the key store's folder
    with (
        _session(key_store, ledger, actor) as (store, book),
        working("preparing the candidate (linkage, pseudonyms, disclosure control)") as step,
    ):
        prepared = pipeline.prepare(
            pol,
            ordr,
            reg,
            keystore=store,
            work_dir=work,
            inputs=inputs,
            registers=others,
            ledger=book,
            actor=actor,
            policy_path=policy,
            order_path=order,
            population=pop,
            progress=step.progress,
        )
        c = prepared.candidate
        step.done(f"{c.verdict}, {len(c.manifest.get('files') or {})} files sealed")
    summary = prepared.summary()
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        typer.echo(f"candidate {c.path}: {c.verdict}")
        for r in summary["reasons"]:
            typer.echo(f"  reason: {r}")
        typer.echo(f"reviewer report: {summary['report']}")
    return EXIT_OK if c.verdict == "releasable" else EXIT_REFUSED


@app.command()
def approve(
    candidate: Path = typer.Argument(..., help="The candidate directory."),
    reviewer: str = typer.Option(..., "--reviewer", help="The reviewer's name (a signer in the key store)."),
    key_store: Path = typer.Option(..., "--key-store", help=KEY_STORE_HELP),
    ledger: str = typer.Option(..., "--ledger", help=LEDGER_HELP),
    checkpoints: Path | None = CHECKPOINTS,
    as_json: bool = typer.Option(False, "--json", help="Print the signed approval as JSON."),
) -> int:
    """Approve a candidate: sign its content hash with the reviewer's Ed25519 key.

    Example: lsssdc approve work/B2026-0023 --reviewer reviewer-a --key-store /secure/keys.json --ledger ledger.sqlite
    """
    from lsssdc import release

    with _session(key_store, ledger, reviewer) as (store, book):
        rec = release.approve(candidate, reviewer, store, book, checkpoints)
    if as_json:
        typer.echo(json.dumps(rec, indent=2, sort_keys=True))
    else:
        typer.echo(f"approved {candidate} ({rec['content_hash']}) by {reviewer}")
        if rec.get("exported_head"):
            typer.echo(f"ledger head exported to {rec['exported_head']}")
        for earlier in rec.get("earlier_rejections") or []:
            typer.echo(
                f"note: an earlier candidate of this order was rejected by {earlier['by']}: {earlier['reason']}"
            )
    return EXIT_OK


@app.command()
def reject(
    candidate: Path = typer.Argument(..., help="The candidate directory."),
    reason: str = typer.Option(..., "--reason", help="Why the candidate is rejected."),
    reviewer: str = typer.Option(..., "--reviewer", help="The reviewer's name (a signer in the key store)."),
    key_store: Path = typer.Option(..., "--key-store", help=KEY_STORE_HELP),
    ledger: str = typer.Option(..., "--ledger", help=LEDGER_HELP),
    checkpoints: Path | None = CHECKPOINTS,
    as_json: bool = typer.Option(False, "--json", help="Print the signed rejection as JSON."),
) -> int:
    """Reject a candidate with a reason; it can never be delivered.

    Example: lsssdc reject work/B2026-0023 --reason "purpose too broad" --reviewer reviewer-a --key-store k.json --ledger l.sqlite
    """
    from lsssdc import release

    with _session(key_store, ledger, reviewer) as (store, book):
        rec = release.reject(candidate, reviewer, reason, store, book, checkpoints)
    if as_json:
        typer.echo(json.dumps(rec, indent=2, sort_keys=True))
    else:
        typer.echo(f"rejected {candidate}")
        if rec.get("exported_head"):
            typer.echo(f"ledger head exported to {rec['exported_head']}")
    return EXIT_OK


@app.command()
def deliver(
    candidate: Path = typer.Argument(..., help="The approved candidate directory."),
    to: Path = typer.Option(..., "--to", help="The new delivery directory (must not exist)."),
    key_store: Path = typer.Option(..., "--key-store", help=KEY_STORE_HELP),
    ledger: str = typer.Option(..., "--ledger", help=LEDGER_HELP),
    actor: str = typer.Option(
        "ordering-service", "--actor", help="Who delivers (a signer in the key store)."
    ),
    checkpoints: Path | None = CHECKPOINTS,
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> int:
    """Deliver an approved candidate whose bytes still match the signed hash (exit 1 otherwise).

    Example: lsssdc deliver work/B2026-0023 --to out/B2026-0023 --key-store /secure/keys.json --ledger ledger.sqlite
    """
    from lsssdc import release

    check_apart(key_store, [to])  # a package holds data: never in the key store's folder
    with _session(key_store, ledger, actor) as (store, book), working("writing the delivery package") as step:
        result = release.deliver(candidate, to, store, book, actor, checkpoints)
        step.done(f"{len(result['files'])} files, ledger entry {result['ledger_entry']}")
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        typer.echo(f"delivered {candidate} -> {result['package']} (ledger entry {result['ledger_entry']})")
    return EXIT_OK
