"""Fault tests with real processes: `kill -9` of import and collect at seeded random moments.

After each kill the dataset opens, every label that was confirmed (by the import's source, or
by the site's verdict) is there, nothing is duplicated, and running the same command again
reaches the count asked for.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from solver.dataset import DatasetStore
from solver.demo_site import LiveSite
from solver.drawing import CaptchaDrawer

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ROOT / "solver" / "shipped" / "profiles"


def start(command: list[str]) -> subprocess.Popen[str]:
    # its own process group, so that the kill reaches Playwright's driver and the browser too
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, start_new_session=True)


def kill_when(process: subprocess.Popen[str], folder: Path, images: int, extra: float) -> None:
    """``kill -9`` the process group once ``folder`` holds ``images`` images, ``extra`` s later."""
    deadline = time.monotonic() + 90
    while len(list(folder.glob("*.png"))) < images and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.01)
    time.sleep(extra)
    assert process.poll() is None, "the command ended before it was killed"
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)


def on_disk(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.glob("*.png"))


@pytest.fixture(scope="module")
def labelled_source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """400 labelled captchas named by label, and the label of each image's content hash."""
    folder = tmp_path_factory.mktemp("source")
    drawer = CaptchaDrawer(width=120, height=45, font_sizes=(32,), seed=5)
    labels = {}
    for i in range(400):
        data = drawer.png(f"{i:04d}")
        (folder / f"{i:04d}.png").write_bytes(data)
        labels[hashlib.sha256(data).hexdigest()[:24]] = f"{i:04d}"
    return folder, labels


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_9_during_import_loses_no_label(labelled_source: tuple[Path, dict[str, str]],
                                             tmp_path: Path, seed: int) -> None:
    source, labels = labelled_source
    moment = random.Random(seed)
    data = tmp_path / "d"
    command = [sys.executable, "-m", "solver", "dataset", "import", "--site", "digits",
               "--profiles-dir", str(PROFILES), "--data", str(data), str(source), "--quiet",
               "--verified"]
    kill_when(start(command), data, moment.randint(10, 300), moment.uniform(0, 0.05))
    store = DatasetStore(data, read_only=True)
    files = on_disk(data)
    assert sorted(e.file for e in store.entries()) == files  # every image listed once
    unlabelled = [e for e in store.entries() if not e.label]
    assert len(unlabelled) <= 1  # at most the image being written at the kill
    for entry in store.entries():
        if entry.label:
            assert entry.verified and entry.label == labels[entry.file[:24]]
    rerun = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    if store.recovery.journal_changes:
        assert "label changes were recovered from labels.journal (nothing was lost" in rerun.stderr
    after = DatasetStore(data, read_only=True)
    assert len(after) == 400 == len(on_disk(data)) == len(after.samples(verified_only=True))
    assert all(s.label == labels[s.path.name[:24]] for s in after.samples())


def collect_command(live_site: LiveSite, data: Path, count: int, *more: str) -> list[str]:
    return [sys.executable, "-m", "solver", "collect", "--profiles-dir", str(PROFILES),
            "--site", "digits", "--url", live_site.url_for("digits"), "-n", str(count),
            "--data", str(data), "--quiet", *more]


def served_answers(live_site: LiveSite) -> dict[bytes, str]:
    return {c.png: c.answer for c in list(live_site.site.history) if c.style == "digits"}


@pytest.mark.parametrize("seed", [4])
def test_kill_9_during_collect_then_a_rerun_reaches_n(live_site: LiveSite, tmp_path: Path,
                                                       seed: int) -> None:
    moment = random.Random(seed)
    command = collect_command(live_site, tmp_path, 30)
    kill_when(start(command), tmp_path, moment.randint(2, 20), moment.uniform(0, 0.1))
    killed = DatasetStore(tmp_path, read_only=True)
    assert sorted(e.file for e in killed.entries()) == on_disk(tmp_path)
    rerun = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    store = DatasetStore(tmp_path, read_only=True)
    images = {e.file: (tmp_path / e.file).read_bytes() for e in store.entries()}
    assert len(images) == 30 == len(on_disk(tmp_path)) and len(set(images.values())) == 30
    assert set(images.values()) <= set(served_answers(live_site))


@pytest.mark.parametrize("seed", [5, 6])
def test_kill_9_during_confirm_keeps_every_verified_label(live_site: LiveSite, tmp_path: Path,
                                                          seed: int) -> None:
    moment = random.Random(seed)
    command = collect_command(live_site, tmp_path, 40, "--label", "confirm")
    accepted_before = live_site.site.stats["accepted"]
    kill_when(start(command), tmp_path, moment.randint(3, 25), moment.uniform(0, 0.1))
    accepted = live_site.site.stats["accepted"] - accepted_before
    store = DatasetStore(tmp_path, read_only=True)
    verified = store.samples(verified_only=True)
    answers = served_answers(live_site)
    assert all(s.label == answers[s.path.read_bytes()] for s in verified)
    # the site's verdict and the write cannot be one act: at most the verdict in flight is lost
    assert accepted - 1 <= len(verified) <= accepted
    assert sorted(e.file for e in store.entries()) == on_disk(tmp_path)
    rerun = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=180)
    assert rerun.returncode == 0, rerun.stderr
    after = DatasetStore(tmp_path, read_only=True)
    assert len(after) == 40 == len(on_disk(tmp_path))
    assert {s.path.name for s in verified} <= {s.path.name for s in after.samples(verified_only=True)}
