"""A catalogue of the fonts on this machine, with the properties a person sees in type.

Each upright face found in the usual font folders (and the captcha package's own)
is measured once, by drawing a few characters with Pillow:

* ``weight``: stroke width over cap height (a hairline face about 0.06, a regular
  one 0.10-0.13, a bold one 0.16-0.20, a black slab 0.22 and up);
* ``serif``: how far the foot of an ``I`` reaches beyond its stem, in stem widths
  (0 for a sans; 1-3 for serif and slab faces);
* ``width``: the mean advance of digits and letters over cap height (condensed
  faces about 0.5, wide ones 0.8 and up).

:func:`choose_fonts` picks the faces nearest to wanted properties; ``solver synth
fit`` uses it to keep its search among fonts that look like the site's. On a
minimal system only a few faces are found; :func:`install_fonts` adds Debian's
free font packages (``make setup`` runs it as root), and the fit still works, with
a warning, without them.

Example::

    >>> from solver.fonts import choose_fonts, font_catalogue
    >>> faces = choose_fonts(font_catalogue(), weight=0.2, serif=1.5, count=2)  # doctest: +SKIP
    >>> [face.name for face in faces]                                          # doctest: +SKIP
    ['RobotoSlab-Bold', 'C059-Bold']
"""

from __future__ import annotations

import functools
import logging
import math
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from solver.apt import apt_get, apt_install, last_lines

logger = logging.getLogger(__name__)

#: where fonts are looked for besides the captcha package's own
SYSTEM_FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "/Library/Fonts",
                    "C:/Windows/Fonts")
FONT_SUFFIXES = (".ttf", ".otf")
#: faces left out: slanted, symbol and hairline ones (no site draws its text in them)
SKIPPED_FONTS = re.compile(r"italic|oblique|ita$|math|extralight|light|thin|symbol|emoji|"
                           r"dingbat|d050000l|z003", re.I)
PACKAGE_FONT = ""  # in a font list: the captcha package's own font
#: Debian's packages of free fonts that widen the catalogue: serif, slab, sans, mono, narrow
DEBIAN_FONT_PACKAGES = ("fonts-dejavu-core", "fonts-liberation", "fonts-freefont-ttf",
                        "fonts-urw-base35", "fonts-roboto-slab", "fonts-crosextra-caladea",
                        "fonts-crosextra-carlito")
#: fewer faces than this and the fit warns that its look-alikes may miss the site's type
FEW_FONTS = 12
_SAMPLE = "0123456789ABDEHKMNPRSTUXYZabdehkmnpqrsuxy"


@dataclass(frozen=True)
class FontFace:
    """One font file and its measured properties (see the module's doc)."""

    path: str  # '' for the captcha package's own font
    weight: float
    serif: float
    width: float

    @property
    def name(self) -> str:
        return Path(self.path).stem if self.path else "captcha-package"

    def describe(self) -> str:
        kind = "slab" if self.serif >= 1.6 and self.weight >= 0.15 else (
            "serif" if self.serif >= 0.5 else "sans")
        return (f"{self.name} ({kind}, weight {self.weight:.2f}, serif {self.serif:.1f}, "
                f"width {self.width:.2f})")


