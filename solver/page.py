"""Finding a profile's captcha on a Playwright page and waiting until it is loaded.

Loaded means the pixels are there: an ``<img>`` decoded (``naturalWidth > 0``),
a ``<canvas>`` with something drawn on it, or an element's CSS background image
fetched. The check never fetches the image again: on most sites a second
request draws a new captcha.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from solver.errors import SiteError, SolverError, UsageError
from solver.steps import Call, Steps, run_async, run_sync

logger = logging.getLogger(__name__)

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


#: a short fingerprint of what the element shows now: changes when a refresh worked
SIGNATURE_JS = """
el => {
  if (el.tagName === 'IMG') return 'img:' + (el.currentSrc || el.src) + ':' + el.complete;
  if (el.tagName === 'CANVAS') {
    let url;
    try { url = el.toDataURL('image/png'); } catch (e) { return 'canvas:tainted'; }
    let hash = 0;
    for (let i = 0; i < url.length; i += 7) hash = (hash * 31 + url.charCodeAt(i)) | 0;
    return 'canvas:' + url.length + ':' + hash;
  }
  return 'bg:' + (getComputedStyle(el).backgroundImage || '');
}
"""

#: true once the element shows something other than ``previous`` and has loaded it
CHANGED_JS = "([el, previous]) => (" + SIGNATURE_JS + ")(el) !== previous && (" + LOADED_JS + ")(el) !== ''"


class CaptchaNotFoundError(SolverError):
    """The profile's captcha selector matched nothing, or never loaded."""


