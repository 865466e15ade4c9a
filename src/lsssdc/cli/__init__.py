"""The lsssdc command line: parses arguments, calls the API, renders reports. Nothing else.

Exit codes, the same for every command: 0 done; 1 refused (rule errors found, policy not met,
tampering found); 2 unusable input or usage.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import typer
import typer.main

from lsssdc.errors import EXIT_UNUSABLE, LsssdcError, scrub


def _click_class(name: str) -> type[BaseException]:
    """A class of the click that this typer uses, found through typer's public ``BadParameter``.

    Older typer runs on the separate ``click`` package, newer typer on a copy of its own; both
    raise usage errors as subclasses of the ``UsageError`` found this way, so no ``import
    click`` is needed (and none is declared).
    """
    for cls in typer.BadParameter.__mro__:
        if cls.__name__ == name:
            return cls
    raise ImportError(f"typer.BadParameter has no base class {name}")  # pragma: no cover


_UsageError = _click_class("UsageError")
_ClickException = _click_class("ClickException")

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


# commands register themselves on `app` when their module is imported
from lsssdc.cli import audit as _audit  # noqa: E402,F401
from lsssdc.cli import keys as _keys  # noqa: E402,F401
from lsssdc.cli import link as _link  # noqa: E402,F401
from lsssdc.cli import policy as _policy  # noqa: E402,F401
from lsssdc.cli import register as _register  # noqa: E402,F401
from lsssdc.cli import release as _release  # noqa: E402,F401
from lsssdc.cli import review as _review  # noqa: E402,F401
from lsssdc.cli import tables as _tables  # noqa: E402,F401


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _fail(message: str, code: int) -> int:
    sys.stderr.write(scrub(message).rstrip() + "\n")
    return code


def _name_metavars(command: object) -> None:
    """Show an option's value by its name (``--key-store KEY_STORE``), never by a Python type.

    Newer typer prints annotations such as ``<list[Path]>``; an option that sets its own
    metavar keeps it.
    """
    for param in getattr(command, "params", []):
        kind = type(param).__name__
        if kind.endswith("Option") and not getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = (param.name or "value").upper()
        elif kind.endswith("Argument") and hasattr(param, "display_type_rich"):
            # newer typer prints an argument's annotation after its name; the name says enough
            param.display_type_rich = lambda *_a, **_k: None
    for sub in getattr(command, "commands", {}).values():
        _name_metavars(sub)


def command() -> object:
    """The click command behind ``lsssdc`` (for the help texts and tests)."""
    cmd = typer.main.get_command(app)
    _name_metavars(cmd)
    return cmd


def run(argv: list[str] | None = None) -> int:
    """Run the command line and return its exit code (never raises, never prints a traceback)."""
    try:
        rv = command().main(args=argv, prog_name="lsssdc", standalone_mode=False)  # type: ignore[attr-defined]
    except LsssdcError as exc:
        lines = [f"lsssdc: {p.render()}" for p in exc.problems]
        return _fail("\n".join(lines), exc.exit_code)
    except _UsageError as exc:
        return _fail(f"lsssdc: usage error: {_one_line(exc.format_message())} (see --help)", EXIT_UNUSABLE)  # type: ignore[attr-defined]
    except _ClickException as exc:
        return _fail(f"lsssdc: {_one_line(exc.format_message())}", EXIT_UNUSABLE)  # type: ignore[attr-defined]
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        return _fail("lsssdc: aborted", EXIT_UNUSABLE)
    except KeyboardInterrupt:
        return _fail("lsssdc: interrupted", 130)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: no traceback, no data
        return _fail(f"lsssdc: internal error ({type(exc).__name__}): {exc}", EXIT_UNUSABLE)
    return int(rv) if isinstance(rv, int) else 0


def main() -> None:
    sys.exit(run(sys.argv[1:]))
