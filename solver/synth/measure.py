"""Measure a set of captcha images: the statistics a look-alike is fitted to.

:func:`measure` reads statistics off a set of images: background and text
colours, a frame, text ink, height and width, stroke width, thin clutter
(lines, curves) and specks (dots), edge softness, how far characters stray
from one line, and histograms of edge directions (a font's shape, the
characters' tilt) and of ink and gap run lengths. Real and drawn images go
through it alike, with the same :class:`Probe` (size, polarity, thresholds),
so its biases cancel out in a comparison (see :mod:`solver.synth.score`).

Example::

    >>> images, labels = load_sample("../shared/datasets/kaggle_v2", 32)  # doctest: +SKIP
    >>> probe = probe_for(images)                                         # doctest: +SKIP
    >>> measure(images, probe, labels).column("text_height").shape        # doctest: +SKIP
    (32,)
"""

from __future__ import annotations

import logging
import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from solver.errors import SolverError, UsageError

logger = logging.getLogger(__name__)


class FitError(SolverError):
    """The images cannot be fitted (none readable, all blank)."""


# ---------------------------------------------------------------------------
# reading a sample


def load_sample(folder: str | os.PathLike[str], count: int = 96,
                seed: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """Up to ``count`` images (RGB arrays) of a labelled folder, picked with ``seed``, and
    their labels ('' where the folder has none)."""
    from solver.dataset import read_labelled_folder
    from solver.imaging import ImageError, read_image

    samples = read_labelled_folder(folder)
    if count < 1:
        raise UsageError(f"--sample {count}: give at least 1 image to measure")
    chosen = random.Random(seed).sample(samples, min(count, len(samples)))
    images, labels, broken = [], [], []
    for sample in chosen:
        try:
            images.append(read_image(sample.path))
        except ImageError:
            broken.append(sample.path.name)
            continue
        labels.append(sample.label)
    if broken:
        logger.warning("%d images could not be read and were skipped (%s)", len(broken),
                       ", ".join(broken[:3]))
    if not images:
        raise FitError(f"{folder}: none of the {len(chosen)} images could be read "
                       "(check that they are PNG, JPEG, GIF or BMP captchas)")
    return images, labels


# ---------------------------------------------------------------------------
# measuring


@dataclass(frozen=True)
class Probe:
    """How images are measured: the same for the real images and the look-alikes.

    ``size`` is (width, height) every image is brought to; ``dark_text`` says
    whether text is darker than its background; ink narrower than ``thin_below``
    pixels counts as clutter (lines, curves), the rest as text.
    """

    size: tuple[int, int]
    dark_text: bool = True
    thin_below: float = 0.0


#: statistics compared between real images and look-alikes, with the smallest spread
#: that counts (so that a statistic every real image shares does not weigh infinitely)
FEATURES: dict[str, float] = {
    "text_ink": 0.01, "thin_ink": 0.005, "thin_width": 0.3, "stroke": 0.3, "text_height": 0.02,
    "text_width": 0.02, "specks": 1.0, "softness": 0.05, "background_lum": 4.0,
    "background_chroma": 4.0, "text_lum": 6.0, "text_chroma": 6.0, "gradient": 4.0,
    "frame": 6.0, "wobble": 0.01, "feet": 0.1,
}
#: histograms compared bin by bin, with their bins and weight (a statistic's weight is 1):
#: edge directions (a font's shape, the characters' tilt), and the lengths of the text's
#: runs of ink across and down (stroke widths) and of the gaps across (spacing, overlap)
HISTOGRAMS: dict[str, tuple[int, float]] = {
    "directions": (8, 2.0), "ink_across": (8, 1.0), "ink_down": (8, 1.0), "gaps_across": (8, 1.0)}
HISTOGRAM_BINS = sum(bins for bins, _ in HISTOGRAMS.values())
RUN_EDGES = np.asarray([1, 2, 3, 5, 8, 12, 18, 27, 10_000])


@dataclass
class Measurements:
    """Per-image statistics of a set of images (one row per image)."""

    table: np.ndarray  # (n, len(FEATURES) + HISTOGRAM_BINS)
    background: np.ndarray  # (n, 3) median background colour
    text_colours: list[np.ndarray]  # per image: (k, 3) its characters' ink colours
    sizes: list[tuple[int, int]] = field(default_factory=list)  # original (width, height)
    border: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # (n, 3) outer ring
    #: per image: the ink colours of its clutter (thin lines, curves), (k, 3)
    clutter_colours: list[np.ndarray] = field(default_factory=list)
    #: per image: the height of each character's slice of the text over the image's height
    slice_heights: list[np.ndarray] = field(default_factory=list)

    def column(self, name: str) -> np.ndarray:
        return self.table[:, list(FEATURES).index(name)]

    def means(self) -> np.ndarray:
        """Each statistic's mean over the images that have it (NaN where none has)."""
        return np.asarray([finite_mean(column) for column in self.table.T])


def finite_mean(values: np.ndarray) -> float:
    """The mean of the finite values; NaN, without a warning, when there are none."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else math.nan


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def _stroke_width(mask: np.ndarray) -> float:
    """Typical stroke width of ``mask``: twice its area over its outline's length (a stroke
    of width w and length L has area wL and an outline of about 2L)."""
    area = float(mask.sum())
    if area < 4:
        return math.nan
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    outline = sum(cv2.arcLength(contour, True) for contour in contours)
    return 2 * area / outline if outline else math.nan


def probe_for(images: Sequence[np.ndarray]) -> Probe:
    """The probe for a set of real images: their median size, text polarity, and the width
    under which ink is clutter: 0.65 of the text's typical stroke."""
    widths = sorted(image.shape[1] for image in images)
    heights = sorted(image.shape[0] for image in images)
    size = (widths[len(widths) // 2], heights[len(heights) // 2])
    # most of a captcha is background: its median says light or dark
    dark_text = float(np.median([np.median(_luminance(image.astype(np.float32)))
                                 for image in images[:64]])) >= 110
    first = Probe(size, dark_text)
    strokes = measure(images[:64], first).column("stroke")
    finite = strokes[np.isfinite(strokes)]
    stroke = float(np.median(finite)) if finite.size else 3.0
    return Probe(size, dark_text, thin_below=max(1.5, 0.65 * stroke))


def _ring(image: np.ndarray, inset: int) -> np.ndarray:
    """The pixels ``inset`` - 1 pixels in from the edge, as (k, 3)."""
    i = inset - 1
    return np.concatenate([image[i, i:image.shape[1] - i], image[image.shape[0] - 1 - i,
                                                                 i:image.shape[1] - i],
                           image[i:image.shape[0] - i, i], image[i:image.shape[0] - i,
                                                                 image.shape[1] - 1 - i]])


def measure(images: Sequence[np.ndarray], probe: Probe, labels: Sequence[str] = (),
            colours: bool = True) -> Measurements:
    """Statistics of each RGB image, measured as ``probe`` says (see the module's doc);
    ``colours``: also each character's colour (for the palette; slower)."""
    rows, backgrounds, characters, sizes, borders = [], [], [], [], []
    clutter, slices = [], []
    width, height = probe.size
    side = max(5, (height // 3) | 1)
    close = np.ones((side, side), np.uint8)
    for index, original in enumerate(images):
        sizes.append((original.shape[1], original.shape[0]))
        image = original
        if image.shape[:2] != (height, width):
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        pixels = image.astype(np.float32)
        # the background without the text: grey closing (or opening) per channel
        morph = cv2.MORPH_CLOSE if probe.dark_text else cv2.MORPH_OPEN
        background = cv2.blur(cv2.morphologyEx(image, morph, close), (5, 5)).astype(np.float32)
        difference = (background - pixels) if probe.dark_text else (pixels - background)
        # a 3x3 median: speckle inside strokes would otherwise read as thin strokes
        darkness = cv2.medianBlur(np.clip(difference, 0, None).max(axis=2), 3)
        darkness[:2], darkness[-2:], darkness[:, :2], darkness[:, -2:] = 0, 0, 0, 0  # frames
        contrast = float(np.percentile(darkness, 99.5))
        # Otsu's threshold splits ink from background whatever each character's colour
        otsu, _ = cv2.threshold(np.clip(darkness, 0, 255).astype(np.uint8), 0, 255,
                                cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        level = max(float(otsu), 12.0)
        ink = darkness > level
        core = darkness > max((level + contrast) / 2, 12.0)
        # closed: a texture of holes inside strokes would otherwise split them
        ink8 = cv2.morphologyEx(ink.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
        ink = ink8.astype(bool)
        distance = cv2.distanceTransform(ink8, cv2.DIST_L2, 3)
        # local width: twice the largest distance to the edge nearby
        local_width = 2 * cv2.dilate(distance, np.ones((5, 5), np.uint8)) - 1
        thin = ink & (local_width < probe.thin_below)
        thick = ink & ~thin
        stroke = _stroke_width(ink)
        thin_width = _stroke_width(thin) if thin.sum() > 10 else math.nan
        text_height = _extent(thick.sum(axis=1)) / height
        text_width = _extent(thick.sum(axis=0)) / width
        count, _, stats, _ = cv2.connectedComponentsWithStats(ink8, connectivity=8)
        specks = int(np.sum(stats[1:, cv2.CC_STAT_AREA] <= 24)) if count > 1 else 0
        soft = (darkness > 0.15 * contrast) & ~core
        softness = float(soft.sum()) / max(float(core.sum()), 1.0)
        gx = cv2.Sobel(darkness, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(darkness, cv2.CV_32F, 0, 1, ksize=3)
        magnitude = np.hypot(gx, gy)
        angle = (np.degrees(np.arctan2(gy, gx)) % 180.0)
        # the text's edges only: clutter's directions are random and would blur the font's
        near_text = cv2.dilate(thick.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        strong = near_text & (magnitude > 0.25 * max(float(magnitude.max()), 1e-6))
        directions = np.histogram(angle[strong], bins=HISTOGRAMS["directions"][0],
                                  range=(0, 180), weights=magnitude[strong])[0]
        runs = [directions, _runs(thick), _runs(thick.T), _runs(~thick, inner=True)]
        histograms = np.concatenate([r / max(float(r.sum()), 1e-6) for r in runs])
        background_colour = np.median(background.reshape(-1, 3), axis=0)
        text_colour = _ink_colour(pixels, darkness, core)
        if text_colour is None:
            text_colour = background_colour
        lum = _luminance(background)
        band = max(1, width // 7)
        gradient = float(np.median(lum[:, -band:]) - np.median(lum[:, :band]))
        outer, inner = _ring(pixels, 1), _ring(pixels, 3)
        frame = float(np.median(_luminance(inner)) - np.median(_luminance(outer)))
        if not probe.dark_text:
            frame = -frame
        rows.append([
            float(thick.mean()), float(thin.mean()), thin_width, stroke, text_height, text_width,
            specks, softness, float(_luminance(background_colour)),
            float(np.ptp(background_colour)), float(_luminance(text_colour)),
            float(np.ptp(text_colour)), gradient, frame,
            _wobble(thick, len(labels[index]) if index < len(labels) and labels[index] else 4)
            / height, _feet(thick, stroke), *histograms])
        backgrounds.append(background_colour)
        borders.append(np.median(outer, axis=0))
        label = labels[index] if index < len(labels) else ""
        characters.append(_character_colours(pixels, darkness, core, len(label) or 4)
                          if colours else np.zeros((0, 3)))
        # clutter away from the text: thin ink next to a stroke is as often the stroke's edge
        apart = thin & ~cv2.dilate(thick.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        clutter.append(_clutter_colours(pixels, darkness, apart, level)
                       if colours else np.zeros((0, 3)))
        slices.append(_slice_heights(thick, len(label) or 4) / height)
    table = np.asarray(rows, np.float64).reshape(len(rows), len(FEATURES) + HISTOGRAM_BINS)
    return Measurements(table, np.asarray(backgrounds).reshape(-1, 3), characters, sizes,
                        np.asarray(borders).reshape(-1, 3), clutter, slices)


def _runs(mask: np.ndarray, inner: bool = False) -> np.ndarray:
    """Counts of the lengths of ``mask``'s runs along its rows, in the bins of RUN_EDGES;
    ``inner``: only runs with something else on both sides (gaps between strokes)."""
    padded = np.pad(mask.astype(np.int8), ((0, 0), (1, 1)))
    steps = np.diff(padded, axis=1)
    starts, ends = np.nonzero(steps == 1)[1], np.nonzero(steps == -1)[1]
    lengths = ends - starts
    if inner:
        lengths = lengths[(starts > 0) & (ends < mask.shape[1])]
    return np.histogram(lengths, bins=RUN_EDGES)[0].astype(np.float64)


def _wobble(text: np.ndarray, characters: int) -> float:
    """How far characters stray from one line: the spread of the tops and bottoms of
    ``characters`` equal slices of the text, in pixels."""
    columns = np.nonzero(text.sum(axis=0))[0]
    if columns.size < characters * 2:
        return math.nan
    edges = np.linspace(columns[0], columns[-1] + 1, characters + 1).astype(int)
    tops, bottoms = [], []
    for start, stop in zip(edges[:-1], edges[1:]):
        rows = np.cumsum(text[:, start:stop].sum(axis=1))
        if rows[-1] >= 4:  # the rows where 5% and 95% of the slice's ink is reached
            tops.append(float(np.searchsorted(rows, 0.05 * rows[-1])))
            bottoms.append(float(np.searchsorted(rows, 0.95 * rows[-1])))
    if len(tops) < 2:
        return math.nan
    return float(np.std(tops) + np.std(bottoms)) / 2


def _slice_heights(text: np.ndarray, characters: int) -> np.ndarray:
    """The height of each of ``characters`` equal slices of the text's extent: from the row
    where 3% of the slice's ink is reached to the one where 97% is (NaN: no ink there).
    Lower-case letters without ascenders are shorter than capitals: the case mix shows."""
    out = np.full(characters, math.nan)
    columns = np.nonzero(text.sum(axis=0))[0]
    if columns.size < characters * 2:
        return out
    edges = np.linspace(columns[0], columns[-1] + 1, characters + 1).astype(int)
    for slot, (start, stop) in enumerate(zip(edges[:-1], edges[1:])):
        rows = np.cumsum(text[:, start:stop].sum(axis=1))
        if rows[-1] >= 6:
            out[slot] = float(np.searchsorted(rows, 0.97 * rows[-1])
                              - np.searchsorted(rows, 0.03 * rows[-1]) + 1)
    return out


def _feet(text: np.ndarray, stroke: float) -> float:
    """Serifs: how much wider than a stroke the bottom of the text's tall glyphs is, in
    strokes (a sans '1' or 'I' stands on its stem; a serif one on a foot). The mean over
    glyph-sized pieces of ink of the widest row of their bottom eighth, less one stroke."""
    if not math.isfinite(stroke) or stroke <= 0:
        return math.nan
    count, _, stats, _ = cv2.connectedComponentsWithStats(text.astype(np.uint8), connectivity=8)
    if count < 2:
        return math.nan
    tallest = float(stats[1:, cv2.CC_STAT_HEIGHT].max())
    widths = []
    for index in range(1, count):
        x, y, w, h = (int(stats[index, key]) for key in (cv2.CC_STAT_LEFT, cv2.CC_STAT_TOP,
                                                          cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT))
        if h < 0.6 * tallest or w > 1.5 * h:  # specks, clutter, glyphs run together
            continue
        band = text[y + h - max(1, h // 8):y + h, x:x + w]
        widths.append(float(band.sum(axis=1).max()) / stroke - 1)
    return float(np.median(widths)) if widths else math.nan


def _clutter_colours(pixels: np.ndarray, darkness: np.ndarray, thin: np.ndarray,
                     level: float) -> np.ndarray:
    """The colour of each long piece of thin ink (a line or curve): its strongest pixels'
    median. Short pieces are left out: they are the edges of text as often as clutter."""
    count, marks, stats, _ = cv2.connectedComponentsWithStats(thin.astype(np.uint8),
                                                              connectivity=8)
    out = []
    for index in range(1, count):
        extent = max(int(stats[index, cv2.CC_STAT_WIDTH]), int(stats[index, cv2.CC_STAT_HEIGHT]))
        if stats[index, cv2.CC_STAT_AREA] < 5 or extent < 5:
            continue
        piece = (marks == index) & (darkness > level)
        colour = _ink_colour(pixels, darkness, piece)
        if colour is not None:
            out.append(colour)
    return np.asarray(out).reshape(-1, 3)


def _extent(profile: np.ndarray) -> float:
    """From the first to the last row (or column) holding at least a fifth of the fullest
    one's ink: the text's extent, which a line through it or a speck far off does not
    stretch."""
    if profile.max() < 2:
        return math.nan
    full = np.nonzero(profile >= 0.2 * profile.max())[0]
    return float(full[-1] - full[0] + 1)


def _ink_colour(pixels: np.ndarray, darkness: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
    """The colour of the strongest fifth of ``mask``'s pixels: the ink itself, not the edges
    anti-aliasing blends with the background."""
    values = darkness[mask]
    if values.size < 4:
        return None
    strongest = mask & (darkness >= np.percentile(values, 80))
    return np.median(pixels[strongest], axis=0)


def _character_colours(pixels: np.ndarray, darkness: np.ndarray, core: np.ndarray,
                       characters: int) -> np.ndarray:
    """The ink colour of each of ``characters`` equal slices of the text's extent."""
    ys, xs = np.nonzero(core)
    if xs.size < characters * 4:
        return np.zeros((0, 3))
    left, right = np.percentile(xs, 2), np.percentile(xs, 98) + 1
    edges = np.linspace(left, right, characters + 1)
    out = []
    for start, stop in zip(edges[:-1], edges[1:]):
        columns = np.zeros(core.shape, bool)
        columns[:, int(start):int(math.ceil(stop))] = True
        colour = _dominant_colour(pixels, darkness, core & columns)
        if colour is not None:
            out.append(colour)
    return np.asarray(out).reshape(-1, 3)


def _dominant_colour(pixels: np.ndarray, darkness: np.ndarray,
                     mask: np.ndarray) -> np.ndarray | None:
    """The commonest ink colour of ``mask``'s strongest pixels: where a slice holds parts of
    two characters (or a line across one), a median would blend their colours into one
    that neither has."""
    values = darkness[mask]
    if values.size < 4:
        return None
    strongest = pixels[mask & (darkness >= np.percentile(values, 60))]
    bins = (strongest // 48).astype(np.int32)
    keys = bins[:, 0] * 64 + bins[:, 1] * 8 + bins[:, 2]
    common = np.bincount(keys).argmax()
    return np.median(strongest[keys == common], axis=0)


def type_properties(measured: Measurements, probe: Probe,
                    texts: Sequence[str] = ()) -> tuple[float, float, float]:
    """The type as a set of images shows it: weight (stroke over text height), serifs (the
    ``feet`` statistic, in strokes) and width (text width per character over text height);
    measured alike on real images and look-alikes, so the two compare. NaN where unseen."""
    width, height = probe.size
    text_height = float(np.nanmedian(measured.column("text_height"))) * height \
        if np.isfinite(measured.column("text_height")).any() else math.nan
    characters = float(np.mean([len(text) for text in texts if text])) \
        if any(texts) else 4.0

    def median(name: str) -> float:
        column = measured.column(name)
        return float(np.median(column[np.isfinite(column)])) if np.isfinite(column).any() \
            else math.nan

    text_width = median("text_width") * width / characters
    return (median("stroke") / text_height, median("feet"), text_width / text_height)

