"""The recipe choice: ``solver train --site X --data D`` finds what works for this site.

No single way of training suits every site: look-alikes that do not resemble a
site cost accuracy, a few hundred labels want a long, strongly augmented
schedule, a model pre-trained on many looks starts faster. So the default
command decides from the data, within its time budget:

1. It holds out part of the real labels (a fifth, 10 to 200 of them); every
   score below is sequence accuracy on these, which no training run sees.
2. It trains each candidate recipe for a share of the budget:

   * ``real``: the site's labels only, augmented afresh every step, in a long
     schedule of small batches;
   * ``general``: the same, starting from the shipped general model
     (``models/general``, many looks; its output layer is learnt afresh for
     the site's charset);
   * ``ddddocr``: where ddddocr is installed (the ``train`` extra brings it)
     and there are unlabelled images, ddddocr reads them, and its readings that
     are sure enough (a confidence at which its readings of the labels, none of
     which it was trained on, are ``teacher_precision`` right) join the labels as
     pseudo-labels; training starts from the general model as above, and the
     rounds after it keep these pseudo-labels (see :func:`with_teacher`). A site
     ddddocr reads badly gets no threshold and the candidate is left out, so the
     held-out labels decide.

3. The best of them trains on, in rounds, for the rest of the budget. With
   unlabelled images of the site (the dataset's own, or ``--unlabelled``), each
   round starts by letting the last round's model label them where it is sure
   and consistent (the same reading, at least ``min_confidence`` sure, on the
   image and on two random warps of it): the round's student, starting from
   that model, trains on the labels plus these pseudo-labels. Rounds go on to
   the end of the budget; the model kept is the one that reads the held-out
   labels best (a round that reads them worse is not kept, but does not end
   the training).
4. When the held-out labels are a large share of what there is (fewer than
   ``all_labels_below`` labels), the kept model is fine-tuned briefly on all
   labels, held-out ones included.

It prints each step and score, and ``metadata.json`` records them under
``training.recipe``. Every choice goes by the held-out score, never by a
figure measured on the development sets.

    result = auto_train(TrainOptions(profile, data=[Path("data/site")], time_budget_s=900),
                        unlabelled=[Path("data/site-unlabelled")])
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from solver.artifacts import KERAS_FILE, LITE_FILE, find_model, read_metadata, write_metadata
from solver.charset import Charset
from solver.dataset import Sample, read_labelled_folder, split_samples
from solver.errors import UsageError
from solver.prelabel import Proposal, ddddocr_installed
from solver.training.data import PolarityMix, as_model_input, load_samples
from solver.training.models import CTCConfig
from solver.training.synth import augment
from solver.training.train import CHECKPOINT_DIR, TrainOptions, TrainResult, gather_samples, train

logger = logging.getLogger(__name__)

# the default candidates. "ddddocr" (see teacher_labels) runs only where ddddocr is installed
# and there are unlabelled images, and leaves itself out where its readings of the labels show
# no sure confidence. Chosen on dark_digits from 50 labels (78.9% without it, 97.7% with it),
# confirmed on trt_courts, lanzhou_digits and kaggle_v2 (benchmarks/README.md)
CANDIDATES = ("real", "general", "ddddocr")
RECIPES = ("real", "general", "ddddocr")  # every candidate there is (--candidates)
GENERAL_MODEL = find_model("general")  # ./models/general where there is one, else the shipped one
MIN_LABELS = 30  # fewer cannot be split into a training and a held-out part worth the name


@dataclass
class RecipePlan:
    """How the budget is shared; fractions of the whole budget."""

    candidate_share: float = 0.2  # each candidate
    round_share: float = 0.25  # each round of the kept recipe (with pseudo-labels where there are)
    final_share: float = 0.1  # the last pass on all labels
    min_confidence: float = 0.9  # pseudo-labels' confidence where the held-out labels cannot tell
    pseudo_precision: float = 0.98  # how right the held-out readings above the threshold must be
    all_labels_below: int = 1000  # do the last pass when there are fewer labels than this
    min_unlabelled: int = 50  # semi-supervised rounds need at least this many images
    # how right ddddocr's readings of the held-out labels must be above its threshold for the
    # ddddocr candidate (its pseudo-labels are many and its mistakes are not the model's own)
    teacher_precision: float = 0.95
    teacher_read_share: float = 0.5  # of the candidate's share, at most, for ddddocr's reading
    # the chance a real image is shown inverted where the site draws text both ways round
    # (PolarityMix.mixed). Off until measured on quiet cores: one 5-minute run on dark_digits,
    # with the cores shared, read 62.8% with it against 79.6% without
    invert_mixed: float = 0.0


@dataclass
class Attempt:
    name: str
    held_out_accuracy: float
    seconds: float
    model_dir: Path
    note: str = ""

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "held_out_accuracy": round(self.held_out_accuracy, 4),
                "seconds": round(self.seconds, 1), **({"note": self.note} if self.note else {})}


def recipe_options(base: TrainOptions, name: str, out: Path, budget_s: float,
                   general: Path | None) -> TrainOptions:
    """The options of candidate ``name``: real labels only, in a long augmented schedule."""
    return dataclasses.replace(
        base, synthetic=0, real_fraction=1.0, batch_size=32, epochs=100_000, patience=25,
        min_steps_per_epoch=40, out=out, time_budget_s=budget_s, resume=False,
        start_from=general if name in ("general", "ddddocr") else None, quantize=False,
        export_lite=False)


def teacher_labels(options: TrainOptions, labelled: Sequence[Sample], pool: Sequence[Path],
                   precision: float, seconds: float,
                   known_wrong: Mapping[Path, Collection[str]] | None = None,
                   ) -> tuple[list[Sample], str]:
    """ddddocr's sure readings of ``pool`` as pseudo-labels, and a line saying how it went.

    The threshold is measured on ``labelled``, every real label there is: ddddocr was
    trained on none of them, so the labels a candidate trains on say as much of it as
    the held-out ones (from 50 labels the held-out part is 10, and no confidence is
    ``precision`` right on 10 readings with one mistake). It is the deepest cut at
    which its readings are ``precision`` right (see :func:`verdict_threshold`); where
    there is none, nothing is taken. Reading stops after ``seconds`` (the first 64 are
    read whatever the time); images are read in a seeded random order so that a short
    budget still takes a fair sample.
    """
    from solver.prelabel import DdddocrReader

    reader = DdddocrReader(options.profile)
    began = time.monotonic()
    checked = _propose_each(reader, [sample.path.read_bytes() for sample in labelled])
    right = sum(p is not None and p.text == s.label for p, s in zip(checked, labelled))
    # no confidence (an old ddddocr, or a case it cannot tell on a case-sensitive site): not
    # sure; a reading that does not fit the profile is never taken, so it does not count
    pairs = [(p.confidence, p.text == s.label) for p, s in zip(checked, labelled)
             if p is not None and p.fits and p.confidence is not None]
    threshold = verdict_threshold(pairs, precision, fallback=2.0)
    said = f"ddddocr reads {right} of {len(labelled)} labels"
    if threshold > 1.0:
        return [], f"{said}: no confidence at which {precision:.0%} of them are right; left out"
    order = np.random.default_rng(options.seed).permutation(len(pool))
    wrong = known_wrong or {}
    guessed: list[Sample] = []
    read = 0
    for start in range(0, len(order), 64):
        if start and time.monotonic() - began > seconds:
            break
        chunk = [pool[int(i)] for i in order[start:start + 64]]
        images = []
        for path in chunk:
            try:
                images.append(path.read_bytes())
            except OSError:
                images.append(b"")
        for path, proposal in zip(chunk, _propose_each(reader, images)):
            read += 1
            if proposal is not None and proposal.fits and proposal.confidence is not None \
                    and proposal.confidence >= threshold \
                    and proposal.text not in wrong.get(path.resolve(), ()):
                guessed.append(Sample(path, proposal.text, pseudo=True))
    return guessed, (f"{said}; sure of {len(guessed)} of the {read} unlabelled images it read "
                     f"(confidence at least {threshold:.2f}, where {precision:.0%} of its "
                     "readings of the labels are right)")


def _propose_each(reader: Any, images: Sequence[bytes]) -> list[Proposal | None]:
    """The reader's proposals; ``None`` for an image it cannot read (broken files are skipped)."""
    from solver.prelabel import PrelabelError

    try:
        return reader.propose(images)
    except PrelabelError:
        out = []
        for image in images:
            try:
                out.append(reader.propose([image])[0])
            except PrelabelError:
                out.append(None)
        return out


