"""`solver learn`'s round logic without a browser: what comes next, the log, the state, the
rate limit, refused readings kept out of the pseudo-labels, and the local site's lock-out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from solver.demo_site import CaptchaSite, SiteServer
from solver.errors import UsageError
from solver.learn import (CaptchaLog, LearnOptions, LearnState, RateLimiter, RoundCounts,
                          after_collection, next_action, read_on_until, reads_on, train_budget_s)


def counts(accepted: int, refused: int = 0, not_submitted: int = 0) -> RoundCounts:
    return RoundCounts(shown=accepted + refused + not_submitted,
                       submitted=accepted + refused, accepted=accepted, refused=refused,
                       not_submitted=not_submitted)


# reading on before a training: the policy where the reading does not go on while it trains
OPTIONS = LearnOptions(per_round=100, time_budget_s=1800, rate=2.0, collect_while_training=False)


def test_the_next_step_follows_the_phase_and_stops_at_each_budget() -> None:
    state = LearnState(site="s", reader="ddddocr")
    assert next_action(state, OPTIONS, labels=0, submitted=0, spent_s=0)[0] == "collect"
    state.phase = "train"
    assert next_action(state, OPTIONS, labels=50, submitted=90, spent_s=60)[0] == "train"
    action, why = next_action(state, OPTIONS, labels=10, submitted=90, spent_s=60)
    assert action == "collect" and "10 labels are fewer than the 30" in why
    budget = LearnOptions(per_round=100, label_budget=90)
    assert next_action(state, budget, 50, 90, 0) == (
        "stop", "the label budget (90 submissions) is spent")
    assert next_action(state, OPTIONS, 50, 90, 1800) == (
        "stop", "the time budget (30 min) is spent")
    # 50 s left: not enough to train (45 s at least) and measure (100 captchas at 2/s)
    assert next_action(state, OPTIONS, 50, 90, 1750)[0] == "stop"
    state.phase, state.stopped = "done", "target reached"
    assert next_action(state, OPTIONS, 50, 90, 0) == ("stop", "target reached")


def test_training_leaves_time_to_measure_what_it_did() -> None:
    options = LearnOptions(per_round=100, rate=1.0, time_budget_s=1000, round_train_s=300)
    assert train_budget_s(options, spent_s=0) == 300
    assert train_budget_s(options, spent_s=700) == pytest.approx(200)  # 100 s for 100 captchas
    assert train_budget_s(LearnOptions(time_budget_s=None, round_train_s=60), 10**6) == 60


def test_a_round_that_reaches_the_target_ends_the_run_else_it_trains() -> None:
    state = LearnState(site="s", reader="site")
    line = after_collection(state, counts(96, 4), OPTIONS, labels=400)
    assert state.phase == "done" and "round 1 read 96.0%" in state.stopped
    assert line.startswith("round 1: site read 96 of 100 fresh captchas right (96.0%")
    assert state.rounds[-1]["rate"] == 0.96 and state.rounds[-1]["labels"] == 400
    state = LearnState(site="s", reader="site")
    after_collection(state, counts(80, 20), OPTIONS, labels=400)
    assert state.phase == "train"
    short = LearnState(site="s", reader="site")  # a round cut short never claims the target
    after_collection(short, counts(10), OPTIONS, labels=400)
    assert short.phase == "train"


def test_a_round_below_the_target_reads_on_for_labels_but_not_a_reader_that_reads_nothing() -> None:
    assert reads_on(counts(60, 40), OPTIONS)  # 60%: more verified labels are what it lacks
    assert not reads_on(counts(96, 4), OPTIONS)  # at the target: the round measures, no more
    assert not reads_on(counts(1, 99), OPTIONS)  # 1%: the reader gives way instead
    assert not reads_on(counts(30, 20), OPTIONS)  # 50 of 100: the round has not read its share
    assert not reads_on(counts(60, 40), LearnOptions(per_round=100, read_on_s=0))
    # not at all by default: the reading goes on while the model trains, which is better use
    # of the time; without that, as long as a training, and never into the time a training
    # and a measure need
    assert LearnOptions(round_train_s=300).reading_on_s == 0
    assert LearnOptions(round_train_s=300, read_on_s=60).reading_on_s == 60
    options = LearnOptions(per_round=100, rate=1.0, round_train_s=300, collect_while_training=False)
    assert options.reading_on_s == 300
    assert read_on_until(options, now=1000.0, budget_end=None) == 1300.0
    assert read_on_until(options, now=1000.0, budget_end=2000.0) == 1300.0
    assert read_on_until(options, now=1000.0, budget_end=1500.0) == pytest.approx(1050.0)
    assert read_on_until(options, now=1000.0, budget_end=1300.0) < 1000.0  # none at all


def test_a_starter_that_reads_well_neither_ends_the_run_nor_gives_way_to_a_weaker_model() -> None:
    from solver.learn import choose_reader

    state = LearnState(site="s", reader="ddddocr", starters=["general"])
    after_collection(state, counts(97, 3), OPTIONS, labels=97)
    assert state.phase == "train"  # the site has no model of its own yet
    assert choose_reader("ddddocr", 0.97, model_accuracy=0.40) == "ddddocr"
    assert choose_reader("ddddocr", 0.97, model_accuracy=0.98) == "site"
    assert choose_reader("site", 0.97, model_accuracy=0.10) == "site"  # its own, however weak
    assert choose_reader("ddddocr", None, model_accuracy=0.10) == "site"  # hand labels' start


def test_a_starter_that_reads_almost_nothing_gives_way_to_the_next() -> None:
    state = LearnState(site="s", reader="ddddocr", starters=["general"])
    line = after_collection(state, counts(1, 99), OPTIONS, labels=1)
    assert state.reader == "general" and state.starters == [] and state.phase == "train"
    assert "ddddocr reads too little of this site, general reads next" in line
    after_collection(state, counts(0, 100), OPTIONS, labels=1)
    assert state.phase == "done" and "no starting reader reads this site" in state.stopped
    assert "label 30 captchas by hand" in state.stopped
    # one that reads enough stays, as does the site's own model however weak
    kept = LearnState(site="s", reader="ddddocr", starters=["general"])
    after_collection(kept, counts(20, 80), OPTIONS, labels=20)
    assert kept.reader == "ddddocr"
    own = LearnState(site="s", reader="site")
    after_collection(own, counts(0, 100), OPTIONS, labels=1)
    assert own.phase == "train" and own.reader == "site"


def test_the_log_keeps_every_confirmed_line_and_the_refused_readings(tmp_path: Path) -> None:
    log = CaptchaLog(tmp_path / "captchas.jsonl")
    log.append({"round": 1, "file": "a.png", "text": "12", "outcome": "accepted"})
    log.append({"round": 1, "file": "b.png", "text": "33", "outcome": "refused"})
    log.append({"round": 2, "file": "b.png", "text": "31", "outcome": "refused"})
    log.append({"round": 2, "file": "c.png", "text": "", "outcome": "not-submitted"})
    with open(tmp_path / "captchas.jsonl", "ab") as handle:
        handle.write(b'{"round": 2, "file": "d.png", "outc')  # a kill mid-line
    again = CaptchaLog(tmp_path / "captchas.jsonl")
    assert len(again.records) == 4 and again.submitted() == 3
    assert RoundCounts.of(again.of_round(2)) == RoundCounts(shown=2, submitted=1, accepted=0,
                                                           refused=1, not_submitted=1)
    assert again.known_wrong(tmp_path) == {(tmp_path / "b.png").resolve(): {"33", "31"}}


def test_a_starters_round_reads_on_only_until_a_first_model_has_its_labels(tmp_path: Path) -> None:
    from solver.learn import _Round

    log, lines = CaptchaLog(tmp_path / "captchas.jsonl"), []
    options = LearnOptions(per_round=4, read_on_s=60)
    for outcome in ("accepted", "refused", "refused", "refused"):
        log.append({"round": 1, "file": "a.png", "text": "12", "outcome": outcome})
    starter, model = _Round(1, 4, None, None, enough_accepted=3), _Round(1, 4, None, None)
    assert starter.wants_more(3, log, options, lines.append)  # its count first
    assert starter.wants_more(4, log, options, lines.append)  # 25%: it reads on
    assert lines[-1].endswith("or until 3 are read right (then a first model trains)")
    assert model.wants_more(4, log, options, lines.append)
    for _ in range(2):
        log.append({"round": 1, "file": "a.png", "text": "12", "outcome": "accepted"})
    assert not starter.wants_more(6, log, options, lines.append)  # enough for a first model
    assert model.wants_more(6, log, options, lines.append)  # the site's model reads on, for labels


def test_a_rounds_verdicts_are_its_readings_right_or_wrong() -> None:
    from solver.learn import verdicts_of

    records = [{"confidence": 0.97, "outcome": "accepted"}, {"confidence": 0.6, "outcome": "refused"},
               {"confidence": 0.3, "outcome": "not-submitted"},  # a reading that did not fit
               {"confidence": 0.9, "outcome": "unknown"},  # no clear verdict: tells nothing
               {"confidence": None, "outcome": "refused"}]
    assert verdicts_of(records) == [(0.97, True), (0.6, False), (0.3, False)]


def test_the_state_is_written_whole_and_read_back(tmp_path: Path) -> None:
    state = LearnState(site="s", phase="train", round=3, reader="site", seconds=12.5,
                       rounds=[{"round": 2, "rate": 0.5}])
    state.save(tmp_path / "state.json")
    assert not list(tmp_path.glob(".*.tmp"))
    assert LearnState.load(tmp_path / "state.json") == state
    assert LearnState.load(tmp_path / "missing.json") is None
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(Exception, match="run with --restart"):
        LearnState.load(tmp_path / "bad.json")


def test_the_rate_limit_spaces_submissions() -> None:
    now = [100.0]
    limiter = RateLimiter(0.5, clock=lambda: now[0])
    assert limiter.delay() == 0.0
    limiter.last = 100.0
    now[0] = 100.2
    assert limiter.delay() == pytest.approx(0.3)
    now[0] = 101.0
    assert limiter.delay() == 0.0


@pytest.mark.parametrize("options, message", [
    (LearnOptions(target=1.5), "--target 1.5: give a share between 0 and 1"),
    (LearnOptions(rate=0), "--rate 0: give 0.01 to 50 submissions a second"),
    (LearnOptions(per_round=0), "--per-round 0: read at least 1 captcha a round"),
    (LearnOptions(label_budget=0), "--label-budget 0: allow at least 1 submission"),
    (LearnOptions(read_on_s=-1), "--read-on-minutes: give 0"),
])
def test_options_are_checked_with_the_fix(options: LearnOptions, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        options.check()


def test_refused_readings_never_become_that_images_pseudo_label(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pair_profile_path: Path) -> None:
    from solver.profiles import load_profile
    from solver.training import recipes
    from solver.training.train import TrainOptions

    paths = [tmp_path / f"{index}.png" for index in range(3)]
    monkeypatch.setattr(recipes, "read_with_warps", lambda *args: recipes.Readings(
        paths, ["12", "30", "01"], [0.99, 0.99, 0.99], [True, True, True]))
    options = TrainOptions(load_profile(pair_profile_path))
    wrong = {paths[1].resolve(): {"30"}, paths[2].resolve(): {"11"}}
    guessed = recipes.pseudo_labels(tmp_path, options, paths, 0.5, seed=1, known_wrong=wrong)
    assert [(s.path, s.label) for s in guessed] == [(paths[0], "12"), (paths[2], "01")]
    assert len(recipes.pseudo_labels(tmp_path, options, paths, 0.5, seed=1)) == 3


def test_the_local_site_locks_a_session_out_after_n_submissions() -> None:
    import http.cookiejar
    import urllib.parse
    import urllib.request

    site = CaptchaSite(styles=["pair"], seed=1, lockout_after=2)
    with SiteServer(site.app, port=0) as server:
        opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

        def post() -> str:
            data = urllib.parse.urlencode({"captcha": "00"}).encode()
            with opener.open(f"{server.url}/pair/login", data=data, timeout=10) as response:
                return response.read().decode()

        with opener.open(f"{server.url}/pair/captcha.png?n=1", timeout=10) as response:
            response.read()
        assert "flash" in post() and "flash" in post()
        def page() -> None:
            with opener.open(f"{server.url}/pair/", timeout=10) as response:
                response.read()

        for attempt in (post, page):
            with pytest.raises(urllib.error.HTTPError) as caught:
                attempt()
            assert caught.value.code == 429 and caught.value.headers["Retry-After"] == "3600"
            caught.value.close()
        with urllib.request.urlopen(f"{server.url}/pair/", timeout=10) as other:  # another session
            assert other.status == 200
        assert site.stats["locked_out"] == 2
    assert json.loads(json.dumps(site.stats))  # plain counts


def test_a_trial_counts_each_accepted_answer_for_every_starter_that_read_it(
        tmp_path: Path) -> None:
    from solver.learn import StarterTrial

    log = CaptchaLog(tmp_path / "captchas.jsonl")
    trial = StarterTrial({"ddddocr": object(), "general": object()}, log, 1, per_reader=2)  # type: ignore[dict-item]
    rows = [("12", {"ddddocr": "12", "general": "12"}, "accepted"),  # both read it right
            ("30", {"ddddocr": "30", "general": "33"}, "refused"),   # both wrong, one known
            ("21", {"ddddocr": "02", "general": "21"}, "accepted"),
            ("", {"ddddocr": "", "general": "0"}, "not-submitted")]
    for number, (text, readings, outcome) in enumerate(rows):
        assert not trial.done()
        log.append({"round": 1, "text": text, "trial": readings, "outcome": outcome,
                    "file": f"{number}.png"})
    log.append({"round": 2, "text": "11", "trial": {"ddddocr": "11", "general": "11"},
                "outcome": "accepted"})  # another round's trial is not this one's
    assert trial.done() and trial.scores() == {"ddddocr": 1, "general": 2}
    assert trial.winner() == "general"
    tie = StarterTrial({"general": object(), "ddddocr": object()}, log, 2, per_reader=1)  # type: ignore[dict-item]
    assert tie.scores() == {"general": 1, "ddddocr": 1} and not tie.done()
    assert tie.winner() == "general"  # the first of equals
