"""`solver label`'s page in a real browser, against a real server and a dataset on disk."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from solver.dataset import DatasetStore, Entry
from solver.demo_site import SiteServer
from solver.drawing import CaptchaDrawer
from solver.labeller import build_label_app
from solver.profiles import ProfileRegistry, SiteProfile
from solver.recognizers import Recognizer

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = ProfileRegistry(ROOT / "solver" / "shipped" / "profiles")
DIGITS = REGISTRY.load("digits")  # exactly 4 digits, case-sensitive
EXAMPLE = REGISTRY.load("example")  # 4 to 6 of 0-9A-Z, case ignored
DRAWER = CaptchaDrawer.from_settings(DIGITS.synthetic)

# drawn text, the model's suggestion, its confidence; the queue shows them least confident first
ITEMS = [("2222", "2222", 0.95), ("1111", None, None), ("3333", "3333", 0.30),
         ("4444", "4444", 0.60)]
QUEUE_ORDER = ["1111", "3333", "4444", "2222"]


@dataclass
class Dataset:
    store: DatasetStore  # the very store the server uses
    files: dict[str, str]  # drawn text -> file name

    def on_disk(self, text: str) -> Entry | None:
        """The entry of ``text``'s image as labels.csv has it now."""
        return DatasetStore(self.store.root).get(self.files[text])


def open_store(root: Path, profile: SiteProfile = DIGITS) -> DatasetStore:
    fmt = profile.format
    return DatasetStore(root, fmt.charset, fmt.length, fmt.case_sensitive)


@pytest.fixture
def dataset(tmp_path: Path) -> Dataset:
    store = open_store(tmp_path / "data")
    files = {text: store.add(DRAWER.png(text), suggestion=suggestion, confidence=confidence).entry.file
             for text, suggestion, confidence in ITEMS}
    return Dataset(store, files)


@pytest.fixture
def serve(page: Page) -> Iterator[Callable[..., str]]:
    """Start the labelling app on a free port of 127.0.0.1 and open it in ``page``."""
    with contextlib.ExitStack() as servers:

        def start(store: DatasetStore, profile: SiteProfile = DIGITS,
                  recognizer: Recognizer | None = None) -> str:
            server = servers.enter_context(
                SiteServer(build_label_app(store, profile, recognizer), port=0))
            page.goto(server.url + "/")
            expect(page.locator("#captcha[data-file], #done:not([hidden])")).to_have_count(1)
            return server.url

        yield start


def shows(page: Page, dataset: Dataset, text: str) -> None:
    expect(page.locator("#captcha")).to_have_attribute("data-file", dataset.files[text])
    expect(page.locator("#work")).to_be_visible()


def test_enter_saves_the_typed_label_and_shows_the_next(page: Page, serve: Callable[..., str],
                                                        dataset: Dataset) -> None:
    serve(dataset.store)
    shows(page, dataset, "1111")
    label = page.locator("#label")
    expect(label).to_be_focused()
    expect(label).to_have_value("")  # no suggestion for this one
    expect(page.locator("#progress")).to_have_text("0 of 4 labelled, 4 remaining")
    page.keyboard.type("1111")
    page.keyboard.press("Enter")
    shows(page, dataset, "3333")
    expect(label).to_be_focused()
    expect(page.locator("#progress")).to_have_text(
        "1 of 4 labelled, 3 remaining (this page: 1 saved)")
    saved = dataset.on_disk("1111")
    assert saved is not None and (saved.label, saved.source, saved.verified) == ("1111", "hand", False)
    assert [dataset.on_disk(text).label for text in ("2222", "3333", "4444")] == ["", "", ""]
    shown = page.locator("#captcha")
    page.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=shown.element_handle())
    assert shown.evaluate("el => el.naturalWidth") == DIGITS.synthetic.width
    assert shown.evaluate("el => getComputedStyle(el).imageRendering") == "pixelated"
    assert shown.bounding_box()["width"] >= 4 * DIGITS.synthetic.width  # scaled up


