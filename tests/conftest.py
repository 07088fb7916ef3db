"""Shared fixtures: the browser the product would launch, and the local captcha site."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up chatter

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402

from solver.browser import choose_browser  # noqa: E402
from solver.demo_site import CaptchaSite, LiveSite, SiteServer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PROFILES_DIR = ROOT / "solver" / "shipped" / "profiles"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any],
                             browser_type: Any) -> dict[str, Any]:
    """pytest-playwright launches the Chromium that the product's launch helper picks."""
    if browser_type.name != "chromium":
        return browser_type_launch_args
    choice = choose_browser(browser_type.executable_path)
    return {**browser_type_launch_args, **choice.launch_options()}


@pytest.fixture(scope="session")
def live_site() -> Iterator[LiveSite]:
    """Every style of the local site on a free port of 127.0.0.1, answers in-process."""
    site = CaptchaSite(seed=20261121)
    with SiteServer(site.app, port=0) as server:
        yield LiveSite(site, server)


@pytest.fixture(scope="session")
def pair_profile_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trivial profile for tiny training runs: two of four digits, 80x40, no clutter."""
    import yaml

    path = tmp_path_factory.mktemp("profiles") / "pair.yaml"
    path.write_text(yaml.safe_dump({
        "url": "http://127.0.0.1:8765/pair/",
        "captcha": {"selector": "img"}, "form": {"input": "#a", "submit": "#b"},
        "format": {"charset": "0123", "length": 2},
        "synthetic": {"width": 80, "height": 40, "font_sizes": [30], "noise_dots": 0,
                      "noise_curves": 0},
    }))
    return path
