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
import io
import logging
import math
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from solver.charset import short_repr
from solver.errors import SolverError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp")
MANIFEST = "labels.csv"
#: a dataset's append-only log of the changes made since labels.csv was last rewritten
JOURNAL = "labels.journal"
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


def read_labelled_folder(folder: str | os.PathLike[str], pseudo_labels: bool = False,
                         contained: bool = False) -> list[Sample]:
    """Every labelled image of a folder, in a stable order (see the module's doc).

    Pseudo-labels (rows with source ``pseudo``) are read only with ``pseudo_labels``.
    With ``contained`` (imports of a folder from elsewhere), a ``labels.csv`` may
    name only images inside the folder: absolute paths and ``..`` that leave it
    are refused before any file is opened. Split lists written by the project
    point at images elsewhere with ``../`` and are read without ``contained``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder (give a folder of labelled captchas)")
    manifest = folder / MANIFEST
    if manifest.is_file():
        if (folder / JOURNAL).is_file():  # a project dataset interrupted mid-run: read it whole
            samples = DatasetStore(folder, read_only=True).samples(pseudo_labels=True)
        else:
            samples = _read_manifest(folder, manifest, contained)
        return samples if pseudo_labels else [s for s in samples if not s.pseudo]
    samples = [Sample(path, path.stem) for path in sorted(folder.iterdir())
               if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()]
    if contained:
        _refuse_outside(folder, manifest, [(0, s.path.name, s.path) for s in samples])
    if not samples:
        raise DatasetError(f"{folder}: no {MANIFEST} and no images (put the images there, named "
                           f"by their label like 2b827.png, or add a {MANIFEST} with file,label)")
    return samples


def _read_manifest(folder: Path, manifest: Path, contained: bool = False) -> list[Sample]:
    columns, rows = read_csv_rows(manifest)
    if "file" not in columns or "label" not in columns:
        raise DatasetError(f"{manifest}: its first line names the columns "
                           f"{_short(','.join(columns)) if columns else '(none)'}; a manifest's "
                           "first line must name at least file and label (e.g. file,label)")
    rows = [(line, row) for line, row in rows if row["file"]]
    if contained:
        _refuse_outside(folder, manifest, [(line, row["file"], folder / row["file"])
                                           for line, row in rows])
    samples, missing = [], []
    for _, row in rows:
        path = folder / row["file"]
        if not path.is_file():
            missing.append(row["file"])
            continue
        samples.append(Sample(path, row["label"], pseudo=row.get("source", "") == PSEUDO_SOURCE))
    if missing:
        shown = ", ".join(_short(name) for name in missing[:3]) + (" ..." if len(missing) > 3 else "")
        raise DatasetError(f"{manifest}: {len(missing)} listed files are missing ({shown}); "
                           "restore them or remove their rows (in a dataset of the project's, "
                           "`solver dataset prune` removes them)")
    return samples


def _refuse_outside(folder: Path, manifest: Path, listed: list[tuple[int, str, Path]]) -> None:
    """Refuse, before anything is read, listed files that are not inside ``folder``."""
    inside = folder.resolve()
    outside = []
    for line, file, path in listed:
        if Path(file).is_absolute() or not path.resolve().is_relative_to(inside):
            outside.append((line, file))
    if outside:
        shown = "; ".join((f"line {line}: " if line else "") + _short(file, 200)
                          for line, file in outside[:3]) + (" ..." if len(outside) > 3 else "")
        source = manifest if manifest.is_file() else folder
        raise DatasetError(
            f"{source}: {len(outside)} listed images are outside {folder} ({shown}); an import "
            "reads only images inside the folder it is given: copy the images into it, or "
            "import the folder that holds them. Nothing was imported.")


MAX_MANIFEST_BYTES = 256 * 1024 * 1024


def read_csv_rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The header and the ``(line number, row)`` pairs of a CSV file, read strictly.

    A byte-order mark (spreadsheets write one) is skipped, the column names are
    stripped, missing cells read as ``""``, and a file that is not UTF-8 text or
    not CSV is refused naming its line.
    """
    try:
        size = path.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise DatasetError(f"{path}: {size} bytes is larger than the {MAX_MANIFEST_BYTES} "
                               "a manifest may have (is this really a labels file?)")
        data = path.read_bytes()
    except OSError as error:
        raise DatasetError(f"{path}: cannot be read ({error.strerror})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise DatasetError(f"{path}: line {line} is not UTF-8 text (byte 0x{data[error.start]:02x}); "
                           "save the file as UTF-8 (a spreadsheet's \"CSV UTF-8\")") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [name.strip() for name in next(reader, [])]
        rows = []
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue  # blank lines, which spreadsheets leave at the end
            padded = cells + [""] * (len(header) - len(cells))
            rows.append((reader.line_num, dict(zip(header, padded))))
    except csv.Error as error:
        raise DatasetError(f"{path}: line {reader.line_num} is not valid CSV ({error}); "
                           "fix or remove that line") from None
    return header, rows


