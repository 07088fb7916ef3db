"""Look-alikes fitted to a site's own captchas: the look settings, drawing with them, the fit,
the preview sheet, the profile rewrite and the `solver synth` verbs."""

from __future__ import annotations

import pickle
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from solver import synth
from solver.cli import main
from solver.drawing import LOOK_SETTINGS, CaptchaDrawer, random_text
from solver.errors import ProfileError, UsageError
from solver.profiles import SyntheticSection, load_profile, profile_from_data

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ROOT / "solver" / "shipped" / "profiles"
KAGGLE = ROOT.parent / "shared" / "datasets" / "kaggle_v2"
BASE = {
    "name": "shop",
    "url": "https://shop.example/login",
    "captcha": {"selector": "img#captcha"},
    "form": {"input": "#code", "submit": "#go"},
    "format": {"charset": "0123456789", "length": [4, 6]},
}


def with_synthetic(**settings: object) -> dict:
    return {**BASE, "synthetic": settings}


def problems(**settings: object) -> list[str]:
    with pytest.raises(ProfileError) as caught:
        profile_from_data(with_synthetic(**settings), "p/shop.yaml")
    return caught.value.problems


# ---------------------------------------------------------------------------
# settings


def test_new_settings_default_to_the_packages_look() -> None:
    settings = SyntheticSection()
    assert (settings.background, settings.background_jitter, settings.background_gradient,
            settings.border) == ("random-light", 0, 0, None)
    assert (settings.text_colours, settings.colour_per_character) == ("random", False)
    assert (settings.stroke, settings.antialias, settings.rotation, settings.vertical_jitter) == (
        0, True, 30, 6)
    assert (settings.overlap, settings.gap_probability, settings.spacing) == (0.25, 0.5, 0.0)
    assert (settings.noise_lines, settings.line_width, settings.blur, settings.grayscale) == (
        0, 1, None, False)


def test_look_settings_at_their_default_keep_a_models_fingerprint() -> None:
    plain = profile_from_data(BASE, "p/shop.yaml")
    spelled_out = profile_from_data(with_synthetic(rotation=30, blur=None, text_colours="random"),
                                    "p/shop.yaml")
    changed = profile_from_data(with_synthetic(rotation=5), "p/shop.yaml")
    assert spelled_out.fingerprint() == plain.fingerprint()
    assert changed.fingerprint() != plain.fingerprint()


@pytest.mark.parametrize(("settings", "expected"), [
    ({"background": "#F0E0D0", "background_jitter": 12}, {"background": "#f0e0d0"}),
    ({"text_colours": ["#202020", "#1F3F8F"]}, {"text_colours": ("#202020", "#1f3f8f")}),
    ({"text_colours": "random-dark", "colour_per_character": True},
     {"text_colours": "random-dark"}),
    ({"border": "#000000", "background_gradient": -40}, {"border": "#000000"}),
    ({"blur": 0}, {"blur": 0.0}),
    ({"blur": 1.5, "spacing": -0.2, "overlap": 0}, {"blur": 1.5, "spacing": -0.2}),
    ({"stroke": 2, "antialias": False, "rotation": 0, "vertical_jitter": 0}, {"stroke": 2}),
    ({"noise_lines": 3, "line_width": 2, "grayscale": True}, {"line_width": 2}),
])
def test_good_look_settings(settings: dict, expected: dict) -> None:
    synthetic = profile_from_data(with_synthetic(**settings), "p/shop.yaml").synthetic
    assert {key: getattr(synthetic, key) for key in expected} == expected


