"""Speed of recognition: one image on one core, batches, the CLI's cold start, and the peer.

    python benchmarks/latency.py --site example --name latency_example

One image: LiteRT's invoke alone (the model), and the whole read (PNG decode,
resize, invoke, CTC decoding). Figures go to ``benchmarks/results/NAME.json``.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import ROOT, Ddddocr, git_revision, save

from solver.artifacts import find_model
from solver.drawing import CaptchaDrawer, random_text
from solver.profiles import ProfileRegistry
from solver.recognizers import Recognizer


def percentiles(samples: list[float]) -> dict[str, float]:
    array = np.array(samples)
    return {"median_ms": round(float(np.median(array)), 4),
            "p95_ms": round(float(np.percentile(array, 95)), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--site", default="example")
    parser.add_argument("--model", default=None, help="model folder (default: models/SITE, else the shipped one)")
    parser.add_argument("--name", default="latency")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()

    profile = ProfileRegistry(ROOT / "site_profiles").load(args.site)
    model = Path(args.model or find_model(profile.name, ROOT / "models"))
    recognizer = Recognizer(model, profile, num_threads=1)
    drawer = CaptchaDrawer.from_settings(profile.synthetic)
    rng = random.Random(7)
    fmt = profile.format
    truths = [random_text(rng, fmt.charset, fmt.min_length, fmt.max_length)
              for _ in range(args.images)]
    images = [drawer.png(text) for text in truths]
    prepared = np.stack([recognizer.prepare(image) for image in images])

    invoke = []
    for index in range(args.runs + 200):
        started = time.perf_counter()
        recognizer.probabilities(prepared[index % len(prepared)][None])
        if index >= 200:
            invoke.append((time.perf_counter() - started) * 1000)
    whole = []
    for index in range(args.runs):
        started = time.perf_counter()
        recognizer.read(images[index % len(images)])
        whole.append((time.perf_counter() - started) * 1000)
    started = time.perf_counter()
    for _ in range(5):
        recognizer.read_batch(images)
    batch_rate = 5 * len(images) / (time.perf_counter() - started)

    with tempfile.TemporaryDirectory() as folder:
        sample = Path(folder) / "captcha.png"
        sample.write_bytes(images[0])
        cold = []
        for _ in range(5):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "solver", "predict", "--site", args.site,
                            "--model", str(model), str(sample)], check=True, cwd=ROOT,
                           capture_output=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
            cold.append(time.perf_counter() - started)

    figures = {"model": str(model), "revision": git_revision(), "threads": 1,
               "invoke_one_image": percentiles(invoke),
               "read_one_image_png": percentiles(whole),
               "batch_images_per_second": round(batch_rate, 1),
               "predict_cold_start_s": round(statistics.median(cold), 3),
               "model_bytes": (model / "model.tflite").stat().st_size}
    print(f"invoke, one image, one core: median {figures['invoke_one_image']['median_ms']:.3f} ms")
    print(f"whole read from PNG bytes: median {figures['read_one_image_png']['median_ms']:.3f} ms")
    print(f"batch of {len(images)}: {batch_rate:.0f} images/s")
    print(f"`solver predict` cold start on one file: {figures['predict_cold_start_s']:.2f} s")
    if Ddddocr.available():
        peer = Ddddocr()
        for image in images[:5]:
            peer.read(image)
        timings = []
        for image in images:
            started = time.perf_counter()
            peer.read(image)
            timings.append((time.perf_counter() - started) * 1000)
        figures["ddddocr_read_one_image_png"] = percentiles(timings)
        print(f"ddddocr on the same images: median {figures['ddddocr_read_one_image_png']['median_ms']:.2f} ms")
    save(args.name, figures)


if __name__ == "__main__":
    main()
