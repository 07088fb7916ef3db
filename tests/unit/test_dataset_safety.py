"""Nothing a user labelled is lost: missing images, read-only verbs, the journal, hostile manifests."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from solver.cli import main
from solver.dataset import JOURNAL, DatasetError, DatasetStore, read_labelled_folder
from solver.drawing import CaptchaDrawer

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ROOT / "solver" / "shipped" / "profiles"
DRAWER = CaptchaDrawer(width=120, height=45, font_sizes=(32,))


def labelled_store(folder: Path, count: int) -> DatasetStore:
    store = DatasetStore(folder, "0123456789", (4, 4))
    for i in range(count):
        store.add(DRAWER.png(f"{i:04d}"), f"{i:04d}", source="site", verified=True)
    return store


def digits_site(folder: Path) -> list[str]:
    return ["--site", "digits", "--profiles-dir", str(PROFILES), "--data", str(folder)]


def test_a_read_only_verb_never_rewrites_the_manifest_when_images_are_away(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "d"
    labelled_store(data, 6)
    manifest = (data / "labels.csv").read_bytes()
    away = tmp_path / "away"
    away.mkdir()
    for image in data.glob("*.png"):  # an unmounted disk, a wrong working folder
        shutil.move(image, away / image.name)
    assert main(["dataset", "stats", *digits_site(data)]) == 0
    out = capsys.readouterr().out
    assert "6 images, 6 labelled (6 verified by the site), 0 unlabelled; 6 of them missing" in out
    assert "`solver dataset prune` drops them" in out
    assert "6 images listed in labels.csv are missing" in caplog.text
    assert (data / "labels.csv").read_bytes() == manifest
    assert sorted(p.name for p in data.iterdir()) == ["labels.csv"]  # nothing written at all
    # a verb that writes (here, a store opened for labelling) keeps the rows too
    store = DatasetStore(data, "0123456789", (4, 4))
    assert len(store.missing()) == 6 and store.samples() == [] and store.queue() == []
    assert (data / "labels.csv").read_bytes() == manifest
    for image in away.iterdir():
        shutil.move(image, data / image.name)
    back = DatasetStore(data)
    assert sorted(s.label for s in back.samples(verified_only=True)) == [f"{i:04d}" for i in range(6)]
    assert back.missing() == [] and back.recovery.stray == []


def test_prune_drops_missing_rows_only_when_asked(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "d"
    store = labelled_store(data, 3)
    gone = store.entries()[0].file
    (data / gone).unlink()
    assert main(["dataset", "prune", *digits_site(data)]) == 1
    assert "1 rows would be dropped (1 with a label); run again with --yes" in capsys.readouterr().err
    assert len(DatasetStore(data)) == 3
    assert main(["dataset", "prune", *digits_site(data), "--yes"]) == 0
    assert "dropped 1 rows whose images are missing (1 labels with them)" in capsys.readouterr().out
    assert gone not in {e.file for e in DatasetStore(data).entries()} and len(DatasetStore(data)) == 2
    assert main(["dataset", "prune", *digits_site(data)]) == 0
    assert "nothing to prune" in capsys.readouterr().out


def test_the_same_image_added_again_brings_a_missing_row_back(tmp_path: Path) -> None:
    image = DRAWER.png("0000")
    entry = DatasetStore(tmp_path).add(image, "0000").entry
    (tmp_path / entry.file).unlink()
    reopened = DatasetStore(tmp_path, "0123456789", (4, 4))
    assert reopened.add(image).new is False
    assert reopened.missing() == [] and reopened.get(entry.file).label == "0000"


def test_read_only_stores_refuse_to_write(tmp_path: Path) -> None:
    labelled_store(tmp_path / "d", 1)
    store = DatasetStore(tmp_path / "d", read_only=True)
    with pytest.raises(DatasetError, match="opened read-only; nothing was changed"):
        store.add(DRAWER.png("1234"), "1234")
    with pytest.raises(DatasetError, match=r"no dataset there yet \(`solver collect`"):
        DatasetStore(tmp_path / "nowhere", read_only=True)
    assert not (tmp_path / "nowhere").exists()


def test_each_batched_label_is_on_disk_when_add_returns(tmp_path: Path) -> None:
    """A child adds labels inside a batch and says so after each; a kill -9 then loses none."""
    child = textwrap.dedent(f"""
        import sys
        from solver.dataset import DatasetStore
        from solver.drawing import CaptchaDrawer
        drawer = CaptchaDrawer(width=120, height=45, font_sizes=(32,))
        store = DatasetStore(sys.argv[1], "0123456789", (4, 4))
        with store.batch(flush_seconds=3600):
            for i in range(10_000):
                store.add(drawer.png(f"{{i:04d}}"), f"{{i:04d}}", source="site", verified=True)
                print(i, flush=True)
    """)
    process = subprocess.Popen([sys.executable, "-c", child, str(tmp_path)], stdout=subprocess.PIPE,
                               text=True, cwd=ROOT)
    assert process.stdout is not None
    confirmed = [process.stdout.readline() for _ in range(25)]
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    process.stdout.close()
    assert (tmp_path / JOURNAL).is_file()  # the manifest was not rewritten in the batch
    reopened = DatasetStore(tmp_path, "0123456789", (4, 4), read_only=True)
    labels = {s.label for s in reopened.samples(verified_only=True)}
    assert {f"{int(line):04d}" for line in confirmed} <= labels
    assert reopened.recovery.journal_changes >= 25
    assert read_labelled_folder(tmp_path) and len(read_labelled_folder(tmp_path)) == len(labels)
    assert (tmp_path / JOURNAL).is_file()  # read-only: still there
    writable = DatasetStore(tmp_path, "0123456789", (4, 4))
    assert not (tmp_path / JOURNAL).exists()  # folded into labels.csv
    assert {s.label for s in writable.samples()} == labels
    with (tmp_path / "labels.csv").open(newline="") as handle:
        assert len(list(csv.DictReader(handle))) == len(writable)


def test_a_journal_line_cut_short_by_a_kill_is_ignored(tmp_path: Path) -> None:
    store = labelled_store(tmp_path, 2)
    first, second = store.entries()
    (tmp_path / JOURNAL).write_text(f"{first.file},1111,hand,false,,,\n{second.file},22")
    reopened = DatasetStore(tmp_path, read_only=True)
    assert reopened.get(first.file).label == "1111" and reopened.get(second.file).label == "0001"
    assert reopened.recovery.journal_changes == 1


def test_import_refuses_paths_outside_the_folder_without_reading_them(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    source = tmp_path / "import"
    source.mkdir()
    (source / "ok.png").write_bytes(DRAWER.png("1234"))
    for listed in ("/etc/passwd", str(secret), "../secret.txt"):
        (source / "labels.csv").write_text(f"file,label\nok.png,1234\n{listed},5678\n")
        assert main(["dataset", "import", *digits_site(tmp_path / "d"), str(source), "--quiet"]) == 1
        err = capsys.readouterr().err
        assert f"1 listed images are outside {source} (line 3: {listed})" in err
        assert "Nothing was imported." in err and "root:x" not in err
        assert len(DatasetStore(tmp_path / "d")) == 0
    (source / "labels.csv").unlink()
    (source / "link.png").symlink_to(secret)  # a link in a label-in-file-name folder, too
    assert main(["dataset", "import", *digits_site(tmp_path / "d"), str(source), "--quiet"]) == 1
    assert "link.png" in capsys.readouterr().err
    # a split list of the project's own points outside with ../ and is read for training
    (source / "link.png").unlink()
    listed = tmp_path / "list"
    listed.mkdir()
    (listed / "labels.csv").write_text("file,label\n../import/ok.png,1234\n")
    assert [s.label for s in read_labelled_folder(listed)] == ["1234"]


def test_a_spreadsheet_csv_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_bytes(DRAWER.png("1234"))
    (tmp_path / "labels.csv").write_bytes("\ufefffile,label\r\nx.png,1234\r\n\r\n".encode())
    assert [(s.path.name, s.label) for s in read_labelled_folder(tmp_path)] == [("x.png", "1234")]
    store = DatasetStore(tmp_path / "d", "0123456789", (4, 4))
    assert store.import_folder(tmp_path)["added"] == 1


@pytest.mark.parametrize("content, message", [
    ("file,label,source,verified,when,suggestion,confidence\n"
     "a.png,1234,hand,false,,1234,abc\n",
     "labels.csv: line 2, column confidence: 'abc' is not a number (a model's confidence from "
     "0 to 1, or empty); fix or empty the cell"),
    ("file,label,confidence\na.png,1234,nan\n", "line 2, column confidence: 'nan' is not a number"),
    ("file,label,verified\na.png,1234,maybe\n", "line 2, column verified: 'maybe' is not true or false"),
    ("file,label\n../../etc/passwd,1234\n",
     "line 2, column file: '../../etc/passwd' is not a file name in this folder"),
])
def test_a_bad_cell_is_named_by_line_and_column(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "labels.csv").write_text(content)
    with pytest.raises(DatasetError) as caught:
        DatasetStore(tmp_path)
    assert message in str(caught.value)


def test_a_manifest_that_is_not_utf8_is_named_by_line(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "labels.csv").write_bytes(b"file,label\na.png,1234\nb.png,12\xe94\n")
    assert main(["dataset", "stats", *digits_site(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'labels.csv'}: line 3 is not UTF-8 text (byte 0xe9); "
                          "save the file as UTF-8")
    assert "Traceback" not in err
    with pytest.raises(DatasetError, match="line 3 is not UTF-8 text"):
        read_labelled_folder(tmp_path)


def test_labels_with_commas_and_quotes_survive_export_and_split(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path / "d")
    store.add(DRAWER.png("a,b"), 'a,"b')
    assert store.export(tmp_path / "e") == 1
    assert [s.label for s in read_labelled_folder(tmp_path / "e")] == ['a,"b']


def test_the_journal_holds_one_line_per_change_until_the_batch_ends(tmp_path: Path) -> None:
    """Not a timing assertion: the journal holds one line per change and is gone after the batch."""
    store = DatasetStore(tmp_path)
    images = [DRAWER.png(f"{i:04d}") for i in range(5)]
    with store.batch(flush_seconds=3600):
        for image in images:
            store.add(image, "x")
        assert len((tmp_path / JOURNAL).read_text().splitlines()) == 5
        assert len(DatasetStore(tmp_path, read_only=True).samples()) == 5
    assert not (tmp_path / JOURNAL).exists()
    assert os.path.getsize(tmp_path / "labels.csv") > 0
