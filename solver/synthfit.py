"""The look-alike fit's old import path; the code is in :mod:`solver.synth`."""

from __future__ import annotations

from typing import Any

import solver.synth

_MOVED = ("fit_look", "load_sample", "preview_sheet", "synthetic_block", "synthetic_data",
          "update_profile_file")


def __getattr__(name: str) -> Any:
    # kept until every import moves to solver.synth; looked up on each use, so a test that
    # replaces solver.synth.fit_look replaces it here too
    if name in _MOVED:
        return getattr(solver.synth, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r} (see solver.synth)")
