"""The local captcha site in a real browser, for every style and capture variant."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Frame, Page, expect

from solver.demo_site import LiveSite, load_styles
from solver.page import captcha_frame, captcha_size, wait_for_captcha
from solver.profiles import SiteProfile

pytestmark = pytest.mark.e2e

STYLES = list(load_styles())
# the form tests below submit by navigation and look for the site's success message;
# the fetch and redirect forms are tested in test_patterns.py
FORM_STYLES = [name for name, style in load_styles().items() if style.variant != "fetch-form"]
SAYS_OK = [name for name in FORM_STYLES if load_styles()[name].variant != "redirect"]
KIND_OF_VARIANT = {"img": "img", "data-uri": "img", "iframe": "img", "canvas": "canvas",
                   "background": "background"}


def open_style(page: Page, live_site: LiveSite, style: str) -> tuple[SiteProfile, Frame]:
    profile = live_site.profile(style)
    page.goto(profile.url)
    wait_for_captcha(page, profile)
    return profile, captcha_frame(page, profile)


def submit(page: Page, profile: SiteProfile, text: str) -> None:
    page.fill(profile.form.input, text)
    with page.expect_navigation():
        page.click(profile.form.submit)


def shown_pixels(frame: Frame, profile: SiteProfile) -> bytes:
    return frame.locator(profile.captcha.selector).screenshot()


@pytest.mark.parametrize("style", STYLES)
def test_captcha_is_present_and_loaded(page: Page, live_site: LiveSite, style: str) -> None:
    profile = live_site.profile(style)
    page.goto(profile.url)
    element, kind = wait_for_captcha(page, profile)
    spec = load_styles()[style]
    assert kind == KIND_OF_VARIANT.get(spec.variant, "img")
    assert captcha_size(element) == (spec.width, spec.height)
    if kind == "img":
        assert element.evaluate("el => el.naturalWidth") == spec.width
    if kind == "canvas":  # drawn: some pixel is not transparent
        assert element.evaluate(
            "el => el.getContext('2d').getImageData(0, 0, el.width, el.height).data"
            ".some((v, i) => i % 4 === 3 && v > 0)")
    assert live_site.challenge(page, style) is not None
    expect(page.locator(profile.form.input)).to_be_visible()
    expect(page.locator(profile.form.submit)).to_be_enabled()


@pytest.mark.parametrize("style", SAYS_OK)
def test_wrong_answer_shows_failure_and_a_new_captcha(page: Page, live_site: LiveSite,
                                                      style: str) -> None:
    profile, _ = open_style(page, live_site, style)
    before = live_site.challenge(page, style)
    submit(page, profile, "#" * profile.format.min_length)
    expect(page.locator(profile.form.failure)).to_contain_text("Wrong captcha")
    expect(page.locator(profile.form.success)).to_have_count(0)
    wait_for_captcha(page, profile)
    after = live_site.challenge(page, style)
    assert after is not None and after is not before


@pytest.mark.parametrize("style", SAYS_OK)
def test_right_answer_shows_success(page: Page, live_site: LiveSite, style: str) -> None:
    profile, _ = open_style(page, live_site, style)
    page.fill("input[name=username]", "ada")
    submit(page, profile, live_site.answer(page, style))
    expect(page.locator(profile.form.success)).to_contain_text("Signed in as ada")
    expect(page.locator(profile.form.failure)).to_have_count(0)


@pytest.mark.parametrize("style", FORM_STYLES)
def test_refresh_changes_the_image(page: Page, live_site: LiveSite, style: str) -> None:
    profile, frame = open_style(page, live_site, style)
    before_answer = live_site.challenge(page, style)
    before_pixels = shown_pixels(frame, profile)
    assert profile.captcha.refresh is not None
    frame.click(profile.captcha.refresh)
    deadline = time.monotonic() + 10
    while live_site.challenge(page, style) is before_answer:  # the site drew a new captcha...
        assert time.monotonic() < deadline, "refresh did not ask the site for a new captcha"
        page.wait_for_timeout(20)
    wait_for_captcha(page, profile)  # ...the page loaded it...
    while shown_pixels(frame, profile) == before_pixels:  # ...and shows it
        assert time.monotonic() < deadline, "the image did not change after refresh"
        page.wait_for_timeout(20)
    # the old answer is void: only the captcha now shown counts
    submit(page, profile, before_answer.answer)
    if before_answer.answer.casefold() != (live_site.answer(page, style) or "").casefold():
        expect(page.locator(profile.form.failure)).to_be_visible()


@pytest.mark.parametrize("style", SAYS_OK)
def test_an_answer_cannot_be_reused(page: Page, live_site: LiveSite, style: str) -> None:
    profile, _ = open_style(page, live_site, style)
    answer = live_site.answer(page, style)
    submit(page, profile, answer)
    expect(page.locator(profile.form.success)).to_be_visible()
    # post the same answer again in the same session, as a replaying client would
    replay = page.request.post(profile.url + "login", form={"captcha": answer})
    assert replay.ok
    body = replay.text()
    assert 'class="flash ok"' not in body and 'class="flash error"' in body
