"""Look-alikes fitted to a site's own captchas, and a look at how close they are.

Four steps, each a module and each usable alone:

* :mod:`~solver.synth.measure`: statistics of a set of images (colours, a frame,
  text ink, height, width and strokes, clutter, edge softness, edge directions
  and run lengths), measured alike on real images and look-alikes.
* :mod:`~solver.synth.score`: how far look-alikes drawn with some settings are
  from the real images (0: as close as the images are to their own average).
* :mod:`~solver.synth.fit`: :func:`fit_look` reads what it can off the images
  (size, colours, frame) and searches the rest one setting at a time.
* :mod:`~solver.synth.preview` and :mod:`~solver.synth.write`: real images and
  look-alikes side by side; the fitted settings written into a profile file.

Example::

    >>> from solver.synth import fit_look, load_sample
    >>> images, labels = load_sample("../shared/datasets/kaggle_v2", 96)  # doctest: +SKIP
    >>> result = fit_look(images, labels, profile.synthetic)              # doctest: +SKIP
    >>> result.settings.width, round(result.score_after, 2)               # doctest: +SKIP
    (200, 0.5)
"""

from __future__ import annotations

from solver.synth.fit import FitResult, available_fonts, case_share, fit_look, read_look
from solver.synth.measure import (FEATURES, HISTOGRAMS, FitError, Measurements, Probe,
                                  load_sample, measure, probe_for, type_properties)
from solver.synth.preview import (SHEET_CAPTION, SHEET_HEADER, SHEET_MARGIN, preview_sheet,
                                  sheet_scale)
from solver.synth.score import Evaluator, Reference
from solver.synth.write import (synthetic_block, synthetic_data, update_profile_file,
                                update_profile_text)

__all__ = [
    "FEATURES", "HISTOGRAMS", "SHEET_CAPTION", "SHEET_HEADER", "SHEET_MARGIN", "Evaluator",
    "FitError", "FitResult", "Measurements", "Probe", "Reference", "available_fonts",
    "case_share", "fit_look", "load_sample", "measure", "preview_sheet", "probe_for",
    "read_look", "sheet_scale", "synthetic_block", "synthetic_data", "type_properties",
    "update_profile_file", "update_profile_text",
]
