"""Learning curves: sequence accuracy against the number of real labels (issue 6).

For one labelled folder and a profile written for it, the labels are split once
(seeded; the file lists are saved) into a test part and a training pool, and
models are trained on the first 50, 100, 200, 500... images of the pool, in up
to three ways, all read on the same test images:

* ``real``: the real labels only, from scratch;
* ``lookalikes``: the real labels mixed with look-alikes drawn from the
  profile's ``synthetic`` settings (fit them first with ``solver synth fit``);
* ``transfer``: a model pre-trained on look-alikes alone (``--pretrain-minutes``,
  or an existing one with ``--from``), fine-tuned on the real labels mixed
  with look-alikes.

ddddocr, which needs no training, reads the same test images as the peer.

    python benchmarks/curve.py --profile benchmarks/profiles/henan_digits_fitted.yaml \\
        --data ../shared/datasets/henan_digits --corrections benchmarks/corrections/henan_digits.csv \\
        --sizes 50,100,200,500 --seed 1 --name henan_digits

Nothing here is specific to the shipped datasets: any folder of labelled
captchas (labels.csv, or labels in the file names) with a profile works.
Figures go to ``benchmarks/results/curve_NAME.json`` and ``curve_NAME.png``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, Ddddocr, git_revision, labelled_samples, save  # noqa: E402

from solver.dataset import split_samples  # noqa: E402
from solver.evaluate import evaluate  # noqa: E402
from solver.profiles import load_profile  # noqa: E402
from solver.recognizers import Recognizer  # noqa: E402
from solver.training.curve import CurveOptions, curve_table, learning_curve, parse_sizes, plot_curve  # noqa: E402

VARIANTS = ("real", "lookalikes", "transfer")
TITLES = {"real": "real labels only", "lookalikes": "real + look-alikes",
          "transfer": "pre-trained on look-alikes, fine-tuned"}


def pretrain(profile, args: argparse.Namespace) -> tuple[Path, dict]:  # type: ignore[no-untyped-def]
    """A model trained on look-alikes alone, the starting point of the transfer curve."""
    from solver.training.train import TrainOptions, train

    out = RESULTS / "models" / f"curve_{args.name}_pretrained"
    started = time.monotonic()
    result = train(TrainOptions(profile=profile, data=[], synthetic=args.pretrain_synthetic,
                                epochs=args.pretrain_epochs, time_budget_s=args.pretrain_minutes * 60,
                                seed=args.seed, out=out, patience=10_000),
                   report=lambda line: print("   " + line, flush=True))
    return out, {"model": str(out.relative_to(RESULTS.parent.parent)), "synthetic": args.pretrain_synthetic,
                 "seconds": round(time.monotonic() - started, 1), "epochs": result.epochs,
                 "validation_accuracy_on_lookalikes": result.best_accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", required=True, help="profile .yaml written for the data")
    parser.add_argument("--data", required=True, help="labelled folder")
    parser.add_argument("--name", required=True, help="results name: curve_NAME.json/.png")
    parser.add_argument("--corrections", metavar="CSV", help="file,label fixes of wrong labels")
    parser.add_argument("--sizes", default="50,100,200,500")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--steps", type=int, default=1500, help="optimiser steps per point")
    parser.add_argument("--synthetic", type=int, default=20_000,
                        help="look-alikes mixed in (lookalikes and transfer)")
    parser.add_argument("--from", dest="start_from", help="transfer from this model instead of pre-training")
    parser.add_argument("--pretrain-minutes", type=float, default=8.0)
    parser.add_argument("--pretrain-epochs", type=int, default=20)
    parser.add_argument("--pretrain-synthetic", type=int, default=30_000)
    args = parser.parse_args()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"--variants: unknown {sorted(unknown)}; choose from {', '.join(VARIANTS)}")

    profile = load_profile(args.profile)
    fmt = profile.format
    kept = labelled_samples(profile, args.data, args.corrections)
    out = RESULTS / "curves" / args.name
    figures: dict = {"profile": args.profile, "data": args.data, "corrections": args.corrections,
                     "seed": args.seed, "steps": args.steps, "synthetic": args.synthetic,
                     "revision": git_revision(), "curves": {}}

    _, test = split_samples(kept, args.test_fraction, args.seed)
    if Ddddocr.available():
        images = [s.path.read_bytes() for s in test]
        peer = Ddddocr().run(images, [s.label for s in test], fmt.normalise)
        print(f"ddddocr, no training: {peer['sequence_accuracy']:.2%} on the {len(test)} test images")
        figures["ddddocr"] = peer

    curves = {}
    for variant in variants:
        start_from = None
        if variant == "transfer":
            if args.start_from:
                start_from = Path(args.start_from)
                figures["pretrained"] = {"model": args.start_from}
            else:
                print(f"== pre-training on {args.pretrain_synthetic} look-alikes "
                      f"({args.pretrain_minutes:g} minutes at most)", flush=True)
                start_from, figures["pretrained"] = pretrain(profile, args)
                # the starting point itself, with no real label: the curve's zero
                zero = evaluate(Recognizer(start_from, profile), test)
                figures["pretrained"]["sequence_accuracy_no_labels"] = zero.sequence_accuracy
                print(f"pre-trained model, no real labels: {zero.sequence_accuracy:.2%} on the "
                      f"{len(test)} test images", flush=True)
        print(f"== {variant}: {TITLES[variant]}", flush=True)
        options = CurveOptions(sizes=parse_sizes(args.sizes), test_fraction=args.test_fraction,
                               seed=args.seed, synthetic=0 if variant == "real" else args.synthetic,
                               start_from=start_from, steps=args.steps)
        points = learning_curve(profile, kept, options, out / variant,
                                report=lambda line: print(line, flush=True))
        print(curve_table(points), flush=True)
        curves[TITLES[variant]] = points
        figures["curves"][variant] = [asdict(point) for point in points]
        figures["test_images"] = points[0].test_images
        plot = plot_curve(curves, RESULTS / f"curve_{args.name}.png",
                          f"{profile.name}: accuracy against real labels"
                          + (f" (ddddocr {figures['ddddocr']['sequence_accuracy']:.1%})"
                             if "ddddocr" in figures else ""))
        figures["plot"] = str(plot.relative_to(RESULTS.parent.parent))
        save(f"curve_{args.name}", figures)


if __name__ == "__main__":
    main()
