"""`lsssdc keys ...`, `lsssdc pseudonymise` and `lsssdc reidentify`: the key holder's commands.

The passphrase is read from the environment variable LSSSDC_PASSPHRASE (LSSSDC_NEW_PASSPHRASE
when changing it) or asked for without echo; it is never a command-line argument, so it cannot
end up in a shell history or a process list. No command prints key material.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import typer

from lsssdc.cli.root import app
from lsssdc.errors import EXIT_OK, InputDataError, KeyStoreError, LsssdcError, Problem
from lsssdc.identity.keystore import (
    ENV_ACTOR_SECRET,
    ENV_CUSTODIAN_SECRET,
    ENV_NEW_PASSPHRASE,
    ENV_PASSPHRASE,
    KeyStore,
    check_apart,
)

keys_app = typer.Typer(
    help="Create, rotate and inspect the encrypted key store (passphrase from LSSSDC_PASSPHRASE or a prompt).",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")

KEY_STORE_HELP = "The key store file (keep it in a directory of its own, never next to data)."


def read_passphrase(*, new: bool = False, confirm: bool = False) -> str:
    """The passphrase from the environment, else a hidden prompt; never from an argument."""
    env = ENV_NEW_PASSPHRASE if new else ENV_PASSPHRASE
    value = os.environ.get(env)
    if value:
        return value
    if not sys.stdin.isatty():
        raise KeyStoreError(
            Problem("no_passphrase", f"no passphrase: set {env} or run the command in a terminal to be asked")
        )
    label = "New key store passphrase" if new else "Key store passphrase"
    return str(typer.prompt(label, hide_input=True, confirmation_prompt=confirm))


def open_keystore(path: Path, actor: str | None = None) -> KeyStore:
    """Open a key store with the passphrase from the environment or a hidden prompt; with
    ``actor``, also unlock that actor's signing key with the actor's own secret."""
    store = KeyStore.open(path, read_passphrase())
    if actor is not None:
        store.unlock(actor, read_actor_secret(actor))
    return store


def _prompt_secret(label: str) -> str:
    if not sys.stdin.isatty():
        raise KeyStoreError(
            Problem(
                "no_custodian_secret",
                f"no secret: set {ENV_CUSTODIAN_SECRET} or run the command in a terminal",
            )
        )
    return str(typer.prompt(label, hide_input=True))


def read_actor_secret(actor: str, *, confirm: bool = False) -> str:
    """An actor's own secret: ``LSSSDC_ACTOR_SECRET``, else a hidden prompt; never an argument."""
    value = os.environ.get(ENV_ACTOR_SECRET)
    if value:
        return value
    if not sys.stdin.isatty():
        raise KeyStoreError(
            Problem(
                "no_actor_secret",
                f"no secret for actor '{actor}': set {ENV_ACTOR_SECRET} or run the command in a terminal",
            )
        )
    return str(typer.prompt(f"Secret of actor '{actor}'", hide_input=True, confirmation_prompt=confirm))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _with_file(exc: LsssdcError, path: Path) -> LsssdcError:
    """The same error with the input file named in each problem that has none."""
    exc.problems = [p if p.file else replace(p, file=str(path)) for p in exc.problems]
    return exc


def _emit(summary: dict[str, Any], as_json: bool, lines: list[str]) -> None:
    if as_json:
        typer.echo(json.dumps(summary, indent=2, sort_keys=True))
    else:
        for line in lines:
            typer.echo(line)


def _log(ledger: str, store: KeyStore, kind: str, actor: str, payload: dict[str, Any]) -> None:
    """Append one signed entry to the audit ledger with the actor's key from the key store."""
    from lsssdc.ledger.chain import Ledger

    signer = store.get_signing_key(actor)
    book = Ledger.open(ledger, signer=signer, actor_keys=store.public_keys())
    try:
        book.append(kind, actor, payload)
    finally:
        close = getattr(book, "close", None)
        if close is not None:
            close()


def _check_ledger_args(ledger: str | None, actor: str | None) -> None:
    if (ledger is None) != (actor is None):
        raise InputDataError(Problem("ledger_args", "--ledger and --actor go together"))


# --------------------------------------------------------------------------------------------
# lsssdc keys ...


