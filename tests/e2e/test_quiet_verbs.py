"""Quiet by default: the runtime verbs print no third-party banner and never load TensorFlow.

Each verb runs in its own process, as a user runs it, so that native code's
writes to file descriptor 2 are what the test reads.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from solver.demo_site import LiveSite
from solver.drawing import CaptchaDrawer
from solver.quiet import is_banner

pytestmark = pytest.mark.e2e

# main() in a child, then which heavy modules it loaded: one JSON line after the verb's output
RUN_AND_REPORT_MODULES = """
import json, sys
from solver.cli import main
status = main(sys.argv[1:])
loaded = sorted(name for name in sys.modules
                if name.split(".")[0] in ("tensorflow", "keras") or name.startswith("solver.training"))
print(json.dumps({"status": status, "heavy_modules": loaded}))
"""


def run_verb(*args: str, cwd: Path) -> tuple[dict[str, object], subprocess.CompletedProcess[str]]:
    done = subprocess.run([sys.executable, "-c", RUN_AND_REPORT_MODULES, *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd)
    return json.loads(done.stdout.splitlines()[-1]), done


def banners(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if is_banner(line)
            or "XNNPACK" in line or "absl::InitializeLog" in line or "cudart_stub" in line]


@pytest.fixture(scope="module")
def captcha(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("images") / "captcha.png"
    path.write_bytes(CaptchaDrawer(width=160, height=60, seed=3).png("K7QP"))
    return path


def test_predict_is_quiet_and_loads_no_tensorflow(captcha: Path, tmp_path: Path) -> None:
    report, done = run_verb("predict", "--site", "example", str(captcha), cwd=tmp_path)
    assert report == {"status": 0, "heavy_modules": []}, done.stderr
    assert done.stdout.startswith(f"{captcha}\t")
    assert banners(done.stderr) == [] and done.stderr == ""


def test_verbose_shows_the_banners(captcha: Path, tmp_path: Path) -> None:
    report, done = run_verb("--verbose", "predict", "--site", "example", str(captcha), cwd=tmp_path)
    assert report["status"] == 0
    assert "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." in done.stderr


def test_solve_is_quiet_and_loads_no_tensorflow(live_site: LiveSite, tmp_path: Path) -> None:
    report, done = run_verb("solve", "--site", "digits", "--url", live_site.url_for("digits"),
                            cwd=tmp_path)
    assert report == {"status": 0, "heavy_modules": []}, done.stderr
    assert banners(done.stderr) == [], done.stderr


def test_demo_prints_no_banner(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "solver", "demo", "--solves", "2"],
                          capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert banners(done.stdout + done.stderr) == [], done.stderr
    assert done.stdout.startswith("Local captcha site: http://127.0.0.1:")
