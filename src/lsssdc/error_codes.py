"""The catalogue of error codes: every code a :class:`~lsssdc.errors.Problem` carries, with the
exit class of the error it comes with and an example of its message.

Codes are stable: scripts, ``--json`` output and reports key on them, so a code is never reused
for another meaning. A new code is added here; ``tests/test_error_codes.py`` finds every code in
the package and refuses one that is missing, one listed here but no longer used, near-twins
(the same name but for a plural ``s``), and a code raised with errors of two exit classes.

Exit classes: ``REFUSED`` (exit 1) - the order or release is refused, or the ledger does not
verify; ``UNUSABLE`` (exit 2) - an input, policy, key store or argument cannot be used;
``LISTED`` - a finding reported among others (a gate check, a verification report, problems
raised together), whose exit is that of the error or report that carries it.
``docs/error-codes.md`` is generated from this module (``python -m lsssdc.error_codes``).
"""

from __future__ import annotations

from dataclasses import dataclass

from lsssdc.errors import EXIT_REFUSED, EXIT_UNUSABLE

REFUSED: int | None = EXIT_REFUSED
UNUSABLE: int | None = EXIT_UNUSABLE
LISTED: int | None = None


@dataclass(frozen=True)
class ErrorCode:
    """One stable code: its exit class (None: that of the error or report carrying it) and an
    example of the message it comes with ("…" where the message names a file, value or count)."""

    code: str
    exit: int | None
    example: str


