"""Fit look-alike settings to a site's own captchas, and show how close they are.

Three steps, each usable alone:

* :func:`measure` reads statistics off a set of images: background and text
  colours, a frame, text ink, height and width, stroke width, thin clutter
  (lines, curves) and specks (dots), edge softness, how far characters stray
  from one line, and histograms of edge directions (a font's shape, the
  characters' tilt) and of ink and gap run lengths. Real and drawn images go
  through it alike, with the same thresholds, so its biases cancel out in a
  comparison.
* :func:`fit_look` sets what it can read directly (size, colours, frame) and
  searches the rest (font, font size, stroke, anti-aliasing, blur, rotation,
  vertical jitter, spacing, dots, curves, lines and their width) one setting
  at a time, drawing seeded look-alikes of the real labels and keeping the
  value whose statistics are closest to the real ones. The distance is the mean
  standardised difference of the statistics (0: as close as the images are to
  their own average).
* :func:`preview_sheet` puts real images and look-alikes side by side.

Example::

    >>> from solver.synthfit import fit_look, load_sample
    >>> images, labels = load_sample("../shared/datasets/kaggle_v2", 96)  # doctest: +SKIP
    >>> result = fit_look(images, labels, profile.synthetic)              # doctest: +SKIP
    >>> result.settings.width, round(result.score_after, 2)               # doctest: +SKIP
    (200, 0.5)
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from solver.drawing import CaptchaDrawer, random_text
from solver.errors import SolverError, UsageError
from solver.fonts import FEW_FONTS, SYSTEM_FONT_DIRS, FontFace, font_catalogue
from solver.fonts import PACKAGE_FONT as PACKAGE_FONT  # where callers have always found it
from solver.profiles import SyntheticSection, load_profile_text

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
        return np.asarray([_mean(column) for column in self.table.T])


def _mean(values: np.ndarray) -> float:
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


# ---------------------------------------------------------------------------
# comparing


@dataclass(frozen=True)
class Reference:
    """What look-alikes are compared with: the real images' statistics and spreads."""

    probe: Probe
    means: np.ndarray
    scales: np.ndarray
    weights: np.ndarray

    @classmethod
    def of(cls, measured: Measurements, probe: Probe) -> Reference:
        floors = np.asarray(list(FEATURES.values()) + [0.02] * HISTOGRAM_BINS)
        spread = np.asarray([np.std(column[np.isfinite(column)]) if np.isfinite(column).any()
                             else 0.0 for column in measured.table.T])
        weights = np.asarray([1.0] * len(FEATURES) + [weight / bins for bins, weight
                                                        in HISTOGRAMS.values()
                                                        for _ in range(bins)])
        return cls(probe, measured.means(), np.maximum(np.nan_to_num(spread), floors), weights)

    def differences(self, measured: Measurements) -> np.ndarray:
        """Per statistic: how many real-image spreads the look-alikes' mean is away."""
        return np.nan_to_num(np.abs(measured.means() - self.means) / self.scales, nan=3.0)

    def distance(self, measured: Measurements) -> float:
        """One number: 0 when the look-alikes' statistics match the real ones on average."""
        return float(np.sum(self.differences(measured) * self.weights) / np.sum(self.weights))

    def worst(self, measured: Measurements, count: int = 3) -> list[tuple[str, float]]:
        """The statistics furthest apart, for a reader."""
        names = list(FEATURES) + [name for name, (bins, _) in HISTOGRAMS.items()
                                  for _ in range(bins)]
        merged: dict[str, list[float]] = {}
        for name, value in zip(names, self.differences(measured)):
            merged.setdefault(name, []).append(float(value))
        means = {name: sum(values) / len(values) for name, values in merged.items()}
        return sorted(means.items(), key=lambda item: -item[1])[:count]


# ---------------------------------------------------------------------------
# fitting


def available_fonts(extra: Sequence[str] = ()) -> list[str]:
    """Font candidates: the captcha package's own ('') and the upright faces of the usual
    system folders (see :mod:`solver.fonts`), plus ``extra``."""
    return [face.path for face in font_catalogue(extra, SYSTEM_FONT_DIRS)]


@dataclass
class FitResult:
    """What :func:`fit_look` chose and how close it came."""

    settings: SyntheticSection
    score_before: float
    score_after: float
    worst: list[tuple[str, float]]
    images: int
    seconds: float
    steps: list[str] = field(default_factory=list)


