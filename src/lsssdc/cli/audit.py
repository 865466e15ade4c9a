"""`lsssdc audit`: verify, list and show the ledger, ask which deliveries held a person, checkpoint it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from lsssdc.cli.root import EPILOG, app
from lsssdc.errors import EXIT_OK, EXIT_REFUSED, InputDataError, KeyStoreError, Problem
from lsssdc.ledger import kinds

audit_app = typer.Typer(
    help="The tamper-evident audit ledger: verify, list, show, person, checkpoint.",
    epilog=EPILOG,
    no_args_is_help=True,
)
app.add_typer(audit_app, name="audit")

LEDGER_OPTION = typer.Option(
    ...,
    "--ledger",
    "-l",
    envvar="LSSSDC_LEDGER",
    help="The ledger: a SQLite file or a postgresql:// URL; or set LSSSDC_LEDGER.",
)


def _open(path: str, **kwargs: Any):
    """An existing ledger, read-only unless ``readonly=False`` is given (checkpoint stores one)."""
    from lsssdc.ledger.chain import Ledger

    kwargs.setdefault("readonly", True)
    return Ledger.open(path, create=False, **kwargs)


def _secret(prompt: str) -> str:
    """A hidden prompt on a terminal; the first line of standard input otherwise (scripts, tests)."""
    if sys.stdin is not None and not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt(prompt, hide_input=True))


def _read_key_file(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        raise InputDataError(Problem("key_file", f"cannot read the {what}", file=str(path))) from None


def _signing_key(signing_key: Path | None, key_store: Path | None, actor: str | None):
    """The Ed25519 private key that signs: from the key store when it offers one, else a PEM file."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    if key_store is not None:
        return _keystore_signing_key(key_store, actor)
    if signing_key is None:
        raise KeyStoreError(
            Problem(
                "no_signing_key",
                "a signing key is needed",
                hint="give --key-store and --actor, or --signing-key",
            )
        )
    data = _read_key_file(signing_key, "signing key")
    try:
        key = load_pem_private_key(data, password=None)
    except TypeError:  # an encrypted PEM
        passphrase = _secret("Passphrase of the signing key")
        try:
            key = load_pem_private_key(data, password=passphrase.encode())
        except ValueError:
            raise KeyStoreError(
                Problem(
                    "bad_passphrase", "the passphrase does not open the signing key", file=str(signing_key)
                )
            ) from None
    except ValueError:
        raise KeyStoreError(Problem("bad_key", "not a PEM private key", file=str(signing_key))) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyStoreError(
            Problem("bad_key", "the signing key is not an Ed25519 key", file=str(signing_key))
        )
    return key


def _keystore(path: Path):
    """Open the key store; the passphrase comes from LSSSDC_PASSPHRASE or a hidden prompt."""
    import os

    from lsssdc.identity.keystore import ENV_PASSPHRASE, KeyStore

    passphrase = os.environ.get(ENV_PASSPHRASE) or _secret("Key store passphrase")
    return KeyStore.open(path, passphrase)


def _keystore_signing_key(key_store: Path, actor: str | None):
    if actor is None:
        raise KeyStoreError(Problem("no_actor", "--key-store needs --actor NAME (whose key signs)"))
    from lsssdc.cli.keys import read_actor_secret

    store = _keystore(key_store)
    store.unlock(actor, read_actor_secret(actor))
    return store.get_signing_key(actor)


