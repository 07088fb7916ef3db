"""The refresh, capture and verdict patterns of sites in the wild, on the local site.

Each pattern is a style (``solver/demo_site/styles.yaml``) with its profile. For
each: collection stores exactly the bytes the server drew, the sync and async
solvers solve it, and the labelling page labels what was collected; and no
wait falls back to a timeout (the fallback counters stay 0; nothing here times
the run).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.sync_api import Page, expect

from solver.capture import CaptureError, ResponseRecorder, grab
from solver.collect import CollectOptions, collect
from solver.dataset import DatasetStore
from solver.demo_site import LiveSite, SiteServer, load_styles
from solver.labeller import build_label_app
from solver.page import Waits, open_steps, refresh_steps
from solver.recognizers import Reading, Recognizer
from solver.solve import AsyncSolver, Solver
from solver.steps import run_sync

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PROFILES = str(ROOT / "solver" / "shipped" / "profiles")
DIGITS_MODEL = ROOT / "solver" / "shipped" / "models" / "digits"
CLASSIC = {"img", "data-uri", "canvas", "iframe", "background"}
PATTERNS = [name for name, style in load_styles().items() if style.variant not in CLASSIC]


def served(live_site: LiveSite, style: str) -> dict[bytes, str]:
    """Every image the server drew for ``style``, and its answer."""
    return {c.png: c.answer for c in list(live_site.site.history) if c.style == style}


class WrongFirst:
    """The shipped model, except that its first reading is wrong (and sure): a refusal."""

    def __init__(self, recognizer: Recognizer) -> None:
        self.recognizer, self.calls = recognizer, 0

    def read(self, data: bytes) -> Reading:
        reading = self.recognizer.read(data)
        self.calls += 1
        if self.calls == 1:
            wrong = "".join(str((int(c) + 1) % 10) if c.isdigit() else "1" for c in reading.text)
            return Reading(wrong.ljust(4, "1")[:4], 0.99, reading.milliseconds)
        return reading


def test_every_pattern_is_a_style_with_a_profile() -> None:
    assert set(PATTERNS) == {"framedoc", "pagelink", "delayed", "lazy", "once", "shadow",
                             "fetchform", "redirect", "gif"}


@pytest.mark.parametrize("style", PATTERNS)
def test_collect_stores_exactly_what_the_server_drew(live_site: LiveSite, tmp_path: Path,
                                                     style: str) -> None:
    refetched = live_site.site.stats["refetched"]
    summary = collect(live_site.profile(style, PROFILES), CollectOptions(count=4, out=tmp_path))
    stored = [(tmp_path / e.file).read_bytes() for e in DatasetStore(tmp_path).entries()]
    assert summary.collected == 4 and len(stored) == 4 and summary.failures == 0
    assert summary.fallbacks == 0, summary.waits.summary()
    assert set(stored) <= set(served(live_site, style))  # the very bytes served
    assert summary.methods == {"response": 4}
    assert live_site.site.stats["refetched"] == refetched  # no image URL was fetched twice


@pytest.mark.parametrize("style", PATTERNS)
def test_sync_solver_solves_after_a_refusal_without_fallbacks(live_site: LiveSite, page: Page,
                                                               style: str) -> None:
    profile = live_site.profile(style, PROFILES)
    solver = Solver(profile, recognizer=WrongFirst(Recognizer(DIGITS_MODEL, profile)))
    before = dict(live_site.site.stats)
    solver.open(page)
    result = solver.solve(page)
    assert result.success, result.to_json()
    assert [a.outcome for a in result.attempts][:1] == ["refused"]
    assert result.attempts[-1].outcome == "accepted"
    assert result.fallbacks == 0, [w.line() for w in result.waits]
    assert live_site.site.stats["refused"] == before["refused"] + 1
    assert live_site.site.stats["accepted"] == before["accepted"] + 1
    assert live_site.site.stats["refetched"] == before["refetched"]
    if profile.form.success_url:
        assert page.url.startswith(live_site.server.url + profile.form.success_url)
    else:
        expect(page.locator(".flash.ok")).to_have_count(1)


def test_async_solver_solves_every_pattern(live_site: LiveSite) -> None:
    from playwright.async_api import async_playwright

    from solver.browser import launch_chromium_async

    async def body() -> dict[str, Any]:
        results = {}
        async with async_playwright() as playwright:
            browser = await launch_chromium_async(playwright)
            for style in PATTERNS:
                profile = live_site.profile(style, PROFILES)
                solver = AsyncSolver(profile, DIGITS_MODEL)
                page = await browser.new_page()
                await solver.open(page)
                results[style] = await solver.solve(page)
                await page.close()
            await browser.close()
        return results

    box: dict[str, Any] = {}

    def target() -> None:  # pytest-playwright's sync loop owns the test's thread
        try:
            box["value"] = asyncio.run(body())
        except BaseException as error:  # re-raised in the test's thread
            box["error"] = error

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(300)
    if "error" in box:
        raise box["error"]
    for style, result in box["value"].items():
        assert result.success, (style, result.to_json())
        assert result.fallbacks == 0, (style, [w.line() for w in result.waits])


@pytest.mark.parametrize("style", [name for name in PATTERNS if load_styles()[name].variant
                                   in ("iframe-document", "page-link", "delayed", "shadow")])
def test_refresh_shows_a_new_captcha_without_falling_back(live_site: LiveSite, page: Page,
                                                          style: str) -> None:
    profile = live_site.profile(style, PROFILES)
    waits = Waits()
    shown = run_sync(open_steps(page, profile, waits=waits))
    seen = {live_site.challenge(page, style).answer}
    for _ in range(3):
        shown = run_sync(refresh_steps(page, profile, shown, waits=waits))
        seen.add(live_site.challenge(page, style).answer)
    assert waits.fallback_count() == 0, waits.summary()
    assert len(seen) >= 3  # a new captcha each time (4 digits may repeat, rarely)


def test_an_iframe_whose_link_loads_a_new_document_is_refreshed_without_a_reload(
        live_site: LiveSite, page: Page) -> None:
    """The issue's portal: the old code watched the old document's element for 10 s, then reloaded."""
    profile = live_site.profile("framedoc", PROFILES)
    recorder = ResponseRecorder(page)
    waits = Waits()
    shown = run_sync(open_steps(page, profile, waits=waits))
    page_loads = []
    page.on("load", lambda _: page_loads.append(1))  # the top page's loads; a reload is one
    for _ in range(5):
        previous = shown
        shown = run_sync(refresh_steps(page, profile, shown, waits=waits))
        assert shown.fingerprint != previous.fingerprint
        assert grab(page, shown.element, "auto", recorder).data == \
            live_site.challenge(page, "framedoc").png
    assert waits.fallback_count() == 0 and page_loads == []


def test_a_single_use_url_is_never_fetched_again(live_site: LiveSite, page: Page) -> None:
    profile = live_site.profile("once", PROFILES)
    recorder = ResponseRecorder(page)
    element = run_sync(open_steps(page, profile)).element
    drawn = live_site.challenge(page, "once")
    refetched = live_site.site.stats["refetched"]
    assert grab(page, element, "auto", recorder).data == drawn.png  # the bytes the page got
    assert grab(page, element, "auto").method == "canvas"  # no recorder: read back, not fetched
    assert live_site.site.stats["refetched"] == refetched
    with pytest.raises(CaptureError, match=r"could not grab the captcha .* with data-uri or src or fetch"):
        grab(page, element, "src")  # a fetch: the site refuses the URL a second time (403)
    assert live_site.site.stats["refetched"] == refetched + 1
    assert live_site.challenge(page, "once") is drawn


@pytest.mark.parametrize("style", ["framedoc", "once", "shadow", "gif"])
def test_collected_images_are_labelled_on_the_labelling_page(live_site: LiveSite, page: Page,
                                                             tmp_path: Path, style: str) -> None:
    profile = live_site.profile(style, PROFILES)
    collect(profile, CollectOptions(count=2, out=tmp_path))
    answers = served(live_site, style)
    fmt = profile.format
    store = DatasetStore(tmp_path, fmt.charset, fmt.length, fmt.case_sensitive)
    with SiteServer(build_label_app(store, profile, None), port=0) as server:
        page.goto(server.url + "/")
        for number in range(2):
            expect(page.locator("#captcha[data-file]")).to_have_count(1)
            shown = page.locator("#captcha")
            file = shown.get_attribute("data-file")
            page.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=shown.element_handle())
            page.keyboard.type(answers[(tmp_path / file).read_bytes()])
            page.keyboard.press("Enter")
            if number == 0:
                expect(page.locator("#captcha")).not_to_have_attribute("data-file", file)
        expect(page.locator("#done:not([hidden])")).to_have_count(1)
    entries = DatasetStore(tmp_path).entries()
    assert len(entries) == 2
    for entry in entries:
        assert entry.label == answers[(tmp_path / entry.file).read_bytes()]
        assert entry.source == "hand"
    if style == "gif":
        assert {e.file.rsplit(".", 1)[1] for e in entries} == {"gif"}


def test_the_cli_says_what_it_waited_for_and_counts_the_fallbacks(live_site: LiveSite,
                                                                  tmp_path: Path) -> None:
    """A refresh control that does nothing, and a verdict that never shows: each wait that ran
    past a second is told at the default verbosity, and the summaries count the fallbacks."""
    data = yaml.safe_load((Path(PROFILES) / "digits.yaml").read_text())
    data["captcha"]["refresh"] = "h1"  # clicking the heading draws nothing
    data["form"]["success"], data["form"]["failure"] = ".no-such-message", ".nor-this"
    data["model"]["min_confidence"] = 0.0  # an unsure reading is submitted too: every try waits
    (tmp_path / "digits.yaml").write_text(yaml.safe_dump(data))
    solver = [sys.executable, "-m", "solver"]
    site = ["--profiles-dir", str(tmp_path), "--site", "digits", "--url", live_site.url_for("digits"),
            "--timeout", "1.5"]
    run = subprocess.run([*solver, "collect", *site, "-n", "2", "--data", str(tmp_path / "data"),
                          "--quiet"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "for a new captcha after clicking captcha.refresh 'h1' on " in run.stderr
    assert "; then reloaded the page" in run.stderr
    assert "fallbacks: 1 refreshes fell back to a reload after 1." in run.stdout
    # three tries: one reading of the wrong length is not submitted, and must not make this pass
    # or fail by chance
    run = subprocess.run([*solver, "solve", *site, "--attempts", "3", "--models-dir", str(ROOT / "solver" / "shipped" / "models")],
                         capture_output=True, text=True, timeout=120)
    assert "for the site's verdict (form.success '.no-such-message' or form.failure '.nor-this')" \
        in run.stderr
    assert "; then counted the answer as unknown" in run.stderr
    submitted = run.stderr.count("; then counted the answer as unknown")
    assert 1 <= submitted <= 3, run.stderr
    assert f"fallbacks {submitted}, other waits over 1 s 0" in run.stdout
