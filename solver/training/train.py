"""Train one model per profile and save it, self-described, under ``models/NAME/``.

    from solver.profiles import ProfileRegistry
    from solver.training.train import TrainOptions, train

    profile = ProfileRegistry().load("example")
    result = train(TrainOptions(profile, synthetic=20_000, epochs=30))
    result.model_dir, result.best_accuracy

Training runs under a ``tf.distribute`` strategy: every visible GPU through
``MirroredStrategy`` when there are any, the default strategy on a CPU.
Ctrl-C stops it and keeps the best model so far; ``resume=True`` continues
from the last finished epoch.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402  (TensorFlow's log level must be set before it loads)
import numpy as np  # noqa: E402

from solver.archs import get_arch  # noqa: E402
from solver.artifacts import KERAS_FILE, LITE_FILE, ModelMetadata, write_metadata  # noqa: E402
from solver.dataset import LabelReport, Sample, check_labels, read_labelled_folder  # noqa: E402
from solver.errors import UsageError  # noqa: E402
from solver.profiles import SiteProfile  # noqa: E402
from solver.training.models import export_lite  # noqa: E402

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoint"


@dataclass
class TrainOptions:
    """What to train and how; defaults suit a first model on a laptop CPU."""

    profile: SiteProfile
    data: list[Path] = field(default_factory=list)
    pipeline: str | None = None  # default: the profile's
    synthetic: int = 20_000
    real_fraction: float = 0.5
    start_from: Path | None = None
    epochs: int = 30
    time_budget_s: float | None = None
    batch_size: int = 64
    learning_rate: float = 3e-3
    seed: int = 0
    out: Path | None = None  # default: models/NAME
    resume: bool = False
    patience: int = 6
    validation_fraction: float = 0.1
    validation_synthetic: int = 1000
    input_height: int | None = None  # default: 32 rows, or the --from model's
    workers: int | None = None
    quantize: bool = False
    config: CTCConfig | None = None  # the architecture; default: sized for the captchas
    emphasis: str | None = None  # "0O:3": look-alike texts hold these characters 3x as often
    pseudo_labels: bool = False  # also train on labels with source "pseudo" (never validated on)
    min_steps_per_epoch: int = 0  # small sets: fewer, longer epochs (each ends with a check and a save)
    max_steps_per_epoch: int = 0  # large sets: shorter epochs (each a fresh random part of the set)
    augment_lookalikes: float = 0.0  # strength of the random warps look-alikes get each epoch (0: none)
    invert_real: float = 0.0  # chance a real image is shown inverted (sites with text both ways round)
    precision: str = "float32"  # or "bfloat16": layers compute in bfloat16 (see models.PRECISIONS)
    colour: str = "auto"  # "yes": RGB input, "no": gray, "auto": RGB where the captchas are in colour
    # set by training.recipes, which splits the labels once and runs train() several times:
    samples: list[Sample] | None = None  # the training images, checked already (no --data read)
    validation_samples: list[Sample] | None = None  # the held-out images (no split of samples)
    keep_last: bool = False  # no validation at all: keep the last epoch (a final pass on all labels)
    recipe: dict[str, Any] | None = None  # what the recipe choice tried, for the metadata
    export_lite: bool = True  # False: the Keras model only (a recipe's trial, exported if kept)


@dataclass
class TrainResult:
    model_dir: Path
    best_accuracy: float
    epochs: int
    seconds: float
    stopped_by: str  # "epochs", "early stopping", "time budget", "interrupted"
    label_report: LabelReport
    history: list[dict[str, float]]


def choose_strategy() -> Any:
    """MirroredStrategy over every visible GPU, else the default (CPU) strategy."""
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        logger.info("training on %d GPU(s) with MirroredStrategy", len(gpus))
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def native_bfloat16() -> bool:
    """Whether bfloat16 compute is native here: a GPU, or a CPU with AVX512-BF16 or AMX."""
    import tensorflow as tf

    if tf.config.list_logical_devices("GPU"):
        return True
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:  # not Linux: unknown, say no
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def gather_samples(options: TrainOptions) -> tuple[list[Sample], LabelReport]:
    """The usable labelled images of ``options.data``, and the label check's report.

    Pseudo-labels (``Sample.pseudo``) are left out unless ``options.pseudo_labels``;
    the report counts those left out.
    """
    samples: list[Sample] = []
    for folder in options.data:
        samples.extend(read_labelled_folder(folder, pseudo_labels=True))
    left_out = 0 if options.pseudo_labels else sum(sample.pseudo for sample in samples)
    if left_out:
        samples = [sample for sample in samples if not sample.pseudo]
    fmt = options.profile.format
    report = check_labels(samples, fmt.charset, fmt.min_length, fmt.max_length, fmt.case_sensitive)
    report.pseudo_left_out = left_out
    return report.kept, report


def label_summary(samples: list[Sample]) -> dict[str, int]:
    """Real and pseudo labels counted apart, for a model's training summary."""
    pseudo = sum(sample.pseudo for sample in samples)
    return {"real_labels": len(samples) - pseudo, "pseudo_labels": pseudo}


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def _versions() -> dict[str, str]:
    import tensorflow as tf

    from solver import __version__

    return {"solver": __version__, "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def train(options: TrainOptions, report: Callable[[str], None] = print) -> TrainResult:
    """Train, keep the best epoch, export ``models/NAME/`` and return what happened."""
    profile = options.profile
    arch = get_arch(options.pipeline or profile.model.pipeline)
    out = Path(options.out or Path("models") / profile.name)
    checkpoint = out / CHECKPOINT_DIR
    checkpoint.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(options.seed)
    random.seed(options.seed)
    started = time.monotonic()

    if options.samples is not None:
        samples, label_report = list(options.samples), LabelReport(kept=list(options.samples))
    else:
        samples, label_report = gather_samples(options)
    if options.data and options.samples is None:
        for line in label_report.lines():
            report(line)
        labels = label_summary(samples)
        if labels["pseudo_labels"]:
            report(f"labels: {labels['real_labels']} real, {labels['pseudo_labels']} pseudo")
    if not samples and options.synthetic <= 0:
        raise UsageError("nothing to train on: no usable labelled images and --synthetic 0 "
                         "(give --data folders, or allow look-alikes)")
    return arch.load_trainer()(options, samples, label_report, out, report, started)  # type: ignore[no-any-return]


def _export(inference: keras.Model, out: Path, metadata: ModelMetadata, quantize: bool,
            lite: bool = True) -> None:
    """Write the model files atomically, metadata last (readers go by the metadata)."""
    keras_temporary = out / f".{KERAS_FILE}.tmp.keras"
    inference.save(keras_temporary)
    os.replace(keras_temporary, out / KERAS_FILE)
    if lite:
        lite_temporary = out / f".{LITE_FILE}.tmp"
        export_lite(inference, lite_temporary, quantize=quantize)
        os.replace(lite_temporary, out / LITE_FILE)
    write_metadata(out, metadata)