def _short(text: str, limit: int = 60) -> str:
    """Text for messages, bounded: a file's content never floods an error."""
    return text if len(text) <= limit else text[:limit] + "..."


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
        elif any(ch not in alphabet.characters for ch in label):
            report.refused["with characters outside the charset"].append(sample)
        elif not min_length <= len(label) <= max_length:
            report.refused[f"with a length outside {min_length}..{max_length}"].append(sample)
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


@dataclass
class Recovery:
    """What opening a dataset found of an earlier run that did not finish."""

    journal_changes: int = 0  # label changes replayed from labels.journal
    stray: list[str] = field(default_factory=list)  # images stored without their row
    missing: list[str] = field(default_factory=list)  # rows whose image is not on disk

    def lines(self, root: Path, read_only: bool) -> list[str]:
        out = []
        kept = ("they stay there until a command that writes the dataset folds them in"
                if read_only else "labels.csv now holds them")
        if self.journal_changes:
            out.append(f"{root}: the last run stopped before it saved {MANIFEST}; "
                       f"{self.journal_changes} label changes were recovered from {JOURNAL} "
                       f"(nothing was lost; {kept})")
        if self.stray:
            out.append(f"{root}: {len(self.stray)} images were stored just before an interruption, "
                       "before their row was written; they are kept unlabelled (source "
                       "'recovered'). Run the import or collection that stored them again (it "
                       "finds them there and restores their labels), or label them with "
                       "`solver label`")
        if self.missing:
            shown = ", ".join(self.missing[:3]) + (" ..." if len(self.missing) > 3 else "")
            out.append(f"{root}: {len(self.missing)} images listed in {MANIFEST} are missing "
                       f"({shown}); their rows and labels are kept, and left out of training, "
                       "labelling and exports until the images are back. Put them back (a "
                       "disk not mounted? another folder?), or drop their rows for good with "
                       "`solver dataset prune`")
        return out


