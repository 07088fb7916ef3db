"""`solver train`, `solver predict` and `solver eval` (with `--curve`, the learning curve)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from solver.archs import ARCHS
from solver.cli._common import (Parents, Verbs, count, load_profile, model_for, models_dir,
                                report_line, resolve)

if TYPE_CHECKING:
    from solver.dataset import Sample

#: the flags of a hand-made recipe, with their defaults; giving any of them means --recipe manual
MANUAL_TRAIN_FLAGS = {"synthetic": 20_000, "real_fraction": 0.5, "start_from": None, "epochs": 30,
                      "epoch_steps": 0, "augment_lookalikes": 0.0, "batch_size": 64,
                      "patience": 6, "emphasise": None, "resume": False}


def _load_tensorflow(args: argparse.Namespace) -> None:
    """Import TensorFlow for a training verb, its C++ start-up lines kept off stderr unless
    --verbose (absl's and CUDA's come from native code whatever TF_CPP_MIN_LOG_LEVEL says)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if args.verbose else "2" if args.debug else "3")
    from solver.quiet import native_stderr_filtered

    with native_stderr_filtered():
        import tensorflow  # noqa: F401


def _start_model(args: argparse.Namespace) -> Path | None:
    """--from: a model folder, or a bare name found like any model (the models folder, then the
    shipped ones), so that `--from general` works from any folder."""
    if not args.start_from:
        return None
    given = Path(args.start_from)
    if given.exists() or len(given.parts) > 1:
        return given
    return model_for(args, args.start_from)


def _train_recipe(args: argparse.Namespace) -> str:
    """auto, real, general or manual: what --recipe says, else what the other flags imply."""
    from solver.errors import UsageError

    given = [name for name, default in MANUAL_TRAIN_FLAGS.items()
             if getattr(args, name) not in (None, default if name == "resume" else None)]
    if args.recipe is None:
        return "auto" if args.data and not given and args.pipeline != "segment" else "manual"
    if args.recipe != "manual" and given:
        flags = ", ".join("--" + {"start_from": "from", "emphasise": "emphasise"}.get(
            name, name.replace("_", "-")) for name in given)
        raise UsageError(f"--recipe {args.recipe} chooses its own settings, so {flags} would be "
                         "ignored: leave them out, or use --recipe manual")
    if args.recipe != "manual" and not args.data:
        raise UsageError(f"--recipe {args.recipe} trains on labelled images: give --data DIR "
                         "(or use --recipe manual for look-alikes only)")
    return args.recipe


