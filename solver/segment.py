"""Cut a captcha into characters with OpenCV, for the per-character ("segment") pipeline.

Three steps, each a public function:

* :func:`binarize`: RGB image -> ink mask (ink 255, background 0): grayscale,
  automatic polarity, median denoising, Otsu threshold, frame and thin-line
  removal, specks dropped. Every size is taken from the measured stroke width,
  so one setting serves a 70x30 and a 200x50 captcha.
* :func:`segment`: image -> character boxes, left to right: connected
  components, pieces of one character joined (the dot of an i, a broken
  stroke), boxes wider than a character split. With ``expected`` (a count or
  a ``(min, max)`` range) the count is forced into range.
* :func:`crop_characters`: boxes -> the per-character model's input.

:func:`segmentation_rate` tells how often the count comes out right on
labelled captchas, before and after forcing, and :func:`estimate_character_aspect`
learns a site's character width from them (the only setting that depends on
the font).

    >>> from solver.drawing import CaptchaDrawer
    >>> image = np.asarray(CaptchaDrawer(width=160, height=60).image("7K2Q"))
    >>> boxes = segment(image, expected=4)
    >>> len(boxes), boxes == sorted(boxes, key=lambda box: box.x)
    (4, True)
    >>> crop_characters(image, boxes, size=32).shape
    (4, 32, 32, 1)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from solver.imaging import ImageError

logger = logging.getLogger(__name__)

#: Typical character width over text height, overlaps between neighbours
#: included: a box about 1.5 times this wide is taken to hold two characters.
#: Fonts differ (measured: 0.72 for kaggle_v2, 0.88 for henan_digits, 0.42
#: for the captcha package's look-alikes); learn a site's own value with
#: :func:`estimate_character_aspect`.
DEFAULT_CHARACTER_ASPECT = 0.7

# Ink and background must differ by this much (of 255) for an image to hold text;
# below it the threshold would only split noise.
_MIN_CONTRAST = 24
# Ink no taller than this (of the image height) may be noise drawn darker than the
# text: the background side of the threshold is then split again to find the text.
_FAINT_TEXT_HEIGHT = 0.25
# Median blur size over stroke width: 3 px on 5 px strokes fills the hatched glyphs
# of kaggle_v2 and removes dots; on 2-3 px strokes (henan_digits) no blur is kept.
_MEDIAN_PER_STROKE = 0.6
# Opening size over stroke width: cuts lines thinner than the strokes. Only from
# 3 px up: a 2 px opening also eats the 1 px parts of small glyphs.
_OPENING_PER_STROKE = 0.8
_MIN_OPENING = 3
# A frame line: a row or column of the outer margin that is nearly all ink.
_FRAME_MARGIN = 0.05
_FRAME_INK = 0.9
# Pieces whose x-ranges overlap by this fraction of the narrower one are one character,
# when they are vertically no further apart than this fraction of the text height.
_SAME_CHARACTER_OVERLAP = 0.5
_SAME_CHARACTER_GAP = 0.3
# A character is at least this tall (of the text height, and of the image height) and
# holds at least this much ink (of text height x stroke width); smaller groups are noise.
_MIN_HEIGHT = 0.5
_MIN_TEXT_HEIGHT = 0.1
_MIN_INK = 0.5
# Where a box is split: the equal-parts column, unless a column within this fraction
# of a part's width has almost no ink (at most this fraction of the box's median column).
_CUT_WINDOW = 0.3
_CUT_VALLEY = 0.25


@dataclass(frozen=True, order=True)
class Box:
    """A character's bounding box in image pixels; ``x`` and ``y`` are its top-left corner.

    Boxes sort left to right (by ``x``, then ``y``).
    """

    x: int
    y: int
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.x < 0 or self.y < 0 or self.width < 1 or self.height < 1:
            raise ValueError(f"a box needs x, y >= 0 and a width and height of at least 1 "
                             f"pixel, not {self}")

    @property
    def right(self) -> int:
        """The first column right of the box."""
        return self.x + self.width

    @property
    def bottom(self) -> int:
        """The first row below the box."""
        return self.y + self.height


@dataclass(frozen=True)
class SegmentationReport:
    """How often segmentation finds as many characters as the labels hold.

    ``raw_match`` counts images whose count was right without being told it;
    ``forced_match`` those that have ``len(label)`` boxes once the count is forced
    (fewer only for images with too little ink). ``kept`` holds the indices of
    the latter: the images a per-character model can train on.
    """

    raw_match: int
    forced_match: int
    total: int
    kept: tuple[int, ...] = ()

    @property
    def raw_rate(self) -> float:
        """``raw_match / total`` (0 for no images)."""
        return self.raw_match / self.total if self.total else 0.0

    @property
    def forced_rate(self) -> float:
        """``forced_match / total`` (0 for no images)."""
        return self.forced_match / self.total if self.total else 0.0

    def __str__(self) -> str:
        return (f"segment count right in {self.raw_match} of {self.total} images "
                f"({self.raw_rate:.1%}) unforced, {self.forced_match} ({self.forced_rate:.1%}) "
                "forced")


def binarize(image: np.ndarray) -> np.ndarray:
    """The ink of a captcha: a ``uint8`` mask of the image's size, ink 255, background 0.

    ``image`` is RGB ``uint8`` ``(height, width, 3)`` as :func:`solver.imaging.decode_image`
    gives, or grayscale ``(height, width)``. Dark text on a light background and
    light on dark both work: the ink is whichever side of the threshold covers
    less of the image. When that ink is only small bits (noise drawn darker
    than faint text), the background side is split again to find the text. An
    image without text (too little contrast) gives an all-zero mask.

        >>> image = np.full((30, 60, 3), 240, np.uint8)
        >>> image[10:20, 20:26] = 30
        >>> mask = binarize(image)
        >>> mask.dtype.name, mask.shape, int(mask[15, 22]), int(mask[2, 2])
        ('uint8', (30, 60), 255, 0)
    """
    return _binarize(_grayscale(image))[0]


def segment(image: np.ndarray, expected: int | tuple[int, int] | None = None, *,
            character_aspect: float = DEFAULT_CHARACTER_ASPECT) -> list[Box]:
    """Character boxes of a captcha, left to right.

    Without ``expected`` the count is the image's own: connected pieces of ink,
    joined when they stack (the dot of an i), split when wider than about 1.5
    characters (``character_aspect`` x the text height is one character).
    ``expected`` (a count, or a ``(min, max)`` range such as a profile's
    ``format.length``) forces the count: too few boxes and the widest are
    split (at a column free of ink near the middle, else into equal parts), too
    many and the narrowest are merged into a neighbour.

    A blank image gives ``[]``, also with ``expected``: segmentation does not
    raise over an image's content, so check ``len(boxes)``. A forced count
    can come out short only when there is too little ink to cut (fewer ink
    columns than characters).

        >>> image = np.full((40, 90, 3), 255, np.uint8)
        >>> for x in (10, 40, 70):
        ...     image[10:30, x:x + 10] = 0
        >>> [box.x for box in segment(image)]
        [10, 40, 70]
        >>> len(segment(image, expected=4))
        4
    """
    bounds = None if expected is None else _expected_range(expected)
    _check_aspect(character_aspect)
    layout = _layout(_grayscale(image))
    raw = _split_wide(layout, character_aspect)
    if bounds is None or bounds[0] <= len(raw) <= bounds[1]:
        return raw
    return _force_count(layout, min(max(len(raw), bounds[0]), bounds[1]))


def crop_characters(image: np.ndarray, boxes: Sequence[Box], size: int = 32) -> np.ndarray:
    """Each box's ink as a square picture: float32 ``(N, size, size, 1)`` in [0, 1].

    The crop of :func:`binarize`'s mask is padded to a square (centred, aspect
    kept) and resized; ink is 1. No boxes give an array of shape ``(0, size, size, 1)``.

        >>> image = np.full((40, 60, 3), 255, np.uint8)
        >>> image[10:30, 20:30] = 0
        >>> crops = crop_characters(image, [Box(20, 10, 10, 20)], size=16)
        >>> crops.shape, crops.dtype.name, float(crops.max())
        ((1, 16, 16, 1), 'float32', 1.0)
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a whole number of pixels >= 1, not {size!r} "
                         "(the per-character model's input side, e.g. 32)")
    mask = binarize(image)
    height, width = mask.shape
    crops = np.zeros((len(boxes), size, size, 1), np.float32)
    for index, box in enumerate(boxes):
        if box.right > width or box.bottom > height:
            raise ValueError(f"{box} reaches outside the {width}x{height} image (crop with "
                             "the boxes segment() found in this same image)")
        crops[index, :, :, 0] = _square(mask[box.y:box.bottom, box.x:box.right], size)
    return crops


