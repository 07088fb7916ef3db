"""Training data: real labelled captchas and look-alikes, mixed into batches."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import keras
import numpy as np

from solver.dataset import Sample
from solver.errors import SolverError
from solver.imaging import normalise, read_image
from solver.training.models import encode_labels
from solver.training.synth import ImageSet, augment, image_shape, stored_pixels

logger = logging.getLogger(__name__)


@dataclass
class LoadReport:
    """Real images read, and those that could not be."""

    loaded: int = 0
    unreadable: list[str] = field(default_factory=list)


def load_samples(samples: Sequence[Sample], height: int, width: int,
                 progress: Callable[[int], None] | None = None,
                 channels: int = 1) -> tuple[ImageSet, LoadReport]:
    """Read labelled images as uint8 at the model's input size: grayscale ``(n, h, w)``, or
    RGB ``(n, h, w, 3)`` where ``channels`` is 3."""
    images, labels, report = [], [], LoadReport()
    for sample in samples:
        try:
            rgb = read_image(sample.path)
        except SolverError as error:
            report.unreadable.append(f"{sample.path.name}: {error}")
        else:
            images.append(stored_pixels(rgb, height, width, channels))
            labels.append(sample.label)
        if progress:
            progress(1)
    report.loaded = len(labels)
    array = np.stack(images) if images else np.empty(image_shape(0, height, width, channels),
                                                     np.uint8)
    return ImageSet(array, labels), report


def typical_size(samples: Sequence[Sample], limit: int = 200) -> tuple[int, int] | None:
    """The median (height, width) of up to ``limit`` images, or None if none are readable."""
    sizes = []
    for sample in samples[:limit]:
        try:
            sizes.append(read_image(sample.path).shape[:2])
        except SolverError:
            continue
    if not sizes:
        return None
    heights, widths = zip(*sizes)
    return int(np.median(heights)), int(np.median(widths))


#: a captcha counts as drawn in colour when COLOUR_SHARE of its lit pixels are at least
#: COLOUR_SATURATION saturated (HSV, 0-255): gray sites, JPEG's chroma noise included, have
#: none such; coloured text or clutter, a few per cent and more
COLOUR_SATURATION = 100
COLOUR_SHARE = 0.02


def colourful(samples: Sequence[Sample], limit: int = 200) -> bool:
    """Whether most of a site's captchas are drawn in colour, so that a model may read
    them in RGB (characters of different colours that touch, clutter of another colour
    than the text) rather than in gray, where those differences are lost.

    Pixels darker than a quarter of full value are left out: their hue, and so their
    saturation, is noise.
    """
    votes = []
    for sample in samples[:limit]:
        try:
            rgb = read_image(sample.path)
        except SolverError:
            continue
        hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
        lit = hsv[..., 2] > 64
        if lit.sum() < 50:
            continue
        saturated = int((hsv[..., 1][lit] >= COLOUR_SATURATION).sum())
        votes.append(saturated >= COLOUR_SHARE * int(lit.sum()))
    return len(votes) >= 5 and sum(votes) >= 0.5 * len(votes)


def text_polarity(image: np.ndarray, margin: float = 40.0) -> str:
    """Whether a grayscale captcha's text is "dark" on a lighter background, "light" on a
    darker one, or "unclear" (outlined text, or as much ink either way).

    Most of a captcha is background, so its median is the background's level; ink is
    what lies ``margin`` or more away from it, darker or lighter.
    """
    level = float(np.median(image))
    darker = int((image < level - margin).sum())
    lighter = int((image > level + margin).sum())
    if darker > 1.5 * lighter:
        return "dark"
    if lighter > 1.5 * darker:
        return "light"
    return "unclear"


@dataclass(frozen=True)
class PolarityMix:
    """How many of a set's images show dark text, light text, or neither clearly."""

    dark: int
    light: int
    unclear: int

    @classmethod
    def of(cls, images: np.ndarray) -> PolarityMix:
        found = [text_polarity(image) for image in images]
        return cls(found.count("dark"), found.count("light"), found.count("unclear"))

    @property
    def mixed(self) -> bool:
        """Both ways round, each in at least a tenth of the images: a site that draws light
        text on dark and dark text on light (inverting its images keeps their labels)."""
        total = self.dark + self.light + self.unclear
        return total >= 10 and min(self.dark, self.light) >= 0.1 * total