def _actor_keys(specs: list[str]) -> dict[str, Any] | None:
    """NAME=FILE pairs: each actor's trusted Ed25519 public key (PEM)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    if not specs:
        return None
    out: dict[str, Any] = {}
    for spec in specs:
        name, sep, file = spec.partition("=")
        if not sep or not name or not file:
            raise InputDataError(
                Problem("bad_actor_key", f"cannot read {spec!r}", hint="NAME=public-key.pem")
            )
        try:
            key = load_pem_public_key(_read_key_file(Path(file), "public key"))
        except ValueError:
            raise KeyStoreError(Problem("bad_key", "not a PEM public key", file=file)) from None
        if not isinstance(key, Ed25519PublicKey):
            raise KeyStoreError(Problem("bad_key", "the public key is not an Ed25519 key", file=file))
        out[name] = key
    return out


def _index_key(index_key_file: Path | None, key_store: Path | None) -> bytes:
    if key_store is not None:
        return _keystore(key_store).audit_index_key()
    if index_key_file is None:
        raise KeyStoreError(
            Problem(
                "no_index_key", "the audit-index key is needed", hint="give --key-store or --index-key-file"
            )
        )
    raw = _read_key_file(index_key_file, "audit-index key")
    text = raw.strip()
    if len(text) == 64:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            pass
    if len(raw) == 32:
        return raw
    raise KeyStoreError(
        Problem(
            "bad_index_key",
            "the audit-index key file must hold 32 bytes (raw or hex)",
            file=str(index_key_file),
        )
    )


def _summary(payload: dict[str, Any]) -> str:
    shown = []
    # the names the writers use (release payloads), shown under short labels
    for label, name in (
        ("order", "order_id"),
        ("project", "project_id"),
        ("delivery", "package"),
        ("verdict", "verdict"),
        ("reason", "reason"),
    ):
        if name in payload and isinstance(payload[name], str | int | float):
            shown.append(f"{label}={payload[name]}")
    if "person_index" in payload:
        shown.append(f"persons={payload['person_index'].get('persons')}")
    if isinstance(payload.get("custodians"), dict):  # the pin of a key store's custodians
        shown.append(
            f"key_store={payload.get('store_id')} custodians={','.join(sorted(payload['custodians']))}"
        )
    return " ".join(shown)


@audit_app.command("verify")
def verify(
    ledger: str = LEDGER_OPTION,
    checkpoint: list[Path] = typer.Option(
        [],
        "--checkpoint",
        "-c",
        help="An exported checkpoint the ledger must extend, or a folder of them (repeatable).",
    ),
    key_store: Path | None = typer.Option(
        None,
        "--key-store",
        help="Trust the actors' public keys in this key store (passphrase: LSSSDC_PASSPHRASE).",
    ),
    actor_key: list[str] = typer.Option(
        [], "--actor-key", help="NAME=public-key.pem: a trusted actor key (repeatable)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the verification report as JSON."),
) -> int:
    """Re-check every entry, the chain, every signature, the Merkle root and the checkpoints.

    Detects an edited, deleted, inserted or reordered entry and a truncated tail, and names the
    first entry that diverges. Exit code 0 when intact, 1 when tampering is found or when no
    trusted keys were given ("not verified": a re-signed ledger is consistent too), 2 when the
    ledger or a checkpoint cannot be read. The file is only read.
    Example: lsssdc audit verify --ledger ledger.sqlite --checkpoint exported/checkpoint-0042.json
    """
    from lsssdc.ledger.chain import Checkpoint

    # a folder stands for every head exported into it (approve, reject and deliver write there)
    files = [f for p in checkpoint for f in (sorted(p.glob("*.json")) if p.is_dir() else [p])]
    checkpoints = [Checkpoint.read(p) for p in files]
    trusted = _actor_keys(actor_key)
    if key_store is not None:
        trusted = {**_keystore(key_store).public_keys(), **(trusted or {})}
    led = _open(ledger, actor_keys=trusted)
    try:
        report = led.verify(checkpoints)
    finally:
        led.close()
    verified = report.ok and report.trusted_keys
    if as_json:
        typer.echo(json.dumps({**report.to_dict(), "verified": verified}, indent=2))
        return EXIT_OK if verified else EXIT_REFUSED
    typer.echo(f"ledger      {ledger}")
    typer.echo(f"origin      {report.origin}")
    typer.echo(f"entries     {report.size}")
    typer.echo(f"root        {report.root}")
    typer.echo(f"checkpoints {report.stored_checkpoints} stored, {report.given_checkpoints} given")
    if not report.trusted_keys:
        typer.echo(
            "note        no trusted actor keys given: signatures checked against the keys the ledger names"
        )
        if report.ok:
            # a ledger re-signed with someone else's keys is consistent too: that is not intact
            typer.echo(
                "NOT VERIFIED: consistent, but nothing ties its signatures to the agency's keys "
                "(give --key-store or --actor-key)"
            )
            return EXIT_REFUSED
    if report.ok:
        typer.echo("intact")
        return EXIT_OK
    typer.echo(f"TAMPERED: first divergent entry {report.first_divergent}")
    report.raise_for_problems()
    return EXIT_REFUSED  # not reached


@audit_app.command("list")
def list_entries(
    ledger: str = LEDGER_OPTION,
    kind: str | None = typer.Option(None, "--kind", help="Only entries of this kind (e.g. deliver)."),
    as_json: bool = typer.Option(False, "--json", help="Print the entries as JSON."),
) -> int:
    """List the ledger's entries, oldest first.

    Example: lsssdc audit list --ledger ledger.sqlite --kind deliver
    """
    led = _open(ledger)
    try:
        entries = list(led.entries(kind))
    finally:
        led.close()
    if as_json:
        typer.echo(json.dumps([e.to_dict() for e in entries], indent=2))
        return EXIT_OK
    for e in entries:
        typer.echo(
            f"{e.seq:>6}  {e.time}  {e.kind:<11} {e.actor:<16} {e.hash[:16]}  {_summary(e.payload)}".rstrip()
        )
    if not entries:
        typer.echo("no entries")
    return EXIT_OK


@audit_app.command("show")
def show(
    seq: int = typer.Argument(..., help="The entry's sequence number (1 is the first)."),
    ledger: str = LEDGER_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the entry as JSON."),
) -> int:
    """Show one entry in full.

    Example: lsssdc audit show 42 --ledger ledger.sqlite --json
    """
    led = _open(ledger)
    try:
        entry = led.entry(seq)
    finally:
        led.close()
    if as_json:
        typer.echo(json.dumps(entry.to_dict(), indent=2))
        return EXIT_OK
    d = entry.to_dict()
    for name in ("seq", "time", "kind", "actor", "prev", "hash", "key", "signature"):
        typer.echo(f"{name:<10} {d[name]}")
    typer.echo("payload")
    typer.echo(json.dumps(entry.payload, indent=2, sort_keys=True, ensure_ascii=False))
    return EXIT_OK


@audit_app.command("person")
def person(
    ledger: str = LEDGER_OPTION,
    key_store: Path | None = typer.Option(None, "--key-store", help="Key store holding the audit-index key."),
    index_key_file: Path | None = typer.Option(
        None, "--index-key-file", help="The audit-index key (32 bytes, raw or hex) when no key store is used."
    ),
    reference_date: str | None = typer.Option(
        None, "--reference-date", help="Date that sets the century of 10-digit numbers, e.g. 2024-12-31."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the answer as JSON."),
) -> int:
    """Which deliveries held a person. The personnummer is read from standard input or a hidden prompt.

    It is never taken from the command line, where shell history and process lists would keep
    it, and it is never printed: answers are given per input line (one personnummer a line).
    With --key-store the passphrase comes from LSSSDC_PASSPHRASE, else from the first line.
    Example: lsssdc audit person --ledger ledger.sqlite --index-key-file audit-index.key < person.txt
    """
    key = _index_key(index_key_file, key_store)
    if sys.stdin is None or sys.stdin.isatty():
        values = [_secret("Personnummer")]
    else:
        values = [line.strip() for line in sys.stdin.read().splitlines() if line.strip()]
    if not values:
        raise InputDataError(Problem("no_personnummer", "no personnummer was given on standard input"))
    led = _open(ledger)
    answers: list[dict[str, Any]] = []
    try:
        for i, value in enumerate(values, start=1):
            found = led.deliveries_with(value, key, reference_date)
            answers.append(
                {
                    "line": i,
                    "deliveries": [
                        {
                            "seq": e.seq,
                            "time": e.time,
                            "delivery": kinds.delivered(e).get("package"),
                            "order": kinds.delivered(e).get("order_id"),
                            "project": kinds.delivered(e).get("project_id"),
                        }
                        for e in found
                    ],
                }
            )
    finally:
        led.close()
    if as_json:
        typer.echo(json.dumps(answers, indent=2))
        return EXIT_OK
    for a in answers:
        prefix = f"line {a['line']}: " if len(answers) > 1 else ""
        if not a["deliveries"]:
            typer.echo(f"{prefix}in no delivery")
        for d in a["deliveries"]:
            label = d["delivery"] or d["order"] or ""
            typer.echo(f"{prefix}entry {d['seq']}  {d['time']}  {label}".rstrip())
    return EXIT_OK


@audit_app.command("checkpoint")
def checkpoint(
    ledger: str = LEDGER_OPTION,
    out: Path | None = typer.Option(None, "--out", "-o", help="Export the signed checkpoint to this file."),
    key_store: Path | None = typer.Option(
        None, "--key-store", help="Key store holding the actor's signing key."
    ),
    actor: str | None = typer.Option(
        None, "--actor", help="Whose key signs the checkpoint (with --key-store)."
    ),
    signing_key: Path | None = typer.Option(
        None, "--signing-key", help="An Ed25519 private key (PEM) when no key store is used."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the checkpoint as JSON."),
) -> int:
    """Sign the ledger's current head (origin, size, Merkle root), store it and export it.

    Keep exported checkpoints outside the ledger (with each decision, in the package): a later
    `lsssdc audit verify --checkpoint FILE` then detects truncation and rewriting.
    Example: lsssdc audit checkpoint --ledger ledger.sqlite --signing-key reviewer.pem --out cp-0042.json
    """
    if out is not None and (out.exists() or out.is_symlink()):
        raise InputDataError(
            Problem(
                "file_exists",
                "refusing to overwrite an existing file (an earlier head is evidence)",
                file=str(out),
            )
        )
    key = _signing_key(signing_key, key_store, actor)
    led = _open(ledger, signer=key, readonly=False)  # the checkpoint is stored in the ledger too
    try:
        cp = led.checkpoint()
    finally:
        led.close()
    if out is not None:
        cp.write(out)
    if as_json:
        typer.echo(cp.to_json().rstrip())
        return EXIT_OK
    typer.echo(f"origin {cp.origin}")
    typer.echo(f"size   {cp.size}")
    typer.echo(f"root   {cp.root.hex()}")
    if out is not None:
        typer.echo(f"written to {out}")
    return EXIT_OK


@audit_app.command("recover")
def recover(
    work: Path = typer.Option(Path("work"), "--work", help="The work area of candidates."),
    ledger: str = LEDGER_OPTION,
    deliveries: list[Path] = typer.Option(
        [],
        "--deliveries",
        help="A folder packages are delivered into (repeatable): each deliver entry's package is looked for there.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the findings as JSON."),
) -> int:
    """After a crash: check that no candidate, decision file or package exists without its ledger
    entry, that each delivered package still holds the files its entry recorded, and list
    leftover .part folders. Removes nothing. Exit 0 when consistent, 1 when not.

    Example: lsssdc audit recover --work work --ledger ledger.sqlite
    """
    from lsssdc.release import recovery

    led = _open(ledger)
    try:
        found = recovery.scan(work, led, deliveries)
    finally:
        led.close()
    if as_json:
        typer.echo(json.dumps(found.to_dict(), indent=2))
    else:
        typer.echo(f"candidates  {found.candidates}")
        for p in found.part_folders:
            typer.echo(f"leftover    {p} (an interrupted command's unfinished output; safe to remove)")
        for p in found.entry_without_effect:
            typer.echo(f"settled     {p} (the step never completed; run it again)")
        for p in found.without_entry:
            typer.echo(f"NO ENTRY    {p}")
        for p in found.changed:
            typer.echo(f"CHANGED     {p}")
        typer.echo(
            "consistent" if found.ok else "INCONSISTENT: an effect without its ledger entry, or changed"
        )
    return EXIT_OK if found.ok else EXIT_REFUSED


@audit_app.command("init")
def init(
    ledger: str = LEDGER_OPTION,
    appender_role: str | None = typer.Option(
        None, "--appender-role", help="A database role that may append but never update or delete."
    ),
    origin: str | None = typer.Option(None, "--origin", help="The ledger's name in its checkpoints."),
) -> int:
    """Create a ledger: a SQLite file, or the tables, guards and grants in a PostgreSQL database
    (run again to bring an existing database's guards up to date; entries are never touched).

    Example: lsssdc audit init --ledger postgresql://lsssdc@db.example/ledger --appender-role lsssdc_app
    """
    from lsssdc.ledger import postgres
    from lsssdc.ledger.chain import Ledger

    if postgres.is_url(ledger):
        postgres.init_schema(ledger, appender_role)
    elif appender_role is not None:
        raise InputDataError(Problem("usage", "--appender-role is for a PostgreSQL ledger"))
    led = Ledger.open(ledger, origin=origin)
    try:
        typer.echo(f"ledger {led.origin}: {len(led)} entries")
    finally:
        led.close()
    return EXIT_OK


@audit_app.command("copy")
def copy(
    ledger: str = LEDGER_OPTION,
    to: str = typer.Option(..., "--to", help="The new ledger: a SQLite file or a postgresql:// URL (empty)."),
) -> int:
    """Copy a verified ledger, with its proofs, to a new store (e.g. SQLite to PostgreSQL).

    Example: lsssdc audit copy --ledger ledger.sqlite --to postgresql://lsssdc@db/ledger
    """
    from lsssdc.ledger.chain import copy_ledger

    src = _open(ledger)
    try:
        dst = copy_ledger(src, to)
        typer.echo(f"copied {len(dst)} entries; root {dst.root().hex()} (the same as the source's)")
        dst.close()
    finally:
        src.close()
    return EXIT_OK
