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
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args
from urllib.parse import urlsplit

from solver.errors import SiteError, SolverError, UsageError
from solver.steps import Call, Sleep, Steps, run_async, run_sync

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


#: a short fingerprint of what the element shows now, in its own document: it changes when a
#: new captcha is shown, whichever way the site shows it. A new document (an iframe's, or a
#: reloaded page's) has a new ``performance.timeOrigin``, so the same image URL loaded by a new
#: document counts as new; a canvas counts by its pixels. Long data: URIs are hashed.
FINGERPRINT_JS = """
el => {
  const doc = el.ownerDocument, view = doc.defaultView;
  const hash = text => {
    let h = 0;
    for (let i = 0; i < text.length; i++) h = (h * 31 + text.charCodeAt(i)) | 0;
    return text.length + '#' + h;
  };
  const short = url => url.length > 200 ? hash(url) : url;
  const origin = view ? view.performance.timeOrigin : 0;
  if (el.tagName === 'IMG') return 'img|' + origin + '|' + short(el.currentSrc || el.src);
  if (el.tagName === 'CANVAS') {
    let data;
    try { data = el.getContext('2d').getImageData(0, 0, el.width, el.height).data; }
    catch (e) { return 'canvas|' + origin + '|tainted'; }
    let h = 0;
    for (let i = 0; i < data.length; i++) h = (h * 31 + data[i]) | 0;
    return 'canvas|' + origin + '|' + el.width + 'x' + el.height + '|' + h;
  }
  return 'bg|' + origin + '|' + short(getComputedStyle(el).backgroundImage || '');
}
"""

#: ``{kind, print}`` of a loaded element, or "" while it has not loaded
SHOWS_JS = """
el => {
  const kind = (""" + LOADED_JS + """)(el);
  return kind ? {kind, print: (""" + FINGERPRINT_JS + """)(el)} : '';
}
"""

#: Run in the frame's current document, by selector (no element handle, so that
#: Playwright runs it again in a new document after a navigation): the first visible
#: element the CSS ``selector`` matches, in the document or any open shadow root, once it
#: shows a loaded captcha whose fingerprint is not ``previous``; "not-css" for a selector
#: that is not plain CSS (Playwright syntax), which is waited for by handle instead. A lazy
#: image that has not loaded is scrolled into view, since a browser fetches it only near
#: the viewport.
FIND_JS = """
([selector, previous]) => {
  const visible = e => { const r = e.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && getComputedStyle(e).visibility !== 'hidden'; };
  const find = root => {
    for (const e of root.querySelectorAll(selector)) if (visible(e)) return e;
    for (const host of root.querySelectorAll('*'))
      if (host.shadowRoot) { const e = find(host.shadowRoot); if (e) return e; }
    return null;
  };
  let el;
  try { el = find(document); } catch (e) { return 'not-css'; }
  if (!el) return null;
  if (el.tagName === 'IMG' && !el.complete && el.loading === 'lazy')
    el.scrollIntoView({block: 'center'});
  const shows = (""" + SHOWS_JS + """)(el);
  return shows && shows.print !== previous ? el : null;
}
"""

#: the same for one element (a selector in Playwright's syntax): ``{gone: true}`` once the
#: element left its document (the site replaced it)
STATE_JS = """
([el, previous]) => {
  if (!el.isConnected) return {gone: true};
  if (el.tagName === 'IMG' && !el.complete && el.loading === 'lazy')
    el.scrollIntoView({block: 'center'});
  const shows = (""" + SHOWS_JS + """)(el);
  return shows && shows.print !== previous ? shows : null;
}
"""

#: a wait by element handle is cut into slices this long: a handle's wait does not follow
#: its frame to a new document, so it is started again on the frame's current one
HANDLE_SLICE_MS = 250

#: a wait that runs at least this long is reported (logged at WARNING, which the CLI shows)
SLOW_WAIT_S = 1.0


