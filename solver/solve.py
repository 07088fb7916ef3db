"""Solving a site's captcha in Playwright: one core, a sync and an async shell.

:class:`SolverCore` makes every decision (wait, grab, read, check the reading
against the profile, fill, submit, read the site's verdict, refresh, retry) as
generators of Playwright calls (:mod:`solver.steps`). :class:`Solver` drives
them with Playwright's sync API, :class:`AsyncSolver` with its async API, where
recognition runs in a worker thread, off the event loop.

    from solver import Solver

    solver = Solver.for_site("example")       # ./site_profiles and ./models, then the shipped ones
    solver.open(page)                          # the profile's URL and pre-steps (optional)
    result = solver.solve(page)                # fills, submits, checks, retries
    text = solver.read(page).text              # only reads the captcha on the page

    result = await AsyncSolver.for_site("example").solve(page)   # playwright.async_api
"""

from __future__ import annotations

import os
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

from solver.capture import ResponseRecorder, grab_steps
from solver.errors import UsageError
from solver.page import (NOT_SUBMITTED, Outcome, Shown, SlowWait, Waits, captcha_steps,
                         next_captcha_steps, open_steps, refresh_steps, send_steps, verdict_steps)
from solver.profiles import SiteProfile
from solver.readers import Reader
from solver.recognizers import Reading
from solver.sites import SiteSpec, resolve_site
from solver.steps import Offload, Steps, run_async, run_sync

@dataclass(frozen=True)
class Attempt:
    """One try: what was read, whether it was submitted, and what the site said."""

    text: str
    confidence: float
    outcome: Outcome
    reason: str = ""  # why a reading was not submitted
    milliseconds: dict[str, float] = field(default_factory=dict)  # per stage


@dataclass(frozen=True)
class SolveResult:
    """The outcome of :meth:`Solver.solve`."""

    success: bool
    text: str  # the last reading submitted (or read)
    confidence: float
    attempts: list[Attempt]
    waits: list[SlowWait] = field(default_factory=list)  # waits over a second, and fallbacks

    @property
    def fallbacks(self) -> int:
        """Waits that ended in a fallback: a refresh that became a reload, a verdict not seen."""
        return sum(1 for wait in self.waits if wait.fallback)

    @property
    def milliseconds(self) -> dict[str, float]:
        """Milliseconds per stage, summed over the attempts."""
        total: dict[str, float] = {}
        for attempt in self.attempts:
            for stage, milliseconds in attempt.milliseconds.items():
                total[stage] = total.get(stage, 0.0) + milliseconds
        return total

    def to_json(self) -> dict[str, Any]:
        """The result as ``solver solve --json`` prints it (milliseconds under the key "ms")."""
        return {"success": self.success, "text": self.text, "confidence": round(self.confidence, 4),
                "attempts": len(self.attempts),
                "ms": _rounded(self.milliseconds),
                "fallbacks": self.fallbacks,
                "slow_waits": [{"line": w.line(), "seconds": round(w.seconds, 2),
                                "fallback": w.fallback} for w in self.waits],
                "history": [{"text": a.text, "confidence": round(a.confidence, 4),
                             "outcome": a.outcome, "reason": a.reason,
                             "ms": _rounded(a.milliseconds)} for a in self.attempts]}


def _rounded(milliseconds: dict[str, float]) -> dict[str, float]:
    return {stage: round(value, 2) for stage, value in milliseconds.items()}