def _hex(colour: np.ndarray) -> str:
    r, g, b = (int(round(min(255.0, max(0.0, float(c))))) for c in colour)
    return f"#{r:02x}{g:02x}{b:02x}"


def _palette(colours: list[np.ndarray], most: int = 12) -> tuple[list[str], bool]:
    """Up to ``most`` text colours, and whether characters of one image differ in colour as
    much as across images.

    The colours are characters' own, taken in a seeded random order and skipping
    any within 28 of one kept (an average of colours, as k-means gives, would be
    greyer than any of them).
    """
    samples = [c for c in colours if len(c)]
    if not samples:
        return ["#202020"], False
    stacked = np.concatenate(samples)
    kept: list[np.ndarray] = []
    for index in np.random.default_rng(0).permutation(len(stacked)):
        colour = stacked[index]
        if all(np.abs(colour - other).max() > 28 for other in kept):
            kept.append(colour)
            if len(kept) == most:
                break
    within = [np.abs(c[:, None] - c[None]).max(axis=2).mean() * len(c) / max(len(c) - 1, 1)
              for c in samples if len(c) > 1]
    means = np.asarray([c.mean(axis=0) for c in samples])
    across = np.abs(means[:, None] - means[None]).max(axis=2).mean() if len(means) > 1 else 0.0
    per_character = len(kept) > 1 and bool(within) and float(np.mean(within)) > 0.6 * across
    return [_hex(c) for c in kept], per_character


#: a clutter colour this far (largest channel difference) from every text colour is its own
CLUTTER_APART = 40


def _clutter_palette(colours: list[np.ndarray], text: Sequence[str],
                     per_character: bool) -> str | tuple[str, ...]:
    """The clutter's own colours, or "text" when there is too little of it to tell, or when
    it takes each image's one text colour (several text colours, one per image, and clutter
    close to them): lines of other colours than the text keep theirs."""
    from solver.drawing import parse_colour

    if sum(len(c) for c in colours) < 5:
        return "text"
    palette, _ = _palette(colours, most=8)
    inks = [np.asarray(parse_colour(colour), np.float64) for colour in text]
    near_text = all(min(np.abs(np.asarray(parse_colour(colour)) - ink).max() for ink in inks)
                    <= CLUTTER_APART for colour in palette)
    if len(inks) > 1 and not per_character and near_text:
        return "text"
    return tuple(palette)


def read_look(measured: Measurements, probe: Probe, start: SyntheticSection) -> SyntheticSection:
    """Settings read straight off the measurements: size, colours, a frame, grey or not."""
    gradient = float(np.median(measured.column("gradient")))
    if abs(gradient) < 6:
        gradient = 0.0
    # the drawer darkens one edge by the gradient: the colour to give is the lighter edge's
    background = np.median(measured.background, axis=0) + abs(gradient) / 2
    jitter = np.percentile(np.abs(measured.background - np.median(measured.background, axis=0))
                           .max(axis=1), 80)
    frame = float(np.median(measured.column("frame")))
    palette, per_character = _palette(measured.text_colours)
    clutter = _clutter_palette(measured.clutter_colours, palette, per_character)
    chroma = np.median(np.concatenate([measured.column("background_chroma"),
                                       measured.column("text_chroma")]))
    changes: dict[str, Any] = {
        "width": probe.size[0], "height": probe.size[1],
        "background": _hex(background),
        "background_jitter": min(128, int(round(jitter))) if jitter >= 4 else 0,
        "background_gradient": int(round(gradient)),
        "border": _hex(np.median(measured.border, axis=0)) if frame > 40 else None,
        "text_colours": tuple(palette),
        "colour_per_character": bool(per_character),
        "clutter_colours": clutter,
        "grayscale": bool(chroma < 6),
    }
    return _with(start, **changes)


def _with(settings: SyntheticSection, **changes: Any) -> SyntheticSection:
    data = settings.model_dump()
    data.update(changes)
    return SyntheticSection.model_validate(data)


