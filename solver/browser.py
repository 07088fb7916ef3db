"""Which Chromium to launch: Playwright's own, or the system's.

Order of choice:

1. ``$SOLVER_CHROMIUM``: a path to a Chromium executable; or ``playwright`` to
   insist on Playwright's own browser; or ``system`` to insist on a system one.
2. Playwright's own Chromium, when ``playwright install chromium`` has put it there.
3. A system Chromium on ``PATH`` (Debian's ``chromium`` package: ``/usr/bin/chromium``),
   launched with flags that keep it quiet on machines without a network or a GPU.

Example::

    from playwright.sync_api import sync_playwright
    from solver.browser import launch_chromium

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from solver.apt import apt_get, apt_install, last_lines

from solver.errors import BrowserNotFoundError

if TYPE_CHECKING:
    from playwright.async_api import Browser as AsyncBrowser
    from playwright.async_api import Playwright as AsyncPlaywright
    from playwright.sync_api import Browser, Playwright

logger = logging.getLogger(__name__)

ENV_VAR = "SOLVER_CHROMIUM"
SYSTEM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: a system Chromium runs as root in containers without a GPU or a network
SYSTEM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run")
INSTALL_HINT = (
    "run `solver browser install` (it tries `playwright install chromium`, then, as root, "
    "`apt-get install -y chromium`), or install Chromium yourself and set "
    f"{ENV_VAR}=/path/to/chromium"
)


@dataclass(frozen=True)
class BrowserChoice:
    """The Chromium to launch and how."""

    source: str  # "playwright", "system" or "env"
    executable_path: str | None  # None: Playwright's own, found by Playwright
    args: tuple[str, ...] = field(default=())

    def launch_options(self) -> dict[str, Any]:
        """Keyword arguments for ``browser_type.launch``."""
        options: dict[str, Any] = {}
        if self.executable_path:
            options["executable_path"] = self.executable_path
        if self.args:
            options["args"] = list(self.args)
        return options

    def describe(self) -> str:
        where = self.executable_path or "Playwright's own Chromium"
        return {"playwright": f"Playwright's Chromium ({where})",
                "system": f"system Chromium ({where})",
                "env": f"Chromium from ${ENV_VAR} ({where})"}[self.source]


def find_system_chromium() -> str | None:
    for name in SYSTEM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def choose_browser(bundled_executable: str | None) -> BrowserChoice:
    """Pick a Chromium. ``bundled_executable`` is ``playwright.chromium.executable_path``."""
    wanted = os.environ.get(ENV_VAR, "").strip()
    bundled_ok = bool(bundled_executable) and Path(bundled_executable or "").is_file()
    if wanted and wanted not in ("playwright", "system"):
        path = Path(wanted).expanduser()
        if not path.is_file() or not os.access(path, os.X_OK):
            raise BrowserNotFoundError(
                f"${ENV_VAR} is {wanted!r}, which is not an executable file (point it at a "
                "Chromium binary such as /usr/bin/chromium, set it to 'playwright' or 'system', "
                "or unset it to choose automatically)")
        return BrowserChoice("env", str(path), SYSTEM_ARGS)
    if wanted != "system" and bundled_ok:
        return BrowserChoice("playwright", None)
    if wanted == "playwright":
        raise BrowserNotFoundError(
            f"${ENV_VAR}=playwright but Playwright's Chromium is not installed at "
            f"{bundled_executable} (run `playwright install chromium`, or unset {ENV_VAR})")
    system = find_system_chromium()
    if system:
        return BrowserChoice("system", system, SYSTEM_ARGS)
    raise BrowserNotFoundError(
        f"no Chromium found: Playwright's is not installed ({bundled_executable or 'unknown path'}) "
        f"and none of {', '.join(SYSTEM_CANDIDATES)} is on PATH ({INSTALL_HINT})")


def launch_chromium(playwright: Playwright, headless: bool = True, **options: Any) -> Browser:
    """Launch the chosen Chromium through a sync Playwright."""
    choice = choose_browser(playwright.chromium.executable_path)
    logger.debug("launching %s", choice.describe())
    return playwright.chromium.launch(headless=headless, **{**choice.launch_options(), **options})


async def launch_chromium_async(playwright: AsyncPlaywright, headless: bool = True,
                                **options: Any) -> AsyncBrowser:
    """Launch the chosen Chromium through an async Playwright."""
    choice = choose_browser(playwright.chromium.executable_path)
    logger.debug("launching %s", choice.describe())
    return await playwright.chromium.launch(headless=headless,
                                            **{**choice.launch_options(), **options})


def bundled_executable() -> str | None:
    """Where Playwright keeps (or would keep) its own Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        return playwright.chromium.executable_path


