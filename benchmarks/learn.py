"""`solver learn` from zero hand labels on local-site looks that no shipped model knows.

For each style (default ``serif`` and ``stencil``, see ``solver/demo_site/styles.yaml``)
the local site is served on 127.0.0.1 and the command a user would run is run as a
user runs it, from an empty dataset and an empty models folder (so the run starts
from ddddocr when it is installed, else the shipped general model)::

    solver learn --site STYLE --url URL --data WORK/data --models-dir WORK/models \\
        --time-budget B --rate R --per-round N

Its figures come from the run's own record (``WORK/data/learn/state.json`` and
``captchas.jsonl``): each round's first-attempt success on fresh captchas as the
site judged it, the submissions it took, the time. The model it leaves then reads
``--test`` fresh captchas drawn offline by the site's drawer. Beside it, the same
style trained the default way from ``--hand-labels`` (500) hand labels (drawn
with their answers)::

    solver train --site STYLE --data HAND --time-budget HB --out WORK/hand

reads the same test captchas.

    python benchmarks/learn.py --styles serif,stencil --budget 30 --hand-budget 15 --name learn

``--budget 0`` runs the hand-label part alone, and ``--hand-args`` adds flags to its
``solver train`` (a ceiling: many exact labels, one long schedule)::

    python benchmarks/learn.py --styles stencil --budget 0 --hand-labels 2000 --hand-budget 8 \
        --hand-args "--recipe manual --from solver/shipped/models/general --synthetic 0 \
        --batch-size 32 --epochs 100000 --patience 1000" --name stencil_2000_one_schedule

Figures go to ``benchmarks/results/NAME.json``; logs and models to
``benchmarks/results/models/NAME/`` (not committed).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, ROOT, git_revision, save  # noqa: E402

from solver.demo_site import CaptchaSite, SiteServer  # noqa: E402
from solver.demo_site.styles import get_style  # noqa: E402
from solver.drawing import random_text  # noqa: E402
from solver.profiles import ProfileRegistry  # noqa: E402


def drawn(style_name: str, count: int, seed: int) -> list[tuple[bytes, str]]:
    """``count`` captchas of the style with their answers, as the site draws them."""
    style = get_style(style_name)
    rng = random.Random(seed)
    return [(style.image(text), text) for text in
            (random_text(rng, style.charset, style.min_length, style.max_length)
             for _ in range(count))]


def write_folder(samples: list[tuple[bytes, str]], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["file,label"]
    for index, (data, text) in enumerate(samples):
        (folder / f"{index:05d}.png").write_bytes(data)
        rows.append(f"{index:05d}.png,{text}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


def read_accuracy(model_dir: Path, style_name: str, test: list[tuple[bytes, str]]) -> float | None:
    from solver.recognizers import Recognizer

    if not (model_dir / "metadata.json").is_file():
        return None
    profile = ProfileRegistry().load(style_name)
    fmt = profile.format
    readings = Recognizer(model_dir, profile).read_batch([data for data, _ in test])
    return sum(fmt.normalise(r.text) == fmt.normalise(text)
               for r, (_, text) in zip(readings, test)) / len(test)


def run(command: list[str], log: Path) -> tuple[int, float]:
    started = time.monotonic()
    with log.open("w", encoding="utf-8") as out:
        code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                              check=False).returncode
    return code, time.monotonic() - started


def learn_style(style: str, args: argparse.Namespace, work: Path,
                test: list[tuple[bytes, str]]) -> dict[str, Any]:
    """One `solver learn` run from nothing, against a fresh local site."""
    site = CaptchaSite(styles=[style], seed=args.seed)
    data, models = work / "data", work / "models"
    for folder in (data, models):
        shutil.rmtree(folder, ignore_errors=True)
    models.mkdir(parents=True)
    with SiteServer(site.app, port=0) as server:
        command = [sys.executable, "-m", "solver", "learn", "--site", style,
                   "--url", server.url_for(style), "--data", str(data), "--models-dir",
                   str(models), "--time-budget", str(args.budget), "--rate", str(args.rate),
                   "--per-round", str(args.per_round), "--round-minutes", str(args.round_minutes),
                   "--target", str(args.target), "--start", args.start]
        if args.read_on_minutes is not None:
            command += ["--read-on-minutes", str(args.read_on_minutes)]
        print(f"{style}: {' '.join(command[2:])}", flush=True)
        code, seconds = run(command, work / "learn.log")
    state = json.loads((data / "learn" / "state.json").read_text(encoding="utf-8"))
    log = [json.loads(line) for line in
           (data / "learn" / "captchas.jsonl").read_text(encoding="utf-8").splitlines() if line]
    submitted = sum(r["outcome"] in ("accepted", "refused", "unknown") for r in log)
    rounds = [{key: record.get(key) for key in ("round", "reader", "shown", "submitted",
                                                  "accepted", "rate", "labels", "training",
                                                  "while_training")}
              for record in state["rounds"]]
    # the target is the site's own model's, as solver learn counts it: not a starting reader's
    reached = next((r for r in rounds if r["reader"] == "site" and r["rate"] >= args.target), None)
    result = {
        "exit_status": code, "seconds": round(seconds, 1), "stopped": state.get("stopped"),
        "rounds": rounds, "submitted": submitted, "site_stats": dict(site.stats),
        "labels": rounds[-1]["labels"] if rounds else 0,
        "target_reached": reached is not None,
        "submissions_to_target": (sum(1 for r in log if r["round"] <= reached["round"]
                                      and r["outcome"] != "not-submitted") if reached else None),
        "last_round_rate": rounds[-1]["rate"] if rounds else None,
        "test_accuracy": read_accuracy(models / style, style, test),
    }
    for record in rounds:
        print(f"  round {record['round']} ({record['reader']}): {record['rate']:.1%} of "
              f"{record['shown']}, {record['labels']} labels", flush=True)
    print(f"  {style}: stopped ({result['stopped']}); {submitted} submissions, "
          f"{seconds / 60:.1f} min; offline test {result['test_accuracy']}", flush=True)
    return result


def hand_style(style: str, args: argparse.Namespace, work: Path,
               test: list[tuple[bytes, str]]) -> dict[str, Any]:
    """The default command on ``--hand-labels`` hand labels of the style."""
    folder = write_folder(drawn(style, args.hand_labels, args.seed + 1), work / "hand-data")
    out = work / "hand-model"
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "solver", "train", "--site", style, "--data", str(folder),
               "--time-budget", str(args.hand_budget), "--out", str(out),
               *shlex.split(args.hand_args)]
    print(f"{style}: {' '.join(command[2:])}", flush=True)
    code, seconds = run(command, work / "hand.log")
    accuracy = read_accuracy(out, style, test)
    print(f"  {style}, {args.hand_labels} hand labels: offline test {accuracy}, "
          f"{seconds / 60:.1f} min", flush=True)
    return {"exit_status": code, "seconds": round(seconds, 1), "labels": args.hand_labels,
            "test_accuracy": accuracy}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--styles", default="serif,stencil")
    parser.add_argument("--budget", type=float, default=30,
                        help="solver learn's minutes (0: skip it, the hand-label run only)")
    parser.add_argument("--rate", type=float, default=5, help="submissions a second")
    parser.add_argument("--per-round", type=int, default=200)
    parser.add_argument("--round-minutes", type=float, default=5)
    parser.add_argument("--read-on-minutes", type=float,
                        help="solver learn --read-on-minutes (default: its own)")
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--start", default="auto", help="solver learn --start")
    parser.add_argument("--hand-labels", type=int, default=500)
    parser.add_argument("--hand-budget", type=float, default=15,
                        help="minutes of the default `solver train` on the hand labels (0: skip)")
    parser.add_argument("--hand-args", default="",
                        help="more `solver train` flags for the hand-label run, e.g. '--recipe "
                             "manual --from solver/shipped/models/general --synthetic 0'")
    parser.add_argument("--test", type=int, default=500, help="offline test captchas per style")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--name", default="learn")
    args = parser.parse_args()
    figures: dict[str, Any] = {"revision": git_revision(), "settings": vars(args), "styles": {}}
    for style in args.styles.split(","):
        work = RESULTS / "models" / args.name / style
        work.mkdir(parents=True, exist_ok=True)
        test = drawn(style, args.test, args.seed + 2)
        figures["styles"][style] = ({"learn": learn_style(style, args, work, test)}
                                    if args.budget > 0 else {})
        if args.hand_budget > 0:
            figures["styles"][style]["hand"] = hand_style(style, args, work, test)
        save(args.name, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
