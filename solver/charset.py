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

Characters are counted as a person sees them: a charset lists visible
characters only, in Unicode's composed form (NFC), and labels are normalised to
NFC before they are checked, so ``e`` followed by U+0301 COMBINING ACUTE ACCENT
is the one letter ``é``. Invisible characters (U+200B ZERO WIDTH SPACE and the
other format, control and separator characters) and combining marks that do
not compose are never part of a charset, so a label holding them is refused.

    >>> Charset("é0").encode("e\u0301")
    [0]
"""

from __future__ import annotations

import reprlib
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from solver.errors import SolverError

if TYPE_CHECKING:  # numpy is only needed to decode a model's output
    import numpy as np


class LabelError(SolverError):
    """A label that the charset cannot express."""


#: the most characters of a value an error message quotes
QUOTE_LIMIT = 60

_CATEGORY_WORDS = {
    "Cc": "a control character", "Cf": "an invisible format character",
    "Cs": "a lone surrogate", "Co": "a private-use character", "Cn": "an unassigned code point",
    "Zl": "a line separator", "Zp": "a paragraph separator", "Zs": "a space",
    "Mn": "a combining mark", "Mc": "a combining mark", "Me": "an enclosing mark",
}


class _ShortRepr(reprlib.Repr):
    """reprlib's bounded repr, safe for integers too long to print in full."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxlist, self.maxtuple, self.maxdict = 3, 6, 6, 4
        self.maxset = self.maxfrozenset = self.maxdeque = 6
        self.maxstring = self.maxother = self.maxlong = QUOTE_LIMIT

    def repr_int(self, value: int, level: int) -> str:
        if value.bit_length() > 4 * QUOTE_LIMIT:  # beyond Python's own digit limit in the end
            return f"<a number of about {int(value.bit_length() * 0.30103) + 1} digits>"
        return super().repr_int(value, level)

    def repr_str(self, value: str, level: int) -> str:
        return _quote(value, self.maxstring)


_SHORT_REPR = _ShortRepr()


def _quote(text: str, limit: int) -> str:
    """repr() of ``text``, or of its start and "...", in at most ``limit`` characters; marks escaped."""
    shown = repr(text) if len(text) <= limit else ""
    size = len(text)
    if not shown or len(shown) > limit:
        size = max(1, limit - 5)  # room for the quotes and "..."
        shown = repr(text[:size])
        while len(shown) > limit - 3 and size > 1:  # escapes such as \\U0001f600 take room too
            size = size * 2 // 3
            shown = repr(text[:size])
    # a lone combining mark would sit on the quote or the letter before it: spell it out
    shown = "".join(f"\\u{ord(ch):04x}" if unicodedata.category(ch)[0] == "M" else ch
                    for ch in shown)
    if size < len(text):
        shown = shown[:-1] + "..." + shown[-1]
    return shown


def short_repr(value: Any, limit: int = QUOTE_LIMIT) -> str:
    """A repr of ``value`` that an error message can quote: at most about ``limit`` characters.

    >>> short_repr("x" * 100, 10)
    "'xxxxx...'"
    """
    if isinstance(value, str):
        return _quote(value, limit)
    shown = _SHORT_REPR.repr(value)
    return shown if len(shown) <= limit else shown[:limit - 3] + "..."


def is_visible(character: str) -> bool:
    """Whether ``character`` prints as a character of its own (not blank, invisible or combining)."""
    return character.isprintable() and unicodedata.category(character)[0] not in "MZ"


def describe_character(character: str) -> str:
    """``U+200B ZERO WIDTH SPACE``: the code point and its name (or its kind, if unnamed)."""
    name = unicodedata.name(character, None)
    if name is None:
        name = f"({_CATEGORY_WORDS.get(unicodedata.category(character), 'a character')})"
    return f"U+{ord(character):04X} {name}"


def describe_characters(characters: Iterable[str], limit: int = 20) -> str:
    """Distinct characters for a message, sorted: visible ones as they are, the others by name.

    >>> describe_characters("xb\u200b")
    'bx, U+200B ZERO WIDTH SPACE'
    """
    distinct = sorted(set(characters))
    visible = [ch for ch in distinct if is_visible(ch)]
    hidden = [ch for ch in distinct if not is_visible(ch)]
    parts = []
    if visible:
        parts.append("".join(visible[:limit]) + ("..." if len(visible) > limit else ""))
    parts.extend(describe_character(ch) for ch in hidden[:3])
    if len(hidden) > 3:
        parts.append(f"and {len(hidden) - 3} more")
    return ", ".join(parts)


