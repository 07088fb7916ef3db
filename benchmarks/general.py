"""The general model with no training on the site: how much of each development set it reads.

Item 4 of the new-site issue: ``models/general`` should read every development set
at least as well as ddddocr does, with no site-specific training at all. Each set's
test part is the one ``benchmarks/newsite.py`` uses (seeded, a fifth, at most 1000
images), so the figures sit beside that table. Readers:

* ``ddddocr``: the peer, as a user runs it (``classification(image)``, its text as
  it comes);
* ``ddddocr-charset``: ddddocr as this project's pre-labeller reads with it, decoded
  within the site's charset (``solver.prelabel.DdddocrReader``); ``ddddocr-mapped``
  the same reader decoding with all of ddddocr's classes, its reading then mapped
  into the site's format (case folded) as the pre-labeller did before;
* each model folder in ``--models`` (``general`` is the shipped one), read as the
  pre-labeller reads (within the site's charset) and, as ``NAME-raw``, with all of
  its classes, then mapped.

    python benchmarks/general.py --models general,models/general-v2 --name general_zero_shot

Figures go to ``benchmarks/results/NAME.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, Ddddocr, git_revision, labelled_samples, save  # noqa: E402
from newsite import CORRECTIONS, PROFILES, SETS, split  # noqa: E402

from solver.prelabel import DdddocrReader, open_reader  # noqa: E402
from solver.profiles import load_profile  # noqa: E402


def score(readings: list[str], truths: list[str], seconds: float) -> dict[str, Any]:
    right = sum(reading == truth for reading, truth in zip(readings, truths))
    return {"sequence_accuracy": right / len(truths), "images": len(truths),
            "ms_per_image": round(seconds * 1000 / len(truths), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=str(ROOT.parent / "shared" / "datasets"))
    parser.add_argument("--sets", default="all", help="comma-separated, or all")
    parser.add_argument("--models", default="general",
                        help="comma-separated model folders, or general (the shipped one)")
    parser.add_argument("--no-ddddocr", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--name", default="general_zero_shot")
    args = parser.parse_args()

    sets = SETS if args.sets == "all" else tuple(args.sets.split(","))
    models = [part.strip() for part in args.models.split(",") if part.strip()]
    figures: dict[str, Any] = {"seed": args.seed, "revision": git_revision(), "models": models,
                               "sets": {}}
    peer = Ddddocr() if Ddddocr.available() and not args.no_ddddocr else None
    for name in sets:
        profile = load_profile(PROFILES / f"{name}.yaml")
        corrections = CORRECTIONS.get(name)
        samples = labelled_samples(profile, str(Path(args.datasets) / name),
                                   str(corrections) if corrections and corrections.is_file() else None)
        test, _ = split(samples, args.seed)
        images = [sample.path.read_bytes() for sample in test]
        truths = [sample.label for sample in test]
        row: dict[str, Any] = {"test_images": len(test), "readers": {}}
        readers: list[tuple[str, Any]] = []
        if peer is not None:
            started = time.perf_counter()
            readings = [profile.format.normalise(peer.read(image)) for image in images]
            row["readers"]["ddddocr"] = score(readings, truths, time.perf_counter() - started)
            readers.append(("ddddocr-charset", DdddocrReader(profile)))
            free = DdddocrReader(profile)
            free.within_charset = False  # mapped into the format (case folded), not decoded in it
            readers.append(("ddddocr-mapped", free))
        for spec in models:
            reader = open_reader(spec, profile, ROOT / "models")
            readers.append((spec, reader))
            raw = open_reader(spec, profile, ROOT / "models")
            raw.within_charset = False  # every class, then mapped: the pre-labeller before
            readers.append((f"{spec}-raw", raw))
        for label, reader in readers:
            started = time.perf_counter()
            proposals = []
            for start in range(0, len(images), 64):
                proposals.extend(reader.propose(images[start:start + 64]))
            row["readers"][label] = score([p.text for p in proposals], truths,
                                          time.perf_counter() - started)
        figures["sets"][name] = row
        print(f"{name} ({len(test)} test images): " + ", ".join(
            f"{label} {figure['sequence_accuracy']:.1%}" for label, figure in row["readers"].items()),
            flush=True)
        save(args.name, figures)
    print_table(figures)


def print_table(figures: dict[str, Any]) -> None:
    labels = list(dict.fromkeys(label for row in figures["sets"].values() for label in row["readers"]))
    print("| set | test | " + " | ".join(labels) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in labels) + " |")
    for name, row in figures["sets"].items():
        cells = [f"{row['readers'][label]['sequence_accuracy']:.1%}" if label in row["readers"] else ""
                 for label in labels]
        print(f"| {name} | {row['test_images']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