def unlabelled_images(folders: Sequence[Path], data_report_unlabelled: Sequence[Sample],
                      exclude: set[Path]) -> list[Path]:
    """Images without a usable label: the data folders' unlabelled rows and ``folders``' images."""
    paths = [sample.path for sample in data_report_unlabelled]
    for folder in folders:
        paths.extend(sample.path for sample in read_labelled_folder(folder, pseudo_labels=True))
    seen: set[Path] = set()
    out = []
    for path in paths:
        key = path.resolve()
        if key not in seen and key not in exclude:
            seen.add(key)
            out.append(path)
    return out


@dataclass
class Readings:
    """A model's readings of some images: text, confidence, and whether two warps agree."""

    paths: list[Path]
    texts: list[str]
    confidences: list[float]
    stable: list[bool]


def read_with_warps(model_dir: Path, options: TrainOptions, paths: Sequence[Path],
                    seed: int) -> Readings:
    """Read ``paths`` with ``model_dir`` as they are and under two random warps."""
    fmt = options.profile.format
    metadata = read_metadata(model_dir)
    config = metadata.config
    assert isinstance(config, CTCConfig)  # the recipes train CTC readers only
    inference = keras.models.load_model(model_dir / KERAS_FILE, safe_mode=True, compile=False)
    charset = Charset(fmt.charset, fmt.case_sensitive)
    indexed = [Sample(path, str(index)) for index, path in enumerate(paths)]
    images, _ = load_samples(indexed, config.height, config.width,  # unreadable ones drop out
                             channels=config.channels)
    kept = [paths[int(index)] for index in images.labels]
    if not len(images):
        return Readings([], [], [], [])
    rng = np.random.default_rng(seed)
    views = []
    for view in (images.images, augment(images.images, rng, 0.7), augment(images.images, rng, 0.7)):
        decoded = []
        for start in range(0, len(view), 256):
            probabilities = keras.ops.convert_to_numpy(
                inference(as_model_input(view[start:start + 256]), training=False))
            decoded.extend(charset.decode_ctc_batch(probabilities, fmt.length))
        views.append(decoded)
    texts = [text for text, _ in views[0]]
    return Readings(kept, [fmt.normalise(text) for text in texts],
                    [confidence for _, confidence in views[0]],
                    [all(view[i][0] == text for view in views[1:]) for i, text in enumerate(texts)])


