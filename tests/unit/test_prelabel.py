"""Pre-labelling readers, `solver dataset suggest` and self-training with pseudo-labels.

Everything here is real: images drawn by CaptchaDrawer, the shipped models read
through LiteRT, ddddocr's own model, a DatasetStore on disk, and the CLI.
"""

from __future__ import annotations

import random
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from solver.cli import build_parser, main
from solver.dataset import PSEUDO_SOURCE, DatasetStore, LabelConflictError, read_labelled_folder
from solver.drawing import CaptchaDrawer
from solver.prelabel import (
    PrelabelError,
    PrelabelReader,
    Proposal,
    ReaderUnavailableError,
    fit_to_format,
    open_reader,
)
from solver.profiles import SiteProfile, load_profile, load_profile_text
from solver.readers import Reader, TextReading
from solver.recognizers import Reading, Recognizer

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ROOT / "solver" / "shipped" / "profiles"
MODELS = ROOT / "solver" / "shipped" / "models"
DIGITS_YAML = PROFILES / "digits.yaml"


def digits_drawer() -> CaptchaDrawer:
    """The look of site_profiles/digits.yaml, seeded so the pixels repeat."""
    return CaptchaDrawer(width=120, height=45, font_sizes=(32, 36, 40), noise_dots=30,
                         noise_curves=1, seed=1)


def texts(alphabet: str, length: int, count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(alphabet) for _ in range(length)) for _ in range(count)]


def lowercase_profile(case_sensitive: bool = True) -> SiteProfile:
    """The example site's profile, but for a site whose captchas are lowercase only."""
    data = yaml.safe_load((PROFILES / "example.yaml").read_text(encoding="utf-8"))
    data["name"] = "lowercase"
    data["format"] = {"charset": "abcdefghijklmnopqrstuvwxyz0123456789", "length": [4, 6],
                      "case_sensitive": case_sensitive}
    return load_profile_text(yaml.safe_dump(data))


@pytest.fixture(scope="module")
def digits_profile() -> SiteProfile:
    return load_profile(DIGITS_YAML)


@pytest.fixture(scope="module")
def drawn_digits() -> list[tuple[str, bytes]]:
    drawer = digits_drawer()
    return [(text, drawer.png(text)) for text in texts("0123456789", 4, 24, seed=1)]


@pytest.fixture()
def digits_store(tmp_path: Path, digits_profile: SiteProfile,
                 drawn_digits: list[tuple[str, bytes]]) -> tuple[DatasetStore, dict[str, str]]:
    """24 unlabelled digit captchas, and which text each file shows."""
    fmt = digits_profile.format
    store = DatasetStore(tmp_path / "digits", fmt.charset, fmt.length, fmt.case_sensitive)
    truth = {store.add(png).entry.file: text for text, png in drawn_digits}
    return store, truth


# ----------------------------------------------------------------- readers


def test_a_model_folder_reads_the_sites_images(digits_profile: SiteProfile,
                                               drawn_digits: list[tuple[str, bytes]]) -> None:
    reader = open_reader(str(MODELS / "digits"), digits_profile, MODELS)
    proposals = reader.propose([png for _, png in drawn_digits])
    right = sum(p.text == text for p, (text, _) in zip(proposals, drawn_digits))
    assert right >= 0.8 * len(drawn_digits)
    assert all(p.fits and 0.0 <= p.confidence <= 1.0 for p in proposals)
    assert reader.description == str(MODELS / "digits") and reader.case_sensitive
    assert open_reader("site", digits_profile, MODELS).model_dir == MODELS / "digits"