def segmentation_rate(images: Iterable[np.ndarray], labels: Sequence[str], *,
                      character_aspect: float = DEFAULT_CHARACTER_ASPECT) -> SegmentationReport:
    """How often :func:`segment` finds ``len(label)`` characters, unforced and forced.

        >>> image = np.full((40, 60, 3), 255, np.uint8)
        >>> image[10:30, 10:20] = image[10:30, 35:45] = 0
        >>> report = segmentation_rate([image, image], ["ab", "abc"])
        >>> report.raw_match, report.forced_match, report.total, report.kept
        (1, 2, 2, (0, 1))
    """
    _check_aspect(character_aspect)
    images = list(images)
    if len(images) != len(labels):
        raise ValueError(f"got {len(images)} images and {len(labels)} labels (give one "
                         "label per image, in the same order)")
    raw_match = 0
    kept = []
    for index, (image, label) in enumerate(zip(images, labels)):
        expected = _label_length(label, index)
        layout = _layout(_grayscale(image))
        raw = _split_wide(layout, character_aspect)
        if len(raw) == expected:
            raw_match += 1
            kept.append(index)
        elif len(_force_count(layout, expected)) == expected:
            kept.append(index)
    report = SegmentationReport(raw_match, len(kept), len(images), tuple(kept))
    logger.debug("%s", report)
    return report


