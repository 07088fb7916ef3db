"""Labelled captchas on disk: reading the common layouts and checking labels.

A labelled folder is either

* a folder with ``labels.csv`` whose header names at least ``file`` and
  ``label`` (the project's own datasets add ``source``, ``verified``, ``when``,
  ``suggestion`` and ``confidence``),
* or a folder of images whose file names are their labels (``2b827.png``).

Rows whose ``source`` is ``pseudo`` (a model's confident guess, see
``solver dataset pseudo-label``) are left out unless asked for
(``pseudo_labels=True``), so training, evaluation and splits read only real
labels by default.

Labels are checked against a profile's format; the bad ones are reported with
counts and examples, never dropped silently.

    >>> samples = read_labelled_folder("../shared/datasets/kaggle_v2")  # doctest: +SKIP
    >>> samples[0].label                                                # doctest: +SKIP
    '226md'
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import logging
import os
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from solver.errors import SolverError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp")
MANIFEST = "labels.csv"
#: the ``source`` of a label that a model guessed with high confidence (self-training)
PSEUDO_SOURCE = "pseudo"


class DatasetError(SolverError):
    """A labelled folder that cannot be read."""


@dataclass(frozen=True)
class Sample:
    """One labelled image."""

    path: Path
    label: str
    pseudo: bool = False  # a model's guess (source pseudo), not a label a person or the site gave


def read_labelled_folder(folder: str | os.PathLike[str], pseudo_labels: bool = False) -> list[Sample]:
    """Every labelled image of a folder, in a stable order (see the module's doc).

    Pseudo-labels (rows with source ``pseudo``) are read only with ``pseudo_labels``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder (give a folder of labelled captchas)")
    manifest = folder / MANIFEST
    if manifest.is_file():
        samples = _read_manifest(folder, manifest)
        return samples if pseudo_labels else [s for s in samples if not s.pseudo]
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
            samples.append(Sample(path, row["label"] or "",
                                  pseudo=(row.get("source") or "") == PSEUDO_SOURCE))
    if missing:
        shown = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
        raise DatasetError(f"{manifest}: {len(missing)} listed files are missing ({shown}); "
                           "restore them or remove their rows")
    return samples


def read_corrections(path: str | os.PathLike[str]) -> dict[str, str]:
    """Label fixes from a CSV with ``file`` and ``label`` columns (others are ignored).

    ``file`` is an image's file name; a fix applies wherever that image is read,
    whichever folder or split list points at it.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if not {"file", "label"} <= set(reader.fieldnames or []):
                raise DatasetError(f"{path}: the header must name file and label "
                                   f"(found {', '.join(reader.fieldnames or []) or 'nothing'})")
            fixes = {Path(row["file"]).name: row["label"].strip() for row in reader}
    except OSError as error:
        raise DatasetError(f"{path}: cannot read the corrections ({error.strerror})") from error
    return fixes


def apply_corrections(samples: list[Sample], fixes: dict[str, str]) -> tuple[list[Sample], int]:
    """``samples`` with their labels replaced by ``fixes`` (by file name), and how many changed."""
    changed = 0
    out = []
    for sample in samples:
        label = fixes.get(sample.path.name, sample.label)
        changed += label != sample.label
        out.append(dataclasses.replace(sample, label=label) if label != sample.label else sample)
    return out, changed


@dataclass
class LabelReport:
    """What a label check kept and why it refused the rest."""

    kept: list[Sample] = field(default_factory=list)
    refused: dict[str, list[Sample]] = field(default_factory=lambda: defaultdict(list))
    pseudo_left_out: int = 0  # pseudo-labels not read (training without --pseudo-labels)

    @property
    def refused_count(self) -> int:
        return sum(len(samples) for samples in self.refused.values())

    def lines(self, examples: int = 3) -> list[str]:
        out = [f"{len(self.kept)} labels kept, {self.refused_count} refused"]
        for reason, samples in sorted(self.refused.items(), key=lambda item: -len(item[1])):
            shown = ", ".join(f"{s.path.name}={s.label!r}" for s in samples[:examples])
            out.append(f"  {len(samples)} {reason}: {shown}")
        if self.pseudo_left_out:
            out.append(f"  {self.pseudo_left_out} pseudo-labels left out (--pseudo-labels uses them)")
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
            report.kept.append(dataclasses.replace(sample, label=label))
    return report


def label_counts(samples: list[Sample]) -> Counter[str]:
    """How often each character appears across the labels."""
    return Counter(ch for sample in samples for ch in sample.label)


# ---------------------------------------------------------------------------
# the project's own dataset folder

MANIFEST_COLUMNS = ("file", "label", "source", "verified", "when", "suggestion", "confidence")
_SUFFIX_OF_FORMAT = {"PNG": ".png", "JPEG": ".jpg", "GIF": ".gif", "BMP": ".bmp", "WEBP": ".webp"}


class LabelConflictError(DatasetError):
    """A label would replace a different one without ``force``."""


@dataclass(frozen=True)
class Entry:
    """One row of a dataset's manifest."""

    file: str
    label: str = ""
    source: str = ""
    verified: bool = False
    when: str = ""
    suggestion: str = ""  # a model's reading, for a person (or the site) to confirm
    confidence: float | None = None  # the model's confidence in ``suggestion``

    @property
    def needs_label(self) -> bool:
        return not self.label


@dataclass(frozen=True)
class Added:
    """What :meth:`DatasetStore.add` did with an image."""

    entry: Entry
    new: bool  # False: the same image was already there


class DatasetStore:
    """A dataset folder: images named by content hash, and ``labels.csv``.

    Every change writes the image first, then rewrites the manifest atomically
    (write a temporary file, then rename), so an interruption at any moment
    loses nothing: an image on disk that the manifest does not list yet is
    picked up, unlabelled, the next time the store opens. The same image is
    stored once. A label never replaces a different one without ``force``.

        store = DatasetStore("data/example")
        store.add(png_bytes, label="7K2Q", source="site", verified=True)
    """

    def __init__(self, root: str | os.PathLike[str], charset: str | None = None,
                 length: tuple[int, int] | None = None, case_sensitive: bool = True) -> None:
        import threading

        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.manifest = self.root / MANIFEST
        self._format = (charset, length, case_sensitive)
        self._lock = threading.RLock()
        self._entries: dict[str, Entry] = {}
        self._batching = 0
        self._dirty = False
        self._flushed_at = 0.0
        self._load()

    # -- reading

    def _load(self) -> None:
        for leftover in self.root.glob(".*.tmp"):  # from a write interrupted before its rename
            leftover.unlink(missing_ok=True)
        if self.manifest.is_file():
            with self.manifest.open(newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                if reader.fieldnames is None or "file" not in reader.fieldnames:
                    raise DatasetError(f"{self.manifest}: not a dataset manifest (its header must "
                                       f"be {','.join(MANIFEST_COLUMNS)}); move it away")
                for row in reader:
                    confidence = row.get("confidence") or ""
                    self._entries[row["file"]] = Entry(
                        file=row["file"], label=row.get("label") or "",
                        source=row.get("source") or "",
                        verified=(row.get("verified") or "").lower() == "true",
                        when=row.get("when") or "", suggestion=row.get("suggestion") or "",
                        confidence=float(confidence) if confidence else None)
        listed = set(self._entries)
        stray = [path.name for path in sorted(self.root.iterdir())
                 if path.suffix.lower() in IMAGE_SUFFIXES and path.name not in listed]
        for name in stray:  # written just before an interruption: keep it, unlabelled
            self._entries[name] = Entry(file=name, source="recovered", when=_now())
        gone = [name for name in listed if not (self.root / name).is_file()]
        if gone:
            logger.warning("%s: %d images listed in %s are missing; dropping their rows",
                           self.root, len(gone), MANIFEST)
            for name in gone:
                del self._entries[name]
        if stray or gone:
            self._write_manifest()

    def entries(self) -> list[Entry]:
        with self._lock:
            return list(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, file: str) -> Entry | None:
        return self._entries.get(file)

    def samples(self, verified_only: bool = False, pseudo_labels: bool = False) -> list[Sample]:
        """The labelled images, as training samples; pseudo-labels only with ``pseudo_labels``."""
        return [Sample(self.root / e.file, e.label, pseudo=e.source == PSEUDO_SOURCE)
                for e in self.entries()
                if e.label and (e.verified or not verified_only)
                and (pseudo_labels or e.source != PSEUDO_SOURCE)]

    def stats(self) -> dict[str, int]:
        entries = self.entries()
        return {"images": len(entries),
                "labelled": sum(bool(e.label) for e in entries),
                "verified": sum(e.verified for e in entries),
                "unlabelled": sum(not e.label for e in entries),
                "suggested": sum(bool(e.suggestion) and not e.label for e in entries)}

    def queue(self) -> list[Entry]:
        """The images still to label, least confident first.

        Images with no suggestion at all come first, then suggestions by rising
        confidence; ties keep the order of collection.
        """
        waiting = [e for e in self.entries() if e.needs_label]
        return sorted(waiting, key=lambda e: (bool(e.suggestion),
                                              e.confidence if e.confidence is not None else -1.0))

    # -- writing

    def add(self, data: bytes, label: str | None = None, source: str = "collect",
            verified: bool = False, force: bool = False, suggestion: str | None = None,
            confidence: float | None = None) -> Added:
        """Store an image (once) and, if given, its label or a model's suggestion for it."""
        import hashlib

        from solver.imaging import decode_image

        decode_image(data, source="image")  # refuse what is not a usable image, before storing
        name = hashlib.sha256(data).hexdigest()[:24] + _suffix_of(data)
        if label is not None:
            label = self._checked(label, name)  # a refused label stores nothing
        with self._lock:
            existing = self._entries.get(name)
            if existing is None:
                _write_atomically(self.root / name, data)
                entry = Entry(file=name, source=source, when=_now())
                self._entries[name] = entry
                if label is None and suggestion is None:
                    self._write_manifest()
                    return Added(entry, new=True)
            if label is None:
                if suggestion is not None:
                    return Added(self.suggest(name, suggestion, confidence), new=existing is None)
                return Added(self._entries[name], new=False)
            entry = self.set_label(name, label, source=source, verified=verified, force=force)
            return Added(entry, new=existing is None)

    def set_label(self, file: str, label: str, source: str = "hand", verified: bool = False,
                  force: bool = False) -> Entry:
        """Label an image; a different existing label stays unless ``force``.

        Pseudo-labels (``source="pseudo"``) are machine guesses: any other label
        (by hand, the site, an import) replaces one without ``force``; a
        pseudo-label replaces a different label only with ``force``, and never
        changes the source of an equal one.
        """
        label = self._checked(label, file)
        with self._lock:
            entry = self._entries.get(file)
            if entry is None:
                raise DatasetError(f"{self.root}: no image {file!r} in this dataset")
            outranks = entry.source == PSEUDO_SOURCE and source != PSEUDO_SOURCE
            if entry.label and entry.label != label and not force and not outranks:
                raise LabelConflictError(
                    f"{self.root / file}: already labelled {entry.label!r} (by {entry.source or 'unknown'}); "
                    f"not replacing it with {label!r} (pass --force to replace labels)")
            if entry.label == label and entry.verified and not verified:
                return entry  # an unverified suggestion never downgrades a verified label
            if entry.label == label and source == PSEUDO_SOURCE:
                return entry  # a guess that agrees adds nothing to a label already there
            updated = dataclasses.replace(
                entry, label=label, source=source,
                verified=verified or (entry.verified and entry.label == label), when=_now())
            self._entries[file] = updated
            self._write_manifest()
            return updated

    def suggest(self, file: str, text: str, confidence: float | None = None) -> Entry:
        """Keep a model's reading beside an image, as a suggestion; labels stay as they are."""
        with self._lock:
            entry = self._entries.get(file)
            if entry is None:
                raise DatasetError(f"{self.root}: no image {file!r} in this dataset")
            updated = dataclasses.replace(entry, suggestion=text,
                                          confidence=None if confidence is None else round(float(confidence), 4))
            self._entries[file] = updated
            self._write_manifest()
            return updated

    def restore(self, previous: Entry) -> Entry:
        """Put back an entry exactly as it was (an undo), e.g. after a label typed by mistake."""
        with self._lock:
            if previous.file not in self._entries:
                raise DatasetError(f"{self.root}: no image {previous.file!r} in this dataset")
            self._entries[previous.file] = previous
            self._write_manifest()
            return previous

    def _checked(self, label: str, file: str) -> str:
        charset, length, case_sensitive = self._format
        if charset is None:
            return label
        low, high = length or (1, 32)
        report = check_labels([Sample(self.root / file, label)], charset, low, high, case_sensitive)
        if not report.kept:
            reason = next(iter(report.refused))
            raise DatasetError(f"{file}: label {label!r} refused: {reason} (the profile allows "
                               f"{low}..{high} characters of {charset!r})")
        return report.kept[0].label

    @contextlib.contextmanager
    def batch(self, flush_seconds: float = 1.0) -> Iterator[DatasetStore]:
        """Many changes with the manifest rewritten at most every ``flush_seconds`` and at the end.

        Images are still written before their rows; an interruption loses at most
        the last ``flush_seconds`` of labels, and repeating an import restores them.
        """
        with self._lock:
            self._batching += 1
            self._flush_every = flush_seconds
        try:
            yield self
        finally:
            with self._lock:
                self._batching -= 1
                if not self._batching and self._dirty:
                    self._write_manifest()

    def _write_manifest(self) -> None:
        if self._batching and time.monotonic() - self._flushed_at < self._flush_every:
            self._dirty = True
            return
        self._dirty = False
        self._flushed_at = time.monotonic()
        self._rewrite_manifest()

    def _rewrite_manifest(self) -> None:
        import io

        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(MANIFEST_COLUMNS)
        for entry in self._entries.values():
            writer.writerow([entry.file, entry.label, entry.source,
                             "true" if entry.verified else "false", entry.when, entry.suggestion,
                             "" if entry.confidence is None else f"{entry.confidence:.4f}"])
        _write_atomically(self.manifest, buffer.getvalue().encode("utf-8"))

    # -- chores

    def import_folder(self, folder: str | os.PathLike[str], source: str = "import",
                      verified: bool = False, force: bool = False) -> dict[str, int]:
        """Copy a labelled folder (labels.csv or label-in-file-name) into this dataset."""
        counts = {"added": 0, "duplicates": 0, "conflicts": 0, "refused": 0}
        with self.batch():
            self._import(read_labelled_folder(folder), counts, source, verified, force)
        return counts

    def _import(self, samples: list[Sample], counts: dict[str, int], source: str,
                verified: bool, force: bool) -> None:
        for sample in samples:
            try:
                added = self.add(sample.path.read_bytes(), sample.label or None, source=source,
                                 verified=verified, force=force)
            except LabelConflictError as error:
                counts["conflicts"] += 1
                logger.warning("%s", error)
                continue
            except SolverError as error:
                counts["refused"] += 1
                logger.warning("%s: %s", sample.path, error)
                continue
            counts["added" if added.new else "duplicates"] += 1

    def export(self, folder: str | os.PathLike[str], layout: str = "csv",
               verified_only: bool = False) -> int:
        """Write the labelled images to ``folder``: with a labels.csv, or named by label."""
        import shutil

        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        samples = self.samples(verified_only)
        if layout == "names":
            seen: Counter[str] = Counter()
            for sample in samples:
                seen[sample.label] += 1
                name = sample.label if seen[sample.label] == 1 else f"{sample.label}_{seen[sample.label]}"
                shutil.copyfile(sample.path, target / (name + sample.path.suffix))
        elif layout == "csv":
            rows = ["file,label"]
            for sample in samples:
                shutil.copyfile(sample.path, target / sample.path.name)
                rows.append(f"{sample.path.name},{sample.label}")
            _write_atomically(target / MANIFEST, ("\n".join(rows) + "\n").encode())
        else:
            raise DatasetError(f"unknown layout {layout!r} (use csv or names)")
        return len(samples)


def split_samples(samples: list[Sample], test_fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """A seeded split into (train, test); the same seed and files give the same split."""
    import random

    if not 0.0 < test_fraction < 1.0:
        raise DatasetError(f"test fraction {test_fraction} must be between 0 and 1 (e.g. 0.2)")
    ordered = sorted(samples, key=lambda s: s.path.name)
    random.Random(seed).shuffle(ordered)
    cut = round(len(ordered) * test_fraction)
    return ordered[cut:], ordered[:cut]


def write_split(samples: list[Sample], out: str | os.PathLike[str], test_fraction: float,
                seed: int) -> tuple[Path, Path]:
    """Write a seeded split as two labelled folders, ``OUT/train`` and ``OUT/test``.

    Each holds only a ``labels.csv`` whose files point at the original images,
    so either folder can be given to ``--data`` and nothing is copied.
    """
    train, test = split_samples(samples, test_fraction, seed)
    return (write_list(sorted(train, key=lambda s: s.path.name), Path(out) / "train"),
            write_list(sorted(test, key=lambda s: s.path.name), Path(out) / "test"))


def write_list(samples: list[Sample], folder: str | os.PathLike[str]) -> Path:
    """A labelled folder holding only a ``labels.csv`` whose files point at the images
    where they are (relative paths, in the given order); nothing is copied."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["file,label"] + [f"{os.path.relpath(s.path.resolve(), folder.resolve())},{s.label}"
                              for s in samples]
    _write_atomically(folder / MANIFEST, ("\n".join(lines) + "\n").encode())
    return folder


def _suffix_of(data: bytes) -> str:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return _SUFFIX_OF_FORMAT.get(image.format or "", ".img")


def _write_atomically(path: Path, data: bytes) -> None:
    import tempfile

    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _now() -> str:
    import datetime

    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
