"""The lsssdc command line: parses arguments, calls the API, renders reports. Nothing else.

Exit codes, the same for every command: 0 done; 1 refused (rule errors found, policy not met,
tampering found); 2 unusable input or usage.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import click
import typer

from lsssdc.errors import EXIT_UNUSABLE, LsssdcError, scrub

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


@contextlib.contextmanager
def working(message: str) -> Iterator[None]:
    """A spinner on the terminal (stderr) while a long step runs; silent when not a terminal."""
    if not sys.stderr.isatty():
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(message):
        yield


# commands register themselves on `app` when their module is imported
from lsssdc.cli import audit as _audit  # noqa: E402,F401
from lsssdc.cli import keys as _keys  # noqa: E402,F401
from lsssdc.cli import link as _link  # noqa: E402,F401
from lsssdc.cli import policy as _policy  # noqa: E402,F401
from lsssdc.cli import register as _register  # noqa: E402,F401
from lsssdc.cli import release as _release  # noqa: E402,F401
from lsssdc.cli import tables as _tables  # noqa: E402,F401


def _fail(message: str, code: int) -> int:
    sys.stderr.write(scrub(message).rstrip() + "\n")
    return code


def run(argv: list[str] | None = None) -> int:
    """Run the command line and return its exit code (never raises, never prints a traceback)."""
    try:
        rv = app(args=argv, prog_name="lsssdc", standalone_mode=False)
    except LsssdcError as exc:
        lines = [f"lsssdc: {p.render()}" for p in exc.problems]
        return _fail("\n".join(lines), exc.exit_code)
    except click.exceptions.UsageError as exc:
        return _fail(f"lsssdc: usage error: {exc.format_message()} (see --help)", EXIT_UNUSABLE)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code or 0)
    except click.exceptions.Abort:
        return _fail("lsssdc: aborted", EXIT_UNUSABLE)
    except KeyboardInterrupt:
        return _fail("lsssdc: interrupted", 130)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: no traceback, no data
        return _fail(f"lsssdc: internal error ({type(exc).__name__}): {exc}", EXIT_UNUSABLE)
    return int(rv) if isinstance(rv, int) else 0


def main() -> None:
    sys.exit(run(sys.argv[1:]))