def sure_threshold(readings: Readings, truths: Sequence[str], precision: float = 0.98,
                   fallback: float = 0.9) -> float:
    """The lowest confidence at which the stable readings of labelled images are ``precision`` right.

    Measured on the held-out labels, so the pseudo-labels' threshold suits this
    model and this site rather than one figure for all; ``fallback`` where too
    few held-out readings are stable to tell.
    """
    pairs = sorted(((confidence, text == truth) for text, confidence, stable, truth
                    in zip(readings.texts, readings.confidences, readings.stable, truths)
                    if stable), reverse=True)
    if len(pairs) < 10:
        return fallback
    threshold, right = fallback, 0
    for count, (confidence, correct) in enumerate(pairs, start=1):
        right += correct
        if count >= 10 and right / count >= precision:
            threshold = min(threshold, confidence)
        elif count >= 10:
            break
    return max(threshold, 0.2)


def pseudo_labels(model_dir: Path, options: TrainOptions, paths: Sequence[Path],
                  min_confidence: float, seed: int,
                  known_wrong: Mapping[Path, Collection[str]] | None = None) -> list[Sample]:
    """The readings of ``model_dir`` that are sure and stable under two random warps, as pseudo-labels.

    ``known_wrong``: texts known not to be an image's label (by resolved path; a
    site refused them, see :mod:`solver.learn`), never taken as its pseudo-label.
    """
    fmt = options.profile.format
    readings = read_with_warps(model_dir, options, paths, seed)
    wrong = known_wrong or {}
    return [Sample(path, text, pseudo=True) for path, text, confidence, stable
            in zip(readings.paths, readings.texts, readings.confidences, readings.stable)
            if stable and confidence >= min_confidence and fmt.label_problem(text) is None
            and text not in wrong.get(path.resolve(), ())]


