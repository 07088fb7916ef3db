"""A site the project has never seen: the one default command on every development set.

For each labelled set in ``../shared/datasets/`` (with its profile in
``benchmarks/profiles/``), the images are split once, seeded, into a fixed test
part (a fifth, at most 1000 images) and a pool. From the pool come nested
labelled subsets of 50, 100, 200 and 500 images (where the set has them) and,
from what the largest subset leaves, up to ``--unlabelled`` spare images that
are given without their labels. For each subset the command a user would run
is run as a user runs it::

    solver train --site PROFILE --data SUBSET [--unlabelled SPARE] --time-budget B --out OUT

and the model it saves reads the test part; ddddocr reads the same test images.

    python benchmarks/newsite.py --sets all --sizes 50,100,200,500 --budget 15 --name newsite

``--train-args`` runs another command line instead (an expert recipe, for a
comparison), e.g. ``--train-args "--recipe real"``. ``--merge`` runs nothing: it
gathers the default command's runs from earlier results into one table and one PNG
(where two hold the same set and size, the later name's run is taken)::

    python benchmarks/newsite.py --merge newsite_gv2,newsite_50,newsite_r4 --name newsite_all

Figures go to
``benchmarks/results/NAME.json`` and ``NAME.png``; the logs of every run and
the split lists to ``benchmarks/results/models/NAME/`` (not committed).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, ROOT, Ddddocr, git_revision, labelled_samples, save  # noqa: E402

from solver.dataset import Sample, write_list  # noqa: E402
from solver.evaluate import evaluate  # noqa: E402
from solver.profiles import load_profile  # noqa: E402
from solver.recognizers import Recognizer  # noqa: E402

SETS = ("kaggle_v2", "henan_digits", "trt_courts", "dark_digits", "rscaptcha", "lanzhou_digits")
CORRECTIONS = {"henan_digits": ROOT / "benchmarks" / "corrections" / "henan_digits.csv"}
PROFILES = ROOT / "benchmarks" / "profiles"


def split(samples: list[Sample], seed: int, test_limit: int = 1000) -> tuple[list[Sample], list[Sample]]:
    """(test, pool): a seeded fifth (at most ``test_limit``) for testing, the rest as the pool."""
    ordered = sorted(samples, key=lambda s: s.path.name)
    random.Random(seed).shuffle(ordered)
    cut = min(test_limit, round(len(ordered) * 0.2))
    return ordered[:cut], ordered[cut:]


def run_train(profile: Path, train_dir: Path, spare_dir: Path | None, out: Path, budget: float,
              seed: int, extra: list[str], log: Path) -> tuple[int, float]:
    command = [sys.executable, "-m", "solver", "train", "--site", str(profile),
               "--data", str(train_dir), "--time-budget", str(budget), "--seed", str(seed),
               "--out", str(out), *extra]
    if spare_dir is not None:
        command += ["--unlabelled", str(spare_dir)]
    started = time.monotonic()
    with log.open("w", encoding="utf-8") as handle:
        handle.write(" ".join(shlex.quote(part) for part in command) + "\n")
        handle.flush()
        process = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT,
                                 check=False)
    return process.returncode, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=str(ROOT.parent / "shared" / "datasets"))
    parser.add_argument("--sets", default="all", help="comma-separated, or all")
    parser.add_argument("--sizes", default="50,100,200,500")
    parser.add_argument("--unlabelled", type=int, default=5000, help="spare images at most")
    parser.add_argument("--budget", type=float, default=15, help="--time-budget, minutes")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--train-args", default="", help="more arguments for solver train")
    parser.add_argument("--no-ddddocr", action="store_true")
    parser.add_argument("--name", default="newsite")
    parser.add_argument("--merge", default="",
                        help="comma-separated result names to gather into NAME (runs nothing)")
    args = parser.parse_args()
    if args.merge:
        names = args.merge.split(",")
        figures = merge({name: json.loads((RESULTS / f"{name}.json").read_text())["figures"]
                         for name in names})
        save(args.name, figures)
        print_table(figures)
        plot(figures, RESULTS / f"{args.name}.png")
        return

    sets = SETS if args.sets == "all" else tuple(args.sets.split(","))
    sizes = [int(size) for size in args.sizes.split(",")]
    work = RESULTS / "models" / args.name
    figures: dict[str, Any] = {"budget_minutes": args.budget, "seed": args.seed,
                               "train_args": args.train_args, "revision": git_revision(),
                               "sets": {}}
    results_path = RESULTS / f"{args.name}.json"
    if results_path.is_file():  # a rerun adds to what an earlier run measured
        figures["sets"] = json.loads(results_path.read_text())["figures"].get("sets", {})
    ddddocr = Ddddocr() if Ddddocr.available() and not args.no_ddddocr else None
    for name in sets:
        profile_path = PROFILES / f"{name}.yaml"
        profile = load_profile(profile_path)
        corrections = CORRECTIONS.get(name)
        samples = labelled_samples(profile, str(Path(args.datasets) / name),
                                   str(corrections) if corrections and corrections.is_file() else None)
        test, pool = split(samples, args.seed)
        usable = [size for size in sizes if size <= len(pool)] or [len(pool)]
        spare = pool[max(usable):max(usable) + args.unlabelled]
        folder = work / name
        write_list(test, folder / "test")  # the fixed test part, listed for reference
        spare_dir = write_list(spare, folder / "spare") if spare else None
        record = figures["sets"].setdefault(name, {"runs": {}})
        record.update({"images": len(samples), "test_images": len(test), "spare_images": len(spare)})
        if ddddocr is not None and "ddddocr" not in record:
            record["ddddocr"] = ddddocr.run([s.path.read_bytes() for s in test],
                                            [s.label for s in test], profile.format.normalise)
            print(f"{name}: ddddocr {record['ddddocr']['sequence_accuracy']:.2%} on {len(test)}")
        for size in usable:
            train_dir = write_list(pool[:size], folder / f"train_{size}")
            out = folder / f"model_{size}"
            code, seconds = run_train(profile_path, train_dir, spare_dir, out, args.budget,
                                      args.seed, shlex.split(args.train_args),
                                      folder / f"train_{size}.log")
            run: dict[str, Any] = {"labels": size, "seconds": round(seconds, 1), "exit": code}
            if code == 0:
                evaluation = evaluate(Recognizer(out, profile), test)
                metadata = json.loads((out / "metadata.json").read_text())
                run.update({"sequence_accuracy": evaluation.sequence_accuracy,
                            "recipe": metadata["training"].get("recipe", {}).get("chosen", "")})
                print(f"{name} {size} labels: {evaluation.sequence_accuracy:.2%} on {len(test)} "
                      f"test images ({seconds / 60:.1f} min, recipe {run['recipe'] or '-'})",
                      flush=True)
            else:
                print(f"{name} {size} labels: solver train exited {code} (see "
                      f"{folder / f'train_{size}.log'})", flush=True)
            record["runs"][str(size)] = run
            save(args.name, figures)
    print_table(figures)
    plot(figures, RESULTS / f"{args.name}.png")


def merge(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The default command's runs of several results, each run marked with where it came
    from; a set and size that two hold takes the later one's run."""
    budgets = {figures["budget_minutes"] for figures in results.values()}
    others = [name for name, figures in results.items() if figures.get("train_args")]
    if others or len(budgets) != 1:
        budgets_said = ", ".join(f"{name}: {figures['budget_minutes']:g} min"
                                 for name, figures in results.items())
        raise SystemExit("--merge gathers runs of the default command with one budget: "
                         f"{', '.join(others) + ' ran other arguments' if others else 'the budgets differ'}"
                         f" ({budgets_said})")
    merged: dict[str, Any] = {"budget_minutes": budgets.pop(), "train_args": "",
                              "merged": {name: figures["revision"] for name, figures in results.items()},
                              "sets": {}}
    for set_name in SETS:  # in the usual order
        for name, figures in results.items():
            record = figures["sets"].get(set_name)
            if record is None:
                continue
            into = merged["sets"].setdefault(set_name, {"runs": {}})
            into.update({key: value for key, value in record.items() if key != "runs"})
            for size, run in record["runs"].items():
                into["runs"][size] = {**run, "from": name, "revision": figures["revision"]}
        if set_name in merged["sets"]:
            runs = merged["sets"][set_name]["runs"]
            merged["sets"][set_name]["runs"] = dict(sorted(runs.items(), key=lambda kv: int(kv[0])))
    return merged


