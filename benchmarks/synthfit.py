"""Does a fit transfer? Look-alikes fitted to a real set, judged by a model trained on them alone.

For each real set: fit the look on ``--fit-images`` labelled images (``solver synth fit``'s
own function), draw ``--lookalikes`` look-alikes with the fitted settings, train a tiny CTC
reader on those alone for ``--steps``, and read ``--test`` other labelled images of the
set. A fit a person would accept transfers; one that only matches image statistics does not.

    python benchmarks/synthfit.py --label after                 # every set, saved as JSON
    python benchmarks/synthfit.py --label try --sets henan_digits --steps 300 --sheets /tmp/sheets

The sets are read in place from ``--datasets`` (never copied); results go to
``benchmarks/results/synthfit_LABEL.json``. ``--root DIR`` measures another checkout's fit
(``git worktree add /tmp/before HEAD~3``, then ``--root /tmp/before --label before``).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

SETS = ("kaggle_v2", "henan_digits", "trt_courts", "dark_digits", "rscaptcha", "lanzhou_digits")
HERE = Path(__file__).resolve().parent


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--label", required=True, help="name of this run (before, after, ...)")
    parser.add_argument("--sets", nargs="+", default=list(SETS))
    parser.add_argument("--datasets", default=str(HERE.parent.parent / "shared" / "datasets"))
    parser.add_argument("--root", help="the checkout whose solver package fits (default: this one)")
    parser.add_argument("--fit-images", type=int, default=96)
    parser.add_argument("--lookalikes", type=int, default=3000)
    parser.add_argument("--steps", type=int, default=1200,
                        help="training steps (batches of 32) per set: steps, not seconds, so "
                        "that runs on a busy machine compare")
    parser.add_argument("--test", type=int, default=400, help="labelled images read per set")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sheets", help="folder for preview sheets (real | look-alike); "
                        "kept out of the repository: they hold the real images")
    return parser.parse_args(argv)


def _decode(probabilities: Any, charset: str) -> list[str]:
    """Greedy CTC decoding: best class per step, repeats collapsed, blanks (last) dropped."""
    import numpy as np

    blank = len(charset)
    texts = []
    for row in np.argmax(probabilities, axis=-1):
        out, previous = [], -1
        for index in row:
            if index != previous and index != blank:
                out.append(charset[index])
            previous = index
        texts.append("".join(out))
    return texts


def _train_and_read(lookalikes: Any, own_test: Any, test: Any, charset: str, max_length: int,
                    steps: int, seed: int) -> dict[str, Any]:
    import keras
    import numpy as np

    from solver.training.data import as_model_input
    from solver.training.models import CTCConfig, CTCLoss, build_ctc_model, encode_labels
    from solver.training.synth import augment

    height, width = lookalikes.images.shape[1:]
    keras.utils.set_random_seed(seed)
    config = CTCConfig(height=height, width=width, filters=(8, 16, 32, 32), head_units=64)
    model, inference = build_ctc_model(len(charset) + 1, config)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss=CTCLoss(blank=len(charset)))
    targets = encode_labels(lookalikes.labels, charset, max_length)
    rng = np.random.default_rng(seed)
    began, batch = time.perf_counter(), 32
    for _ in range(steps):
        chosen = rng.choice(len(lookalikes), batch, replace=False)
        images = augment(lookalikes.images[chosen], rng, 0.5)
        model.train_on_batch(as_model_input(images), targets[chosen])
    seconds = time.perf_counter() - began
    def read(images: Any) -> list[str]:
        return _decode(inference.predict(as_model_input(images), verbose=0, batch_size=128),
                       charset)

    readings = read(test.images)
    own = read(own_test.images)  # did it learn the look-alikes themselves?
    right = sum(reading == truth for reading, truth in zip(readings, test.labels))
    characters = sum(sum(a == b for a, b in zip(reading, truth)) for reading, truth
                     in zip(readings, test.labels))
    return {"sequence_accuracy": right / len(test.labels),
            "character_accuracy": characters / sum(len(t) for t in test.labels),
            "lookalike_accuracy": sum(r == t for r, t in zip(own, own_test.labels))
            / len(own_test.labels),
            "train_steps": steps, "batch_size": batch, "train_seconds": round(seconds, 1),
            "examples": [f"{truth}->{reading}" for truth, reading
                         in list(zip(test.labels, readings))[:8]]}


def run_set(name: str, args: argparse.Namespace) -> dict[str, Any]:
    import cv2
    import numpy as np

    from solver.charset import Charset
    from solver.dataset import read_labelled_folder
    from solver.profiles import load_profile
    from solver.synth import fit_look, load_sample, preview_sheet
    from solver.training.data import load_samples
    from solver.training.synth import ImageSet, draw_lookalikes

    folder = Path(args.datasets) / name
    profile = load_profile(HERE / "profiles" / f"{name}.yaml")
    fmt = profile.format
    charset = Charset(fmt.charset, fmt.case_sensitive)
    images, labels = load_sample(folder, args.fit_images, args.seed)
    labels = [fmt.normalise(label) if fmt.label_problem(label) is None else "" for label in labels]
    began = time.perf_counter()
    result = fit_look(images, labels, profile.synthetic, fmt.charset, fmt.length,
                      fonts_base=profile.source.parent if profile.source else None,
                      seed=args.seed, progress=lambda line: None,
                      **({"case_sensitive": fmt.case_sensitive} if "case_sensitive" in
                         inspect.signature(fit_look).parameters else {}))
    fit_seconds = time.perf_counter() - began
    fitted = profile.model_copy(update={"synthetic": result.settings})
    height = 24  # the tiny reader's input: small, for a quick verdict on a busy machine
    width = max(32, int(round(height * fitted.synthetic.width / fitted.synthetic.height / 8)) * 8)
    lookalikes = draw_lookalikes(fitted, args.lookalikes, height, width, seed=args.seed, workers=1)
    # the test images: labelled ones the fit did not see
    samples = [s for s in read_labelled_folder(folder) if fmt.label_problem(s.label) is None]
    # load_sample's own pick, repeated, is left out
    chosen = random.Random(args.seed).sample(read_labelled_folder(folder),
                                             min(args.fit_images, len(samples)))
    fit_names = {s.path.name for s in chosen}
    rest = [s for s in samples if s.path.name not in fit_names]
    rest = random.Random(args.seed + 1).sample(rest, min(args.test, len(rest)))
    test, _ = load_samples(rest, height, width)
    test = ImageSet(test.images, [charset.normalise(label) for label in test.labels])
    own_test = draw_lookalikes(fitted, 200, height, width, seed=args.seed + 7, workers=1)
    reading = _train_and_read(lookalikes, own_test, test, fmt.charset, fmt.max_length, args.steps,
                              args.seed)
    if args.sheets:
        from solver.drawing import CaptchaDrawer

        drawer = CaptchaDrawer.from_settings(result.settings, profile.source.parent, seed=1)
        pairs = [(np.asarray(drawer.image(label)), label) for label in labels[:10] if label]
        sheet = preview_sheet(pairs, list(zip(images[:10], labels[:10])),
                              (f"{name} real", f"look-alike ({args.label})"))
        Path(args.sheets).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(Path(args.sheets) / f"{name}_{args.label}.png"),
                    cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(f"{name}: fit {fit_seconds:.0f} s (distance {result.score_before:.2f} -> "
          f"{result.score_after:.2f}); look-alikes only: {reading['sequence_accuracy']:.1%} of "
          f"{len(test.labels)} real images, {reading['character_accuracy']:.1%} of characters "
          f"({reading['lookalike_accuracy']:.1%} of its own look-alikes)",
          flush=True)
    return {"fit_seconds": round(fit_seconds, 1), "fit_images": len(images),
            "distance_before": round(result.score_before, 3),
            "distance_after": round(result.score_after, 3),
            "settings": result.settings.model_dump(mode="json"),
            "test_images": len(test.labels), **reading}


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    root = Path(args.root).resolve() if args.root else HERE.parent
    sys.path.insert(0, str(HERE))
    from common import git_revision, save

    sys.path.insert(0, str(root))  # after common's own insert: this checkout's solver wins
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import solver

    print(f"fitting with {Path(solver.__file__).parent}", flush=True)
    figures: dict[str, Any] = {"label": args.label, "revision": git_revision(),
                               "fit_root": str(root), "lookalikes": args.lookalikes,
                               "steps": args.steps, "sets": {}}
    earlier = HERE / "results" / f"synthfit_{args.label}.json"
    if earlier.is_file():  # a rerun of some sets keeps the others' figures
        figures["sets"] = json.loads(earlier.read_text(encoding="utf-8"))["figures"]["sets"]
    for name in args.sets:
        try:
            figures["sets"][name] = run_set(name, args)
        except Exception as error:  # a fit that fails is a finding, not the end of the run
            print(f"{name}: failed: {type(error).__name__}: {error}", flush=True)
            figures["sets"][name] = {"error": f"{type(error).__name__}: {error}"[:500]}
        save(f"synthfit_{args.label}", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
