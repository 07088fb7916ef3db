"""Reading captcha images with a trained model, without TensorFlow.

:class:`Recognizer` loads ``models/NAME/`` (its ``metadata.json`` and the light
LiteRT model beside the Keras one), checks it against the profile, and turns
image bytes or arrays into ``(text, confidence)`` readings::

    recognizer = Recognizer("models/example", profile)
    reading = recognizer.read(png_bytes)
    reading.text, reading.confidence
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from solver.archs import Arch, get_arch
from solver.artifacts import ModelError, ModelMetadata, check_fits_profile, read_metadata
from solver.charset import Charset
from solver.imaging import decode_image, to_model_input
from solver.quiet import native_stderr_filtered

if TYPE_CHECKING:
    from solver.profiles import SiteProfile

logger = logging.getLogger(__name__)

ImageLike = bytes | np.ndarray


@dataclass(frozen=True)
class Reading:
    """What the model read, how sure it is (0..1), and how long it took."""

    text: str
    confidence: float
    milliseconds: float


class Recognizer:
    """A trained model behind one call: image in, ``Reading`` out.

    How a model reads is its architecture's (``solver.archs``): CTC models read
    the whole image; segment models cut it into characters with OpenCV
    (``solver.segment``) and read each.
    """

    def __init__(self, model_dir: str | os.PathLike[str], profile: SiteProfile | None = None,
                 num_threads: int = 1) -> None:
        self.model_dir = Path(model_dir)
        self.metadata: ModelMetadata = read_metadata(self.model_dir)
        if profile is not None:
            check_fits_profile(self.metadata, profile, self.model_dir)
        self.arch: Arch = get_arch(self.metadata.arch)
        self.config = self.metadata.config  # typed once, not per image
        self.charset = Charset(self.metadata.charset, self.metadata.case_sensitive)
        self._lock = threading.Lock()
        self._interpreter = self._load(num_threads)

    def _load(self, num_threads: int):  # type: ignore[no-untyped-def]
        from ai_edge_litert.interpreter import Interpreter

        path = self.model_dir / self.metadata.files.get("lite", "model.tflite")
        if not path.is_file():
            raise ModelError(f"{path}: the light model is missing (retrain with "
                             f"`solver train --site {self.metadata.name}`)")
        try:
            interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        except (ValueError, RuntimeError) as error:
            raise ModelError(f"{path}: not a readable LiteRT model ({error}); retrain it") from None
        expected = (self.metadata.input_height, self.metadata.input_width,
                    self.metadata.input_channels)
        signature = tuple(int(v) for v in interpreter.get_input_details()[0]["shape_signature"])
        output = tuple(int(v) for v in interpreter.get_output_details()[0]["shape_signature"])
        if signature[1:] != expected:
            raise ModelError(f"{path}: the model takes input {signature[1:]}, but its metadata "
                             f"says {expected} (the folder mixes two models; retrain it)")
        classes = self.arch.output_classes(self.charset)
        if output[-1] != classes:
            raise ModelError(f"{path}: the model has {output[-1]} output classes, but its charset "
                             f"needs {classes} (the folder mixes two models; retrain it)")
        self._batch = 1
        with native_stderr_filtered():  # LiteRT's "Created TensorFlow Lite XNNPACK delegate" line
            interpreter.allocate_tensors()
        return interpreter

    def prepare(self, image: ImageLike) -> np.ndarray:
        """An image as the model's input array (H, W, C) float32."""
        if isinstance(image, (bytes, bytearray, memoryview)):
            image = decode_image(bytes(image))
        return to_model_input(image, self.metadata.input_height, self.metadata.input_width,
                              self.metadata.input_channels)

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """Per-step class probabilities for a prepared batch (N, H, W, C)."""
        interpreter = self._interpreter
        with self._lock:  # one interpreter: set, invoke and get belong together
            source = interpreter.get_input_details()[0]["index"]
            if batch.shape[0] != self._batch:
                interpreter.resize_tensor_input(source, list(batch.shape))
                with native_stderr_filtered():
                    interpreter.allocate_tensors()
                self._batch = batch.shape[0]
            interpreter.set_tensor(source, batch.astype(np.float32, copy=False))
            interpreter.invoke()
            return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()

    def warm_up(self) -> None:
        """One read of a blank image, so the first real read does not pay for allocation."""
        meta = self.metadata
        if not self.arch.warm_up:
            return
        blank = np.full((meta.input_height, meta.input_width, 3), 255, np.uint8)
        self.read(blank)

    def read(self, image: ImageLike) -> Reading:
        """Read one captcha (PNG/JPEG/... bytes, or an RGB uint8 array)."""
        return self.read_batch([image])[0]

    def read_batch(self, images: Sequence[ImageLike]) -> list[Reading]:
        """Read several captchas in one model call."""
        if not images:
            return []
        started = time.perf_counter()
        decoded = self.arch.decode(self, images)
        per_image = (time.perf_counter() - started) * 1000 / len(images)
        return [Reading(text, confidence, per_image) for text, confidence in decoded]
