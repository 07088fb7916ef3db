"""What every captcha reader offers: image bytes in, a reading out.

A site's own model (:class:`~solver.recognizers.Recognizer`) and the readers that
propose labels before there is one (:class:`~solver.prelabel.PrelabelReader`)
both satisfy :class:`Reader`, by their shape alone, so ``solver collect`` and
``solver learn`` take either::

    def first_text(reader: Reader[TextReading], png: bytes) -> str:
        return reader.read(png).text

A :class:`~solver.recognizers.Reading` is always sure of how sure it is (a float
confidence); a pre-labelling :class:`~solver.prelabel.Proposal` may say
``None``. ``Reader[Reading]`` is what solving needs (it compares the confidence
with the profile's ``min_confidence``); ``Reader[TextReading]`` is any reader.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar, runtime_checkable


class TextReading(Protocol):
    """One image's reading: the text, how sure the reader is (0..1, ``None`` when it cannot
    say), and how long the reading took."""

    @property
    def text(self) -> str: ...

    @property
    def confidence(self) -> float | None: ...

    @property
    def milliseconds(self) -> float: ...


ReadingT_co = TypeVar("ReadingT_co", bound=TextReading, covariant=True)


@runtime_checkable
class Reader(Protocol[ReadingT_co]):
    """Reads captcha images (PNG, JPEG, ... bytes), one or a batch in one model call."""

    def read(self, image: bytes) -> ReadingT_co:
        """One image's reading."""
        ...

    def read_batch(self, images: Sequence[bytes]) -> Sequence[ReadingT_co]:
        """Each image's reading, in order."""
        ...
