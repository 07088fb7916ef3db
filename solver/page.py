"""Finding a profile's captcha on a Playwright page and waiting until it is loaded.

Loaded means the pixels are there: an ``<img>`` decoded (``naturalWidth > 0``),
a ``<canvas>`` with something drawn on it, or an element's CSS background image
fetched. The check never fetches the image again: on most sites a second
request draws a new captcha.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from solver.errors import SolverError

if TYPE_CHECKING:
    from playwright.sync_api import ElementHandle, Frame, Page

    from solver.profiles import SiteProfile

# Returns "img", "canvas" or "background" once loaded, "" while not yet.
LOADED_JS = """
el => {
  if (el.tagName === 'IMG') return el.complete && el.naturalWidth > 0 ? 'img' : '';
  if (el.tagName === 'CANVAS') {
    if (!el.width || !el.height) return '';
    let data;
    try { data = el.getContext('2d').getImageData(0, 0, el.width, el.height).data; }
    catch (e) { return 'canvas'; }  // a tainted canvas was drawn from another origin
    for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) return 'canvas';
    return '';
  }
  const match = /url\\(["']?(.*?)["']?\\)/.exec(getComputedStyle(el).backgroundImage || '');
  if (!match) return '';
  const url = new URL(match[1], el.ownerDocument.baseURI).href;
  if (url.startsWith('data:')) return 'background';
  const entries = el.ownerDocument.defaultView.performance.getEntriesByName(url);
  return entries.some(e => e.responseEnd > 0) ? 'background' : '';
}
"""

#: width and height of what the element shows, in image pixels where known
SIZE_JS = """
el => el.tagName === 'IMG' ? [el.naturalWidth, el.naturalHeight]
   : el.tagName === 'CANVAS' ? [el.width, el.height]
   : [el.clientWidth, el.clientHeight]
"""


class CaptchaNotFoundError(SolverError):
    """The profile's captcha selector matched nothing, or never loaded."""


def captcha_frame(page: Page, profile: SiteProfile, timeout_ms: float = 10_000) -> Frame:
    """The frame that holds the captcha: the page's own, or the profile's iframe."""
    if profile.captcha.frame is None:
        return page.main_frame
    selector = profile.captcha.frame
    try:
        handle = page.wait_for_selector(selector, state="attached", timeout=timeout_ms)
    except Exception as error:  # playwright's TimeoutError and friends
        raise CaptchaNotFoundError(
            f"{page.url}: captcha.frame {selector!r} matched nothing within "
            f"{timeout_ms / 1000:.0f} s (check the selector in the profile: {error.__class__.__name__})"
        ) from None
    frame = handle.content_frame() if handle else None
    if frame is None:
        raise CaptchaNotFoundError(
            f"{page.url}: captcha.frame {selector!r} is not an <iframe> (point it at the iframe element)")
    return frame


def wait_for_captcha(page: Page, profile: SiteProfile,
                     timeout_ms: float = 10_000) -> tuple[ElementHandle, str]:
    """Wait until the captcha is on the page and loaded.

    Returns the element and its kind ("img", "canvas" or "background").
    """
    frame = captcha_frame(page, profile, timeout_ms)
    selector = profile.captcha.selector
    try:
        element = frame.wait_for_selector(selector, state="visible", timeout=timeout_ms)
    except Exception as error:
        raise CaptchaNotFoundError(
            f"{page.url}: captcha.selector {selector!r} matched nothing visible within "
            f"{timeout_ms / 1000:.0f} s (check the selector in the profile: {error.__class__.__name__})"
        ) from None
    if element is None:  # only possible for state="hidden"/"detached"; kept for type checkers
        raise CaptchaNotFoundError(f"{page.url}: captcha.selector {selector!r} matched nothing")
    try:
        kind = frame.wait_for_function(LOADED_JS, arg=element, timeout=timeout_ms).json_value()
    except Exception as error:
        raise CaptchaNotFoundError(
            f"{page.url}: captcha {selector!r} is there but its image did not load within "
            f"{timeout_ms / 1000:.0f} s (is the image URL reachable? {error.__class__.__name__})"
        ) from None
    return element, str(kind)


def captcha_size(element: ElementHandle) -> tuple[int, int]:
    width, height = element.evaluate(SIZE_JS)
    return int(width), int(height)
