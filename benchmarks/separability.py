"""How well can two characters of a look be told apart at all? A ceiling for a reader.

Draws the profile's look-alikes with one character of the pair (say 0 or O) at a
random position among others, crops that character at full resolution (the drawer
says where each character is), and trains a small CNN on the crops alone, so all
of its capacity goes to the pair. Its accuracy on fresh crops, per epoch, shows
how much of a reader's confusion of the pair is the look's and how much the
reader's:

    python benchmarks/separability.py --profile benchmarks/profiles/captcha_default.yaml \
        --pair 0O --train 80000 --epochs 6 --name separability_0O

Figures go to ``benchmarks/results/NAME.json``.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from multiprocessing import Pool

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from common import git_revision, save  # noqa: E402

from solver.drawing import CaptchaDrawer  # noqa: E402
from solver.profiles import load_profile  # noqa: E402

CHUNK = 2000  # crops per worker job


def draw_crops(job: tuple[str, str, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``CHUNK`` crops of the pair's characters (label: index in the pair), seeded."""
    profile_path, pair, crop_width, seed, count = job
    profile = load_profile(profile_path)
    drawer = CaptchaDrawer.from_settings(profile.synthetic, profile.source.parent, seed=seed)
    if not isinstance(drawer, CaptchaDrawer):
        raise SystemExit(f"{profile_path}: one look only (no synthetic.variants)")
    fmt = profile.format
    others = [c for c in fmt.charset if c not in pair]
    rng = random.Random(seed)
    crops, labels = [], []
    for _ in range(count):
        length = rng.randint(fmt.min_length, fmt.max_length)
        text = [rng.choice(others) for _ in range(length)]
        position, label = rng.randrange(length), rng.randrange(len(pair))
        text[position] = pair[label]
        image, centres = drawer.image_and_centres("".join(text))
        gray = np.pad(np.asarray(image.convert("L")), ((0, 0), (crop_width, crop_width)),
                      constant_values=255)
        left = int(round(centres[position])) + crop_width // 2  # padded coordinates
        crops.append(gray[:, left:left + crop_width])
        labels.append(label)
    return np.stack(crops), np.array(labels)


def build_classifier(height: int, width: int, classes: int):  # type: ignore[no-untyped-def]
    import keras

    layers = keras.layers

    def block(x, filters):  # type: ignore[no-untyped-def]
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        return layers.ReLU()(layers.BatchNormalization()(x))

    inputs = keras.Input((height, width, 1))
    x = layers.MaxPooling2D()(block(inputs, 16))
    x = layers.MaxPooling2D()(block(block(x, 32), 32))
    x = layers.MaxPooling2D()(block(block(x, 64), 64))
    x = layers.GlobalAveragePooling2D()(block(x, 128))
    return keras.Model(inputs, layers.Dense(classes)(x))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", required=True)
    parser.add_argument("--pair", default="0O", help="the characters to tell apart (2 or more)")
    parser.add_argument("--train", type=int, default=80_000, help="training crops")
    parser.add_argument("--test", type=int, default=4000, help="fresh test crops")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--crop-width", type=int, default=48)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--name", required=True)
    args = parser.parse_args()
    profile = load_profile(args.profile)
    unknown = [c for c in args.pair if c not in profile.format.charset]
    if len(set(args.pair)) < 2 or unknown:
        raise SystemExit(f"--pair {args.pair!r}: give 2 or more different characters of the charset")

    started = time.monotonic()
    chunks = -(-(args.train + args.test) // CHUNK)
    jobs = [(args.profile, args.pair, args.crop_width, args.seed * 100_000 + i, CHUNK)
            for i in range(chunks)]
    with Pool(args.workers) as pool:
        parts = pool.map(draw_crops, jobs)
    crops = np.concatenate([c for c, _ in parts])[..., None].astype(np.float32) / 255
    labels = np.concatenate([y for _, y in parts])
    test_x, test_y = crops[:args.test], labels[:args.test]
    train_x, train_y = crops[args.test:args.test + args.train], labels[args.test:args.test + args.train]
    drawn = time.monotonic() - started
    print(f"{len(train_x)} training and {len(test_x)} test crops of {args.pair} "
          f"({crops.shape[1]}x{crops.shape[2]}) drawn in {drawn:.0f} s", flush=True)

    import keras

    keras.utils.set_random_seed(args.seed)
    model = build_classifier(crops.shape[1], crops.shape[2], len(args.pair))
    steps = args.epochs * (len(train_x) // 128)
    schedule = keras.optimizers.schedules.CosineDecay(0.0, steps, warmup_target=3e-3,
                                                      warmup_steps=max(1, steps // 20))
    model.compile(keras.optimizers.Adam(schedule),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    curve = []
    for epoch in range(args.epochs):
        began = time.monotonic()
        model.fit(train_x, train_y, batch_size=128, epochs=1, verbose=0, shuffle=True)
        seconds = time.monotonic() - began
        predicted = model.predict(test_x, verbose=0).argmax(axis=1)
        accuracy = float(np.mean(predicted == test_y))
        curve.append({"epoch": epoch + 1, "test_accuracy": accuracy,
                      "images_per_second": round(len(train_x) / seconds, 1)})
        print(f"epoch {epoch + 1}/{args.epochs}: {accuracy:.2%} of {len(test_x)} fresh crops "
              f"({len(train_x) / seconds:.0f} crops/s)", flush=True)
    confusion = np.zeros((len(args.pair), len(args.pair)), int)
    np.add.at(confusion, (test_y, predicted), 1)
    save(args.name, {"kind": "separability", "profile": args.profile, "pair": args.pair,
                     "train_crops": len(train_x), "test_crops": len(test_x),
                     "crop": [int(crops.shape[1]), int(crops.shape[2])],
                     "seconds": round(time.monotonic() - started, 1), "curve": curve,
                     "test_accuracy": curve[-1]["test_accuracy"],
                     "confusion": {"rows_true_columns_read": list(args.pair),
                                   "counts": confusion.tolist()},
                     "revision": git_revision()})


if __name__ == "__main__":
    sys.exit(main())