def verdict_threshold(verdicts: Sequence[tuple[float, bool]], precision: float = 0.98,
                      fallback: float = 0.9) -> float:
    """The lowest confidence at which a reader's readings of fresh captchas were ``precision``
    right by the site's verdicts (``fallback`` where there are too few to tell).

    Unlike the held-out labels, which are the captchas it read right, fresh captchas are
    drawn as the site draws them, the hard ones included: the threshold they give holds
    for the unlabelled images, most of which are the captchas it read wrong.
    """
    pairs = sorted(verdicts, reverse=True)
    if len(pairs) < 10:
        return fallback
    # the deepest cut that is precise enough: among hundreds of verdicts one early miss is
    # chance, not a sign (the held-out labels' rule stops at the first dip below precision)
    right = np.cumsum([correct for _, correct in pairs])
    precise = [index for index in range(9, len(pairs)) if right[index] / (index + 1) >= precision
               and (index + 1 == len(pairs) or pairs[index + 1][0] < pairs[index][0])]  # ties in
    if not precise:
        return fallback
    return max(min(fallback, pairs[precise[-1]][0]), 0.2)


def with_teacher(guessed: Sequence[Sample], taught: Sequence[Sample]) -> list[Sample]:
    """A student's pseudo-labels with its teacher's: where both read an image, it is kept if
    they agree and left out if not; where one of them does, that one's reading is kept.

    The rounds after the ddddocr candidate train on these: its student, trained for a few
    minutes, is sure of far fewer images than ddddocr (on dark_digits from 50 labels, 59
    against 3,058), and the rounds would otherwise train on the labels alone.
    """
    theirs = {sample.path: sample.label for sample in taught}
    mine = {sample.path for sample in guessed}
    kept = [sample for sample in guessed if theirs.get(sample.path, sample.label) == sample.label]
    return kept + [sample for sample in taught if sample.path not in mine]


def better_round(best: Attempt, attempt: Attempt) -> tuple[Attempt, str]:
    """The one to keep after a round, and what to say of it: the round's model where it reads
    the held-out labels at least as well (a tie goes to the longer-trained), else ``best``."""
    if attempt.held_out_accuracy >= best.held_out_accuracy:
        return attempt, ""
    return best, (f"{attempt.name} reads fewer held-out labels than {best.name}: {best.name} "
                  f"stays the one to keep; the next round trains on from {attempt.name}")


def _train_on(model_dir: Path, base: TrainOptions, guessed: Sequence[Sample], work: Path,
              seconds: float, run: Callable[[str, TrainOptions], Attempt],
              report: Callable[[str], None]) -> Attempt:
    """The site's model so far trains on for ``seconds`` in one schedule: on the labels, and
    on ``guessed``, its sure readings of the unlabelled images (see ``auto_train``'s
    ``continuing``)."""
    name = f"site+{'pseudo' if guessed else 'labels'}"
    report(f"training on from the model so far for {seconds / 60:.1f} min, in one schedule")
    student = dataclasses.replace(
        recipe_options(base, "general", work / name, seconds, model_dir),
        samples=list(base.samples or []) + list(guessed))
    attempt = run(name, student)
    if guessed:
        attempt.note = f"{len(guessed)} pseudo-labels"
    return attempt


