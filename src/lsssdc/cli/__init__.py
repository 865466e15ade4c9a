"""The lsssdc command line: parses arguments, calls the API, renders reports. Nothing else.

Exit codes, the same for every command: 0 done; 1 refused (rule errors found, policy not met,
tampering found); 2 unusable input or usage.
"""

from __future__ import annotations

import sys

import typer
import typer.main

# commands register themselves on `app` when their module is imported
from lsssdc.cli import audit as _audit  # noqa: F401
from lsssdc.cli import keys as _keys  # noqa: F401
from lsssdc.cli import link as _link  # noqa: F401
from lsssdc.cli import policy as _policy  # noqa: F401
from lsssdc.cli import register as _register  # noqa: F401
from lsssdc.cli import release as _release  # noqa: F401
from lsssdc.cli import review as _review  # noqa: F401
from lsssdc.cli import tables as _tables  # noqa: F401
from lsssdc.cli.root import EPILOG, app, working
from lsssdc.errors import EXIT_UNUSABLE, LsssdcError, scrub

__all__ = ["EPILOG", "app", "command", "main", "run", "working"]


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