class _Evaluator:
    """Draws seeded look-alikes of the real labels and scores them against the reference."""

    def __init__(self, reference: Reference, texts: list[str], fonts_base: Path | None,
                 seed: int) -> None:
        self.reference, self.texts, self.base, self.seed = reference, texts, fonts_base, seed
        self.cache: dict[str, tuple[float, Measurements]] = {}
        self.calls = 0

    def measurements(self, settings: SyntheticSection) -> Measurements:
        return self._run(settings)[1]

    def score(self, settings: SyntheticSection) -> float:
        return self._run(settings)[0]

    def _run(self, settings: SyntheticSection) -> tuple[float, Measurements]:
        key = settings.model_dump_json()
        if key not in self.cache:
            self.calls += 1
            drawer = CaptchaDrawer.from_settings(settings, self.base, seed=self.seed)
            images = [np.asarray(drawer.image(text)) for text in self.texts]
            measured = measure(images, self.reference.probe, self.texts, colours=False)
            self.cache[key] = (self.reference.distance(measured), measured)
        return self.cache[key]


def _sizes_around(size: float) -> tuple[int, ...]:
    centre = max(6, int(round(size)))
    spread = max(1, int(round(centre * 0.08)))
    return tuple(sorted({max(4, centre - spread), centre, min(512, centre + spread)}))