def test_an_uppercase_model_proposes_lowercase_for_a_lowercase_site(tmp_path: Path) -> None:
    site = lowercase_profile()
    drawer = CaptchaDrawer(seed=1)  # the example model's look: 0-9A-Z, case-insensitive
    drawn = texts("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", 5, 12, seed=2)
    # the example model does not fit this profile (Recognizer would refuse it): mapped instead
    reader = open_reader(str(MODELS / "example"), site, MODELS)
    images = [drawer.png(text) for text in drawn]
    proposals = reader.propose(images)
    assert sum(p.text == text.lower() for p, text in zip(proposals, drawn)) >= 9
    for proposal in proposals:
        assert proposal.raw == proposal.raw.upper()  # the model writes its own charset
        assert proposal.text == proposal.text.lower() and proposal.fits
    # `general` is MODELS_DIR/general: any model folder of that name (here a copy of example)
    (tmp_path / "general").mkdir()
    for name in ("metadata.json", "model.tflite"):
        shutil.copyfile(MODELS / "example" / name, tmp_path / "general" / name)
    general = open_reader("general", site, tmp_path)
    assert general.model_dir == tmp_path / "general"
    assert [p.text for p in general.propose(images)] == [p.text for p in proposals]


def test_the_mapping_rules() -> None:
    lower = lowercase_profile().format
    upper_insensitive = load_profile(PROFILES / "example.yaml").format
    digits = load_profile(DIGITS_YAML).format
    # folding: the reader or the site ignores case, and the site's letters are of one case
    assert fit_to_format("K7QP", 0.99, lower, reader_case_sensitive=False).text == "k7qp"
    assert fit_to_format("k7qp", 0.9, upper_insensitive, reader_case_sensitive=True).text == "K7QP"
    # a case-sensitive reader on a case-sensitive lowercase site: its uppercase is a misfit
    strict = fit_to_format("K7QP", 0.99, lower, reader_case_sensitive=True)
    assert (strict.text, strict.confidence, strict.raw) == ("", 0.0, "K7QP")
    assert strict.problem == "'K7QP' has characters outside the charset: KPQ"
    # length and charset: no suggestion, and why
    long = fit_to_format("123456", 0.99, digits, reader_case_sensitive=True)
    assert (long.text, long.confidence, long.fits) == ("", 0.0, False)
    assert long.problem == "'123456' has 6 characters, expected 4"
    assert fit_to_format("12a4", 0.99, digits, reader_case_sensitive=False).problem == (
        "'12a4' has characters outside the charset: a")
    # a site that tells both cases apart, read by a reader that cannot: no confidence
    both = load_profile_text(yaml.safe_dump({
        **yaml.safe_load((PROFILES / "example.yaml").read_text(encoding="utf-8")),
        "name": "mixed", "format": {"charset": "abcABC0123", "length": [4, 4],
                                    "case_sensitive": True}})).format
    unsure = fit_to_format("aB01", 0.99, both, reader_case_sensitive=False)
    assert (unsure.text, unsure.confidence) == ("aB01", None)
    assert fit_to_format("0123", 0.99, both, reader_case_sensitive=False).confidence == 0.99
    assert fit_to_format("aB01", 0.99, both, reader_case_sensitive=True).confidence == 0.99


def test_ddddocr_readings_are_mapped_into_the_profile(drawn_digits: list[tuple[str, bytes]]) -> None:
    pytest.importorskip("ddddocr", reason="the prelabel extra is not installed")
    drawer = CaptchaDrawer(seed=1)
    images = [drawer.png(text) for text in ("355NA", "SWH21", "JGD2A")]
    site = lowercase_profile()
    reader = open_reader("ddddocr", site, MODELS)
    proposals = reader.propose(images) + reader.propose([png for _, png in drawn_digits[:3]])
    assert any(p.fits for p in proposals)
    for proposal in proposals:
        assert proposal.raw  # ddddocr read something
        if proposal.fits:
            assert proposal.text == proposal.raw.strip().lower()
            assert site.format.label_problem(proposal.text) is None
            assert proposal.confidence is not None and 0.0 <= proposal.confidence <= 1.0
        else:
            assert (proposal.text, proposal.confidence) == ("", 0.0) and proposal.problem
    digits = open_reader("ddddocr", load_profile(DIGITS_YAML), MODELS)
    for proposal in digits.propose([png for _, png in drawn_digits[:4]]):
        assert proposal.text == "" or (proposal.text.isdigit() and len(proposal.text) == 4)