_ENTRIES: dict[str, tuple[int | None, str]] = {
    "actor_locked": (UNUSABLE, "the signing key of '…' needs that actor's own secret"),
    "already_anchored": (UNUSABLE, "this ledger already pins the custodians of this key store (entry …)"),
    "already_approved": (REFUSED, "'…' has already approved this candidate"),
    "ambiguous_change": (UNUSABLE, "a personnummer is changed more than once in the table"),
    "ambiguous_folder": (UNUSABLE, "the folder holds both … and …; give the file to use"),
    "bad_actor_key": (UNUSABLE, "cannot read …"),
    "bad_actor_name": (UNUSABLE, "an actor name is 1-100 letters, digits, '.', '_', '@' or '-'"),
    "bad_age_bands": (UNUSABLE, "age cut points must be increasing and at least 0, got …"),
    "bad_argument": (UNUSABLE, "--new-passphrase rotates the master key: omit --project"),
    "bad_candidate": (UNUSABLE, "the candidate's person index does not match its metadata"),
    "bad_coarsening": (UNUSABLE, "unknown coarsening …"),
    "bad_csv": (
        UNUSABLE,
        "the file is not a well-formed CSV table (a row has more or fewer fields than the …",
    ),
    "bad_date": (UNUSABLE, "the reference date must be YYYY-MM-DD"),
    "bad_flag": (UNUSABLE, "an insats flag is neither 0 nor 1"),
    "bad_format": (UNUSABLE, "unknown format '…'"),
    "bad_hierarchy": (UNUSABLE, "level '…' of '…' must give one label per value"),
    "bad_index_key": (UNUSABLE, "the audit-index key file must hold 32 bytes (raw or hex)"),
    "bad_inject": (UNUSABLE, "cannot read …"),
    "bad_key": (UNUSABLE, "the signing key is not an Ed25519 key"),
    "bad_key_version": (UNUSABLE, "a key version must be 1-…"),
    "bad_label": (UNUSABLE, "a sub-key label is 1-64 lower-case letters, digits, '.', '_', '-'"),
    "bad_levels": (UNUSABLE, "… names variables that are not quasi-identifiers: …"),
    "bad_name": (UNUSABLE, "… must be …"),
    "bad_passphrase": (UNUSABLE, "the passphrase does not open the signing key"),
    "bad_personnummer": (UNUSABLE, "key column has invalid personnummer (…)"),
    "bad_population": (UNUSABLE, "the population table lacks the column(s)"),
    "bad_population_year": (UNUSABLE, "no population figures for …"),
    "bad_project_id": (
        UNUSABLE,
        "a project id must be 1-64 characters: letters, digits, '.', '_' or '-', starting with …",
    ),
    "bad_recipient": (
        UNUSABLE,
        "the recipient is 1-100 characters: letters, digits, space, '.', '_', '@', '(', ')' or '-'",
    ),
    "bad_reference_date": (UNUSABLE, "cannot read the reference date"),
    "bad_registers": (UNUSABLE, "unknown register(s): …"),
    "bad_role": (UNUSABLE, "roles are …"),
    "bad_suppression": (UNUSABLE, "suppression must be 'record' or 'local', not …"),
    "bad_suppression_order": (
        UNUSABLE,
        "the suppression order must list every quasi-identifier exactly once",
    ),
    "bad_top_code": (UNUSABLE, "bands must increase and stay below the limit …, got …"),
    "bad_type": (UNUSABLE, "the column has a type that cannot be read as text"),
    "bad_unit": (UNUSABLE, "unknown unit '…'"),
    "bad_weights": (UNUSABLE, "sampling weights must be numbers of at least 1"),
    "bad_year": (UNUSABLE, "the year is missing or not a year"),
    "bad_year_range": (UNUSABLE, "year range … runs backwards"),
    "candidate_changed": (REFUSED, "the candidate's policy file is not the policy it was prepared under"),
    "candidate_policy_unreadable": (REFUSED, "the candidate's policy file does not load"),
    "cellkey_clash": (UNUSABLE, "two releases disagree on the true value of a shared cell"),
    "cellkey_counts_only": (UNUSABLE, "table '…': the cell key method here perturbs count tables only"),
    "cellkey_impossible": (UNUSABLE, "table '…': … published value(s) this ptable cannot give"),
    "cellkey_inconsistent": (
        UNUSABLE,
        "the releases do not come from these tables with this ptable (… cell(s) out of reach)",
    ),
    "cellkey_key_type": (UNUSABLE, "table '…': cell keys must be uint32"),
    "cellkey_magnitude": (REFUSED, "the cell key method protects count tables; order sums by suppression"),
    "cellkey_negative": (UNUSABLE, "table '…' has negative counts"),
    "cellkey_no_key": (UNUSABLE, "table '…' has no cell keys"),
    "cellkey_no_secret": (REFUSED, "the cell key method needs the record-key secret of the key store"),
    "cellkey_release": (UNUSABLE, "table '…': one whole published value per cell is needed"),
    "change_cycle": (UNUSABLE, "the table of changed personnummer has a cycle"),
    "checkpoint_export": (
        REFUSED,
        "the … is on the ledger (entry …) but its signed head could not be exported: …",
    ),
    "checkpoint_folder_unreadable": (
        REFUSED,
        "a file in the checkpoint folder is not a readable ledger head: …",
    ),
    "checkpoint_unreadable": (UNUSABLE, "not an lsssdc ledger checkpoint"),
    "column_clash": (UNUSABLE, "linking … would overwrite the column '…'"),
    "column_exists": (UNUSABLE, "the input already has a 'personnummer' column"),
    "columns_changed": (LISTED, "the columns differ from those the prepare entry lists; nothing was written"),
    "custodian_needed": (
        UNUSABLE,
        "a new actor is added by a key custodian, with that custodian's own secret",
    ),
    "demo_out": (UNUSABLE, "is not a folder (or is a symbolic link); give a new or empty folder"),
    "duplicate_column": (UNUSABLE, "the column appears more than once in the header"),
    "duplicate_keys": (UNUSABLE, "… has … key(s) that occur more than once"),
    "duplicate_link": (LISTED, "the order asks for '…' twice"),
    "empty": (UNUSABLE, "the file is empty"),
    "empty_file": (UNUSABLE, "the file is empty"),
    "entropy_l_diversity": (LISTED, "… records have entropy l below … …"),
    "extract_exposes": (
        REFUSED,
        "with the microdata extract(s) delivered for the same year () a reader could narrow …",
    ),
    "extract_refill": (
        REFUSED,
        "table '…' shows … at a detail where the microdata extract of order … (ledger entry …) …",
    ),
    "file_exists": (UNUSABLE, "refusing to overwrite an existing file (an earlier head is evidence)"),
    "foreign_key_store": (
        UNUSABLE,
        "this ledger anchors the actors of another key store (…), not of this one (…)",
    ),
    "foreign_ledger": (
        REFUSED,
        "the checkpoint folder keeps the heads of ledger '…'; this decision is on ledger '…'",
    ),
    "format_layout": (UNUSABLE, "the … header is not laid out as expected; its time stamp cannot be fixed"),
    "hidden_value_outgoing": (REFUSED, "table '…': a hidden cell would be written; nothing was written"),
    "hierarchy_not_nested": (UNUSABLE, "level '…' of '…' splits a category of level '…'"),
    "history_changed": (
        REFUSED,
        "project … got another delivery (ledger entry …, order …) after this candidate was …",
    ),
    "history_exposes": (
        REFUSED,
        "… cell(s) the rules call sensitive were published in an earlier release, e.g. …",
    ),
    "history_missing": (
        REFUSED,
        "an earlier delivery to project … (…) is not in the work area; a new delivery is …",
    ),
    "identifier": (LISTED, "'…' is a direct identifier and is never delivered"),
    "identifier_column": (LISTED, "a column is a direct identifier; nothing was written"),
    "identifier_in_text": (UNUSABLE, "… holds something shaped like a personnummer"),
    "identifier_value": (LISTED, "a value is shaped like a personnummer; nothing was written"),
    "index_key": (UNUSABLE, "no delivery was indexed with this audit-index key"),
    "index_personnummer": (UNUSABLE, "the person index needs valid personnummer; some values are not"),
    "invalid_personnummer": (UNUSABLE, "invalid personnummer: sex and age cannot be derived"),
    "k_anonymity": (LISTED, "… records stay in classes smaller than k=… …"),
    "kdf_unavailable": (UNUSABLE, "this key store needs Argon2id"),
    "key_file": (UNUSABLE, "cannot read the …"),
    "key_file_damaged": (UNUSABLE, "the key file cannot be used: …"),
    "key_file_version": (UNUSABLE, "unknown key file version (this lsssdc reads version …)"),
    "keys_next_to_data": (
        UNUSABLE,
        "the key store would be next to data: keys are never written next to data",
    ),
    "keystore_changed": (
        UNUSABLE,
        "the key store was changed by someone else since it was opened; nothing was written",
    ),
    "keystore_damaged": (UNUSABLE, "the key store is damaged or has been edited: …"),
    "keystore_exists": (UNUSABLE, "a file already exists there; refusing to overwrite it"),
    "keystore_hardlink": (UNUSABLE, "the key store file has another name (a hard link); refused"),
    "keystore_not_json": (UNUSABLE, "the key store is not valid JSON (damaged or edited)"),
    "keystore_permissions": (UNUSABLE, "the key store can be read or written by other users"),
    "keystore_symlink": (UNUSABLE, "the key store path is a symbolic link; give the real file's path"),
    "keystore_tampered": (
        UNUSABLE,
        "the key store has been tampered with: its content does not match its seal",
    ),
    "keystore_truncated": (UNUSABLE, "the key store is empty (truncated)"),
    "keystore_version": (UNUSABLE, "unknown key store version … (this lsssdc reads version …)"),
    "kommun_and_lan": (UNUSABLE, "kommun already holds län as a level"),
    "l_diversity": (LISTED, "… records see fewer than l=… sensitive values …"),
    "ledger_actor": (UNUSABLE, "the actor must be a non-empty name on one line"),
    "ledger_args": (UNUSABLE, "--ledger and --actor go together"),
    "ledger_clock": (UNUSABLE, "the ledger clock must give timezone-aware times"),
    "ledger_copy": (REFUSED, "the copy does not verify as the source did"),
    "ledger_empty": (REFUSED, "the ledger file is empty: there is nothing to read"),
    "ledger_head": (REFUSED, "the ledger's stored head does not match its record; nothing was appended"),
    "ledger_kind": (UNUSABLE, "unknown ledger entry kind '…'"),
    "ledger_missing": (REFUSED, "entry … is missing"),
    "ledger_no_checkpoint": (UNUSABLE, "no checkpoint covers entry …"),
    "ledger_no_entry": (UNUSABLE, "the ledger has no entry …"),
    "ledger_no_key": (UNUSABLE, "a ledger entry must be signed: no signing key was given"),
    "ledger_not_empty": (UNUSABLE, "the target ledger is not empty; nothing was copied"),
    "ledger_origin": (UNUSABLE, "the origin must be printable ASCII on one line"),
    "ledger_payload": (UNUSABLE, "the payload must be a mapping"),
    "ledger_person_index": (REFUSED, "the person index of entry … was changed"),
    "ledger_personnummer": (UNUSABLE, "refused: the entry looks like it holds a personnummer at"),
    "ledger_tampered": (REFUSED, "the source ledger does not verify; nothing was copied"),
    "ledger_unreachable": (UNUSABLE, "cannot connect to the ledger database (…)"),
    "ledger_unreadable": (REFUSED, "entry … cannot be read"),
    "ledger_version": (UNUSABLE, "unknown ledger schema version …"),
    "ledger_wrong_key": (UNUSABLE, "the signing key is not the registered key of actor '…'"),
    "legacy_signer": (UNUSABLE, "actor '…' has no secret of their own (made before per-actor secrets)"),
    "line_too_long": (UNUSABLE, "a line is longer than …: not a register table (a row is under 1 KiB)"),
    "link_not_allowed": (LISTED, "the policy '…' does not allow linking the register '…'"),
    "link_not_ordered": (LISTED, "the register '…' was given, but the order does not ask to link it"),
    "linked_tables_disagree": (UNUSABLE, "table '…' disagrees with a linked table on a shared cell"),
    "max_suppression": (LISTED, "… records would need suppression, more than the allowed … (… of …)"),
    "missing_amount": (UNUSABLE, "an insats is given but its amount is missing or negative"),
    "missing_column": (UNUSABLE, "column to coarsen is not in the data"),
    "missing_key": (UNUSABLE, "the key is missing"),
    "missing_key_version": (UNUSABLE, "project '…' has no key version … (versions: )"),
    "missing_register": (UNUSABLE, "the order links …, but no such register was given"),
    "missing_signing_key": (UNUSABLE, "actor '…' has no signing key in this key store"),
    "missing_value": (UNUSABLE, "the dimension has missing values"),
    "mixed_projects": (UNUSABLE, "reversal takes the keys of one project only"),
    "mixed_protection": (
        REFUSED,
        "tables of the same years were released with … (order …, ledger entry …): exact and …",
    ),
    "no_actor": (UNUSABLE, "--key-store needs --actor NAME (whose key signs)"),
    "no_actor_secret": (UNUSABLE, "no secret for actor '…': set … or run the command in a terminal"),
    "no_custodian": (UNUSABLE, "'…' is not an endorsed key custodian of this store"),
    "no_custodian_secret": (UNUSABLE, "no secret: set … or run the command in a terminal"),
    "no_file": (UNUSABLE, "cannot read the …"),
    "no_index_key": (UNUSABLE, "the audit-index key is needed"),
    "no_insats": (UNUSABLE, "the table selects no insats"),
    "no_key": (UNUSABLE, "the key store has no key of project '…'"),
    "no_keystore": (UNUSABLE, "there is no key store at this path"),
    "no_ledger": (UNUSABLE, "the database holds no ledger"),
    "no_levels": (LISTED, "no level vector lies within the allowed levels"),
    "no_order": (UNUSABLE, "the ledger holds no candidate of order '…'"),
    "no_passphrase": (UNUSABLE, "no passphrase: set … or run the command in a terminal to be asked"),
    "no_personnummer": (UNUSABLE, "no personnummer was given on standard input"),
    "no_policy": (UNUSABLE, "the order names the policy '…'; give its file in the same command"),
    "no_psycopg": (UNUSABLE, "a PostgreSQL ledger needs psycopg"),
    "no_reason": (UNUSABLE, "give a --reason"),
    "no_register_in_folder": (UNUSABLE, "is a folder without lss.parquet or lss.csv; it holds:"),
    "no_shipped": (UNUSABLE, "no shipped … is named '…' (shipped: …)"),
    "no_signing_key": (UNUSABLE, "a signing key is needed"),
    "no_tables": (REFUSED, "the order asks for no table"),
    "not_a_candidate": (UNUSABLE, "no candidate here (candidate.json is missing)"),
    "not_a_keystore": (UNUSABLE, "the file is not an lsssdc key store"),
    "not_a_pseudonym": (
        UNUSABLE,
        "… value(s) are missing or not lsssdc pseudonyms (expected P<version>-<32 letters a-p>)",
    ),
    "not_allowed": (LISTED, "the policy '…' does not allow tables"),
    "not_approved": (
        REFUSED,
        "the candidate needs … approval(s) by reviewers other than its preparer; the ledger holds …",
    ),
    "not_confirmed": (UNUSABLE, "deleting a project's keys cannot be undone"),
    "not_parquet": (UNUSABLE, "the file is not a readable Parquet file"),
    "not_prepared": (
        REFUSED,
        "no signed prepare entry on this ledger has this candidate's content: it was changed …",
    ),
    "not_text": (UNUSABLE, "the file holds NUL bytes: it is binary, not CSV text"),
    "not_utf8": (UNUSABLE, "the file is not UTF-8 text"),
    "out_is_input": (UNUSABLE, "the output would overwrite the input"),
    "outside_root": (UNUSABLE, "the path leaves its folder (a symbolic link?)"),
    "own_candidate": (REFUSED, "'…' prepared this candidate and cannot also approve it (four eyes)"),
    "personnummer_in_partner_extract": (LISTED, "the partner extract has a personnummer column"),
    "project_exists": (UNUSABLE, "project '…' already has (or had) a key"),
    "pseudonym_collision": (
        LISTED,
        "the pseudonyms do not decode back to their personnummer, so two persons could share …",
    ),
    "pseudonym_key_mismatch": (
        UNUSABLE,
        "… pseudonym(s) were not made with project '…' key version … (the check tag does not match)",
    ),
    "ptable_d": (UNUSABLE, "the largest noise D must be a whole number of at least 1"),
    "ptable_js": (UNUSABLE, "js must be a whole number of at least 1"),
    "ptable_max_value": (UNUSABLE, "max_value must be a whole number of at least D + js = …"),
    "ptable_v": (UNUSABLE, "the noise variance V must be a positive number"),
    "receipt_entry": (LISTED, "the entry does not match the receipt"),
    "receipt_proof": (LISTED, "the inclusion proof fails: …"),
    "receipt_signature": (LISTED, "the receipt's checkpoint signature is not valid"),
    "record_key_secret": (UNUSABLE, "the record-key secret must be at least 16 bytes"),
    "refused": (REFUSED, "the candidate did not meet its policy and cannot be approved"),
    "rejected": (REFUSED, "a reviewer (…) rejected this candidate's content; a rejection is final for it"),
    "schema": (UNUSABLE, "the file must be a mapping of keys to values"),
    "signer_exists": (UNUSABLE, "actor '…' already has a signing key"),
    "structural_zero_broken": (
        UNUSABLE,
        "table '…': … cell(s) that the register's rules make zero (an insats at an age or in a …",
    ),
    "suppression_cannot_help": (
        LISTED,
        "even a fully suppressed record is unsafe: the extract as a whole (… records) does not …",
    ),
    "suppression_failed": (REFUSED, "local suppression could not reach the criteria"),
    "table_audit_failed": (REFUSED, "the attacker can narrow a hidden cell too much; nothing was written"),
    "target_exists": (UNUSABLE, "the delivery directory already exists"),
    "too_large": (UNUSABLE, ""),
    "too_many_columns": (UNUSABLE, "the file has more than … columns: not a register table"),
    "too_many_versions": (UNUSABLE, "project '…' has used every key version"),
    "unknown_code": (UNUSABLE, "… record(s) have a code outside the hierarchy of '…'"),
    "unknown_format": (UNUSABLE, "unknown file type '…'"),
    "unknown_insats": (UNUSABLE, "unknown insats: …"),
    "unknown_measure": (UNUSABLE, "unknown measure '…'"),
    "unknown_register": (LISTED, "unknown register(s): …"),
    "unknown_variable": (LISTED, "'…' is not a variable of the LSS register"),
    "unquoted_code": (LISTED, "'…' is read by YAML as the number …"),
    "unreadable": (UNUSABLE, "cannot be read (…)"),
    "usage": (UNUSABLE, "--appender-role is for a PostgreSQL ledger"),
    "version": (UNUSABLE, "… must be one of …"),
    "weak_passphrase": (UNUSABLE, "the passphrase must have at least … characters"),
    "weak_secret": (UNUSABLE, "an actor's secret must have at least … characters"),
    "wrong_actor_secret": (
        UNUSABLE,
        "the secret does not open the signing key of '…' (or its roles were changed)",
    ),
    "wrong_key": (LISTED, "the policy links '…' on the …, not on the …"),
    "wrong_passphrase": (UNUSABLE, "the passphrase is wrong (or the key store's header has been altered)"),
    "wrong_policy": (LISTED, "the order is written for policy '…', not '…'"),
    "wrong_private_key": (UNUSABLE, "the key file is encrypted for another key than this private key"),
    "wrong_role": (UNUSABLE, "actor '…' does not have the role '…' (roles: …)"),
    "yaml": (UNUSABLE, "not valid YAML: …"),
    "yaml_duplicate_key": (LISTED, "key '…' appears twice"),
    "yaml_hostile": (UNUSABLE, ""),
    "years_missing": (UNUSABLE, "the register holds no rows for …, which order … covers"),
    "years_without_dimension": (
        UNUSABLE,
        "the register holds several years but the table has no year dimension",
    ),
}

#: every code, by name
CATALOGUE: dict[str, ErrorCode] = {c: ErrorCode(c, e, x) for c, (e, x) in _ENTRIES.items()}

_EXIT_TEXT = {EXIT_REFUSED: "1 (refused)", EXIT_UNUSABLE: "2 (unusable)", None: "that of the carrier"}


def markdown() -> str:
    """The catalogue as a Markdown table (docs/error-codes.md)."""
    rows = [
        "# Error codes",
        "",
        "Every problem lsssdc reports carries one of these stable codes (in `--json` output, the",
        "reviewer report and the ledger). Exit 1: refused; exit 2: the input, policy, key store or",
        "argument cannot be used; a listed finding takes the exit of the error or report carrying it.",
        "Generated from `lsssdc/error_codes.py`.",
        "",
        "| code | exit | example message |",
        "|---|---|---|",
    ]
    for c in sorted(CATALOGUE.values(), key=lambda e: e.code):
        example = c.example.replace("|", "\\|")
        rows.append(f"| `{c.code}` | {_EXIT_TEXT[c.exit]} | {example} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # pragma: no cover - writes the reference
    print(markdown(), end="")