def print_table(figures: dict[str, Any]) -> None:
    sizes = sorted({int(size) for record in figures["sets"].values() for size in record["runs"]})
    print("| set | test | " + " | ".join(f"{size} labels" for size in sizes) + " | ddddocr |")
    print("| --- | --- | " + " | ".join("---" for _ in sizes) + " | --- |")
    for name, record in figures["sets"].items():
        cells = []
        for size in sizes:
            run = record["runs"].get(str(size))
            cells.append("" if run is None or "sequence_accuracy" not in run else
                         f"{run['sequence_accuracy']:.1%} ({run['seconds'] / 60:.0f} min)")
        dddd = record.get("ddddocr", {}).get("sequence_accuracy")
        print(f"| {name} | {record['test_images']} | " + " | ".join(cells)
              + f" | {'' if dddd is None else f'{dddd:.1%}'} |")


def plot(figures: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.5, 4), dpi=110)
    for name, record in figures["sets"].items():
        runs = sorted((int(size), run["sequence_accuracy"]) for size, run in record["runs"].items()
                      if "sequence_accuracy" in run)
        if runs:
            axis.plot([r[0] for r in runs], [100 * r[1] for r in runs], marker="o", label=name)
    axis.set_xscale("log")
    sizes = sorted({int(size) for record in figures["sets"].values() for size in record["runs"]})
    axis.set_xticks(sizes, [str(size) for size in sizes])  # 50, 100, 500: not 6 x 10^1
    axis.minorticks_off()
    axis.set_xlabel("real labels")
    axis.set_ylabel("sequence accuracy on the test part (%)")
    axis.set_title(f"solver train, default command, {figures['budget_minutes']:g} min budget")
    axis.axhline(95, color="grey", linewidth=0.8, linestyle="--")
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    print(f"saved {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