class SolverCore:
    """Every decision of solving, as steps; the shells only make the calls."""

    def __init__(self, profile: SiteProfile, recognizer: Reader[Reading], attempts: int = 3,
                 timeout_ms: float = 10_000, environ: Any = None) -> None:
        if attempts < 1:
            raise UsageError(f"attempts {attempts}: use 1 or more")
        self.profile = profile
        self.recognizer = recognizer
        self.attempts = attempts
        self.timeout_ms = timeout_ms
        self.environ = os.environ if environ is None else environ
        self._recorders: weakref.WeakKeyDictionary[Any, ResponseRecorder] = weakref.WeakKeyDictionary()
        # the fingerprint of the captcha last submitted on each page: the next solve waits
        # for another one (a form sent by script swaps the image after its verdict)
        self._tried: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()

    # -- the pieces

    def open_steps(self, page: Any, url: str | None = None) -> Steps[None]:
        """Go to the profile's URL, run its pre-steps, and wait for the captcha."""
        if page not in self._recorders:  # before the page loads the captcha: its bytes as served
            self._recorders[page] = ResponseRecorder(page)
        self._tried.pop(page, None)
        yield from open_steps(page, self.profile, url, self.timeout_ms, self.environ)

    def read_steps(self, page: Any, stages: dict[str, float] | None = None) -> Steps[Reading]:
        """Wait for the captcha on the page, grab it and read it (nothing is typed)."""
        stages = {} if stages is None else stages
        started = time.perf_counter()
        shown = yield from captcha_steps(page, self.profile, self.timeout_ms)
        lap = time.perf_counter()
        stages["wait"] = (lap - started) * 1000
        reading = yield from self._grab_and_read(page, shown.element, stages)
        return reading

    def _grab_and_read(self, page: Any, element: Any, stages: dict[str, float]) -> Steps[Reading]:
        started = time.perf_counter()
        shot = yield from grab_steps(page, element, self.profile.captcha.capture,
                                     self._recorders.get(page))
        lap = time.perf_counter()
        stages["grab"] = (lap - started) * 1000
        reading: Reading = yield Offload(self.recognizer.read, (shot.data,))
        stages["read"] = (time.perf_counter() - lap) * 1000
        return reading

    def problem(self, reading: Reading) -> str | None:
        """Why a reading must not be submitted, or None."""
        problem = self.profile.format.label_problem(reading.text)
        if problem is not None:
            return problem
        if reading.confidence < self.profile.model.min_confidence:
            return (f"confidence {reading.confidence:.2f} is below model.min_confidence "
                    f"{self.profile.model.min_confidence:.2f}")
        return None

    # -- the whole job

    def solve_steps(self, page: Any) -> Steps[SolveResult]:
        """Read, check, fill, submit and check the verdict; refresh and retry on failure."""
        history: list[Attempt] = []
        waits = Waits()
        shown: Shown | None = None
        reading = Reading("", 0.0, 0.0)
        for _ in range(self.attempts):
            stages: dict[str, float] = {}
            started = time.perf_counter()
            if shown is not None:  # read but not submitted: ask for another captcha
                shown = yield from refresh_steps(page, self.profile, shown, self.timeout_ms, waits)
            elif page in self._tried:  # after a try: the captcha the site shows next
                shown = yield from next_captcha_steps(page, self.profile, self._tried[page],
                                                      self.timeout_ms, waits)
            else:
                shown = yield from captcha_steps(page, self.profile, self.timeout_ms, waits=waits)
            stages["wait"] = (time.perf_counter() - started) * 1000
            reading = yield from self._grab_and_read(page, shown.element, stages)
            problem = self.problem(reading)
            if problem is not None:
                history.append(Attempt(reading.text, reading.confidence, NOT_SUBMITTED, problem, stages))
                continue
            text = self.profile.format.normalise(reading.text)
            lap = time.perf_counter()
            yield from send_steps(page, self.profile, text, self.timeout_ms)
            self._tried[page] = shown.fingerprint
            shown = None
            stages["submit"] = (time.perf_counter() - lap) * 1000
            lap = time.perf_counter()
            outcome = yield from verdict_steps(page, self.profile, self.timeout_ms, waits)
            stages["verdict"] = (time.perf_counter() - lap) * 1000
            history.append(Attempt(text, reading.confidence, outcome, "", stages))
            if outcome == "accepted":
                return SolveResult(True, text, reading.confidence, history, waits.notes)
            if outcome == "unknown" and not (self.profile.form.success or self.profile.form.failure
                                             or self.profile.form.success_url):
                break  # the profile gives no way to tell; trying again would guess
        return SolveResult(False, reading.text, reading.confidence, history, waits.notes)


class _Shell:
    core: SolverCore

    def __init__(self, profile: SiteSpec, model_dir: str | os.PathLike[str] | None = None, *,
                 recognizer: Reader[Reading] | None = None, attempts: int = 3,
                 timeout_ms: float = 10_000,
                 profiles_dir: str | os.PathLike[str] | None = None,
                 models_dir: str | os.PathLike[str] | None = None) -> None:
        site = resolve_site(profile, model_dir=model_dir, profiles_dir=profiles_dir,
                            models_dir=models_dir)
        if recognizer is None:
            recognizer = site.load_recognizer()
        self.core = SolverCore(site.profile, recognizer, attempts, timeout_ms)

    @classmethod
    def for_site(cls, name: str, **options: Any) -> Any:
        """The profile ``name`` and its model, each from the user's folder, else the package's.

        The user's folders are ``profiles_dir`` (else ``$SOLVER_PROFILES_DIR``, else
        ``./site_profiles``) and ``models_dir`` (else ``$SOLVER_MODELS_DIR``, else ``./models``);
        after them come the ones shipped inside the package (``solver.shipped``), so
        ``Solver.for_site("example")`` works from any folder."""
        return cls(name, **options)

    @property
    def profile(self) -> SiteProfile:
        return self.core.profile

    @property
    def recognizer(self) -> Reader[Reading]:
        return self.core.recognizer


class Solver(_Shell):
    """Solve captchas with Playwright's sync API (see the module's doc)."""

    def open(self, page: Any, url: str | None = None) -> None:
        """Go to the profile's URL (or ``url``), run its pre-steps, wait for the captcha."""
        run_sync(self.core.open_steps(page, url))

    def read(self, page: Any) -> Reading:
        """Read the captcha on the page; nothing is typed or submitted."""
        return run_sync(self.core.read_steps(page))

    def solve(self, page: Any) -> SolveResult:
        """Read, fill, submit and check, with up to ``attempts`` tries."""
        return run_sync(self.core.solve_steps(page))


class AsyncSolver(_Shell):
    """Solve captchas with Playwright's async API; recognition runs off the event loop."""

    async def open(self, page: Any, url: str | None = None) -> None:
        """Go to the profile's URL (or ``url``), run its pre-steps, wait for the captcha."""
        await run_async(self.core.open_steps(page, url))

    async def read(self, page: Any) -> Reading:
        """Read the captcha on the page; nothing is typed or submitted."""
        return await run_async(self.core.read_steps(page))

    async def solve(self, page: Any) -> SolveResult:
        """Read, fill, submit and check, with up to ``attempts`` tries."""
        return await run_async(self.core.solve_steps(page))