@dataclass(frozen=True)
class Shown:
    """A loaded captcha on the page: its element, kind ("img", "canvas" or "background"),
    and the fingerprint that tells it from the captchas shown before it."""

    element: Any
    kind: str
    fingerprint: str


@dataclass(frozen=True)
class SlowWait:
    """A wait that ran past :data:`SLOW_WAIT_S`, or ended in a fallback."""

    what: str  # what it waited for, and where
    seconds: float
    then: str  # what was done next
    fallback: str = ""  # the kind of fallback ("refresh fell back to a reload"), or "" for none

    def line(self) -> str:
        return f"waited {self.seconds:.1f} s for {self.what}; then {self.then}"


class Waits:
    """The slow waits and fallbacks of one job (a collection, a solve).

    Each is logged at WARNING as it happens (``solver``'s CLI shows WARNING by
    default) and kept, so that the job's summary can count them::

        waits = Waits()
        shown = run_sync(refresh_steps(page, profile, shown, waits=waits))
        waits.fallback_count()   # 0 when the refresh control worked
    """

    def __init__(self, slow_s: float = SLOW_WAIT_S) -> None:
        self.slow_s = slow_s
        self.notes: list[SlowWait] = []

    def note(self, what: str, seconds: float, then: str, fallback: str = "") -> None:
        """Report a wait of ``seconds``; kept when slow or a fallback."""
        if seconds < self.slow_s and not fallback:
            return
        wait = SlowWait(what, seconds, then, fallback)
        self.notes.append(wait)
        logger.warning("%s", wait.line())

    def fallback_count(self) -> int:
        return sum(1 for note in self.notes if note.fallback)

    def fallbacks(self) -> dict[str, list[float]]:
        """Seconds waited before each fallback, by kind."""
        kinds: dict[str, list[float]] = {}
        for note in self.notes:
            if note.fallback:
                kinds.setdefault(note.fallback, []).append(note.seconds)
        return kinds

    def summary(self) -> str:
        """One line for a job's summary: fallbacks by kind, and the other slow waits."""
        parts = [f"{len(seconds)} {kind} after {sum(seconds) / len(seconds):.1f} s"
                 + (" on average" if len(seconds) > 1 else "")
                 for kind, seconds in self.fallbacks().items()]
        slow = sum(1 for note in self.notes if not note.fallback)
        fallbacks = "; ".join(parts) if parts else "none"
        return f"fallbacks: {fallbacks}; other waits over {self.slow_s:g} s: {slow}"


def _note(waits: Waits | None, what: str, seconds: float, then: str, fallback: str = "") -> None:
    (waits if waits is not None else Waits()).note(what, seconds, then, fallback)


#: kinds of fallback, as the summaries count them
REFRESH_FELL_BACK = "refreshes fell back to a reload"
NO_NEW_CAPTCHA = "tries were followed by no new captcha (refreshed instead)"
NO_VERDICT = "verdicts were not seen (counted as unknown)"


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


class CaptchaTimeoutError(CaptchaNotFoundError):
    """No (new) captcha was shown within the timeout; ``waited`` seconds were spent."""

    def __init__(self, message: str, waited: float) -> None:
        super().__init__(message)
        self.waited = waited


def _is_timeout(error: BaseException) -> bool:
    return error.__class__.__name__ == "TimeoutError"


