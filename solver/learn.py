"""`solver learn`: learn a site's captcha from the site itself, the site confirming each answer.

A site that one may automate says, for every answer submitted, whether it was
right: an exact labeller that costs nothing but a submission. ``learn`` runs
rounds of

1. **collect with confirmation**: ``per_round`` fresh captchas are read by the
   current reader and each reading that fits the profile is submitted, at most
   ``rate`` submissions a second. A round that reads fewer of them right than
   ``target`` **reads on** for ``read_on_s`` (default: not at all, the reading
   goes on while the next model trains; else as long as a training may take),
   since a verified label costs a submission and a training minutes:
   the decision is taken once, at ``per_round``, so the round's rate is not
   cut where chance lifts it. An accepted reading is stored in the dataset
   as a verified label (``source`` ``site``); a refused one is stored
   unlabelled, and the reading it was refused for is kept in the run's log as
   a known-wrong label; a reading that does not fit the profile is not
   submitted (the image is stored unlabelled). The round's **reading rate** is
   the share of its captchas that the site accepted on the first and only
   attempt, measured by the site's own verdicts;
2. **train** (:func:`solver.training.recipes.auto_train`), the round's reader
   reading on meanwhile (:class:`CollectionWhileTraining`, unless
   ``collect_while_training`` is off; then a round below the target reads on
   before the training instead), on the verified
   labels, with the unlabelled and refused images as the pool for
   pseudo-labels, never with a refused image's refused text: the first model
   by the held-out choice between the recipes; after it, the site's model so
   far trains on in one schedule, its pseudo-labels' threshold set by its own
   verdicts in the round it read;

and back, until a round's reading rate reaches ``target``, the label budget
(submissions in all), the time budget or Ctrl-C ends it.

It starts from what there is: the site's own model when it fits the profile,
else enough labels in the dataset to train one (hand labels from ``solver
label``), else the starting readers: ddddocr where it is installed, and the
shipped general model. Where there are both, a trial (:class:`StarterTrial`)
opens the first round: both read each of its first ``2 * trial`` captchas and
take turns to submit, and the one that the site's verdicts find right more
often reads on. A pre-labelling reader that reads almost nothing of a round
gives way to the next one; one that reads little reads on only until the
dataset has ``first_labels`` labels, and a first model trains on them.

Respect for the site: submissions are spaced by ``1 / rate`` seconds, and the
run stops at once on signs of a lock-out (:class:`LockedOut`): an HTTP 429, or
403 on the page or the form, a page that stops showing the captcha, or a
verdict that is neither the profile's success nor its failure.

Everything is on disk in ``DATA/learn/``: ``state.json`` (rewritten atomically
at every step) and ``captchas.jsonl``, one fsynced line per captcha seen (what
was read, whether it was submitted, the verdict). Verified labels go to the
dataset, journalled, before the log line is written. Running the same command
again after an interruption resumes the round where it stopped.

    from solver.learn import LearnOptions, learn
    summary = learn(profile, LearnOptions(data=Path("data/shop"), time_budget_s=1800))
    print("\\n".join(summary.lines()))
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from solver.artifacts import find_model
from solver.dataset import DatasetStore
from solver.errors import SiteError, SolverError, UsageError
from solver.page import LOGGED_NOT_SUBMITTED, OUTCOMES, Verdict
from solver.profiles import SiteProfile
from solver.readers import Reader, TextReading

if TYPE_CHECKING:
    from solver.prelabel import PrelabelReader, Proposal

logger = logging.getLogger(__name__)

STATE_FILE = "state.json"
LOG_FILE = "captchas.jsonl"
STATE_VERSION = 1
#: the pre-labelling readers to start from, in order, when the site has no model of its own
STARTERS = ("ddddocr", "general")
#: the recipe choice's candidates for the first model (the training's default less ddddocr)
LEARN_CANDIDATES = ("real", "general")
#: a pre-labelling reader whose round is accepted less often than this gives way to the next
STARTER_MIN_RATE = 0.03
#: the statuses that say "you are locked out": any response for 429, the page or form for 403
LOCKOUT_ANY = (429,)
LOCKOUT_DOCUMENT = (403, 429)
DOCUMENT_TYPES = ("document", "fetch", "xhr")


class LockedOut(SiteError):
    """The site showed a sign of locking this client out; learning stopped at once."""


@dataclass(frozen=True)
class LearnOptions:
    """How long to learn, how hard to press the site, where to keep things.

    ``training`` holds more :class:`~solver.training.train.TrainOptions` fields
    for every training (tests give a tiny ``config``); ``plan`` a
    :class:`~solver.training.recipes.RecipePlan`.
    """

    data: Path | None = None  # default: data/NAME
    models_dir: Path = Path("models")
    target: float = 0.95  # a round whose reading rate reaches this ends the run
    per_round: int = 200  # captchas each round reads
    label_budget: int | None = None  # the most submissions in all (every session of the run)
    time_budget_s: float | None = 30 * 60  # the whole run, every session counted
    rate: float = 1.0  # submissions per second, at most
    round_train_s: float = 5 * 60  # the most one training may take
    # while a model trains, the round's reader reads on: the training has the CPU, the
    # collection mostly waits on the rate limit, so the next training's labels come meanwhile
    collect_while_training: bool = True
    # a round below the target reads on past per_round for this long (None: 0 where the
    # collection goes on while training, else round_train_s; 0: never)
    read_on_s: float | None = None
    min_train_s: float = 45.0  # a training shorter than this is not worth starting
    start: str = "auto"  # auto | site | ddddocr | general | a model folder
    min_labels: int = 30  # the recipe choice needs this many labels
    # a starting reader's round reads on only until the dataset has this many labels: a first
    # model trained on them reads more than a starter that reads too little to end its round
    first_labels: int = 100
    # a run with more than one starting reader begins with a trial: each reads this many of the
    # first captchas, all of them reading every one and taking turns to submit, and the one the
    # site's verdicts say reads most right reads on (0: the first starter only, no trial)
    trial: int = 20
    restart: bool = False  # forget the run's state (the dataset stays)
    timeout_ms: float = 10_000
    headed: bool = False
    connect: str | None = None
    seed: int = 0
    training: Mapping[str, Any] = field(default_factory=dict)
    plan: Any = None

    def check(self) -> None:
        if not 0.0 < self.target <= 1.0:
            raise UsageError(f"--target {self.target}: give a share between 0 and 1, e.g. 0.95")
        if self.per_round < 1:
            raise UsageError(f"--per-round {self.per_round}: read at least 1 captcha a round")
        if not 0.0 < self.rate <= 50.0:
            raise UsageError(f"--rate {self.rate}: give 0.01 to 50 submissions a second "
                             "(the default, 1, is gentle on a site)")
        if self.label_budget is not None and self.label_budget < 1:
            raise UsageError(f"--label-budget {self.label_budget}: allow at least 1 submission")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise UsageError("--time-budget: give a positive number of minutes")
        if self.read_on_s is not None and self.read_on_s < 0:
            raise UsageError("--read-on-minutes: give 0 (each round reads --per-round captchas) "
                             "or a positive number of minutes")

    @property
    def interval_s(self) -> float:
        return 1.0 / self.rate

    @property
    def reading_on_s(self) -> float:
        """How long a round below the target reads on past ``per_round``: by default not at
        all where the reading goes on while the model trains, the better use of the time."""
        if self.read_on_s is not None:
            return self.read_on_s
        return 0.0 if self.collect_while_training else self.round_train_s


# ---------------------------------------------------------------------------------- the log


class CaptchaLog:
    """``captchas.jsonl``: one line per captcha seen, appended and synced before the next.

    A line cut short by a kill was never confirmed and is skipped on reading.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: list[dict[str, Any]] = list(self._read())

    def _read(self) -> Iterator[dict[str, Any]]:
        if not self.path.is_file():
            return
        data = self.path.read_bytes()
        for line in data[:data.rfind(b"\n") + 1].splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                logger.warning("%s: a damaged line is skipped", self.path)
                continue
            if isinstance(record, dict):
                yield record

    def append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
        with open(self.path, "ab") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        self.records.append(record)

    def of_round(self, number: int) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("round") == number]

    def submitted(self) -> int:
        return sum(r.get("outcome") in OUTCOMES for r in self.records)

    def known_wrong(self, root: Path) -> dict[Path, set[str]]:
        """The readings the site refused, by the resolved path of their image."""
        wrong: dict[Path, set[str]] = {}
        for record in self.records:
            if record.get("outcome") == "refused" and record.get("file"):
                wrong.setdefault((root / record["file"]).resolve(), set()).add(record["text"])
        return wrong


