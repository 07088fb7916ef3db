"""A captcha's alphabet: text <-> class indices, with the CTC blank explicit.

The blank is always the last class (``blank_index == len(charset)``) and is
stored in a model's metadata, so the training loss and the decoder can never
disagree about it.

    >>> charset = Charset("0123456789")
    >>> charset.encode("407")
    [4, 0, 7]
    >>> charset.blank_index, charset.num_classes
    (10, 11)
    >>> charset.decode_ctc([4, 4, 10, 0, 0, 10, 7])  # repeats collapse; blanks separate
    '407'
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from solver.errors import SolverError


class LabelError(SolverError):
    """A label that the charset cannot express."""


@dataclass(frozen=True)
class Charset:
    """The characters a captcha can hold, in a fixed order."""

    characters: str
    case_sensitive: bool = True
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.characters:
            raise LabelError("the charset is empty (list every character the captcha uses)")
        if len(set(self.characters)) != len(self.characters):
            raise LabelError(f"the charset {self.characters!r} repeats characters (list each once)")
        object.__setattr__(self, "_index", {ch: i for i, ch in enumerate(self.characters)})

    @property
    def blank_index(self) -> int:
        """The CTC blank's class index: the last one."""
        return len(self.characters)

    @property
    def num_classes(self) -> int:
        """Characters plus the blank."""
        return len(self.characters) + 1

    def __len__(self) -> int:
        return len(self.characters)

    def normalise(self, text: str) -> str:
        """Fold ``text`` onto the charset's case when case does not matter."""
        if self.case_sensitive:
            return text
        uppers = sum(ch.isupper() for ch in self.characters)
        lowers = sum(ch.islower() for ch in self.characters)
        return text.upper() if uppers >= lowers else text.lower()

    def encode(self, text: str) -> list[int]:
        """Class indices of ``text`` (after case folding); raises :class:`LabelError`."""
        text = self.normalise(text)
        try:
            return [self._index[ch] for ch in text]
        except KeyError:
            outside = "".join(sorted({ch for ch in text if ch not in self._index}))
            raise LabelError(f"{text!r} holds characters outside the charset: {outside} "
                             f"(the charset is {self.characters!r})") from None

    def decode(self, indices: Iterable[int]) -> str:
        """Text of class indices (blanks are skipped, nothing collapses)."""
        return "".join(self.characters[i] for i in indices if i != self.blank_index)

    def decode_ctc(self, best_path: Sequence[int]) -> str:
        """Greedy CTC: collapse repeats, then drop blanks."""
        out, previous = [], None
        for index in best_path:
            index = int(index)
            if index != previous and index != self.blank_index:
                out.append(self.characters[index])
            previous = index
        return "".join(out)

    def decode_ctc_batch(self, probabilities: np.ndarray) -> list[tuple[str, float]]:
        """Greedy CTC over a batch of per-step class probabilities ``(batch, steps, classes)``.

        The confidence of a reading is the product of the winning probabilities
        of the steps that produce its characters, times the least sure blank
        step: low when any character, or any gap between characters, is doubtful.
        """
        if probabilities.ndim != 3 or probabilities.shape[-1] != self.num_classes:
            raise ValueError(f"expected probabilities of shape (batch, steps, {self.num_classes}), "
                             f"got {probabilities.shape}")
        best = probabilities.argmax(axis=-1)
        best_p = probabilities.max(axis=-1)
        results = []
        for path, path_p in zip(best, best_p):
            keep = np.ones(path.shape, dtype=bool)
            keep[1:] = path[1:] != path[:-1]
            emits = keep & (path != self.blank_index)
            text = "".join(self.characters[i] for i in path[emits])
            character_confidence = float(np.prod(path_p[emits])) if emits.any() else 0.0
            blanks = path == self.blank_index
            blank_confidence = float(path_p[blanks].min()) if blanks.any() else 1.0
            results.append((text, character_confidence * blank_confidence))
        return results