def _fit_size(evaluator: _Evaluator, settings: SyntheticSection, target: float,
              rounds: int = 2) -> SyntheticSection:
    """Scale the font sizes until the look-alikes' text height matches ``target``."""
    for _ in range(rounds):
        height = _mean(evaluator.measurements(settings).column("text_height"))
        if not math.isfinite(height) or height <= 0:
            break
        middle = settings.font_sizes[len(settings.font_sizes) // 2]
        wanted = middle * target / height
        if abs(wanted - middle) < 0.5:
            break
        settings = _with(settings, font_sizes=_sizes_around(wanted))
    return settings


def _fit_levels(evaluator: _Evaluator, settings: SyntheticSection,
                measured: Measurements) -> SyntheticSection:
    """Shift the background's brightness and gradient by what drawing changed (smoothing,
    the text over it), so that the drawn ones measure as the real ones."""
    from solver.drawing import parse_colour

    drawn = evaluator.measurements(settings)

    def gap(name: str) -> float:
        value = _mean(measured.column(name)) - _mean(drawn.column(name))
        return value if math.isfinite(value) else 0.0

    changes: dict[str, Any] = {}
    if settings.background != "random-light":
        colour = np.asarray(parse_colour(settings.background), np.float64) + gap("background_lum")
        changes["background"] = _hex(colour)
        if settings.background_gradient:
            gradient = int(round(settings.background_gradient + gap("gradient")))
            changes["background_gradient"] = max(-255, min(255, gradient))
    return _with(settings, **changes)


def _best(evaluator: _Evaluator, settings: SyntheticSection, key: str,
          values: Sequence[Any], text_height: float | None = None,
          only: bool = False) -> SyntheticSection:
    """The settings with ``key`` set to whichever of ``values`` scores best (ties: the
    current value, then the first); with ``only``, the current value is not a candidate.

    With ``text_height``, each candidate's font sizes are first fitted to it: for
    settings that change the text's height (font, stroke, rotation), so that they
    are not judged by a height any font size would fix.
    """
    current = getattr(settings, key)
    candidates = [_with(settings, **{key: value}) for value in values if value != current]
    if text_height is not None:
        candidates += [_fit_size(evaluator, candidate, text_height, rounds=1)
                       for candidate in candidates]
    if not candidates:
        return settings
    best = min(candidates, key=evaluator.score)
    if only and current not in values:
        return best
    return _better(evaluator, settings, best)


def _line_widths(probe: Probe) -> tuple[int, ...]:
    """Clutter is measured as ink thinner than the text's strokes, so only lines that thin
    can be fitted (thicker ones would pass for text and stand in for it)."""
    return tuple(width for width in (1, 2, 3, 4) if width == 1 or width < probe.thin_below)


def _fit_clutter(evaluator: _Evaluator, settings: SyntheticSection) -> SyntheticSection:
    """Curves or lines, how many and how wide: the width first (with two of them), then the
    count, since one thin line scores worse than none when the real ones are thick."""
    bare = _with(settings, noise_curves=0, noise_lines=0)
    candidates = [bare]
    for kind in ("noise_curves", "noise_lines"):
        width = min((_with(bare, **{kind: 2, "line_width": width})
                     for width in _line_widths(evaluator.reference.probe)),
                    key=evaluator.score).line_width
        candidates += [_with(bare, **{kind: count, "line_width": width})
                       for count in (1, 2, 3, 4, 6, 8, 12)]
    return _better(evaluator, settings, min(candidates, key=evaluator.score))


#: how much closer a change must come to be taken: less is within the noise of drawing
#: a few look-alikes, and would let settings drift away from plain values for nothing
MARGIN = 0.01


def _better(evaluator: _Evaluator, current: SyntheticSection,
            challenger: SyntheticSection) -> SyntheticSection:
    """``challenger`` if it scores at least MARGIN better than ``current``, else ``current``."""
    return (challenger if evaluator.score(challenger) < evaluator.score(current) - MARGIN
            else current)


BLURS = (None, 0.0, 0.4, 0.7, 1.0, 1.5, 2.0)


def _best_edges(evaluator: _Evaluator, settings: SyntheticSection) -> SyntheticSection:
    """Anti-aliasing and blur together: hard edges blurred a little can match what neither
    alone does (a JPEG of hard-edged text, say)."""
    candidates = [_with(settings, antialias=smooth, blur=blur)
                  for smooth in (True, False) for blur in BLURS]
    return _better(evaluator, settings, min(candidates, key=evaluator.score))


#: settings searched one at a time, with the values tried
SEARCHES: tuple[tuple[str, tuple[Any, ...]], ...] = (
    ("baseline", (False, True)),
    ("stroke", (0, 1, 2, 3)),
    ("rotation", (0, 5, 10, 15, 20, 30)),
    ("vertical_jitter", (0, 2, 4, 6, 10)),
    ("gap_probability", (0.0, 0.25, 0.5, 0.75)),
    ("overlap", (0.0, 0.1, 0.25, 0.4)),
    ("spacing", (-0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8)),
    ("noise_curves", (0, 1, 2, 3, 4, 6)),
    ("noise_lines", (0, 1, 2, 3, 4, 6, 8, 12)),
    ("line_width", (1, 2, 3, 4)),
    ("noise_dots", (0, 5, 10, 20, 40, 80, 160)),
    ("blur", BLURS),
)


#: fonts whose look-alikes come nearest the site's type (weight, serifs, width) that go on to
#: the full comparison of every statistic; the later passes try the best four again
FONT_SHORTLIST = 6


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


def _type_distance(real: tuple[float, float, float], drawn: tuple[float, float, float]) -> float:
    """How unlike two sets' type is: weight and width as ratios, serifs as a difference."""
    terms = []
    for index, (a, b) in enumerate(zip(real, drawn)):
        if not (math.isfinite(a) and math.isfinite(b)) or (index != 1 and (a <= 0 or b <= 0)):
            terms.append(1.0)  # unseen counts as a middling miss, not as a match
            continue
        if index == 1:
            terms.append(((a - b) / 0.6) ** 2)
        else:
            terms.append((math.log(a / b) / (0.15 if index == 0 else 0.2)) ** 2)
    return math.sqrt(sum(terms))


def _choose_font(evaluator: _Evaluator, settings: SyntheticSection, measured: Measurements,
                 target_height: float, fonts: Sequence[str] | None,
                 say: Callable[[str], None]) -> tuple[SyntheticSection, list[tuple[str, ...]]]:
    """The font whose look-alikes come closest to the site's: every candidate drawn at the
    site's text height, the :data:`FONT_SHORTLIST` nearest in weight, serifs and width
    compared on every statistic. Returns the settings and the best four, for later passes.

    ``fonts``: the candidates (None: the font catalogue of :mod:`solver.fonts`).
    """
    faces: dict[str, FontFace] = {}
    if fonts is None:
        catalogue = font_catalogue()
        faces = {face.path: face for face in catalogue}
        paths = list(faces)
        if len(catalogue) < FEW_FONTS:
            message = (f"only {len(catalogue)} font{'' if len(catalogue) == 1 else 's'} found "
                       "(the catalogue of solver.fonts): the look-alikes may miss the site's "
                       "type (install more: `python -m solver.fonts --install` as root, or "
                       "`make setup`); the stroke setting makes up for weight where it can")
            logger.warning("%s", message)
            say(message)
    else:
        paths = list(dict.fromkeys(fonts))
    if not paths:
        return settings, [()]
    probe = evaluator.reference.probe
    real = type_properties(measured, probe, evaluator.texts)
    sized = {path: _fit_size(evaluator, _with(settings, fonts=(path,) if path else ()),
                             target_height, rounds=1) for path in paths}
    nearness = {path: _type_distance(real, type_properties(evaluator.measurements(sized[path]),
                                                           probe, evaluator.texts))
                for path in paths}
    shortlist = sorted(paths, key=lambda path: (nearness[path], path))[:FONT_SHORTLIST]
    ranked = sorted(shortlist, key=lambda path: evaluator.score(sized[path]))
    best = ranked[0]
    chosen = sized[best]
    drawn = type_properties(evaluator.measurements(chosen), probe, evaluator.texts)
    face = faces.get(best)
    say(f"type of the images: weight {real[0]:.2f}, serifs {real[1]:.1f}, width {real[2]:.2f}; "
        f"nearest fonts: {', '.join(Path(p).stem if p else 'captcha-package' for p in shortlist)}"
        f"; chosen {face.describe() if face else (Path(best).stem or 'captcha-package')}, "
        f"drawn weight {drawn[0]:.2f}, serifs {drawn[1]:.1f}, width {drawn[2]:.2f}")
    if math.isfinite(real[0]) and math.isfinite(drawn[0]) and drawn[0] < 0.75 * real[0]:
        say(f"no font as heavy as the site's text (weight {drawn[0]:.2f} against "
            f"{real[0]:.2f}); the stroke setting will thicken it")
    return chosen, [(path,) if path else () for path in ranked[:4]]


#: letters whose lower case has neither ascender nor descender: their case shows most in height
SHORT_LOWER_CASE = frozenset("acemnorsuvwxz")


def _letter_height(slice_heights: Sequence[np.ndarray], texts: Sequence[str]) -> float:
    """The mean height of the slices that hold letters short in lower case (see
    :data:`SHORT_LOWER_CASE`; any letter where the texts have too few of those). Digits
    and symbols are left out: their case does not change."""
    def heights(letters: Callable[[str], bool]) -> list[float]:
        # over the image's tallest slice: the font's size, whatever it is, cancels out
        return [float(height) / float(np.nanmax(row)) for row, text in zip(slice_heights, texts)
                if text and len(row) == len(text) and np.isfinite(row).any()
                for height, char in zip(row, text) if letters(char) and math.isfinite(height)]

    values = heights(lambda char: char.lower() in SHORT_LOWER_CASE)
    if len(values) < 8:
        values = heights(lambda char: char.upper() != char.lower())
    return float(np.mean(values)) if len(values) >= 8 else math.nan


#: the shares of upper-case letters drawn to read the real images' share off
CASE_SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)