def _listed(characters: list[str], limit: int = 3) -> str:
    named = ", ".join(describe_character(ch) for ch in characters[:limit])
    return named + (f" and {len(characters) - limit} more" if len(characters) > limit else "")


def folds_up(characters: str) -> bool:
    """Whether a case-insensitive charset folds labels to upper case (else to lower case)."""
    return sum(ch.isupper() for ch in characters) >= sum(ch.islower() for ch in characters)


def charset_problem(characters: str, case_sensitive: bool = True) -> tuple[str, str] | None:
    """Why ``characters`` cannot be a charset, as ``(problem, fix)``, or None when it can.

    The rules: not empty; no white space; only visible characters (no control,
    format or separator characters, no combining marks); written in Unicode's
    composed form (NFC), because labels are compared after NFC normalisation;
    each character once; and without case, only characters that folding the
    labels' case can reach (all upper case, or all lower case).

    >>> charset_problem("0123\u200b")
    ('holds U+200B ZERO WIDTH SPACE, which does not print', \
'remove it; a charset lists only characters a person can see')
    """
    if not characters:
        return "is empty", 'list every character the captcha uses, e.g. "0123456789"'
    if any(ch.isspace() for ch in characters):
        return "contains white space", "remove spaces, tabs and new lines from it"
    distinct = list(dict.fromkeys(characters))
    hidden = [ch for ch in distinct if not is_visible(ch) and unicodedata.category(ch)[0] != "M"]
    if hidden:
        one = len(hidden) == 1
        return (f"holds {_listed(hidden)}, which {'does' if one else 'do'} not print",
                f"remove {'it' if one else 'them'}; a charset lists only characters a person can see")
    marks = [ch for ch in distinct if unicodedata.category(ch)[0] == "M"]
    if marks:
        what = ("a combining mark that joins the character before it" if len(marks) == 1
                else "combining marks that join the character before them")
        return (f"holds {_listed(marks)}, {what}",
                "write each accented letter as one character, e.g. 'é' as U+00E9 rather than "
                "e + U+0301, or remove the mark")
    for ch in distinct:
        composed = unicodedata.normalize("NFC", ch)
        if composed != ch:
            target = " + ".join(describe_character(part) for part in composed)
            fix = (f"write {composed!r} instead" if len(composed) == 1
                   else "leave it out: it is more than one character")
            return (f"holds {describe_character(ch)}, which Unicode normalises (NFC) to {target}",
                    f"{fix}: labels are compared after NFC normalisation")
    if not unicodedata.is_normalized("NFC", characters):
        return ("holds neighbouring characters that Unicode combines into one (NFC)",
                "write the combined character instead: labels are compared after NFC normalisation")
    counts = Counter(characters)
    repeated = [ch for ch in distinct if counts[ch] > 1]
    if repeated:
        shown = ", ".join(repr(ch) for ch in repeated[:10]) + (", ..." if len(repeated) > 10 else "")
        return f"repeats {shown}", "list each character once"
    if not case_sensitive:
        up = folds_up(characters)
        unreachable = [ch for ch in distinct
                       if unicodedata.normalize("NFC", ch.upper() if up else ch.lower()) != ch]
        if unreachable:
            shown = ", ".join(repr(ch) for ch in unreachable[:10]) + (
                ", ..." if len(unreachable) > 10 else "")
            case = "upper" if up else "lower"
            return (f"holds {shown} but case_sensitive is false: labels are folded to {case} case, "
                    f"so no label can hold {'it' if len(unreachable) == 1 else 'them'}",
                    f"write the charset in {case} case, or set case_sensitive: true")
    return None


