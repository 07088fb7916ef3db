"""OpenCV segmentation: ink masks, character boxes, crops, match rates on labelled captchas."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import pytest

from solver.drawing import CaptchaDrawer
from solver.imaging import ImageError
from solver.segment import (
    DEFAULT_CHARACTER_ASPECT,
    Box,
    SegmentationReport,
    binarize,
    crop_characters,
    estimate_character_aspect,
    segment,
    segmentation_rate,
)

FONT = cv2.FONT_HERSHEY_SIMPLEX
INK, PAPER = 30, 235


def draw_text(text: str, spacing: int = 10, *, line: bool = False, dots: int = 0,
              light_on_dark: bool = False, seed: int = 0, scale: float = 1.5, thickness: int = 4,
              height: int = 60) -> tuple[np.ndarray, list[Box]]:
    """An RGB captcha of ``text`` and each character's true box (drawn alone to find it)."""
    pad = 10
    sizes = [cv2.getTextSize(character, FONT, scale, thickness)[0] for character in text]
    width = 2 * pad + sum(w for w, _ in sizes) + spacing * (len(text) - 1)
    ink, paper = (PAPER, INK) if light_on_dark else (INK, PAPER)
    image = np.full((height, width, 3), paper, np.uint8)
    baseline = (height + max(h for _, h in sizes)) // 2
    boxes, x = [], pad
    for character, (w, _) in zip(text, sizes):
        alone = np.zeros((height, width), np.uint8)
        cv2.putText(alone, character, (x, baseline), FONT, scale, 255, thickness, cv2.LINE_AA)
        rows, columns = np.nonzero(alone > 127)
        boxes.append(Box(int(columns.min()), int(rows.min()), int(np.ptp(columns)) + 1,
                         int(np.ptp(rows)) + 1))
        cv2.putText(image, character, (x, baseline), FONT, scale, (ink,) * 3, thickness,
                    cv2.LINE_AA)
        x += w + spacing
    if line:  # a thin line across the whole image, through the middle of the text
        cv2.line(image, (0, height // 2 + 2), (width - 1, height // 2 - 3), (ink,) * 3, 1,
                 cv2.LINE_AA)
    rng = np.random.default_rng(seed)
    for _ in range(dots):
        centre = (int(rng.integers(width)), int(rng.integers(height)))
        cv2.circle(image, centre, 1, (ink,) * 3, -1)
    return image, boxes


def iou(a: Box, b: Box) -> float:
    width = min(a.right, b.right) - max(a.x, b.x)
    height = min(a.bottom, b.bottom) - max(a.y, b.y)
    inter = max(0, width) * max(0, height)
    return inter / (a.width * a.height + b.width * b.height - inter)


def assert_match(found: list[Box], truth: list[Box]) -> None:
    assert len(found) == len(truth), (found, truth)
    assert found == sorted(found, key=lambda box: box.x), "boxes must come left to right"
    scores = [round(iou(a, b), 2) for a, b in zip(found, truth)]
    assert min(scores) > 0.5, (scores, found, truth)


def components(mask: np.ndarray) -> int:
    return cv2.connectedComponents(mask, connectivity=8)[0] - 1


def test_boxes_match_the_drawn_characters_left_to_right() -> None:
    image, truth = draw_text("A7K3", dots=40)
    assert_match(segment(image), truth)
    assert_match(segment(image, expected=4), truth)


def test_a_thin_line_across_does_not_join_the_characters() -> None:
    image, truth = draw_text("H4X2", line=True, dots=30)
    gap = (truth[0].right + truth[1].x) // 2  # a column between two characters
    assert (image[:, gap] < 128).any(), "the test needs a line that crosses the gap"
    mask = binarize(image)
    assert not mask[:, gap].any()
    assert components(mask) == 4
    assert_match(segment(image), truth)


def test_touching_characters_are_split_to_the_expected_count() -> None:
    image, truth = draw_text("8096", spacing=-9)  # -6 left a hair of paper between two with some OpenCV builds
    assert components(binarize(image)) == 1, "the test needs glyphs that touch"
    assert_match(segment(image, expected=4), truth)


def test_too_many_pieces_are_merged_to_the_expected_count() -> None:
    image, truth = draw_text("ABC")
    boxes = segment(image, expected=2)
    assert len(boxes) == 2
    assert boxes[0].x <= truth[0].x + 1 and boxes[-1].right >= truth[-1].right - 1
    assert sum(box.width for box in boxes) >= sum(box.width for box in truth) - 2


def test_a_count_range_changes_only_counts_outside_it() -> None:
    image, truth = draw_text("A7K3")
    assert_match(segment(image, expected=(3, 6)), truth)
    assert len(segment(image, expected=(5, 6))) == 5
    assert len(segment(image, expected=(1, 2))) == 2


def test_light_text_on_a_dark_background() -> None:
    image, truth = draw_text("K3P7", dots=30, light_on_dark=True)
    mask = binarize(image)
    first = truth[0]
    assert mask[0, 0] == 0 and mask[first.y:first.bottom, first.x:first.right].any()
    assert_match(segment(image), truth)


def test_binarize_gives_ink_255_on_background_0() -> None:
    image, truth = draw_text("E5", dots=20)
    mask = binarize(image)
    assert mask.dtype == np.uint8 and mask.shape == image.shape[:2]
    assert set(np.unique(mask).tolist()) == {0, 255}
    outside = np.ones(mask.shape, bool)
    for box in truth:  # a pixel of margin: the threshold may take a glyph's soft edge
        outside[box.y - 1:box.bottom + 1, box.x - 1:box.right + 1] = False
    assert not mask[outside].any(), "noise dots and background must not be ink"
    assert np.array_equal(binarize(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)), mask)


