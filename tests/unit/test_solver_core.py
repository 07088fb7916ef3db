"""SolverCore's decisions against a scripted fake page: no browser, milliseconds a test.

:class:`FakeSite` answers the few Playwright calls the core makes (the waits, the
grab, fill, click, reload, the verdict) from a small model of a site: a queue of
captchas, a form that judges the typed answer, a refresh control. Waits that
would time out in a browser time out here too, after the (short) timeout they
were given, so the core's fallbacks run as they do on a real page.
"""

from __future__ import annotations

import asyncio
import base64
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest

from solver.capture import DESCRIBE_JS
from solver.errors import UsageError
from solver.page import (FIND_JS, MARK_JS, NO_NEW_CAPTCHA, NO_VERDICT, OUTCOME_JS,
                         REFRESH_FELL_BACK, SHOWS_JS, CaptchaNotFoundError)
from solver.profiles import profile_from_data
from solver.recognizers import Reading
from solver.solve import SolverCore
from solver.steps import run_async, run_sync

TIMEOUT_MS = 20  # every wait the fake lets run out costs this much real time

PROFILE = {
    "name": "fake",
    "url": "http://fake.test/login",
    "captcha": {"selector": "img#captcha", "refresh": "#refresh"},
    "form": {"input": "#answer", "submit": "#go", "success": ".ok", "failure": ".error"},
    "format": {"charset": "0123456789", "length": 4},
}


def profile(**form: Any) -> Any:
    return profile_from_data({**PROFILE, "form": {**PROFILE["form"], **form}}, None)


class FakeTimeout(Exception):
    """Playwright's TimeoutError, as the core tells it: by its class name."""


FakeTimeout.__name__ = "TimeoutError"


@dataclass
class Handle:
    """A JSHandle: the element found, or the verdict's value."""

    value: Any

    def as_element(self) -> Any:
        return self.value

    def json_value(self) -> Any:
        return self.value


@dataclass
class Element:
    site: FakeSite

    def evaluate(self, script: str, *args: Any) -> Any:
        captcha = self.site.current
        if script == SHOWS_JS:
            return {"kind": "img", "print": captcha.fingerprint} if self.site.visible else ""
        if script == DESCRIBE_JS:
            data = base64.b64encode(captcha.image).decode()
            return {"kind": "img", "url": f"data:image/png;base64,{data}"}
        raise AssertionError(f"unexpected script on the captcha: {script[:60]!r}")


@dataclass(frozen=True)
class Captcha:
    answer: str
    number: int

    @property
    def fingerprint(self) -> str:
        return f"img|{self.number}"

    @property
    def image(self) -> bytes:
        return f"captcha {self.number}: {self.answer}".encode()


@dataclass(eq=False)  # hashed by identity, as Playwright's pages are: the core keys by page
class FakeSite:
    """A page (and its only frame) that shows one captcha at a time from ``answers``.

    A submit is judged against the captcha shown; then the site shows the next one
    when ``new_after_submit``, else keeps the old one until a refresh or a reload.
    ``verdicts`` False makes the site say nothing after a submit; ``refresh_control``
    False leaves the refresh selector matching nothing; ``vanish_after_submit`` takes
    the captcha away once an answer was sent.
    """

    answers: list[str]
    new_after_submit: bool = True
    verdicts: bool = True
    refresh_control: bool = True
    vanish_after_submit: bool = False
    url: str = "http://fake.test/login"
    shown: int = 0
    visible: bool = True
    typed: str = ""
    verdict: str | None = None
    log: list[str] = field(default_factory=list)

    @property
    def main_frame(self) -> FakeSite:
        return self

    @property
    def current(self) -> Captcha:
        return Captcha(self.answers[min(self.shown, len(self.answers) - 1)], self.shown)

    def _next(self) -> None:
        self.shown += 1

    def _time_out(self, timeout: float, what: str) -> None:
        time.sleep(timeout / 1000)
        raise FakeTimeout(f"Timeout {timeout:.0f}ms exceeded waiting for {what}")

    def count(self, entry: str) -> int:
        return self.log.count(entry)

    # -- the calls the core makes

    def is_closed(self) -> bool:
        return False

    def wait_for_function(self, script: str, arg: Any = None, timeout: float = 0) -> Handle:
        if script == FIND_JS:
            _, previous = arg
            if self.visible and self.current.fingerprint != previous:
                return Handle(Element(self))
            self._time_out(timeout, "the captcha")
        if script == OUTCOME_JS:
            if self.verdict is not None:
                return Handle(self.verdict)
            self._time_out(timeout, "the verdict")
        raise AssertionError(f"unexpected wait: {script[:60]!r}")

    def query_selector(self, selector: str) -> Any:
        if selector == PROFILE["captcha"]["selector"]:
            return Element(self) if self.visible else None
        if selector == PROFILE["captcha"]["refresh"]:
            return object() if self.refresh_control else None
        raise AssertionError(f"unexpected query_selector({selector!r})")

    def fill(self, selector: str, text: str, timeout: float = 0) -> None:
        assert selector == PROFILE["form"]["input"]
        self.typed = text
        self.log.append(f"fill {text}")

    def evaluate(self, script: str, arg: Any = None) -> None:
        assert script == MARK_JS  # the verdicts shown so far no longer count
        self.verdict = None

    def click(self, selector: str, timeout: float = 0, no_wait_after: bool = False) -> None:
        if selector == PROFILE["form"]["submit"]:
            self.log.append("submit")
            if self.verdicts:
                self.verdict = "accepted" if self.typed == self.current.answer else "refused"
            if self.vanish_after_submit:
                self.visible = False
            elif self.new_after_submit:
                self._next()
        elif selector == PROFILE["captcha"]["refresh"] and self.refresh_control:
            self.log.append("refresh")
            self._next()
        else:
            self._time_out(timeout, f"selector {selector!r}")

    def reload(self, timeout: float = 0) -> None:
        self.log.append("reload")
        self._next()

    def wait_for_load_state(self, timeout: float = 0) -> None:
        pass