def _ink(text: str, font: object, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image, ImageDraw

    image = Image.new("L", size, 0)
    ImageDraw.Draw(image).text((size[1] // 4, size[1] // 4), text, fill=255, font=font)
    return np.asarray(image) > 127


def measure_font(path: str, size: int = 64) -> FontFace | None:
    """The properties of one font file, or None when Pillow cannot draw with it."""
    import cv2
    from PIL import ImageFont

    try:
        from captcha.image import DEFAULT_FONTS

        font = ImageFont.truetype(path or DEFAULT_FONTS[0], size)
        stem_mask = _ink("I", font, (size * 2, size * 2))
    except (OSError, ValueError):
        return None
    rows = np.nonzero(stem_mask.any(axis=1))[0]
    if rows.size < size // 4:
        return None
    cap = float(rows[-1] - rows[0] + 1)
    middle = stem_mask[(rows[0] + rows[-1]) // 2]
    stem = float(middle.sum())
    # the foot: the widest row in the bottom tenth of the I
    foot = float(stem_mask[rows[-1] - max(1, int(cap * 0.1)):rows[-1] + 1].sum(axis=1).max())
    sample = _ink(_SAMPLE, font, (size * len(_SAMPLE), size * 2))
    area = float(sample.sum())
    contours, _ = cv2.findContours(sample.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    outline = sum(cv2.arcLength(contour, True) for contour in contours)
    if not stem or not outline:
        return None
    stroke = 2 * area / outline  # as solver.synth.measure measures a stroke in an image
    advance = float(font.getlength(_SAMPLE)) / len(_SAMPLE)
    return FontFace(path, round(stroke / cap, 4), round(max(0.0, (foot - stem) / stem), 3),
                    round(advance / cap, 3))


def font_files(folders: Sequence[str] = SYSTEM_FONT_DIRS) -> list[str]:
    """Upright font files of ``folders`` (slanted, symbol and hairline faces left out)."""
    found: list[str] = []
    for folder in folders:
        root = Path(folder)
        if root.is_dir():
            found += sorted(str(path) for path in root.rglob("*")
                            if path.suffix.lower() in FONT_SUFFIXES
                            and not SKIPPED_FONTS.search(path.stem))
    # one file per face: an .otf and a .ttf of one name are the same design
    by_stem: dict[str, str] = {}
    for path in found:
        by_stem.setdefault(Path(path).stem.lower(), path)
    return list(by_stem.values())


@functools.lru_cache(maxsize=8)
def _catalogue(paths: tuple[str, ...]) -> tuple[FontFace, ...]:
    faces = [measure_font(path) for path in paths]
    return tuple(face for face in faces if face is not None)


def font_catalogue(extra: Sequence[str] = (),
                   folders: Sequence[str] = SYSTEM_FONT_DIRS) -> list[FontFace]:
    """Every usable face: the captcha package's, those of ``folders`` and ``extra`` files,
    measured (about 5 ms a face, once per process)."""
    paths = tuple(dict.fromkeys([PACKAGE_FONT, *extra, *font_files(folders)]))
    return list(_catalogue(paths))


def font_distance(face: FontFace, weight: float | None = None, serif: float | None = None,
                  width: float | None = None) -> float:
    """How far ``face`` is from the wanted properties (None: any), each in its own scale."""
    total = 0.0
    if weight is not None:  # weight counts in ratios: 0.10 against 0.20 is as far as 0.05/0.10
        total += (math.log(max(face.weight, 1e-3) / max(weight, 1e-3)) / 0.18) ** 2
    if serif is not None:
        total += ((min(face.serif, 3.0) - min(serif, 3.0)) / 0.6) ** 2
    if width is not None:
        total += (math.log(max(face.width, 1e-3) / max(width, 1e-3)) / 0.15) ** 2
    return math.sqrt(total)


def choose_fonts(catalogue: Sequence[FontFace], weight: float | None = None,
                 serif: float | None = None, width: float | None = None,
                 count: int = 6) -> list[FontFace]:
    """The ``count`` faces nearest to the wanted properties, nearest first.

    >>> faces = [FontFace("thin.ttf", 0.08, 0.0, 0.6), FontFace("slab.ttf", 0.22, 1.8, 0.7)]
    >>> [face.path for face in choose_fonts(faces, weight=0.2, serif=2.0, count=1)]
    ['slab.ttf']
    """
    ranked = sorted(catalogue, key=lambda face: (font_distance(face, weight, serif, width),
                                                 face.path))
    return ranked[:max(0, count)]


def install_fonts(report: Callable[[str], None] = print, timeout: float = 600.0) -> bool:
    """Install Debian's free font packages with apt-get when running as root; True when
    the catalogue then has at least :data:`FEW_FONTS` faces. Elsewhere it says what to do."""
    if len(font_files()) >= FEW_FONTS * 3:
        return True
    apt = apt_get()
    if not apt:
        report("for closer look-alikes, install more fonts: "
               f"sudo apt-get install -y {' '.join(DEBIAN_FONT_PACKAGES)} (or copy .ttf/.otf "
               "files into ~/.fonts or /usr/local/share/fonts)")
        return len(font_files()) >= FEW_FONTS
    report(f"Installing fonts with apt-get ({', '.join(DEBIAN_FONT_PACKAGES)})...")
    output = apt_install(apt, DEBIAN_FONT_PACKAGES, timeout, ["--no-install-recommends"])
    _catalogue.cache_clear()
    enough = len(font_files()) >= FEW_FONTS
    if not enough:
        report("  apt-get did not install the fonts; its last lines:\n    " + last_lines(output))
    return enough


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m solver.fonts [--install] [--quiet]``: list the catalogue (installing fonts
    first); ``--quiet`` prints only how many faces it holds."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--install" in args:
        install_fonts()
    catalogue = font_catalogue()
    if "--quiet" not in args:
        for face in sorted(catalogue, key=lambda face: (face.serif >= 0.5, face.weight)):
            print(face.describe())
    print(f"{len(catalogue)} faces for look-alikes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
