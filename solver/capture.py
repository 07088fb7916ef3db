"""Grabbing the captcha's pixels from a Playwright page (sync API).

Most sites draw a new captcha whenever its URL is requested, so ``auto`` never
requests the image again. It takes, in order of speed and fidelity:

1. an inline ``data:`` URI, decoded (the exact bytes);
2. the response the page itself received, kept by a :class:`ResponseRecorder`
   attached before the page loaded (the exact bytes);
3. the decoded image read back through a ``<canvas>`` (pixel-identical PNG);
4. an element screenshot (what is on screen; the slowest).

Explicit modes: ``data-uri``, ``src`` (the recorded response, else a fetch
through the page's own request context: cookies match, but on most sites that
fetch draws a *new* captcha), ``canvas``, ``background`` and ``screenshot``.

    recorder = ResponseRecorder(page)      # before page.goto
    page.goto(profile.url)
    element, _ = wait_for_captcha(page, profile)
    shot = grab(page, element, profile.captcha.capture, recorder)
    shot.data  # PNG (or JPEG, ...) bytes
"""

from __future__ import annotations

import base64
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from solver.errors import SolverError
from solver.steps import Call, Steps, run_async, run_sync

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, ElementHandle, Page, Response

logger = logging.getLogger(__name__)

# What the element shows: its kind and the absolute URL of its image, if any.
DESCRIBE_JS = """
el => {
  const abs = u => u ? new URL(u, el.ownerDocument.baseURI).href : '';
  if (el.tagName === 'IMG') return {kind: 'img', url: abs(el.currentSrc || el.src)};
  if (el.tagName === 'CANVAS') return {kind: 'canvas', url: ''};
  const m = /url\\(["']?(.*?)["']?\\)/.exec(getComputedStyle(el).backgroundImage || '');
  return {kind: 'background', url: m ? abs(m[1]) : ''};
}
"""

# A decoded <img> or a <canvas>, as a PNG data: URI; null when the canvas is tainted.
CANVAS_JS = """
el => {
  let canvas = el;
  if (el.tagName === 'IMG') {
    canvas = el.ownerDocument.createElement('canvas');
    canvas.width = el.naturalWidth; canvas.height = el.naturalHeight;
    canvas.getContext('2d').drawImage(el, 0, 0);
  }
  try { return canvas.toDataURL('image/png'); } catch (e) { return null; }
}
"""



@dataclass(frozen=True)
class CaptureMode:
    """One value of a profile's ``captcha.capture``: what it does, in the words of the
    profile's schema, and the grab steps it tries in order, by the kind of element the
    captcha is ("img", "canvas" or "background"; the ``"*"`` entry serves any kind).

    :data:`CAPTURE_MODES` holds every mode; the profile's schema takes its list from
    there, so a new mode is one entry here (and a new entry of :data:`GRAB_STEPS` when
    it grabs in a new way)::

        >>> CAPTURE_MODES["auto"].plan("canvas")
        ('canvas', 'screenshot')
    """

    name: str
    description: str
    steps: Mapping[str, tuple[str, ...]]

    def plan(self, kind: str) -> tuple[str, ...]:
        """The grab steps to try, in order, for an element of ``kind``."""
        return self.steps[kind] if kind in self.steps else self.steps["*"]


_OWN_BYTES = ("data-uri", "src", "fetch")  # the image's own bytes, however the page shows it

#: every capture mode, by name, in the order the profile's schema lists them
CAPTURE_MODES: dict[str, CaptureMode] = {mode.name: mode for mode in (
    CaptureMode("auto", "picks the fastest that works",
                {"img": ("data-uri", "src", "canvas", "screenshot"),
                 "canvas": ("canvas", "screenshot"),
                 "background": ("data-uri", "src", "screenshot")}),
    CaptureMode("src", "fetches the image as served", {"*": _OWN_BYTES}),
    CaptureMode("data-uri", "decodes an inline image", {"*": ("data-uri",)}),
    CaptureMode("canvas", "reads a canvas", {"*": ("canvas",)}),
    CaptureMode("background", "fetches a CSS background image", {"*": _OWN_BYTES}),
    CaptureMode("screenshot", "takes an element screenshot", {"*": ("screenshot",)}),
)}

#: the mode names, in order
MODES: tuple[str, ...] = tuple(CAPTURE_MODES)


def describe_modes() -> str:
    """The modes in one sentence, for the profile's schema."""
    return "; ".join(f"'{mode.name}' {mode.description}" for mode in CAPTURE_MODES.values()) + "."


class CaptureError(SolverError):
    """The captcha's pixels could not be grabbed in the way asked for."""


@dataclass(frozen=True)
class Capture:
    """Image bytes and how they were obtained."""

    data: bytes
    method: str  # "data-uri", "response", "fetch", "canvas" or "screenshot"
    milliseconds: float


