"""What durability costs per label: DatasetStore writes, one by one and journalled in a batch.

    python benchmarks/store.py --rows 3000 --labels 300 --name store_writes

Every label is on disk (synced) when ``add`` returns, either way:

* ``one by one`` (the labelling page): the image, then the manifest rewritten
  atomically; its cost grows with the dataset's size.
* ``journalled`` (import, collect, pre-labelling): the image, then one line
  appended to ``labels.journal`` and synced; the manifest is rewritten once a
  second and at the end.

Figures are medians over ``--labels`` adds to a dataset that already holds
``--rows`` labelled images; they go to ``benchmarks/results/NAME.json``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from common import save

from solver.dataset import DatasetStore
from solver.drawing import CaptchaDrawer


def timed_adds(store: DatasetStore, images: list[bytes]) -> list[float]:
    out = []
    for i, image in enumerate(images):
        started = time.perf_counter()
        store.add(image, f"{i:05d}", source="site", verified=True)
        out.append((time.perf_counter() - started) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=3000, help="labelled images already there")
    parser.add_argument("--labels", type=int, default=300, help="adds timed per way")
    parser.add_argument("--name", default="store_writes")
    args = parser.parse_args()

    drawer = CaptchaDrawer(width=120, height=45, font_sizes=(32,), seed=1)
    images = [drawer.png(f"{i:05d}") for i in range(args.rows + 2 * args.labels)]
    figures = {"rows_before": args.rows, "labels": args.labels}
    with tempfile.TemporaryDirectory(dir=".") as folder:
        store = DatasetStore(Path(folder))
        started = time.perf_counter()
        with store.batch():
            for i, image in enumerate(images[:args.rows]):
                store.add(image, f"{i:05d}")
        figures["fill_per_label_ms"] = round((time.perf_counter() - started) * 1000 / args.rows, 3)
        one_by_one = timed_adds(store, images[args.rows:args.rows + args.labels])
        with store.batch():
            journalled = timed_adds(store, images[args.rows + args.labels:])
    for name, samples in (("one_by_one", one_by_one), ("journalled", journalled)):
        figures[name] = {"median_ms": round(statistics.median(samples), 3),
                         "p95_ms": round(sorted(samples)[int(0.95 * len(samples)) - 1], 3)}
        print(f"{name:>10}: median {figures[name]['median_ms']:.3f} ms, "
              f"p95 {figures[name]['p95_ms']:.3f} ms per label at {args.rows}+ rows")
    save(args.name, figures)


if __name__ == "__main__":
    main()