class ScriptedRecognizer:
    """Reads from a script, in order, and remembers which image each reading was of."""

    def __init__(self, *readings: tuple[str, float]) -> None:
        self.readings = list(readings)
        self.images: list[bytes] = []

    def read(self, image: bytes) -> Reading:
        self.images.append(image)
        text, confidence = self.readings.pop(0)
        return Reading(text, confidence, 0.1)


def solve(site: FakeSite, recognizer: ScriptedRecognizer, attempts: int = 3, **form: Any) -> Any:
    core = SolverCore(profile(**form), recognizer, attempts=attempts, timeout_ms=TIMEOUT_MS)  # type: ignore[arg-type]
    return run_sync(core.solve_steps(site))


def outcomes(result: Any) -> list[str]:
    return [attempt.outcome for attempt in result.attempts]


def test_a_right_reading_is_accepted_at_the_first_try() -> None:
    site = FakeSite(["1234"])
    result = solve(site, ScriptedRecognizer(("1234", 0.9)))
    assert result.success and result.text == "1234" and result.confidence == 0.9
    assert outcomes(result) == ["accepted"]
    assert site.log == ["fill 1234", "submit"]
    assert result.fallbacks == 0


def test_a_wrong_reading_then_a_right_one_on_the_next_captcha() -> None:
    site = FakeSite(["1111", "2222"])
    recognizer = ScriptedRecognizer(("1117", 0.9), ("2222", 0.8))
    result = solve(site, recognizer)
    assert result.success and result.text == "2222"
    assert outcomes(result) == ["refused", "accepted"]
    assert recognizer.images == [Captcha("1111", 0).image, Captcha("2222", 1).image]
    assert site.count("refresh") == 0 and result.fallbacks == 0  # the site showed the next one


def test_a_site_that_keeps_the_old_captcha_is_refreshed() -> None:
    site = FakeSite(["1111", "2222"], new_after_submit=False)
    result = solve(site, ScriptedRecognizer(("1117", 0.9), ("2222", 0.8)))
    assert outcomes(result) == ["refused", "accepted"]
    assert site.count("refresh") == 1 and site.count("reload") == 0
    assert [wait.fallback for wait in result.waits] == [NO_NEW_CAPTCHA]


def test_a_reading_that_cannot_be_the_answer_is_not_submitted() -> None:
    site = FakeSite(["1111", "2222", "3333"])
    result = solve(site, ScriptedRecognizer(("12", 0.9), ("2222", 0.1), ("3333", 0.9)))
    assert outcomes(result) == ["not submitted", "not submitted", "accepted"]
    assert result.attempts[0].reason == "'12' has 2 characters, expected 4"
    assert result.attempts[1].reason == "confidence 0.10 is below model.min_confidence 0.50"
    assert site.count("submit") == 1 and site.count("refresh") == 2