@pytest.mark.parametrize(("settings", "expected"), [
    ({"background": None},
     'synthetic.background: expected a colour, got null (quote the colour, e.g. "#f0f0f0": an '
     "unquoted # starts a YAML comment)"),
    ({"background": "white"},
     "synthetic.background: 'white' is not a colour (write a quoted \"#rrggbb\" such as "
     '"#f0f0f0", or random-light)'),
    ({"background_jitter": 10},
     'synthetic: background_jitter 10 needs a "#rrggbb" background (set background, e.g. '
     '"#f0f0f0", or remove background_jitter)'),
    ({"border": "#fff"},
     "synthetic.border: '#fff' is not a colour (write a quoted \"#rrggbb\" such as \"#000000\", "
     "or null for no border)"),
    ({"text_colours": []},
     'synthetic.text_colours: is empty (list at least one colour, e.g. ["#202020", "#1f3f8f"], '
     "or random or random-dark)"),
    ({"text_colours": ["#202020", "navy"]},
     "synthetic.text_colours: 'navy' is not a colour (write a quoted \"#rrggbb\" such as "
     '"#202020", one per list item)'),
    ({"text_colours": "dark"},
     "synthetic.text_colours: 'dark' is not a colour (write a quoted \"#rrggbb\" such as "
     '"#202020", a list of them, or random or random-dark)'),
    ({"overlap": "0.3"},
     "synthetic.overlap: expected a number, got the string '0.3' (write a number without "
     "quotes, e.g. 0.5)"),
    ({"blur": True},
     "synthetic.blur: expected a number, got the boolean true (write a number without quotes, "
     "e.g. 0.5)"),
    ({"blur": 9}, "synthetic.blur: 9 is out of range (use a value at most 5.0)"),
    ({"spacing": -1}, "synthetic.spacing: -1 is out of range (use a value at least -0.5)"),
    ({"stroke": 9}, "synthetic.stroke: 9 is out of range (use a value at most 8)"),
    ({"line_width": 0}, "synthetic.line_width: 0 is out of range (use a value at least 1)"),
    ({"background_gradient": 300},
     "synthetic.background_gradient: 300 is out of range (use a value at most 255)"),
    ({"antialias": "no"},
     "synthetic.antialias: expected true or false, got the string 'no' (write true or false "
     "without quotes)"),
    ({"text_colour": "#000000"},
     "synthetic.text_colour: unknown key (did you mean 'text_colours'?)"),
])
def test_bad_look_settings_have_exact_messages(settings: dict, expected: str) -> None:
    assert problems(**settings) == [f"p/shop.yaml: {expected}"]


# ---------------------------------------------------------------------------
# drawing

EVERYTHING = SyntheticSection(
    width=96, height=32, font_sizes=(22,), noise_dots=5, noise_curves=1, background="#d0e0f0",
    background_jitter=8, background_gradient=40, border="#000000",
    text_colours=("#202020", "#803030"), colour_per_character=True, stroke=1, antialias=False,
    rotation=10, vertical_jitter=2, overlap=0.1, gap_probability=0.0, spacing=0.2,
    noise_lines=2, line_width=2, blur=0.5, grayscale=True, clutter_colours=("#909090",),
    upper_case_share=0.5)


def test_drawer_takes_every_setting() -> None:
    drawer = CaptchaDrawer.from_settings(EVERYTHING, seed=1)
    assert {name: getattr(drawer, name) for name in LOOK_SETTINGS} == {
        name: getattr(EVERYTHING, name) for name in LOOK_SETTINGS}
    assert set(LOOK_SETTINGS) | {"fonts", "variants"} == set(SyntheticSection.model_fields)
    copy = pickle.loads(pickle.dumps(drawer))
    assert copy == drawer and copy.seed == 1


def test_drawing_with_every_setting_is_sized_and_seeded() -> None:
    first = CaptchaDrawer.from_settings(EVERYTHING, seed=1)
    second = CaptchaDrawer.from_settings(EVERYTHING, seed=1)
    for text in ("12", "4821", "0123456789"):
        image = np.asarray(first.image(text))
        assert image.shape == (32, 96, 3) and image.dtype == np.uint8
        assert np.array_equal(image, np.asarray(second.image(text)))
        assert np.array_equal(image[..., 0], image[..., 2])  # grayscale
        assert (image[0] == 0).all() and (image[:, -1] == 0).all()  # the border