@dataclass(frozen=True)
class Charset:
    """The characters a captcha can hold, in a fixed order."""

    characters: str
    case_sensitive: bool = True
    _index: dict[str, int] = field(init=False, repr=False, compare=False)
    _folds_up: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problem = charset_problem(self.characters, self.case_sensitive)
        if problem is not None:
            what, fix = problem
            subject = "the charset" if not self.characters else f"the charset {short_repr(self.characters)}"
            raise LabelError(f"{subject} {what} ({fix})")
        object.__setattr__(self, "_index", {ch: i for i, ch in enumerate(self.characters)})
        object.__setattr__(self, "_folds_up", folds_up(self.characters))

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
        """``text`` in composed form (NFC), folded onto the charset's case when case does not matter.

        >>> Charset("ABC", case_sensitive=False).normalise("abc")
        'ABC'
        """
        text = unicodedata.normalize("NFC", text)
        if self.case_sensitive:
            return text
        folded = text.upper() if self._folds_up else text.lower()
        return unicodedata.normalize("NFC", folded)  # 'ǰ'.upper() is J + a combining caron

    def encode(self, text: str) -> list[int]:
        """Class indices of ``text`` (after case folding); raises :class:`LabelError`."""
        text = self.normalise(text)
        try:
            return [self._index[ch] for ch in text]
        except KeyError:
            outside = describe_characters(ch for ch in text if ch not in self._index)
            raise LabelError(f"{short_repr(text)} holds characters outside the charset: {outside} "
                             f"(the charset is {short_repr(self.characters)})") from None

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

    def decode_ctc_batch(self, probabilities: np.ndarray,
                         lengths: tuple[int, int] | None = None) -> list[tuple[str, float]]:
        """Greedy CTC over a batch of per-step class probabilities ``(batch, steps, classes)``,
        with this charset's blank (see :func:`decode_ctc_greedy` for the confidence);
        ``lengths``: the format's ``(min, max)`` characters (see :func:`decode_ctc_greedy`)."""
        if probabilities.ndim != 3 or probabilities.shape[-1] != self.num_classes:
            raise ValueError(f"expected probabilities of shape (batch, steps, {self.num_classes}), "
                             f"got {probabilities.shape}")
        return decode_ctc_greedy(probabilities, self.characters, self.blank_index, lengths)


def decode_ctc_greedy(probabilities: np.ndarray, characters: Sequence[str], blank_index: int,
                      lengths: tuple[int, int] | None = None) -> list[tuple[str, float]]:
    """Greedy CTC over ``(batch, steps, classes)`` probabilities: text and confidence per row.

    ``characters[i]`` is class ``i``'s text and ``blank_index`` the blank's class,
    given explicitly: this project's models put it last (:class:`Charset`),
    ddddocr's first, and both are decoded here. The confidence of a reading is
    the product of the winning probabilities of the steps that produce its
    characters, times the least sure blank step: low when any character, or any
    gap between characters, is doubtful.

        >>> import numpy as np
        >>> steps = np.array([[[0.1, 0.9, 0.0], [0.8, 0.2, 0.0], [0.0, 0.3, 0.7]]])
        >>> decode_ctc_greedy(steps, ["-", "a", "b"], blank_index=0)  # 0.9 * 0.7 * 0.8
        [('ab', 0.504)]

    ``lengths``, ``(min, max)`` characters: a row whose greedy text has another length
    (a character dropped or read twice, a sure answer to refuse) reads instead as the most
    probable path whose text has an allowed length (:func:`best_paths_of_lengths`), its
    confidence computed the same way from that path's probabilities, so a doubtful step
    shows in it. A text of an allowed length reads as before: the most probable path of
    all is the most probable of its length too.

        >>> doubtful = np.array([[[0.05, 0.9, 0.05], [0.9, 0.05, 0.05], [0.1, 0.1, 0.8],
        ...                       [0.4, 0.5, 0.1]]])  # the last step: 'a', or a gap?
        >>> [(text, round(confidence, 3)) for text, confidence in
        ...  decode_ctc_greedy(doubtful, ["-", "a", "b"], blank_index=0)]
        [('aba', 0.324)]
        >>> [(text, round(confidence, 3)) for text, confidence in
        ...  decode_ctc_greedy(doubtful, ["-", "a", "b"], blank_index=0, lengths=(2, 2))]
        [('ab', 0.288)]
    """
    import numpy as np

    paths = probabilities.argmax(axis=-1)
    emitting = _emitting(paths, blank_index)
    if lengths is not None and len(paths):
        emitted = emitting.sum(axis=-1)
        outside = np.flatnonzero((emitted < lengths[0]) | (emitted > lengths[1]))
        if len(outside):
            paths[outside] = best_paths_of_lengths(probabilities[outside], blank_index, *lengths,
                                                   fallback=paths[outside])
            emitting = _emitting(paths, blank_index)
    chosen = np.take_along_axis(probabilities, paths[..., np.newaxis], axis=-1)[..., 0]
    results = []
    for path, path_p, emits in zip(paths, chosen, emitting):
        text = "".join(characters[i] for i in path[emits])
        character_confidence = float(np.prod(path_p[emits])) if emits.any() else 0.0
        blanks = path == blank_index
        blank_confidence = float(path_p[blanks].min()) if blanks.any() else 1.0
        results.append((text, character_confidence * blank_confidence))
    return results


