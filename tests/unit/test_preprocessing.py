"""Training and solving prepare a saved image the same way, to the last value."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("keras")

from solver.dataset import Sample  # noqa: E402
from solver.drawing import CaptchaDrawer  # noqa: E402
from solver.imaging import read_image, to_model_input  # noqa: E402
from solver.training.data import as_model_input, load_samples  # noqa: E402


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [(60, 160), (32, 96), (80, 240)])
def test_saved_image_gives_the_same_model_input_in_training_and_solving(
        tmp_path: Path, size: tuple[int, int], channels: int) -> None:
    path = tmp_path / "captcha.png"
    path.write_bytes(CaptchaDrawer(width=160, height=60, seed=3).png("AB12"))
    height, width = size

    images, report = load_samples([Sample(path=path, label="AB12")], height, width,
                                  channels=channels)
    trained_on = as_model_input(images.images)[0]
    read_at_solve = to_model_input(read_image(path), height, width, channels=channels)

    assert report.loaded == 1
    assert trained_on.shape == read_at_solve.shape == (height, width, channels)
    assert trained_on.dtype == read_at_solve.dtype == np.float32
    assert np.array_equal(trained_on, read_at_solve)


@pytest.mark.parametrize("channels", [1, 3])
def test_a_lookalike_is_prepared_like_its_saved_png(channels: int) -> None:
    from solver.imaging import decode_image
    from solver.training import synth

    drawer = CaptchaDrawer(width=160, height=60, seed=5)
    synth._start_worker(drawer, (32, 96, channels))
    drawn = synth._draw((11, ["XY34"]))[0]
    saved = drawer.with_seed(11).png("XY34")

    assert np.array_equal(as_model_input(drawn[None])[0],
                          to_model_input(decode_image(saved), 32, 96, channels=channels))
