"""Fit look-alike settings to a site's own captchas.

:func:`fit_look` sets what it can read directly (size, colours, frame: see
:func:`read_look`) and searches the rest (font, font size, stroke,
anti-aliasing, blur, rotation, vertical jitter, spacing, dots, curves, lines
and their width) one setting at a time, drawing seeded look-alikes of the
real labels and keeping the value whose statistics are closest to the real
ones (the distance of :mod:`solver.synth.score`).
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from solver.drawing import parse_colour, random_text
from solver.fonts import FEW_FONTS, SYSTEM_FONT_DIRS, FontFace, font_catalogue
from solver.profiles import SyntheticSection
from solver.synth.measure import (FitError, Measurements, Probe, finite_mean, measure, probe_for,
                                  type_properties)
from solver.synth.score import Evaluator, Reference

logger = logging.getLogger(__name__)


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



def _sizes_around(size: float) -> tuple[int, ...]:
    centre = max(6, int(round(size)))
    spread = max(1, int(round(centre * 0.08)))
    return tuple(sorted({max(4, centre - spread), centre, min(512, centre + spread)}))


def _fit_size(evaluator: Evaluator, settings: SyntheticSection, target: float,
              rounds: int = 2) -> SyntheticSection:
    """Scale the font sizes until the look-alikes' text height matches ``target``."""
    for _ in range(rounds):
        height = finite_mean(evaluator.measurements(settings).column("text_height"))
        if not math.isfinite(height) or height <= 0:
            break
        middle = settings.font_sizes[len(settings.font_sizes) // 2]
        wanted = middle * target / height
        if abs(wanted - middle) < 0.5:
            break
        settings = _with(settings, font_sizes=_sizes_around(wanted))
    return settings


def _fit_levels(evaluator: Evaluator, settings: SyntheticSection,
                measured: Measurements) -> SyntheticSection:
    """Shift the background's brightness and gradient by what drawing changed (smoothing,
    the text over it), so that the drawn ones measure as the real ones."""
    drawn = evaluator.measurements(settings)

    def gap(name: str) -> float:
        value = finite_mean(measured.column(name)) - finite_mean(drawn.column(name))
        return value if math.isfinite(value) else 0.0

    changes: dict[str, Any] = {}
    if settings.background != "random-light":
        colour = np.asarray(parse_colour(settings.background), np.float64) + gap("background_lum")
        changes["background"] = _hex(colour)
        if settings.background_gradient:
            gradient = int(round(settings.background_gradient + gap("gradient")))
            changes["background_gradient"] = max(-255, min(255, gradient))
    return _with(settings, **changes)


def _best(evaluator: Evaluator, settings: SyntheticSection, key: str,
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


def _fit_clutter(evaluator: Evaluator, settings: SyntheticSection) -> SyntheticSection:
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


def _better(evaluator: Evaluator, current: SyntheticSection,
            challenger: SyntheticSection) -> SyntheticSection:
    """``challenger`` if it scores at least MARGIN better than ``current``, else ``current``."""
    return (challenger if evaluator.score(challenger) < evaluator.score(current) - MARGIN
            else current)


BLURS = (None, 0.0, 0.4, 0.7, 1.0, 1.5, 2.0)


def _best_edges(evaluator: Evaluator, settings: SyntheticSection) -> SyntheticSection:
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


def _choose_font(evaluator: Evaluator, settings: SyntheticSection, measured: Measurements,
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


def case_share(evaluator: Evaluator, settings: SyntheticSection, measured: Measurements,
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
    evaluator = Evaluator(reference, texts, fonts_base, seed)
    steps: list[str] = []

    def step(what: str, settings: SyntheticSection) -> None:
        steps.append(f"{what}: {evaluator.score(settings):.2f}")
        say(steps[-1])

    before = evaluator.score(start)
    step("the profile's settings", start)
    target_height = finite_mean(measured.column("text_height"))
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
    case_evaluator = Evaluator(reference, [rng.choice(usable) if usable else
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
        # the font again, among the nearest few, now that the rest is settled: it was chosen
        # with a first guess of the clutter and turns, which favour some faces over others
        font = settings.fonts
        settings = _best(evaluator, settings, "fonts", candidates, target_height, only=True)
        if settings.fonts != font:
            step(f"font {Path(settings.fonts[0]).name if settings.fonts else 'of the captcha package'}"
                 " with the rest settled", settings)
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