def auto_train(options: TrainOptions, unlabelled: Sequence[Path] = (),
               report: Callable[[str], None] = print, plan: RecipePlan | None = None,
               candidates: Sequence[str] = CANDIDATES, general: Path | None = GENERAL_MODEL,
               known_wrong: Mapping[Path, Collection[str]] | None = None,
               continuing: bool = False,
               verdicts: Sequence[tuple[float, bool]] = ()) -> TrainResult:
    """Choose the recipe on held-out labels within ``options.time_budget_s``; save the best.

    ``general``: the model the ``general`` recipe starts from (left out where it is missing).
    ``known_wrong``: readings a site refused, by resolved image path: an unlabelled
    image is never pseudo-labelled with one (see :func:`pseudo_labels`).
    ``continuing``: ``general`` is the site's own model so far (:mod:`solver.learn`), so
    there is nothing to choose: it trains on in one schedule for the whole budget (a
    schedule cut into short runs, each warming up again, read 6-10 points less of a hard
    site in the same time), on the labels and on its own sure readings of the unlabelled
    images. ``verdicts``: its readings of fresh captchas as (confidence, whether the site
    accepted it); they set the pseudo-labels' threshold where the held-out labels, being
    the captchas it read right, would set it too low (see :func:`verdict_threshold`).
    """
    plan = plan or RecipePlan()
    started = time.monotonic()
    budget = options.time_budget_s or 15 * 60
    out = Path(options.out or Path("models") / options.profile.name)
    work = out / CHECKPOINT_DIR / "recipes"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)

    samples, label_report = gather_samples(options)
    for line in label_report.lines():
        report(line)
    real = [sample for sample in samples if not sample.pseudo]
    if len(real) < MIN_LABELS:
        raise UsageError(f"{len(real)} usable labels: the recipe choice needs at least {MIN_LABELS} "
                         "to hold some out (label more with `solver label`, or choose a recipe "
                         "with --recipe real or --recipe general)")
    fraction = min(200, max(10, round(0.2 * len(real)))) / len(real)
    train_part, held_out = split_samples(real, fraction, options.seed)
    extra = [sample for sample in samples if sample.pseudo]  # --pseudo-labels: train only
    pool = unlabelled_images(unlabelled, label_report.refused.get("empty labels", []),
                             {s.path.resolve() for s in samples})
    polarity = PolarityMix.of(load_samples(train_part[:400], 32, 96)[0].images)
    if polarity.mixed:
        if plan.invert_mixed and not options.invert_real:
            options = dataclasses.replace(options, invert_real=plan.invert_mixed)
        report(f"text both ways round: {polarity.dark} images of {len(train_part[:400])} dark on "
               f"light, {polarity.light} light on dark ({polarity.unclear} unclear)"
               + (f"; the real images are shown inverted {options.invert_real:.0%} of the time"
                  if options.invert_real else ""))
    general = general if general is not None and (general / KERAS_FILE).is_file() else None
    teacher = ddddocr_installed() and len(pool) >= plan.min_unlabelled
    names = [name for name in candidates if (name != "general" or general is not None)
             and (name != "ddddocr" or teacher)]
    report(f"{'training on' if continuing else 'recipe choice'}: {len(train_part)} labels to "
           f"train, {len(held_out)} held out to score, {len(pool)} unlabelled images; budget "
           f"{budget / 60:.1f} min" + ("" if continuing else "; trying " + ", ".join(names)))

    def left() -> float:
        return budget - (time.monotonic() - started)

    def run(name: str, run_options: TrainOptions, began: float | None = None) -> Attempt:
        began = time.monotonic() if began is None else began
        result = train(run_options, report=lambda line: report(f"  [{name}] {line}"))
        attempt = Attempt(name, result.best_accuracy, time.monotonic() - began, result.model_dir)
        report(f"recipe {name}: {attempt.held_out_accuracy:.2%} of {len(held_out)} held-out "
               f"labels ({attempt.seconds / 60:.1f} min)")
        return attempt

    attempts: list[Attempt] = []
    base = dataclasses.replace(options, samples=train_part + extra, validation_samples=held_out)
    taught: list[Sample] = []  # the ddddocr candidate's pseudo-labels
    last_pass = len(real) < plan.all_labels_below
    reserve = plan.final_share * budget if last_pass else 0.0

    def sure_at(model_dir: Path) -> tuple[float, str]:
        """The pseudo-labels' threshold for ``model_dir``, and why: where its held-out
        readings are ``pseudo_precision`` right, or higher where the site's verdicts say so."""
        held = sure_threshold(read_with_warps(model_dir, options, [s.path for s in held_out],
                                              options.seed),
                              [s.label for s in held_out], plan.pseudo_precision,
                              plan.min_confidence)
        why = f"where its held-out readings are {plan.pseudo_precision:.0%} right"
        if len(verdicts) < 10:
            return held, why
        by_site = verdict_threshold(verdicts, plan.pseudo_precision, plan.min_confidence)
        return max(held, by_site), (f"the higher of {by_site:.2f}, from the site's verdicts on "
                                    f"{len(verdicts)} fresh captchas, and {held:.2f}, {why}")

    def sure_guesses(model_dir: Path, who: str, seed: int) -> list[Sample]:
        """``model_dir``'s pseudo-labels of the pool, reported; none where too few to use."""
        if len(pool) < plan.min_unlabelled:
            return []
        threshold, why = sure_at(model_dir)
        guessed = pseudo_labels(model_dir, options, pool, threshold, seed, known_wrong)
        report(f"{who} is sure of {len(guessed)} of {len(pool)} unlabelled images (confidence "
               f"at least {threshold:.2f}, {why})"
               + ("" if len(guessed) >= plan.min_unlabelled else "; too few to use"))
        return guessed if len(guessed) >= plan.min_unlabelled else []

    if continuing and general is not None:
        best = _train_on(general, base, sure_guesses(general, "the model so far", options.seed + 1),
                         work, max(left() - reserve, 20.0), run, report)
        names, attempts = [], [best]
    for index, name in enumerate(names):
        share = min(plan.candidate_share * budget, left() / (len(names) - index) * 0.9)
        run_options = recipe_options(base, name, work / name, share, general)
        began = time.monotonic()
        if name == "ddddocr":
            # the held-out labels first, then the rest: a thousand are plenty to measure it on
            taught, line = teacher_labels(options, (held_out + train_part)[:1000], pool,
                                          plan.teacher_precision,
                                          share * plan.teacher_read_share, known_wrong)
            report(f"  [ddddocr] {line}")
            if len(taught) < plan.min_unlabelled:
                report("  [ddddocr] too few sure readings to teach with; left out")
                taught = []
                continue
            spent = time.monotonic() - began
            run_options = dataclasses.replace(run_options, samples=train_part + extra + taught,
                                              time_budget_s=max(share - spent, 20.0))
        attempts.append(run(name, run_options, began))
        if name == "ddddocr":
            attempts[-1].note = f"{len(taught)} pseudo-labels"
    # a tie goes to the general start: it has seen many looks, the site's few labels only one
    best = max(attempts, key=lambda attempt: (attempt.held_out_accuracy, attempt.name == "general"))
    if names:
        report(f"recipe choice: {best.name} reads the held-out labels best; it trains on with "
               "the rest of the budget")
    rounds = 0
    latest = best  # each round trains on from the one before; the best-scoring one is kept
    # on and on to the end of the budget: a small held-out part read without a fault still
    # leaves the test of unseen captchas to gain from more training, and a round that reads
    # one held-out label fewer is chance as often as a sign (on a hard site, stopping at the
    # first such dip left 4 of 10 minutes unused and read 8-10 points less)
    while left() - reserve > max(30.0, 0.05 * budget):
        rounds += 1
        guessed = sure_guesses(latest.model_dir, f"round {rounds}: {latest.name}",
                               options.seed + rounds)
        if taught and best.name.split("+")[0] == "ddddocr":
            guessed = with_teacher(guessed, taught)
            report(f"  the teacher's pseudo-labels stay, with the student's where there are "
                   f"both and they agree: {len(guessed)} in all")
        name = f"{best.name.split('+')[0]}+{'pseudo' if guessed else 'more'}{rounds}"
        share = min(left() - reserve, plan.round_share * budget)
        student = dataclasses.replace(
            recipe_options(base, best.name.split("+")[0], work / name, share, None),
            samples=train_part + extra + guessed, start_from=latest.model_dir,
            learning_rate=options.learning_rate / 3)
        attempt = run(name, student)
        if guessed:
            attempt.note = f"{len(guessed)} pseudo-labels"
        attempts.append(attempt)
        best, said = better_round(best, attempt)
        if said:
            report(f"  {said}")
        latest = attempt

    final = best
    record: dict[str, Any] = {"chosen": best.name.split("+")[0], "kept": best.name,
                              "held_out": len(held_out), "trained_on": len(train_part),
                              "unlabelled": len(pool), "tried": [a.record() for a in attempts],
                              "held_out_accuracy": round(best.held_out_accuracy, 4),
                              "all_labels_pass": False, "invert_real": options.invert_real,
                              "polarity": dataclasses.asdict(polarity)}
    if last_pass and left() > 20:
        guessed = []
        if "+pseudo" in best.name:  # the kept student reads the pool afresh
            guessed = pseudo_labels(best.model_dir, options, pool, sure_at(best.model_dir)[0],
                                    options.seed + 99, known_wrong)
        if taught and best.name.split("+")[0] == "ddddocr":
            guessed = with_teacher(guessed, taught)
        record["all_labels_pass"] = True
        last = dataclasses.replace(
            recipe_options(base, best.name.split("+")[0], work / "all-labels",
                           min(max(reserve, 20.0), left() - 10), None),
            samples=real + extra + guessed, validation_samples=[], keep_last=True,
            start_from=best.model_dir, learning_rate=options.learning_rate / 5, patience=10**6)
        report(f"last pass: {best.name} on all {len(real)} labels"
               + (f" and {len(guessed)} pseudo-labels" if guessed else "")
               + " (the held-out score above stays its measure)")
        began = time.monotonic()
        result = train(last, report=lambda line: report(f"  [all labels] {line}"))
        final = Attempt("all-labels", best.held_out_accuracy, time.monotonic() - began,
                        result.model_dir)
    record["seconds"] = round(time.monotonic() - started, 1)
    _install(final.model_dir, out, record, options)
    report(f"kept {best.name} ({best.held_out_accuracy:.2%} of {len(held_out)} held-out labels)"
           + (", then a last pass on all labels" if record["all_labels_pass"] else "")
           + f"; saved {out} in {record['seconds'] / 60:.1f} min")
    return TrainResult(out, best.held_out_accuracy, 0, record["seconds"], "recipe choice",
                       label_report, [])