def as_model_input(images: np.ndarray) -> np.ndarray:
    """uint8 ``(n, h, w)`` or ``(n, h, w, 3)`` to the model's float32 ``(n, h, w, c)`` in [0, 1]."""
    return normalise(images)[..., None] if images.ndim == 3 else normalise(images)


class MixedBatches(keras.utils.PyDataset):
    """Batches that mix augmented real captchas with look-alikes.

    ``real_fraction`` of each batch comes from the real images (when there are
    any), the rest from the look-alikes; an epoch covers the larger source once,
    and is at least ``min_batches`` long (a small source comes round again) and
    at most ``max_batches`` (then each epoch is a fresh random part of a large set).
    ``augment_synthetic``: the strength of the warps look-alikes get (0: none); a
    fixed set of look-alikes seen for many epochs is otherwise learnt by heart.
    ``invert_real``: the chance that a real image is shown inverted (white for black), for
    sites that draw text both ways round (see ``PolarityMix``): every label then teaches both.
    """

    def __init__(self, real: ImageSet, synthetic: ImageSet, charset: str, max_length: int,
                 batch_size: int, real_fraction: float, seed: int,
                 augment_real: bool = True, augment_synthetic: float = 0.0,
                 min_batches: int = 0, max_batches: int = 0, invert_real: float = 0.0,
                 **kwargs: object) -> None:
        super().__init__(**kwargs)
        if not len(real) and not len(synthetic):
            raise SolverError("no training images: give --data with labelled captchas, "
                              "or --synthetic N look-alikes")
        self.real, self.synthetic = real, synthetic
        self.real_y = encode_labels(real.labels, charset, max_length)
        self.synthetic_y = encode_labels(synthetic.labels, charset, max_length)
        self.batch_size = batch_size
        self.real_per_batch = (batch_size if not len(synthetic) else
                               0 if not len(real) else
                               max(1, min(batch_size - 1, round(batch_size * real_fraction))))
        self.synthetic_per_batch = batch_size - self.real_per_batch
        self.seed = seed
        self.min_batches = min_batches  # a small set is gone through several times an epoch
        self.max_batches = max_batches  # a large one in parts
        self.epoch = 0
        self.augment_real, self.augment_synthetic = augment_real, augment_synthetic
        self.invert_real = invert_real
        self._order()

    def _order(self) -> None:
        rng = np.random.default_rng((self.seed, self.epoch))
        self.real_order = rng.permutation(len(self.real)) if len(self.real) else np.empty(0, int)
        self.synthetic_order = (rng.permutation(len(self.synthetic)) if len(self.synthetic)
                                else np.empty(0, int))

    def __len__(self) -> int:
        counts = []
        if self.real_per_batch:
            counts.append(math.ceil(len(self.real) / self.real_per_batch))
        if self.synthetic_per_batch:
            counts.append(math.ceil(len(self.synthetic) / self.synthetic_per_batch))
        batches = max(1, self.min_batches, max(counts))
        return min(batches, self.max_batches) if self.max_batches > 0 else batches

    def _take(self, order: np.ndarray, start: int, count: int) -> np.ndarray:
        return order[(start + np.arange(count)) % len(order)]

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng((self.seed, self.epoch, index))
        parts_x, parts_y = [], []
        if self.real_per_batch:
            chosen = self._take(self.real_order, index * self.real_per_batch, self.real_per_batch)
            images = self.real.images[chosen]
            images = augment(images, rng) if self.augment_real else images
            if self.invert_real > 0:
                flip = rng.random(len(images)) < self.invert_real
                flip = flip.reshape((-1,) + (1,) * (images.ndim - 1))
                images = np.where(flip, 255 - images, images)
            parts_x.append(images)
            parts_y.append(self.real_y[chosen])
        if self.synthetic_per_batch:
            chosen = self._take(self.synthetic_order, index * self.synthetic_per_batch,
                                self.synthetic_per_batch)
            images = self.synthetic.images[chosen]
            parts_x.append(augment(images, rng, self.augment_synthetic) if self.augment_synthetic
                           else images)
            parts_y.append(self.synthetic_y[chosen])
        return as_model_input(np.concatenate(parts_x)), np.concatenate(parts_y)

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._order()
