"""The segment pipeline's trainer: OpenCV cuts captchas into characters, a small CNN reads each.

Every labelled captcha (real, and look-alikes) is segmented into ``len(label)``
boxes (``solver.segment``); those whose segmentation yields that count give
one training crop per character. The share kept, and the share whose count
was right before any forced split or merge, are reported and saved.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from solver.archs.segment import ARCH, CROP_SIZE, SegmentConfig
from solver.artifacts import ModelMetadata
from solver.charset import Charset
from solver.dataset import LabelReport, Sample
from solver.errors import SolverError, UsageError
from solver.imaging import read_image
from solver.segment import DEFAULT_CHARACTER_ASPECT, crop_characters, estimate_character_aspect, segment


def build_character_model(num_characters: int, size: int = CROP_SIZE) -> keras.Model:
    """A small CNN: ``(size, size, 1)`` crop in, a softmax over the charset out."""
    inputs = keras.Input((size, size, 1), name="character")
    x = inputs
    # no batch-norm: with the few hundred steps small sites give, its moving
    # statistics lag behind and the model reads one class at inference
    for index, filters in enumerate((32, 64, 96)):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"c{index}_conv")(x)
        x = keras.layers.MaxPooling2D(2, name=f"c{index}_pool")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(0.3, name="drop")(x)
    x = keras.layers.Dense(128, activation="relu", name="dense")(x)
    outputs = keras.layers.Dense(num_characters, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="character_cnn")


def crops_of(images: Sequence[np.ndarray], labels: Sequence[str], aspect: float,
             charset: Charset) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Character crops and class indices from labelled captchas, with segmentation counts."""
    crops, classes = [], []
    counts = {"captchas": len(labels), "raw_match": 0, "kept": 0}
    for image, label in zip(images, labels):
        if len(segment(image, character_aspect=aspect)) == len(label):
            counts["raw_match"] += 1
        boxes = segment(image, expected=len(label), character_aspect=aspect)
        if len(boxes) != len(label):
            continue
        counts["kept"] += 1
        crops.append(crop_characters(image, boxes, CROP_SIZE))
        classes.extend(charset.encode(label))
    if not crops:
        raise SolverError("segmentation kept no captcha: no training crops (check the images, "
                          "or use --pipeline ctc)")
    return np.concatenate(crops), np.asarray(classes, np.int32), counts