def test_background_gradient_and_colours() -> None:
    drawer = CaptchaDrawer(width=100, height=40, background="#f0f0f0", background_gradient=60,
                           text_colours=("#102030",), noise_dots=0, noise_curves=0, blur=0,
                           seed=2)
    image = np.asarray(drawer.image("7")).astype(int)
    assert image[2, 1].tolist() == [180, 180, 180]  # the left edge, 60 darker
    assert image[2, 98].tolist() == [239, 239, 239]
    assert [16, 32, 48] in image.reshape(-1, 3).tolist()


def test_unseeded_drawers_stay_random() -> None:
    drawer = CaptchaDrawer()
    assert not np.array_equal(np.asarray(drawer.image("AB12")), np.asarray(drawer.image("AB12")))


# ---------------------------------------------------------------------------
# fitting


def drawn(settings: dict, count: int, charset: str = "0123456789ABCDEF",
          seed: int = 5) -> tuple[list[np.ndarray], list[str]]:
    drawer = CaptchaDrawer(**settings, seed=seed)
    rng = random.Random(seed)
    labels = [random_text(rng, charset, 5, 5) for _ in range(count)]
    return [np.asarray(drawer.image(label)) for label in labels], labels


def test_colours_size_and_border_are_read_off_the_images() -> None:
    images, labels = drawn(dict(width=110, height=36, font_sizes=(26,), background="#283040",
                                text_colours=("#f0e0a0",), border="#c0c0c0", noise_dots=0,
                                noise_curves=0, rotation=5, blur=0), 24)
    probe = synth.probe_for(images)
    assert probe.size == (110, 36) and not probe.dark_text
    look = synth.read_look(synth.measure(images, probe, labels), probe, SyntheticSection())
    assert (look.width, look.height) == (110, 36)
    background = np.asarray([int(look.background[i:i + 2], 16) for i in (1, 3, 5)])
    assert np.abs(background - [0x28, 0x30, 0x40]).max() <= 12
    assert look.border == "#c0c0c0"
    assert len(look.text_colours) == 1 and not look.colour_per_character
    text = np.asarray([int(look.text_colours[0][i:i + 2], 16) for i in (1, 3, 5)])
    assert np.abs(text - [0xf0, 0xe0, 0xa0]).max() <= 30