def test_ddddocr_confidence_comes_from_the_projects_ctc_decoder() -> None:
    """On ddddocr's real output (blank first), the shared decoder reads ddddocr's own text,
    and the same as with the blank moved last, as this project's models have it."""
    ddddocr = pytest.importorskip("ddddocr", reason="the prelabel extra is not installed")
    import numpy as np

    from solver.charset import decode_ctc_greedy
    from solver.prelabel import _ddddocr_reading, _quiet_ddddocr

    ocr = _quiet_ddddocr(ddddocr)
    drawer = CaptchaDrawer(seed=3)
    for text in ("355NA", "SWH21", "JGD2A", "k7qp", "40719"):
        result = ocr.classification(drawer.png(text), probability=True)
        charset = list(result["charset"])
        steps = np.asarray(result["probabilities"], dtype=np.float32).reshape(-1, len(charset))
        [(decoded, confidence)] = decode_ctc_greedy(steps[np.newaxis], charset, blank_index=0)
        assert decoded == result["text"]
        assert _ddddocr_reading(result) == (result["text"], confidence)
        assert 0.0 <= confidence <= 1.0
        blank_last = np.concatenate([steps[:, 1:], steps[:, :1]], axis=-1)
        assert decode_ctc_greedy(blank_last[np.newaxis], charset[1:] + [""],
                                 blank_index=len(charset) - 1) == [(decoded, confidence)]


def test_the_sites_model_and_the_prelabel_readers_are_readers(
        digits_profile: SiteProfile, drawn_digits: list[tuple[str, bytes]]) -> None:
    recognizer: Reader[Reading] = Recognizer(MODELS / "digits", digits_profile)
    folder: Reader[Proposal] = open_reader("general", digits_profile, MODELS)
    anyone: list[Reader[TextReading]] = [recognizer, folder]
    for reader in anyone:
        assert isinstance(reader, Reader)
        one = reader.read(drawn_digits[0][1])
        [again] = reader.read_batch([drawn_digits[0][1]])
        assert (one.text, one.confidence) == (again.text, again.confidence)
        assert one.milliseconds >= 0.0
    assert issubclass(PrelabelReader, Reader)

def test_missing_readers_say_how_to_get_them(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                              digits_profile: SiteProfile) -> None:
    monkeypatch.setattr("solver.shipped.models_path", lambda: tmp_path / "no-shipped-models")
    with pytest.raises(PrelabelError) as general:
        open_reader("general", digits_profile, tmp_path)
    assert str(general.value).startswith(f"{tmp_path / 'general'}: no general model there")
    assert "--models-dir" in str(general.value) and "another reader: ddddocr" in str(general.value)
    with pytest.raises(PrelabelError) as site:
        open_reader("site", digits_profile, tmp_path)
    assert "`solver train --site digits`" in str(site.value)
    with pytest.raises(PrelabelError) as nowhere:
        open_reader(str(tmp_path / "nope"), digits_profile, tmp_path)
    assert "neither ddddocr, general, site nor a model folder" in str(nowhere.value)
    monkeypatch.setitem(sys.modules, "ddddocr", None)  # what Python does when it is not installed
    with pytest.raises(ReaderUnavailableError) as missing:
        open_reader("ddddocr", digits_profile, tmp_path)
    assert "pip install 'solver[prelabel]'" in str(missing.value)


# ----------------------------------------------------------------- labels


