"""Reading a dataset's images with a pre-labelling reader: suggestions and pseudo-labels.

``solver dataset suggest`` and ``solver dataset pseudo-label`` are these two
functions with a progress bar; each reads the images in the reader's batches,
keeps a :class:`ReadTally` of how sure the readings were, and stops cleanly on
Ctrl-C with everything read so far saved::

    reader = open_reader("general", profile, "models")
    run = suggest(store, reader, [e for e in store.present() if e.needs_label])
    run.stored, run.tally.lines()
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from solver.dataset import PSEUDO_SOURCE, DatasetStore, Entry, LabelConflictError
from solver.errors import SolverError
from solver.prelabel import PrelabelReader, Proposal
from solver.readers import Reader, TextReading

R = TypeVar("R", bound=TextReading)

# logged as "solver", as `solver dataset suggest` and `pseudo-label` always have
logger = logging.getLogger("solver")

#: called with the number of images just read
Progress = Callable[[int], None]


class ReadTally:
    """What a pre-labelling run read: fitting readings by confidence, misfits, failures."""

    BANDS = ((0.98, ">=0.98"), (0.9, "0.90-0.98"), (0.5, "0.50-0.90"), (0.0, "<0.50"))

    def __init__(self) -> None:
        self.bands: Counter[str] = Counter()
        self.misfits: Counter[str] = Counter()
        self.misfit_examples: list[str] = []
        self.unreadable = 0

    def add(self, proposal: Proposal | None) -> None:
        """Count one image's proposal (``None``: the image could not be read)."""
        if proposal is None:
            self.unreadable += 1
        elif not proposal.fits:
            self.misfits["no fitting reading"] += 1
            if len(self.misfit_examples) < 3 and proposal.problem is not None:
                self.misfit_examples.append(proposal.problem)
        elif proposal.confidence is None:
            self.bands["no confidence"] += 1
        else:
            self.bands[next(name for low, name in self.BANDS if proposal.confidence >= low)] += 1

    @property
    def count(self) -> int:
        """How many images were counted."""
        return sum(self.bands.values()) + sum(self.misfits.values()) + self.unreadable

    def lines(self) -> list[str]:
        """The tally as lines for a person: confidence bands, misfits (with examples), failures."""
        order = [name for _, name in self.BANDS] + ["no confidence"]
        out = ["confidence: " + (", ".join(f"{name} {self.bands[name]}" for name in order
                                           if self.bands[name]) or "no fitting readings")]
        misfits = sum(self.misfits.values())
        out.append(f"no fitting reading: {misfits}"
                   + (f" (e.g. {'; '.join(self.misfit_examples)})" if misfits else ""))
        if self.unreadable:
            out.append(f"unreadable images: {self.unreadable} (see the warnings above)")
        return out


def read_entries(store: DatasetStore, reader: Reader[R], entries: Sequence[Entry],
                 progress: Progress | None = None,
                 batch_size: int | None = None) -> Iterator[tuple[Entry, R | None]]:
    """(entry, reading or None) for each entry, read in batches (``batch_size``, else the
    reader's own ``batch_size``, else 64).

    One unreadable image spoils a batch: that batch is read again image by image,
    and the unreadable ones give None (logged).
    """
    size = max(1, batch_size or getattr(reader, "batch_size", 64))
    for start in range(0, len(entries), size):
        chunk = entries[start:start + size]
        proposals: list[R | None]
        try:
            proposals = list(reader.read_batch([(store.root / e.file).read_bytes()
                                                for e in chunk]))
        except (OSError, SolverError):
            proposals = []
            for entry in chunk:
                try:
                    proposals.append(reader.read((store.root / entry.file).read_bytes()))
                except (OSError, SolverError) as error:
                    logger.warning("%s: not read (%s)", store.root / entry.file, error)
                    proposals.append(None)
        yield from zip(chunk, proposals)
        if progress is not None:
            progress(len(chunk))


@dataclass
class ReadRun:
    """How a run went: the tally, what it stored, how long it took, whether Ctrl-C stopped it.

    ``stored`` counts suggestions (:func:`suggest`) or pseudo-labels
    (:func:`pseudo_label`); ``below`` the fitting readings that
    :func:`pseudo_label` kept as suggestions only."""

    tally: ReadTally = field(default_factory=ReadTally)
    stored: int = 0
    below: int = 0
    seconds: float = 0.0
    interrupted: bool = False


def suggest(store: DatasetStore, reader: PrelabelReader, entries: Sequence[Entry],
            progress: Progress | None = None) -> ReadRun:
    """Store the reader's fitting reading of each entry as its suggestion (labels never change).

    Ctrl-C ends the run early with ``interrupted`` set; the suggestions so far are saved."""

    def keep(entry: Entry, proposal: Proposal, run: ReadRun) -> None:
        store.suggest(entry.file, proposal.text, proposal.confidence)
        run.stored += 1

    return _read_and_keep(store, reader, entries, progress, keep)


def pseudo_label(store: DatasetStore, reader: PrelabelReader, entries: Sequence[Entry],
                 min_confidence: float, progress: Progress | None = None) -> ReadRun:
    """Label each entry whose reading is at least ``min_confidence`` sure (source
    :data:`~solver.dataset.PSEUDO_SOURCE`); every fitting reading is stored as a suggestion.

    A label given meanwhile (e.g. on the labelling page) stays. Ctrl-C ends the run
    early with ``interrupted`` set; the labels so far are saved."""

    def keep(entry: Entry, proposal: Proposal, run: ReadRun) -> None:
        store.suggest(entry.file, proposal.text, proposal.confidence)
        if proposal.confidence is None or proposal.confidence < min_confidence:
            run.below += 1
            return
        try:
            saved = store.set_label(entry.file, proposal.text, source=PSEUDO_SOURCE)
        except LabelConflictError:
            return
        run.stored += saved.source == PSEUDO_SOURCE

    return _read_and_keep(store, reader, entries, progress, keep)


def _read_and_keep(store: DatasetStore, reader: PrelabelReader, entries: Sequence[Entry],
                   progress: Progress | None,
                   keep: Callable[[Entry, Proposal, ReadRun], None]) -> ReadRun:
    """Read ``entries`` in one batch of dataset writes, tally every proposal, and hand each
    fitting one to ``keep``; Ctrl-C stops the reading and what was kept stays."""
    run, started = ReadRun(), time.perf_counter()
    with store.batch():
        try:
            for entry, proposal in read_entries(store, reader, entries, progress):
                run.tally.add(proposal)
                if proposal is not None and proposal.fits:
                    keep(entry, proposal, run)
        except KeyboardInterrupt:
            run.interrupted = True
    run.seconds = time.perf_counter() - started
    return run