def test_fit_recovers_known_settings() -> None:
    known = dict(width=120, height=40, font_sizes=(26,), noise_dots=30, noise_curves=0,
                 noise_lines=2, line_width=2, background="#f4efe6", text_colours=("#203060",),
                 rotation=10, blur=0.0, vertical_jitter=2, gap_probability=0.0, overlap=0.1)
    images, labels = drawn(known, 32)
    result = synth.fit_look(images, labels, SyntheticSection(), "0123456789ABCDEF", (5, 5),
                            fonts=[""], evaluation_images=8, passes=1)
    found = result.settings
    assert (found.width, found.height) == (120, 40)
    assert found.background == "#f4efe6" and len(found.text_colours) == 1
    text = np.asarray([int(found.text_colours[0][i:i + 2], 16) for i in (1, 3, 5)])
    assert np.abs(text - [0x20, 0x30, 0x60]).max() <= 12
    middle = found.font_sizes[len(found.font_sizes) // 2]
    assert 22 <= middle <= 30
    assert found.noise_curves + found.noise_lines >= 1
    assert found.rotation <= 20 and found.gap_probability <= 0.25
    assert result.score_after < result.score_before / 3


def _rgb(colour: str) -> np.ndarray:
    return np.asarray([int(colour[i:i + 2], 16) for i in (1, 3, 5)])


def _near(colour: str, others: tuple[str, ...] | list[str], within: int) -> bool:
    return any(np.abs(_rgb(colour) - _rgb(other)).max() <= within for other in others)


def _upper_share(drawer: CaptchaDrawer, labels: list[str]) -> float:
    """The share of letters the drawer drew in upper case (its own random stream, replayed)."""
    engine = drawer._engine
    cased = []
    for label in labels:
        engine.random = random.Random(0)
        cased.append(engine._cased(label))
    letters = [ch for text in cased for ch in text if ch.isalpha()]
    return sum(ch.isupper() for ch in letters) / len(letters)


def test_drawer_mixes_cases_and_colours_its_clutter() -> None:
    drawer = CaptchaDrawer(width=120, height=40, upper_case_share=0.5, noise_lines=6,
                           noise_curves=0, noise_dots=0, clutter_colours=("#00ff00",),
                           text_colours=("#000000",), background="#ffffff", blur=0, seed=3)
    assert 0.35 <= _upper_share(drawer, ["abcdefgh"] * 20) <= 0.65
    pixels = np.asarray(drawer.image("abcd")).reshape(-1, 3).tolist()
    assert [0, 255, 0] in pixels and [0, 0, 0] in pixels
    assert CaptchaDrawer(upper_case_share=None)._engine._cased("aB1") == "aB1"
    assert CaptchaDrawer(upper_case_share=0.0)._engine._cased("aB1") == "ab1"
    assert CaptchaDrawer(upper_case_share=1.0)._engine._cased("aB1") == "AB1"


def test_case_share_needs_a_site_that_ignores_case() -> None:
    data = {**with_synthetic(upper_case_share=0.5),
            "format": {"charset": "abcdef", "length": 4, "case_sensitive": True}}
    with pytest.raises(ProfileError) as caught:
        profile_from_data(data, "p/shop.yaml")
    assert caught.value.problems == [
        "p/shop.yaml: (top level): synthetic.upper_case_share is set but format.case_sensitive "
        "is true (a look-alike's case would then not match its answer) (remove "
        "upper_case_share, or set format.case_sensitive: false)"]
    data["format"]["case_sensitive"] = False
    assert profile_from_data(data, "p/shop.yaml").synthetic.upper_case_share == 0.5


#: a site of crisp coloured characters, each its own colour, crossed by grey lines, showing
#: both cases of letters while it ignores case
TEXT_INKS = ("#c01818", "#1830c0", "#108a30")
LINE_INK = "#8c8c8c"
CASE_CHARSET = "ABDEGHMNRTY"


@pytest.mark.parametrize("share", [0.5, 0.0])
def test_fit_keeps_known_colours_and_case_mix(share: float) -> None:
    known = dict(width=120, height=40, font_sizes=(28,), noise_dots=0, noise_curves=0,
                 noise_lines=4, line_width=1, background="#f8f6f0", text_colours=TEXT_INKS,
                 colour_per_character=True, clutter_colours=(LINE_INK,), rotation=5, blur=0.0,
                 vertical_jitter=2, gap_probability=0.0, overlap=0.0, upper_case_share=share,
                 baseline=True)
    images, labels = drawn(known, 48, charset=CASE_CHARSET)
    result = synth.fit_look(images, labels, SyntheticSection(), CASE_CHARSET, (5, 5),
                            fonts=[""], evaluation_images=6, passes=1, case_sensitive=False)
    found = result.settings
    # every ink of the text is kept, and no grey or washed-out one is added
    assert found.colour_per_character
    assert all(_near(ink, found.text_colours, 45) for ink in TEXT_INKS), found.text_colours
    assert all(_near(colour, TEXT_INKS, 60) for colour in found.text_colours), found.text_colours
    # the lines keep their own grey
    assert isinstance(found.clutter_colours, tuple), found.clutter_colours
    assert _near(LINE_INK, found.clutter_colours, 30), found.clutter_colours
    assert found.noise_lines + found.noise_curves >= 1
    assert found.upper_case_share is not None
    assert abs(found.upper_case_share - share) <= 0.25, found.upper_case_share


def test_a_case_sensitive_fit_leaves_the_case_alone() -> None:
    images, labels = drawn(dict(width=120, height=40, font_sizes=(28,), noise_dots=0,
                                noise_curves=0, rotation=5, blur=0.0), 16, charset="abdegh")
    result = synth.fit_look(images, labels, SyntheticSection(), "abdegh", (5, 5),
                            fonts=[""], evaluation_images=4, passes=1)
    assert result.settings.upper_case_share is None


@pytest.mark.skipif(not KAGGLE.is_dir(), reason=f"{KAGGLE} not found: the real-data check "
                    "needs the shared kaggle_v2 dataset")
def test_fit_on_a_real_dataset() -> None:
    images, labels = synth.load_sample(KAGGLE, 8)
    result = synth.fit_look(images, labels, SyntheticSection(), "2345678bcdefgmnpwxy",
                            (5, 5), fonts=[""], evaluation_images=4, passes=1)
    assert (result.settings.width, result.settings.height) == (200, 50)
    assert result.settings.grayscale and result.settings.background_gradient > 20
    assert result.score_after < result.score_before


def test_no_images_is_an_error() -> None:
    with pytest.raises(synth.FitError, match="no images to fit"):
        synth.fit_look([], [], SyntheticSection())


# ---------------------------------------------------------------------------
# preview


def expected_sheet_size(columns: int, rows: int, width: int, height: int) -> tuple[int, int]:
    scale = synth.sheet_scale([height])
    margin = synth.SHEET_MARGIN
    return (margin + columns * (width * scale + margin),
            synth.SHEET_HEADER + rows * (height * scale + synth.SHEET_CAPTION + margin)
            + margin)


def test_preview_sheet_puts_real_and_lookalikes_side_by_side() -> None:
    real, labels = drawn(dict(width=70, height=30, font_sizes=(20,)), 3, seed=1)
    fake, _ = drawn(dict(width=70, height=30, font_sizes=(20,)), 3, seed=2)
    sheet = synth.preview_sheet(list(zip(fake, labels)), list(zip(real, labels)))
    assert (sheet.shape[1], sheet.shape[0]) == expected_sheet_size(2, 3, 70, 30)
    scale = synth.sheet_scale([30])
    top, left = synth.SHEET_HEADER, synth.SHEET_MARGIN
    assert np.array_equal(sheet[top:top + 30 * scale:scale, left:left + 70 * scale:scale], real[0])


@pytest.fixture()
def digits_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "real"
    folder.mkdir()
    drawer = CaptchaDrawer(width=120, height=45, font_sizes=(32,), seed=3)
    for label in ("4821", "0937", "5560"):
        (folder / f"{label}.png").write_bytes(drawer.png(label))
    return folder


def test_preview_verb_writes_the_sheet(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                       digits_folder: Path) -> None:
    out = tmp_path / "sheets" / "digits.png"
    assert main(["synth", "preview", "--profiles-dir", str(PROFILES), "--site", "digits",
                 "--data", str(digits_folder), "--out", str(out), "-n", "3"]) == 0
    with Image.open(out) as sheet:
        assert sheet.format == "PNG"
        assert sheet.size == expected_sheet_size(2, 3, 120, 45)
    assert f"{out}: 3 look-alikes beside 3 real images" in capsys.readouterr().out
    alone = tmp_path / "alone.png"
    assert main(["synth", "preview", "--profiles-dir", str(PROFILES), "--site", "digits",
                 "--out", str(alone), "-n", "2"]) == 0
    with Image.open(alone) as sheet:
        assert sheet.size == expected_sheet_size(1, 2, 120, 45)


@pytest.mark.parametrize(("args", "status", "message"), [
    (["synth", "preview", "--site", "digits", "-n", "0"], 2, "error: -n 0: show at least 1 row"),
    (["synth", "preview", "--site", "digits", "--out", "sheet.jpg"], 2,
     "error: --out sheet.jpg: the sheet is a PNG; give a path ending in .png"),
    (["synth", "fit", "--site", "digits", "--data", "x", "--evaluate", "2"], 2,
     "error: --evaluate 2: draw at least 4 look-alikes per trial"),
    (["synth", "fit", "--site", "digits", "--data", "nowhere", "--sample", "0"], 1,
     "error: nowhere: no such folder (give a folder of labelled captchas)"),
    (["synth", "fit", "--site", "nosuch", "--data", "x"], 2, "no profile of that name"),
])
def test_synth_argument_errors(capsys: pytest.CaptureFixture[str], args: list[str],
                               status: int, message: str) -> None:
    assert main([*args[:2], "--profiles-dir", str(PROFILES), *args[2:]]) == status
    assert message in capsys.readouterr().err


def test_synth_fit_needs_data(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["synth", "fit", "--site", "digits"])
    assert caught.value.code == 2
    assert "the following arguments are required: --data" in capsys.readouterr().err


def test_sample_of_zero_is_refused(digits_folder: Path) -> None:
    with pytest.raises(UsageError, match="--sample 0: give at least 1 image"):
        synth.load_sample(digits_folder, 0)


# ---------------------------------------------------------------------------
# writing the profile

FITTED = SyntheticSection(width=120, height=45, font_sizes=(30, 33), noise_dots=0,
                          background="#f4efe6", text_colours=("#203060",), rotation=10,
                          noise_lines=2, blur=0.0)


def test_fit_verb_prints_and_writes(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                    digits_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    shutil.copy(PROFILES / "digits.yaml", profiles / "digits.yaml")
    original = (profiles / "digits.yaml").read_text()
    seen = {}

    def fake_fit(images: list, labels: list, start: SyntheticSection,
                 *args: object, **options: object) -> synth.FitResult:
        seen.update(images=len(images), labels=sorted(labels), start=start)
        return synth.FitResult(FITTED, 3.2, 0.4, [("softness", 1.5)], len(images), 1.0)

    monkeypatch.setattr(synth, "fit_look", fake_fit)
    assert main(["synth", "fit", "--profiles-dir", str(profiles), "--site", "digits",
                 "--data", str(digits_folder)]) == 0
    out = capsys.readouterr().out
    assert seen["images"] == 3 and seen["labels"] == ["0937", "4821", "5560"]
    assert "3.20 with the profile's settings, 0.40 fitted" in out
    assert '  background: "#f4efe6"\n  text_colours: ["#203060"]\n' in out
    assert "(not written: add --write" in out
    assert (profiles / "digits.yaml").read_text() == original

    assert main(["synth", "fit", "--profiles-dir", str(profiles), "--site", "digits",
                 "--data", str(digits_folder), "--write"]) == 0
    out = capsys.readouterr().out
    assert "noise_dots: 30 -> 0" in out and 'background: "random-light" -> "#f4efe6"' in out
    assert load_profile(profiles / "digits.yaml").synthetic == FITTED
    assert [p.name for p in profiles.iterdir()] == ["digits.yaml"]  # nothing left behind


def test_rewrite_keeps_the_rest_of_the_file_and_its_comments() -> None:
    path = PROFILES / "example.yaml"
    text = path.read_text()
    new_text, changes = synth.update_profile_text(text, FITTED, path)
    before, after = text.split("synthetic:")[0], new_text.split("synthetic:")[0]
    assert before == after
    block = new_text.split("synthetic:")[1]
    assert block.startswith("  # look-alike captchas for training")
    assert '  fonts: []  # TrueType files; empty: the captcha package\'s own font\n' in block
    assert '  font_sizes: [30, 33]\n' in block
    assert "width: 160 -> 120" in changes and "blur: null -> 0.0" in changes


def test_rewrite_of_flow_style_and_of_a_missing_section(tmp_path: Path) -> None:
    flow = yaml.safe_dump(BASE, sort_keys=False) + "synthetic: {width: 90, height: 30}  # old\n"
    new_text, changes = synth.update_profile_text(flow, FITTED, "p/shop.yaml")
    assert "{width" not in new_text and "# old" not in new_text
    assert profile_from_data(yaml.safe_load(new_text), "p/shop.yaml").synthetic == FITTED
    assert "width: 90 -> 120" in changes
    missing = yaml.safe_dump(BASE, sort_keys=False) + "\n\n"
    new_text, _ = synth.update_profile_text(missing, FITTED, "p/shop.yaml")
    assert new_text.startswith(yaml.safe_dump(BASE, sort_keys=False))
    assert profile_from_data(yaml.safe_load(new_text), "p/shop.yaml").synthetic == FITTED
    path = tmp_path / "shop.yaml"
    path.write_text(new_text)
    assert synth.update_profile_file(path, FITTED) == []  # nothing to change
