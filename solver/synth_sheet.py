"""A profile's look-alikes drawn beside the site's own captchas, as one PNG sheet.

``solver synth preview`` is :func:`write_preview`: a person judges a fit by eye
on it (the numbers of ``solver synth fit`` say how close, the sheet says how)::

    sheet = write_preview(load_profile("site_profiles/shop.yaml"), Path("shop-preview.png"),
                          data="data/shop", rows=8)
    sheet.path, sheet.lookalikes, sheet.real
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from solver.profiles import SiteProfile


@dataclass(frozen=True)
class PreviewSheet:
    """What :func:`write_preview` wrote: the file, its rows of each kind, its size in pixels."""

    path: Path
    lookalikes: int
    real: int
    width: int
    height: int


def write_preview(profile: SiteProfile, out: Path, data: str | os.PathLike[str] | None = None,
                  rows: int = 8, seed: int = 0) -> PreviewSheet:
    """Write a PNG sheet to ``out``: up to ``rows`` real images of the labelled folder ``data``
    (when given) in the left column, and look-alikes drawn with the profile's ``synthetic``
    settings in the right one.

    A look-alike shows its real neighbour's label when that label fits the profile's
    format (the same text in both columns makes the looks easy to compare), else a
    random text; ``seed`` picks the real images, the texts and the drawing."""
    from PIL import Image

    from solver.drawing import CaptchaDrawer, random_text
    from solver.synth import load_sample, preview_sheet

    fmt = profile.format
    real: list[tuple[np.ndarray, str]] = []
    if data:
        images, labels = load_sample(data, rows, seed)
        real = list(zip(images, labels))
    rng = random.Random(seed)
    texts = [label if label and fmt.label_problem(label) is None
             else random_text(rng, fmt.charset, fmt.min_length, fmt.max_length)
             for _, label in real] or [random_text(rng, fmt.charset, fmt.min_length,
                                                   fmt.max_length) for _ in range(rows)]
    base = profile.source.parent if profile.source else None
    drawer = CaptchaDrawer.from_settings(profile.synthetic, base, seed=seed)
    lookalikes = [(np.asarray(drawer.image(text)), text) for text in texts]
    sheet = preview_sheet(lookalikes, real, titles=(f"real: {data}", f"look-alike: {profile.name}"))
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(out)
    return PreviewSheet(out, len(lookalikes), len(real), sheet.shape[1], sheet.shape[0])
