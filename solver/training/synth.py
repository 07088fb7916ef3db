"""Synthetic look-alike captchas and augmentation.

Look-alikes are drawn with the ``captcha`` package from a profile's
``synthetic`` settings, with answers from its ``format``, in worker processes
(drawing takes about 5 ms an image on one core). Texts and pixels follow
``seed``: each chunk of 256 is drawn with its own seed, whichever worker draws it.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import random
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from solver.drawing import CaptchaDrawer, MixedDrawer, random_text
from solver.imaging import model_pixels
from solver.profiles import SiteProfile

logger = logging.getLogger(__name__)

_worker_drawer: CaptchaDrawer | MixedDrawer | None = None
_worker_size: tuple[int, int, int] = (0, 0, 1)


def image_shape(count: int, height: int, width: int, channels: int) -> tuple[int, ...]:
    """The shape of ``count`` images as an :class:`ImageSet` holds them."""
    return (count, height, width) if channels == 1 else (count, height, width, channels)


def stored_pixels(rgb: np.ndarray, height: int, width: int, channels: int) -> np.ndarray:
    """An RGB image as an :class:`ImageSet` holds it: :func:`model_pixels`, the channel
    axis dropped for grayscale."""
    pixels = model_pixels(rgb, height, width, channels)
    return pixels[..., 0] if channels == 1 else pixels


@dataclass(frozen=True)
class ImageSet:
    """Images at the model's input size, uint8 ``(n, height, width)`` (grayscale) or
    ``(n, height, width, 3)`` (RGB), and labels."""

    images: np.ndarray
    labels: list[str]

    def __len__(self) -> int:
        return len(self.labels)


def _start_worker(drawer: CaptchaDrawer | MixedDrawer, size: tuple[int, int, int]) -> None:
    global _worker_drawer, _worker_size
    _worker_drawer, _worker_size = drawer, size


def _draw(job: tuple[int, list[str]]) -> np.ndarray:
    """Draw one chunk with its own seed, so the pixels do not depend on which worker drew it."""
    assert _worker_drawer is not None  # set by _start_worker in every worker
    seed, texts = job
    drawer = _worker_drawer.with_seed(seed)
    height, width, channels = _worker_size
    out = np.empty(image_shape(len(texts), height, width, channels), np.uint8)
    for index, text in enumerate(texts):
        rgb = np.asarray(drawer.image(text).convert("RGB"))
        out[index] = stored_pixels(rgb, height, width, channels)
    return out


def parse_emphasis(spec: str | None, charset: str) -> dict[str, float]:
    """``"0O:3"`` -> {"0": 3.0, "O": 3.0}: characters drawn that many times as often.

    For look-alike pairs a model confuses (see ``solver eval``'s confusions):
    texts holding them come up more often, so the model sees more of them.
    """
    from solver.errors import UsageError

    if not spec:
        return {}
    chars, _, weight = spec.partition(":")
    try:
        factor = float(weight) if weight else 3.0
    except ValueError:
        factor = -1.0
    if not chars or factor <= 0:
        raise UsageError(f"--emphasise {spec!r}: write CHARS[:WEIGHT], e.g. 0O:3")
    outside = "".join(sorted({ch for ch in chars if ch not in charset}))
    if outside:
        raise UsageError(f"--emphasise {spec!r}: {outside!r} is not in the profile's charset")
    return {ch: factor for ch in chars}


def random_texts(profile: SiteProfile, count: int, seed: int,
                 emphasis: dict[str, float] | None = None) -> list[str]:
    fmt = profile.format
    rng = random.Random(seed)
    weights = [emphasis.get(ch, 1.0) for ch in fmt.charset] if emphasis else None
    return [random_text(rng, fmt.charset, fmt.min_length, fmt.max_length, weights)
            for _ in range(count)]


def draw_lookalikes(profile: SiteProfile, count: int, height: int, width: int, seed: int = 0,
                    workers: int | None = None,
                    progress: Callable[[int], None] | None = None,
                    emphasis: dict[str, float] | None = None, channels: int = 1) -> ImageSet:
    """``count`` look-alikes of the profile's captchas at the model's input size."""
    texts = random_texts(profile, count, seed, emphasis)
    base = profile.source.parent if profile.source else None
    drawer = CaptchaDrawer.from_settings(profile.synthetic, base)
    chunk = 256
    # every chunk has its own seed: the same seed gives the same pixels, whatever the workers
    chunks = [(seed * 1_000_003 + i // chunk, texts[i:i + chunk]) for i in range(0, len(texts), chunk)]
    workers = workers or min(len(chunks), os.cpu_count() or 1)
    images = []
    if workers <= 1 or len(chunks) <= 1:
        _start_worker(drawer, (height, width, channels))
        for job in chunks:
            images.append(_draw(job))
            if progress:
                progress(len(job[1]))
    else:
        context = multiprocessing.get_context("spawn")  # TensorFlow and fork do not mix
        with context.Pool(workers, initializer=_start_worker,
                          initargs=(drawer, (height, width, channels))) as pool:
            for part in pool.imap(_draw, chunks):
                images.append(part)
                if progress:
                    progress(len(part))
    array = (np.concatenate(images) if images else
             np.empty(image_shape(0, height, width, channels), np.uint8))
    return ImageSet(array, texts)


def augment(images: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """Small random changes a real site's captchas show from one to the next.

    Rotation (up to 4 degrees), shear, scale and shift; sometimes contrast and
    brightness changes, blur or noise.
    ``images``: uint8 ``(n, height, width)`` or ``(n, height, width, 3)``; returns a new array.
    """
    out = np.empty_like(images)
    height, width = images.shape[1:3]
    for index, image in enumerate(images):
        angle = rng.uniform(-4, 4) * strength
        scale = 1 + rng.uniform(-0.06, 0.06) * strength
        matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, scale)
        matrix[0, 1] += rng.uniform(-0.12, 0.12) * strength  # shear
        matrix[0, 2] += rng.uniform(-0.04, 0.04) * width * strength
        matrix[1, 2] += rng.uniform(-0.06, 0.06) * height * strength
        warped = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE)
        if rng.random() < 0.3 * strength:  # contrast and brightness
            mean = float(warped.mean())
            contrast = 1 + rng.uniform(-0.3, 0.3) * strength
            brightness = rng.uniform(-20, 20) * strength
            warped = np.clip((warped.astype(np.float32) - mean) * contrast + mean + brightness,
                             0, 255).astype(np.uint8)
        if rng.random() < 0.25 * strength:
            warped = cv2.GaussianBlur(warped, (3, 3), rng.uniform(0.3, 0.9))
        if rng.random() < 0.25 * strength:
            noise = rng.normal(0, 6 * strength, warped.shape)
            warped = np.clip(warped.astype(np.float32) + noise, 0, 255).astype(np.uint8)
        out[index] = warped
    return out
