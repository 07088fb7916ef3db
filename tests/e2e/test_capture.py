"""Grabbing captchas from every capture variant: the pixels must be the ones the server drew."""

from __future__ import annotations

import numpy as np
import pytest
from playwright.sync_api import Page

from solver.capture import CaptureError, ResponseRecorder, grab
from solver.demo_site import LiveSite, load_styles
from solver.imaging import decode_image
from solver.page import wait_for_captcha

pytestmark = pytest.mark.e2e

STYLES = list(load_styles())
FAST_METHOD = {"img": "response", "data-uri": "data-uri", "canvas": "canvas",
               "iframe": "response", "background": "response"}


def load(page: Page, live_site: LiveSite, style: str):  # type: ignore[no-untyped-def]
    recorder = ResponseRecorder(page)
    profile = live_site.profile(style)
    page.goto(profile.url)
    element, _ = wait_for_captcha(page, profile)
    if load_styles()[style].variant == "canvas":  # drawn after its fetch resolves
        page.wait_for_function("document.getElementById('captcha').dataset.drawn === 'true'")
    return recorder, element


@pytest.mark.parametrize("style", STYLES)
def test_auto_capture_is_exactly_what_the_server_drew(page: Page, live_site: LiveSite,
                                                      style: str) -> None:
    recorder, element = load(page, live_site, style)
    shot = grab(page, element, "auto", recorder)
    served = live_site.challenge(page, style).png
    assert shot.method == FAST_METHOD.get(load_styles()[style].variant, "response")
    assert np.array_equal(decode_image(shot.data), decode_image(served))
    if shot.method in ("response", "data-uri"):
        assert shot.data == served  # the very bytes
    assert shot.milliseconds < 2000


@pytest.mark.parametrize("style", ["example", "iframe", "canvas", "background"])
def test_screenshot_fallback_shows_the_same_pixels(page: Page, live_site: LiveSite,
                                                   style: str) -> None:
    _, element = load(page, live_site, style)
    shot = grab(page, element, "screenshot")
    served = decode_image(live_site.challenge(page, style).png)
    assert shot.method == "screenshot"
    assert np.array_equal(decode_image(shot.data), served)


def test_img_through_canvas_without_a_recorder(page: Page, live_site: LiveSite) -> None:
    _, element = load(page, live_site, "example")
    before = live_site.challenge(page, "example")
    shot = grab(page, element, "auto")  # no recorder: read back through a canvas
    assert shot.method == "canvas"
    assert np.array_equal(decode_image(shot.data), decode_image(before.png))
    assert live_site.challenge(page, "example") is before  # nothing was requested again


def test_fetching_src_again_draws_a_new_captcha(page: Page, live_site: LiveSite) -> None:
    """Why auto never fetches: the site answers a second request with a new captcha."""
    _, element = load(page, live_site, "example")
    before = live_site.challenge(page, "example")
    shot = grab(page, element, "src")  # no recorder: falls back to a fetch
    assert shot.method == "fetch"
    after = live_site.challenge(page, "example")
    assert after is not before and shot.data == after.png != before.png


def test_impossible_mode_is_explained(page: Page, live_site: LiveSite) -> None:
    _, element = load(page, live_site, "canvas")
    with pytest.raises(CaptureError, match=r"could not grab the captcha \(canvas, no URL\) with "
                                           r"data-uri or src or fetch"):
        grab(page, element, "src")
    with pytest.raises(CaptureError, match="capture mode 'pixels' is not one of"):
        grab(page, element, "pixels")