@keys_app.command("init")
def init(
    key_store: Path = typer.Option(..., "--key-store", help=KEY_STORE_HELP),
    data_dir: list[Path] = typer.Option(
        [], "--data-dir", help="A data or delivery directory the key store must stay apart from (repeatable)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> int:
    """Create a new key store with a random master key; refuses to overwrite one.

    Keys are never written next to data: the store is refused inside a --data-dir, or in a
    directory that holds data files.
    Example: LSSSDC_PASSPHRASE=... lsssdc keys init --key-store /secure/keys/lsssdc-keys.json --data-dir /data
    """
    check_apart(key_store, data_dir)
    store = KeyStore.create(key_store, read_passphrase(confirm=True), apart_from=data_dir)
    info = store.info()
    _emit(
        {
            "key_store": str(store.path),
            "store_id": info["store_id"],
            "master_version": info["master_version"],
        },
        as_json,
        [
            f"created key store {store.path} (master key version {info['master_version']}, "
            f"passphrase key derivation {info['kdf']['algorithm']})",
            "keep it in a directory of its own and back it up; without the passphrase it cannot be opened.",
        ],
    )
    return EXIT_OK


@keys_app.command("rotate")
def rotate(
    key_store: Path = typer.Option(..., "--key-store", help=KEY_STORE_HELP),
    project: str | None = typer.Option(
        None, "--project", help="Rotate this project's pseudonym key instead (its pseudonyms change)."
    ),
    new_passphrase: bool = typer.Option(
        False, "--new-passphrase", help=f"Also change the passphrase (from {ENV_NEW_PASSPHRASE} or a prompt)."
    ),
    ledger: str | None = typer.Option(None, "--ledger", help="Audit ledger to log the rotation in."),
    actor: str | None = typer.Option(None, "--actor", help="Who rotates (needs a signing key in the store)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> int:
    """Rotate the master key (re-wraps every key; pseudonyms stay) or, with --project, a project key.

    A project key rotation adds a key version and keeps the old ones, so the key holder can map
    old pseudonyms to new; do it only at the start of a new delivery series.
    Example: lsssdc keys rotate --key-store /secure/keys/lsssdc-keys.json
    """
    _check_ledger_args(ledger, actor)
    store = open_keystore(key_store, actor)
    if actor is not None:
        store.get_signing_key(actor, role="custodian")  # rotating keys is the custodian's
    if project is not None:
        if new_passphrase:
            raise InputDataError(
                Problem("bad_argument", "--new-passphrase rotates the master key: omit --project")
            )
        version = store.rotate_project(project)
        summary: dict[str, Any] = {
            "project": project,
            "key_version": version,
            "versions": store.project_versions(project),
        }
        lines = [
            f"project {project}: new key version {version} (versions kept: "
            + ", ".join(str(v) for v in summary["versions"])
            + ")",
            "new pseudonyms differ from earlier ones; the key holder can map old to new.",
        ]
    else:
        passphrase = read_passphrase(new=True, confirm=True) if new_passphrase else None
        before = store.master_version
        version = store.rotate_master(passphrase)
        summary = {
            "master_version": version,
            "previous_master_version": before,
            "passphrase_changed": new_passphrase,
        }
        lines = [f"master key version {before} -> {version}; every key re-wrapped, pseudonyms unchanged"]
    if ledger is not None and actor is not None:
        _log(ledger, store, "keys_rotate", actor, {"store_id": store.store_id, **summary})
    _emit(summary, as_json, lines)
    return EXIT_OK


@keys_app.command("show")
def show(
    key_store: Path = typer.Option(..., "--key-store", help=KEY_STORE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the metadata as JSON."),
) -> int:
    """Show the key store's metadata (versions, projects, signers); never any key material.

    Example: lsssdc keys show --key-store /secure/keys/lsssdc-keys.json --json
    """
    info = open_keystore(key_store).info()
    kdf = info["kdf"]
    params = ", ".join(f"{k} {v}" for k, v in kdf.items() if k != "algorithm")
    lines = [
        f"key store {info['path']} (format {info['format']} version {info['version']}, id {info['store_id']})",
        f"created {info['created']}; passphrase key derivation {kdf['algorithm']} ({params})",
        f"master key version {info['master_version']} (created {info['master_created']})"
        + (
            "; earlier versions " + ", ".join(str(h["version"]) for h in info["master_history"])
            if info["master_history"]
            else ""
        ),
    ]
    for name, p in info["projects"].items():
        versions = ", ".join(str(v) for v in p["versions"])
        lines.append(f"project {name}: current key version {p['current_version']} (versions {versions})")
    for name, d in info["deleted_projects"].items():
        lines.append(f"project {name}: keys deleted {d['deleted']}")
    for name, s in info["signers"].items():
        lines.append(f"signer {name}: Ed25519 public key {s['public_key']}")
    _emit(info, as_json, lines)
    return EXIT_OK


@keys_app.command("add-signer")
def add_signer(
    key_store: Path = typer.Option(..., "--key-store", help=KEY_STORE_HELP),
    name: str = typer.Option(..., "--name", help="The actor (reviewer, key holder) the key belongs to."),
    role: list[str] = typer.Option(
        ...,
        "--role",
        help="preparer (prepare, deliver), reviewer (approve, reject) or custodian (keys); repeatable.",
    ),
    by: str | None = typer.Option(
        None, "--by", help="The key custodian who adds the actor (needed once the store has one)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> int:
    """Generate an Ed25519 signing key for a named actor in one or more roles.

    The key is protected by the actor's own secret (LSSSDC_ACTOR_SECRET or a prompt), not by
    the store's passphrase, so nobody signs as another actor.
    Example: LSSSDC_ACTOR_SECRET=... lsssdc keys add-signer --key-store keys.json --name reviewer-a --role reviewer
    """
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    store = open_keystore(key_store)
    if by is not None:
        custodian_secret = os.environ.get(ENV_CUSTODIAN_SECRET) or _prompt_secret(
            f"Secret of custodian '{by}'"
        )
        store.unlock(by, custodian_secret)
    secret = read_actor_secret(name, confirm=True)
    public = store.add_signer(name, secret, role, by=by).public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    roles = store.roles(name)
    _emit(
        {"name": name, "public_key": public, "roles": roles},
        as_json,
        [f"signer {name} ({', '.join(roles)}): Ed25519 public key {public}"],
    )
    return EXIT_OK


@keys_app.command("anchor")
def anchor_cmd(
    key_store: Path = typer.Option(..., "--key-store", help=KEY_STORE_HELP),
    ledger: str = typer.Option(..., "--ledger", help="The audit ledger that pins the custodians."),
    by: str = typer.Option(..., "--by", help="The key custodian who pins (their own secret)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> int:
    """Pin the key store's custodians on a ledger that started before the store had one.

    The custodian first vouches for every actor not yet endorsed (they are listed: check them).
    From then on a release decision on that ledger counts only actors a pinned custodian
    endorsed, so the store's passphrase alone makes no reviewer. A new ledger pins them by
    itself at its first entry.
    Example: LSSSDC_CUSTODIAN_SECRET=... lsssdc keys anchor --key-store k.json --ledger l.sqlite --by key-custodian
    """
    from lsssdc.identity import actors
    from lsssdc.ledger.chain import Ledger

    store = open_keystore(key_store)
    store.unlock(by, os.environ.get(ENV_CUSTODIAN_SECRET) or _prompt_secret(f"Secret of custodian '{by}'"))
    key = store.get_signing_key(by, role="custodian")
    with Ledger.open(ledger, actor_keys=store.public_keys()) as book:
        t = actors.trust(store, book, ledger)  # refuses a ledger that pins another store
        if t.anchored:
            raise InputDataError(
                Problem(
                    "already_anchored",
                    f"this ledger already pins the custodians of this key store (entry {t.pin_entry})",
                    file=ledger,
                )
            )
        # the custodian vouches for the actors as they are now (listed below: check them)
        endorsed = store.endorse_unendorsed(by)
        if by not in actors.custodians(store):
            raise KeyStoreError(
                Problem(
                    "no_custodian",
                    f"'{by}' is not an endorsed key custodian of this store",
                    file=str(key_store),
                )
            )
        seq = actors.anchor(book, store, by, key)
    pinned = actors.custodians(store)
    _emit(
        {"ledger_entry": seq, "store_id": store.store_id, "custodians": pinned, "endorsed": endorsed},
        as_json,
        [f"pinned custodians {', '.join(sorted(pinned))} of key store {store.store_id} (ledger entry {seq})"]
        + [f"endorsed by {by}: {name} ({', '.join(store.roles(name))})" for name in endorsed],
    )
    return EXIT_OK


@keys_app.command("delete-project")
def delete_project(
    key_store: Path = typer.Option(..., "--key-store", help=KEY_STORE_HELP),
    project: str = typer.Option(..., "--project", help="The project whose keys are destroyed."),
    reason: str = typer.Option(..., "--reason", help="Why (e.g. the retention period ended); logged."),
    ledger: str = typer.Option(..., "--ledger", help="Audit ledger the deletion is logged in."),
    actor: str = typer.Option(..., "--actor", help="Who deletes (needs a signing key in the store)."),
    yes: bool = typer.Option(False, "--yes", help="Confirm: this cannot be undone."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> int:
    """Destroy every key of a project: its pseudonyms can never be reversed or re-made. Logged.

    Example: lsssdc keys delete-project --key-store k.json --project PRJ-1 --reason "retention ended" --ledger l.sqlite --actor keyholder --yes
    """
    if not yes:
        raise InputDataError(
            Problem(
                "not_confirmed", "deleting a project's keys cannot be undone", hint="add --yes to confirm"
            )
        )
    if not reason.strip():
        raise InputDataError(Problem("no_reason", "give a --reason"))
    store = open_keystore(key_store, actor)
    store.get_signing_key(actor, role="custodian")  # fail before anything is destroyed
    versions = store.delete_project(project)
    payload = {"store_id": store.store_id, "project": project, "key_versions": versions, "reason": reason}
    _log(ledger, store, "key_delete", actor, payload)
    _emit(
        payload,
        as_json,
        [f"project {project}: key versions {', '.join(map(str, versions))} destroyed; logged in {ledger}"],
    )
    return EXIT_OK


# --------------------------------------------------------------------------------------------
# lsssdc pseudonymise / reidentify


def _reference_date(text: str | None) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InputDataError(
            Problem("bad_reference_date", "cannot read the reference date", hint="write it as YYYY-MM-DD")
        ) from None


def _check_paths(input_file: Path, out: Path, key_store: Path) -> None:
    if out.expanduser().resolve() == input_file.expanduser().resolve():
        raise InputDataError(Problem("out_is_input", "the output would overwrite the input", file=str(out)))
    check_apart(key_store, [input_file, out])


@app.command("pseudonymise")
def pseudonymise_cmd(
    input_file: Path = typer.Argument(
        ..., help="The table (.csv UTF-8 or .parquet) with a personnummer column."
    ),
    column: str = typer.Option("personnummer", "--column", help="The personnummer column."),
    project: str = typer.Option(..., "--project", help="The research project id (keys are per project)."),
    key_store: Path = typer.Option(..., "--key-store", help=KEY_STORE_HELP),
    out: Path = typer.Option(..., "--out", "-o", help="Output table (.csv or .parquet)."),
    reference_date: str | None = typer.Option(
        None, "--reference-date", help="YYYY-MM-DD: the date 10-digit personnummer are read against."
    ),
    keep_column: bool = typer.Option(
        False,
        "--keep-column/--drop-column",
        help="Keep the personnummer column too (key holder's files only).",
    ),
    with_lopnummer: bool = typer.Option(
        False, "--lopnummer", help="Add a 'lopnummer' column: a dense rank of the pseudonyms."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> int:
    """Replace a personnummer column by keyed, project-scoped pseudonyms (P<version>-<32 letters>).

    The project's key is created on first use. The same person gets the same pseudonym in every
    delivery to the same project, and unrelated pseudonyms in other projects.
    Example: lsssdc pseudonymise extract.parquet --project PRJ-2025-01 --key-store /secure/keys/k.json --out delivery/extract.parquet
    """
    from lsssdc.fileio import read_table, write_table
    from lsssdc.identity.pseudonym import check_project_id, personnummer_digits, pseudonymise_frame

    check_project_id(project)
    _check_paths(input_file, out, key_store)
    ref = _reference_date(reference_date)
    df = read_table(input_file, required=(column,))
    store = open_keystore(key_store)
    known = project in store.projects()
    if not known and column in df.columns:  # a project's first key is made only for a usable column
        try:
            personnummer_digits(df[column], ref, column)
        except InputDataError as exc:
            raise _with_file(exc, input_file) from None
    key = store.pseudonym_key(project, create=True)
    try:
        result, report = pseudonymise_frame(
            df,
            column,
            key,
            reference_date=ref,
            keep_column=keep_column,
            lopnummer_column="lopnummer" if with_lopnummer else None,
        )
    except InputDataError as exc:
        raise _with_file(exc, input_file) from None
    write_table(result, out)
    summary = {
        **report.to_dict(),
        "input": str(input_file),
        "output": str(out),
        "created_project_key": not known,
    }
    lines = [
        f"pseudonymised {report.rows} rows ({report.persons} persons) of column '{column}' "
        f"with project {project} key version {report.key_version} -> {out}"
    ]
    if not known:
        lines.insert(0, f"created the first key of project {project} in {store.path}")
    _emit(summary, as_json, lines)
    return EXIT_OK


@app.command("reidentify")
def reidentify_cmd(
    input_file: Path = typer.Argument(..., help="A table (.csv or .parquet) with a pseudonym column."),
    column: str = typer.Option("pseudonym", "--column", help="The pseudonym column."),
    project: str = typer.Option(..., "--project", help="The project the pseudonyms belong to."),
    key_store: Path = typer.Option(..., "--key-store", help=KEY_STORE_HELP),
    out: Path = typer.Option(..., "--out", "-o", help="Output table with a 'personnummer' column."),
    reason: str = typer.Option(..., "--reason", help="Why re-identification is needed; logged."),
    ledger: str = typer.Option(..., "--ledger", help="The audit ledger the re-identification is logged in."),
    actor: str = typer.Option(..., "--actor", help="Who re-identifies (needs a signing key in the store)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> int:
    """Key holder only: turn a project's pseudonyms back into personnummer. Always logged.

    The output is written only once the ledger entry (project, key versions, counts, reason and
    both files' SHA-256, never a value) has been appended.
    Example: lsssdc reidentify flagged.csv --project PRJ-1 --key-store k.json --out back.csv --reason "death register correction, dnr 2025-123" --ledger audit.sqlite --actor keyholder
    """
    from lsssdc.fileio import atomic_path, detect_format, read_table, write_table
    from lsssdc.identity.pseudonym import key_versions, reidentify

    if not reason.strip():
        raise InputDataError(Problem("no_reason", "give a --reason for the re-identification"))
    _check_paths(input_file, out, key_store)
    fmt = detect_format(out)
    df = read_table(input_file, required=(column,))
    if "personnummer" in df.columns and column != "personnummer":
        raise InputDataError(
            Problem("column_exists", "the input already has a 'personnummer' column", file=str(input_file))
        )
    store = open_keystore(key_store, actor)
    store.get_signing_key(actor, role="custodian")  # no custodian's key, no re-identification
    keys = store.pseudonym_keys(project)
    try:
        personnummer = reidentify(df[column], keys, column=column)
    except InputDataError as exc:
        raise _with_file(exc, input_file) from None
    versions = key_versions(df[column], column=column)
    position = list(df.columns).index(column)
    result = df.drop(columns=[column])
    result.insert(position, "personnummer", personnummer.set_axis(df.index))
    input_hash = _sha256(input_file)
    with atomic_path(out) as tmp:
        write_table(result, tmp, fmt=fmt)
        payload = {
            "store_id": store.store_id,
            "project": project,
            "key_versions": versions,
            "values": len(df),
            "column": column,
            "reason": reason,
            "input_sha256": input_hash,
            "output_sha256": _sha256(tmp),
        }
        _log(ledger, store, "reidentify", actor, payload)
    _emit(
        payload,
        as_json,
        [
            f"re-identified {len(df)} values of project {project} -> {out}; logged in {ledger} as actor {actor}"
        ],
    )
    return EXIT_OK
