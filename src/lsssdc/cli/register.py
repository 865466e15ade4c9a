"""Commands about the register itself: synth, validate, demo."""

from __future__ import annotations

import json
import re
from pathlib import Path

import typer

from lsssdc.cli.root import app, working
from lsssdc.errors import EXIT_OK, EXIT_REFUSED, InputDataError, Problem

REGISTERS = ("lss", "deaths", "population", "assistans")


def parse_years(text: str) -> list[int]:
    """'1999-2024' or '2019' or '2019,2020' -> a list of years."""
    m = re.fullmatch(r"\s*(\d{4})\s*-\s*(\d{4})\s*", text)
    if m:
        a, b = int(m.group(1)), int(m.group(2))
        if a > b:
            raise InputDataError(Problem("bad_year_range", f"year range {text!r} runs backwards"))
        return list(range(a, b + 1))
    try:
        return sorted({int(y) for y in text.split(",")})
    except ValueError:
        raise InputDataError(
            Problem("bad_year_range", f"cannot read years {text!r}", hint="e.g. 1999-2024")
        ) from None


def parse_inject(text: str | None) -> dict[str, int]:
    if not text:
        return {}
    out = {}
    for part in text.split(","):
        m = re.fullmatch(r"\s*(R\d\d)\s*=\s*(\d+)\s*", part)
        if not m:
            raise InputDataError(Problem("bad_inject", f"cannot read {part!r}", hint="e.g. R01=5,R09=3"))
        out[m.group(1)] = int(m.group(2))
    return out


@app.command()
def synth(
    out: Path = typer.Option(Path("synthetic"), "--out", "-o", help="Directory to write the registers to."),
    years: str = typer.Option("1999-2024", help="Years, e.g. 1999-2024 or 2019,2020."),
    persons: int = typer.Option(75_000, help="Persons in the LSS register per year."),
    seed: int = typer.Option(0, help="Random seed: the same seed gives the same files."),
    registers: str = typer.Option("lss,deaths", help="Which registers: lss, deaths, population, assistans."),
    population_size: int = typer.Option(1_000_000, help="Rows of the population register."),
    fmt: str = typer.Option("parquet", "--format", help="parquet or csv."),
    inject: str | None = typer.Option(None, help="Violations to add, e.g. R01=5,R09=3 (for tests)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> int:
    """Synthesise the LSS register and companion registers (no real person).

    Example: lsssdc synth --years 2015-2024 --persons 20000 --registers lss,deaths,population --out data/
    """
    from lsssdc.register import files
    from lsssdc.register import synth as synth_mod

    wanted = [r.strip() for r in registers.split(",") if r.strip()]
    unknown = [r for r in wanted if r not in REGISTERS]
    if unknown:
        raise InputDataError(
            Problem(
                "bad_registers",
                f"unknown register(s): {', '.join(unknown)}",
                hint="choose from " + ", ".join(REGISTERS),
            )
        )
    try:
        result = synth_mod.synthesise(
            parse_years(years), persons=persons, seed=seed, inject=parse_inject(inject)
        )
        frames = {"lss": result.register, "deaths": result.deaths}
        if "population" in wanted:
            frames["population"] = synth_mod.synthesise_population(
                result, population_size, seed=seed, year=int(result.register["year"].max())
            )
        if "assistans" in wanted:
            frames["assistans"] = synth_mod.synthesise_assistans(result, seed=seed)
    except ValueError as exc:
        raise InputDataError(Problem("bad_argument", str(exc))) from None
    paths = files.write_registers({k: v for k, v in frames.items() if k in wanted}, out, fmt)
    summary = {
        "files": {k: str(p) for k, p in paths.items()},
        "rows": {k: len(frames[k]) for k in paths},
        "injected": result.injected,
        "synthetic": True,
    }
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        for k, p in paths.items():
            typer.echo(f"{k:<11} {len(frames[k]):>10} rows  {p}")
        if result.injected:
            typer.echo("injected violations: " + ", ".join(f"{k}={v}" for k, v in result.injected.items()))
    return EXIT_OK


@app.command()
def validate(
    file: Path = typer.Argument(
        ..., help="The LSS register file (.csv UTF-8 or .parquet), or a folder holding lss.parquet/lss.csv."
    ),
    deaths: Path | None = typer.Option(
        None, "--deaths", help="A death register file, for rule R02 (from the folder when FILE is one)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the validation report as JSON."),
    max_rows: int = typer.Option(1000, help="At most this many row numbers per finding in --json."),
) -> int:
    """Run the register's plausibility checks (quality declaration F2.5.3).

    Exit code 0 when no error rule is broken, 1 when one is, 2 when the file cannot be used.
    Example: lsssdc validate synthetic/lss.parquet --deaths synthetic/deaths.parquet
    (or lsssdc validate synthetic/, the folder `lsssdc synth` wrote)
    """
    from lsssdc.register import files, rules

    if file.is_dir():
        file, found_deaths = files.registers_in_folder(file)
        deaths = deaths if deaths is not None else found_deaths
        if not as_json:
            typer.echo(f"validating {file}" + (f" with deaths {deaths}" if deaths is not None else ""))

    with working("validating the register") as step:
        register = files.read_register(file)
        step.progress(f"{len(register):,} rows read; checking the register's rules")
        death_frame = files.read_deaths(deaths) if deaths is not None else None
        report = rules.validate(register, death_frame, source=str(file))
        step.done(f"{len(register):,} rows, {report.errors} errors, {report.warnings} warnings")
    if as_json:
        typer.echo(json.dumps(report.to_dict(max_rows=max_rows), indent=2))
    else:
        typer.echo(report.render())
    return EXIT_OK if report.ok else EXIT_REFUSED


@app.command()
def demo(
    out: Path = typer.Option(
        Path("lsssdc-demo"),
        "--out",
        "-o",
        help="Folder for the demo: new, empty, or an earlier demo's (cleared); anything else is refused.",
    ),
    persons: int = typer.Option(75_000, help="Persons per year in the synthetic register."),
    years: str = typer.Option("1999-2024", help="Years to synthesise."),
    seed: int = typer.Option(0, help="Random seed."),
    as_json: bool = typer.Option(
        False, "--json", help="Print where everything is as JSON (no progress lines)."
    ),
) -> int:
    """Run the whole flow on built-in synthetic data with demo keys: synthesise, validate, prepare,
    approve, deliver, verify the ledger; print where the report, the package and the ledger are.

    Example: lsssdc demo --out /tmp/demo --years 2010-2024 --persons 20000
    """
    from lsssdc import demo as demo_mod

    say = (lambda _line: None) if as_json else typer.echo
    result = demo_mod.run(out, parse_years(years), persons, seed, say=say)
    ok = result.validation.ok and result.verdict == "releasable" and result.ledger_ok
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "synthetic": True,
                    "demo_keys": True,
                    "registers": str(result.registers),
                    "validation": {
                        "errors": result.validation.errors,
                        "warnings": result.validation.warnings,
                    },
                    "candidate": str(result.candidate),
                    "verdict": result.verdict,
                    "report": str(result.report),
                    "package": str(result.package) if result.package else None,
                    "ledger": str(result.ledger),
                    "ledger_verified": result.ledger_ok,
                    "key_store": str(result.key_store),
                },
                indent=2,
            )
        )
    return EXIT_OK if ok else EXIT_REFUSED