def captcha_steps(page: Any, profile: SiteProfile, timeout_ms: float = 10_000,
                  previous: str | None = None, waits: Waits | None = None,
                  what: str = "the captcha to load") -> Steps[Shown]:
    """Wait until the page shows a loaded captcha whose fingerprint is not ``previous``.

    Whichever document, frame or element holds it: the wait runs in the frame's
    current document and finds the element by selector on every check (a new
    document in the captcha's iframe, a reloaded page and an element the site
    replaced are all followed). It is the browser's own wait (``wait_for_function``,
    checked on every animation frame), never a sleep. Raises
    :class:`CaptchaTimeoutError` when nothing new shows within the timeout.
    """
    selector = profile.captcha.selector
    started = time.perf_counter()
    deadline = started + timeout_ms / 1000
    by_handle = False
    while True:
        left_ms = max(1.0, (deadline - time.perf_counter()) * 1000)
        try:
            frame = yield from frame_steps(page, profile, left_ms)
            if not by_handle:
                handle = yield Call(frame, "wait_for_function", (FIND_JS,),
                                    {"arg": [selector, previous], "timeout": left_ms})
                element = yield Call(handle, "as_element")
                if element is None:  # "not-css": Playwright's selector syntax
                    by_handle = True
                    continue
                state = yield Call(element, "evaluate", (SHOWS_JS,))
            else:
                slice_ms = min(left_ms, HANDLE_SLICE_MS)
                element = yield Call(frame, "wait_for_selector", (selector,),
                                     {"state": "visible", "timeout": left_ms})
                handle = yield Call(frame, "wait_for_function", (STATE_JS,),
                                    {"arg": [element, previous], "timeout": slice_ms})
                state = yield Call(handle, "json_value")
        except CaptchaNotFoundError as error:  # the iframe is not there
            raise CaptchaTimeoutError(str(error), time.perf_counter() - started) from None
        except Exception as error:  # Playwright's errors
            if time.perf_counter() >= deadline - 0.001:
                stage = yield from _stage_steps(page, profile, previous)
                raise CaptchaTimeoutError(_timeout_message(page, profile, stage, timeout_ms, error),
                                          time.perf_counter() - started) from None
            if not (by_handle and _is_timeout(error)):  # a slice that ran out is no news
                if (yield Call(page, "is_closed")):
                    raise
                # the document went away under the wait (a navigation, a new iframe document)
                logger.debug("%s: captcha wait restarts: %s", page.url, str(error).splitlines()[0])
                yield Sleep(0.005)
            continue
        if state and not state.get("gone"):
            seconds = time.perf_counter() - started
            _note(waits, f"{what} on {page.url}", seconds, "went on with it")
            return Shown(element, str(state["kind"]), str(state["print"]))


def _stage_steps(page: Any, profile: SiteProfile, previous: str | None) -> Steps[str]:
    """After a wait ran out: how far the captcha got ("selector", "load" or "change")."""
    try:
        frame = yield from frame_steps(page, profile, 1000)
        element = yield Call(frame, "query_selector", (profile.captcha.selector,))
        if element is None:
            return "selector"
        shows = yield Call(element, "evaluate", (SHOWS_JS,))
    except Exception:  # noqa: BLE001 - only the message depends on it
        return "selector"
    return "change" if shows else "load"


def _timeout_message(page: Any, profile: SiteProfile, stage: str, timeout_ms: float,
                     error: BaseException) -> str:
    selector, seconds = profile.captcha.selector, f"{timeout_ms / 1000:.0f} s"
    if stage == "selector":
        return (f"{page.url}: captcha.selector {selector!r} matched nothing visible within {seconds} "
                f"(check the selector in the profile: {error.__class__.__name__})")
    if stage == "load":
        return (f"{page.url}: captcha {selector!r} is there but its image did not load within "
                f"{seconds} (is the image URL reachable? {error.__class__.__name__})")
    return (f"{page.url}: captcha {selector!r} still showed the same captcha after {seconds} "
            "(check captcha.refresh in the profile, or that the site draws a new one)")


def wait_steps(page: Any, profile: SiteProfile, timeout_ms: float = 10_000) -> Steps[tuple[Any, str]]:
    """Wait until the captcha is on the page and loaded: (element, kind)."""
    shown = yield from captcha_steps(page, profile, timeout_ms)
    return shown.element, shown.kind


