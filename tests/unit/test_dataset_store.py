"""DatasetStore: content-hash names, atomic manifest, no silent relabels, recovery, chores."""

from __future__ import annotations

import csv
import threading
from pathlib import Path

import pytest

from solver.dataset import (
    DatasetError,
    DatasetStore,
    LabelConflictError,
    read_labelled_folder,
    split_samples,
    write_split,
)
from solver.drawing import CaptchaDrawer
from solver.imaging import ImageError

DRAWER = CaptchaDrawer(width=120, height=45, font_sizes=(32,))
DIGITS = "0123456789"


def png(text: str) -> bytes:
    return DRAWER.png(text)


def rows(store: DatasetStore) -> list[dict[str, str]]:
    with store.manifest.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_same_image_is_stored_once(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path)
    image = png("1234")
    first = store.add(image, "1234", source="site", verified=True)
    again = store.add(image)
    assert first.new and not again.new
    assert first.entry.file.endswith(".png") and len(first.entry.file) == 28
    assert (tmp_path / first.entry.file).read_bytes() == image
    assert [r["label"] for r in rows(store)] == ["1234"]
    assert rows(store)[0]["verified"] == "true"


def test_labels_are_never_replaced_silently(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path, DIGITS, (4, 4))
    entry = store.add(png("1234"), "1234", source="hand").entry
    with pytest.raises(LabelConflictError) as caught:
        store.set_label(entry.file, "9999", source="model")
    assert str(caught.value) == (
        f"{tmp_path / entry.file}: already labelled '1234' (by hand); not replacing it with "
        "'9999' (pass --force to replace labels)")
    assert store.get(entry.file).label == "1234"
    assert store.set_label(entry.file, "9999", force=True).label == "9999"


def test_unverified_suggestion_does_not_downgrade_a_verified_label(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path)
    entry = store.add(png("1234"), "1234", source="site", verified=True).entry
    store.set_label(entry.file, "1234", source="model", verified=False)
    assert store.get(entry.file).verified and store.get(entry.file).source == "site"


def test_labels_outside_the_format_are_refused(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path, DIGITS, (4, 4))
    with pytest.raises(DatasetError, match=r"label '12a4' refused: with characters outside the "
                                           r"charset \(the profile allows 4..4 characters"):
        store.add(png("12a4"), "12a4")
    with pytest.raises(DatasetError, match="with a length outside 4..4"):
        store.add(png("123"), "123")
    assert len(store) == 0 and not list(tmp_path.glob("*.png"))


def test_non_images_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path)
    with pytest.raises(ImageError):
        store.add(b"<html>503</html>", "1234")
    assert len(store) == 0 and sorted(p.name for p in tmp_path.iterdir()) == []


def test_interrupted_write_is_recovered(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path)
    store.add(png("1111"), "1111")
    # an interruption after the image was written but before the manifest was
    (tmp_path / "0123456789abcdef01234567.png").write_bytes(png("2222"))
    # and a temporary manifest left behind by an interrupted rewrite
    (tmp_path / ".labels.csv.x.tmp").write_text("garbage")
    reopened = DatasetStore(tmp_path)
    assert reopened.stats() == {"images": 2, "labelled": 1, "verified": 0, "unlabelled": 1,
                                "suggested": 0, "missing": 0}
    assert reopened.recovery.stray == ["0123456789abcdef01234567.png"]
    assert reopened.get("0123456789abcdef01234567.png").source == "recovered"
    assert len(rows(reopened)) == 2
    assert not (tmp_path / ".labels.csv.x.tmp").exists()


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path, DIGITS, (4, 4))
    images = [(f"{i:04d}", png(f"{i:04d}")) for i in range(40)]

    def work(part: list[tuple[str, bytes]]) -> None:
        for label, image in part:
            store.add(image, label)
            store.add(image)  # duplicates from another page

    threads = [threading.Thread(target=work, args=(images[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(rows(store)) == 40
    assert sorted(r["label"] for r in rows(store)) == sorted(label for label, _ in images)
    assert DatasetStore(tmp_path).stats()["labelled"] == 40


def test_import_export_round_trip(tmp_path: Path) -> None:
    source = tmp_path / "named"
    source.mkdir()
    for label in ("1234", "5678", "0000"):
        (source / f"{label}.png").write_bytes(png(label))
    (source / "12.png").write_bytes(png("12"))  # too short for the profile
    store = DatasetStore(tmp_path / "data", DIGITS, (4, 4))
    assert store.import_folder(source) == {"added": 3, "duplicates": 0, "conflicts": 0, "refused": 1}
    assert store.import_folder(source)["duplicates"] == 3
    assert store.export(tmp_path / "as_csv", layout="csv") == 3
    assert store.export(tmp_path / "as_names", layout="names") == 3
    for folder in ("as_csv", "as_names"):
        labels = sorted(s.label for s in read_labelled_folder(tmp_path / folder))
        assert labels == ["0000", "1234", "5678"]


def test_split_is_seeded_and_disjoint(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path)
    for i in range(50):
        store.add(png(f"{i:04d}"), f"{i:04d}")
    train, test = split_samples(store.samples(), 0.2, seed=3)
    again_train, again_test = split_samples(list(reversed(store.samples())), 0.2, seed=3)
    assert len(test) == 10 and len(train) == 40
    assert [s.path for s in test] == [s.path for s in again_test]
    assert not {s.path for s in train} & {s.path for s in test}
    assert [s.path for s in split_samples(store.samples(), 0.2, seed=4)[1]] != [s.path for s in test]
    with pytest.raises(DatasetError, match="between 0 and 1"):
        split_samples(store.samples(), 1.5, seed=1)


def test_written_split_folders_are_labelled_folders(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path / "data")
    for i in range(20):
        store.add(png(f"{i:04d}"), f"{i:04d}")
    train_dir, test_dir = write_split(store.samples(), tmp_path / "split", 0.25, seed=9)
    train, test = read_labelled_folder(train_dir), read_labelled_folder(test_dir)
    assert (len(train), len(test)) == (15, 5)
    assert {s.label for s in train} | {s.label for s in test} == {f"{i:04d}" for i in range(20)}
    assert all(s.path.resolve().parent == (tmp_path / "data").resolve() for s in train + test)


def test_suggestions_wait_in_a_queue_least_confident_first(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path, DIGITS, (4, 4))
    sure = store.add(png("1111"), suggestion="1111", confidence=0.99).entry
    unsure = store.add(png("2222"), suggestion="2229", confidence=0.41).entry
    bare = store.add(png("3333")).entry
    done = store.add(png("4444"), "4444", source="hand").entry
    assert [e.file for e in store.queue()] == [bare.file, unsure.file, sure.file]
    assert store.get(unsure.file).label == ""  # a suggestion is not a label
    assert store.stats()["suggested"] == 2
    reopened = DatasetStore(tmp_path, DIGITS, (4, 4))  # suggestions survive in the manifest
    assert reopened.get(unsure.file).suggestion == "2229"
    assert reopened.get(unsure.file).confidence == pytest.approx(0.41)
    assert [s.label for s in read_labelled_folder(tmp_path) if s.label] == ["4444"]
    assert done.file not in {e.file for e in reopened.queue()}


def test_restore_undoes_a_label(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path, DIGITS, (4, 4))
    before = store.add(png("5678"), suggestion="5673", confidence=0.3).entry
    store.set_label(before.file, "5678", source="hand")
    assert store.restore(before) == before
    assert DatasetStore(tmp_path).get(before.file) == before