def case_share(evaluator: _Evaluator, settings: SyntheticSection, measured: Measurements,
               labels: Sequence[str]) -> float | None:
    """The share of letters the real images show in upper case (to 0.05), for a site that
    ignores case: labels name a letter, not its case, so the case is read off the glyphs.

    Lower-case letters (but for the tall ones: b, d, f, h, k, l, t) are shorter than capitals.
    The mean height of the real images' letter slices, each over its image's tallest slice,
    is set on the curve of the same statistic of look-alikes drawn with the same settings
    and :data:`CASE_SHARES` of upper case: the share is where it falls. None when the two do not differ enough to
    tell (a font whose cases are alike in height) or too few letters were seen.
    """
    real = _letter_height(measured.slice_heights, labels)
    shares = np.asarray(CASE_SHARES)
    drawn = np.asarray([_letter_height(evaluator.measurements(
        _with(settings, upper_case_share=float(share))).slice_heights, evaluator.texts)
        for share in shares])
    if not (math.isfinite(real) and np.isfinite(drawn).all()) or drawn[-1] - drawn[0] < 0.05:
        return None
    # the statistic grows with the share, not in proportion: read it off the drawn curve
    curve = np.maximum.accumulate(drawn)
    share = float(np.interp(real, curve, shares))
    return round(share * 20) / 20


