"""A learning curve: accuracy against the number of real labels.

The labelled images are split once (seeded) into a test part and a training
pool; models are trained on the first 50, 100, 200... images of the shuffled
pool (so each subset holds the smaller ones) and read the same test images.
The file lists are saved, so the figures can be checked and repeated.

    points = learning_curve(profile, samples, [50, 100, 200, 500], out=Path("curve"))

It tells a site owner how many labels a site needs, and how strong the captcha is.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from solver.dataset import Sample, split_samples, write_list
from solver.errors import UsageError
from solver.profiles import SiteProfile


# a few labels make short epochs, and each epoch ends with a validation and a save: at
# least this many steps an epoch keeps that overhead small
MIN_STEPS_PER_EPOCH = 100


@dataclass(frozen=True)
class CurvePoint:
    """One training-set size and what its model scored on the test images."""

    labels: int
    sequence_accuracy: float
    character_accuracy: float
    test_images: int
    training_seconds: float
    epochs: int


@dataclass(frozen=True)
class CurveOptions:
    """How each point's model is trained."""

    sizes: tuple[int, ...]
    test_fraction: float = 0.2
    seed: int = 0
    synthetic: int = 0  # look-alikes mixed in at every point
    start_from: Path | None = None  # transfer: fine-tune every point from this model
    steps: int = 1500  # optimiser steps per point, whatever the number of labels
    batch_size: int = 32
    time_budget_s: float | None = None  # per point
    real_fraction: float = 0.5
    emphasis: str | None = None


def parse_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        sizes = ()
    if not sizes or sizes[0] < 1:
        raise UsageError(f"--curve {text!r}: give label counts separated by commas, e.g. 50,100,200,500")
    return sizes


def learning_curve(profile: SiteProfile, samples: Sequence[Sample], options: CurveOptions, out: Path,
                   report: Callable[[str], None] = print) -> list[CurvePoint]:
    """Train one model per size in ``options.sizes`` and score each on the same test images."""
    from solver.evaluate import evaluate
    from solver.recognizers import Recognizer
    from solver.training.train import TrainOptions, train

    pool, test = split_samples(list(samples), options.test_fraction, options.seed)
    sizes = [size for size in options.sizes if size <= len(pool)]
    if not sizes:
        raise UsageError(f"the training pool holds {len(pool)} labelled images, fewer than the "
                         f"smallest curve size {options.sizes[0]} (label more, or ask for smaller sizes)")
    skipped = [size for size in options.sizes if size > len(pool)]
    if skipped:
        report(f"skipping sizes {skipped}: the training pool holds only {len(pool)} images")
    write_list(test, out / "splits" / "test")
    points: list[CurvePoint] = []
    for size in sizes:
        subset = pool[:size]
        folder = write_list(subset, out / "splits" / f"train_{size}")
        real_per = (max(1, min(options.batch_size - 1, round(options.batch_size * options.real_fraction)))
                    if options.synthetic else options.batch_size)
        floor = min(MIN_STEPS_PER_EPOCH, options.steps)
        per_epoch = max(math.ceil(size / real_per), floor,
                        math.ceil(options.synthetic / (options.batch_size - real_per)) if options.synthetic else 1)
        epochs = max(1, math.ceil(options.steps / per_epoch))
        report(f"-- {size} labels: training ({epochs} epochs, about {options.steps} steps)")
        started = time.monotonic()
        result = train(TrainOptions(
            profile=profile, data=[folder], synthetic=options.synthetic,
            real_fraction=options.real_fraction, start_from=options.start_from, epochs=epochs,
            time_budget_s=options.time_budget_s, batch_size=options.batch_size, seed=options.seed,
            out=out / "models" / f"train_{size}", patience=10_000, emphasis=options.emphasis,
            min_steps_per_epoch=floor),
            report=lambda line: report("   " + line))
        evaluation = evaluate(Recognizer(result.model_dir, profile), test)
        point = CurvePoint(size, evaluation.sequence_accuracy, evaluation.character_accuracy,
                           len(test), round(time.monotonic() - started, 1), result.epochs)
        points.append(point)
        report(f"-- {size} labels: {point.sequence_accuracy:.2%} sequence accuracy on "
               f"{len(test)} test images ({point.training_seconds:.0f} s)")
        _save(points, options, out)
    return points


def _save(points: list[CurvePoint], options: CurveOptions, out: Path) -> None:
    record = {"options": {**asdict(options), "start_from": str(options.start_from or "")},
              "points": [asdict(point) for point in points]}
    (out / "curve.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def curve_table(points: Sequence[CurvePoint]) -> str:
    lines = ["labels  sequence  character  test images  training",
             "------  --------  ---------  -----------  --------"]
    for p in points:
        lines.append(f"{p.labels:6d}  {p.sequence_accuracy:8.2%}  {p.character_accuracy:9.2%}  "
                     f"{p.test_images:11d}  {p.training_seconds:6.0f} s")
    return "\n".join(lines)


def plot_curve(curves: dict[str, Sequence[CurvePoint]], path: Path, title: str) -> Path:
    """One line per curve (e.g. real labels only, with look-alikes, with transfer)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4), dpi=110)
    for name, points in curves.items():
        axis.plot([p.labels for p in points], [100 * p.sequence_accuracy for p in points],
                  marker="o", label=name)
    axis.set_xscale("log")
    axis.set_xlabel("real labels used for training")
    axis.set_ylabel("sequence accuracy on the test images (%)")
    axis.set_title(title)
    axis.grid(True, alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path
