"""A preview sheet: a site's images and their look-alikes side by side."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from solver.errors import UsageError

SHEET_MARGIN = 8
SHEET_HEADER = 22
SHEET_CAPTION = 16


def sheet_scale(heights: Sequence[int]) -> int:
    """The magnification that makes the tallest image at least 80 pixels high (1 to 8)."""
    return max(1, min(8, math.ceil(80 / max(max(heights), 1))))


def _shortened(text: str, font: Any, width: int) -> str:
    """``text``, or its end after '...', whichever fits in ``width`` pixels."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength("..." + text) > width:
        text = text[1:]
    return "..." + text


def preview_sheet(lookalikes: Sequence[tuple[np.ndarray, str]],
                  real: Sequence[tuple[np.ndarray, str]] = (),
                  titles: tuple[str, str] = ("real", "look-alike")) -> np.ndarray:
    """An RGB sheet: ``real`` images in the left column (when given), ``lookalikes`` in the
    right one, row by row, all at one magnification, each captioned with its label."""
    from PIL import Image, ImageDraw, ImageFont
    from captcha.image import DEFAULT_FONTS

    columns = [list(real), list(lookalikes)] if real else [list(lookalikes)]
    every = [image for column in columns for image, _ in column]
    if not every:
        raise UsageError("nothing to show (give -n 1 or more)")
    scale = sheet_scale([image.shape[0] for image in every])
    cell_w = max(image.shape[1] for image in every) * scale
    cell_h = max(image.shape[0] for image in every) * scale
    rows = max(len(column) for column in columns)
    width = SHEET_MARGIN + len(columns) * (cell_w + SHEET_MARGIN)
    height = SHEET_HEADER + rows * (cell_h + SHEET_CAPTION + SHEET_MARGIN) + SHEET_MARGIN
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.truetype(DEFAULT_FONTS[0], 12)
    names = list(titles) if real else [titles[1]]
    for index, (column, name) in enumerate(zip(columns, names)):
        left = SHEET_MARGIN + index * (cell_w + SHEET_MARGIN)
        draw.text((left, 4), _shortened(name, font, cell_w), fill=(0, 0, 0), font=font)
        for row, (image, label) in enumerate(column):
            top = SHEET_HEADER + row * (cell_h + SHEET_CAPTION + SHEET_MARGIN)
            big = cv2.resize(image, (image.shape[1] * scale, image.shape[0] * scale),
                             interpolation=cv2.INTER_NEAREST)
            sheet.paste(Image.fromarray(big), (left, top))
            caption = f"{label}  {image.shape[1]}x{image.shape[0]}"
            draw.text((left, top + big.shape[0] + 2), caption, fill=(60, 60, 60), font=font)
    return np.asarray(sheet)
