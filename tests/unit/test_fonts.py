"""The font catalogue: faces measured by weight, serifs and width, chosen by those, and a fit
that keeps to the site's type (and works, with a warning, where few fonts are installed)."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solver import fonts, synth
from solver.drawing import CaptchaDrawer, random_text
from solver.fonts import FontFace, choose_fonts, font_distance, measure_font
from solver.profiles import SyntheticSection

DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
needs_dejavu = pytest.mark.skipif(not (DEJAVU / "DejaVuSerif-Bold.ttf").is_file(),
                                  reason=f"DejaVu fonts not in {DEJAVU} (apt-get install "
                                  "fonts-dejavu-core)")


def test_the_packages_own_font_is_always_in_the_catalogue(tmp_path: Path) -> None:
    catalogue = fonts.font_catalogue(folders=[str(tmp_path)])
    assert [face.path for face in catalogue] == [""]
    assert catalogue[0].name == "captcha-package" and catalogue[0].weight > 0


def test_a_file_that_is_no_font_is_left_out(tmp_path: Path) -> None:
    (tmp_path / "broken.ttf").write_bytes(b"not a font")
    (tmp_path / "Serif-Italic.ttf").write_bytes(b"slanted: skipped by name")
    assert fonts.font_files([str(tmp_path)]) == [str(tmp_path / "broken.ttf")]
    assert measure_font(str(tmp_path / "broken.ttf")) is None
    assert [face.path for face in fonts.font_catalogue(folders=[str(tmp_path)])] == [""]


@needs_dejavu
def test_faces_are_measured_by_weight_serifs_and_width() -> None:
    sans, bold = measure_font(str(DEJAVU / "DejaVuSans.ttf")), measure_font(
        str(DEJAVU / "DejaVuSans-Bold.ttf"))
    serif, serif_bold = measure_font(str(DEJAVU / "DejaVuSerif.ttf")), measure_font(
        str(DEJAVU / "DejaVuSerif-Bold.ttf"))
    condensed = measure_font(str(DEJAVU / "DejaVuSansCondensed.ttf"))
    assert None not in (sans, bold, serif, serif_bold, condensed)
    assert bold.weight > 1.4 * sans.weight and serif_bold.weight > 1.4 * serif.weight
    assert sans.serif < 0.3 < 0.8 < serif.serif and serif_bold.serif > 0.5
    assert condensed.width < 0.95 * sans.width
    assert "serif" in serif_bold.describe() and "sans" in bold.describe()


faces_strategy = st.lists(st.builds(FontFace, st.text("abc", min_size=1, max_size=4),
                                    st.floats(0.04, 0.3), st.floats(0.0, 3.0),
                                    st.floats(0.4, 1.2)),
                          min_size=1, max_size=12, unique_by=lambda face: face.path)


@settings(max_examples=60, deadline=None)
@given(faces_strategy, st.floats(0.04, 0.3), st.one_of(st.none(), st.floats(0.0, 3.0)),
       st.one_of(st.none(), st.floats(0.4, 1.2)), st.integers(0, 5))
def test_choose_fonts_gives_the_nearest_first(catalogue: list[FontFace], weight: float,
                                              serif: float | None, width: float | None,
                                              count: int) -> None:
    chosen = choose_fonts(catalogue, weight, serif, width, count)
    assert len(chosen) == min(count, len(catalogue))
    distances = [font_distance(face, weight, serif, width) for face in chosen]
    assert distances == sorted(distances)
    left = [face for face in catalogue if face not in chosen]
    if chosen and left:
        assert max(distances) <= min(font_distance(face, weight, serif, width) for face in left)


def test_a_heavy_slab_is_chosen_for_heavy_slab_text() -> None:
    catalogue = [FontFace("hairline-sans.ttf", 0.07, 0.0, 0.8),
                 FontFace("sans.ttf", 0.11, 0.0, 0.85), FontFace("serif.ttf", 0.10, 1.8, 0.87),
                 FontFace("bold-sans.ttf", 0.18, 0.0, 0.9),
                 FontFace("slab-bold.ttf", 0.19, 2.2, 0.95)]
    assert choose_fonts(catalogue, weight=0.2, serif=2.0, count=1)[0].path == "slab-bold.ttf"
    assert choose_fonts(catalogue, weight=0.11, serif=0.0, count=1)[0].path == "sans.ttf"


def _drawn(font: Path, count: int) -> tuple[list[np.ndarray], list[str]]:
    drawer = CaptchaDrawer(width=150, height=50, fonts=(str(font),), font_sizes=(38,),
                           noise_dots=0, noise_curves=0, rotation=5, vertical_jitter=2,
                           gap_probability=0.0, overlap=0.0, blur=0.0, baseline=True,
                           text_colours=("#202020",), background="#f4f4f4", seed=4)
    rng = random.Random(4)
    labels = [random_text(rng, "0123456789", 4, 4) for _ in range(count)]
    return [np.asarray(drawer.image(label)) for label in labels], labels


@needs_dejavu
def test_the_fit_keeps_large_bold_serif_text_bold() -> None:
    """The font is chosen with a first guess of the rest (it took a regular sans here, with
    curves the images do not have), and again, among the nearest few, once the rest is
    settled: then the bold serif wins."""
    images, labels = _drawn(DEJAVU / "DejaVuSerif-Bold.ttf", 16)
    candidates = [str(DEJAVU / name) for name in ("DejaVuSans-ExtraLight.ttf", "DejaVuSans.ttf",
                                                  "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf",
                                                  "DejaVuSansCondensed.ttf")]
    result = synth.fit_look(images, labels, SyntheticSection(), "0123456789", (4, 4),
                            fonts=candidates, evaluation_images=6, passes=1)
    chosen = Path(result.settings.fonts[0]).name
    assert chosen == "DejaVuSerif-Bold.ttf" or result.settings.stroke >= 1, chosen


def test_the_fit_works_with_only_the_packages_font(monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(synth.fit, "font_catalogue",
                        lambda: [face for face in fonts.font_catalogue(folders=[]) if not face.path])
    drawer = CaptchaDrawer(width=100, height=36, font_sizes=(26,), noise_dots=0, seed=2)
    labels = ["1234", "5678", "9012", "3456", "7890", "2468"]
    images = [np.asarray(drawer.image(label)) for label in labels]
    with caplog.at_level(logging.WARNING, logger="solver.synth.fit"):
        result = synth.fit_look(images, labels, SyntheticSection(), "0123456789", (4, 4),
                                evaluation_images=4, passes=1)
    assert result.settings.fonts == ()
    assert "only 1 font found" in caplog.text
    assert "python -m solver.fonts --install" in caplog.text
