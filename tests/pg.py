"""A throwaway PostgreSQL server for the tests: the machine's initdb and pg_ctl, a Unix socket
in a temporary folder, trust authentication for one local user, stopped at the end.

Skipped with the reason where PostgreSQL is not installed; ``LSSSDC_REQUIRE_POSTGRES=1``
(set by ``.ci/run``) turns the skip into a failure. initdb refuses to run as root, so as root
the server runs as the ``postgres`` system user.

:func:`running_server` and :func:`create_database` need no pytest: the ledger benchmark
(``benchmarks/bench_ledger.py --load``) starts its server with them too.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_counter = itertools.count()


def _tool(name: str) -> str | None:
    """A PostgreSQL program on PATH, or in Debian's versioned folder (not on PATH there)."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: p.parts[-3])
    return str(versions[-1]) if versions else None


def _as_server_user(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["su", "postgres", "-s", "/bin/sh", "-c", shlex.join(cmd)]
    return cmd


def unavailable() -> str | None:
    """Why no server can be started here, or None."""
    if _tool("initdb") is None or _tool("pg_ctl") is None:
        return "PostgreSQL (initdb, pg_ctl) is not installed"
    return None


@contextlib.contextmanager
def running_server() -> Iterator[str]:
    """Start a throwaway server and yield its socket folder (user ``lsssdc``, trust auth, fsync
    off); stop it and remove its files at the end. Check :func:`unavailable` first."""
    initdb, pg_ctl = _tool("initdb"), _tool("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise RuntimeError("PostgreSQL (initdb, pg_ctl) is not installed")
    folder = Path(tempfile.mkdtemp(prefix="lsssdc-pg-"))
    os.chmod(folder, 0o777)
    data = folder / "data"
    try:
        subprocess.run(
            _as_server_user([initdb, "-D", str(data), "-A", "trust", "-U", "lsssdc", "--no-sync"]),
            check=True,
            capture_output=True,
        )
        opts = f"-k {folder} -c listen_addresses='' -c fsync=off"
        subprocess.run(
            _as_server_user([pg_ctl, "-D", str(data), "-o", opts, "-l", str(folder / "log"), "-w", "start"]),
            check=True,
            capture_output=True,
        )
        yield str(folder)
    finally:
        if data.exists():
            subprocess.run(
                _as_server_user([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]), capture_output=True
            )
        shutil.rmtree(folder, ignore_errors=True)


def create_database(server: str, name: str | None = None) -> str:
    """A fresh, empty database on the server whose socket folder is ``server``, as a ledger URL."""
    import psycopg

    name = name or f"ledger_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(f"postgresql://lsssdc@/postgres?host={server}", autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}")
    return f"postgresql://lsssdc@/{name}?host={server}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The socket folder of a running server (user ``lsssdc``, trust auth)."""
    reason = unavailable()
    if reason is not None:
        if os.environ.get("LSSSDC_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    pytest.importorskip("psycopg", reason="psycopg is not installed")
    with running_server() as folder:
        yield folder


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A fresh, empty database on the throwaway server, as a ledger URL."""
    return create_database(postgres_server)