def train_segment(options: Any, samples: list[Sample], report: Callable[[str], None]) -> tuple[
        keras.Model, ModelMetadata, dict[str, Any]]:
    """Train the per-character CNN; returns the model, its metadata and a summary.

    ``options`` is a :class:`training.train.TrainOptions`.
    """
    from solver.training.synth import random_texts

    profile = options.profile
    fmt = profile.format
    charset = Charset(fmt.charset, fmt.case_sensitive)
    started = time.monotonic()
    images = [read_image(sample.path) for sample in samples]
    labels = [sample.label for sample in samples]
    if options.synthetic > 0:
        from solver.drawing import CaptchaDrawer

        drawer = CaptchaDrawer.from_settings(profile.synthetic,
                                             profile.source.parent if profile.source else None,
                                             seed=options.seed)
        count = min(options.synthetic, 20_000)  # crops multiply: a few thousand captchas suffice
        texts = random_texts(profile, count, options.seed)
        images += [np.asarray(drawer.image(text).convert("RGB")) for text in texts]
        labels += texts
    if not images:
        raise UsageError("nothing to train on: give --data or allow look-alikes")
    real_count = len(samples)
    aspect = (estimate_character_aspect(images[:real_count][:400], labels[:real_count][:400])
              if real_count >= 20 else
              estimate_character_aspect(images[:400], labels[:400]) if images else
              DEFAULT_CHARACTER_ASPECT)
    order = list(range(len(images)))
    random.Random(options.seed).shuffle(order)
    cut = max(1, round(len(order) * options.validation_fraction))
    validation_index, training_index = order[:cut], order[cut:]
    x, y, counts = crops_of([images[i] for i in training_index],
                            [labels[i] for i in training_index], aspect, charset)
    report(f"segmentation: {counts['raw_match']}/{counts['captchas']} captchas had the right count "
           f"unforced, {counts['kept']} kept after forcing (character aspect {aspect:.2f})")
    model = build_character_model(len(charset))
    model.compile(optimizer=keras.optimizers.AdamW(options.learning_rate, weight_decay=1e-4),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    report(f"training a character CNN on {len(x)} crops ({model.count_params():,} parameters)")
    budget = options.time_budget_s

    class _Report(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            logs = logs or {}
            report(f"epoch {epoch + 1}/{options.epochs}: loss {logs.get('loss', 0):.3f}, "
                   f"character accuracy {logs.get('val_accuracy', 0):.2%} (validation)")
            if budget is not None and time.monotonic() - started > budget:
                self.model.stop_training = True

    stopped_by = "epochs"
    try:
        model.fit(x, y, batch_size=max(options.batch_size, 128), epochs=options.epochs,
                  validation_split=0.1, shuffle=True, verbose=0,
                  callbacks=[keras.callbacks.EarlyStopping("val_accuracy",
                                                           patience=options.patience,
                                                           restore_best_weights=True),
                             _Report()])
    except KeyboardInterrupt:
        stopped_by = "interrupted"
        report("interrupted: keeping the model as it is")
    validation_images = [images[i] for i in validation_index]
    validation_labels = [labels[i] for i in validation_index]
    accuracy = sequence_accuracy(model, validation_images, validation_labels, aspect, charset, fmt)
    report(f"validation sequence accuracy {accuracy:.2%} on {len(validation_labels)} captchas")
    metadata = ModelMetadata(
        name=profile.name, arch=ARCH.name, charset=fmt.charset,
        case_sensitive=fmt.case_sensitive, blank_index=len(fmt.charset),
        input_height=CROP_SIZE, input_width=CROP_SIZE, input_channels=1,
        min_length=fmt.min_length, max_length=fmt.max_length,
        normalisation=ARCH.normalisation, profile_fingerprint=profile.fingerprint(),
        arch_config=SegmentConfig(character_aspect=aspect, crop_size=CROP_SIZE).to_dict(),
        training={"real": real_count, "synthetic": len(images) - real_count,
                  "crops": int(len(x)), "segmentation": counts, "seed": options.seed,
                  "stopped_by": stopped_by, "seconds": round(time.monotonic() - started, 1),
                  "data": [str(Path(p)) for p in options.data]},
        metrics={"validation_sequence_accuracy": accuracy,
                 "validation_images": len(validation_labels),
                 "segmentation_raw_rate": counts["raw_match"] / max(counts["captchas"], 1),
                 "segmentation_kept_rate": counts["kept"] / max(counts["captchas"], 1)},
    )
    return model, metadata, {"best_accuracy": accuracy, "stopped_by": stopped_by}


def sequence_accuracy(model: keras.Model, images: Sequence[np.ndarray], labels: Sequence[str],
                      aspect: float, charset: Charset, fmt: Any) -> float:
    if not labels:
        return 0.0
    right = 0
    for image, label in zip(images, labels):
        boxes = segment(image, expected=(fmt.min_length, fmt.max_length), character_aspect=aspect)
        if not boxes:
            continue
        probabilities = model.predict_on_batch(crop_characters(image, boxes, CROP_SIZE))
        right += charset.decode(np.argmax(probabilities, axis=-1)) == label
    return right / len(labels)


def train_segment_model(options: Any, samples: list[Sample], label_report: LabelReport,
                        out: Path, report: Callable[[str], None], started: float) -> Any:
    """Train, export to ``out`` and return a ``TrainResult`` (the registry's trainer)."""
    from dataclasses import replace

    from solver.training.train import TrainResult, _duration, _export, _versions, label_summary

    model, metadata, summary = train_segment(options, samples, report)
    metadata = replace(metadata, versions=_versions(),
                       training={**metadata.training, "labels_refused": label_report.refused_count,
                                 **label_summary(samples)})
    _export(model, out, metadata, options.quantize)
    seconds = time.monotonic() - started
    report(f"saved {out} (validation sequence accuracy {summary['best_accuracy']:.2%}, "
           f"{_duration(seconds)}; stopped by {summary['stopped_by']})")
    return TrainResult(out, summary["best_accuracy"], 0, seconds, summary["stopped_by"],
                       label_report, [])