def estimate_character_aspect(images: Iterable[np.ndarray], labels: Sequence[str]) -> float:
    """The ``character_aspect`` that gives the right unforced count most often on labelled captchas.

    Pass it to :func:`segment` and :func:`segmentation_rate` for that site
    (and keep it with the model). A few hundred images are plenty.

        >>> image = np.full((40, 100, 3), 255, np.uint8)
        >>> image[10:30, 10:50] = 0  # two 20-pixel characters that touch
        >>> aspect = estimate_character_aspect([image], ["ab"])
        >>> len(segment(image, character_aspect=aspect))
        2
    """
    images = list(images)
    if len(images) != len(labels):
        raise ValueError(f"got {len(images)} images and {len(labels)} labels (give one "
                         "label per image, in the same order)")
    if not images:
        raise ValueError("no images to learn the character width from (give labelled captchas)")
    layouts = [(_layout(_grayscale(image)), _label_length(label, index))
               for index, (image, label) in enumerate(zip(images, labels))]
    candidates = np.round(np.arange(0.2, 2.0001, 0.02), 2)
    matches = np.array([sum(_raw_count(layout, float(aspect)) == count
                            for layout, count in layouts) for aspect in candidates])
    best = candidates[matches == matches.max()]
    aspect = float(np.median(best))
    logger.debug("character aspect %.2f: unforced count right in %d of %d images",
                 aspect, matches.max(), len(layouts))
    return aspect


# ---------------------------------------------------------------------------- binarizing


