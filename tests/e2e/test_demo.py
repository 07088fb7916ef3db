"""`solver demo`, the README's main job, run as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("style", ["datauri", "iframe"])  # styles with no shipped model of their own
def test_demo_opens_the_site_and_reports(style: str, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "solver", "demo", "--style", style,
                           "--models-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Local captcha site: http://127.0.0.1:") and lines[0].endswith(f"/{style}/")
    assert lines[2] == "Captcha: an <img>, 160x60 pixels, loaded"
    assert lines[3] == "Wrong answer: refused by the site, and a new captcha shown"
    assert lines[4].startswith(f"Model: {tmp_path / style} not trained yet")
    assert lines[5].startswith("Timings: site start ")


def test_demo_solves_with_the_shipped_model() -> None:
    done = subprocess.run([sys.executable, "-m", "solver", "demo", "--solves", "5"],
                          capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[4] == "Model: example (shipped) found"  # no ./models/example: the package's own
    solved = next(line for line in lines if line.startswith("Solved: "))
    assert int(solved.split()[1]) >= 4 and " of 5 " in solved
    assert next(line for line in lines if line.startswith("Per solve, median: wait "))