def test_a_missing_refresh_control_falls_back_to_a_reload() -> None:
    site = FakeSite(["1111", "2222"], refresh_control=False)
    result = solve(site, ScriptedRecognizer(("11", 0.9), ("2222", 0.9)))
    assert outcomes(result) == ["not submitted", "accepted"]
    assert site.count("reload") == 1
    assert [wait.fallback for wait in result.waits] == [REFRESH_FELL_BACK]


def test_refusals_until_the_tries_run_out() -> None:
    site = FakeSite(["1111", "2222", "3333", "4444"])
    recognizer = ScriptedRecognizer(("0000", 0.9), ("0000", 0.9), ("0000", 0.9), ("4444", 0.9))
    result = solve(site, recognizer, attempts=3)
    assert not result.success and result.text == "0000"
    assert outcomes(result) == ["refused"] * 3
    assert site.count("submit") == 3 and len(recognizer.readings) == 1  # the 4th never read


def test_the_tries_limit_counts_unsubmitted_readings_too() -> None:
    site = FakeSite(["1111", "2222"])
    result = solve(site, ScriptedRecognizer(("1", 0.9), ("2", 0.9)), attempts=2)
    assert not result.success and outcomes(result) == ["not submitted"] * 2
    assert site.count("submit") == 0


def test_a_verdict_never_seen_counts_as_unknown_and_is_tried_again() -> None:
    site = FakeSite(["1111", "2222"], verdicts=False)
    result = solve(site, ScriptedRecognizer(("1111", 0.9), ("2222", 0.9)), attempts=2)
    assert not result.success and outcomes(result) == ["unknown", "unknown"]
    assert [wait.fallback for wait in result.waits] == [NO_VERDICT, NO_VERDICT]


def test_without_any_sign_of_a_verdict_one_try_is_made() -> None:
    site = FakeSite(["1111", "2222"], verdicts=False)
    result = solve(site, ScriptedRecognizer(("1111", 0.9), ("2222", 0.9)),
                   success=None, failure=None)
    assert not result.success and outcomes(result) == ["unknown"]  # another try would guess
    assert site.count("submit") == 1


def test_a_captcha_that_vanishes_is_an_error_naming_the_selector() -> None:
    site = FakeSite(["1111", "2222"], vanish_after_submit=True)
    started = time.perf_counter()
    with pytest.raises(CaptchaNotFoundError, match=r"captcha.selector 'img#captcha' matched "
                                                   r"nothing visible"):
        solve(site, ScriptedRecognizer(("1117", 0.9), ("2222", 0.9)))
    assert site.count("submit") == 1
    assert site.count("refresh") == 1 and site.count("reload") == 1  # both were tried first
    assert time.perf_counter() - started < 5


def test_the_async_driver_takes_the_same_decisions() -> None:
    site = FakeSite(["1111", "2222"], new_after_submit=False)
    core = SolverCore(profile(), ScriptedRecognizer(("1117", 0.9), ("2222", 0.8)),  # type: ignore[arg-type]
                      timeout_ms=TIMEOUT_MS)
    # A thread of its own: where a sync Playwright fixture ran earlier in the session, its
    # loop still counts as running in the test's thread, and asyncio.run refuses there.
    with ThreadPoolExecutor(1) as pool:
        result = pool.submit(lambda: asyncio.run(run_async(core.solve_steps(site)))).result(60)
    assert result.success and outcomes(result) == ["refused", "accepted"]
    assert site.log == ["fill 1117", "submit", "refresh", "fill 2222", "submit"]


def test_the_next_solve_waits_for_a_captcha_other_than_the_one_tried() -> None:
    site = FakeSite(["1111", "2222", "3333"], new_after_submit=False)
    core = SolverCore(profile(), ScriptedRecognizer(("1111", 0.9), ("2222", 0.9)),  # type: ignore[arg-type]
                      timeout_ms=TIMEOUT_MS)
    assert run_sync(core.solve_steps(site)).success
    second = run_sync(core.solve_steps(site))  # the first captcha is still shown: refresh
    assert second.success and second.text == "2222"
    assert site.count("refresh") == 1


def test_attempts_must_be_one_or_more() -> None:
    with pytest.raises(UsageError, match="attempts 0: use 1 or more"):
        SolverCore(profile(), ScriptedRecognizer(), attempts=0)  # type: ignore[arg-type]