def _grayscale(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        kind = image.dtype if isinstance(image, np.ndarray) else type(image).__name__
        raise ImageError(f"expected a uint8 image array, got {kind} (decode the image with "
                         "solver.imaging.decode_image or read_image)")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ImageError(f"expected an RGB image of shape (height, width, 3) or a grayscale one "
                         f"of shape (height, width), got {image.shape}")
    if image.size == 0:
        raise ImageError(f"the image is empty ({image.shape}); grab the captcha again")
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def _threshold(gray: np.ndarray, faint: bool = False) -> tuple[np.ndarray, float]:
    """Otsu's threshold with the ink on the smaller side, and the contrast between the sides.

    ``faint``: split the background side once more, for text that is fainter
    than the noise drawn over it (the first split then finds only the noise).
    """
    level, dark = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    dark_pixels = dark > 0
    if dark_pixels.all() or not dark_pixels.any():
        return np.zeros_like(gray), 0.0
    light_background = np.count_nonzero(dark_pixels) <= dark.size / 2
    if faint:
        background = gray[~dark_pixels] if light_background else gray[dark_pixels]
        level, _ = cv2.threshold(background.reshape(1, -1), 0, 255,
                                 cv2.THRESH_BINARY | cv2.THRESH_OTSU)
        dark_pixels = gray <= level
        if dark_pixels.all() or not dark_pixels.any():
            return np.zeros_like(gray), 0.0
    contrast = float(gray[~dark_pixels].mean()) - float(gray[dark_pixels].mean())
    ink = dark_pixels if light_background else ~dark_pixels
    return ink.astype(np.uint8) * 255, contrast


def _stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width in pixels: for a stroke w wide the distances to the background
    run 1 .. w/2, averaging about w/4 + 1/2."""
    ink = mask > 0
    if not ink.any():
        return 0.0
    distance = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
    return max(1.0, 4.0 * float(distance[ink].mean()) - 2.0)


def _binarize(gray: np.ndarray) -> tuple[np.ndarray, float]:
    """The ink mask and its stroke width."""
    mask, stroke = _clean_ink(gray, faint=False)
    tallest = _tallest(mask)
    if tallest < _FAINT_TEXT_HEIGHT * gray.shape[0]:
        faint_mask, faint_stroke = _clean_ink(gray, faint=True)
        if _tallest(faint_mask) > tallest:
            return faint_mask, faint_stroke
    return mask, stroke


def _tallest(mask: np.ndarray) -> int:
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    return int(stats[1:, cv2.CC_STAT_HEIGHT].max()) if count > 1 else 0


def _clean_ink(gray: np.ndarray, faint: bool) -> tuple[np.ndarray, float]:
    mask, contrast = _threshold(gray, faint)
    if contrast < _MIN_CONTRAST:
        return np.zeros_like(gray), 0.0
    stroke = _stroke_width(mask)
    median_size = 2 * int(_MEDIAN_PER_STROKE * stroke / 2) + 1
    if median_size >= 3:
        mask = _threshold(cv2.medianBlur(gray, median_size), faint)[0]
    _remove_frame(mask)
    opening_size = round(_OPENING_PER_STROKE * stroke)
    if opening_size >= _MIN_OPENING:
        mask = _open(mask, opening_size)
    _remove_specks(mask, min_area=max(4, round(stroke * stroke / 4)))
    return mask, _stroke_width(mask)


def _open(mask: np.ndarray, size: int) -> np.ndarray:
    """Morphological opening with a disc ``size`` pixels wide.

    Dilating with the reflected disc keeps the ink in place for even sizes too
    (``cv2.MORPH_OPEN`` moves it by a pixel: it dilates with the same anchor).
    """
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    centre = size // 2
    eroded = cv2.erode(mask, disc, anchor=(centre, centre))
    reflected_centre = size - 1 - centre
    return cv2.dilate(eroded, cv2.flip(disc, -1), anchor=(reflected_centre, reflected_centre))


def _remove_frame(mask: np.ndarray) -> None:
    """Clear border lines (a box drawn around the captcha) in place."""
    height, width = mask.shape
    rows = np.count_nonzero(mask, axis=1) >= _FRAME_INK * width
    columns = np.count_nonzero(mask, axis=0) >= _FRAME_INK * height
    row_margin = max(2, round(_FRAME_MARGIN * height))
    column_margin = max(2, round(_FRAME_MARGIN * width))
    rows[row_margin:height - row_margin] = False
    columns[column_margin:width - column_margin] = False
    mask[rows, :] = 0
    mask[:, columns] = 0


def _remove_specks(mask: np.ndarray, min_area: int) -> None:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    specks = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] < min_area) + 1
    if specks.size:
        mask[np.isin(labels, specks)] = 0


# ---------------------------------------------------------------------------- segmenting


@dataclass(frozen=True)
class _Layout:
    """An image's ink, its character-sized groups of ink (left to right) and text height."""

    mask: np.ndarray
    groups: list[Box]
    text_height: float


def _layout(gray: np.ndarray) -> _Layout:
    """Connected components of the ink, grouped into characters; noise-sized groups dropped."""
    mask, stroke = _binarize(gray)
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    components = [tuple(int(value) for value in row[:5]) for row in stats[1:count]]
    if not components:
        return _Layout(mask, [], 0.0)
    # the text height: the usual height of the big components (a glyph, or glyphs that touch)
    largest = max(component[4] for component in components)
    text_height = float(np.median([h for _, _, _, h, area in components if area >= largest / 4]))
    groups: list[list[int]] = []  # x0, y0, x1, y1, ink area
    for x, y, w, h, area in sorted(components):
        best, best_overlap = None, 0.0
        for group in groups:
            overlap = (min(group[2], x + w) - max(group[0], x)) / min(group[2] - group[0], w)
            gap = max(group[1] - (y + h), y - group[3])
            if (overlap >= _SAME_CHARACTER_OVERLAP and overlap > best_overlap
                    and gap <= _SAME_CHARACTER_GAP * text_height):
                best, best_overlap = group, overlap
        if best is None:
            groups.append([x, y, x + w, y + h, area])
        else:
            best[:4] = [min(best[0], x), min(best[1], y), max(best[2], x + w), max(best[3], y + h)]
            best[4] += area
    min_height = max(_MIN_HEIGHT * text_height, _MIN_TEXT_HEIGHT * mask.shape[0])
    characters = [Box(x0, y0, x1 - x0, y1 - y0) for x0, y0, x1, y1, area in groups
                  if y1 - y0 >= min_height and area >= _MIN_INK * text_height * stroke]
    return _Layout(mask, sorted(characters), text_height)


def _pieces(box: Box, layout: _Layout, aspect: float) -> int:
    """How many characters a box holds, judged by its width alone (at most one per column)."""
    return min(box.width, max(1, int(box.width / (aspect * layout.text_height) + 0.5)))


def _raw_count(layout: _Layout, aspect: float) -> int:
    return sum(_pieces(box, layout, aspect) for box in layout.groups)


def _split_wide(layout: _Layout, aspect: float) -> list[Box]:
    # sorted again: a small group can lie within the columns of a wide one that is split
    return sorted(piece for box in layout.groups
                  for piece in _split(layout.mask, box, _pieces(box, layout, aspect)))


def _force_count(layout: _Layout, target: int) -> list[Box]:
    """``target`` boxes from the groups: the narrowest merged, or the widest split."""
    boxes = list(layout.groups)
    while len(boxes) > target:
        boxes = _merge_narrowest(boxes)
    # split where the parts stay widest: each extra part goes to the box of widest parts
    parts = [1] * len(boxes)
    for _ in range(target - len(boxes)):
        splittable = [i for i, box in enumerate(boxes) if box.width > parts[i]]
        if not splittable:
            break  # fewer ink columns than characters
        widest = max(splittable, key=lambda i: boxes[i].width / parts[i])
        parts[widest] += 1
    return sorted(piece for box, count in zip(boxes, parts)
                  for piece in _split(layout.mask, box, count))


def _merge_narrowest(boxes: list[Box]) -> list[Box]:
    """Merge the narrowest box into the neighbour that makes the narrower union."""
    index = min(range(len(boxes)), key=lambda i: boxes[i].width)
    neighbours = [i for i in (index - 1, index + 1) if 0 <= i < len(boxes)]
    other = min(neighbours, key=lambda i: _union(boxes[index], boxes[i]).width)
    first, second = sorted((index, other))
    return boxes[:first] + [_union(boxes[first], boxes[second])] + boxes[second + 1:]


def _union(a: Box, b: Box) -> Box:
    x, y = min(a.x, b.x), min(a.y, b.y)
    return Box(x, y, max(a.right, b.right) - x, max(a.bottom, b.bottom) - y)


def _split(mask: np.ndarray, box: Box, parts: int) -> list[Box]:
    """Cut a box into ``parts`` side by side, each at least one column wide."""
    if parts <= 1:
        return [box]
    region = mask[box.y:box.bottom, box.x:box.right]
    ink = np.convolve(np.count_nonzero(region, axis=0).astype(np.float32),
                      np.ones(3, np.float32) / 3, mode="same")
    valley = _CUT_VALLEY * float(np.median(ink))
    step = box.width / parts
    cuts = [0]
    for part in range(1, parts):
        ideal = part * step
        low = max(cuts[-1] + 1, round(ideal - _CUT_WINDOW * step))
        high = min(box.width - (parts - part), round(ideal + _CUT_WINDOW * step))
        cut = min(max(round(ideal), cuts[-1] + 1), box.width - (parts - part))
        if low <= high:
            free = np.flatnonzero(ink[low:high + 1] <= valley) + low
            if free.size:
                cut = int(free[np.argmin(np.abs(free - ideal))])
        cuts.append(cut)
    cuts.append(box.width)
    return [_tighten(region, box, start, end) for start, end in zip(cuts, cuts[1:])]


def _tighten(region: np.ndarray, box: Box, start: int, end: int) -> Box:
    """The box around the ink of columns ``start:end`` of ``box``; the columns' full box if none."""
    part = region[:, start:end]
    rows = np.flatnonzero(part.any(axis=1))
    columns = np.flatnonzero(part.any(axis=0))
    if rows.size == 0:
        return Box(box.x + start, box.y, end - start, box.height)
    return Box(box.x + start + int(columns[0]), box.y + int(rows[0]),
               int(columns[-1] - columns[0]) + 1, int(rows[-1] - rows[0]) + 1)


def _square(crop: np.ndarray, size: int) -> np.ndarray:
    height, width = crop.shape
    side = max(height, width)
    square = np.zeros((side, side), np.uint8)
    top, left = (side - height) // 2, (side - width) // 2
    square[top:top + height, left:left + width] = crop
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(square, (size, size), interpolation=interpolation).astype(np.float32) / 255.0


# ---------------------------------------------------------------------------- arguments


def _expected_range(expected: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(expected, (int, np.integer)) and not isinstance(expected, bool):
        low = high = int(expected)
    elif (isinstance(expected, (tuple, list)) and len(expected) == 2
          and all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in expected)):
        low, high = int(expected[0]), int(expected[1])
    else:
        raise ValueError(f"expected must be a character count or a (min, max) pair, not "
                         f"{expected!r} (pass len(label), or the profile's format.length)")
    if low < 1 or low > high:
        raise ValueError(f"expected {expected!r} is not a count range: it needs 1 <= min <= max "
                         "(e.g. 5, or (4, 6))")
    return low, high


def _label_length(label: str, index: int) -> int:
    if not label:
        raise ValueError(f"label {index} is empty (give every image the text it shows)")
    return len(label)


def _check_aspect(aspect: float) -> None:
    if (isinstance(aspect, bool) or not isinstance(aspect, (int, float, np.floating))
            or not 0.05 <= aspect <= 10):
        raise ValueError(f"character_aspect must be a character's width over its height, "
                         f"between 0.05 and 10, not {aspect!r} (the default is "
                         f"{DEFAULT_CHARACTER_ASPECT}; estimate_character_aspect learns it)")
