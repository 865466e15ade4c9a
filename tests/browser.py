"""A real browser for the tests: the system's Chromium, headless, driven over its DevTools pipe.

No browser is downloaded and no driver library is needed: Chromium is started with
``--remote-debugging-pipe`` (it reads DevTools commands from file descriptor 3 and writes
answers and events to 4, each message JSON ended by a NUL byte), so the tests can open a page,
collect every console message, log entry, uncaught exception and network request, evaluate
JavaScript in the page to read the rendered DOM, click, and take full-page screenshots.

Skipped with the reason where Chromium is not installed; ``LSSSDC_REQUIRE_BROWSER=1`` (set by
``.ci/run``) turns the skip into a failure. ``LSSSDC_CHROMIUM`` names another binary.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

_NAMES = ("chromium", "chromium-browser")


def binary() -> str | None:
    """The Chromium to use, or None."""
    named = os.environ.get("LSSSDC_CHROMIUM")
    if named:
        return shutil.which(named) or (named if Path(named).is_file() else None)
    for name in _NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def require() -> str:
    """The Chromium binary; skips the test without one (fails under LSSSDC_REQUIRE_BROWSER=1)."""
    found = binary()
    if found is None:
        named = os.environ.get("LSSSDC_CHROMIUM")
        reason = (
            f"LSSSDC_CHROMIUM={named} is not a program"
            if named
            else "Chromium is not installed (Debian: apt-get install chromium)"
        )
        if os.environ.get("LSSSDC_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{reason}, and LSSSDC_REQUIRE_BROWSER=1 asks for it")
        pytest.skip(reason)
    return found


def artifacts(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A folder for screenshots: under LSSSDC_TEST_ARTIFACTS when set, else pytest's tmp path."""
    root = os.environ.get("LSSSDC_TEST_ARTIFACTS")
    if root:
        folder = Path(root) / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return tmp_path_factory.mktemp(name)


class BrowserError(RuntimeError):
    pass


@dataclass
class Page:
    """What a loaded page reported: console messages, log entries, exceptions, requests."""

    url: str
    console: list[dict[str, Any]] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)

    def errors(self) -> list[str]:
        """Console errors and warnings, error log entries, uncaught exceptions, failed loads."""
        out = [
            f"console.{m['type']}: "
            + " ".join(str(a.get("value", a.get("description", ""))) for a in m["args"])
            for m in self.console
            if m["type"] in ("error", "warning", "assert")
        ]
        out += [
            f"log {e['level']} ({e['source']}): {e['text']}"
            for e in self.log
            if e["level"] in ("error", "warning")
        ]
        out += [f"exception: {x}" for x in self.exceptions]
        out += [f"failed request: {x}" for x in self.failed_requests]
        return out


class Chromium:
    """One headless Chromium with one tab; use as a context manager."""

    def __init__(self, executable: str | None = None, timeout: float = 30.0) -> None:
        self.executable = executable or require()
        self.timeout = timeout
        self._id = 0
        self._buf = b""
        self._events: list[dict[str, Any]] = []
        self._profile = tempfile.mkdtemp(prefix="lsssdc-chromium-")
        self.session: str | None = None
        self.pid = 0
        self._status: int | None = None

    def __enter__(self) -> Chromium:
        cmd_r, self._cmd_w = os.pipe()
        self._resp_r, resp_w = os.pipe()
        # the child's ends at 10 or above, so that moving them to 3 and 4 overwrites neither
        cmd_r, resp_w = (self._high(fd) for fd in (cmd_r, resp_w))
        args = [
            "--headless",
            "--remote-debugging-pipe",
            f"--user-data-dir={self._profile}",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-gpu",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--mute-audio",
            "--force-device-scale-factor=1",
            "about:blank",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.insert(0, "--no-sandbox")  # Chromium's sandbox refuses to run as root
        self.pid = os.posix_spawn(
            self.executable,
            [self.executable, *args],
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_DUP2, cmd_r, 3),
                (os.POSIX_SPAWN_DUP2, resp_w, 4),
            ],
            setpgroup=0,  # its own process group: stopped as a whole at the end
        )
        os.close(cmd_r)
        os.close(resp_w)
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.call(
            "Target.attachToTarget", {"targetId": target, "flatten": True}, session=False
        )["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            with contextlib.suppress(OSError):
                self._send("Browser.close", {}, None)
            deadline = time.monotonic() + 10
            while self.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            if self.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            # helpers Chromium started in its process group
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
            os.close(self._cmd_w)
            os.close(self._resp_r)
            shutil.rmtree(self._profile, ignore_errors=True)

    def poll(self) -> int | None:
        """The browser's exit status, or None while it runs."""
        if self._status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._status = os.waitstatus_to_exitcode(status)
        return self._status

    # -- the pipe ----------------------------------------------------------------------------

    @staticmethod
    def _high(fd: int) -> int:
        high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(fd)
        return high

    def _send(self, method: str, params: dict[str, Any], session: str | None) -> int:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._cmd_w, json.dumps(msg).encode("utf-8") + b"\0")
        return self._id

    def _next(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            if time.monotonic() > deadline or self.poll() is not None:
                raise BrowserError("Chromium did not answer in time (or exited)")
            chunk = os.read(self._resp_r, 1 << 20)
            if not chunk:
                raise BrowserError("Chromium closed its DevTools pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def call(
        self, method: str, params: dict[str, Any] | None = None, *, session: bool = True
    ) -> dict[str, Any]:
        """Send a DevTools command and return its result; events that arrive meanwhile are kept."""
        want = self._send(method, params or {}, self.session if session else None)
        deadline = time.monotonic() + self.timeout
        while True:
            msg = self._next(deadline)
            if msg.get("id") == want:
                if "error" in msg:
                    raise BrowserError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self._events.append(msg)

    # -- pages -------------------------------------------------------------------------------

    def open(self, path: Path, width: int = 1100, height: int = 900) -> Page:
        """Load a local file and wait for its load event; return what it reported while loading."""
        self._events.clear()
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        url = path.resolve().as_uri()
        self.call("Page.navigate", {"url": url})
        deadline = time.monotonic() + self.timeout
        while not any(e.get("method") == "Page.loadEventFired" for e in self._events):
            self._events.append(self._next(deadline))
        self.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        return self.collect(Page(url))

    def collect(self, page: Page) -> Page:
        """Move the events seen so far into ``page``."""
        for e in self._events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled":
                page.console.append({"type": p["type"], "args": p.get("args", [])})
            elif m == "Log.entryAdded":
                page.log.append(p["entry"])
            elif m == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                page.exceptions.append(str(d.get("exception", {}).get("description") or d.get("text")))
            elif m == "Network.requestWillBeSent":
                page.requests.append(p["request"]["url"])
            elif m == "Network.loadingFailed":
                page.failed_requests.append(f"{p.get('errorText')} ({p.get('type')})")
        self._events.clear()
        return page

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        res = self.call(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}
        )
        if "exceptionDetails" in res:
            raise BrowserError(f"evaluate failed: {res['exceptionDetails'].get('text')}")
        return res.get("result", {}).get("value")

    def screenshot(self, target: Path) -> Path:
        """A PNG of the whole page (not only the viewport)."""
        metrics = self.call("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        shot = self.call(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
        )
        target.write_bytes(base64.b64decode(shot["data"]))
        return target

    def pdf(self, target: Path) -> Path:
        """The page printed (print stylesheet applied) as PDF."""
        out = self.call("Page.printToPDF", {"printBackground": True, "preferCSSPageSize": True})
        target.write_bytes(base64.b64decode(out["data"]))
        return target