class DatasetStore:
    """A dataset folder: images named by content hash, ``labels.csv``, and a journal.

    Every change writes the image first, then its row. Outside :meth:`batch`
    the manifest is rewritten atomically (a temporary file, then a rename) at
    each change; inside one, each change is appended to ``labels.journal`` and
    synced to disk before the call returns, and the manifest is rewritten at
    most every ``flush_seconds`` and at the end, when the journal is emptied.
    So a ``kill -9`` at any moment loses no label: the next open replays the
    journal, keeps an image whose row was never written (unlabelled, source
    ``recovered``) and says what it recovered. The same image is stored once.
    A label never replaces a different one without ``force``.

    Rows whose image is missing (a disk not mounted, a wrong folder) are kept
    and reported, never dropped on their own: :meth:`prune` drops them. Opened
    with ``read_only=True`` the store writes nothing at all, not even what it
    recovered (the verbs that only read, such as ``solver dataset stats``).

        store = DatasetStore("data/example")
        store.add(png_bytes, label="7K2Q", source="site", verified=True)
    """

    def __init__(self, root: str | os.PathLike[str], charset: str | None = None,
                 length: tuple[int, int] | None = None, case_sensitive: bool = True,
                 read_only: bool = False) -> None:
        import threading

        self.root = Path(root)
        self.read_only = read_only
        if read_only:
            if not self.root.is_dir():
                raise DatasetError(f"{self.root}: no dataset there yet (`solver collect` or "
                                   "`solver dataset import` makes one; --data names another folder)")
        else:
            self.root.mkdir(parents=True, exist_ok=True)
        self.manifest = self.root / MANIFEST
        self.journal = self.root / JOURNAL
        self._format = (charset, length, case_sensitive)
        self._lock = threading.RLock()
        self._entries: dict[str, Entry] = {}
        self._missing: set[str] = set()
        self._batching = 0
        self._flush_every = 1.0
        self._dirty = False
        self._flushed_at = 0.0
        self._journal_handle: io.BufferedWriter | None = None
        self.recovery = Recovery()
        self._load()

    # -- reading

    def _load(self) -> None:
        if not self.read_only:
            for leftover in self.root.glob(".*.tmp"):  # from a write interrupted before its rename
                leftover.unlink(missing_ok=True)
        if self.manifest.is_file():
            columns, rows = read_csv_rows(self.manifest)
            if "file" not in columns:
                raise DatasetError(f"{self.manifest}: not a dataset manifest (its first line must "
                                   f"be {','.join(MANIFEST_COLUMNS)}); move it away")
            for line, row in rows:
                entry = _entry_of(row, self.manifest, line)
                if entry is not None:
                    self._entries[entry.file] = entry
        if self.journal.is_file():
            self.recovery.journal_changes = self._replay_journal()
        listed = set(self._entries)
        self.recovery.stray = [path.name for path in sorted(self.root.iterdir())
                               if path.suffix.lower() in IMAGE_SUFFIXES and path.name not in listed
                               and path.is_file()]
        for name in self.recovery.stray:  # written just before an interruption: keep it, unlabelled
            self._entries[name] = Entry(file=name, source="recovered", when=_now())
        self._missing = {name for name in self._entries if not (self.root / name).is_file()}
        self.recovery.missing = sorted(self._missing)
        for line in self.recovery.lines(self.root, self.read_only):
            logger.warning("%s", line)
        if not self.read_only and (self.recovery.journal_changes or self.recovery.stray):
            self._compact()

    def _replay_journal(self) -> int:
        data = self.journal.read_bytes()
        complete = data[:data.rfind(b"\n") + 1]  # a line cut short by a kill was never confirmed
        try:
            text = complete.decode("utf-8")
        except UnicodeDecodeError:
            raise DatasetError(f"{self.journal}: damaged (not UTF-8 text); move it away to open "
                               "the dataset without the changes it holds") from None
        changes = 0
        for line, cells in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
            if len(cells) != len(MANIFEST_COLUMNS):
                raise DatasetError(f"{self.journal}: line {line} is damaged; move the file away "
                                   "to open the dataset without the changes it holds")
            entry = _entry_of(dict(zip(MANIFEST_COLUMNS, cells)), self.journal, line)
            if entry is not None:
                self._entries[entry.file] = entry
                changes += 1
        return changes

    def entries(self) -> list[Entry]:
        """Every row, those whose image is missing included (see :meth:`missing`)."""
        with self._lock:
            return list(self._entries.values())

    def present(self) -> list[Entry]:
        """The rows whose image is on disk."""
        with self._lock:
            return [e for e in self._entries.values() if e.file not in self._missing]

    def missing(self) -> list[Entry]:
        """The rows whose image is not on disk: kept until the images are back or :meth:`prune`."""
        with self._lock:
            return [e for e in self._entries.values() if e.file in self._missing]

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, file: str) -> Entry | None:
        return self._entries.get(file)

    def samples(self, verified_only: bool = False, pseudo_labels: bool = False) -> list[Sample]:
        """The labelled images on disk, as training samples; pseudo-labels only with ``pseudo_labels``."""
        return [Sample(self.root / e.file, e.label, pseudo=e.source == PSEUDO_SOURCE)
                for e in self.present()
                if e.label and (e.verified or not verified_only)
                and (pseudo_labels or e.source != PSEUDO_SOURCE)]

    def stats(self) -> dict[str, int]:
        entries = self.entries()
        return {"images": len(entries),
                "labelled": sum(bool(e.label) for e in entries),
                "verified": sum(e.verified for e in entries),
                "unlabelled": sum(not e.label for e in entries),
                "suggested": sum(bool(e.suggestion) and not e.label for e in entries),
                "missing": len(self._missing)}

    def queue(self) -> list[Entry]:
        """The images still to label, least confident first.

        Images with no suggestion at all come first, then suggestions by rising
        confidence; ties keep the order of collection.
        """
        waiting = [e for e in self.present() if e.needs_label]
        return sorted(waiting, key=lambda e: (bool(e.suggestion),
                                              e.confidence if e.confidence is not None else -1.0))

    # -- writing

    def add(self, data: bytes, label: str | None = None, source: str = "collect",
            verified: bool = False, force: bool = False, suggestion: str | None = None,
            confidence: float | None = None) -> Added:
        """Store an image (once) and, if given, its label or a model's suggestion for it.

        When it returns, the image and its row are on disk (synced), whichever
        way the process ends next.
        """
        import hashlib

        from solver.imaging import decode_image

        self._refuse_if_read_only()
        decode_image(data, source="image")  # refuse what is not a usable image, before storing
        name = hashlib.sha256(data).hexdigest()[:24] + _suffix_of(data)
        if label is not None:
            label = self._checked(label, name)  # a refused label stores nothing
        with self._lock:
            existing = self._entries.get(name)
            if existing is None or name in self._missing:
                _write_atomically(self.root / name, data)
                self._missing.discard(name)
            if existing is None:
                entry = Entry(file=name, source=source, when=_now())
                self._entries[name] = entry
                if label is None and suggestion is None:
                    self._changed(entry)
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
        self._refuse_if_read_only()
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
            self._changed(updated)
            return updated

    def suggest(self, file: str, text: str, confidence: float | None = None) -> Entry:
        """Keep a model's reading beside an image, as a suggestion; labels stay as they are."""
        self._refuse_if_read_only()
        with self._lock:
            entry = self._entries.get(file)
            if entry is None:
                raise DatasetError(f"{self.root}: no image {file!r} in this dataset")
            updated = dataclasses.replace(entry, suggestion=text,
                                          confidence=None if confidence is None else round(float(confidence), 4))
            self._entries[file] = updated
            self._changed(updated)
            return updated

    def restore(self, previous: Entry) -> Entry:
        """Put back an entry exactly as it was (an undo), e.g. after a label typed by mistake."""
        self._refuse_if_read_only()
        with self._lock:
            if previous.file not in self._entries:
                raise DatasetError(f"{self.root}: no image {previous.file!r} in this dataset")
            self._entries[previous.file] = previous
            self._changed(previous)
            return previous

    def prune(self) -> list[Entry]:
        """Drop the rows whose image is missing, for good; returns what was dropped."""
        self._refuse_if_read_only()
        with self._lock:
            dropped = [self._entries.pop(name) for name in sorted(self._missing)]
            self._missing.clear()
            if dropped:
                self._compact()
            return dropped

    def _checked(self, label: str, file: str) -> str:
        charset, length, case_sensitive = self._format
        if charset is None:
            return label
        low, high = length or (1, 32)
        report = check_labels([Sample(self.root / file, label)], charset, low, high, case_sensitive)
        if not report.kept:
            reason = next(iter(report.refused))
            raise DatasetError(f"{file}: label {short_repr(label)} refused: {reason} (the profile "
                               f"allows {low}..{high} characters of {short_repr(charset)})")
        return report.kept[0].label

    def _refuse_if_read_only(self) -> None:
        if self.read_only:
            raise DatasetError(f"{self.root}: opened read-only; nothing was changed")

    @contextlib.contextmanager
    def batch(self, flush_seconds: float = 1.0) -> Iterator[DatasetStore]:
        """Many changes, each journalled, with the manifest rewritten at most every
        ``flush_seconds`` and at the end (see the class's doc: nothing is lost to a kill)."""
        self._refuse_if_read_only()
        with self._lock:
            if not self._batching:  # the batch's first rewrite is due flush_seconds from now
                self._flushed_at = time.monotonic()
            self._batching += 1
            self._flush_every = flush_seconds
        try:
            yield self
        finally:
            with self._lock:
                self._batching -= 1
                if not self._batching and self._dirty:
                    self._compact()

    def _changed(self, entry: Entry) -> None:
        if not self._batching:
            self._compact()
            return
        self._append_to_journal(entry)
        self._dirty = True
        if time.monotonic() - self._flushed_at >= self._flush_every:
            self._compact()

    def _append_to_journal(self, entry: Entry) -> None:
        if self._journal_handle is None:
            self._journal_handle = open(self.journal, "ab")  # noqa: SIM115 (closed by _compact)
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(_row_of(entry))
        self._journal_handle.write(buffer.getvalue().encode("utf-8"))
        self._journal_handle.flush()
        os.fsync(self._journal_handle.fileno())

    def _compact(self) -> None:
        """Rewrite the manifest atomically, then empty the journal it now holds."""
        self._dirty = False
        self._flushed_at = time.monotonic()
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(MANIFEST_COLUMNS)
        for entry in self._entries.values():
            writer.writerow(_row_of(entry))
        _write_atomically(self.manifest, buffer.getvalue().encode("utf-8"))
        if self._journal_handle is not None:
            self._journal_handle.close()
            self._journal_handle = None
        self.journal.unlink(missing_ok=True)  # a kill just before this replays rows equal to the manifest

    # -- chores

    def import_folder(self, folder: str | os.PathLike[str], source: str = "import",
                      verified: bool = False, force: bool = False,
                      progress: Callable[[int], None] | None = None) -> dict[str, int]:
        """Copy a labelled folder (labels.csv or label-in-file-name) into this dataset.

        Only images inside ``folder`` are read (see :func:`read_labelled_folder`'s
        ``contained``). Each label is on disk before the next image is read.
        """
        counts = {"added": 0, "duplicates": 0, "conflicts": 0, "refused": 0}
        samples = read_labelled_folder(folder, contained=True)
        with self.batch():
            self._import(samples, counts, source, verified, force, progress)
        return counts

    def _import(self, samples: list[Sample], counts: dict[str, int], source: str,
                verified: bool, force: bool, progress: Callable[[int], None] | None) -> None:
        from solver.imaging import ImageError, read_image_file

        for sample in samples:
            try:
                data = read_image_file(sample.path)  # regular files only, within the size limit
            except ImageError as error:  # names the file itself
                counts["refused"] += 1
                logger.warning("%s", error)
                continue
            try:
                added = self.add(data, sample.label or None, source=source, verified=verified,
                                 force=force)
            except LabelConflictError as error:
                counts["conflicts"] += 1
                logger.warning("%s", error)
            except SolverError as error:
                counts["refused"] += 1
                logger.warning("%s: %s", sample.path, error)
            else:
                counts["added" if added.new else "duplicates"] += 1
            if progress:
                progress(1)

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
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(("file", "label"))
            for sample in samples:
                shutil.copyfile(sample.path, target / sample.path.name)
                writer.writerow((sample.path.name, sample.label))
            _write_atomically(target / MANIFEST, buffer.getvalue().encode("utf-8"))
        else:
            raise DatasetError(f"unknown layout {layout!r} (use csv or names)")
        return len(samples)


