"""Sites that draw text both ways round: found from the images, and every label taught both ways."""

from __future__ import annotations

import numpy as np
import pytest

from solver.drawing import CaptchaDrawer

pytest.importorskip("keras")

from solver.training.data import MixedBatches, PolarityMix, text_polarity  # noqa: E402
from solver.training.synth import ImageSet  # noqa: E402


def drawn(count: int, seed: int) -> np.ndarray:
    """Dark text on white from the project's own drawer, as grayscale at 32x96."""
    import cv2

    drawer = CaptchaDrawer(width=120, height=40, font_sizes=(30,), seed=seed)
    images = []
    for index in range(count):
        text = f"{index % 10}{(index * 7) % 10}{(index * 3) % 10}"
        rgb = np.asarray(drawer.image(text).convert("RGB"))
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        images.append(cv2.resize(gray, (96, 32), interpolation=cv2.INTER_AREA))
    return np.stack(images)


def test_polarity_is_read_from_the_background_and_the_ink() -> None:
    dark = drawn(20, seed=3)
    assert [text_polarity(image) for image in dark].count("dark") >= 18
    assert [text_polarity(255 - image) for image in dark].count("light") >= 18
    blank = np.full((32, 96), 128, np.uint8)
    assert text_polarity(blank) == "unclear"


def test_only_a_set_drawn_both_ways_round_counts_as_mixed() -> None:
    dark = drawn(40, seed=5)
    assert not PolarityMix.of(dark).mixed
    assert not PolarityMix.of(np.concatenate([dark, 255 - dark[:2]])).mixed  # 5%: a stray
    mix = PolarityMix.of(np.concatenate([dark[:30], 255 - dark[30:]]))
    assert mix.mixed and mix.light >= 8 and mix.dark >= 25


def test_batches_show_the_real_images_inverted_at_the_asked_rate() -> None:
    images = drawn(64, seed=7)
    real = ImageSet(images, ["123"] * len(images))
    empty = ImageSet(np.empty((0, 32, 96), np.uint8), [])
    plain = MixedBatches(real, empty, "0123456789", 3, 64, 1.0, seed=1, augment_real=False)
    flipped = MixedBatches(real, empty, "0123456789", 3, 64, 1.0, seed=1, augment_real=False,
                           invert_real=0.5)
    assert all(text_polarity(np.uint8(x[..., 0] * 255)) == "dark" for x in plain[0][0])
    found = [text_polarity(np.uint8(np.rint(x[..., 0] * 255))) for x in flipped[0][0]]
    assert 16 <= found.count("light") <= 48 and found.count("light") + found.count("dark") >= 60