def test_pseudo_labels_rank_below_every_other_label(tmp_path: Path) -> None:
    drawer = digits_drawer()
    store = DatasetStore(tmp_path, "0123456789", (4, 4))
    guessed = store.add(drawer.png("1234")).entry.file
    store.set_label(guessed, "1284", source=PSEUDO_SOURCE)
    assert store.set_label(guessed, "1234", source="hand").source == "hand"  # no force needed
    with pytest.raises(LabelConflictError):
        store.set_label(guessed, "9999", source=PSEUDO_SOURCE)  # a guess never replaces a label
    assert store.set_label(guessed, "1234", source=PSEUDO_SOURCE).source == "hand"
    site = store.add(drawer.png("5678"), label="5678", source="site", verified=True).entry.file
    assert store.set_label(site, "5678", source=PSEUDO_SOURCE).verified
    assert [s.path.name for s in store.samples()] == [guessed, site]
    other = store.add(drawer.png("4321")).entry.file
    store.set_label(other, "4321", source=PSEUDO_SOURCE)
    assert [s.path.name for s in store.samples()] == [guessed, site]
    assert [s.pseudo for s in store.samples(pseudo_labels=True)] == [False, False, True]
    assert [s.path.name for s in read_labelled_folder(tmp_path)] == [guessed, site]
    assert read_labelled_folder(tmp_path, pseudo_labels=True)[-1].pseudo


# ----------------------------------------------------------------- the CLI


def site_args(store: DatasetStore) -> list[str]:
    return ["--site", str(DIGITS_YAML), "--data", str(store.root)]