def test_specks_are_not_ink() -> None:
    image, truth = draw_text("52T", spacing=4, scale=0.7, thickness=2, height=30)
    near_text = np.zeros(image.shape[:2], bool)
    for box in truth:
        near_text[box.y - 2:box.bottom + 2, box.x - 2:box.right + 2] = True
    rng = np.random.default_rng(3)
    specks = rng.integers(image.shape[:2], size=(60, 2))
    specks = specks[~near_text[specks[:, 0], specks[:, 1]]]
    image[specks[:, 0], specks[:, 1]] = INK  # single dark pixels; strokes too thin to open here
    mask = binarize(image)
    assert not mask[~near_text].any()
    assert_match(segment(image), truth)


def test_a_frame_around_the_captcha_is_not_ink() -> None:
    # small and thin, like henan_digits: too thin for the opening that removes lines to apply
    image, truth = draw_text("52T", spacing=4, scale=0.7, thickness=2, height=30)
    cv2.rectangle(image, (0, 0), (image.shape[1] - 1, image.shape[0] - 1), (0, 0, 0), 1)
    mask = binarize(image)
    assert not mask[0].any() and not mask[:, 0].any() and not mask[-1].any()
    assert_match(segment(image), truth)


def test_faint_text_under_darker_noise_is_found() -> None:
    image, truth = draw_text("A7K3")
    # text barely darker than the paper (205 on 250), noise dots and a line far darker (60)
    image = (205 + (image.astype(np.float32) - INK) * (45 / (PAPER - INK))).round().astype(np.uint8)
    rng = np.random.default_rng(2)
    height, width = image.shape[:2]
    for _ in range(120):
        centre = (int(rng.integers(width)), int(rng.integers(height)))
        cv2.circle(image, centre, 1, (60, 60, 60), -1)
    cv2.line(image, (0, 8), (width - 1, 12), (60, 60, 60), 1)
    assert_match(segment(image), truth)


def test_a_blank_image_has_no_characters_even_when_some_are_expected() -> None:
    blank = np.full((50, 200, 3), 240, np.uint8)
    noisy = np.clip(blank + np.random.default_rng(1).normal(0, 4, blank.shape), 0, 255)
    for image in (blank, np.zeros_like(blank), noisy.astype(np.uint8)):
        assert not binarize(image).any()
        assert segment(image) == []
        assert segment(image, expected=5) == []
        assert crop_characters(image, []).shape == (0, 32, 32, 1)


def test_boxes_are_never_zero_wide() -> None:
    image = np.full((40, 60, 3), 255, np.uint8)
    image[10:30, 28:31] = 0  # three ink columns cannot hold five characters
    boxes = segment(image, expected=5)
    assert 1 <= len(boxes) <= 3 and all(box.width >= 1 for box in boxes)
    with pytest.raises(ValueError, match="at least 1"):
        Box(3, 4, 0, 10)


