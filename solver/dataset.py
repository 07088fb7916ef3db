"""Labelled captchas on disk: reading the common layouts and checking labels.

A labelled folder is either

* a folder with ``labels.csv`` whose header names at least ``file`` and
  ``label`` (the project's own datasets add ``source``, ``verified`` and ``when``),
* or a folder of images whose file names are their labels (``2b827.png``).

Labels are checked against a profile's format; the bad ones are reported with
counts and examples, never dropped silently.

    >>> samples = read_labelled_folder("../shared/datasets/kaggle_v2")  # doctest: +SKIP
    >>> samples[0].label                                                # doctest: +SKIP
    '226md'
"""

from __future__ import annotations

import csv
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from solver.errors import SolverError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp")
MANIFEST = "labels.csv"


class DatasetError(SolverError):
    """A labelled folder that cannot be read."""


@dataclass(frozen=True)
class Sample:
    """One labelled image."""

    path: Path
    label: str


def read_labelled_folder(folder: str | os.PathLike[str]) -> list[Sample]:
    """Every labelled image of a folder, in a stable order (see the module's doc)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder (give a folder of labelled captchas)")
    manifest = folder / MANIFEST
    if manifest.is_file():
        return _read_manifest(folder, manifest)
    samples = [Sample(path, path.stem) for path in sorted(folder.iterdir())
               if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()]
    if not samples:
        raise DatasetError(f"{folder}: no {MANIFEST} and no images (put the images there, named "
                           f"by their label like 2b827.png, or add a {MANIFEST} with file,label)")
    return samples


def _read_manifest(folder: Path, manifest: Path) -> list[Sample]:
    with manifest.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        if "file" not in columns or "label" not in columns:
            raise DatasetError(f"{manifest}: the header is {','.join(columns) or '(empty)'} "
                               "(it must name the columns file and label, e.g. file,label)")
        samples, missing = [], []
        for row in reader:
            if not row["file"]:
                continue
            path = folder / row["file"]
            if not path.is_file():
                missing.append(row["file"])
                continue
            samples.append(Sample(path, row["label"] or ""))
    if missing:
        shown = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
        raise DatasetError(f"{manifest}: {len(missing)} listed files are missing ({shown}); "
                           "restore them or remove their rows")
    return samples


@dataclass
class LabelReport:
    """What a label check kept and why it refused the rest."""

    kept: list[Sample] = field(default_factory=list)
    refused: dict[str, list[Sample]] = field(default_factory=lambda: defaultdict(list))

    @property
    def refused_count(self) -> int:
        return sum(len(samples) for samples in self.refused.values())

    def lines(self, examples: int = 3) -> list[str]:
        out = [f"{len(self.kept)} labels kept, {self.refused_count} refused"]
        for reason, samples in sorted(self.refused.items(), key=lambda item: -len(item[1])):
            shown = ", ".join(f"{s.path.name}={s.label!r}" for s in samples[:examples])
            out.append(f"  {len(samples)} {reason}: {shown}")
        return out


def check_labels(samples: list[Sample], charset: str, min_length: int, max_length: int,
                 case_sensitive: bool = True) -> LabelReport:
    """Split samples into those whose labels fit the format and those that do not."""
    from solver.charset import Charset

    alphabet = Charset(charset, case_sensitive)
    report = LabelReport()
    for sample in samples:
        label = alphabet.normalise(sample.label)
        if not label:
            report.refused["empty labels"].append(sample)
        elif not min_length <= len(label) <= max_length:
            report.refused[f"with a length outside {min_length}..{max_length}"].append(sample)
        elif any(ch not in alphabet.characters for ch in label):
            report.refused["with characters outside the charset"].append(sample)
        else:
            report.kept.append(Sample(sample.path, label))
    return report


def label_counts(samples: list[Sample]) -> Counter[str]:
    """How often each character appears across the labels."""
    return Counter(ch for sample in samples for ch in sample.label)
