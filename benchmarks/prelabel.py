"""Pre-labelling: how good are proposals from readers with no site-specific training?

For a labelled folder and a profile written for it, each reader (ddddocr, the
shipped general model, or any model folder) proposes a label for every image
of the seeded test part (the same images as the learning curves). Printed and
saved per reader:

* the share of proposals that are exactly right (what a person only confirms
  on the labelling page, instead of typing);
* the share that do not fit the site's format (no proposal);
* for self-training: at confidence thresholds 0.90, 0.95, 0.98 and 0.99, how
  many images would become pseudo-labels (coverage) and how many of those
  labels are right (precision).

    python benchmarks/prelabel.py --profile benchmarks/profiles/kaggle_v2.yaml \\
        --data ../shared/datasets/kaggle_v2 --readers ddddocr,general --name kaggle_v2
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, git_revision, labelled_samples, save  # noqa: E402

from solver.dataset import split_samples  # noqa: E402
from solver.prelabel import open_reader  # noqa: E402
from solver.profiles import load_profile  # noqa: E402

THRESHOLDS = (0.90, 0.95, 0.98, 0.99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--name", required=True, help="results name: prelabel_NAME.json")
    parser.add_argument("--readers", default="ddddocr,general",
                        help="comma-separated: ddddocr, general, or model folders")
    parser.add_argument("--corrections", metavar="CSV")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    args = parser.parse_args()

    profile = load_profile(args.profile)
    kept = labelled_samples(profile, args.data, args.corrections)
    _, test = split_samples(kept, args.test_fraction, args.seed)
    images = [s.path.read_bytes() for s in test]
    truths = [s.label for s in test]
    figures: dict = {"profile": args.profile, "data": args.data, "test_images": len(test),
                     "seed": args.seed, "revision": git_revision(), "readers": {}}
    print(f"{len(test)} test images (seed {args.seed}, the learning curves' test part)")
    for spec in [part.strip() for part in args.readers.split(",") if part.strip()]:
        reader = open_reader(spec, profile, ROOT / "models")
        started = time.perf_counter()
        proposals = reader.propose(images)
        milliseconds = (time.perf_counter() - started) * 1000 / len(images)
        right = [p.text == t for p, t in zip(proposals, truths)]
        row = {"exact": sum(right) / len(test), "no_fit": sum(not p.fits for p in proposals) / len(test),
               "ms_per_image": round(milliseconds, 2), "pseudo_labels": {}}
        print(f"{spec}: {row['exact']:.2%} exactly right, {row['no_fit']:.2%} do not fit the format, "
              f"{milliseconds:.1f} ms an image")
        for threshold in THRESHOLDS:
            chosen = [ok for p, ok in zip(proposals, right)
                      if p.fits and p.confidence is not None and p.confidence >= threshold]
            coverage = len(chosen) / len(test)
            precision = sum(chosen) / len(chosen) if chosen else None
            row["pseudo_labels"][f"{threshold:.2f}"] = {"coverage": coverage, "precision": precision}
            shown = f"{precision:.2%}" if precision is not None else "-"
            print(f"   confidence >= {threshold:.2f}: {coverage:.2%} of the images, {shown} of them right")
        figures["readers"][spec] = row
    save(f"prelabel_{args.name}", figures)


if __name__ == "__main__":
    main()