def test_images_come_least_confident_first_and_skip_saves_nothing(
        page: Page, serve: Callable[..., str], dataset: Dataset) -> None:
    serve(dataset.store)
    seen = []
    for _ in ITEMS:
        shown = page.locator("#captcha").get_attribute("data-file")
        seen.append(next(text for text, file in dataset.files.items() if file == shown))
        page.keyboard.press("Escape")
        if len(seen) < len(ITEMS):
            expect(page.locator("#captcha")).not_to_have_attribute("data-file", shown)
    assert seen == QUEUE_ORDER
    expect(page.locator("#done-text")).to_have_text(
        "Nothing left to label here: 0 of 4 labelled, 4 skipped (0 saved on this page).")
    assert all(dataset.on_disk(text).label == "" for text in dataset.files)
    assert dataset.on_disk("3333").suggestion == "3333"  # a skip leaves the entry as it was
    page.click("#unskip")
    shows(page, dataset, "1111")


def test_the_suggestion_is_prefilled_and_enter_saves_it(page: Page, serve: Callable[..., str],
                                                        dataset: Dataset) -> None:
    dataset.store.set_label(dataset.files["1111"], "1111")
    serve(dataset.store)
    shows(page, dataset, "3333")
    expect(page.locator("#label")).to_have_value("3333")
    expect(page.locator("#label")).to_be_focused()
    expect(page.locator("#reading")).to_have_text("Model reads 3333, confidence 30.0%")
    page.keyboard.press("Enter")
    shows(page, dataset, "4444")
    expect(page.locator("#label")).to_have_value("4444")
    assert dataset.on_disk("3333").label == "3333"


def test_labels_outside_the_format_are_refused(page: Page, serve: Callable[..., str],
                                               dataset: Dataset) -> None:
    url = serve(dataset.store)
    shows(page, dataset, "1111")
    message = page.locator("#message")
    page.keyboard.type("12a4")  # told at once, before Enter
    expect(message).to_have_text("'12a4' has characters outside the charset: a "
                                 "(the profile allows 4 characters of '0123456789')")
    expect(page.locator("#label")).to_have_attribute("aria-invalid", "true")
    page.keyboard.press("Enter")
    page.locator("#label").fill("123")
    page.keyboard.press("Enter")
    expect(message).to_have_text("'123' has 3 characters, expected 4 "
                                 "(the profile allows 4 characters of '0123456789')")
    shows(page, dataset, "1111")
    # the server is the authority: the same label sent past the page is refused too
    refused = page.request.post(url + "/api/save", data={"file": dataset.files["1111"],
                                                         "label": "12a4"})
    assert refused.status == 422
    assert refused.json() == {"error": "'12a4' has characters outside the charset: a (the profile "
                                       "allows 4 characters of '0123456789'); nothing saved"}
    assert all(entry.label == "" for entry in DatasetStore(dataset.store.root).entries())
    not_json = page.request.post(url + "/api/save", form={"file": dataset.files["1111"],
                                                         "label": "1111"})
    assert not_json.status == 415
    assert dataset.on_disk("1111").label == ""


def test_a_label_conflict_is_shown_and_nothing_replaced(page: Page, serve: Callable[..., str],
                                                        dataset: Dataset) -> None:
    serve(dataset.store)
    shows(page, dataset, "1111")
    dataset.store.set_label(dataset.files["1111"], "1111", source="site", verified=True)
    page.keyboard.type("7777")
    page.keyboard.press("Enter")
    expect(page.locator("#message")).to_have_text(
        f"{dataset.files['1111']}: already labelled '1111' (by site); not replacing it with "
        "'7777' (press Esc to move on; this page never replaces a label)")
    shows(page, dataset, "1111")
    assert dataset.on_disk("1111").label == "1111"
    page.keyboard.press("Escape")
    shows(page, dataset, "3333")
    assert dataset.on_disk("1111").label == "1111"


def test_undo_restores_the_previous_entry(page: Page, serve: Callable[..., str],
                                          dataset: Dataset) -> None:
    before = dataset.on_disk("3333")
    dataset.store.set_label(dataset.files["1111"], "1111")  # not this page's: never undone
    serve(dataset.store)
    shows(page, dataset, "3333")
    expect(page.locator("#undo")).to_be_disabled()
    page.keyboard.type("3833")  # replaces the selected suggestion
    page.keyboard.press("Enter")
    shows(page, dataset, "4444")
    assert dataset.on_disk("3333").label == "3833"
    page.click("#undo")
    shows(page, dataset, "3333")
    expect(page.locator("#label")).to_have_value("3833")  # to correct it
    expect(page.locator("#label")).to_be_focused()
    assert dataset.on_disk("3333") == before  # exactly as it was: no label, same suggestion
    page.keyboard.type("3333")
    page.keyboard.press("Enter")
    shows(page, dataset, "4444")
    page.keyboard.press("Control+z")
    shows(page, dataset, "3333")
    assert dataset.on_disk("3333") == before
    page.keyboard.press("Control+z")
    expect(page.locator("#message")).to_have_text(
        "nothing to undo: no label saved on this page since the server started")
    assert dataset.on_disk("1111").label == "1111"


