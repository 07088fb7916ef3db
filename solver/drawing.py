"""Draw text captchas with the ``captcha`` package.

One drawer serves the local demo site and the training look-alikes, so both
draw from the same settings: a drawer holds a profile's ``synthetic`` section
(:class:`solver.profiles.SyntheticSection`), whose fields and defaults are the
only list of look settings (a new one is added there, and drawn here).

Example::

    >>> drawer = CaptchaDrawer(width=160, height=60)  # or CaptchaDrawer(SyntheticSection(...))
    >>> png = drawer.png("7K2Q")
    >>> png[:4]
    b'\\x89PNG'
"""

from __future__ import annotations

import dataclasses
import io
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from captcha.image import ImageCaptcha
from PIL import Image as PILImage
from PIL.Image import Resampling, Transform
from PIL.ImageDraw import Draw
from PIL.ImageFilter import SMOOTH, GaussianBlur

from solver.profiles import SyntheticSection

if TYPE_CHECKING:
    from PIL.Image import Image


ColorTuple = tuple[int, int, int] | tuple[int, int, int, int]


def parse_colour(text: str) -> tuple[int, int, int]:
    """``"#1f3f8f"`` -> ``(31, 63, 143)``."""
    return int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16)


class _TunableCaptcha(ImageCaptcha):
    """ImageCaptcha with every setting of a profile's ``synthetic`` section.

    It draws as the package does (glyph offsets, rotation, warp, placement,
    dots, curves, smoothing) with the same defaults, but takes its randomness
    from its own source, so that a seeded drawer repeats its pixels.
    """

    def __init__(self, look: SyntheticSection, seed: int | None) -> None:
        super().__init__(width=look.width, height=look.height,
                         fonts=[os.fspath(f) for f in look.fonts] or None,
                         font_sizes=tuple(look.font_sizes))
        self.look = look
        self.character_rotate = (-look.rotation, look.rotation)
        self.character_offset_dy = (0, look.vertical_jitter)
        self.word_offset_dx = look.overlap
        self.random: random.Random = (random.Random(seed) if seed is not None
                                      else random.SystemRandom())
        self.centres: list[float] = []  # of the last image's characters (see image_and_centres)

    # colours -------------------------------------------------------------

    def _text_colour(self) -> ColorTuple:
        scheme, pick = self.look.text_colours, self.random.randint
        if scheme == "random":  # the package's: partly transparent, see _glyph_mask
            return pick(10, 200), pick(10, 200), pick(10, 200), pick(220, 255)
        if scheme == "random-dark":
            return pick(0, 150), pick(0, 150), pick(0, 150), 255
        return (*parse_colour(self.random.choice(scheme)), 255)

    def _background(self) -> Image:
        look, pick = self.look, self.random.randint
        if look.background == "random-light":
            colour = (pick(238, 255), pick(238, 255), pick(238, 255))
        else:
            jitter = look.background_jitter
            colour = tuple(min(255, max(0, c + pick(-jitter, jitter)))  # type: ignore[assignment]
                           for c in parse_colour(look.background))
        image = PILImage.new("RGB", (self._width, self._height), colour)
        if look.background_gradient:
            ramp = np.linspace(1.0, 0.0, self._width) if look.background_gradient > 0 \
                else np.linspace(0.0, 1.0, self._width)
            shade = (abs(look.background_gradient) * ramp)[None, :, None]
            pixels = np.asarray(image, np.float32) - shade
            image = PILImage.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        return image

    # characters ----------------------------------------------------------

    def _glyph(self, char: str, colour: ColorTuple) -> Image:
        """One character on a transparent image: offset, turned and warped as the package does."""
        rng, stroke = self.random, self.look.stroke
        font = rng.choice(self.truefonts)
        scratch = Draw(PILImage.new("RGB", (1, 1)))
        _, _, w, h = scratch.multiline_textbbox((1, 1), char, font=font, stroke_width=stroke)
        w, h = int(w) + stroke, int(h) + stroke
        if self.look.baseline:  # one frame for every character: lower case stays short
            ascent, descent = font.getmetrics()
            h = ascent + descent + 2 * stroke
        dx1 = rng.randint(*self.character_offset_dx)
        dy1 = rng.randint(*self.character_offset_dy)
        image = PILImage.new("RGBA", (w + dx1, h + dy1))
        draw = Draw(image)
        smooth = self.look.antialias
        if not smooth:
            draw.fontmode = "1"  # hard edges
        draw.text((dx1 + stroke, dy1 + stroke), char, font=font, fill=colour,
                  stroke_width=stroke, stroke_fill=colour)
        box = image.getbbox()
        if self.look.baseline and box is not None:  # trimmed at the sides only
            box = (box[0], 0, box[2], image.height)
        image = image.crop(box)
        resample = Resampling.BILINEAR if smooth else Resampling.NEAREST
        image = image.rotate(rng.uniform(*self.character_rotate), resample, expand=True)
        # the package's warp, its arithmetic kept as it is
        low_x, high_x = self.character_warp_dx
        low_y, high_y = self.character_warp_dy
        dx2 = w * rng.random() * (high_x - low_x) + low_x
        dy2 = h * rng.random() * (high_y - low_y) + low_y
        x1, y1 = int(rng.uniform(-dx2, dx2)), int(rng.uniform(-dy2, dy2))
        x2, y2 = int(rng.uniform(-dx2, dx2)), int(rng.uniform(-dy2, dy2))
        w2, h2 = w + abs(x1) + abs(x2), h + abs(y1) + abs(y2)
        quad = (x1, y1, -x1, h2 - y2, w2 + x2, h2 + y2, w2 - x2, -y1)
        stretched = image.resize((w2, h2)) if smooth else image.resize((w2, h2), Resampling.NEAREST)
        return stretched.transform((w, h), Transform.QUAD, quad)

    def _glyph_mask(self, glyph: Image) -> Image:
        if self.look.text_colours == "random":
            # the package's mask: luminance, so dark colours come out partly transparent
            return glyph.convert("L").point(self.lookup_table)
        return glyph.getchannel("A")

    def _compose(self, chars: str, colours: list[ColorTuple], background: Image) -> Image:
        rng = self.random
        glyphs: list[Image] = []
        is_char: list[bool] = []  # False for the gaps ("spaces") between characters
        for char, colour in zip(chars, colours):
            if rng.random() < self.look.gap_probability:
                glyphs.append(self._glyph(" ", colour))
                is_char.append(False)
            glyphs.append(self._glyph(char, colour))
            is_char.append(True)
        text_width = sum(glyph.size[0] for glyph in glyphs)
        average = int(text_width / len(chars))
        extra = int(self.look.spacing * average)
        width = max(text_width + max(0, extra) * (len(glyphs) - 1), self._width)
        image = background.resize((width, self._height))
        most_overlap = int(self.word_offset_dx * average)
        offset = int(average * 0.1)
        centres = []
        for glyph, char in zip(glyphs, is_char):
            w, h = glyph.size
            image.paste(glyph, (offset, int((self._height - h) / 2)), self._glyph_mask(glyph))
            if char:
                centres.append(offset + w / 2)
            offset = offset + w + extra - rng.randint(0, most_overlap)
        if width > self._width:  # too wide: squeeze it in
            image = image.resize((self._width, self._height))
        self.centres = [x * self._width / width for x in centres]
        return image

    def _cased(self, chars: str) -> str:
        """The characters as drawn: with ``upper_case_share``, each letter in upper case with
        that chance, else in lower case (the answer, for a site that ignores case, is the same)."""
        share = self.look.upper_case_share
        if share is None:
            return chars
        return "".join((char.upper() if self.random.random() < share else char.lower())
                       if char.upper() != char.lower() and len(char.upper()) == 1
                       and len(char.lower()) == 1 else char for char in chars)

    # clutter -------------------------------------------------------------

    def _clutter(self, image: Image, colour: ColorTuple) -> None:
        look, rng, draw = self.look, self.random, Draw(image)
        w, h = image.size

        def ink() -> ColorTuple:
            if look.clutter_colours != "text":  # clutter of its own colours
                return (*parse_colour(rng.choice(look.clutter_colours)), 255)
            return self._text_colour() if look.colour_per_character else colour

        for _ in range(look.noise_dots):
            x, y = rng.randint(0, w), rng.randint(0, h)
            draw.line(((x, y), (x - 1, y - 1)), fill=ink(), width=3)
        for _ in range(look.noise_curves):  # the package's arcs
            x1 = rng.randint(0, int(w / 5))
            x2 = rng.randint(0, w - int(w / 5)) + int(w / 5)
            y1 = rng.randint(0, h - 2 * int(h / 5)) + int(h / 5)
            y2 = rng.randint(0, h - y1 - int(h / 5)) + y1
            end, start = rng.randint(160, 200), rng.randint(0, 20)
            draw.arc((x1, y1, x2, y2), start, end, fill=ink(), width=look.line_width)
        for _ in range(look.noise_lines):
            ends = ((rng.randint(0, w), rng.randint(0, h)), (rng.randint(0, w), rng.randint(0, h)))
            draw.line(ends, fill=ink(), width=look.line_width)

    def generate_image(self, chars: str, bg_color: ColorTuple | None = None,
                       fg_color: ColorTuple | None = None) -> Image:
        look = self.look
        background = (PILImage.new("RGB", (self._width, self._height), bg_color) if bg_color
                      else self._background())
        colour = fg_color or self._text_colour()
        each = look.colour_per_character and not fg_color
        colours = [self._text_colour() for _ in chars] if each else [colour] * len(chars)
        image = self._compose(self._cased(chars), colours, background)
        self._clutter(image, colour)
        if look.blur is None:
            image = image.filter(SMOOTH)
        elif look.blur:
            image = image.filter(GaussianBlur(look.blur))
        if look.border:
            Draw(image).rectangle((0, 0, self._width - 1, self._height - 1),
                                  outline=parse_colour(look.border))
        if look.grayscale:
            image = image.convert("L").convert("RGB")
        return image