class ResponseRecorder:
    """Keeps the recent image responses of a page or a browser context, by URL.

    Attach it before the page loads the captcha. Bodies are read only when
    asked for, from Playwright's own copy, so recording costs nothing per image.
    """

    def __init__(self, target: Page | BrowserContext, keep: int = 64) -> None:
        self._responses: OrderedDict[str, Response] = OrderedDict()
        self._keep = keep
        self._target = target
        target.on("response", self._on_response)

    def _on_response(self, response: Response) -> None:
        if response.request.resource_type != "image" and not \
                (response.headers.get("content-type") or "").startswith("image/"):
            return
        self._responses[response.url] = response
        self._responses.move_to_end(response.url)
        while len(self._responses) > self._keep:
            self._responses.popitem(last=False)

    def response(self, url: str) -> Any:
        """The recorded successful response for ``url``, or None."""
        response = self._responses.get(url)
        return response if response is not None and response.ok else None

    def body(self, url: str) -> bytes | None:
        """The recorded body for ``url`` (sync API), or None."""
        return run_sync(_recorded_body(self, url))

    def detach(self) -> None:
        self._target.remove_listener("response", self._on_response)


def _data_uri_bytes(url: str) -> bytes | None:
    if not url.startswith("data:"):
        return None
    header, _, payload = url.partition(",")
    if ";base64" in header:
        return base64.b64decode(payload)
    from urllib.parse import unquote_to_bytes

    return unquote_to_bytes(payload)


def grab_steps(page: Any, element: Any, mode: str = "auto",
               recorder: ResponseRecorder | None = None) -> Steps[Capture]:
    """The pixels of a loaded captcha element (see the module's doc for ``mode``)."""
    if mode not in MODES:
        raise CaptureError(f"capture mode {mode!r} is not one of {', '.join(MODES)}")
    started = time.perf_counter()
    described: dict[str, Any] = yield Call(element, "evaluate", (DESCRIBE_JS,))
    kind, url = described["kind"], described["url"]
    tried = []
    for step in CAPTURE_MODES[mode].plan(kind):
        data = yield from GRAB_STEPS[step](page, element, url, recorder)
        if data:
            method = {"src": "response"}.get(step, step)
            return Capture(data, method, (time.perf_counter() - started) * 1000)
        tried.append(step)
    raise CaptureError(
        f"{page.url}: could not grab the captcha ({kind}, {url[:80] or 'no URL'}) with "
        f"{' or '.join(tried)} (use capture: auto or screenshot in the profile"
        + ("; attach a ResponseRecorder before loading the page" if "src" in tried else "") + ")")


def grab(page: Page, element: ElementHandle, mode: str = "auto",
         recorder: ResponseRecorder | None = None) -> Capture:
    """The pixels of a loaded captcha element (see the module's doc for ``mode``)."""
    return run_sync(grab_steps(page, element, mode, recorder))


async def grab_async(page: Any, element: Any, mode: str = "auto",
                     recorder: ResponseRecorder | None = None) -> Capture:
    """:func:`grab` for Playwright's async API."""
    return await run_async(grab_steps(page, element, mode, recorder))


def _recorded_body(recorder: ResponseRecorder, url: str) -> Steps[bytes | None]:
    response = recorder.response(url)
    if response is None:
        return None
    try:
        return (yield Call(response, "body"))  # type: ignore[no-any-return]
    except Exception as error:  # the page navigated away and the body is gone
        logger.debug("recorded body of %s is gone: %s", url, error)
        return None


def _screenshot(page: Any, element: Any) -> Steps[bytes]:
    """The element as shown. An element at a fractional position (an inline <img> on a
    text baseline, say) makes Playwright's element screenshot one pixel taller or wider
    than the image; clipping at the rounded box, where Chromium snaps the image, does not."""
    yield Call(element, "scroll_into_view_if_needed")
    box = yield Call(element, "bounding_box")
    if box is None or box["width"] < 1 or box["height"] < 1:
        raise CaptureError(f"{page.url}: the captcha element is not visible, so it cannot be "
                           "screenshotted (check captcha.selector)")
    clip = {key: round(box[key]) for key in ("x", "y", "width", "height")}
    return (yield Call(page, "screenshot", (), {"clip": clip, "type": "png"}))  # type: ignore[no-any-return]


def _data_uri_step(page: Any, element: Any, url: str,
                   recorder: ResponseRecorder | None) -> Steps[bytes | None]:
    return _data_uri_bytes(url)
    yield  # a generator, like the other steps


def _src_step(page: Any, element: Any, url: str,
              recorder: ResponseRecorder | None) -> Steps[bytes | None]:
    if recorder and url and not url.startswith("data:"):
        return (yield from _recorded_body(recorder, url))
    return None


def _fetch_step(page: Any, element: Any, url: str,
                recorder: ResponseRecorder | None) -> Steps[bytes | None]:
    if not url or url.startswith("data:"):
        return None
    response = yield Call(page.request, "get", (url,))
    return (yield Call(response, "body")) if response.ok else None


def _canvas_step(page: Any, element: Any, url: str,
                 recorder: ResponseRecorder | None) -> Steps[bytes | None]:
    data_url = yield Call(element, "evaluate", (CANVAS_JS,))
    return _data_uri_bytes(data_url) if data_url else None


def _screenshot_step(page: Any, element: Any, url: str,
                     recorder: ResponseRecorder | None) -> Steps[bytes | None]:
    return (yield from _screenshot(page, element))


GrabStep = Callable[[Any, Any, str, "ResponseRecorder | None"], "Steps[bytes | None]"]

#: the ways of grabbing an element's pixels that the modes combine; each returns the
#: bytes, or None when it does not apply (the next step of the mode's plan is tried)
GRAB_STEPS: dict[str, GrabStep] = {
    "data-uri": _data_uri_step,
    "src": _src_step,
    "fetch": _fetch_step,
    "canvas": _canvas_step,
    "screenshot": _screenshot_step,
}
