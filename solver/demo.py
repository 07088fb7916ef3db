"""`solver demo`: the README's main job.

Starts the local captcha site, opens it in a real browser with a profile,
checks that a wrong answer is refused, then solves ``solves`` captchas with the
shipped model (``models/NAME``, else the package's own) and reports the success rate and the time of
each stage.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from solver import shipped
from solver.artifacts import find_model
from solver.demo_site import CaptchaSite, LiveSite, SiteServer
from solver.demo_site.styles import get_style
from solver.profiles import ProfileRegistry, SiteProfile, profile_from_data

if TYPE_CHECKING:
    from playwright.sync_api import Page

logger = logging.getLogger(__name__)


_KINDS = {"img": "an <img>", "canvas": "a <canvas>", "background": "a CSS background image"}


@dataclass
class DemoReport:
    """What the demo did, stage by stage."""

    url: str = ""
    browser: str = ""
    captcha_kind: str = ""
    captcha_size: tuple[int, int] = (0, 0)
    wrong_answer_refused: bool = False
    new_captcha_after_try: bool = False
    model_dir: Path | None = None
    model_found: bool = False
    timings_ms: dict[str, float] = field(default_factory=dict)
    solves: int = 0
    solved: int = 0
    first_try: int = 0
    stage_ms: dict[str, list[float]] = field(default_factory=dict)

    def lines(self) -> list[str]:
        width, height = self.captcha_size
        out = [
            f"Local captcha site: {self.url}",
            f"Browser: {self.browser}",
            f"Captcha: {_KINDS.get(self.captcha_kind, self.captcha_kind)}, {width}x{height} pixels, loaded",
            "Wrong answer: " + ("refused by the site, and a new captcha shown"
                                if self.wrong_answer_refused and self.new_captcha_after_try
                                else "NOT handled as expected"),
            f"Model: {shipped.describe(self.model_dir or '')} " + ("found" if self.model_found else
                                           "not trained yet (solving needs one: `solver train --site example`)"),
            "Timings: " + ", ".join(f"{stage} {ms:.0f} ms" for stage, ms in self.timings_ms.items()),
        ]
        if self.solves:
            out.append(f"Solved: {self.solved} of {self.solves} ({100 * self.solved / self.solves:.1f}%), "
                       f"{self.first_try} on the first attempt")
            out.append("Per solve, median: " + ", ".join(
                f"{stage} {statistics.median(values):.1f} ms" for stage, values in self.stage_ms.items()))
        return out

    @property
    def ok(self) -> bool:
        seen = self.captcha_size[0] > 0 and self.wrong_answer_refused and self.new_captcha_after_try
        return seen and (self.solved > 0 or not self.solves)


def demo_profile(style: str, profiles_dir: str | None) -> SiteProfile:
    """The style's profile from the profiles folder, else the one the style implies."""
    registry = ProfileRegistry(profiles_dir)
    if style in registry.names():
        return registry.load(style)
    logger.info("no %s profile in %s; using the one built into the demo site",
                style, registry.directory)
    return profile_from_data(get_style(style).profile_data())


def run_demo(style: str = "example", port: int = 0, headed: bool = False,
             profiles_dir: str | None = None, models_dir: str | None = None,
             seed: int | None = None, solves: int = 20,
             progress: Callable[[str], None] | None = None) -> DemoReport:
    from playwright.sync_api import sync_playwright

    from solver.browser import choose_browser, launch_chromium
    from solver.page import captcha_size, wait_for_captcha

    report = DemoReport()
    profile = demo_profile(style, profiles_dir)
    site = CaptchaSite(seed=seed)
    started = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal started
        now = time.perf_counter()
        report.timings_ms[stage] = (now - started) * 1000
        started = now

    with SiteServer(site.app, port=port) as server:
        live = LiveSite(site, server)
        profile = profile.with_url(server.url_for(style))
        report.url = profile.url
        lap("site start")
        with sync_playwright() as playwright:
            report.browser = choose_browser(playwright.chromium.executable_path).describe()
            browser = launch_chromium(playwright, headless=not headed)
            page = browser.new_page()
            lap("browser start")
            page.goto(profile.url)
            element, report.captcha_kind = wait_for_captcha(page, profile)
            report.captcha_size = captcha_size(element)
            lap("page and captcha")
            first = live.challenge(page, style)
            page.fill(profile.form.input, "?" * profile.format.min_length)
            with page.expect_navigation():
                page.click(profile.form.submit)
            if profile.form.failure:
                report.wrong_answer_refused = page.locator(profile.form.failure).count() > 0
            wait_for_captcha(page, profile)
            second = live.challenge(page, style)
            report.new_captcha_after_try = second is not None and second is not first
            lap("wrong answer")
            report.model_dir = find_model(profile.name, models_dir)  # the user's, else the shipped one
            report.model_found = (report.model_dir / "metadata.json").is_file()
            if report.model_found and solves > 0:
                _solve_many(report, profile, page, solves, progress)
                lap(f"{solves} solves")
            browser.close()
    return report


def _solve_many(report: DemoReport, profile: SiteProfile, page: Page, solves: int,
                progress: Callable[[str], None] | None) -> None:
    from solver.solve import Solver

    assert report.model_dir is not None
    solver = Solver(profile, report.model_dir)
    for number in range(1, solves + 1):
        result = solver.solve(page)
        report.solves += 1
        report.solved += result.success
        report.first_try += result.success and len(result.attempts) == 1
        for stage, milliseconds in result.attempts[-1].milliseconds.items():
            report.stage_ms.setdefault(stage, []).append(milliseconds)
        if progress:
            progress(f"solve {number}/{solves}: {result.text!r} "
                     + ("accepted" if result.success else "NOT solved")
                     + f" after {len(result.attempts)} attempt(s)")
        if not result.success:  # start again from a fresh page
            solver.open(page)
