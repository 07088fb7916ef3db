"""The model architectures, one module each, found by name: the one place that knows them.

An architecture is an :class:`Arch`: its name (a profile's ``model.pipeline``
and a model's ``arch`` in ``metadata.json``), its typed config (saved as the
model's ``arch_config``), how a trained model reads images, and where its
trainer lives. This package needs no TensorFlow, so a reader loads it at
solve time; the trainers (``solver.training.ctc``, ``solver.training.segment``)
import Keras and load only when a model is trained::

    >>> from solver.archs import ARCHS, get_arch
    >>> sorted(ARCHS)
    ['ctc', 'segment']
    >>> get_arch("ctc").config_from_dict({"width": 128}).time_steps
    32

A new architecture is one module here (its ``ARCH``), one trainer module, and
its line in :data:`ARCHS`.
"""

from __future__ import annotations

from solver.archs.base import Arch, ArchConfig
from solver.archs.ctc import ARCH as CTC
from solver.archs.ctc import CTCConfig
from solver.archs.segment import ARCH as SEGMENT
from solver.archs.segment import SegmentConfig
from solver.errors import UsageError

#: every architecture by name; the first is the default
ARCHS: dict[str, Arch] = {arch.name: arch for arch in (CTC, SEGMENT)}

__all__ = ["ARCHS", "Arch", "ArchConfig", "CTCConfig", "SegmentConfig", "get_arch"]


def get_arch(name: str) -> Arch:
    """The architecture called ``name``; an unknown name is an error that lists the known."""
    try:
        return ARCHS[name]
    except KeyError:
        raise UsageError(f"architecture {name!r} is not one of {', '.join(ARCHS)}") from None
