"""The segment reader: OpenCV cuts the characters apart (``solver.segment``) and a small
CNN reads each crop. Its trainer is ``solver.training.segment``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from solver.archs.base import Arch, ArchConfig

if TYPE_CHECKING:
    from solver.recognizers import Recognizer

CROP_SIZE = 32


@dataclass(frozen=True)
class SegmentConfig(ArchConfig):
    """How a site's captchas are cut: its character width over height, and the crop size."""

    character_aspect: float = 0.7
    crop_size: int = CROP_SIZE


def _read_one(recognizer: Recognizer, image: Any) -> tuple[str, float]:
    import numpy as np

    from solver.imaging import decode_image
    from solver.segment import crop_characters, segment

    if isinstance(image, (bytes, bytearray, memoryview)):
        image = decode_image(bytes(image))
    config = recognizer.config
    assert isinstance(config, SegmentConfig)  # the registry pairs this decode with its config
    boxes = segment(image, expected=(recognizer.metadata.min_length, recognizer.metadata.max_length),
                    character_aspect=float(config.character_aspect))
    if not boxes:
        return "", 0.0
    probabilities = recognizer.probabilities(crop_characters(image, boxes, int(config.crop_size)))
    text = recognizer.charset.decode(int(i) for i in probabilities.argmax(axis=-1))
    return text, float(np.prod(probabilities.max(axis=-1)))  # every character must be right


def _decode(recognizer: Recognizer, images: Sequence[Any]) -> list[tuple[str, float]]:
    return [_read_one(recognizer, image) for image in images]


ARCH = Arch(
    name="segment",
    summary="OpenCV cuts the characters apart and a small CNN reads each",
    config_type=SegmentConfig,
    normalisation="binary_crop",  # solver.segment's crops
    decode=_decode,
    trainer="solver.training.segment:train_segment_model",
    blank_last=False,
    warm_up=False,  # it reads per character: nothing to allocate ahead
)