def fit_look(images: Sequence[np.ndarray], labels: Sequence[str], start: SyntheticSection,
             charset: str = "0123456789", length: tuple[int, int] = (4, 6),
             fonts: Sequence[str] | None = None, fonts_base: Path | None = None,
             evaluation_images: int = 16, seed: int = 0, passes: int = 2,
             progress: Callable[[str], None] | None = None,
             case_sensitive: bool = True) -> FitResult:
    """Settings that draw look-alikes of ``images`` (RGB arrays), starting from ``start``.

    ``labels`` are the images' texts; look-alikes are drawn with them (empty ones
    are replaced by random texts of ``charset`` and ``length``). ``fonts`` are
    the font candidates (default: :func:`available_fonts`; '' is the package's
    font); font paths in the result are relative to ``fonts_base`` when they lie
    under it, and relative ones in ``start`` resolve against it. ``passes``: rounds of
    the one-setting-at-a-time search (a second one settles what the first left).
    ``case_sensitive``: the format's; when false and ``charset`` has letters, the share
    of upper-case letters the images show is measured (see :func:`case_share`).
    """
    import time

    began = time.perf_counter()
    if not images:
        raise FitError("no images to fit (give a folder of the site's captchas)")
    say = progress or (lambda line: logger.info("%s", line))
    probe = probe_for(images)
    measured = measure(images, probe, labels)
    if not np.isfinite(measured.column("text_height")).any():
        raise FitError("no text found in the images (are they blank, or all one colour?)")
    reference = Reference.of(measured, probe)
    rng = random.Random(seed)
    usable = [label for label in labels if label]
    texts = [rng.choice(usable) if usable else random_text(rng, charset, *length)
             for _ in range(evaluation_images)]
    evaluator = _Evaluator(reference, texts, fonts_base, seed)
    steps: list[str] = []

    def step(what: str, settings: SyntheticSection) -> None:
        steps.append(f"{what}: {evaluator.score(settings):.2f}")
        say(steps[-1])

    before = evaluator.score(start)
    step("the profile's settings", start)
    target_height = _mean(measured.column("text_height"))
    # a site that ignores case but shows letters: their case shows only in letters that
    # keep their heights on a baseline (the package's stretch makes each a capital's height)
    mixed_case = not case_sensitive and any(ch.upper() != ch.lower() for ch in charset)
    # the search starts from a tamer look than the package's (most sites are), with the
    # colours, size and border read off the images
    settings = _with(read_look(measured, probe, start), stroke=0, blur=None, noise_dots=0,
                     noise_curves=0, noise_lines=0, rotation=10, vertical_jitter=2,
                     gap_probability=0.0, overlap=0.1, spacing=0.0,
                     baseline=True if mixed_case else start.baseline)
    settings = _fit_levels(evaluator, _fit_size(evaluator, settings, target_height), measured)
    step("size, colours and border read off the images", settings)
    # clutter and edges change how the text measures: a first guess of both before the font
    settings = _best(evaluator, _fit_clutter(evaluator, settings), "noise_dots",
                     dict(SEARCHES)["noise_dots"])
    settings = _best_edges(evaluator, settings)
    step(f"first guess of clutter ({settings.noise_curves} curves, {settings.noise_lines} lines, "
         f"{settings.noise_dots} dots) and edges", settings)

    settings, candidates = _choose_font(evaluator, settings, measured, target_height, fonts,
                                        say)
    step(f"font {Path(settings.fonts[0]).name if settings.fonts else 'of the captcha package'}",
         settings)
    case_evaluator = _Evaluator(reference, [rng.choice(usable) if usable else
                                            random_text(rng, charset, *length)
                                            for _ in range(max(96, evaluation_images))],
                                fonts_base, seed + 1)

    def fit_case(settings: SyntheticSection, when: str) -> SyntheticSection:
        """The share of upper-case letters, for a site that ignores case (see case_share)."""
        share = case_share(case_evaluator, settings, measured, labels)
        if share is None:
            return settings
        settings = _fit_size(evaluator, _with(settings, upper_case_share=share), target_height)
        step(f"letters drawn in upper case {share:.0%} of the time ({when})", settings)
        return settings

    if mixed_case:
        settings = fit_case(settings, "a first guess")
    for round_number in range(passes):
        if round_number:
            settings = _best(evaluator, settings, "fonts", candidates, target_height, only=True)
        settings = _fit_clutter(evaluator, _best_edges(evaluator, settings))
        if round_number == 0:
            step(f"edges, and {settings.noise_curves} curves, {settings.noise_lines} lines "
                 f"{settings.line_width} px wide", settings)
        for key, values in SEARCHES:
            if key == "baseline" and mixed_case:
                continue
            sized = key in ("baseline", "stroke", "rotation", "vertical_jitter")
            if key == "line_width":
                values = _line_widths(probe)
            settings = _best(evaluator, settings, key, values, target_height if sized else None)
            if round_number == 0 and key not in ("noise_curves", "noise_lines", "line_width"):
                step(f"{key} {getattr(settings, key)}", settings)
    if mixed_case:  # again, with the clutter and the characters' turns settled
        settings = fit_case(settings, "with the rest settled")
    adjusted = _fit_levels(evaluator, _fit_size(evaluator, settings, target_height), measured)
    settings = min((settings, adjusted), key=evaluator.score)
    settings = _relative_fonts(settings, fonts_base)
    after = evaluator.score(settings)
    step(f"after {passes} passes ({evaluator.calls} sets of look-alikes drawn)", settings)
    return FitResult(settings, before, after, reference.worst(evaluator.measurements(settings)),
                     len(images), time.perf_counter() - began, steps)


