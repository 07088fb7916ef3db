"""Accuracy benchmarks: train a model, read a held-out test set, compare with ddddocr.

Generated captchas (the profile's look-alikes; fresh test images):

    python benchmarks/accuracy.py generated --profile solver/shipped/profiles/example.yaml --length 4 \
        --test 2000 --budget 30 --name generated_4char

A folder of labelled captchas (a seeded split whose file lists are saved):

    python benchmarks/accuracy.py dataset --profile benchmarks/profiles/kaggle_v2.yaml \
        --data ../shared/datasets/kaggle_v2 --test-fraction 0.2 --seed 1 --name kaggle_v2

Figures go to ``benchmarks/results/NAME.json``; the model to ``benchmarks/results/models/NAME``.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from common import RESULTS, Ddddocr, git_revision, save  # noqa: E402

from solver.archs import ARCHS  # noqa: E402
from solver.dataset import (  # noqa: E402
    Sample, check_labels, read_corrections, read_labelled_folder, split_samples, write_list)
from solver.drawing import CaptchaDrawer, random_text  # noqa: E402
from solver.evaluate import score  # noqa: E402
from solver.profiles import SiteProfile, load_profile  # noqa: E402
from solver.recognizers import Recognizer  # noqa: E402


def train_model(profile: SiteProfile, args: argparse.Namespace, data: list[Path]) -> tuple[Path, dict]:
    from solver.training.models import CTCConfig
    from solver.training.train import TrainOptions, train

    config = None
    if args.filters:  # the look-alikes' size sets the input; the width keeps the aspect
        filters = tuple(int(f) for f in args.filters.split(","))
        config = CTCConfig.for_image(profile.synthetic.height, profile.synthetic.width,
                                     height=args.input_height, filters=filters)
    out = RESULTS / "models" / args.name
    started = time.monotonic()
    result = train(TrainOptions(
        profile=profile, data=data, pipeline=args.pipeline, synthetic=args.synthetic,
        epochs=args.epochs,
        time_budget_s=args.budget * 60 if args.budget else None, seed=args.seed, out=out,
        batch_size=args.batch_size, real_fraction=args.real_fraction, patience=args.patience,
        start_from=Path(args.start_from) if args.start_from else None,
        emphasis=args.emphasise, augment_lookalikes=args.augment_lookalikes,
        max_steps_per_epoch=args.epoch_steps, input_height=args.input_height,
        learning_rate=args.learning_rate, config=config, precision=args.precision,
        validation_synthetic=args.validation_lookalikes),
        report=lambda line: print(line, flush=True))
    speeds = [h["images_per_second"] for h in result.history]
    return out, {"training_seconds": round(time.monotonic() - started, 1),
                 "epochs": result.epochs, "stopped_by": result.stopped_by,
                 "validation_accuracy": result.best_accuracy,
                 "training_images_per_second": round(sum(speeds) / len(speeds), 1) if speeds else None}


def measure(model: Path, profile: SiteProfile, images: list[bytes], truths: list[str],
            names: list[str], misread_dir: Path | None = None) -> dict:
    """Read the test images; ``misread_dir``: keep each misread image there as
    ``NAME_TRUTH_read_READING.png``, to look at."""
    recognizer = Recognizer(model, profile)
    started = time.perf_counter()
    readings = []
    for start in range(0, len(images), 64):
        readings.extend(recognizer.read_batch(images[start:start + 64]))
    milliseconds = (time.perf_counter() - started) * 1000 / len(images)
    evaluation = score(readings, truths, names, milliseconds)
    if misread_dir is not None:
        misread_dir.mkdir(parents=True, exist_ok=True)
        for image, reading, truth, name in zip(images, readings, truths, names):
            if reading.text != truth:  # score()'s rule: the truths are already normalised
                (misread_dir / f"{name}_{truth}_read_{reading.text or '-'}.png").write_bytes(image)
    print(evaluation.table())
    figures = {"test_images": len(truths), "sequence_accuracy": evaluation.sequence_accuracy,
               "character_accuracy": evaluation.character_accuracy,
               "coverage": evaluation.coverage, "confusions": evaluation.confusions[:10],
               "ms_per_image_batched": round(milliseconds, 3)}
    if Ddddocr.available():
        peer = Ddddocr().run(images, truths, recognizer.charset.normalise)
        print(f"ddddocr: {peer['sequence_accuracy']:.2%} on the same {peer['images']} images, "
              f"{peer['ms_per_image']:.2f} ms an image")
        figures["ddddocr"] = peer
    else:
        print("ddddocr is not installed (pip install -e '.[bench]'); no peer figures")
    return figures


def test_images(profile: SiteProfile, truths: list[str], drawer_name: str) -> list[bytes]:
    """PNG test images: drawn by the profile's look-alike drawer, or by the captcha
    package itself (``ImageCaptcha`` with the profile's size and font sizes, its own
    font, clutter and randomness; the look-alikes then only imitate it)."""
    look = profile.synthetic
    if drawer_name == "package":
        from captcha.image import ImageCaptcha

        if look.fonts:
            raise SystemExit("--test-drawer package draws with the package's own font; "
                             f"{profile.source} names fonts")
        package = ImageCaptcha(width=look.width, height=look.height,
                               font_sizes=tuple(look.font_sizes))
        return [package.generate(text).getvalue() for text in truths]
    drawer = CaptchaDrawer.from_settings(look, profile.source.parent)
    return [drawer.png(text) for text in truths]


def generated(args: argparse.Namespace) -> None:
    base = profile = load_profile(args.profile)
    if args.length:
        profile = profile.model_copy(update={"format": profile.format.model_copy(
            update={"length": (args.length, args.length)})})
    if args.model:  # measure an existing model, e.g. the shipped one
        model, training = Path(args.model), {"trained_here": False}
    else:
        model, training = train_model(profile, args, [])
    rng = random.Random(10_000 + args.seed)  # disjoint from the training texts' seeds
    fmt = profile.format
    truths = [random_text(rng, fmt.charset, fmt.min_length, fmt.max_length) for _ in range(args.test)]
    images = test_images(profile, truths, args.test_drawer)
    # an existing model is checked against the profile it was trained for; the test
    # texts may still be of one length within its range
    figures = measure(model, base if args.model else profile, images, truths,
                      [str(i) for i in range(len(truths))],
                      misread_dir=RESULTS / "models" / args.name / "misread")
    save(args.name, {"kind": "generated", "profile": args.profile, "length": args.length,
                     "test_drawer": args.test_drawer, "revision": git_revision(), **training, **figures})


def dataset(args: argparse.Namespace) -> None:
    profile = load_profile(args.profile)
    fmt = profile.format
    samples = read_labelled_folder(args.data)
    given = {s.path.name: s.label for s in samples}
    fixes = read_corrections(args.corrections) if args.corrections else {}
    if fixes:
        unknown = sorted(set(fixes) - set(given))
        if unknown:
            raise SystemExit(f"{args.corrections}: {len(unknown)} files are not in {args.data}: {unknown[:3]}")
        samples = [Sample(s.path, fixes.get(s.path.name, s.label)) for s in samples]
        print(f"corrections: {sum(fixes[f] != given[f] for f in fixes)} labels fixed from {args.corrections}")
    report = check_labels(samples, fmt.charset, fmt.min_length, fmt.max_length, fmt.case_sensitive)
    train_part, test_part = split_samples(report.kept, args.test_fraction, args.seed)
    if args.max_train:
        train_part = train_part[: args.max_train]
    split_dir = RESULTS / "splits" / args.name
    for part, chosen in (("train", train_part), ("test", test_part)):
        write_list(chosen, split_dir / part)
    print(f"split: {len(train_part)} train, {len(test_part)} test (seed {args.seed}); "
          f"lists in {split_dir}")
    if args.model:
        model, training = Path(args.model), {"trained_here": False}
    else:
        model, training = train_model(profile, args, [split_dir / "train"])
    images = [s.path.read_bytes() for s in test_part]
    figures = measure(model, profile, images, [s.label for s in test_part],
                      [s.path.name for s in test_part])
    if fixes:
        fixed_in_test = [s for s in test_part if s.path.name in fixes and fixes[s.path.name] != given[s.path.name]]
        figures["corrections"] = {"file": args.corrections, "fixed_in_test": len(fixed_in_test),
                                  "fixed_in_train": sum(s.path.name in fixes for s in train_part)}
        recognizer = Recognizer(model, profile)
        readings = recognizer.read_batch(images)
        right = sum(r.text == fmt.normalise(given[s.path.name]) for r, s in zip(readings, test_part))
        figures["sequence_accuracy_given_labels"] = right / len(test_part)
        print(f"against the dataset's own labels (uncorrected): {right / len(test_part):.2%}; "
              f"{len(fixed_in_test)} test labels were fixed")
    save(args.name, {"kind": "dataset", "profile": args.profile, "data": args.data,
                     "pipeline": args.pipeline or profile.model.pipeline,
                     "train_images": len(train_part), "labels_refused": report.refused_count,
                     "split": str(split_dir.relative_to(RESULTS.parent.parent)),
                     "revision": git_revision(), **training, **figures})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    kinds = parser.add_subparsers(dest="kind", required=True)
    for kind in ("generated", "dataset"):
        sub = kinds.add_parser(kind)
        sub.add_argument("--profile", required=True)
        sub.add_argument("--name", required=True)
        sub.add_argument("--synthetic", type=int, default=0 if kind == "dataset" else 60_000)
        sub.add_argument("--epochs", type=int, default=30)
        sub.add_argument("--budget", type=float, help="training time budget in minutes")
        sub.add_argument("--batch-size", type=int, default=64)
        sub.add_argument("--patience", type=int, default=6)
        sub.add_argument("--real-fraction", type=float, default=0.5)
        sub.add_argument("--seed", type=int, default=1)
        sub.add_argument("--from", dest="start_from", help="fine-tune from a model folder")
        sub.add_argument("--model", help="measure this model folder instead of training one")
        sub.add_argument("--emphasise", metavar="CHARS[:WEIGHT]",
                         help="look-alike texts hold these characters WEIGHT times as often")
        sub.add_argument("--augment-lookalikes", type=float, default=0.0, metavar="STRENGTH",
                         help="warp look-alikes afresh each epoch (0: off, 1: as real images)")
        sub.add_argument("--epoch-steps", type=int, default=0,
                         help="at most this many batches an epoch (0: the whole set)")
        sub.add_argument("--input-height", type=int, default=32, help="the model's input rows")
        sub.add_argument("--learning-rate", type=float, default=3e-3)
        sub.add_argument("--precision", choices=("float32", "bfloat16"), default="float32")
        sub.add_argument("--validation-lookalikes", type=int, default=1000,
                         help="fresh look-alikes that pick the best epoch when no real images are held out")
        sub.add_argument("--filters", help="convolution filters per block, e.g. 16,64,96,96 "
                         "(default: the trainer's)")
        sub.add_argument("--pipeline", choices=tuple(ARCHS),
                         help="default: the profile's model.pipeline")
        if kind == "generated":
            sub.add_argument("--length", type=int, help="fix the length (e.g. 4)")
            sub.add_argument("--test", type=int, default=2000)
            sub.add_argument("--test-drawer", choices=("profile", "package"), default="profile",
                             help="draw the test images with the profile's look-alike drawer, or "
                             "with the captcha package itself (its default look: use a profile "
                             "with the package's settings, e.g. benchmarks/profiles/captcha_default.yaml)")
            sub.set_defaults(func=generated)
        else:
            sub.add_argument("--data", required=True)
            sub.add_argument("--test-fraction", type=float, default=0.2)
            sub.add_argument("--max-train", type=int, help="use at most this many training images")
            sub.add_argument("--corrections", metavar="CSV",
                             help="file,label rows that fix wrong labels of the dataset (checked "
                             "by eye); figures are given against both the fixed and the given labels")
            sub.set_defaults(func=dataset)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    sys.exit(main())