def test_crops_are_squares_of_ink_in_zero_to_one() -> None:
    image, truth = draw_text("1W")
    crops = crop_characters(image, truth, size=24)
    assert crops.shape == (2, 24, 24, 1) and crops.dtype == np.float32
    assert crops.min() == 0.0 and crops.max() == 1.0
    one = crops[0, :, :, 0]  # a tall, narrow 1 keeps its shape: centred, blank at the sides
    assert not one[:, :3].any() and not one[:, -3:].any() and one[:, 10:14].any()
    assert crop_characters(image, truth).shape == (2, 32, 32, 1)


def test_segmentation_rate_counts_unforced_and_forced_matches() -> None:
    touching, _ = draw_text("8096", spacing=-6)
    apart, _ = draw_text("A7K3")
    report = segmentation_rate([apart, touching, apart], ["A7K3", "8096", "A7K3B"])
    assert report == SegmentationReport(raw_match=2, forced_match=3, total=3, kept=(0, 1, 2))
    assert report.raw_rate == pytest.approx(2 / 3) and report.forced_rate == 1.0
    assert str(report) == ("segment count right in 2 of 3 images (66.7%) unforced, "
                           "3 (100.0%) forced")
    assert segmentation_rate([], []).raw_rate == 0.0


def test_the_character_width_is_learned_from_labels() -> None:
    image = np.full((40, 130, 3), 255, np.uint8)
    image[10:30, 10:60] = image[10:30, 75:125] = 0  # each block: two touching 25-pixel characters
    assert len(segment(image)) == 8  # at the default each block looks 50 / (0.7 x 20) = 3.6 wide
    aspect = estimate_character_aspect([image], ["abcd"])
    assert aspect != DEFAULT_CHARACTER_ASPECT
    assert len(segment(image, character_aspect=aspect)) == 4
    assert segmentation_rate([image], ["abcd"], character_aspect=aspect).raw_match == 1


@pytest.mark.parametrize(("call", "message"), [
    (lambda image: segment(image, expected=0), "1 <= min <= max"),
    (lambda image: segment(image, expected=(6, 4)), "1 <= min <= max"),
    (lambda image: segment(image, expected="4"), "a character count or a"),
    (lambda image: segment(image, expected=True), "a character count or a"),
    (lambda image: segment(image, character_aspect=0), "character_aspect"),
    (lambda image: segment(image, character_aspect=float("nan")), "character_aspect"),
    (lambda image: crop_characters(image, [Box(50, 0, 20, 10)]), "outside the 60x40 image"),
    (lambda image: crop_characters(image, [], size=0), "size must be"),
    (lambda image: segmentation_rate([image], ["ab", "cd"]), "1 images and 2 labels"),
    (lambda image: segmentation_rate([image], [""]), "label 0 is empty"),
    (lambda image: estimate_character_aspect([], []), "no images"),
])
def test_bad_arguments_are_explained(call: Callable[[np.ndarray], object], message: str) -> None:
    image = np.full((40, 60, 3), 255, np.uint8)
    with pytest.raises(ValueError, match=message):
        call(image)


@pytest.mark.parametrize("image", [
    np.zeros((40, 60, 4), np.uint8),
    np.zeros((40, 60, 3), np.float32),
    np.zeros((0, 60, 3), np.uint8),
    [[0, 255]],
])
def test_images_that_are_not_rgb_arrays_are_refused(image: object) -> None:
    with pytest.raises(ImageError, match="decode|expected an RGB|empty"):
        segment(image)


def test_captcha_package_images_get_their_length_once_forced() -> None:
    drawer = CaptchaDrawer(width=160, height=60)
    texts = ["7K2Q", "A3BX9", "M4P8RT", "2C6E", "WZ5Y3", "HJ8N2D", "9F4G", "KX7TQ", "3S2V",
             "R6L8W4"]
    images = [np.asarray(drawer.image(text)) for text in texts]
    report = segmentation_rate(images, texts)
    for image, text in zip(images, texts):
        boxes = segment(image, expected=len(text))
        assert boxes == sorted(boxes, key=lambda box: box.x)
        assert all(box.right <= 160 and box.bottom <= 60 for box in boxes)
    assert report.forced_match == len(texts), (
        f"{report}; the raw rate (count right before forcing, default character width) is "
        "for information only")
