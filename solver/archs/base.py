"""What every architecture provides (see :mod:`solver.archs`)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import numpy as np

    from solver.charset import Charset
    from solver.recognizers import Recognizer

Config = TypeVar("Config", bound="ArchConfig")


@dataclass(frozen=True)
class ArchConfig:
    """A typed architecture config; saved as ``arch_config`` in ``metadata.json``.

    Tuples are written as lists, and read back as tuples; keys the class does
    not know (a newer solver's) are left out, and a value of another type than
    the field's default is a ``ValueError``.
    """

    def to_dict(self) -> dict[str, Any]:
        return {key: _listed(value) for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls: type[Config], data: dict[str, Any]) -> Config:
        known = {item.name: item for item in fields(cls)}
        values = {key: _tupled(value) for key, value in data.items() if key in known}
        for key, value in values.items():
            default = known[key].default
            wanted = (int, float) if isinstance(default, float) else type(default)
            if isinstance(value, bool) or not isinstance(value, wanted):
                raise ValueError(f"{key} {value!r} is not a {type(default).__name__}")
        return cls(**values)


def _listed(value: Any) -> Any:
    return [_listed(item) for item in value] if isinstance(value, (tuple, list)) else value


def _tupled(value: Any) -> Any:
    return tuple(_tupled(item) for item in value) if isinstance(value, list) else value


#: how a trained model reads images: (recognizer, images) -> [(text, confidence), ...]
Decode = Callable[["Recognizer", Sequence[Any]], list[tuple[str, float]]]


@dataclass(frozen=True)
class Arch:
    """One architecture: its name, config, reading and trainer.

    ``trainer`` is ``"module:function"``, imported when a model is trained
    (it needs Keras); the function takes ``(options, samples, label_report,
    out, report, started)`` and returns a ``TrainResult``.
    """

    name: str
    summary: str  # one sentence, for the profile schema and --help
    config_type: type[ArchConfig]
    normalisation: str  # what the model's input is, as metadata.json says it
    decode: Decode
    trainer: str
    blank_last: bool  # the output's last class is a CTC blank (its output has len(charset) + 1)
    warm_up: bool  # one read ahead pays for the interpreter's allocation

    def config_from_dict(self, data: dict[str, Any]) -> ArchConfig:
        return self.config_type.from_dict(data)

    def output_classes(self, charset: Charset) -> int:
        """How many classes the model's last axis has."""
        return charset.num_classes if self.blank_last else len(charset)

    def load_trainer(self) -> Callable[..., Any]:
        module, _, function = self.trainer.partition(":")
        return getattr(importlib.import_module(module), function)  # type: ignore[no-any-return]


def prepared_batch(recognizer: Recognizer, images: Sequence[Any]) -> np.ndarray:
    """The images as one model input batch (N, H, W, C)."""
    import numpy as np

    return np.stack([recognizer.prepare(image) for image in images])
