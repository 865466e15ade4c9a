"""The one `app` every command registers on, and what all commands share (the root options,
progress lines). Command modules import it from here, never from the package, so the package
imports its commands and nothing imports back."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

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


class Step:
    """A long step in progress: ``progress`` says how far it has come, ``done`` what it produced
    (rows, years, tables). On a terminal the spinner's text follows; in a log each is a line."""

    def __init__(self, message: str, status: Any = None) -> None:
        self.message = message
        self.result = ""
        self._status = status

    def progress(self, text: str) -> None:
        if self._status is not None:
            self._status.update(f"{self.message}: {text}")
        else:
            sys.stderr.write(f"lsssdc: {self.message}: {text}\n")
            sys.stderr.flush()

    def done(self, text: str) -> None:
        self.result = text


@contextlib.contextmanager
def working(message: str) -> Iterator[Step]:
    """A spinner on the terminal (stderr) while a long step runs; plain lines in a log otherwise
    (what the step is when it starts, how far it has come, what it produced and how long it took)."""
    import time

    started = time.monotonic()
    if not sys.stderr.isatty():
        sys.stderr.write(f"lsssdc: {message} ...\n")
        sys.stderr.flush()
        step = Step(message)
        yield step
        result = f"{step.result}, " if step.result else ""
        sys.stderr.write(f"lsssdc: {message}: {result}done in {time.monotonic() - started:.1f} s\n")
        sys.stderr.flush()
        return
    from rich.console import Console

    console = Console(stderr=True)
    with console.status(message) as status:
        step = Step(message, status)
        yield step
    if step.result:
        console.print(f"{message}: {step.result} ({time.monotonic() - started:.1f} s)", highlight=False)