def _install(source: Path, out: Path, record: dict[str, Any], options: TrainOptions) -> None:
    """Copy the kept model into ``out`` (exported again if it must be quantised), metadata last."""
    metadata = read_metadata(source)
    training = {**metadata.training, "recipe": record, "data": [str(p) for p in options.data],
                "seconds": record["seconds"]}
    metrics = {**metadata.metrics, "validation_sequence_accuracy": record["held_out_accuracy"],
               "validation_images": record["held_out"], "validation_source": "real (held out)"}
    metadata = dataclasses.replace(metadata, training={**training, "quantized": options.quantize},
                                   metrics=metrics)
    from solver.training.models import export_lite

    out.mkdir(parents=True, exist_ok=True)
    inference = keras.models.load_model(source / KERAS_FILE, safe_mode=True, compile=False)
    export_lite(inference, out / f".{LITE_FILE}.tmp", quantize=options.quantize)
    (out / f".{LITE_FILE}.tmp").replace(out / LITE_FILE)
    for name in (KERAS_FILE, "history.json"):
        if (source / name).is_file():
            shutil.copyfile(source / name, out / f".{name}.tmp")
            (out / f".{name}.tmp").replace(out / name)
    write_metadata(out, metadata)
    (out / CHECKPOINT_DIR / "recipes" / "choice.json").write_text(json.dumps(record, indent=2) + "\n")
