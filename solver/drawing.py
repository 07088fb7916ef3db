"""Draw text captchas with the ``captcha`` package.

One drawer serves the local demo site and the training look-alikes, so both
draw from the same settings (a profile's ``synthetic`` section or a demo style).

Example::

    >>> drawer = CaptchaDrawer(width=160, height=60)
    >>> png = drawer.png("7K2Q")
    >>> png[:4]
    b'\\x89PNG'
"""

from __future__ import annotations

import io
import os
import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from captcha.image import ImageCaptcha, random_color
from PIL.ImageFilter import SMOOTH

if TYPE_CHECKING:
    from PIL.Image import Image

    from solver.profiles import SyntheticSection


ColorTuple = tuple[int, int, int] | tuple[int, int, int, int]


class _TunableCaptcha(ImageCaptcha):
    """ImageCaptcha whose dots and curves can be counted, not only switched on."""

    def __init__(self, width: int, height: int, fonts: list[str] | None,
                 font_sizes: tuple[int, ...], noise_dots: int, noise_curves: int) -> None:
        super().__init__(width=width, height=height, fonts=fonts, font_sizes=font_sizes)
        self._noise_dots = noise_dots
        self._noise_curves = noise_curves

    def generate_image(self, chars: str, bg_color: ColorTuple | None = None,
                       fg_color: ColorTuple | None = None) -> Image:
        background = bg_color or random_color(238, 255)
        color = fg_color or random_color(10, 200, secrets.randbelow(36) + 220)
        image = self.create_captcha_image(chars, color, background)
        if self._noise_dots:
            self.create_noise_dots(image, color, number=self._noise_dots)
        for _ in range(self._noise_curves):
            self.create_noise_curve(image, color)
        return image.filter(SMOOTH)


@dataclass(frozen=True)
class CaptchaDrawer:
    """Draws captcha images of one look.

    ``fonts`` are TrueType files; empty means the captcha package's own font.
    Pixels are random on every call (the package draws its noise from
    ``secrets``); only the text is under the caller's control.
    """

    width: int = 160
    height: int = 60
    fonts: tuple[str, ...] = ()
    font_sizes: tuple[int, ...] = (42, 50, 56)
    noise_dots: int = 50
    noise_curves: int = 1
    _engine: _TunableCaptcha = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        engine = _TunableCaptcha(
            width=self.width, height=self.height,
            fonts=[os.fspath(f) for f in self.fonts] or None,
            font_sizes=tuple(self.font_sizes), noise_dots=self.noise_dots,
            noise_curves=self.noise_curves,
        )
        object.__setattr__(self, "_engine", engine)

    def __reduce__(self) -> tuple[type[CaptchaDrawer], tuple[object, ...]]:
        # rebuilt from its settings in another process: loaded fonts do not pickle
        return (CaptchaDrawer, (self.width, self.height, self.fonts, self.font_sizes,
                                self.noise_dots, self.noise_curves))

    @classmethod
    def from_settings(cls, settings: SyntheticSection, base: Path | None = None) -> CaptchaDrawer:
        """A drawer for a profile's ``synthetic`` section; fonts resolve against ``base``."""
        fonts = tuple(str((base or Path.cwd()) / font) for font in settings.fonts)
        return cls(width=settings.width, height=settings.height, fonts=fonts,
                   font_sizes=tuple(settings.font_sizes), noise_dots=settings.noise_dots,
                   noise_curves=settings.noise_curves)

    def image(self, text: str) -> Image:
        """The captcha for ``text`` as a PIL image (RGB)."""
        return self._engine.generate_image(text)

    def png(self, text: str) -> bytes:
        """The captcha for ``text`` as PNG bytes."""
        buffer = io.BytesIO()
        self.image(text).save(buffer, format="PNG")
        return buffer.getvalue()


def random_text(rng: random.Random, charset: Sequence[str], min_length: int,
                max_length: int, weights: Sequence[float] | None = None) -> str:
    """A random answer: length uniform in [min, max]; characters uniform in charset,
    or drawn in proportion to ``weights`` (one per character) when given."""
    length = rng.randint(min_length, max_length)
    if weights is not None:
        return "".join(rng.choices(charset, weights=weights, k=length))
    return "".join(rng.choice(charset) for _ in range(length))
