"""Several looks in one profile (synthetic.variants) and reproducible look-alikes."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pytest

from solver.drawing import CaptchaDrawer, MixedDrawer
from solver.errors import ProfileError
from solver.profiles import SyntheticSection, load_profile, profile_from_data

ROOT = Path(__file__).resolve().parents[2]


def _profile(synthetic: dict) -> object:
    return profile_from_data({
        "name": "shop", "url": "http://127.0.0.1/", "captcha": {"selector": "img"},
        "form": {"input": "input", "submit": "button"},
        "format": {"charset": "0123456789", "length": 4}, "synthetic": synthetic})


def test_variants_change_only_what_they_name() -> None:
    section = SyntheticSection.model_validate({
        "width": 150, "noise_dots": 7,
        "variants": [{"grayscale": True}, {"width": 90, "height": 30, "font_sizes": [20]}]})
    first, second = section.looks()
    assert (first.width, first.noise_dots, first.grayscale) == (150, 7, True)
    assert (second.width, second.height, second.font_sizes, second.noise_dots) == (90, 30, (20,), 7)
    assert not first.variants and not second.variants
    assert SyntheticSection().looks() == [SyntheticSection()]


@pytest.mark.parametrize(("variants", "message"), [
    ([{"grayscal": True}], "synthetic.variants: entry 0: unknown key 'grayscal' (did you mean 'grayscale'?)"),
    ([{"noise_dots": 1}, {"font_sizes": [1]}], "variants entry 1: font_sizes.0"),
    ([{"background_jitter": 5}], "variants entry 0"),
    ([{"variants": []}], "entry 0: unknown key 'variants'"),
    ([3], "entry 0 is the number 3 (give each variant as a mapping of settings"),
    ("grey", "expected a list, got"),
])
def test_bad_variants_are_refused_with_the_fix(variants: object, message: str) -> None:
    with pytest.raises(ProfileError) as caught:
        _profile({"variants": variants})
    assert message in str(caught.value)


def test_mixed_drawer_draws_every_look_and_repeats_with_a_seed() -> None:
    section = SyntheticSection.model_validate({
        "variants": [{"width": 100, "height": 40}, {"width": 160, "height": 60}, {"width": 70, "height": 30}]})
    drawer = CaptchaDrawer.from_settings(section, seed=5)
    assert isinstance(drawer, MixedDrawer)
    sizes = [drawer.image("1234").size for _ in range(60)]
    assert set(sizes) == {(100, 40), (160, 60), (70, 30)}
    assert max(sizes.count(size) for size in set(sizes)) < 35  # picked evenly, not stuck on one
    again = CaptchaDrawer.from_settings(section, seed=5)
    assert [again.image("1234").size for _ in range(60)] == sizes
    copy = pickle.loads(pickle.dumps(CaptchaDrawer.from_settings(section, seed=5)))  # to a worker
    assert copy.png("5678") == CaptchaDrawer.from_settings(section, seed=5).png("5678")


def test_seeded_drawer_repeats_pixels_and_unseeded_does_not() -> None:
    one, two = CaptchaDrawer(seed=3), CaptchaDrawer(seed=3)
    assert [one.png(t) for t in ("AB12", "CD34")] == [two.png(t) for t in ("AB12", "CD34")]
    assert CaptchaDrawer(seed=4).png("AB12") != CaptchaDrawer(seed=3).png("AB12")
    assert CaptchaDrawer().png("AB12") != CaptchaDrawer().png("AB12")
    assert one.with_seed(9).png("AB12") == CaptchaDrawer(seed=9).png("AB12")


def test_lookalikes_follow_the_seed_whatever_the_workers() -> None:
    from solver.training.synth import draw_lookalikes

    profile = _profile({"width": 80, "height": 30, "font_sizes": [24],
                        "variants": [{"noise_dots": 0}, {"grayscale": True, "noise_curves": 0}]})
    alone = draw_lookalikes(profile, 300, 32, 88, seed=7, workers=1)
    pooled = draw_lookalikes(profile, 300, 32, 88, seed=7, workers=2)
    assert alone.images.shape == (300, 32, 88)
    assert alone.labels == pooled.labels
    assert np.array_equal(alone.images, pooled.images)
    other = draw_lookalikes(profile, 300, 32, 88, seed=8, workers=1)
    assert not np.array_equal(alone.images, other.images)


def test_profiles_without_variants_keep_their_fingerprint() -> None:
    """Models trained before variants existed still fit their profiles."""
    profile = load_profile(ROOT / "solver" / "shipped" / "profiles" / "example.yaml")
    assert "variants" not in profile.synthetic.fingerprint_data()
    with_variants = _profile({"variants": [{"grayscale": True}]})
    assert with_variants.synthetic.fingerprint_data()["variants"] == [{"grayscale": True}]


def test_the_general_profile_draws_all_its_looks() -> None:
    profile = load_profile(ROOT / "solver" / "training" / "profiles" / "general.yaml")
    looks = profile.synthetic.looks()
    assert len(looks) >= 6
    fonts = {font for look in looks for font in look.fonts}
    missing = [font for font in fonts if not Path(font).is_file()]
    if missing:
        pytest.skip(f"fonts of the general profile are not installed here: {missing[:2]}")
    drawer = CaptchaDrawer.from_settings(profile.synthetic, seed=1)
    # every look draws at its own size, and the mixed drawer picks among many of them
    assert [one.image("aB3x").size for one in drawer.drawers] == \
        [(look.width, look.height) for look in looks]
    sizes = {drawer.image("aB3x").size for _ in range(80)}
    assert sizes <= {(look.width, look.height) for look in looks}
    assert len(sizes) >= min(20, len({(look.width, look.height) for look in looks}))


def _look_statistics(images: list[bytes]) -> np.ndarray:
    """Mean gray, share of inked pixels, mean horizontal edge strength."""
    import io

    from PIL import Image

    gray = np.stack([np.asarray(Image.open(io.BytesIO(data)).convert("L"), np.float32)
                     for data in images])
    return np.array([gray.mean(), (gray < 200).mean(), np.abs(np.diff(gray, axis=2)).mean()])


def test_the_package_default_profile_draws_like_the_captcha_package() -> None:
    """The 4-character benchmark trains on look-alikes and tests on the package's own
    images: the imitation must match it (50 dots instead of 30 is caught)."""
    import random

    from captcha.image import ImageCaptcha

    from solver.drawing import random_text

    profile = load_profile(ROOT / "benchmarks" / "profiles" / "captcha_default.yaml")
    rng = random.Random(0)
    texts = [random_text(rng, profile.format.charset, 4, 4) for _ in range(400)]
    ours = CaptchaDrawer.from_settings(profile.synthetic, seed=3)
    package = ImageCaptcha(width=profile.synthetic.width, height=profile.synthetic.height,
                           font_sizes=tuple(profile.synthetic.font_sizes))
    expected = _look_statistics([package.generate(text).getvalue() for text in texts])
    drawn = _look_statistics([ours.png(text) for text in texts])
    np.testing.assert_allclose(drawn, expected, rtol=0.04)
    more_dots = dataclasses.replace(ours, noise_dots=50, seed=4)
    cluttered = _look_statistics([more_dots.png(text) for text in texts])
    assert abs(cluttered[2] / expected[2] - 1) > 0.08


def test_drawer_tells_where_each_character_is() -> None:
    drawer = CaptchaDrawer(noise_dots=0, noise_curves=0, text_colours=("#000000",), seed=5)
    for text in ("W1", "AB12", "0O0O0O"):
        image, centres = drawer.image_and_centres(text)
        assert len(centres) == len(text)
        assert all(0 < x < image.width for x in centres) and centres == sorted(centres)
        ink = 255 - np.asarray(image.convert("L"), np.float32)
        for x in centres:  # a character's cell holds ink, even a hollow 0 or O
            assert ink[:, int(x) - 8:int(x) + 9].max() > 150
    same = CaptchaDrawer(noise_dots=0, noise_curves=0, text_colours=("#000000",), seed=5)
    assert same.image_and_centres("AB12")[0].tobytes() == same.with_seed(5).image("AB12").tobytes()


def test_character_centres_match_the_ink_of_separate_glyphs() -> None:
    drawer = CaptchaDrawer(width=200, noise_dots=0, noise_curves=0, text_colours=("#000000",),
                           overlap=0.0, spacing=0.5, gap_probability=0.0, rotation=0, seed=2)
    image, centres = drawer.image_and_centres("W1HX")
    inked = (255 - np.asarray(image.convert("L"), np.float32)).max(axis=0) > 60
    edges = np.flatnonzero(np.diff(np.concatenate([[0], inked.astype(int), [0]])))
    runs = [(start + end - 1) / 2 for start, end in zip(edges[::2], edges[1::2])]
    assert len(runs) == 4, f"ink runs at {runs}"
    np.testing.assert_allclose(centres, runs, atol=5)
