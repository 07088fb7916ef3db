"""Model builders: the CTC reader (its config is :class:`solver.archs.ctc.CTCConfig`), its
loss, and the LiteRT export.

The CTC reader is convolutional from end to end, which keeps it small, fast
on one CPU core and convertible to LiteRT with a variable batch (a GRU head
converted only with a fixed batch size):

* input: one grayscale image ``(height, width, 1)``, values ``gray / 255``;
* a VGG-like stack of 3x3 convolutions (batch-norm, ReLU, max-pool) that
  divides the width by 4, giving ``width // 4`` time steps;
* a ``(rows, 1)`` convolution folding what is left of the height into one
  feature vector per column;
* residual ``(1, k)`` convolutions over the columns (a few characters of context);
* ``len(charset) + 1`` logits per step; the last class is the CTC blank.

No Lambda layers; the only custom object, :class:`CTCLoss`, is registered, so
models load with ``safe_mode=True``.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from solver.archs.ctc import CTCConfig

LABEL_PAD = -1  # label padding: the loss ignores negative indices
BATCH_NORM_MOMENTUM = 0.9  # Keras' 0.99 leaves the moving statistics behind on short runs


#: training precisions: "bfloat16" computes the layers in bfloat16 (Keras' mixed_bfloat16
#: policy: weights, batch-norm statistics, logits and loss stay float32); fast on CPUs with
#: native bfloat16 (AVX512-BF16, AMX) and on recent GPUs
PRECISIONS = ("float32", "bfloat16")


def _policy(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    return "mixed_bfloat16" if precision == "bfloat16" else "float32"


def _conv_block(x: Any, filters: int, name: str, policy: str) -> Any:
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv",
                            dtype=policy)(x)
    x = keras.layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM, name=f"{name}_bn",
                                        dtype=policy)(x)
    return keras.layers.ReLU(name=f"{name}_relu", dtype=policy)(x)


def build_ctc_model(num_classes: int, config: CTCConfig,
                    precision: str = "float32") -> tuple[keras.Model, keras.Model]:
    """``(training_model, inference_model)`` sharing every weight.

    The training model outputs logits ``(batch, T, num_classes)``; the inference
    model the same graph's softmax. ``num_classes`` counts the blank (last).
    ``precision``: one of :data:`PRECISIONS`; the logits are float32 either way.
    """
    if len(config.filters) != len(config.pools):
        raise ValueError("filters and pools must have the same length")
    policy = _policy(precision)
    inputs = keras.Input((config.height, config.width, config.channels), name="image")
    x, rows, columns = inputs, config.height, config.width
    for index, (filters, (pool_rows, pool_columns)) in enumerate(zip(config.filters, config.pools)):
        x = _conv_block(x, filters, f"block{index}", policy)
        if (pool_rows, pool_columns) != (1, 1):
            x = keras.layers.MaxPooling2D((pool_rows, pool_columns), name=f"block{index}_pool",
                                          dtype=policy)(x)
            rows, columns = rows // pool_rows, columns // pool_columns
    # 4-D all the way (1xk convolutions rather than Conv1D): LiteRT sees plain CONV_2D ops
    x = keras.layers.Conv2D(config.head_units, (rows, 1), use_bias=False, name="fold_conv",
                            dtype=policy)(x)
    x = keras.layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM, name="fold_bn",
                                        dtype=policy)(x)
    x = keras.layers.ReLU(name="fold_relu", dtype=policy)(x)
    for index in range(config.head_layers):
        y = (keras.layers.Dropout(config.dropout, name=f"head{index}_drop", dtype=policy)(x)
             if config.dropout else x)
        y = keras.layers.Conv2D(config.head_units, (1, config.head_kernel), padding="same",
                                use_bias=False, name=f"head{index}_conv", dtype=policy)(y)
        y = keras.layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM, name=f"head{index}_bn",
                                            dtype=policy)(y)
        y = keras.layers.ReLU(name=f"head{index}_relu", dtype=policy)(y)
        x = keras.layers.Add(name=f"head{index}_add", dtype=policy)([x, y])
    if config.dropout:
        x = keras.layers.Dropout(config.dropout, name="out_drop", dtype=policy)(x)
    x = keras.layers.Conv2D(num_classes, 1, name="logits_conv", dtype="float32")(x)
    logits = keras.layers.Reshape((columns, num_classes), name="logits")(x)
    probabilities = keras.layers.Softmax(name="probabilities")(logits)
    return (keras.Model(inputs, logits, name="ctc_train"),
            keras.Model(inputs, probabilities, name="ctc_inference"))


def float32_copy(model: keras.Model, num_classes: int, config: CTCConfig) -> keras.Model:
    """The inference model of ``config`` in float32 with ``model``'s weights (a model
    trained in bfloat16 is saved and exported as this: readers need no mixed policy)."""
    _, inference = build_ctc_model(num_classes, config)
    for layer in inference.layers:
        weights = model.get_layer(layer.name).get_weights() if layer.weights else []
        if weights:
            layer.set_weights(weights)
    return inference


@keras.saving.register_keras_serializable(package="solver")
class CTCLoss(keras.losses.Loss):
    """CTC loss on logits with an explicit blank class.

    ``y_true``: int ``(batch, max_length)`` class indices padded with
    :data:`LABEL_PAD`; ``y_pred``: logits ``(batch, T, classes)``. ``blank`` is
    the charset's blank index, the same one the decoder drops.
    """

    def __init__(self, blank: int, name: str = "ctc", reduction: str = "sum_over_batch_size",
                 **kwargs: Any) -> None:
        super().__init__(name=name, reduction=reduction, **kwargs)
        self.blank = int(blank)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true = keras.ops.cast(y_true, "int32")
        label_length = keras.ops.sum(keras.ops.cast(y_true >= 0, "int32"), axis=-1)
        target = keras.ops.where(y_true >= 0, y_true, keras.ops.zeros_like(y_true))
        shape = keras.ops.shape(y_pred)
        logit_length = keras.ops.full((shape[0],), shape[1], dtype="int32")
        return keras.ops.ctc_loss(target, y_pred, label_length, logit_length,
                                  mask_index=self.blank)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "blank": self.blank}


def encode_labels(texts: Sequence[str], charset: str, max_length: int) -> np.ndarray:
    """Texts to int32 ``(n, max_length)`` class indices padded with :data:`LABEL_PAD`."""
    index = {ch: i for i, ch in enumerate(charset)}
    out = np.full((len(texts), max_length), LABEL_PAD, dtype=np.int32)
    for row, text in enumerate(texts):
        out[row, : len(text)] = [index[ch] for ch in text]
    return out


def export_lite(inference_model: keras.Model, path: str | Path, quantize: bool = False) -> Path:
    """Write the inference model as a LiteRT (``.tflite``) file with a variable batch.

    ``quantize``: int8 weights with dynamic-range activations (smaller, faster on
    CPU; check the accuracy it keeps).
    """
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(inference_model)
    if quantize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    with contextlib.redirect_stdout(io.StringIO()):  # the converter prints its SavedModel's signature
        flat = converter.convert()
    path = Path(path)
    path.write_bytes(flat)
    return path
