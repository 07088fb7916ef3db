"""Reading labelled folders and checking labels against a format."""

from __future__ import annotations

from pathlib import Path

import pytest

from solver.dataset import DatasetError, Sample, check_labels, read_labelled_folder
from solver.drawing import CaptchaDrawer

SHARED = Path(__file__).resolve().parents[3] / "shared" / "datasets"


def write_images(folder: Path, names: list[str]) -> None:
    drawer = CaptchaDrawer(width=80, height=30, font_sizes=(24,))
    for name in names:
        (folder / name).write_bytes(drawer.png("AB"))


def test_label_in_file_name(tmp_path: Path) -> None:
    write_images(tmp_path, ["b2.png", "a1.jpg", "notes.txt"])
    samples = read_labelled_folder(tmp_path)
    assert [(s.path.name, s.label) for s in samples] == [("a1.jpg", "a1"), ("b2.png", "b2")]


def test_labels_csv_with_extra_columns(tmp_path: Path) -> None:
    write_images(tmp_path, ["x.png", "y.png"])
    (tmp_path / "labels.csv").write_text(
        "file,label,source,verified\nx.png,AB12,site,true\ny.png,CD34,hand,false\n")
    assert [(s.path.name, s.label) for s in read_labelled_folder(tmp_path)] == [
        ("x.png", "AB12"), ("y.png", "CD34")]


def test_manifest_problems_are_explained(tmp_path: Path) -> None:
    write_images(tmp_path, ["x.png"])
    (tmp_path / "labels.csv").write_text("name,text\nx.png,AB\n")
    with pytest.raises(DatasetError, match=r"its first line names the columns name,text; a "
                                           r"manifest's first line must name at least file and label"):
        read_labelled_folder(tmp_path)
    (tmp_path / "labels.csv").write_text("file,label\nx.png,AB\ngone.png,CD\n")
    with pytest.raises(DatasetError, match=r"1 listed files are missing \(gone.png\)"):
        read_labelled_folder(tmp_path)
    with pytest.raises(DatasetError, match="no such folder"):
        read_labelled_folder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no labels.csv and no images"):
        read_labelled_folder(tmp_path / "empty")


def test_check_labels_reports_counts_and_examples(tmp_path: Path) -> None:
    samples = [Sample(tmp_path / f"{i}.png", label) for i, label in
               enumerate(["ab12", "AB1", "ABCDEFG", "AB!2", "", "zz99"])]
    report = check_labels(samples, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", 4, 6,
                          case_sensitive=False)
    assert [s.label for s in report.kept] == ["AB12", "ZZ99"]  # case folded
    assert report.refused_count == 4
    assert report.lines() == [
        "2 labels kept, 4 refused",
        "  2 with a length outside 4..6: 1.png='AB1', 2.png='ABCDEFG'",
        "  1 with characters outside the charset: 3.png='AB!2'",
        "  1 empty labels: 4.png=''",
    ]


@pytest.mark.skipif(not (SHARED / "kaggle_v2").is_dir(), reason="../shared/datasets not present")
def test_shared_datasets_read_and_check() -> None:
    kaggle = read_labelled_folder(SHARED / "kaggle_v2")
    assert len(kaggle) == 1040
    assert check_labels(kaggle, "2345678bcdefgmnpwxy", 5, 5).refused_count == 0
    henan = read_labelled_folder(SHARED / "henan_digits")
    assert len(henan) == 9453 and henan[0].label == "5751"