def navigation_error(error: BaseException, url: str, timeout_ms: float) -> SiteError:
    """The :class:`SiteError` for a Playwright error of going to ``url``: what went wrong, what to check.

    Chromium names the network failure (``net::ERR_CONNECTION_REFUSED``,
    ``net::ERR_NAME_NOT_RESOLVED``, ...) in the error's first line; a timeout is
    Playwright's ``TimeoutError``.

        >>> str(navigation_error(Exception("Page.goto: net::ERR_CONNECTION_REFUSED at "
        ...     "http://127.0.0.1:8765/example/"), "http://127.0.0.1:8765/example/", 10_000))[:70]
        'the site at http://127.0.0.1:8765/example/ does not answer (is it runn'
    """
    parts = urlsplit(url)
    host = parts.hostname or url
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:  # a port that is not a number: Chromium refuses the URL itself
        port = None
    where = (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
    first_line = str(error).splitlines()[0] if str(error) else error.__class__.__name__
    found = re.search(r"net::(ERR_[A-Z0-9_]+)", first_line)
    code = found.group(1) if found else ""
    site = f"the site at {url}"
    if error.__class__.__name__ == "TimeoutError" or ("Timeout" in first_line and not code):
        return SiteError(f"{site} did not finish loading within {timeout_ms / 1000:g} s (is it up "
                         "but busy? give it longer with --timeout, or check the profile's url)")
    if code == "ERR_CONNECTION_REFUSED":
        return SiteError(f"{site} does not answer (is it running? nothing accepts connections on "
                         f"{where}; start it, or point the profile's url, or --url, at where it runs)")
    if code == "ERR_NAME_NOT_RESOLVED":
        return SiteError(f"{site} cannot be found: no address for {host} (check the host name in "
                         "the profile's url, or --url, and this machine's network)")
    if code in ("ERR_CONNECTION_RESET", "ERR_CONNECTION_CLOSED", "ERR_EMPTY_RESPONSE",
                "ERR_INVALID_HTTP_RESPONSE", "ERR_SSL_PROTOCOL_ERROR"):
        return SiteError(f"{site} closed the connection without a web page (net::{code}; is a web "
                         f"server for this scheme listening on {where}? check the profile's url, "
                         "or --url)")
    if code in ("ERR_ADDRESS_UNREACHABLE", "ERR_NETWORK_CHANGED", "ERR_INTERNET_DISCONNECTED",
                "ERR_CONNECTION_TIMED_OUT", "ERR_TIMED_OUT", "ERR_NETWORK_ACCESS_DENIED",
                "ERR_PROXY_CONNECTION_FAILED"):
        return SiteError(f"{site} cannot be reached (net::{code}; check this machine's network "
                         "and proxy, and the host in the profile's url, or --url)")
    if code.startswith("ERR_CERT_"):
        return SiteError(f"{site} shows a TLS certificate the browser does not trust (net::{code}; "
                         "check that the profile's url, or --url, names the site's own host)")
    detail = first_line.split(": ", 1)[1] if first_line.startswith(("Page.", "Frame.")) else first_line
    return SiteError(f"{site} could not be opened: {detail} (check the profile's url, or --url, "
                     "and that the site is up)")


def frame_steps(page: Any, profile: SiteProfile, timeout_ms: float = 10_000) -> Steps[Any]:
    """The frame that holds the captcha: the page's own, or the profile's iframe."""
    if profile.captcha.frame is None:
        return page.main_frame
    selector = profile.captcha.frame
    try:
        handle = yield Call(page, "wait_for_selector", (selector,),
                            {"state": "attached", "timeout": timeout_ms})
    except Exception as error:  # playwright's TimeoutError and friends
        raise CaptchaNotFoundError(
            f"{page.url}: captcha.frame {selector!r} matched nothing within "
            f"{timeout_ms / 1000:.0f} s (check the selector in the profile: {error.__class__.__name__})"
        ) from None
    frame = (yield Call(handle, "content_frame")) if handle else None
    if frame is None:
        raise CaptchaNotFoundError(
            f"{page.url}: captcha.frame {selector!r} is not an <iframe> (point it at the iframe element)")
    return frame


def wait_steps(page: Any, profile: SiteProfile, timeout_ms: float = 10_000) -> Steps[tuple[Any, str]]:
    """Wait until the captcha is on the page and loaded: (element, kind)."""
    frame = yield from frame_steps(page, profile, timeout_ms)
    selector = profile.captcha.selector
    try:
        element = yield Call(frame, "wait_for_selector", (selector,),
                             {"state": "visible", "timeout": timeout_ms})
    except Exception as error:
        raise CaptchaNotFoundError(
            f"{page.url}: captcha.selector {selector!r} matched nothing visible within "
            f"{timeout_ms / 1000:.0f} s (check the selector in the profile: {error.__class__.__name__})"
        ) from None
    if element is None:  # only possible for state="hidden"/"detached"; kept for type checkers
        raise CaptchaNotFoundError(f"{page.url}: captcha.selector {selector!r} matched nothing")
    try:
        handle = yield Call(frame, "wait_for_function", (LOADED_JS,),
                            {"arg": element, "timeout": timeout_ms})
        kind = yield Call(handle, "json_value")
    except Exception as error:
        raise CaptchaNotFoundError(
            f"{page.url}: captcha {selector!r} is there but its image did not load within "
            f"{timeout_ms / 1000:.0f} s (is the image URL reachable? {error.__class__.__name__})"
        ) from None
    return element, str(kind)


def open_steps(page: Any, profile: SiteProfile, url: str | None = None, timeout_ms: float = 10_000,
               environ: Mapping[str, str] | None = None) -> Steps[tuple[Any, str]]:
    """Go to the profile's URL (or ``url``), run its pre-steps, and wait for the captcha.

    Values typed by ``fill`` steps come from ``environ`` (default ``os.environ``).
    Returns the loaded captcha (element, kind).
    """
    target = url or profile.url
    try:
        response = yield Call(page, "goto", (target,), {"timeout": timeout_ms})
    except Exception as error:  # Playwright's Error and TimeoutError: say what to check
        raise navigation_error(error, target, timeout_ms) from None
    if response is not None and response.status >= 400:
        raise SiteError(f"{target}: the site answered HTTP {response.status} "
                        "(check url in the profile, and that the site is up)")
    environ = os.environ if environ is None else environ
    for index, step in enumerate(profile.steps):
        yield from _pre_step(page, profile, index, step, timeout_ms, environ)
    return (yield from wait_steps(page, profile, timeout_ms))


def _pre_step(page: Any, profile: SiteProfile, index: int, step: Any, timeout_ms: float,
              environ: Mapping[str, str]) -> Steps[None]:
    where = f"{profile.name}: steps[{index}] ({step.describe()})"
    try:
        if step.goto is not None:
            try:
                yield Call(page, "goto", (step.goto,), {"timeout": timeout_ms})
            except Exception as error:
                raise SiteError(f"{where}: {navigation_error(error, step.goto, timeout_ms)}") from None
        elif step.click is not None:
            yield Call(page, "click", (step.click,), {"timeout": timeout_ms})
        elif step.fill is not None:
            yield Call(page, "fill", (step.fill, step.value_from(environ)), {"timeout": timeout_ms})
        elif step.wait_for is not None:
            yield Call(page, "wait_for_selector", (step.wait_for,), {"timeout": timeout_ms})
    except (UsageError, SiteError):
        raise
    except Exception as error:
        raise SiteError(f"{where} failed on {page.url}: {error.__class__.__name__}: "
                        f"{str(error).splitlines()[0] if str(error) else ''} "
                        "(check the step's selector in the profile)") from None


def signature_steps(element: Any) -> Steps[str]:
    """What the captcha element shows now, as a short string (see :data:`SIGNATURE_JS`)."""
    return str((yield Call(element, "evaluate", (SIGNATURE_JS,))))


def refresh_steps(page: Any, profile: SiteProfile, element: Any,
                  timeout_ms: float = 10_000) -> Steps[tuple[Any, str]]:
    """Show a new captcha: the profile's refresh control, else a reload.

    The refresh counts as done when the element shows something else and has
    loaded it; when the control does nothing within the timeout, the page is
    reloaded instead. Returns the loaded captcha (element, kind).
    """
    selector = profile.captcha.refresh
    if selector is not None:
        try:
            before = yield from signature_steps(element)
            frame = yield from frame_steps(page, profile, timeout_ms)
            control = frame if (yield Call(frame, "query_selector", (selector,))) else page
            yield Call(control, "click", (selector,), {"timeout": timeout_ms})
            frame = yield from frame_steps(page, profile, timeout_ms)
            yield Call(frame, "wait_for_function", (CHANGED_JS,),
                       {"arg": [element, before], "timeout": timeout_ms})
            return (yield from wait_steps(page, profile, timeout_ms))
        except CaptchaNotFoundError:
            raise
        except Exception as error:  # the control is gone or did nothing: reload instead
            logger.info("%s: captcha.refresh %r did not show a new captcha (%s); reloading",
                        page.url, selector, error.__class__.__name__)
    try:
        yield Call(page, "reload", (), {"timeout": timeout_ms})
    except Exception as error:  # e.g. the site stopped meanwhile
        raise navigation_error(error, page.url, timeout_ms) from None
    return (yield from wait_steps(page, profile, timeout_ms))


# Marks what the page shows before a submit, so the outcome can be told from what was
# there already: the result of an earlier try, or a page that did not navigate.
MARK_JS = """
([success, failure]) => {
  window.__solverSubmitted = true;
  for (const selector of [success, failure])
    if (selector) document.querySelectorAll(selector).forEach(e => e.setAttribute('data-solver-seen', ''));
}
"""

# "accepted" or "refused" once the page says so (a new page, or a changed one); null before.
OUTCOME_JS = """
([success, failure]) => {
  if (document.readyState === 'loading') return null;
  const fresh = s => !!s && [...document.querySelectorAll(s)].some(e => !e.hasAttribute('data-solver-seen'));
  if (fresh(success)) return 'accepted';
  if (fresh(failure)) return 'refused';
  if (!success && !window.__solverSubmitted && document.readyState === 'complete') return 'accepted';
  return null;
}
"""

#: what a submit led to
OUTCOMES = ("accepted", "refused", "unknown")


def send_steps(page: Any, profile: SiteProfile, text: str, timeout_ms: float = 10_000) -> Steps[None]:
    """Type ``text`` into the form and submit it (see :func:`submit_steps`)."""
    form = profile.form
    try:
        yield Call(page, "fill", (form.input, text), {"timeout": timeout_ms})
    except Exception as error:
        raise CaptchaNotFoundError(
            f"{page.url}: form.input {form.input!r} matched no text input within "
            f"{timeout_ms / 1000:.0f} s (check the selector in the profile: {error.__class__.__name__})"
        ) from None
    yield Call(page, "evaluate", (MARK_JS, [form.success, form.failure]))
    try:
        yield Call(page, "click", (form.submit,), {"timeout": timeout_ms, "no_wait_after": True})
    except Exception as error:
        raise CaptchaNotFoundError(
            f"{page.url}: form.submit {form.submit!r} could not be clicked within "
            f"{timeout_ms / 1000:.0f} s (check the selector in the profile: {error.__class__.__name__})"
        ) from None


def verdict_steps(page: Any, profile: SiteProfile, timeout_ms: float = 10_000) -> Steps[str]:
    """After :func:`send_steps`: wait for the site's verdict (see :func:`submit_steps`)."""
    form = profile.form
    if not form.success and not form.failure:
        yield Call(page, "wait_for_load_state", (), {"timeout": timeout_ms})
        return "unknown"
    try:
        handle = yield Call(page, "wait_for_function", (OUTCOME_JS,),
                            {"arg": [form.success, form.failure], "timeout": timeout_ms})
        return str((yield Call(handle, "json_value")))
    except Exception as error:  # a timeout: the page said nothing we recognise
        logger.info("%s: neither form.success %r nor form.failure %r appeared after submitting (%s)",
                    page.url, form.success, form.failure, error.__class__.__name__)
        return "unknown"


def submit_steps(page: Any, profile: SiteProfile, text: str,
                 timeout_ms: float = 10_000) -> Steps[str]:
    """Type ``text`` into the form, submit it, and wait for the site's verdict.

    Returns "accepted" when ``form.success`` shows up, "refused" when
    ``form.failure`` does (either on a new page or on the same one, as a
    script-driven form does), and "unknown" when neither appears in time.
    With only ``form.failure`` in the profile, a new page without it counts
    as accepted.
    """
    yield from send_steps(page, profile, text, timeout_ms)
    return (yield from verdict_steps(page, profile, timeout_ms))


def debug_steps(page: Any, folder: Path, stem: str) -> Steps[tuple[Path | None, Path | None]]:
    """Save a screenshot and the HTML of the page, for a person to see what went wrong."""
    folder.mkdir(parents=True, exist_ok=True)
    shot, html = folder / f"{stem}.png", folder / f"{stem}.html"
    try:
        yield Call(page, "screenshot", (), {"path": str(shot), "full_page": True, "timeout": 10_000})
    except Exception as error:  # a crashed page has no pixels; keep going with its HTML
        logger.warning("could not save a screenshot of %s: %s", page.url, error)
        shot = None  # type: ignore[assignment]
    try:
        html.write_text((yield Call(page, "content")), encoding="utf-8")
    except Exception as error:
        logger.warning("could not save the HTML of %s: %s", page.url, error)
        html = None  # type: ignore[assignment]
    return shot, html


def captcha_frame(page: Page, profile: SiteProfile, timeout_ms: float = 10_000) -> Frame:
    """The frame that holds the captcha: the page's own, or the profile's iframe."""
    return run_sync(frame_steps(page, profile, timeout_ms))  # type: ignore[no-any-return]


def wait_for_captcha(page: Page, profile: SiteProfile,
                     timeout_ms: float = 10_000) -> tuple[ElementHandle, str]:
    """Wait until the captcha is on the page and loaded.

    Returns the element and its kind ("img", "canvas" or "background").
    """
    return run_sync(wait_steps(page, profile, timeout_ms))


async def wait_for_captcha_async(page: Any, profile: SiteProfile,
                                 timeout_ms: float = 10_000) -> tuple[Any, str]:
    """:func:`wait_for_captcha` for Playwright's async API."""
    return await run_async(wait_steps(page, profile, timeout_ms))


def captcha_size(element: ElementHandle) -> tuple[int, int]:
    width, height = element.evaluate(SIZE_JS)
    return int(width), int(height)