@dataclass
class RoundCounts:
    """What one round's captchas came to."""

    shown: int = 0
    submitted: int = 0
    accepted: int = 0
    refused: int = 0
    not_submitted: int = 0

    @classmethod
    def of(cls, records: list[dict[str, Any]]) -> RoundCounts:
        outcomes = Counter(r.get("outcome") for r in records)
        return cls(shown=len(records), submitted=sum(outcomes[verdict] for verdict in OUTCOMES),
                   accepted=outcomes["accepted"], refused=outcomes["refused"],
                   not_submitted=outcomes[LOGGED_NOT_SUBMITTED])

    @property
    def rate(self) -> float:
        """First-attempt success: accepted of the captchas shown (an unsubmitted one failed)."""
        return self.accepted / self.shown if self.shown else 0.0


# ---------------------------------------------------------------------------------- the state


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` through a synced temporary file and a rename."""
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


@dataclass
class LearnState:
    """Where a run stands: ``state.json``."""

    site: str
    phase: str = "collect"  # collect | train | done
    round: int = 1  # the round collecting or training now
    reader: str = "site"  # what reads this round's captchas (a prelabel spec)
    starters: list[str] = field(default_factory=list)  # pre-labelling readers still to try
    seconds: float = 0.0  # spent by the sessions before this one
    rounds: list[dict[str, Any]] = field(default_factory=list)
    stopped: str = ""  # why the last session ended
    started: str = field(default_factory=_now)
    version: int = STATE_VERSION

    @classmethod
    def load(cls, path: Path) -> LearnState | None:
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            known = {f.name for f in dataclasses.fields(cls)}
            return cls(**{key: value for key, value in data.items() if key in known})
        except (ValueError, TypeError) as error:
            raise SolverError(f"{path}: not a learning state ({error}); move it away, or run "
                              "with --restart to start the run afresh (the dataset stays)") from None

    def save(self, path: Path) -> None:
        write_json_atomically(path, dataclasses.asdict(self))


def label_budget_spent(options: LearnOptions) -> str:
    """Why a run stopped at its label budget: the same words between rounds or within one."""
    return f"the label budget ({options.label_budget} submissions) is spent"


def time_budget_spent(options: LearnOptions) -> str:
    return f"the time budget ({(options.time_budget_s or 0) / 60:g} min) is spent"


def next_action(state: LearnState, options: LearnOptions, labels: int, submitted: int,
                spent_s: float) -> tuple[str, str]:
    """What the run does next: ``("collect" | "train" | "stop", why)``. No side effects.

    ``labels``: the dataset's usable labels; ``submitted``: submissions in all;
    ``spent_s``: the run's time so far, every session counted.
    """
    if state.phase == "done":
        return "stop", state.stopped or "the run had ended"
    if options.label_budget is not None and submitted >= options.label_budget:
        return "stop", label_budget_spent(options)
    left = None if options.time_budget_s is None else options.time_budget_s - spent_s
    if left is not None and left <= 0:
        return "stop", time_budget_spent(options)
    if state.phase == "collect":
        return "collect", f"round {state.round}: read fresh captchas with {state.reader}"
    if labels < options.min_labels:
        return "collect", (f"{labels} labels are fewer than the {options.min_labels} training "
                           "needs: another round of collection first")
    if left is not None and left < options.min_train_s + collect_estimate_s(options):
        return "stop", "too little of the time budget is left to train and measure again"
    return "train", f"round {state.round}: train on {labels} labels"


def reads_on(counts: RoundCounts, options: LearnOptions) -> bool:
    """Whether a round that has read its ``per_round`` captchas reads on for more labels.

    It does while its rate is below the target (more verified labels are what it lacks)
    but not so low that the reader is reading next to nothing (a starter giving way).
    """
    return (options.reading_on_s > 0 and counts.shown >= options.per_round
            and STARTER_MIN_RATE <= counts.rate < options.target)


def read_on_until(options: LearnOptions, now: float, budget_end: float | None) -> float:
    """When a round that reads on stops (monotonic): ``reading_on_s`` from ``now``, and
    early enough that a full training and a round to measure it still fit the time budget."""
    until = now + options.reading_on_s
    if budget_end is not None:  # with a margin: a page's time varies, a training overruns a little
        until = min(until, budget_end - options.round_train_s - 1.5 * collect_estimate_s(options))
    return until


def collect_estimate_s(options: LearnOptions) -> float:
    """About how long a round of collection takes: the rate limit, and a page's own time."""
    return options.per_round * max(options.interval_s, 0.25)


def train_budget_s(options: LearnOptions, spent_s: float) -> float:
    """This round's training time: ``round_train_s``, less where the time budget ends sooner
    (a round of collection is left over, to measure what the training did)."""
    if options.time_budget_s is None:
        return options.round_train_s
    left = options.time_budget_s - spent_s - collect_estimate_s(options)
    return max(0.0, min(options.round_train_s, left))


def after_collection(state: LearnState, counts: RoundCounts, options: LearnOptions,
                     labels: int) -> str:
    """Update ``state`` once a round's collection is complete; returns a line for the report.

    The round's rate decides whether the target is reached; a pre-labelling
    reader that read almost nothing gives way to the next one.
    """
    state.rounds.append({"round": state.round, "reader": state.reader,
                         **dataclasses.asdict(counts), "rate": round(counts.rate, 4),
                         "labels": labels, "at": _now()})
    line = (f"round {state.round}: {state.reader} read {counts.accepted} of {counts.shown} fresh "
            f"captchas right ({counts.rate:.1%}, the site's verdicts); submitted "
            f"{counts.submitted}, refused {counts.refused}, not submitted {counts.not_submitted}; "
            f"{labels} labels in the dataset")
    # the target is the site's own model's: a starting reader that reads well still leaves
    # the site without a model of its own
    if state.reader == "site" and counts.shown >= options.per_round and counts.rate >= options.target:
        state.phase, state.stopped = "done", (f"round {state.round} read {counts.rate:.1%} of "
                                              f"fresh captchas (target {options.target:.0%})")
        return line
    if state.reader != "site" and labels < options.min_labels and \
            counts.rate < STARTER_MIN_RATE and state.starters:
        following = state.starters.pop(0)
        line += f"; {state.reader} reads too little of this site, {following} reads next"
        state.reader = following
    elif state.reader != "site" and labels < options.min_labels and counts.rate < STARTER_MIN_RATE:
        state.phase, state.stopped = "done", (
            f"no starting reader reads this site ({state.reader} read {counts.rate:.1%}); label "
            f"{options.min_labels} captchas by hand (`solver collect` then `solver label`) and "
            "run again")
        return line
    state.phase = "train"
    return line


# ---------------------------------------------------------------------------------- the site


class RateLimiter:
    """At most one event every ``interval_s`` seconds."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s, self.clock = interval_s, clock
        self.last: float | None = None

    def delay(self) -> float:
        """Seconds to wait before the next event."""
        if self.last is None:
            return 0.0
        return max(0.0, self.last + self.interval_s - self.clock())

    async def wait(self) -> None:
        pause = self.delay()
        if pause > 0:
            await asyncio.sleep(pause)
        self.last = self.clock()


class LockoutGuard:
    """Watches a page's responses for the statuses of a lock-out (429; 403 on the page or form)."""

    def __init__(self, page: Any) -> None:
        self.reason = ""
        self.event = asyncio.Event()
        self._page = page
        page.on("response", self._on_response)

    def _on_response(self, response: Any) -> None:
        status = response.status
        kind = response.request.resource_type
        if status in LOCKOUT_ANY or (status in LOCKOUT_DOCUMENT and kind in DOCUMENT_TYPES):
            self.trip(f"the site answered HTTP {status} to {response.url}")

    def trip(self, reason: str) -> None:
        if not self.reason:
            self.reason = reason
            self.event.set()

    def check(self) -> None:
        if self.reason:
            raise LockedOut(f"{self.reason}: stopped at once (the site may be limiting this "
                            "client; wait before trying again, lower --rate)")


@dataclass
class _Round:
    """One round's collection, in progress."""

    number: int
    count: int  # captchas still to read
    deadline: float | None  # monotonic time at which the time budget ends
    submissions_left: int | None
    read_on_until: float | None = None  # set when the round reads on past its count
    # a starting reader's round: it reads on only until it has accepted this many
    enough_accepted: int | None = None
    stop: threading.Event | None = None  # set: read no further captcha (the training is done)
    tags: dict[str, Any] = field(default_factory=dict)  # more keys for its log lines

    def wants_more(self, read: int, log: CaptchaLog, options: LearnOptions,
                   report: Callable[[str], None]) -> bool:
        """Whether the round reads another captcha after ``read`` of them: its count, then,
        decided once at the count (see the module's doc), for as long as it reads on, and
        a starting reader's round until it has the labels for a first model."""
        if self.stop is not None and self.stop.is_set():
            return False
        if read < self.count:
            return True
        if read > self.count and self.read_on_until is None:
            return False  # it did not read on (the log is counted only where it may matter)
        so_far = RoundCounts.of(log.of_round(self.number))
        if self.enough_accepted is not None and so_far.accepted >= self.enough_accepted:
            return False
        if read == self.count:
            budget_left = self.submissions_left is None or self.submissions_left > 0
            if budget_left and reads_on(so_far, options):
                self.read_on_until = read_on_until(options, time.monotonic(), self.deadline)
                minutes = (self.read_on_until - time.monotonic()) / 60
                if minutes > 0:
                    report(f"round {self.number}: {so_far.rate:.1%} of {so_far.shown} read "
                           f"right, below the target: reading on for {minutes:.1f} min, for "
                           "more labels" + ("" if self.enough_accepted is None else
                                            f", or until {self.enough_accepted} are read right "
                                            "(then a first model trains)"))
        return self.read_on_until is not None and time.monotonic() < self.read_on_until


async def _read_round(profile: SiteProfile, store: DatasetStore, reader: Reader[TextReading],
                      log: CaptchaLog,
                      work: _Round, options: LearnOptions, limiter: RateLimiter,
                      report: Callable[[str], None]) -> str:
    """Read and submit ``work.count`` captchas; returns why it stopped early, or ""."""
    from playwright.async_api import async_playwright

    from solver.capture import ResponseRecorder, grab_steps
    from solver.collect import open_browser
    from solver.page import next_captcha_steps, open_steps, refresh_steps, send_steps, verdict_steps
    from solver.steps import Offload, run_async

    fmt = profile.format
    async with async_playwright() as playwright:
        browser = await open_browser(playwright, options.connect, headed=options.headed)
        try:
            context = await browser.new_context()
            page = await context.new_page()
            guard = LockoutGuard(page)
            recorder = ResponseRecorder(page)
            shown, tried = None, None
            read = 0
            while work.wants_more(read, log, options, report):
                read += 1
                if work.deadline is not None and time.monotonic() >= work.deadline:
                    return time_budget_spent(options)
                if work.submissions_left is not None and work.submissions_left <= 0:
                    return label_budget_spent(options)
                guard.check()
                try:
                    if shown is None:
                        shown = await run_async(open_steps(page, profile, None, options.timeout_ms))
                    elif tried is not None:
                        shown = await run_async(next_captcha_steps(page, profile, tried,
                                                                   options.timeout_ms))
                    else:
                        shown = await run_async(refresh_steps(page, profile, shown,
                                                              options.timeout_ms))
                    tried = None
                    data = (await run_async(grab_steps(page, shown.element,
                                                       profile.captcha.capture, recorder))).data
                except Exception as error:  # ours, and Playwright's (a closed page, a timeout)
                    guard.check()  # a 429 is the better reason
                    first = str(error).splitlines()[0] if str(error) else type(error).__name__
                    raise LockedOut(f"the page stopped showing the captcha ({first}): stopped at "
                                    "once (a site that locks clients out often hides it)") from None
                # in a worker thread, as SolverCore reads: the page's events go on meanwhile
                reading = await Offload(reader.read, (data,)).run_async()
                text = fmt.normalise(reading.text) if reading.text else ""
                confidence = None if reading.confidence is None else round(float(reading.confidence), 4)
                record = {"round": work.number, "text": text, "confidence": confidence,
                          "reader": getattr(reader, "description", "site"), "at": _now(),
                          **getattr(reader, "notes", {}), **work.tags}
                if not text or fmt.label_problem(text) is not None:
                    added = store.add(data, source="learn")
                    log.append({**record, "file": added.entry.file, "outcome": LOGGED_NOT_SUBMITTED})
                    continue
                await limiter.wait()
                guard.check()
                outcome = await _submit(page, profile, text, options, guard, send_steps,
                                        verdict_steps, run_async)
                if work.submissions_left is not None:
                    work.submissions_left -= 1
                tried = shown.fingerprint
                if outcome == "accepted":
                    added = store.add(data, text, source="site", verified=True)
                else:
                    added = store.add(data, source="learn")
                log.append({**record, "file": added.entry.file, "outcome": outcome})
                if outcome == "unknown":
                    raise LockedOut(
                        f"{page.url}: after submitting, the page showed neither form.success "
                        f"{profile.form.success!r} nor form.failure {profile.form.failure!r} "
                        "(a message the profile does not know: a lock-out, or a changed page): "
                        "stopped at once; check the page, and the profile's form section")
                if profile.form.success_url and outcome == "accepted":
                    shown, tried = None, None  # the site went elsewhere: start again
            return ""
        finally:
            await browser.close()


async def _submit(page: Any, profile: SiteProfile, text: str, options: LearnOptions,
                  guard: LockoutGuard, send_steps: Any, verdict_steps: Any, run_async: Any) -> Verdict:
    """Submit ``text`` and wait for the verdict, or for a lock-out status, whichever comes first."""
    async def submit() -> Verdict:
        await run_async(send_steps(page, profile, text, options.timeout_ms))
        verdict: Verdict = await run_async(verdict_steps(page, profile, options.timeout_ms))
        return verdict

    task = asyncio.ensure_future(submit())
    locked = asyncio.ensure_future(guard.event.wait())
    try:
        await asyncio.wait({task, locked}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        locked.cancel()
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        guard.check()
    try:
        return task.result()
    except SolverError as error:  # the form's input or button went away
        guard.check()
        raise LockedOut(f"the form could not be used ({error}): stopped at once") from None


class CollectionWhileTraining:
    """The round's reader reads on, in a thread of its own, while the next model trains.

    On 2 cores a training takes the CPU for minutes while a collection mostly waits on the
    rate limit and the page, so the two share the time well: the labels the next training
    needs come in meanwhile. Its log lines belong to the round that was read (the same
    reader), marked ``while_training``; :meth:`finish` stops it after the captcha in hand
    and gives what stopped it early ("" where nothing did), or raises what it raised
    (a :class:`LockedOut`), once the training is done.
    """

    def __init__(self, profile: SiteProfile, store: DatasetStore, reader: Reader[TextReading],
                 log: CaptchaLog, work: _Round, options: LearnOptions, limiter: RateLimiter,
                 report: Callable[[str], None]) -> None:
        self.stop = threading.Event()
        self.work = dataclasses.replace(work, stop=self.stop,
                                        tags={**work.tags, "while_training": True})
        self.log, self.report = log, report
        self.stopped: str = ""
        self.error: BaseException | None = None

        def run() -> None:
            try:
                self.stopped = asyncio.run(_read_round(profile, store, reader, log, self.work,
                                                       options, limiter, self._said))
            except BaseException as error:  # re-raised by finish, in the run's own thread
                self.error = error
                if isinstance(error, LockedOut):
                    report(f"  while training: {error}; no more submissions (the training "
                           "finishes, then the run stops)")

        self.thread = threading.Thread(target=run, name="solver-learn-collect", daemon=True)
        self.thread.start()

    def _said(self, line: str) -> None:
        self.report(f"  while training: {line}")

    def counts(self) -> RoundCounts:
        return RoundCounts.of([record for record in self.log.of_round(self.work.number)
                               if record.get("while_training")])

    def finish(self) -> str:
        self.stop.set()
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.stopped


def _collect_while_training(state: LearnState, profile: SiteProfile, store: DatasetStore,
                            log: CaptchaLog, options: LearnOptions, limiter: RateLimiter,
                            report: Callable[[str], None],
                            spent_s: float) -> CollectionWhileTraining | None:
    """The round's reader reading on while the model trains, or None: switched off, a run
    that trains first on hand labels (no reader yet), or no budget left for submissions."""
    if not options.collect_while_training:
        return None
    if state.reader == "site" and site_model(profile, options.models_dir) is None:
        return None
    submissions_left = (None if options.label_budget is None
                        else options.label_budget - log.submitted())
    if submissions_left is not None and submissions_left <= 0:
        return None
    deadline = (None if options.time_budget_s is None
                else time.monotonic() + options.time_budget_s - spent_s)
    reader = _open_reader(state.reader, profile, options)
    work = _Round(state.round, 10**9, deadline, submissions_left)
    report(f"  {state.reader} reads on while the model trains")
    return CollectionWhileTraining(profile, store, reader, log, work, options, limiter, report)


def _run_in_own_loop(coroutine_factory: Callable[[], Any]) -> Any:
    """Run a coroutine to completion, in a thread of its own where a loop already runs here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine_factory())
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="solver-learn") as pool:
        return pool.submit(lambda: asyncio.run(coroutine_factory())).result()


# ---------------------------------------------------------------------------------- the run


@dataclass
class LearnSummary:
    """What a run did, all sessions together."""

    stopped: str
    rounds: list[dict[str, Any]]
    submitted: int
    outcomes: dict[str, int]
    labels: int
    seconds: float
    model_dir: Path
    locked_out: bool = False
    interrupted: bool = False
    target_reached: bool = False
    partial: dict[str, Any] | None = None  # the round whose collection did not finish
    rate: float = 1.0  # the submissions' rate limit, per second

    def lines(self) -> list[str]:
        out = [f"stopped: {self.stopped}"]
        for record in self.rounds:
            out.append(f"  round {record['round']} ({record['reader']}): {record['rate']:.1%} of "
                       f"{record['shown']} read right, {record['labels']} labels after it")
        if self.partial:
            out.append(f"  round {self.partial['round']} ({self.partial['reader']}, not finished): "
                       f"{self.partial['rate']:.1%} of {self.partial['shown']} read right")
        out.append(f"submitted {self.submitted} answers to the site in all: "
                   + ", ".join(f"{name} {count}" for name, count in sorted(self.outcomes.items()))
                   + f" (at most {self.rate:g} a second); {self.labels} labels in the dataset; "
                   f"{self.seconds / 60:.1f} min")
        out.append(f"model: {self.model_dir}")
        return out


class StarterTrial:
    """The starting readers take turns on a run's first captchas; the site's verdicts choose.

    Every starter reads each of the first ``per_reader * len(readers)`` captchas of
    round ``number``, and the one whose turn it is gives the answer submitted; the log
    line keeps all their readings (``trial``). A starter is right on a captcha where
    its reading is the answer the site accepted, whoever's turn it was, so every
    verdict counts for each reader that agreed. After the trial the one right most
    often reads on (a tie goes to the earlier in ``STARTERS``). All of it is worked out
    from the log, so a run that stops mid-trial resumes it.
    """

    def __init__(self, readers: Mapping[str, PrelabelReader], log: CaptchaLog, number: int,
                 per_reader: int, normalise: Callable[[str], str] = str,
                 report: Callable[[str], None] | None = None) -> None:
        self.readers = dict(readers)
        self.log, self.number, self.normalise = log, number, normalise
        self.count = per_reader * len(self.readers)
        self.used = next(iter(self.readers))
        self.notes: dict[str, Any] = {}
        self.report = report
        self.announced = False  # whether the outcome has been reported

    @property
    def description(self) -> str:
        return self.readers[self.used].description

    def _trial_records(self) -> list[dict[str, Any]]:
        return [r for r in self.log.of_round(self.number) if isinstance(r.get("trial"), dict)]

    def scores(self) -> dict[str, int]:
        """Each starter's readings of the trial that the site accepted."""
        right = dict.fromkeys(self.readers, 0)
        for record in self._trial_records():
            if record.get("outcome") == "accepted":
                for name, text in record["trial"].items():
                    if name in right and text == record.get("text"):
                        right[name] += 1
        return right

    def done(self) -> bool:
        return len(self._trial_records()) >= self.count

    def winner(self) -> str:
        scores = self.scores()
        return max(self.readers, key=lambda name: scores[name])  # the first of equals

    def read(self, image: bytes) -> Proposal:
        held = len(self._trial_records())
        if held >= self.count:
            self.used, self.notes = self.winner(), {}
            self.announce()
            return self.readers[self.used].read(image)
        readings = {name: reader.read(image) for name, reader in self.readers.items()}
        self.used = list(self.readers)[held % len(self.readers)]
        self.notes = {"trial": {name: self.normalise(p.text) if p.text else ""
                                for name, p in readings.items()}}
        return readings[self.used]

    def read_batch(self, images: Sequence[bytes]) -> list[Proposal]:
        return [self.read(image) for image in images]

    def announce(self) -> None:
        """Report the trial's outcome, once, as soon as it is known."""
        if self.announced or self.report is None:
            return
        self.announced = True
        scores = self.scores()
        self.report(f"round {self.number}: starters' trial over {len(self._trial_records())} "
                    "captchas: " + ", ".join(f"{name} {right} right"
                                             for name, right in scores.items())
                    + f"; {self.winner()} reads on")


def _open_reader(spec: str, profile: SiteProfile, options: LearnOptions) -> PrelabelReader:
    from solver.prelabel import open_reader

    return open_reader(spec, profile, options.models_dir)


def site_model(profile: SiteProfile, models_dir: Path) -> Path | None:
    """The site's own model when there is one that fits the profile (the user's, else a shipped one)."""
    from solver.artifacts import METADATA_FILE, ModelError
    from solver.recognizers import Recognizer

    for folder in dict.fromkeys((models_dir / profile.name, find_model(profile.name, models_dir))):
        if not (folder / METADATA_FILE).is_file():
            continue
        try:
            Recognizer(folder, profile)
        except ModelError as error:
            logger.warning("%s does not fit %s (%s): learning starts elsewhere", folder,
                           profile.name, error)
            continue
        return folder
    return None


def _first_state(profile: SiteProfile, options: LearnOptions, labels: int) -> LearnState:
    """Where a new run starts: the site's model, hand labels, ddddocr or the general model."""
    from solver.prelabel import ddddocr_installed

    state = LearnState(site=profile.name)
    if options.start not in ("auto",):
        state.reader = options.start
        return state
    if site_model(profile, options.models_dir) is not None:
        state.reader = "site"
    elif labels >= options.min_labels:
        state.reader, state.phase, state.round = "site", "train", 0  # train on them first
    else:
        starters = [name for name in STARTERS
                    if name != "ddddocr" or ddddocr_installed()]
        starters = [name for name in starters
                    if name != "general" or find_model("general", options.models_dir).is_dir()]
        if not starters:
            raise UsageError(f"{profile.name} has no model, the dataset has {labels} labels and "
                             f"neither ddddocr nor {options.models_dir / 'general'} is there to "
                             "start from: install ddddocr (pip install ddddocr), or label "
                             f"{options.min_labels} captchas by hand (`solver label`)")
        state.reader, state.starters = starters[0], starters[1:]
    return state


def _labels(store: DatasetStore) -> int:
    return len(store.samples())


def choose_reader(reader: str, reader_rate: float | None, model_accuracy: float) -> str:
    """Who reads the next round: the new model, unless a starting reader read the last round's
    fresh captchas better than the model reads the held-out labels (a first model trained on a
    few labels can read less than the reader that gave them)."""
    if reader == "site" or reader_rate is None or model_accuracy >= reader_rate:
        return "site"
    return reader


def verdicts_of(records: Sequence[dict[str, Any]]) -> list[tuple[float, bool]]:
    """A round's readings as (confidence, right by the site's verdict); a reading that did not
    fit the profile was wrong, an answer with no clear verdict tells nothing."""
    return [(float(r["confidence"]), r.get("outcome") == "accepted") for r in records
            if r.get("confidence") is not None
            and r.get("outcome") in ("accepted", "refused", LOGGED_NOT_SUBMITTED)]


def _train(profile: SiteProfile, store: DatasetStore, log: CaptchaLog, options: LearnOptions,
           budget_s: float, report: Callable[[str], None],
           from_site_model: bool = True, round_number: int | None = None) -> dict[str, Any]:
    """One training, refused readings kept out of the pseudo-labels. From the site's model so
    far when ``from_site_model`` and there is one: it trains on in one schedule, its
    pseudo-labels' threshold set by its verdicts in round ``round_number``, which it read;
    else the recipe choice on the dataset."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from solver.training.recipes import auto_train
    from solver.training.train import TrainOptions

    model_dir = options.models_dir / profile.name  # where training writes
    start = site_model(profile, options.models_dir) if from_site_model else None
    continuing = start is not None
    if continuing:
        # the site's model so far is the start ("general" is the recipe that starts from a model)
        candidates: tuple[str, ...] = ("general",)
        report(f"  training from {start}, the model so far, for {budget_s / 60:.1f} min")
    else:
        # not ddddocr as a teacher: where it started, the verified labels are the captchas it
        # read right, so its readings of them would say it is always right
        candidates, start = LEARN_CANDIDATES, find_model("general", options.models_dir)
        report(f"  training a first model (from scratch, and from {start}) for "
               f"{budget_s / 60:.1f} min")
    train_options = TrainOptions(profile, data=[store.root], out=model_dir, time_budget_s=budget_s,
                                 **{"seed": options.seed, **dict(options.training)})
    began = time.monotonic()
    verdicts = verdicts_of(log.of_round(round_number)) if continuing and round_number else []
    result = auto_train(train_options, report=lambda line: report(f"    {line}"),
                        candidates=candidates, general=start,
                        known_wrong=log.known_wrong(store.root), continuing=continuing,
                        verdicts=verdicts,
                        **({"plan": options.plan} if options.plan is not None else {}))
    return {"held_out_accuracy": round(result.best_accuracy, 4),
            "seconds": round(time.monotonic() - began, 1)}


def learn(profile: SiteProfile, options: LearnOptions,
          report: Callable[[str], None] = print) -> LearnSummary:
    """Learn ``profile``'s captcha from its site (see the module's doc); resumes a stopped run."""
    options.check()
    form = profile.form
    if not (form.success or form.success_url) or not form.failure:
        raise UsageError(f"{profile.name}: solver learn takes the site's verdicts as labels, so the "
                         "profile must say what success looks like (form.success or "
                         "form.success_url) and what a refusal looks like (form.failure)")
    fmt = profile.format
    store = DatasetStore(options.data or Path("data") / profile.name, fmt.charset, fmt.length,
                         fmt.case_sensitive)
    folder = store.root / "learn"
    folder.mkdir(parents=True, exist_ok=True)
    state_path = folder / STATE_FILE
    log = CaptchaLog(folder / LOG_FILE)
    state = None if options.restart else LearnState.load(state_path)
    if state is not None and state.site != profile.name:
        raise UsageError(f"{state_path} is a run for {state.site}, not {profile.name}: give "
                         "another --data folder, or --restart")
    if state is None:
        state = _first_state(profile, options, _labels(store))
        state.save(state_path)
        report(f"learning {profile.name} from its site: {_labels(store)} labels in {store.root}; "
               f"starting with {state.reader if state.phase == 'collect' else 'those labels'}")
    elif state.phase == "done":
        report(f"{profile.name}: the run in {folder} has ended ({state.stopped}); --restart "
               "starts a new one (the dataset and its labels stay)")
    else:
        report(f"resuming {profile.name}: round {state.round} ({state.phase}), "
               f"{log.submitted()} answers submitted and {_labels(store)} labels so far, "
               f"{state.seconds / 60:.1f} min spent before")
    session_started = time.monotonic()
    limiter = RateLimiter(options.interval_s)
    outcome = {"locked_out": False, "interrupted": False}

    def spent() -> float:
        return state.seconds + time.monotonic() - session_started

    try:
        while True:
            action, why = next_action(state, options, _labels(store), log.submitted(), spent())
            if action == "stop":
                state.stopped = why
                break
            if action == "collect" and state.phase == "train":  # too few labels: collect again
                report(f"  {why}")
                state.round, state.phase = state.round + 1, "collect"
                state.save(state_path)
                continue
            if action == "train":
                budget = train_budget_s(options, spent())
                side = _collect_while_training(state, profile, store, log, options, limiter,
                                               report, spent())
                try:
                    result = _train(profile, store, log, options, budget, report,
                                    from_site_model=state.reader == "site",
                                    round_number=state.round)
                finally:
                    side_stopped, side_error = "", None
                    if side is not None:
                        try:
                            side_stopped = side.finish()
                        except LockedOut as error:
                            side_error = error
                last = state.rounds[-1] if state.rounds and state.rounds[-1]["round"] == state.round \
                    else None
                if last is not None:
                    last["training"] = result
                report(f"round {state.round}: trained in {result['seconds'] / 60:.1f} min, "
                       f"{result['held_out_accuracy']:.1%} of the held-out labels read right")
                if side is not None:
                    counts = side.counts()
                    if last is not None:
                        last["while_training"] = {**dataclasses.asdict(counts),
                                                  "rate": round(counts.rate, 4)}
                    report(f"  while it trained, {state.reader} read {counts.accepted} of "
                           f"{counts.shown} more captchas right ({counts.rate:.1%}); "
                           f"{_labels(store)} labels in the dataset"
                           + (f" ({side_stopped})" if side_stopped else ""))
                    state.save(state_path)
                if side_error is not None:
                    raise side_error
                state.reader = choose_reader(state.reader, last["rate"] if last else None,
                                             result["held_out_accuracy"])
                if state.reader != "site":
                    report(f"  {state.reader} read {last['rate']:.1%} of fresh captchas, more than "  # type: ignore[index]
                           f"the model reads of the held-out labels: {state.reader} reads the next "
                           "round too, and the model trains on with its labels")
                state.round, state.phase = state.round + 1, "collect"
                state.save(state_path)
                continue
            done = RoundCounts.of(log.of_round(state.round))
            left = options.per_round - done.shown
            if left > 0:
                trial = None
                if state.reader != "site" and state.starters and options.trial > 0:
                    trial = StarterTrial({name: _open_reader(name, profile, options)
                                          for name in (state.reader, *state.starters)},
                                         log, state.round, options.trial, fmt.normalise,
                                         report)
                    if not done.shown:
                        report(f"round {state.round}: {', '.join(trial.readers)} take turns on "
                               f"the first {trial.count} captchas; the site's verdicts choose "
                               "which reads on")
                reader = trial or _open_reader(state.reader, profile, options)
                budget_end = (None if options.time_budget_s is None else
                              time.monotonic() + options.time_budget_s - spent())
                work = _Round(state.round, left, budget_end,
                              None if options.label_budget is None
                              else options.label_budget - log.submitted())
                if state.reader != "site":  # a starter: on to a first model as soon as it can
                    work.enough_accepted = options.first_labels - _labels(store) + done.accepted
                early = _run_in_own_loop(lambda: _read_round(profile, store, reader, log, work,
                                                             options, limiter, report))
                if trial is not None and trial.done():  # else a resumed run goes on with it
                    trial.announce()  # where the round ended with the trial's last captcha
                    state.reader, state.starters = trial.winner(), []
                if early:
                    counts = RoundCounts.of(log.of_round(state.round))
                    report(f"round {state.round}: {early} after {counts.shown} captchas "
                           f"({counts.rate:.1%} read right so far)")
                    state.stopped = early
                    break
            line = after_collection(state, RoundCounts.of(log.of_round(state.round)), options,
                                    _labels(store))
            report(line)
            state.save(state_path)
    except LockedOut as error:
        outcome["locked_out"] = True
        state.stopped = f"locked out: {error}"
        report(f"round {state.round}: {state.stopped}")
    except KeyboardInterrupt:
        outcome["interrupted"] = True
        state.stopped = "interrupted (Ctrl-C); run the same command again to resume"
        report(state.stopped)
    finally:
        state.seconds = spent()  # a budget or a lock-out stays resumable: the phase is kept
        state.save(state_path)
    outcomes = Counter(r.get("outcome", "") for r in log.records)
    summary = LearnSummary(
        stopped=state.stopped, rounds=list(state.rounds), submitted=log.submitted(),
        outcomes={name: count for name, count in outcomes.items() if name},
        labels=_labels(store), seconds=state.seconds, model_dir=options.models_dir / profile.name,
        locked_out=outcome["locked_out"], interrupted=outcome["interrupted"],
        target_reached=state.phase == "done" and bool(state.rounds)
        and state.rounds[-1]["rate"] >= options.target, rate=options.rate)
    partial = RoundCounts.of(log.of_round(state.round))
    if state.phase == "collect" and partial.shown:
        summary.partial = {"round": state.round, "reader": state.reader,
                           **dataclasses.asdict(partial), "rate": round(partial.rate, 4)}
    return summary
