"""The launch helpers open the local site, through the sync and the async Playwright APIs."""

from __future__ import annotations

import asyncio
import threading

import pytest

from solver.demo_site import LiveSite

pytestmark = pytest.mark.e2e


def test_sync_launch_opens_the_site(live_site: LiveSite) -> None:
    from playwright.sync_api import sync_playwright

    from solver.browser import launch_chromium
    from solver.page import wait_for_captcha

    results: dict[str, object] = {}

    def run() -> None:  # own thread: pytest-playwright may hold this thread's Playwright
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            page = browser.new_page()
            profile = live_site.profile("digits")
            page.goto(profile.url)
            results["kind"] = wait_for_captcha(page, profile)[1]
            results["answer"] = live_site.answer(page, "digits")
            browser.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    assert results["kind"] == "img"
    assert isinstance(results["answer"], str) and len(results["answer"]) == 4


def test_async_launch_opens_the_site(live_site: LiveSite) -> None:
    from playwright.async_api import async_playwright

    from solver.browser import launch_chromium_async

    async def run() -> tuple[int, str]:
        async with async_playwright() as playwright:
            browser = await launch_chromium_async(playwright)
            page = await browser.new_page()
            await page.goto(live_site.url_for("canvas"))
            await page.wait_for_function(
                "document.getElementById('captcha').dataset.drawn === 'true'")
            width = await page.eval_on_selector("#captcha", "el => el.width")
            title = await page.title()
            await browser.close()
            return width, title

    results: list[tuple[int, str]] = []
    thread = threading.Thread(target=lambda: results.append(asyncio.run(run())))
    thread.start()
    thread.join(60)
    assert results == [(160, "Sign in: Canvas drawn by script")]