def _relative_fonts(settings: SyntheticSection, base: Path | None) -> SyntheticSection:
    if base is None:
        return settings
    fonts = []
    for font in settings.fonts:
        try:
            fonts.append(str(Path(font).resolve().relative_to(base.resolve())))
        except ValueError:
            fonts.append(font)
    return _with(settings, fonts=tuple(fonts))


# ---------------------------------------------------------------------------
# preview

SHEET_MARGIN = 8
SHEET_HEADER = 22
SHEET_CAPTION = 16


def sheet_scale(heights: Sequence[int]) -> int:
    """The magnification that makes the tallest image at least 80 pixels high (1 to 8)."""
    return max(1, min(8, math.ceil(80 / max(max(heights), 1))))


def _shortened(text: str, font: Any, width: int) -> str:
    """``text``, or its end after '...', whichever fits in ``width`` pixels."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength("..." + text) > width:
        text = text[1:]
    return "..." + text


def preview_sheet(lookalikes: Sequence[tuple[np.ndarray, str]],
                  real: Sequence[tuple[np.ndarray, str]] = (),
                  titles: tuple[str, str] = ("real", "look-alike")) -> np.ndarray:
    """An RGB sheet: ``real`` images in the left column (when given), ``lookalikes`` in the
    right one, row by row, all at one magnification, each captioned with its label."""
    from PIL import Image, ImageDraw, ImageFont
    from captcha.image import DEFAULT_FONTS

    columns = [list(real), list(lookalikes)] if real else [list(lookalikes)]
    every = [image for column in columns for image, _ in column]
    if not every:
        raise UsageError("nothing to show (give -n 1 or more)")
    scale = sheet_scale([image.shape[0] for image in every])
    cell_w = max(image.shape[1] for image in every) * scale
    cell_h = max(image.shape[0] for image in every) * scale
    rows = max(len(column) for column in columns)
    width = SHEET_MARGIN + len(columns) * (cell_w + SHEET_MARGIN)
    height = SHEET_HEADER + rows * (cell_h + SHEET_CAPTION + SHEET_MARGIN) + SHEET_MARGIN
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.truetype(DEFAULT_FONTS[0], 12)
    names = list(titles) if real else [titles[1]]
    for index, (column, name) in enumerate(zip(columns, names)):
        left = SHEET_MARGIN + index * (cell_w + SHEET_MARGIN)
        draw.text((left, 4), _shortened(name, font, cell_w), fill=(0, 0, 0), font=font)
        for row, (image, label) in enumerate(column):
            top = SHEET_HEADER + row * (cell_h + SHEET_CAPTION + SHEET_MARGIN)
            big = cv2.resize(image, (image.shape[1] * scale, image.shape[0] * scale),
                             interpolation=cv2.INTER_NEAREST)
            sheet.paste(Image.fromarray(big), (left, top))
            caption = f"{label}  {image.shape[1]}x{image.shape[0]}"
            draw.text((left, top + big.shape[0] + 2), caption, fill=(60, 60, 60), font=font)
    return np.asarray(sheet)


# ---------------------------------------------------------------------------
# writing the settings into a profile

_TOP_LEVEL_KEY = re.compile(r"^[A-Za-z_][\w-]*\s*:")


def synthetic_data(settings: SyntheticSection, keep: Sequence[str] = ()) -> dict[str, Any]:
    """The settings as YAML data: those that differ from their default, and ``keep``."""
    defaults = SyntheticSection().model_dump(mode="json")
    return {key: value for key, value in settings.model_dump(mode="json").items()
            if key in keep or value != defaults[key]}


def synthetic_block(data: dict[str, Any], comments: dict[str, str] | None = None,
                    header: str = "") -> list[str]:
    """``synthetic:`` and one ``  key: value`` line per setting, values in flow style."""
    comments = comments or {}
    lines = ["synthetic:" + (f"  {header}" if header else "")]
    for key, value in data.items():
        comment = comments.get(key)
        lines.append(f"  {key}: {json.dumps(value)}" + (f"  {comment}" if comment else ""))
    return lines


def _split_comment(line: str) -> tuple[str, str]:
    """``'  width: 160  # pixels'`` -> (``'  width: 160'``, ``'# pixels'``), quotes respected."""
    quote = ""
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1] in " \t"):
            return line[:index].rstrip(), line[index:]
    return line.rstrip(), ""


def update_profile_text(text: str, settings: SyntheticSection,
                        path: str | os.PathLike[str] | None = None) -> tuple[str, list[str]]:
    """``text`` (a profile's YAML) with its ``synthetic`` section replaced by ``settings``,
    and one line per changed setting. Everything outside that section stays as it was,
    comments included; comments on the section's own lines are kept where their key is.
    """
    before = load_profile_text(text, path)
    raw = yaml.safe_load(text) or {}
    old_keys = list((raw.get("synthetic") or {}).keys()) if isinstance(raw, dict) else []
    data = synthetic_data(settings, keep=old_keys)
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(r"^synthetic\s*:", line)), None)
    comments: dict[str, str] = {}
    standalone: list[str] = []
    header = ""
    if start is None:
        while lines and not lines[-1].strip():
            lines.pop()
        head, tail = lines, []
    else:
        end = start + 1
        while end < len(lines) and not _TOP_LEVEL_KEY.match(lines[end]) and not (
                lines[end].startswith("#")):
            end += 1
        while end > start + 1 and not lines[end - 1].strip():  # blank lines stay outside
            end -= 1
        code, header = _split_comment(lines[start])
        if not code.endswith(":"):  # flow style, synthetic: {width: 70}: its comment goes
            header = ""
        for line in lines[start + 1:end]:
            code, comment = _split_comment(line)
            key = re.match(r"^\s+([\w-]+)\s*:", code)
            if key and comment:
                comments[key.group(1)] = comment
            elif not code.strip() and comment:
                standalone.append("  " + comment)
        head, tail = lines[:start], lines[end:]
    block = synthetic_block(data, comments, header)
    new_text = "\n".join(head + block[:1] + standalone + block[1:] + tail) + "\n"
    after = load_profile_text(new_text, path)
    outside = {key: value for key, value in before.to_dict().items() if key != "synthetic"}
    if {key: value for key, value in after.to_dict().items() if key != "synthetic"} != outside \
            or after.synthetic != settings:
        raise FitError(f"{path or 'the profile'}: rewriting its synthetic section would change "
                       "more than that section (edit the file by hand; the settings are printed "
                       "above)")
    changes = []
    old, new = before.synthetic.model_dump(mode="json"), settings.model_dump(mode="json")
    for key in new:
        if old[key] != new[key]:
            changes.append(f"{key}: {json.dumps(old[key])} -> {json.dumps(new[key])}")
    return new_text, changes


def update_profile_file(path: str | os.PathLike[str], settings: SyntheticSection) -> list[str]:
    """Write ``settings`` into the profile file's ``synthetic`` section (see
    :func:`update_profile_text`) by an atomic replace; returns the changed settings."""
    import tempfile

    path = Path(path)
    text, changes = update_profile_text(path.read_text(encoding="utf-8"), settings, path)
    if not changes:
        return changes
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, path.stat().st_mode & 0o777)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return changes