def test_suggest_stores_proposals_for_the_labelling_page(
        capsys: pytest.CaptureFixture[str], digits_store: tuple[DatasetStore, dict[str, str]]) -> None:
    store, truth = digits_store
    labelled = next(iter(truth))
    store.set_label(labelled, "0000", source="hand")
    reader = ["--reader", str(MODELS / "digits"), "--quiet"]
    assert main(["dataset", "suggest", *site_args(store), *reader, "--limit", "5"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{store.root}: read 5 of 5 images with {MODELS / 'digits'} in ")
    assert out[0].endswith("; 5 suggestions stored")
    assert out[1].startswith("  confidence: ") and out[2] == "  no fitting reading: 0"
    assert out[3] == "next: `solver label --site digits` shows them, least confident first"
    assert main(["dataset", "suggest", *site_args(store), *reader]) == 0  # continues: 18 left
    assert "read 18 of 18 images" in capsys.readouterr().out
    reopened = DatasetStore(store.root)
    entries = {e.file: e for e in reopened.entries()}
    assert entries[labelled].label == "0000" and not entries[labelled].suggestion
    suggested = [e for e in entries.values() if not e.label]
    assert all(e.suggestion and e.confidence is not None for e in suggested)
    assert sum(e.suggestion == truth[e.file] for e in suggested) >= 0.8 * len(suggested)
    assert reopened.queue()[0].confidence == min(e.confidence for e in suggested)
    assert main(["dataset", "suggest", *site_args(store), *reader, "--all"]) == 0
    assert "read 24 of 24 images" in capsys.readouterr().out
    again = DatasetStore(store.root).get(labelled)
    assert again.label == "0000" and again.suggestion == truth[labelled]  # the label stays


def test_pseudo_label_then_train_with_and_without_them(
        capsys: pytest.CaptureFixture[str], digits_store: tuple[DatasetStore, dict[str, str]],
        digits_profile: SiteProfile) -> None:
    store, truth = digits_store
    hand = next(iter(truth))
    store.set_label(hand, "0000", source="hand")  # wrong on purpose: a reading must not replace it
    args = [*site_args(store), "--reader", str(MODELS / "digits"), "--quiet"]
    assert main(["dataset", "pseudo-label", *args, "--min-confidence", "0.9"]) == 0
    out = capsys.readouterr().out.splitlines()
    entries = DatasetStore(store.root).entries()
    pseudo = [e for e in entries if e.source == PSEUDO_SOURCE]
    assert 5 <= len(pseudo) < 23
    assert out[0].startswith(f"{store.root}: read 23 of 23 unlabelled images with ")
    assert out[1] == (f"  pseudo-labelled {len(pseudo)} (confidence >= 0.9); "
                      f"{23 - len(pseudo)} kept as suggestions only (less sure, or no confidence)")
    assert out[-1].startswith("next: `solver train --site digits --data ")
    for entry in pseudo:
        assert not entry.verified and entry.label == entry.suggestion and entry.confidence >= 0.9
    assert sum(e.label == truth[e.file] for e in pseudo) >= len(pseudo) - 1
    assert all(not e.label for e in entries if e.source != PSEUDO_SOURCE and e.file != hand)
    assert DatasetStore(store.root).get(hand).label == "0000"

    assert main(["dataset", "stats", *site_args(store)]) == 0
    stats = capsys.readouterr().out.splitlines()
    assert stats[0] == (f"{store.root}: 24 images, {len(pseudo) + 1} labelled (0 verified by the "
                        f"site, {len(pseudo)} pseudo-labels that training leaves out without "
                        f"--pseudo-labels), {23 - len(pseudo)} unlabelled "
                        f"({23 - len(pseudo)} with a model's suggestion)")
    assert stats[1] == "characters: 0:4 (pseudo-labels not counted)"

    from solver.training.train import TrainOptions, gather_samples, label_summary

    real_only, report = gather_samples(TrainOptions(profile=digits_profile, data=[store.root]))
    assert [s.path.name for s in real_only] == [hand]
    assert report.lines()[-1] == f"  {len(pseudo)} pseudo-labels left out (--pseudo-labels uses them)"
    both, _ = gather_samples(TrainOptions(profile=digits_profile, data=[store.root],
                                          pseudo_labels=True))
    assert label_summary(both) == {"real_labels": 1, "pseudo_labels": len(pseudo)}
    assert build_parser().parse_args(["train", "--site", "digits", "--pseudo-labels"]).pseudo_labels


def test_cli_errors_name_the_fix(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("solver.shipped.models_path", lambda: tmp_path / "no-shipped-models")
    site = ["--site", str(DIGITS_YAML), "--data", str(tmp_path / "d"), "--models-dir",
            str(tmp_path)]
    assert main(["dataset", "suggest", *site, "--reader", "general"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'general'}: no general model there")
    assert not (tmp_path / "d").exists()  # nothing created before the reader opened
    assert main(["dataset", "suggest", *site]) == 0  # no site model: ddddocr is the default
    assert "nothing to read" in capsys.readouterr().out
    assert main(["dataset", "pseudo-label", *site, "--reader", "site"]) == 2
    assert "`solver train --site digits`" in capsys.readouterr().err
    assert main(["dataset", "pseudo-label", *site, "--min-confidence", "1.5"]) == 2
    assert "--min-confidence 1.5: use a number above 0" in capsys.readouterr().err
    assert main(["collect", "--site", str(DIGITS_YAML), "-n", "1", "--label", "model",
                 "--model", "general", "--models-dir", str(tmp_path)]) == 2  # before any browser
    assert "no general model there" in capsys.readouterr().err


def test_the_shipped_general_model_reads_its_own_look_for_any_charset(tmp_path: Path) -> None:
    """models/general is found by name, read with its 62 characters, and mapped into a site's format."""
    import json

    from solver.prelabel import default_reader_spec

    metadata = json.loads((MODELS / "general" / "metadata.json").read_text())
    assert len(metadata["charset"]) == 62 and metadata["case_sensitive"] is True
    upper = load_profile_text(yaml.safe_dump({
        "name": "upper", "url": "http://127.0.0.1/", "captcha": {"selector": "img"},
        "form": {"input": "input", "submit": "button"},
        "format": {"charset": "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", "length": [3, 7],
                   "case_sensitive": False}}))
    general = open_reader("general", upper, MODELS)
    drawer = CaptchaDrawer(width=160, height=60, seed=4)  # the captcha package's look, one of its eight
    words = ["K7QP", "A3X9", "MN4T", "Z8B2", "H5R6", "W2EY"]
    proposals = general.propose([drawer.png(word) for word in words])
    assert all(p.text == p.text.upper() for p in proposals)  # folded onto the site's one case
    assert sum(p.text == word for p, word in zip(proposals, words)) >= 3
    assert default_reader_spec(upper, tmp_path) == "ddddocr"  # installed here, no site model
    assert open_reader("general", upper, tmp_path / "empty").model_dir == MODELS / "general"  # shipped


def test_which_classes_a_site_can_show() -> None:
    from solver.prelabel import site_classes

    digits = load_profile(DIGITS_YAML).format
    assert site_classes(["0", "O", "7", "r", ""], digits).tolist() == [1, 0, 1, 0, 1]
    # a site of one case takes the other case too: the reading is folded onto it
    lower = lowercase_profile().format
    assert site_classes(["a", "A", "Z", "1", "#"], lower).tolist() == [1, 1, 1, 1, 0]
    mixed = load_profile_text(yaml.safe_dump({
        **yaml.safe_load((PROFILES / "example.yaml").read_text(encoding="utf-8")),
        "name": "mixed", "format": {"charset": "abcD0123", "length": [4, 4],
                                    "case_sensitive": True}})).format
    assert site_classes(["a", "A", "d", "D"], mixed).tolist() == [1, 0, 0, 1]
    # a reader that cannot tell the cases apart keeps both
    assert site_classes(["a", "A", "d", "D"], mixed, reader_case_sensitive=False).tolist() == [1] * 4


def test_the_general_model_reads_a_digits_site_in_digits(
        digits_profile: SiteProfile) -> None:
    """The shipped general model has 62 classes; on a digits site it decodes within the
    digits: where its free reading was digits already, the text is the same and no less
    sure; where it was not, the letter gives way to the likeliest digit or a gap."""
    reader = open_reader("general", digits_profile, MODELS)
    free = open_reader("general", digits_profile, MODELS)
    free.within_charset = False
    drawer = digits_drawer()
    images = [drawer.png(text) for text in texts("0123456789", 4, 24, seed=5)]
    within = reader.read_raw(images)
    unbound = free.read_raw(images)
    assert any(not text.isdigit() for text, _ in unbound), \
        "the general model read every image in digits already: these images test nothing"
    for (text, confidence), (free_text, free_confidence) in zip(within, unbound):
        assert text == "" or text.isdigit()
        if free_text.isdigit():
            assert text == free_text and confidence >= free_confidence - 1e-6


def test_ddddocr_decodes_within_the_sites_charset(digits_profile: SiteProfile) -> None:
    import numpy as np

    from solver.prelabel import _ddddocr_reading

    # ddddocr's output form: blank first; 'r' wins the second step, '7' is its runner-up
    charset = ["", "r", "7", "1"]
    steps = np.array([[0.1, 0.0, 0.0, 0.9], [0.2, 0.5, 0.3, 0.0], [0.9, 0.05, 0.05, 0.0]])
    result = {"text": "1r", "charset": charset, "probabilities": steps[:, None, :].tolist()}
    assert _ddddocr_reading(result)[0] == "1r"
    text, confidence = _ddddocr_reading(result, digits_profile.format)
    assert text == "17"
    assert confidence == pytest.approx(0.9 * 0.6 * 0.9 / 0.95, rel=1e-5)  # 0.3 / (0.2 + 0.3)


def test_the_labelling_pages_suggestions_skip_a_broken_image_and_keep_the_rest(
        digits_store: tuple[DatasetStore, dict[str, str]], digits_profile: SiteProfile) -> None:
    """suggest_missing reads in batches with the shared read_entries: a file broken on disk
    spoils its batch, which is read again one by one; the others get their readings."""
    from solver.labeller.app import suggest_missing

    store, truth = digits_store
    broken = sorted(truth)[3]
    (store.root / broken).write_bytes(b"not an image")
    stored = suggest_missing(store, Recognizer(MODELS / "digits", digits_profile), batch_size=8)
    assert stored == len(truth) - 1
    suggested = {entry.file: entry.suggestion for entry in store.queue()}
    assert not suggested[broken]
    right = sum(suggested[file] == text for file, text in truth.items() if file != broken)
    assert right >= 0.8 * (len(truth) - 1)