def current_choice() -> BrowserChoice:
    return choose_browser(bundled_executable())


def install(timeout: float = 600.0, report=print) -> BrowserChoice:  # type: ignore[no-untyped-def]
    """Make sure a Chromium is there; idempotent and quick when one already is.

    Tries Playwright's own download first, then a system Chromium, then
    ``apt-get install -y chromium`` when running as root.
    """
    bundled = bundled_executable()
    if bundled and Path(bundled).is_file():
        return current_choice()
    if os.environ.get(ENV_VAR, "") not in ("", "playwright", "system"):
        return current_choice()
    report("Getting Playwright's Chromium (playwright install chromium)...")
    try:
        done = subprocess.run([sys.executable, "-m", "playwright", "install", "chromium"],
                              timeout=timeout, capture_output=True, text=True)
        if done.returncode == 0 and bundled and Path(bundled).is_file():
            return current_choice()
        last = (done.stderr or done.stdout).strip().splitlines()
        report(f"  Playwright's download failed: {last[0] if last else 'no output'}")
    except subprocess.TimeoutExpired:
        report(f"  Playwright's download did not finish within {timeout:.0f} s")
    if find_system_chromium():
        choice = current_choice()
        report(f"Using the {choice.describe()}.")
        return choice
    apt = apt_get()
    if apt:
        report("Installing Debian's chromium (apt-get update; apt-get install -y chromium)...")
        output = apt_install(apt, ["chromium"], timeout)
        if find_system_chromium():
            return current_choice()
        report("  apt-get did not install chromium; its last lines:\n    " + last_lines(output))
    raise BrowserNotFoundError(
        "could not get a Chromium: Playwright's download failed and no system Chromium is "
        "installed (install your system's chromium package, e.g. `sudo apt-get install -y "
        f"chromium`, then run this again; or set {ENV_VAR}=/path/to/chromium)")


def connect_steps(playwright: Any, endpoint: str, timeout_ms: float = 30_000) -> Any:
    """Steps (:mod:`solver.steps`): connect to a remote browser instead of launching one.

    ``ws://...`` is a Playwright browser server (``playwright launch-server`` or
    ``playwright run-server``); ``http://host:port`` is a Chromium started with
    ``--remote-debugging-port`` (Chrome DevTools Protocol).
    """
    from solver.errors import SiteError, UsageError
    from solver.steps import Call

    if endpoint.startswith(("ws://", "wss://")):
        method = "connect"
    elif endpoint.startswith(("http://", "https://")):
        method = "connect_over_cdp"
    else:
        raise UsageError(f"--connect {endpoint}: give ws://HOST:PORT/PATH (a Playwright browser "
                         "server) or http://HOST:PORT (Chromium's debugging port)")
    try:
        return (yield Call(playwright.chromium, method, (endpoint,), {"timeout": timeout_ms}))
    except Exception as error:
        first = str(error).splitlines()[0] if str(error) else ""
        raise SiteError(f"--connect {endpoint}: could not reach the browser ({error.__class__.__name__}: "
                        f"{first}); start one with `playwright launch-server --browser chromium` "
                        "(ws://) or run Chromium with --remote-debugging-port (http://)") from None
