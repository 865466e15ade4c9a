"""The one `app` every command registers on, and what all commands share (the root options,
progress lines). Command modules import it from here, never from the package, so the package
imports its commands and nothing imports back."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import typer

EPILOG = "Exit codes: 0 done, 1 refused (rule errors, policy not met, tampering), 2 unusable input or usage."

app = typer.Typer(
    name="lsssdc",
    help="Statistical disclosure control and audited release of LSS register extracts.",
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,  # tracebacks could show data; errors are rendered below
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"lsssdc {version('lsssdc')}")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            typer.echo("lsssdc (not installed)")
        raise typer.Exit(0)


@app.callback()
def _root(
    show_version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", is_eager=True, callback=_version
    ),
) -> None:
    """Statistical disclosure control and audited release of LSS register extracts."""


@contextlib.contextmanager
def working(message: str) -> Iterator[None]:
    """A spinner on the terminal (stderr) while a long step runs; plain lines in a log otherwise
    (what the step is when it starts, and how long it took when it ends)."""
    if not sys.stderr.isatty():
        import time

        started = time.monotonic()
        sys.stderr.write(f"lsssdc: {message} ...\n")
        sys.stderr.flush()
        yield
        sys.stderr.write(f"lsssdc: {message}: done in {time.monotonic() - started:.1f} s\n")
        sys.stderr.flush()
        return
    from rich.console import Console

    with Console(stderr=True).status(message):
        yield