def _row_of(entry: Entry) -> list[str]:
    return [entry.file, entry.label, entry.source, "true" if entry.verified else "false",
            entry.when, entry.suggestion,
            "" if entry.confidence is None else f"{entry.confidence:.4f}"]


_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no", ""}


def _entry_of(row: dict[str, str], source: Path, line: int) -> Entry | None:
    """One manifest row as an entry (None for a row with no file), refusing bad cells by line and column."""
    file = row.get("file", "").strip()
    if not file:
        return None
    where = f"{source}: line {line}"
    if file != Path(file).name or file in (".", ".."):
        raise DatasetError(f"{where}, column file: {short_repr(file)} is not a file name in this "
                           "folder (a dataset's manifest lists its own images by name); fix the row")
    verified = (row.get("verified") or "").strip().lower()
    if verified not in _TRUE | _FALSE:
        raise DatasetError(f"{where}, column verified: {short_repr(verified)} is not true or false; "
                           "fix the cell")
    text = (row.get("confidence") or "").strip()
    confidence = None
    if text:
        try:
            confidence = float(text)
        except ValueError:
            confidence = math.nan
        if not math.isfinite(confidence):
            raise DatasetError(f"{where}, column confidence: {short_repr(text)} is not a number "
                               "(a model's confidence from 0 to 1, or empty); fix or empty the cell")
    return Entry(file=file, label=row.get("label") or "", source=row.get("source") or "",
                 verified=verified in _TRUE, when=row.get("when") or "",
                 suggestion=row.get("suggestion") or "", confidence=confidence)


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
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("file", "label"))
    for sample in samples:
        writer.writerow((os.path.relpath(sample.path.resolve(), folder.resolve()), sample.label))
    _write_atomically(folder / MANIFEST, buffer.getvalue().encode("utf-8"))
    return folder


def _suffix_of(data: bytes) -> str:
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