def open_steps(page: Any, profile: SiteProfile, url: str | None = None, timeout_ms: float = 10_000,
               environ: Mapping[str, str] | None = None,
               waits: Waits | None = None) -> Steps[Shown]:
    """Go to the profile's URL (or ``url``), run its pre-steps, and wait for the captcha.

    Values typed by ``fill`` steps come from ``environ`` (default ``os.environ``).
    Returns the loaded captcha.
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
    return (yield from captcha_steps(page, profile, timeout_ms, waits=waits))


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


def refresh_steps(page: Any, profile: SiteProfile, previous: Shown | str | None,
                  timeout_ms: float = 10_000, waits: Waits | None = None) -> Steps[Shown]:
    """Show a new captcha: the profile's refresh control, else a reload.

    The refresh counts as done when the page shows a loaded captcha other than
    ``previous`` (a :class:`Shown`, or its fingerprint), whichever document,
    frame or element now holds it: a script that swaps the image, a link that
    loads a new document into the iframe or reloads the whole page, an element
    the site replaces. When the control is missing or shows nothing new within
    the timeout, the page is reloaded instead; ``waits`` is told (and counts
    the fallback).
    """
    before = previous.fingerprint if isinstance(previous, Shown) else previous
    selector = profile.captcha.refresh
    if selector is not None:
        started = time.perf_counter()
        what = f"a new captcha after clicking captcha.refresh {selector!r} on {page.url}"
        try:
            frame = yield from frame_steps(page, profile, timeout_ms)
            control = frame if (yield Call(frame, "query_selector", (selector,))) else page
            # no_wait_after: a link that navigates is waited for below, like any other refresh
            yield Call(control, "click", (selector,), {"timeout": timeout_ms})
            return (yield from captcha_steps(page, profile, timeout_ms, before, waits,
                                             f"a new captcha after clicking captcha.refresh {selector!r}"))
        except Exception as error:  # the control is gone or did nothing: reload instead
            reason = str(error).splitlines()[0] if str(error) else error.__class__.__name__
            _note(waits, f"{what} ({reason})", time.perf_counter() - started,
                  "reloaded the page", REFRESH_FELL_BACK)
    try:
        yield Call(page, "reload", (), {"timeout": timeout_ms})
    except Exception as error:  # e.g. the site stopped meanwhile
        raise navigation_error(error, page.url, timeout_ms) from None
    return (yield from captcha_steps(page, profile, timeout_ms, before, waits,
                                     "the captcha after reloading the page"))


def next_captcha_steps(page: Any, profile: SiteProfile, tried: str | None,
                       timeout_ms: float = 10_000, waits: Waits | None = None) -> Steps[Shown]:
    """After a try: the captcha the site shows next, one other than ``tried`` (a fingerprint).

    A form that navigates shows it on the new page; a form sent by script shows
    it when the script swaps the image. When none comes within the timeout, the
    captcha is refreshed (:func:`refresh_steps`) and ``waits`` counts it.
    """
    started = time.perf_counter()
    try:
        return (yield from captcha_steps(page, profile, timeout_ms, tried, waits,
                                         "the next captcha after the site's verdict"))
    except CaptchaTimeoutError as error:
        _note(waits, f"the next captcha after the site's verdict on {page.url} ({error})",
              time.perf_counter() - started,
              "asked for a new one" + (" with captcha.refresh" if profile.captcha.refresh else
                                       " by reloading the page"), NO_NEW_CAPTCHA)
    return (yield from refresh_steps(page, profile, tried, timeout_ms, waits))


# Marks what the page shows before a submit, so the outcome can be told from what was
# there already: the result of an earlier try, or a page that did not navigate. A message
# counts as new when it is visible and was not, or shows other text than before (a site
# that reuses one message element for every verdict).
SEEN_JS = "e => (e.offsetWidth || e.offsetHeight || e.getClientRects().length) ? e.textContent : ''"
MARK_JS = """
([success, failure]) => {
  window.__solverSubmitted = true;
  const seen = """ + SEEN_JS + """;
  for (const selector of [success, failure])
    if (selector) document.querySelectorAll(selector).forEach(e => e.setAttribute('data-solver-seen', seen(e)));
}
"""

# "accepted" or "refused" once the page says so (a new page, a changed one, or the
# success URL); null before.
OUTCOME_JS = """
([success, failure, successUrl, wholeUrl]) => {
  if (document.readyState === 'loading') return null;
  if (successUrl && new RegExp(successUrl).test(wholeUrl ? location.href
                                                          : location.pathname + location.search))
    return 'accepted';
  const seen = """ + SEEN_JS + """;
  const fresh = s => !!s && [...document.querySelectorAll(s)].some(
    e => seen(e) !== '' && seen(e) !== e.getAttribute('data-solver-seen'));
  if (fresh(success)) return 'accepted';
  if (fresh(failure)) return 'refused';
  if (!success && !successUrl && !window.__solverSubmitted && document.readyState === 'complete')
    return 'accepted';
  return null;
}
"""

#: what the site said to a submitted answer ("unknown": neither sign the profile names showed)
Verdict = Literal["accepted", "refused", "unknown"]
#: the verdicts, in that order
OUTCOMES: tuple[Verdict, ...] = get_args(Verdict)
#: how one attempt of a solve ended: a verdict, or a reading not submitted (it broke the
#: profile, or was unsure), as ``solver solve`` prints it
Outcome = Literal[Verdict, "not submitted"]
NOT_SUBMITTED: Outcome = "not submitted"
#: how a captcha of ``solver learn`` ended, as its log (captchas.jsonl) spells it: a log
#: written before keeps being read, so the hyphen stays
LoggedOutcome = Literal[Verdict, "not-submitted"]
LOGGED_NOT_SUBMITTED: LoggedOutcome = "not-submitted"


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


def verdict_steps(page: Any, profile: SiteProfile, timeout_ms: float = 10_000,
                  waits: Waits | None = None) -> Steps[Verdict]:
    """After :func:`send_steps`: wait for the site's verdict (see :func:`submit_steps`)."""
    form = profile.form
    pattern = form.success_url_pattern()
    if not form.success and not form.failure and pattern is None:
        yield Call(page, "wait_for_load_state", (), {"timeout": timeout_ms})
        return "unknown"
    started = time.perf_counter()
    regex, whole = pattern if pattern is not None else (None, False)
    try:
        handle = yield Call(page, "wait_for_function", (OUTCOME_JS,),
                            {"arg": [form.success, form.failure, regex, whole], "timeout": timeout_ms})
        answer = yield Call(handle, "json_value")
        outcome: Verdict = "accepted" if answer == "accepted" else "refused"  # OUTCOME_JS's two answers
    except Exception as error:  # a timeout: the page said nothing we recognise
        signs = " or ".join(f"{key} {value!r}" for key, value in
                            (("form.success", form.success), ("form.failure", form.failure),
                             ("form.success_url", form.success_url)) if value)
        _note(waits, f"the site's verdict ({signs}) on {page.url} ({error.__class__.__name__})",
              time.perf_counter() - started, "counted the answer as unknown", NO_VERDICT)
        return "unknown"
    _note(waits, f"the site's verdict on {page.url}", time.perf_counter() - started,
          f"counted the answer as {outcome}")
    return outcome


def submit_steps(page: Any, profile: SiteProfile, text: str,
                 timeout_ms: float = 10_000, waits: Waits | None = None) -> Steps[Verdict]:
    """Type ``text`` into the form, submit it, and wait for the site's verdict.

    Returns "accepted" when ``form.success`` shows up or the page's URL matches
    ``form.success_url``, "refused" when ``form.failure`` does (either on a new
    page or on the same one, as a script-driven form does), and "unknown" when
    neither appears in time. With only ``form.failure`` in the profile, a new
    page without it counts as accepted.
    """
    yield from send_steps(page, profile, text, timeout_ms)
    return (yield from verdict_steps(page, profile, timeout_ms, waits))


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