#: the drawer's settings that a profile's ``synthetic`` section holds, fonts aside: the
#: section's fields, so that a setting added there is one the drawer takes
LOOK_SETTINGS: tuple[str, ...] = tuple(name for name in SyntheticSection.model_fields
                                       if name not in ("fonts", "variants"))


@dataclass(frozen=True, init=False)
class CaptchaDrawer:
    """Draws captcha images of one look: a profile's ``synthetic`` section.

    ``CaptchaDrawer(look)`` draws ``look`` (a :class:`~solver.profiles.SyntheticSection`
    without variants, its ``fonts`` TrueType files where this process finds them; empty
    means the captcha package's own font); settings given by name change it, and with no
    ``look`` they change the section's defaults, the captcha package's look::

        >>> CaptchaDrawer(width=120, noise_dots=0).look == SyntheticSection(width=120, noise_dots=0)
        True

    The section's settings read as the drawer's own (``drawer.width``), and
    ``dataclasses.replace(drawer, noise_dots=0)`` changes one. Settings are
    checked as a profile's are. Pixels are random on every call unless ``seed``
    is given: then a drawer repeats the same pixels for the same texts in the
    same order (a copy sent to another process repeats that stream too).
    """

    look: SyntheticSection
    seed: int | None
    _engine: _TunableCaptcha = field(init=False, repr=False, compare=False)

    def __init__(self, look: SyntheticSection | None = None, seed: int | None = None,
                 **settings: Any) -> None:
        if settings:
            base = look.model_dump() if look is not None else {}
            look = SyntheticSection.model_validate({**base, **settings})
        look = look if look is not None else SyntheticSection()
        if look.variants:
            raise ValueError("a CaptchaDrawer draws one look: give a section with variants to "
                             "CaptchaDrawer.from_settings, which mixes them")
        object.__setattr__(self, "look", look)
        object.__setattr__(self, "seed", seed)
        object.__setattr__(self, "_engine", _TunableCaptcha(look, seed))

    def __getattr__(self, name: str) -> Any:
        # only for names not found otherwise: the look's settings, as the drawer's own
        if name == "fonts" or name in LOOK_SETTINGS:
            return getattr(self.look, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __reduce__(self) -> tuple[type[CaptchaDrawer], tuple[object, ...]]:
        # rebuilt from its settings in another process: loaded fonts do not pickle
        return (CaptchaDrawer, (self.look, self.seed))

    @classmethod
    def from_settings(cls, settings: SyntheticSection, base: Path | None = None,
                      seed: int | None = None) -> CaptchaDrawer | MixedDrawer:
        """A drawer for a profile's ``synthetic`` section; fonts resolve against ``base``.

        A section with ``variants`` gives a :class:`MixedDrawer` over its looks.
        """
        if settings.variants:
            looks = settings.looks()
            return MixedDrawer(tuple(cls.from_settings(look, base, None if seed is None else seed + i)
                                     for i, look in enumerate(looks)), seed)
        fonts = tuple(str((base or Path.cwd()) / font) for font in settings.fonts)
        return cls(settings.model_copy(update={"fonts": fonts}), seed)

    def with_seed(self, seed: int | None) -> CaptchaDrawer:
        """The same look with its own random stream (``None``: unseeded)."""
        return dataclasses.replace(self, seed=seed)

    def image(self, text: str) -> Image:
        """The captcha for ``text`` as a PIL image (RGB)."""
        return self._engine.generate_image(text)

    def png(self, text: str) -> bytes:
        """The captcha for ``text`` as PNG bytes."""
        return _png(self.image(text))

    def image_and_centres(self, text: str) -> tuple[Image, list[float]]:
        """The captcha for ``text`` and the x of each character's centre in it (pixels
        from the left edge of the final image: character cells, before clutter)."""
        image = self._engine.generate_image(text)
        return image, list(self._engine.centres)


@dataclass(frozen=True)
class MixedDrawer:
    """Draws each captcha in one of several looks, picked evenly (a profile's ``variants``).

    Seeded like :class:`CaptchaDrawer`: with ``seed`` the choice of look repeats too.
    """

    drawers: tuple[CaptchaDrawer, ...]
    seed: int | None = None
    _pick: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.drawers:
            raise ValueError("MixedDrawer needs at least one drawer")
        object.__setattr__(self, "_pick", random.Random(self.seed) if self.seed is not None
                           else random.SystemRandom())

    def __reduce__(self) -> tuple[type[MixedDrawer], tuple[object, ...]]:
        return (MixedDrawer, (self.drawers, self.seed))

    @property
    def width(self) -> int:
        return self.drawers[0].width

    @property
    def height(self) -> int:
        return self.drawers[0].height

    def with_seed(self, seed: int | None) -> MixedDrawer:
        """The same looks with their own random streams (``None``: unseeded)."""
        return MixedDrawer(tuple(drawer.with_seed(None if seed is None else seed + i + 1)
                                 for i, drawer in enumerate(self.drawers)), seed)

    def image(self, text: str) -> Image:
        """The captcha for ``text`` in a look picked at random (RGB)."""
        return self._pick.choice(self.drawers).image(text)

    def png(self, text: str) -> bytes:
        """The captcha for ``text`` as PNG bytes."""
        return _png(self.image(text))


def _png(image: Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def random_text(rng: random.Random, charset: Sequence[str], min_length: int,
                max_length: int, weights: Sequence[float] | None = None) -> str:
    """A random answer: length uniform in [min, max]; characters uniform in charset,
    or drawn in proportion to ``weights`` (one per character) when given."""
    length = rng.randint(min_length, max_length)
    if weights is not None:
        return "".join(rng.choices(charset, weights=weights, k=length))
    return "".join(rng.choice(charset) for _ in range(length))