def test_images_outside_the_dataset_are_404(page: Page, serve: Callable[..., str],
                                            dataset: Dataset, tmp_path: Path) -> None:
    url = serve(dataset.store)
    (tmp_path / "secret.png").write_bytes(DRAWER.png("9999"))
    for path in ("../labels.csv", "..%2Flabels.csv", "%2E%2E%2Flabels.csv", "labels.csv",
                 "..%2Fsecret.png", "0000.png", "%2Fetc%2Fpasswd"):
        response = page.request.get(f"{url}/image/{path}")
        assert response.status == 404, path
    file = dataset.files["1111"]
    served = page.request.get(f"{url}/image/{file}")
    assert served.status == 200 and served.headers["content-type"] == "image/png"
    assert served.body() == (dataset.store.root / file).read_bytes()


def test_an_empty_queue_says_so(page: Page, serve: Callable[..., str], dataset: Dataset) -> None:
    for text in ("1111", "2222", "4444"):
        dataset.store.set_label(dataset.files[text], text)
    serve(dataset.store)
    page.keyboard.press("Enter")  # the suggestion, 3333
    expect(page.locator("#done-text")).to_have_text(
        "Nothing left to label: all 4 images are labelled (1 on this page).")
    expect(page.locator("#work")).to_be_hidden()
    expect(page.locator("#progress")).to_have_text(
        "4 of 4 labelled, 0 remaining (this page: 1 saved)")


def test_case_is_folded_when_the_profile_ignores_it(page: Page, serve: Callable[..., str],
                                                    tmp_path: Path) -> None:
    store = open_store(tmp_path / "data", EXAMPLE)
    first = store.add(CaptchaDrawer().png("AB12")).entry.file
    second = store.add(CaptchaDrawer().png("CD34")).entry.file
    url = serve(store, EXAMPLE)
    page.keyboard.type("ab12")
    expect(page.locator("#label")).to_have_value("AB12")  # what will be saved
    page.keyboard.press("Enter")
    expect(page.locator("#captcha")).not_to_have_attribute("data-file", first)
    saved = page.request.post(url + "/api/save", data={"file": second, "label": " cd34x "})
    assert saved.status == 200 and saved.json()["saved"] == {"file": second, "label": "CD34X"}
    assert [e.label for e in DatasetStore(store.root).entries()] == ["AB12", "CD34X"]


def test_a_real_model_prefills_its_readings(page: Page, serve: Callable[..., str],
                                            tmp_path: Path) -> None:
    recognizer = Recognizer(ROOT / "solver" / "shipped" / "models" / "digits", DIGITS)
    store = open_store(tmp_path / "data")
    truth = {store.add(DRAWER.png(text)).entry.file: text for text in ("0427", "9158", "3306", "7741")}
    serve(store, DIGITS, recognizer)
    entries = store.entries()
    assert all(e.suggestion and e.confidence is not None for e in entries)
    assert sum(e.suggestion == truth[e.file] for e in entries) >= 3  # 99.6% on such images
    on_disk = DatasetStore(store.root).queue()
    assert [e.confidence for e in on_disk] == sorted(e.confidence for e in entries)
    least_sure = on_disk[0]
    expect(page.locator("#captcha")).to_have_attribute("data-file", least_sure.file)
    expect(page.locator("#label")).to_have_value(least_sure.suggestion)
    expect(page.locator("#reading")).to_contain_text(f"Model reads {least_sure.suggestion}, "
                                                     "confidence ")
    page.keyboard.press("Enter")
    expect(page.locator("#captcha")).to_have_attribute("data-file", on_disk[1].file)
    assert DatasetStore(store.root).get(least_sure.file).label == least_sure.suggestion
