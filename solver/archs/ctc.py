"""The CTC reader: a convolutional network reading the whole image, decoded with CTC.

Its Keras builder and trainer are ``solver.training.models`` and
``solver.training.ctc``; this module holds what reading needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from solver.archs.base import Arch, ArchConfig, prepared_batch

if TYPE_CHECKING:
    from solver.recognizers import Recognizer


@dataclass(frozen=True)
class CTCConfig(ArchConfig):
    """The shape of a CTC reader; saved in the model's metadata."""

    height: int = 32
    width: int = 96
    filters: tuple[int, ...] = (32, 64, 96, 96)
    pools: tuple[tuple[int, int], ...] = ((2, 2), (2, 2), (2, 1), (1, 1))
    head_units: int = 128
    head_layers: int = 2
    head_kernel: int = 3
    dropout: float = 0.2
    #: 1: grayscale in (OpenCV's); 3: RGB, for sites whose characters differ by colour
    channels: int = 1

    @property
    def time_steps(self) -> int:
        steps = self.width
        for _, pool_width in self.pools:
            steps //= pool_width
        return steps

    @classmethod
    def for_image(cls, image_height: int, image_width: int, height: int = 32,
                  **changes: Any) -> CTCConfig:
        """A config whose input keeps the captcha's aspect ratio at ``height`` rows."""
        width = max(32, int(round(height * image_width / image_height / 8)) * 8)
        return cls(height=height, width=width, **changes)


def _decode(recognizer: Recognizer, images: Sequence[Any]) -> list[tuple[str, float]]:
    probabilities = recognizer.probabilities(prepared_batch(recognizer, images))
    metadata = recognizer.metadata  # the format's lengths (a Recognizer checks they are the profile's)
    return recognizer.charset.decode_ctc_batch(probabilities,
                                               (metadata.min_length, metadata.max_length))


ARCH = Arch(
    name="ctc",
    summary="a CNN+RNN reading the whole image",
    config_type=CTCConfig,
    normalisation="divide_255",  # gray / 255 of the whole image
    decode=_decode,
    trainer="solver.training.ctc:train_ctc",
    blank_last=True,
    warm_up=True,
)
