"""`solver collect` against the local site, in a real browser: what it stores is what the server drew."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from solver.browser import choose_browser
from solver.collect import CollectError, CollectOptions, collect
from solver.dataset import DatasetStore, read_labelled_folder
from solver.demo_site import LiveSite
from solver.imaging import decode_image
from solver.profiles import SiteProfile
from solver.recognizers import Recognizer

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
STYLES = ["example", "digits", "datauri", "canvas", "iframe", "background"]


def pixels(data: bytes) -> str:
    return hashlib.sha256(decode_image(data).tobytes()).hexdigest()


def served(live_site: LiveSite, style: str) -> dict[bytes, str]:
    """Every PNG the server drew for ``style``, and its answer."""
    return {c.png: c.answer for c in list(live_site.site.history) if c.style == style}


def stored_images(folder: Path) -> dict[str, bytes]:
    return {e.file: (folder / e.file).read_bytes() for e in DatasetStore(folder).entries()}


@pytest.mark.parametrize("style", STYLES)
def test_every_variant_stores_exactly_what_the_server_drew(live_site: LiveSite, tmp_path: Path,
                                                           style: str) -> None:
    summary = collect(live_site.profile(style), CollectOptions(count=5, out=tmp_path))
    images = stored_images(tmp_path)
    assert summary.collected == 5 and len(images) == 5 and summary.failures == 0
    drawn = served(live_site, style)
    drawn_pixels = {pixels(png) for png in drawn}
    for data in images.values():
        assert pixels(data) in drawn_pixels
        if "canvas" not in summary.methods:  # bytes as served, not re-encoded
            assert data in drawn
    expected = {"canvas": "canvas", "datauri": "data-uri"}.get(style, "response")
    assert summary.methods == {expected: 5}


def test_concurrent_pages_neither_duplicate_nor_lose_images(live_site: LiveSite, tmp_path: Path) -> None:
    summary = collect(live_site.profile("example"), CollectOptions(count=24, out=tmp_path,
                                                                   concurrency=4))
    images = stored_images(tmp_path)
    assert summary.collected == 24 and summary.duplicates == 0
    assert len(images) == 24 and len(set(images.values())) == 24
    assert set(images.values()) <= set(served(live_site, "example"))
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".png") == sorted(images)
    # collecting again with the same count has nothing to do
    assert collect(live_site.profile("example"), CollectOptions(count=24, out=tmp_path)).collected == 0


def test_an_interrupted_collection_resumes_to_exactly_n(live_site: LiveSite, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "solver", "collect", "--profiles-dir", str(ROOT / "solver" / "shipped" / "profiles"),
               "--site", "digits", "--url", live_site.url_for("digits"), "-n", "30",
               "--data", str(tmp_path), "--quiet"]
    # a suite started in the background (`cmd &`) ignores SIGINT, and children inherit that:
    # give the child Ctrl-C's default meaning, as in a terminal
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("*.png"))) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert "run the same command again to continue" in err
    interrupted = DatasetStore(tmp_path)
    assert 4 <= len(interrupted) < 30
    process = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert process.returncode == 0, process.stderr
    images = stored_images(tmp_path)
    assert len(images) == 30 and len(set(images.values())) == 30
    assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted(images)
    assert set(images.values()) <= set(served(live_site, "digits"))


def test_confirm_keeps_only_labels_the_site_accepted(live_site: LiveSite, tmp_path: Path) -> None:
    profile = live_site.profile("digits", str(ROOT / "solver" / "shipped" / "profiles"))
    recognizer = Recognizer(ROOT / "solver" / "shipped" / "models" / "digits", profile)
    accepted_before = live_site.site.stats["accepted"]
    summary = collect(profile, CollectOptions(count=12, out=tmp_path, label="confirm"), recognizer)
    accepted = live_site.site.stats["accepted"] - accepted_before
    answers = served(live_site, "digits")
    store = DatasetStore(tmp_path)
    labelled = [e for e in store.entries() if e.label]
    assert summary.verified == accepted == len(labelled) >= 6  # the shipped model reads ~99.6%
    for entry in labelled:
        assert entry.verified and entry.source == "site"
        assert entry.label == answers[(tmp_path / entry.file).read_bytes()]
    for entry in store.entries():
        if not entry.label:  # refused or not submitted: the reading waits as a suggestion
            assert entry.suggestion and entry.confidence is not None
    assert {s.label for s in read_labelled_folder(tmp_path) if s.label} == {e.label for e in labelled}


def test_model_labels_are_suggestions_not_labels(live_site: LiveSite, tmp_path: Path) -> None:
    profile = live_site.profile("digits", str(ROOT / "solver" / "shipped" / "profiles"))
    recognizer = Recognizer(ROOT / "solver" / "shipped" / "models" / "digits", profile)
    summary = collect(profile, CollectOptions(count=4, out=tmp_path, label="model"), recognizer)
    store = DatasetStore(tmp_path)
    assert summary.suggested == 4 and store.stats()["labelled"] == 0
    answers = served(live_site, "digits")
    right = sum(e.suggestion == answers[(tmp_path / e.file).read_bytes()] for e in store.entries())
    assert right >= 3


def _with_selector(profile: SiteProfile, selector: str) -> SiteProfile:
    return profile.model_copy(update={"captcha": profile.captcha.model_copy(update={"selector": selector})})


def test_a_missing_selector_fails_with_its_screenshot_and_html(live_site: LiveSite, tmp_path: Path) -> None:
    profile = _with_selector(live_site.profile("example"), "img#no-such-captcha")
    started = time.monotonic()
    with pytest.raises(CollectError) as caught:
        collect(profile, CollectOptions(count=3, out=tmp_path, timeout_ms=700, retries=1, backoff_s=0.1))
    assert time.monotonic() - started < 20  # bounded: it never hangs
    error = caught.value
    message = str(error)
    assert "captcha.selector 'img#no-such-captcha' matched nothing visible" in message
    assert profile.url in message and "gave up after 2 attempts" in message
    assert error.screenshot is not None and str(error.screenshot) in message
    assert error.screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert error.screenshot.parent == tmp_path / "failures"
    assert error.html is not None and 'id="captcha"' in error.html.read_text()
    assert len(DatasetStore(tmp_path)) == 0


def test_an_http_error_is_named(live_site: LiveSite, tmp_path: Path) -> None:
    profile = live_site.profile("example").with_url(live_site.server.url + "/no-such-style/")
    with pytest.raises(CollectError, match=r"the site answered HTTP 404 .*gave up after 1 attempts"):
        collect(profile, CollectOptions(count=1, out=tmp_path, retries=0))


@pytest.fixture
def browser_server(tmp_path: Path, browser_type: Any):  # type: ignore[no-untyped-def]
    """A Playwright browser server on 127.0.0.1 (`playwright launch-server`), its ws:// endpoint."""
    options = choose_browser(browser_type.executable_path).launch_options()
    config = {"headless": True, "host": "127.0.0.1", "port": 0, "args": list(options.get("args", []))}
    if options.get("executable_path"):
        config["executablePath"] = options["executable_path"]
    (tmp_path / "server.json").write_text(json.dumps(config))
    process = subprocess.Popen(
        [sys.executable, "-m", "playwright", "launch-server", "--browser", "chromium",
         "--config", str(tmp_path / "server.json")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        assert process.stdout is not None
        endpoint = process.stdout.readline().strip()
        assert endpoint.startswith("ws://127.0.0.1:"), endpoint
        yield endpoint
    finally:  # the launcher's node process and its browser are in the new session's group
        os.killpg(process.pid, signal.SIGTERM)
        process.communicate(timeout=20)


def test_collects_through_a_remote_browser_server(live_site: LiveSite, tmp_path: Path,
                                                  browser_server: str) -> None:
    summary = collect(live_site.profile("example"),
                      CollectOptions(count=4, out=tmp_path / "data", concurrency=2, connect=browser_server))
    images = stored_images(tmp_path / "data")
    assert summary.collected == 4 and len(images) == 4
    assert set(images.values()) <= set(served(live_site, "example"))