def _emitting(paths: np.ndarray, blank_index: int) -> np.ndarray:
    """Which steps of CTC class paths ``(batch, steps)`` emit a character: not a blank, and
    not a repeat of the step before."""
    import numpy as np

    keep = np.ones(paths.shape, dtype=bool)
    keep[:, 1:] = paths[:, 1:] != paths[:, :-1]
    return keep & (paths != blank_index)


def best_paths_of_lengths(probabilities: np.ndarray, blank_index: int, min_length: int,
                          max_length: int, fallback: np.ndarray | None = None) -> np.ndarray:
    """Per row of ``(batch, steps, classes)`` probabilities, the most probable single CTC
    path whose text has ``min_length`` to ``max_length`` characters, as ``(batch, steps)``
    class indices (a Viterbi pass over steps x characters emitted x class).

    A row with too few steps for ``min_length`` keeps its ``fallback`` path (the greedy one
    where not given).

        >>> import numpy as np
        >>> steps = np.array([[[0.05, 0.9, 0.05], [0.9, 0.05, 0.05], [0.1, 0.1, 0.8],
        ...                    [0.4, 0.5, 0.1]]])  # greedy: a, blank, b, a
        >>> best_paths_of_lengths(steps, 0, 2, 2).tolist()  # two characters: a, blank, b, blank
        [[1, 0, 2, 0]]
        >>> best_paths_of_lengths(steps, 0, 3, 3).tolist()  # three: the greedy path itself
        [[1, 0, 2, 1]]
    """
    import numpy as np

    batch, steps, classes = probabilities.shape
    if fallback is None:
        fallback = probabilities.argmax(axis=-1)
    log_p = np.log(np.maximum(probabilities.astype(np.float64), 1e-30))
    characters = np.arange(classes) != blank_index
    class_ids = np.arange(classes)
    # score[b, n, c]: the best log probability of a path so far with n characters emitted,
    # now on class c; came[t, b, n, c]: the class it was on the step before
    score = np.full((batch, max_length + 1, classes), -np.inf)
    score[:, 0, blank_index] = log_p[:, 0, blank_index]
    if max_length >= 1:
        score[:, 1, characters] = log_p[:, 0, characters]
    came = np.zeros((steps, batch, max_length + 1, classes), dtype=np.int16)
    for t in range(1, steps):
        step = log_p[:, t][:, np.newaxis, :]  # (batch, 1, classes)
        # onto the blank: from any class, the character count unchanged
        best_class = score.argmax(axis=-1)
        following = np.full_like(score, -np.inf)
        following[..., blank_index] = np.take_along_axis(
            score, best_class[..., np.newaxis], axis=-1)[..., 0] + step[..., blank_index]
        came_now = came[t]  # a view
        came_now[..., blank_index] = best_class
        # onto character c: stay on c (a repeat), or come from another class with one fewer
        before = score[:, :-1]  # n - 1 characters, for n = 1..max_length
        first = before.argmax(axis=-1)  # the best and second best class (ddddocr has thousands)
        others = before.copy()
        np.put_along_axis(others, first[..., np.newaxis], -np.inf, axis=-1)
        second = others.argmax(axis=-1)
        first_score = np.take_along_axis(before, first[..., np.newaxis], axis=-1)
        second_score = np.take_along_axis(others, second[..., np.newaxis], axis=-1)
        is_first = class_ids == first[..., np.newaxis]
        new_score = np.where(is_first, second_score, first_score)
        new_from = np.where(is_first, second[..., np.newaxis], first[..., np.newaxis])
        best = score.copy()  # staying, unless coming anew is better
        best_from = np.broadcast_to(class_ids, score.shape).copy()
        better = new_score > score[:, 1:]
        best[:, 1:] = np.where(better, new_score, score[:, 1:])
        best_from[:, 1:] = np.where(better, new_from, best_from[:, 1:])
        following[..., characters] = best[..., characters] + step[..., characters]
        came_now[..., characters] = best_from[..., characters]
        score = following
    allowed = score[:, min_length:max_length + 1].reshape(batch, -1)
    flat = allowed.argmax(axis=-1)
    count = min_length + flat // classes
    current = flat % classes
    possible = np.isfinite(allowed[np.arange(batch), flat])
    paths = np.empty((batch, steps), dtype=np.int64)
    paths[:, -1] = current
    for t in range(steps - 1, 0, -1):
        previous = came[t, np.arange(batch), count, current].astype(np.int64)
        count = count - ((current != blank_index) & (previous != current))
        current = previous
        paths[:, t - 1] = current
    return np.where(possible[:, np.newaxis], paths, fallback)
