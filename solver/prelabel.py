"""Readers that propose labels for a site's images before it has a model of its own.

A *pre-labelling reader* reads captcha images with something that was not
trained on the site: any model folder (the shipped ``models/general``, another
site's model, or the site's own), or ddddocr's generic model. What it reads is
then mapped into the site's format:

* case: when the reader or the site ignores case and the site's charset holds
  letters of one case only, the reading is folded onto that case (a model of
  ``0-9A-Z`` proposes ``k7qp`` for a lowercase site). When the site tells the
  cases apart (both cases in its charset) and the reader does not, a reading
  with letters keeps the reader's case but gets **no confidence** (``None``): a
  person sees it on the labelling page, self-training never takes it;
* fit: a reading with characters outside the site's charset, or a length
  outside its range, gets **no suggestion** (:attr:`Proposal.text` is ``""``,
  the confidence ``0.0``, and :attr:`Proposal.problem` says why).

A reader that has no confidence of its own (ddddocr before it exposed
probabilities) proposes texts with confidence ``None``, which are never turned
into pseudo-labels.

    reader = open_reader("general", profile, Path("models"))
    for proposal in reader.propose([png_bytes]):
        proposal.text, proposal.confidence, proposal.problem
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from solver.errors import SolverError

if TYPE_CHECKING:
    import numpy as np

    from solver.profiles import FormatSection, SiteProfile

logger = logging.getLogger(__name__)

#: the reader specs besides a model folder's path
READER_NAMES = ("ddddocr", "general", "site")
GENERAL_MODEL = "general"
PRELABEL_INSTALL = "pip install 'solver[prelabel]' (or: pip install ddddocr)"


class PrelabelError(SolverError):
    """A pre-labelling reader that cannot be opened (a missing model, a bad spec)."""

    exit_code = 2


class ReaderUnavailableError(PrelabelError):
    """An optional reader whose package is not installed."""


@dataclass(frozen=True)
class Proposal:
    """A reader's proposal for one image, mapped into the site's format.

    ``text`` is ``""`` when the reading does not fit the site (``problem`` says
    why); ``confidence`` is 0..1, or ``None`` when the reader cannot say how
    sure it is. ``raw`` is what the reader read, before the mapping.
    """

    text: str
    confidence: float | None
    raw: str
    problem: str | None = None
    milliseconds: float = 0.0

    @property
    def fits(self) -> bool:
        return self.problem is None


def fit_to_format(raw: str, confidence: float | None, fmt: FormatSection,
                  reader_case_sensitive: bool) -> Proposal:
    """Map a reader's text into the site's format (see the module's doc for the rules).

        >>> from solver.profiles import FormatSection
        >>> lower = FormatSection(charset="abcdefghijklmnopqrstuvwxyz0123456789", length=(4, 5))
        >>> fit_to_format("K7QP", 0.99, lower, reader_case_sensitive=False).text
        'k7qp'
        >>> fit_to_format("K7QPZZ", 0.99, lower, reader_case_sensitive=False).problem
        "'k7qpzz' has 6 characters, expected 4 to 5"
    """
    text = raw.strip()
    site_cases = _cases(fmt.charset)
    if (not reader_case_sensitive or not fmt.case_sensitive) and len(site_cases) == 1:
        text = text.upper() if site_cases == {"upper"} else text.lower()
    problem = fmt.label_problem(text)
    if problem is not None:
        return Proposal("", 0.0, raw, problem)
    text = fmt.normalise(text)
    if len(site_cases) == 2 and fmt.case_sensitive and not reader_case_sensitive \
            and any(ch.isalpha() for ch in text):
        confidence = None  # the reader cannot tell 'a' from 'A', and the site can
    return Proposal(text, None if confidence is None else float(confidence), raw)


def _cases(charset: str) -> set[str]:
    return ({"upper"} if any(ch.isupper() for ch in charset) else set()) | \
           ({"lower"} if any(ch.islower() for ch in charset) else set())


class PrelabelReader:
    """Reads images with no site-specific training and maps the readings into the site's format.

    Subclasses implement :meth:`read_raw`; :meth:`propose` maps, and :meth:`read`
    gives one proposal (it has ``text`` and ``confidence`` like a
    :class:`~solver.recognizers.Reading`, so ``solver collect`` can use a reader).
    """

    #: what the reader is, for messages (a folder, "ddddocr")
    description: str = "a reader"
    #: whether the reader tells 'a' from 'A' reliably
    case_sensitive: bool = False
    #: how many images :meth:`read_raw` takes at once to good effect
    batch_size: int = 1
    #: decode within the site's charset: the reader's classes the site cannot show are
    #: taken out of each step before decoding (False: read with all of them, then map)
    within_charset: bool = True

    def __init__(self, profile: SiteProfile) -> None:
        self.profile = profile

    def read_raw(self, images: Sequence[bytes]) -> list[tuple[str, float | None]]:
        """The reader's own text and confidence for each image."""
        raise NotImplementedError

    def propose(self, images: Sequence[bytes]) -> list[Proposal]:
        """Read ``images`` and map each reading into the site's format."""
        if not images:
            return []
        started = time.perf_counter()
        readings = self.read_raw(images)
        per_image = (time.perf_counter() - started) * 1000 / len(images)
        fmt = self.profile.format
        return [_with_time(fit_to_format(text, confidence, fmt, self.case_sensitive), per_image)
                for text, confidence in readings]

    def read(self, image: bytes) -> Proposal:
        """One image's proposal."""
        return self.propose([image])[0]

    def read_batch(self, images: Sequence[bytes]) -> list[Proposal]:
        """Like :meth:`propose` (the name a :class:`~solver.recognizers.Recognizer` uses)."""
        return self.propose(images)


def _with_time(proposal: Proposal, milliseconds: float) -> Proposal:
    from dataclasses import replace

    return replace(proposal, milliseconds=milliseconds)


class ModelFolderReader(PrelabelReader):
    """Any trained model folder, read with its own charset and length range.

    Unlike :class:`~solver.recognizers.Recognizer` with a profile, it does not
    refuse a model made for another format: the readings are mapped instead.
    """

    batch_size = 64

    def __init__(self, model_dir: str | os.PathLike[str], profile: SiteProfile) -> None:
        from solver.recognizers import Recognizer

        super().__init__(profile)
        self.model_dir = Path(model_dir)
        self.recognizer = Recognizer(self.model_dir, profile=None)
        metadata = self.recognizer.metadata
        self.case_sensitive = metadata.case_sensitive
        self.description = str(self.model_dir)
        fmt = profile.format
        model_chars = set(self.recognizer.charset.characters)
        if not metadata.case_sensitive:
            model_chars |= {ch.swapcase() for ch in model_chars}
        never = "".join(ch for ch in fmt.charset if ch not in model_chars)
        if never:
            logger.warning("%s cannot write %r of %s's charset: its suggestions never hold them",
                           self.model_dir, never, profile.name)
        if metadata.max_length < fmt.min_length or metadata.min_length > fmt.max_length:
            logger.warning("%s reads %d..%d characters, %s wants %d..%d: few readings will fit",
                           self.model_dir, metadata.min_length, metadata.max_length,
                           profile.name, fmt.min_length, fmt.max_length)
        # the model's classes the site can show, the blank (last) among them
        self.allowed = site_classes([*self.recognizer.charset.characters, ""], fmt,
                                    metadata.case_sensitive)

    def read_raw(self, images: Sequence[bytes]) -> list[tuple[str, float | None]]:
        recognizer = self.recognizer
        if recognizer.metadata.arch != "ctc" or not images:
            return [(reading.text, reading.confidence)
                    for reading in recognizer.read_batch(list(images))]
        # a model made for other sites reads as this site writes: its lengths, and where
        # within_charset, its characters (a digits site gets '0', not 'O', from a model of 62)
        import numpy as np

        batch = np.stack([recognizer.prepare(image) for image in images])
        probabilities = recognizer.probabilities(batch)
        if self.within_charset and not all(self.allowed):
            probabilities = _within(probabilities, self.allowed)
        return list(recognizer.charset.decode_ctc_batch(probabilities, self.profile.format.length))


def site_classes(characters: Sequence[str], fmt: FormatSection,
                 reader_case_sensitive: bool = True) -> np.ndarray:
    """Which of a reader's output classes (``characters``) a site can show, as 1.0 or 0.0.

    A character is allowed when the site's charset has it, or has it in the other case
    where the site or the reader ignores case, or the site holds one case only (see
    :func:`fit_to_format`). A blank (``""``) is always allowed.
    """
    import numpy as np

    site = set(fmt.charset)
    folded = not reader_case_sensitive or not fmt.case_sensitive or len(_cases(fmt.charset)) == 1
    return np.asarray([ch == "" or ch in site or (folded and ch.swapcase() in site)
                       for ch in characters], dtype=np.float32)


def _within(probabilities: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Per-step probabilities with the classes not ``allowed`` taken out, renormalised."""
    import numpy as np

    kept = probabilities * allowed
    return kept / np.maximum(kept.sum(axis=-1, keepdims=True), 1e-12)


class DdddocrReader(PrelabelReader):
    """ddddocr's generic model (``pip install ddddocr``): no training, no model folder.

    Its confidence is computed from its per-step probabilities the way this
    project's CTC models compute theirs (the product of the characters' winning
    probabilities times the least sure gap), when the installed ddddocr gives
    probabilities (``classification(..., probability=True)``); otherwise it is
    ``None``. Its case is treated as a guess: it is folded for a site of one case.
    """

    description = "ddddocr"
    case_sensitive = False

    def __init__(self, profile: SiteProfile) -> None:
        super().__init__(profile)
        try:
            import ddddocr
        except ImportError as error:
            raise ReaderUnavailableError(
                f"the ddddocr reader needs the ddddocr package, which is not installed "
                f"[{error}]; install it with: {PRELABEL_INSTALL}") from None
        self._ocr = _quiet_ddddocr(ddddocr)
        self._probabilities = _accepts_probability(self._ocr)

    def read_raw(self, images: Sequence[bytes]) -> list[tuple[str, float | None]]:
        return [self._read_one(bytes(image)) for image in images]

    def _read_one(self, image: bytes) -> tuple[str, float | None]:
        try:
            if self._probabilities:
                return _ddddocr_reading(self._ocr.classification(image, probability=True),
                                        self.profile.format if self.within_charset else None)
            return str(self._ocr.classification(image)), None
        except Exception as error:  # ddddocr has its own exceptions, and wraps others in them
            raise PrelabelError(f"ddddocr could not read the image ({error})") from error


def _quiet_ddddocr(module: Any) -> Any:
    """``ddddocr.DdddOcr`` without its start-up advert on stdout."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # older versions print even with show_ad=False
        try:
            return module.DdddOcr(show_ad=False)
        except TypeError:  # versions before show_ad
            return module.DdddOcr()


def _accepts_probability(ocr: Any) -> bool:
    import inspect

    try:
        return "probability" in inspect.signature(ocr.classification).parameters
    except (TypeError, ValueError):
        return False


def _ddddocr_reading(result: Any, fmt: FormatSection | None = None) -> tuple[str, float | None]:
    """Text and CTC confidence from ddddocr's ``probability=True`` output.

    Recent versions answer ``{"text", "probabilities", "charset", "confidence"}``
    (softmax per step, blank at index 0); older ones ``{"charsets", "probability"}``.
    With ``fmt``, the reading is decoded within the site's charset (ddddocr knows
    thousands of characters: its best guess at a digit site's ``7`` may be ``r``).
    """
    import numpy as np

    from solver.charset import decode_ctc_greedy

    if isinstance(result, str):
        return result, None
    if not isinstance(result, dict):
        return str(result), None
    charset = result.get("charset", result.get("charsets"))
    probabilities = result.get("probabilities", result.get("probability"))
    if charset is None or probabilities is None:
        return str(result.get("text", "")), None
    steps = np.asarray(probabilities, dtype=np.float32)
    steps = steps.reshape(-1, steps.shape[-1])  # (steps, 1, classes) or (steps, classes)
    if steps.shape[-1] != len(charset) or not len(steps):
        return str(result.get("text", "")), None
    if fmt is not None:
        allowed = _ddddocr_classes(tuple(charset), fmt)
        [(text, confidence)] = decode_ctc_greedy(_within(steps, allowed)[np.newaxis],
                                                 list(charset), blank_index=0,
                                                 lengths=fmt.length)
        return text, confidence
    [(text, confidence)] = decode_ctc_greedy(steps[np.newaxis], list(charset), blank_index=0)
    return str(result.get("text", text)), confidence


_DDDDOCR_CLASSES: dict[tuple[int, str, bool], np.ndarray] = {}


def _ddddocr_classes(charset: tuple[str, ...], fmt: FormatSection) -> np.ndarray:
    """:func:`site_classes` of ddddocr's charset (thousands of classes), worked out once."""
    key = (len(charset), fmt.charset, fmt.case_sensitive)
    if key not in _DDDDOCR_CLASSES:
        allowed = site_classes(charset, fmt, reader_case_sensitive=False)
        allowed[0] = 1.0  # ddddocr's blank
        _DDDDOCR_CLASSES[key] = allowed
    return _DDDDOCR_CLASSES[key]


def open_reader(spec: str, profile: SiteProfile, models_dir: str | os.PathLike[str]) -> PrelabelReader:
    """The reader that ``spec`` names.

    ``ddddocr``: ddddocr's generic model; ``general``: ``MODELS_DIR/general``, else the
    shipped general model; ``site``: the site's own model ``MODELS_DIR/NAME`` (else a
    shipped one of that name); anything else: a model folder's path.

        reader = open_reader("general", load_profile("site_profiles/example.yaml"), "models")
    """
    from solver.artifacts import METADATA_FILE, find_model

    if spec == "ddddocr":
        return DdddocrReader(profile)
    if spec == GENERAL_MODEL:
        folder = find_model(GENERAL_MODEL, models_dir)  # the user's, else the shipped one
        if not (folder / METADATA_FILE).is_file():
            raise PrelabelError(
                f"{folder}: no general model there (no {METADATA_FILE}); put the general model "
                f"in {folder}, point --models-dir at the folder that holds general/, or use "
                "another reader: ddddocr, or a model folder's path")
        return ModelFolderReader(folder, profile)
    if spec == "site":
        folder = find_model(profile.name, models_dir)
        if not (folder / METADATA_FILE).is_file():
            raise PrelabelError(
                f"{folder}: {profile.name} has no model yet (no {METADATA_FILE}); train one with "
                f"`solver train --site {profile.name}`, or use another reader: general, "
                "ddddocr, or a model folder's path")
        return ModelFolderReader(folder, profile)
    folder = Path(spec)
    if not folder.is_dir():
        raise PrelabelError(
            f"--reader {spec}: neither {', '.join(READER_NAMES)} nor a model folder (no folder "
            f"{folder}); give one of those names or the path of a trained model's folder")
    if not (folder / METADATA_FILE).is_file():
        raise PrelabelError(f"{folder}: not a model folder (no {METADATA_FILE}); give the folder "
                            "that `solver train --out` wrote")
    return ModelFolderReader(folder, profile)


def ddddocr_installed() -> bool:
    """Whether the ddddocr package can be imported (without importing it)."""
    import importlib.util

    return importlib.util.find_spec("ddddocr") is not None


def default_reader_spec(profile: SiteProfile, models_dir: str | os.PathLike[str]) -> str:
    """``site`` when the site has a model, else ``ddddocr`` when it is installed, else ``general``.

    ddddocr comes before the shipped general model: on the benchmark sets it
    proposed the exact label for 82.7% (kaggle_v2) and 100% (henan_digits) of
    the images, the general model for 1.4% and 36.9% (benchmarks/README.md).
    """

    from solver.artifacts import METADATA_FILE, find_model

    if (find_model(profile.name, models_dir) / METADATA_FILE).is_file():
        return "site"
    return "ddddocr" if ddddocr_installed() else GENERAL_MODEL
