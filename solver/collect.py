"""`solver collect`: a Playwright agent that builds a site's captcha dataset.

Each of ``concurrency`` pages (one browser context each, so each has its own
session with the site) opens the profile's URL, waits until the captcha is
really loaded, grabs its pixels (:mod:`solver.capture`), stores them in a
:class:`~solver.dataset.DatasetStore`, asks for a new captcha and repeats,
until the dataset holds ``count`` images. Collecting again continues where an
interrupted run stopped.

Labels (``label``):

* ``none``: images only, for the labelling page (``solver label``);
* ``model``: the model's reading is kept beside each image as a suggestion;
* ``confirm``: the model's reading is submitted to the site; when the site
  accepts it, the image is stored with that label, verified. Otherwise the
  reading stays as a suggestion for a person to correct.

Failures (a selector that matches nothing, a navigation error, an HTTP error,
a blank image) are retried with backoff; when the retries run out, collection
stops with an error that names the selector and the URL and points at a
screenshot and the page's HTML saved under ``OUT/failures/``.

    summary = collect(profile, CollectOptions(count=200, concurrency=2))
    print("\\n".join(summary.lines()))
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from solver.capture import ResponseRecorder, grab_steps
from solver.dataset import DatasetStore
from solver.errors import SiteError, SolverError, UsageError
from solver.page import (Shown, Verdict, Waits, debug_steps, next_captcha_steps, open_steps,
                         refresh_steps, submit_steps)
from solver.profiles import SiteProfile
from solver.readers import Reader, TextReading
from solver.steps import Offload, Sleep, Steps, run_async

logger = logging.getLogger(__name__)

LABEL_MODES = ("none", "model", "confirm")


class CollectError(SolverError):
    """Collection stopped: a page kept failing after its retries."""

    def __init__(self, message: str, screenshot: Path | None = None, html: Path | None = None) -> None:
        saved = [f"screenshot {screenshot}" if screenshot else "", f"page HTML {html}" if html else ""]
        saved = [part for part in saved if part]
        super().__init__(message + (f" (saved for debugging: {', '.join(saved)})" if saved else ""))
        self.screenshot = screenshot
        self.html = html


@dataclass(frozen=True)
class CollectOptions:
    """How much to collect, how, and where to."""

    count: int  # the dataset holds this many images when collection ends
    out: Path | None = None  # default: data/NAME
    concurrency: int = 1
    label: str = "none"
    headed: bool = False
    timeout_ms: float = 10_000
    retries: int = 3  # per captcha, before giving up
    backoff_s: float = 0.5  # doubled at each retry
    connect: str | None = None  # ws:// (a Playwright browser server) or http:// (Chromium's CDP port)
    max_duplicates: int | None = None  # default: max(50, count)

    def check(self) -> None:
        if self.count < 1:
            raise UsageError(f"-n {self.count}: collect at least 1 image")
        if not 1 <= self.concurrency <= 32:
            raise UsageError(f"--concurrency {self.concurrency}: use 1 to 32 pages")
        if self.label not in LABEL_MODES:
            raise UsageError(f"--label {self.label}: use one of {', '.join(LABEL_MODES)}")
        if self.retries < 0:
            raise UsageError(f"--retries {self.retries}: use 0 or more")


@dataclass
class CollectSummary:
    """What a collection did."""

    target: int = 0
    already: int = 0  # images the dataset held before
    collected: int = 0  # new images stored
    duplicates: int = 0  # images the dataset held already
    failures: int = 0  # attempts that failed (and were retried)
    labelled: int = 0  # new images stored with a label
    verified: int = 0  # of which the site accepted the reading
    suggested: int = 0  # new images stored with a model's suggestion only
    refused_by_site: int = 0
    not_submitted: int = 0  # readings that broke the profile or were unsure: refreshed instead
    seconds: float = 0.0
    methods: dict[str, int] = field(default_factory=dict)
    waits: Waits = field(default_factory=Waits)  # waits over a second, and fallbacks

    @property
    def fallbacks(self) -> int:
        """Waits that ended in a fallback (a refresh that became a reload, ...)."""
        return self.waits.fallback_count()

    @property
    def rate(self) -> float:
        return self.collected / self.seconds if self.seconds > 0 else 0.0

    def lines(self) -> list[str]:
        out = [f"collected {self.collected} new images in {self.seconds:.1f} s "
               f"({self.rate:.1f}/s); the dataset holds {self.already + self.collected} of {self.target}",
               f"duplicates {self.duplicates}, failed attempts {self.failures}",
               f"labelled {self.labelled} (verified by the site {self.verified}), "
               f"suggestions {self.suggested}"]
        if self.refused_by_site or self.not_submitted:
            out.append(f"readings refused by the site {self.refused_by_site}, "
                       f"not submitted (unsure or not fitting the profile) {self.not_submitted}")
        if self.methods:
            out.append("capture: " + ", ".join(f"{m} {n}" for m, n in sorted(self.methods.items())))
        out.append(self.waits.summary())
        return out


class _Quota:
    """Slots left to fill; workers reserve one before grabbing (single event loop, no lock)."""

    def __init__(self, left: int) -> None:
        self.left = left

    def reserve(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        return True

    def release(self) -> None:
        self.left += 1


class _Worker:
    """One page of the site, in its own browser context."""

    def __init__(self, index: int, agent: _Collector, page: Any) -> None:
        self.index, self.agent, self.page = index, agent, page
        self.recorder = ResponseRecorder(page)
        self.shown: Shown | None = None  # the loaded captcha, once the page shows one
        self.tried: str | None = None  # after a submit: the fingerprint of the captcha tried

    def next_captcha(self) -> Steps[bytes]:
        """Steps: the pixels of a captcha not grabbed before, with retries and backoff."""
        agent = self.agent
        options, profile = agent.options, agent.profile
        attempt = 0
        while True:
            try:
                waits = agent.summary.waits
                if self.shown is None:
                    self.shown = yield from open_steps(self.page, profile, None, options.timeout_ms,
                                                       waits=waits)
                elif self.tried is None:
                    self.shown = yield from refresh_steps(self.page, profile, self.shown,
                                                          options.timeout_ms, waits)
                else:  # after a submit the page shows a new captcha: wait for it
                    self.shown = yield from next_captcha_steps(self.page, profile, self.tried,
                                                               options.timeout_ms, waits)
                self.tried = None
                shot = yield from grab_steps(self.page, self.shown.element, profile.captcha.capture,
                                             self.recorder)
                # decoding the image is CPU work: off the event loop, as the solver reads
                yield Offload(_check_not_blank, (shot.data, self.page.url, profile))
                agent.summary.methods[shot.method] = agent.summary.methods.get(shot.method, 0) + 1
                return shot.data
            except UsageError:  # e.g. a pre-step's environment variable is unset: retrying won't help
                raise
            except SolverError as error:
                failure = error
            except Exception as error:  # Playwright: navigation errors, a closed page, timeouts
                failure = SiteError(f"{self.page.url or profile.url}: {error.__class__.__name__}: "
                                    f"{str(error).splitlines()[0] if str(error) else ''}")
            agent.summary.failures += 1
            attempt += 1
            self.shown, self.tried = None, None
            if attempt > options.retries:
                stem = f"{time.strftime('%Y%m%d-%H%M%S')}-page{self.index}"
                shot_path, html_path = yield from debug_steps(self.page, agent.out / "failures", stem)
                raise CollectError(f"{failure} (gave up after {attempt} attempts)", shot_path, html_path)
            delay = options.backoff_s * 2 ** (attempt - 1)
            logger.warning("page %d: %s; retrying in %.1f s (%d of %d)", self.index, failure, delay,
                           attempt, options.retries)
            yield Sleep(delay)

    def submit(self, text: str) -> Steps[Verdict]:
        profile = self.agent.profile
        tried = self.shown.fingerprint if self.shown is not None else None
        outcome = yield from submit_steps(self.page, profile, text, self.agent.options.timeout_ms,
                                          self.agent.summary.waits)
        self.tried = tried  # the site shows a new captcha after every try
        if outcome == "unknown" or (outcome == "accepted" and profile.form.success_url):
            # start again from the profile's URL: the page said nothing, or it went elsewhere
            self.shown, self.tried = None, None
        return outcome


def _check_not_blank(data: bytes, url: str, profile: SiteProfile) -> None:
    from solver.imaging import decode_image

    pixels = decode_image(data, source=f"captcha from {url}")
    if int(pixels.max()) - int(pixels.min()) < 8:
        raise SiteError(f"{url}: the captcha {profile.captcha.selector!r} is blank (one flat "
                        "colour); the page may not have drawn it yet, or the selector points "
                        "at the wrong element")


class _Collector:
    def __init__(self, profile: SiteProfile, options: CollectOptions, store: DatasetStore,
                 recognizer: Reader[TextReading] | None,
                 progress: Callable[[int], None] | None) -> None:
        self.profile, self.options, self.store = profile, options, store
        self.recognizer, self.progress = recognizer, progress
        self.out = store.root
        self.summary = CollectSummary(target=options.count, already=len(store))
        self.quota = _Quota(options.count - len(store))
        self.max_duplicates = options.max_duplicates or max(50, options.count)

    async def run(self, browser: Any) -> CollectSummary:
        started = time.perf_counter()
        workers = min(self.options.concurrency, max(1, self.quota.left))
        contexts = []
        try:
            tasks = []
            for index in range(workers):
                context = await browser.new_context()
                contexts.append(context)
                page = await context.new_page()
                tasks.append(asyncio.create_task(self._work(_Worker(index, self, page))))
            try:
                await asyncio.gather(*tasks)
            except BaseException:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
        finally:
            self.summary.seconds = time.perf_counter() - started
            for context in contexts:
                try:
                    await context.close()
                except Exception as error:  # the browser went away first
                    logger.debug("closing a context: %s", error)
        return self.summary

    async def _work(self, worker: _Worker) -> None:
        while self.quota.reserve():
            try:
                stored = await self._one(worker)
            except BaseException:
                self.quota.release()
                raise
            if not stored:
                self.quota.release()

    async def _one(self, worker: _Worker) -> bool:
        """Collect one captcha; False when it was a duplicate."""
        data = await run_async(worker.next_captcha())
        label, verified, suggestion, confidence = None, False, None, None
        if self.options.label != "none" and self.recognizer is not None:
            # in a worker thread, as SolverCore reads: the other pages' steps go on meanwhile
            reading = await Offload(self.recognizer.read, (data,)).run_async()
            # a pre-labelling reader (solver.prelabel) gives "" for a reading that does not
            # fit the profile, and None for a confidence it cannot tell
            suggestion, confidence = reading.text or None, reading.confidence
            if self.options.label == "confirm":
                problem = self.profile.format.label_problem(reading.text)
                sure = reading.confidence is not None and \
                    reading.confidence >= self.profile.model.min_confidence
                if problem is None and sure:
                    outcome = await run_async(worker.submit(reading.text))
                    if outcome == "accepted":
                        label, verified = self.profile.format.normalise(reading.text), True
                    elif outcome == "refused":
                        self.summary.refused_by_site += 1
                else:
                    self.summary.not_submitted += 1
        summary = self.summary
        if label is not None:
            added = self.store.add(data, label, source="site", verified=verified)
        else:
            added = self.store.add(data, suggestion=suggestion, confidence=confidence,
                                   source="collect")
        if not added.new:
            summary.duplicates += 1
            if summary.duplicates > self.max_duplicates:
                raise CollectError(
                    f"{self.profile.url}: {summary.duplicates} captchas were images the dataset "
                    "holds already; the site seems to show the same few images (check "
                    "captcha.selector and captcha.refresh in the profile)")
            return False
        summary.collected += 1
        if label is not None:
            summary.labelled += 1
            summary.verified += verified
        elif suggestion is not None:
            summary.suggested += 1
        if self.progress:
            self.progress(1)
        return True


async def collect_async(profile: SiteProfile, options: CollectOptions,
                        recognizer: Reader[TextReading] | None = None,
                        progress: Callable[[int], None] | None = None,
                        store: DatasetStore | None = None) -> CollectSummary:
    """Collect captchas from the profile's site (see the module's doc)."""
    from playwright.async_api import async_playwright

    options.check()
    if options.label != "none" and recognizer is None:
        raise UsageError(f"--label {options.label} needs a model for {profile.name} "
                         f"(train one with `solver train --site {profile.name}`, or use --label none)")
    fmt = profile.format
    if store is None:
        store = DatasetStore(options.out or Path("data") / profile.name, fmt.charset,
                             fmt.length, fmt.case_sensitive)
    collector = _Collector(profile, options, store, recognizer, progress)
    if collector.quota.left <= 0:
        return collector.summary
    async with async_playwright() as playwright:
        browser = await open_browser(playwright, options.connect, headed=options.headed)
        try:
            with store.batch(flush_seconds=0.5):
                return await collector.run(browser)
        finally:
            await browser.close()


def collect(profile: SiteProfile, options: CollectOptions, recognizer: Reader[TextReading] | None = None,
            progress: Callable[[int], None] | None = None,
            store: DatasetStore | None = None) -> CollectSummary:
    """:func:`collect_async`, run to completion.

    Where an event loop already runs in this thread (a notebook, or Playwright's
    sync API in the same test process), the collection runs in a thread of its own.
    """
    def run() -> CollectSummary:
        return asyncio.run(collect_async(profile, options, recognizer, progress, store))

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run()
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="solver-collect") as pool:
        return pool.submit(run).result()


async def open_browser(playwright: Any, connect: str | None = None, headed: bool = False) -> Any:
    """A local Chromium (:mod:`solver.browser`), or the remote one at ``connect``."""
    from solver.browser import connect_steps, launch_chromium_async

    if connect is None:
        return await launch_chromium_async(playwright, headless=not headed)
    return await run_async(connect_steps(playwright, connect))