def cmd_train(args: argparse.Namespace) -> int:
    _load_tensorflow(args)
    from solver.errors import UsageError
    from solver.training.train import TrainOptions, train

    profile = load_profile(args)
    recipe = _train_recipe(args)
    for name, default in MANUAL_TRAIN_FLAGS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    options = TrainOptions(
        profile=profile, data=[Path(d) for d in args.data], pipeline=args.pipeline,
        synthetic=args.synthetic, real_fraction=args.real_fraction,
        start_from=_start_model(args), epochs=args.epochs,
        time_budget_s=args.time_budget * 60 if args.time_budget else None,
        batch_size=args.batch_size, seed=args.seed,
        out=Path(args.out) if args.out else models_dir(args) / profile.name,
        resume=args.resume, patience=args.patience, quantize=args.quantize,
        workers=args.workers, emphasis=args.emphasise, pseudo_labels=args.pseudo_labels,
        augment_lookalikes=args.augment_lookalikes, max_steps_per_epoch=args.epoch_steps,
        input_height=args.input_height, learning_rate=args.learning_rate,
        precision=args.precision, validation_synthetic=args.validation_lookalikes,
        colour=args.colour)
    if recipe == "manual":
        if args.unlabelled:
            raise UsageError("--unlabelled is for the recipe choice (leave out the manual flags, "
                             "or give --recipe auto); --recipe manual trains on --data only")
        train(options, report=report_line)
        return 0
    from solver.training.recipes import CANDIDATES, RECIPES, auto_train

    if options.time_budget_s is None:
        options.time_budget_s = 15 * 60
    general = model_for(args, "general")
    if recipe == "general" and not (general / "metadata.json").is_file():
        raise UsageError(f"--recipe general starts from {general}, which is not there "
                         "(give --models-dir, or `make general-model`)")
    candidates: tuple[str, ...] = (recipe,)
    if recipe == "auto":
        candidates = tuple(args.candidates.split(",")) if args.candidates else CANDIDATES
        unknown = [name for name in candidates if name not in RECIPES]
        if unknown:
            raise UsageError(f"--candidates {args.candidates}: {', '.join(unknown)} is "
                             f"not a recipe; choose among {', '.join(RECIPES)}, comma-separated")
    elif args.candidates:
        raise UsageError(f"--candidates is for the recipe choice; --recipe {recipe} is one recipe "
                         "(leave out one or the other)")
    auto_train(options, unlabelled=[Path(d) for d in args.unlabelled], report=report_line,
               candidates=candidates, general=general)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Read each file and print its reading as soon as it is read.

    A file that cannot be read is named on stderr with why, and the others are
    still read; the exit status is then 1. Under ``--json`` it is a record
    ``{"file", "error"}`` in the same list (one file: one object, as on success).
    """
    from solver.imaging import ImageError, read_image

    recognizer = resolve(args).load_recognizer(warm_up=False)
    results: list[dict[str, object]] = []
    failed = 0
    for path in args.files:
        try:
            # read_image takes only a regular file, at most the limit for one captcha
            reading = recognizer.read(read_image(path))
        except ImageError as error:
            failed += 1
            message = str(error) if str(error).startswith(path) else f"{path}: {error}"
            print(f"error: {message}", file=sys.stderr, flush=True)
            results.append({"file": path, "error": message})
            continue
        row = {"file": path, "text": reading.text, "confidence": round(reading.confidence, 4),
               "ms": round(reading.milliseconds, 3)}
        results.append(row)
        if not args.json:
            print(f"{path}\t{reading.text}\t{row['confidence']:.4f}", flush=True)
    if args.json:
        print(json.dumps(results if len(results) > 1 else results[0], indent=2))
    if failed and len(args.files) > 1:
        print(f"error: {failed} of {len(args.files)} files could not be read (see above)",
              file=sys.stderr)
    return 1 if failed else 0


def _corrected(samples: list[Sample], args: argparse.Namespace) -> list[Sample]:
    """The samples with ``--corrections`` applied (label fixes by file name)."""
    from solver.dataset import apply_corrections, read_corrections

    if not args.corrections:
        return samples
    fixes = read_corrections(args.corrections)
    samples, changed = apply_corrections(samples, fixes)
    print(f"corrections: {changed} labels fixed from {args.corrections}")
    return samples


def cmd_eval(args: argparse.Namespace) -> int:
    from solver.dataset import check_labels, read_labelled_folder
    from solver.evaluate import evaluate, write_report

    if args.curve:
        return _eval_curve(args)
    site = resolve(args)
    recognizer = site.load_recognizer(warm_up=False)
    samples = _corrected([s for folder in args.data for s in read_labelled_folder(folder)], args)
    fmt = site.profile.format
    labels = check_labels(samples, fmt.charset, fmt.min_length, fmt.max_length, fmt.case_sensitive)
    if labels.refused_count:
        for line in labels.lines():
            print(line)
    result = evaluate(recognizer, labels.kept)
    print(result.table())
    if args.report:
        history_file = recognizer.model_dir / "history.json"
        history = (json.loads(history_file.read_text())["history"]
                   if history_file.is_file() else None)
        written = write_report(result, args.report, f"{site.profile.name}: "
                               f"{recognizer.model_dir} on {', '.join(args.data)}", history)
        print(f"report: {', '.join(str(p) for p in written)}")
    return 0


def _eval_curve(args: argparse.Namespace) -> int:
    _load_tensorflow(args)
    from solver.dataset import check_labels, read_labelled_folder
    from solver.training.curve import CurveOptions, curve_table, learning_curve, parse_sizes, plot_curve

    profile = load_profile(args)
    fmt = profile.format
    samples = _corrected([s for folder in args.data for s in read_labelled_folder(folder)], args)
    labels = check_labels(samples, fmt.charset, fmt.min_length, fmt.max_length, fmt.case_sensitive)
    for line in labels.lines():
        print(line)
    out = Path(args.report or Path("reports") / f"{profile.name}-curve")
    options = CurveOptions(sizes=parse_sizes(args.curve), test_fraction=args.test_fraction,
                           seed=args.seed, synthetic=args.synthetic,
                           start_from=_start_model(args), steps=args.steps, emphasis=None)
    points = learning_curve(profile, labels.kept, options, out, report=report_line)
    print(curve_table(points))
    plot = plot_curve({"this run": points}, out / "curve.png",
                      f"{profile.name}: accuracy against labels")
    print(f"report: {out / 'curve.json'}, {plot}; file lists in {out / 'splits'}")
    return 0


def add_verbs(verbs: Verbs, parents: Parents) -> None:
    """`solver train`, `solver predict` and `solver eval`."""
    training = verbs.add_parser("train", parents=[parents.site_models],
                                help="train a model for a profile (needs the train extra)")
    training.add_argument("--data", action="append", default=[], metavar="DIR",
                          help="labelled folder (labels.csv or label-in-file-name); repeatable")
    training.add_argument("--pseudo-labels", action="store_true",
                          help="also train on pseudo-labels (source pseudo in labels.csv); "
                          "validation still uses real labels only")
    training.add_argument("--pipeline", choices=tuple(ARCHS),
                          help="default: the profile's model.pipeline")
    training.add_argument(
        "--recipe", choices=("auto", "real", "general", "manual"), default=None,
        help="auto (the default with --data): hold out part of the labels, try each recipe on "
        "them within the time budget (real labels only; fine-tuning the general model; then "
        "pseudo-labels of unlabelled images), keep the best; real or general: that recipe "
        "alone, with the same choice of pseudo-labels; manual: exactly the flags below "
        "(the default without --data, and whenever one of the flags below is given)")
    training.add_argument(
        "--candidates", metavar="LIST",
        help="the recipes the choice tries, comma-separated (default real,general,ddddocr); "
        "ddddocr: ddddocr's sure readings of the unlabelled images as pseudo-labels, from the "
        "general model (tried where ddddocr is installed and there are unlabelled images)")
    training.add_argument("--unlabelled", action="append", default=[], metavar="DIR",
                          help="images of the site without labels, for the recipe choice's "
                          "pseudo-labels (a dataset's own unlabelled images count too); repeatable")
    training.add_argument("--synthetic", type=int, default=None, metavar="N",
                          help="look-alike captchas to draw (0: none; default 20000)")
    training.add_argument("--real-fraction", type=float, default=None,
                          help="share of each batch taken from real images (default 0.5)")
    training.add_argument("--from", dest="start_from", metavar="MODEL_DIR",
                          help="fine-tune from this model folder, or a model's name (general: the "
                          "shipped general model)")
    training.add_argument("--epochs", type=int, default=None, help="default 30")
    training.add_argument("--time-budget", type=float, metavar="MINUTES",
                          help="the whole run's time, drawing look-alikes included: stop (keeping "
                          "the best epoch) when the next epoch would pass it (default 15 with "
                          "the recipe choice; none with --recipe manual)")
    training.add_argument("--epoch-steps", type=int, default=None, metavar="N",
                          help="at most N batches an epoch, each epoch a fresh random part of a "
                          "large set (0: the whole set; default)")
    training.add_argument("--augment-lookalikes", type=float, default=None, metavar="STRENGTH",
                          help="warp look-alikes afresh every epoch, so a set seen many times "
                          "is not learnt by heart; it blurs fine detail (0 vs O in the captcha "
                          "package's look lost accuracy), so 0, off, is the default")
    training.add_argument("--input-height", type=int, default=None, metavar="ROWS",
                          help="the model's input rows (default 32, or with --from that model's; "
                               "the width keeps the aspect)")
    training.add_argument("--colour", choices=("auto", "yes", "no"), default="auto",
                          help="read the captchas in colour (RGB) or in gray; auto (the "
                               "default): in colour where most labelled captchas are drawn in "
                               "colour (CTC models)")
    training.add_argument("--learning-rate", type=float, default=3e-3,
                          help="peak learning rate of the warm-up and cosine schedule")
    training.add_argument("--validation-lookalikes", type=count, default=1000, metavar="N",
                          help="fresh look-alikes that pick the best epoch when there are no real "
                          "images to hold out (default 1000; more gives a steadier pick)")
    training.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                          help="bfloat16: the layers compute in bfloat16, faster where the CPU "
                          "has it natively (AVX512-BF16, AMX) or on a GPU; the saved model is "
                          "float32 either way (default float32)")
    training.add_argument("--batch-size", type=int, default=None, help="default 64")
    training.add_argument("--patience", type=int, default=None,
                          help="stop after this many epochs without a better validation score "
                          "(default 6)")
    training.add_argument("--seed", type=int, default=0)
    training.add_argument("--out", metavar="DIR", help="model folder (default: models/NAME)")
    training.add_argument("--resume", action="store_true",
                          help="continue from the last finished epoch in OUT/checkpoint")
    training.add_argument("--quantize", action="store_true",
                          help="int8 weights in the light model (smaller, faster; check accuracy)")
    training.add_argument("--workers", type=int, help="processes drawing look-alikes")
    training.add_argument("--emphasise", metavar="CHARS[:WEIGHT]",
                          help="draw these characters WEIGHT times as often in look-alikes "
                          "(default weight 3), e.g. 0O:3 for a pair the model confuses")
    training.set_defaults(func=cmd_train)

    predict = verbs.add_parser("predict", parents=[parents.site_models, parents.model],
                               help="read captcha image files: FILE<TAB>TEXT<TAB>CONFIDENCE")
    predict.add_argument("files", nargs="+", metavar="FILE")
    predict.add_argument("--json", action="store_true", help="JSON output")
    predict.set_defaults(func=cmd_predict)
    evaluation = verbs.add_parser("eval", parents=[parents.site_models, parents.model],
                                  help="accuracy of a model on labelled folders")
    evaluation.add_argument("--data", action="append", required=True, metavar="DIR",
                            help="labelled folder; repeatable")
    evaluation.add_argument("--report", metavar="DIR",
                            help="write metrics.json, report.md and PNG plots there")
    evaluation.add_argument("--corrections", metavar="CSV",
                            help="file,label rows that fix wrong labels of the data (by file name)")
    evaluation.add_argument("--curve", metavar="N,N,...",
                            help="learning curve: train on this many labels each (e.g. 50,100,200,500) "
                            "and read the same held-out test images (needs the train extra)")
    evaluation.add_argument("--test-fraction", type=float, default=0.2,
                            help="with --curve: share of the labels held out for testing (default 0.2)")
    evaluation.add_argument("--seed", type=int, default=0, help="with --curve: the split's seed")
    evaluation.add_argument("--synthetic", type=int, default=0, metavar="N",
                            help="with --curve: look-alikes mixed in at every point (default 0)")
    evaluation.add_argument("--from", dest="start_from", metavar="MODEL_DIR",
                            help="with --curve: fine-tune every point from this model folder, "
                            "or a model's name (general: the shipped general model)")
    evaluation.add_argument("--steps", type=int, default=1500,
                            help="with --curve: optimiser steps per point (default 1500)")
    evaluation.set_defaults(func=cmd_eval)
