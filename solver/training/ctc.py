"""Training the CTC reader (:mod:`solver.archs.ctc`): mixed batches of real images and
look-alikes, CTC loss, warm-up and cosine annealing, the best epoch kept on held-out
real labels, resumable from its checkpoint folder. Called by
:func:`solver.training.train.train` through the architecture registry.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from solver.archs.ctc import ARCH, CTCConfig
from solver.artifacts import KERAS_FILE, ModelMetadata, read_metadata
from solver.charset import Charset
from solver.dataset import LabelReport, Sample, split_samples
from solver.errors import SolverError, UsageError
from solver.quiet import native_stderr_filtered
from solver.training.data import (MixedBatches, as_model_input, colourful, load_samples,
                                  typical_size)
from solver.training.models import CTCLoss, build_ctc_model, float32_copy
from solver.training.synth import ImageSet, draw_lookalikes, image_shape, parse_emphasis
from solver.training.train import (CHECKPOINT_DIR, TrainOptions, TrainResult, _duration, _export,
                                   _versions, _write_json, choose_strategy, label_summary,
                                   native_bfloat16)

STATE_FILE = "state.json"
LAST_MODEL = "last.keras"
BEST_WEIGHTS = "best.weights.h5"


class _Progress(keras.callbacks.Callback):
    """Per-epoch validation accuracy, best-model keeping, early stopping, time budget, progress."""

    def __init__(self, inference: keras.Model, validation: ImageSet, charset: Charset,
                 checkpoint: Path, state: dict[str, Any], options: TrainOptions,
                 report: Callable[[str], None], images_per_epoch: int,
                 started: float | None = None) -> None:
        super().__init__()
        self.inference = inference
        self.validation_x = as_model_input(validation.images)
        self.validation_labels = validation.labels
        self.charset = charset
        self.lengths = options.profile.format.length  # read as the saved model will: its lengths
        self.checkpoint = checkpoint
        self.state = state
        self.options = options
        self.report = report
        self.images_per_epoch = images_per_epoch
        self.started = time.monotonic()  # the first epoch's start
        self.run_started = started if started is not None else self.started  # the budget's start
        self.epoch_started = self.started
        self.stopped_by = "epochs"

    def accuracy(self) -> float:
        if not self.validation_labels:
            return 0.0
        readings = []
        for start in range(0, len(self.validation_x), 256):
            probabilities = keras.ops.convert_to_numpy(self.inference(self.validation_x[start:start + 256],
                                                      training=False))
            readings.extend(text for text, _ in self.charset.decode_ctc_batch(probabilities,
                                                                              self.lengths))
        return float(np.mean([r == t for r, t in zip(readings, self.validation_labels)]))

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch_started = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        seconds = time.monotonic() - self.epoch_started
        accuracy = self.accuracy()
        logs["val_sequence_accuracy"] = accuracy
        best = self.state.get("best_accuracy", -1.0)
        # a tie counts: the later epoch has seen more data at a lower learning rate, and a
        # small validation set that reads everything right must not stop training early
        improved = accuracy >= best
        if improved:
            self.state["best_accuracy"] = accuracy
            self.state["best_epoch"] = epoch + 1
            self.model.save_weights(self.checkpoint / BEST_WEIGHTS)
        self.state["epoch"] = epoch + 1
        self.state.setdefault("history", []).append({
            "epoch": epoch + 1, "loss": float(logs.get("loss", float("nan"))),
            "val_sequence_accuracy": accuracy, "seconds": round(seconds, 2),
            "images_per_second": round(self.images_per_epoch / max(seconds, 1e-9), 1)})
        self.model.save(self.checkpoint / LAST_MODEL)
        _write_json(self.checkpoint / STATE_FILE, self.state)
        now = time.monotonic()
        elapsed, spent = now - self.started, now - self.run_started
        done = epoch + 1 - self.state.get("first_epoch", 0)
        remaining = self.options.epochs - (epoch + 1)
        eta = elapsed / max(done, 1) * remaining
        if self.options.time_budget_s is not None:  # the budget ends the run first
            eta = min(eta, max(0.0, self.options.time_budget_s - spent))
        checked = ("no validation" if not self.validation_labels else
                   f"validation {accuracy:.2%} (best {self.state['best_accuracy']:.2%} at epoch "
                   f"{self.state['best_epoch']})")
        self.report(
            f"epoch {epoch + 1}/{self.options.epochs}: loss {logs.get('loss', float('nan')):.3f}, "
            f"{checked}, {self.images_per_epoch / max(seconds, 1e-9):.0f} images/s, "
            f"ETA {_duration(eta)}")
        if epoch + 1 - self.state["best_epoch"] >= self.options.patience:
            self.stopped_by = "early stopping"
            self.model.stop_training = True
        budget = self.options.time_budget_s
        if budget is not None and spent + elapsed / max(done, 1) > budget:
            self.stopped_by = "time budget"
            self.model.stop_training = True
        if accuracy >= 1.0 and len(self.validation_labels) >= 200:
            self.stopped_by = "early stopping"  # nothing left to learn on this validation set
            self.model.stop_training = True


class _FirstStepFiltered(keras.callbacks.Callback):
    """Descriptor 2 filtered of known noise (:mod:`solver.quiet`) while the first training step
    builds its graph, the one moment TensorFlow's graph checker speaks; open for the rest, so a
    real error in training shows as it happens. :meth:`close` where ``fit`` raises."""

    def __init__(self) -> None:
        super().__init__()
        self._filter = contextlib.ExitStack()

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._filter.enter_context(native_stderr_filtered())

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._filter.close()  # a no-op once closed

    def close(self) -> None:
        self._filter.close()


class _Annealing(keras.callbacks.Callback):
    """Warm-up, then cosine decay of the learning rate over the run's progress.

    Progress is whichever is further along: the steps of all epochs, or the
    time budget. A run cut short by its budget still ends at a low learning
    rate, where the best epochs are.
    """

    def __init__(self, peak: float, total_steps: int, budget_s: float | None,
                 done_steps: int = 0, warmup: float = 0.05, floor: float = 0.02) -> None:
        super().__init__()
        self.peak, self.total_steps, self.budget_s = peak, max(1, total_steps), budget_s
        self.step, self.warmup, self.floor = done_steps, warmup, floor
        self.started = time.monotonic()
        # ``budget_s`` is what is left of the run's budget when fitting starts

    def progress(self) -> float:
        by_steps = self.step / self.total_steps
        by_time = (time.monotonic() - self.started) / self.budget_s if self.budget_s else 0.0
        return min(1.0, max(by_steps, by_time))

    def rate(self) -> float:
        progress = self.progress()
        if progress < self.warmup:
            return self.peak * max(progress / self.warmup, 0.01)
        cosine = 0.5 * (1 + np.cos(np.pi * (progress - self.warmup) / (1 - self.warmup)))
        return self.peak * (self.floor + (1 - self.floor) * cosine)

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if batch % 10 == 0:  # often enough for a smooth curve, cheap enough not to matter
            self.model.optimizer.learning_rate.assign(self.rate())
        self.step += 1


def train_ctc(options: TrainOptions, samples: list[Sample], label_report: LabelReport,
              out: Path, report: Callable[[str], None], started: float) -> TrainResult:
    """Train a CTC reader on ``samples`` (checked already) and export it to ``out``."""
    profile = options.profile
    fmt = profile.format
    charset = Charset(fmt.charset, fmt.case_sensitive)
    checkpoint = out / CHECKPOINT_DIR
    state: dict[str, Any] = {}
    if options.resume:
        state_path = checkpoint / STATE_FILE
        if not state_path.is_file():
            raise UsageError(f"{checkpoint}: nothing to resume (no {STATE_FILE}; train without --resume)")
        state = json.loads(state_path.read_text(encoding="utf-8"))
        config = CTCConfig.from_dict(state["config"])
    elif options.start_from is not None:
        config = _start_config(options.start_from)
        size = typical_size(samples)
        rows = options.input_height or (fine_tuning_rows(size[0], config.height) if size
                                        else config.height)
        if rows != config.height:
            # every block fits any size; the fold over the rows left is learnt afresh
            config = dataclasses.replace(config, height=rows)
            size = size or (profile.synthetic.height, profile.synthetic.width)
        if size:  # every layer is convolutional: the weights fit any input width
            fitted = CTCConfig.for_image(*size, height=config.height).width
            config = dataclasses.replace(config, width=fitted)
    elif options.config is not None:
        config = options.config
    else:
        size = typical_size(samples) or (profile.synthetic.height, profile.synthetic.width)
        config = CTCConfig.for_image(*size, height=options.input_height or 32)
    if not options.resume:
        config = dataclasses.replace(config, channels=_channels(options, samples, config))
        if config.channels == 3:
            report("colour input: the captchas are drawn in colour (--colour no reads them in gray)")
    state["config"] = config.to_dict()
    if config.time_steps < 2 * fmt.max_length + 1:
        raise UsageError(f"the model's {config.time_steps} time steps are too few for "
                         f"{fmt.max_length} characters (use a wider input)")

    real_labelled = [sample for sample in samples if not sample.pseudo]
    if options.validation_samples is not None:
        train_samples, validation_samples = real_labelled, list(options.validation_samples)
    else:
        train_samples, validation_samples = (split_samples(real_labelled, options.validation_fraction,
                                                           options.seed)
                                             if len(real_labelled) >= 20 else (real_labelled, []))
    train_samples += [sample for sample in samples if sample.pseudo]  # a guess never validates
    real, load_report = load_samples(train_samples, config.height, config.width,
                                     channels=config.channels)
    validation, _ = load_samples(validation_samples, config.height, config.width,
                                 channels=config.channels)
    for problem in load_report.unreadable[:5]:
        report(f"  unreadable: {problem}")
    report(f"real images: {len(real)} for training, {len(validation)} for validation"
           + (" (pseudo-labels train only; validation uses real labels)"
              if any(sample.pseudo for sample in train_samples) else ""))

    synthetic = ImageSet(np.empty(image_shape(0, config.height, config.width, config.channels),
                                  np.uint8), [])
    if options.synthetic > 0:
        drawn_at = time.monotonic()
        emphasis = parse_emphasis(options.emphasis, profile.format.charset)
        if emphasis:
            report(f"look-alikes emphasise {''.join(emphasis)} x{next(iter(emphasis.values())):g}")
        synthetic = draw_lookalikes(profile, options.synthetic, config.height, config.width,
                                    seed=options.seed * 1000 + len(state.get("history", [])),
                                    workers=options.workers, emphasis=emphasis,
                                    channels=config.channels)
        report(f"look-alikes: {len(synthetic)} drawn in {time.monotonic() - drawn_at:.1f} s")
    if not len(validation) and options.keep_last:
        report("no validation: the last epoch is kept")
    elif not len(validation):
        validation = draw_lookalikes(profile, options.validation_synthetic, config.height,
                                     config.width, seed=options.seed * 1000 + 999_999,
                                     workers=options.workers, channels=config.channels)
        report(f"validation: {len(validation)} fresh look-alikes (no real images to hold out)")

    batches = MixedBatches(real, synthetic, fmt.charset, fmt.max_length, options.batch_size,
                           options.real_fraction if len(synthetic) else 1.0, options.seed,
                           augment_synthetic=options.augment_lookalikes,
                           min_batches=options.min_steps_per_epoch,
                           max_batches=options.max_steps_per_epoch,
                           invert_real=options.invert_real)
    steps = len(batches) * options.epochs
    if options.precision == "bfloat16" and not options.resume and not native_bfloat16():
        report("bfloat16: this CPU has no native bfloat16 (AVX512-BF16 or AMX); "
               "float32 is likely faster here")
    strategy = choose_strategy()
    with strategy.scope():
        if options.resume:
            model = keras.models.load_model(checkpoint / LAST_MODEL, safe_mode=True)
            inference = keras.Model(model.inputs[0], keras.layers.Softmax(name="probabilities")(
                model.outputs[0]), name="ctc_inference")
        else:
            model, inference = build_ctc_model(charset.num_classes, config, options.precision)
            if options.start_from is not None:
                copied = _load_weights(model, options.start_from)
                report(f"fine-tuning from {options.start_from}: {copied} layers copied")
            model.compile(optimizer=keras.optimizers.AdamW(options.learning_rate,
                                                           weight_decay=1e-4),
                          loss=CTCLoss(blank=charset.blank_index))
    first_epoch = int(state.get("epoch", 0))
    state["first_epoch"] = first_epoch
    progress = _Progress(inference, validation, charset, checkpoint, state, options, report,
                         images_per_epoch=len(batches) * options.batch_size, started=started)
    report(f"training {config.time_steps}-step CTC model ({model.count_params():,} parameters) "
           f"for up to {options.epochs} epochs of {len(batches)} batches"
           + (f", from epoch {first_epoch + 1}" if first_epoch else ""))
    left = (None if options.time_budget_s is None else
            max(1.0, options.time_budget_s - (time.monotonic() - started)))
    annealing = _Annealing(options.learning_rate, steps, left, done_steps=first_epoch * len(batches))
    first_step = _FirstStepFiltered()
    try:
        model.fit(batches, epochs=options.epochs, initial_epoch=first_epoch,
                  callbacks=[first_step, annealing, progress], verbose=0)
    except KeyboardInterrupt:
        progress.stopped_by = "interrupted"
        report("interrupted: keeping the best model so far")
    finally:
        first_step.close()
    if not (checkpoint / BEST_WEIGHTS).is_file():
        raise SolverError("training stopped before the first epoch finished; nothing to save "
                          "(let it run at least one epoch)")
    model.load_weights(checkpoint / BEST_WEIGHTS)
    precision = "bfloat16" if any(layer.dtype_policy.name == "mixed_bfloat16"
                                  for layer in model.layers) else "float32"
    if precision != "float32":  # saved and exported in float32: readers need no mixed policy
        inference = float32_copy(model, charset.num_classes, config)

    metadata = ModelMetadata(
        name=profile.name, arch=ARCH.name, arch_config=config.to_dict(), charset=fmt.charset,
        case_sensitive=fmt.case_sensitive, blank_index=charset.blank_index,
        input_height=config.height, input_width=config.width, input_channels=config.channels,
        min_length=fmt.min_length, max_length=fmt.max_length, normalisation=ARCH.normalisation,
        profile_fingerprint=profile.fingerprint(),
        training={"real_train": len(real), "real_validation": len(validation_samples),
                  "synthetic": len(synthetic), "emphasis": options.emphasis or "",
                  "augment_lookalikes": options.augment_lookalikes,
                  **({"invert_real": options.invert_real} if options.invert_real else {}),
                  "real_fraction": options.real_fraction,
                  "labels_refused": label_report.refused_count, **label_summary(samples),
                  "pseudo_labels_left_out": label_report.pseudo_left_out,
                  "data": [str(path) for path in options.data], "seed": options.seed,
                  "epochs": state.get("epoch", 0), "best_epoch": state.get("best_epoch"),
                  "stopped_by": progress.stopped_by,
                  "quantized": options.quantize, "precision": precision,
                  "seconds": round(time.monotonic() - started, 1),
                  **({"recipe": options.recipe} if options.recipe else {})},
        metrics={"validation_sequence_accuracy": None if options.keep_last else state.get("best_accuracy"),
                 "validation_images": len(validation),
                 "validation_source": ("none" if options.keep_last and not len(validation) else
                                       "real" if validation_samples else "synthetic")},
        versions=_versions(),
    )
    _export(inference, out, metadata, options.quantize, lite=options.export_lite)
    _write_json(out / "history.json", {"history": state.get("history", [])})
    seconds = time.monotonic() - started
    checked = ("no validation, last epoch kept" if options.keep_last and not len(validation) else
               f"validation sequence accuracy {state.get('best_accuracy', 0):.2%}")
    report(f"saved {out} ({checked}, {_duration(seconds)}; stopped by {progress.stopped_by})")
    return TrainResult(out, float(state.get("best_accuracy", 0.0)), int(state.get("epoch", 0)),
                       seconds, progress.stopped_by, label_report, state.get("history", []))




def _start_config(model_dir: Path) -> CTCConfig:
    """The config of the CTC model to fine-tune from."""
    metadata = read_metadata(model_dir)
    config = metadata.config if metadata.arch_config else None
    if not isinstance(config, CTCConfig):
        raise UsageError(f"{model_dir}: its metadata has no CTC model config; cannot fine-tune "
                         "from it")
    return config


#: the most rows a fine-tuned model reads (stencil, 50 px tall, 2000 labels, 8 minutes from
#: the general model: 32 rows 89.2%, 48 rows 95.0%; each row more costs time on a CPU)
MAX_ROWS = 48


def fine_tuning_rows(image_height: int, start_rows: int) -> int:
    """The input rows of a model fine-tuned from one with ``start_rows``: the captcha's own
    height in steps of 8 (the blocks halve the rows three times), up to :data:`MAX_ROWS`,
    and never fewer than the start model's. Small characters, shrunk to 32 rows from 50,
    lose the strokes that tell 6 from G and 8 from B.
    """
    return max(start_rows, min(MAX_ROWS, image_height // 8 * 8))


def _channels(options: TrainOptions, samples: list[Sample], config: CTCConfig) -> int:
    """1 (gray) or 3 (RGB): ``--colour``'s answer, or with ``auto`` the data's.

    ``auto`` reads in colour where most real captchas are drawn in colour (see
    :func:`~solver.training.data.colourful`); a model fine-tuned from a colour model stays
    in colour, so that the rounds of a recipe choice or of ``solver learn`` keep the input
    they started with.
    """
    if options.colour in ("yes", "no"):
        return 3 if options.colour == "yes" else 1
    if options.start_from is not None and config.channels == 3:
        return 3
    return 3 if colourful([sample for sample in samples if not sample.pseudo]) else 1


#: OpenCV's RGB-to-gray weights: a gray model's first kernels, spread over the colour channels
#: in these shares, give a colour model that starts out reading exactly what the gray one did
GRAY_WEIGHTS = (0.299, 0.587, 0.114)


def _load_weights(model: keras.Model, model_dir: Path) -> int:
    """Fine-tune: copy every layer whose shape fits from another model (the output
    layer differs when the charset does, and is then learnt afresh). A gray model's first
    convolution goes into a colour model's spread over the channels (:data:`GRAY_WEIGHTS`),
    a colour model's into a gray one's summed."""
    source = keras.models.load_model(model_dir / KERAS_FILE, safe_mode=True, compile=False)
    copied = 0
    for layer in model.layers:
        try:
            other = source.get_layer(layer.name)
        except ValueError:
            continue
        weights = other.get_weights()
        wanted = [w.shape for w in layer.get_weights()]
        if weights and [w.shape for w in weights] != wanted:
            weights = _fit_input_channels(weights, wanted)
        if weights and [w.shape for w in weights] == wanted:
            layer.set_weights(weights)
            copied += 1
    return copied


def _fit_input_channels(weights: list[np.ndarray],
                        wanted: list[tuple[int, ...]]) -> list[np.ndarray]:
    """A convolution's weights for 1 input channel made to take 3, or 3 made to take 1;
    any other mismatch is returned as it was (and not copied)."""
    kernel = weights[0]
    if kernel.ndim != 4 or len(wanted[0]) != 4 or kernel.shape[:2] != wanted[0][:2] \
            or kernel.shape[3] != wanted[0][3]:
        return weights
    if (kernel.shape[2], wanted[0][2]) == (1, 3):
        shares = np.asarray(GRAY_WEIGHTS, kernel.dtype).reshape(1, 1, 3, 1)
        return [kernel * shares, *weights[1:]]
    if (kernel.shape[2], wanted[0][2]) == (3, 1):
        return [kernel.sum(axis=2, keepdims=True), *weights[1:]]
    return weights
