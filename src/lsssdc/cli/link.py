"""`lsssdc partner`: linkage by project key with another agency's extract.

The partner agency makes a key pair (``keygen``) and sends its public key; the key holder
exports the project's pseudonym key encrypted for it (``export-key``, logged in the ledger);
the partner pseudonymises its own extract (``pseudonymise``); lsssdc checks the returned file
and joins it with the project's extract on the pseudonym (``import``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

import typer

from lsssdc.cli.keys import open_keystore
from lsssdc.cli.root import EPILOG, app
from lsssdc.errors import EXIT_OK, InputDataError, KeyStoreError, Problem

PARTNER_PASSPHRASE = "LSSSDC_PARTNER_PASSPHRASE"

partner_app = typer.Typer(
    help="Linkage by project key: key files for partner agencies, their pseudonymised extracts, the join.",
    epilog=EPILOG,
    no_args_is_help=True,
)
app.add_typer(partner_app, name="partner")


def _secret(prompt: str) -> str:
    """A hidden prompt on a terminal; the first line of standard input otherwise (scripts, tests)."""
    if sys.stdin is not None and not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt(prompt, hide_input=True))


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        raise InputDataError(Problem("no_file", f"cannot read the {what}", file=str(path))) from None


def _private_key(path: Path):
    from lsssdc.identity import partner

    data = _read(path, "private key")
    passphrase = os.environ.get(PARTNER_PASSPHRASE) or None
    if passphrase is None and b"ENCRYPTED" in data:
        passphrase = _secret("Passphrase of the private key")
    return partner.load_private_key(data, passphrase, source=str(path))


def _emit(summary: dict[str, Any], as_json: bool, lines: list[str]) -> None:
    if as_json:
        typer.echo(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        for line in lines:
            typer.echo(line)


@partner_app.command("keygen")
def keygen(
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the private key (PEM, mode 0600)."),
    public_out: Path = typer.Option(..., "--public-out", help="Where to write the public key to send."),
    as_json: bool = typer.Option(False, "--json", help="Print the fingerprint as JSON."),
) -> int:
    """The partner agency's side: make an X25519 key pair; send only the public key.

    The private key is encrypted when LSSSDC_PARTNER_PASSPHRASE is set.
    Example: lsssdc partner keygen --out fk-x25519.pem --public-out fk-x25519.pub.pem
    """
    from lsssdc.fileio import atomic_path
    from lsssdc.identity import partner

    for p in (out, public_out):
        if p.exists():
            raise InputDataError(
                Problem("file_exists", "refusing to overwrite an existing file", file=str(p))
            )
    key = partner.generate_private_key()
    with atomic_path(out) as tmp:
        os.chmod(tmp, 0o600)
        tmp.write_bytes(partner.private_key_pem(key, os.environ.get(PARTNER_PASSPHRASE) or None))
    with atomic_path(public_out) as tmp:
        tmp.write_bytes(partner.public_key_pem(key))
    fp = partner.fingerprint(key)
    _emit(
        {"private_key": str(out), "public_key": str(public_out), "fingerprint": fp},
        as_json,
        [f"private key {out} (keep it)", f"public key  {public_out} (send it)", f"fingerprint {fp}"],
    )
    return EXIT_OK


@partner_app.command("export-key")
def export_key(
    key_store: Path = typer.Option(..., "--key-store", envvar="LSSSDC_KEY_STORE", help="The key store."),
    project: str = typer.Option(..., "--project", help="The project whose pseudonym key is exported."),
    key_version: int | None = typer.Option(None, "--key-version", help="Key version (default: current)."),
    recipient: str = typer.Option(..., "--recipient", help="The partner agency, as recorded in the ledger."),
    public_key: Path = typer.Option(..., "--public-key", help="The partner's X25519 public key (PEM)."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the key file."),
    ledger: str = typer.Option(..., "--ledger", "-l", envvar="LSSSDC_LEDGER", help="The audit ledger."),
    actor: str = typer.Option(..., "--actor", help="Who exports (signs the ledger entry with its key)."),
    as_json: bool = typer.Option(False, "--json", help="Print the ledger payload as JSON."),
) -> int:
    """Encrypt one project's pseudonym key for a partner agency; the export is logged first.

    The passphrase comes from LSSSDC_PASSPHRASE or a hidden prompt.
    Example: lsssdc partner export-key --key-store keys.json --project lss-fk-2026 --recipient Forsakringskassan
    --public-key fk-x25519.pub.pem --out lss-fk-2026.key.json --ledger ledger.sqlite --actor key-holder
    """
    from lsssdc.identity import partner
    from lsssdc.ledger.chain import Ledger

    if out.exists():
        raise InputDataError(Problem("file_exists", "refusing to overwrite an existing file", file=str(out)))
    recipient_key = partner.load_public_key(_read(public_key, "public key"), source=str(public_key))
    store = open_keystore(key_store, actor)
    key = store.pseudonym_key(project, key_version)
    signer = store.get_signing_key(actor, role="custodian")  # exporting a key is the custodian's
    with Ledger.open(ledger, signer=signer, actor_keys=store.public_keys(), create=False) as book:
        export = partner.export_key(key, recipient, recipient_key, ledger=book, actor=actor)
    partner.write_key_file(export, out)
    payload = export.payload()
    _emit(
        {**payload, "key_file": str(out)},
        as_json,
        [
            f"key file {out}: project {payload['project']} key version {payload['key_version']}",
            f"for {payload['recipient']} ({payload['recipient_fingerprint']}); logged in {ledger}",
        ],
    )
    return EXIT_OK


@partner_app.command("pseudonymise")
def pseudonymise(
    file: Path = typer.Argument(..., help="The partner's own extract (.csv UTF-8 or .parquet)."),
    key_file: Path = typer.Option(..., "--key-file", help="The key file from the issuing agency."),
    private_key: Path = typer.Option(..., "--private-key", help="The partner's X25519 private key (PEM)."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the pseudonymised extract."),
    column: str = typer.Option("personnummer", "--column", help="The personnummer column."),
    reference_date: str | None = typer.Option(
        None, "--reference-date", help="Date (YYYY-MM-DD) for reading 10-digit personnummer."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> int:
    """The partner agency's side: replace personnummer by the project's pseudonym, as lsssdc does.

    Example: lsssdc partner pseudonymise fk-extract.csv --key-file lss-fk-2026.key.json
    --private-key fk-x25519.pem --out fk-extract-pseudonymised.parquet
    """
    from lsssdc.fileio import read_table, write_table
    from lsssdc.identity import partner

    ref = None
    if reference_date is not None:
        try:
            ref = dt.date.fromisoformat(reference_date)
        except ValueError:
            raise InputDataError(
                Problem("bad_date", "the reference date must be YYYY-MM-DD", hint="e.g. 2024-12-31")
            ) from None
    key = partner.read_key_file(key_file, _private_key(private_key))
    extract = read_table(file, required=(column,))
    result, report = partner.pseudonymise_extract(extract, key, column=column, reference_date=ref)
    write_table(result, out)
    summary = {**report.to_dict(), "file": str(out)}
    _emit(
        summary,
        as_json,
        [f"{report.rows} rows, {report.persons} persons pseudonymised (project {report.project}) -> {out}"],
    )
    return EXIT_OK


@partner_app.command("import")
def import_(
    file: Path = typer.Argument(..., help="The partner's pseudonymised extract."),
    register: str = typer.Option(..., "--register", help="Which register it is (as named in the order)."),
    extract: Path = typer.Option(..., "--extract", help="The project's own pseudonymised extract."),
    policy: str = typer.Option(
        ..., "--policy", help="The policy: a shipped policy's name (`lsssdc policy list`) or a YAML file."
    ),
    order: str = typer.Option(
        ..., "--order", help="The order: a YAML file, or a shipped example order's name."
    ),
    key_store: Path = typer.Option(..., "--key-store", envvar="LSSSDC_KEY_STORE", help="The key store."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the linked extract."),
    as_json: bool = typer.Option(False, "--json", help="Print the linkage report as JSON."),
) -> int:
    """Check a partner's pseudonymised extract and join it with the project's extract on the pseudonym.

    Only a register the order asks for, and the policy links on the pseudonym, is joined; every
    pseudonym must carry the project's check tag, and no column may hold a personnummer.
    Example: lsssdc partner import fk-extract-pseudonymised.parquet --register assistans
    --extract delivery.parquet --policy policy.yaml --order order.yaml --key-store keys.json --out linked.parquet
    """
    from lsssdc import linkage
    from lsssdc.fileio import read_table, write_table
    from lsssdc.identity import partner
    from lsssdc.policy import check_order, load_order, load_policy

    pol = load_policy(policy)
    ordr = load_order(order)
    check_order(ordr, pol)
    column = pol.pseudonymisation.column
    linkage.wanted_links([register], ordr, pol, "pseudonym")  # refuse before any key is opened
    store = open_keystore(key_store)
    keys = store.pseudonym_keys(ordr.project_id)
    if not keys:
        raise KeyStoreError(Problem("no_key", f"the key store has no key of project '{ordr.project_id}'"))
    theirs = partner.import_extract(file, keys, column=column)
    ours = read_table(extract, required=(column,))
    linked, report = linkage.link_pseudonymised(ours, {register: theirs}, ordr, pol)
    write_table(linked, out)
    threshold = pol.thresholds.table_frequency
    rec = report.links[0]
    _emit(
        {**report.to_dict(threshold), "file": str(out)},
        as_json,
        [
            f"{register}: {rec.matched_persons} of {rec.extract_persons} persons matched "
            f"({rec.match_share:.1%}); variables {', '.join(rec.variables)} -> {out}"
        ],
    )
    return EXIT_OK
