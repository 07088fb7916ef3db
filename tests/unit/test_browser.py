"""Choosing the Chromium: Playwright's own, a system one, or $SOLVER_CHROMIUM."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from solver.browser import ENV_VAR, SYSTEM_ARGS, choose_browser
from solver.errors import BrowserNotFoundError


def executable(folder: Path, name: str) -> Path:
    path = folder / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


@pytest.fixture()
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No $SOLVER_CHROMIUM, and a PATH holding only an empty folder."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    return empty


def test_playwright_browser_first_when_installed(clean_env: Path, tmp_path: Path) -> None:
    bundled = executable(tmp_path, "chrome")
    executable(clean_env, "chromium")
    choice = choose_browser(str(bundled))
    assert choice.source == "playwright"
    assert choice.launch_options() == {}


def test_system_chromium_when_playwright_has_none(clean_env: Path, tmp_path: Path) -> None:
    system = executable(clean_env, "chromium")
    choice = choose_browser(str(tmp_path / "missing" / "chrome"))
    assert choice.source == "system"
    assert choice.launch_options() == {"executable_path": str(system), "args": list(SYSTEM_ARGS)}
    assert "--no-sandbox" in SYSTEM_ARGS and "--disable-background-networking" in SYSTEM_ARGS


def test_environment_variable_overrides(clean_env: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    bundled = executable(tmp_path, "chrome")
    custom = executable(tmp_path, "my-chromium")
    system = executable(clean_env, "chromium-browser")
    monkeypatch.setenv(ENV_VAR, str(custom))
    assert choose_browser(str(bundled)).executable_path == str(custom)
    monkeypatch.setenv(ENV_VAR, "system")
    assert choose_browser(str(bundled)).executable_path == str(system)
    monkeypatch.setenv(ENV_VAR, "playwright")
    assert choose_browser(str(bundled)).source == "playwright"


def test_bad_environment_value_is_explained(clean_env: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nope"))
    with pytest.raises(BrowserNotFoundError) as caught:
        choose_browser(None)
    assert str(caught.value) == (
        f"${ENV_VAR} is {str(tmp_path / 'nope')!r}, which is not an executable file (point it at "
        "a Chromium binary such as /usr/bin/chromium, set it to 'playwright' or 'system', or "
        "unset it to choose automatically)")
    monkeypatch.setenv(ENV_VAR, "playwright")
    with pytest.raises(BrowserNotFoundError, match="run `playwright install chromium`"):
        choose_browser(str(tmp_path / "missing"))


def test_nothing_found_says_how_to_get_one(clean_env: Path, tmp_path: Path) -> None:
    with pytest.raises(BrowserNotFoundError) as caught:
        choose_browser(str(tmp_path / "missing"))
    message = str(caught.value)
    assert message.startswith("no Chromium found: Playwright's is not installed")
    assert "solver browser install" in message and f"{ENV_VAR}=/path/to/chromium" in message
    assert os.environ["PATH"] == str(clean_env)
