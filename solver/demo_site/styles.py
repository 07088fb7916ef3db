"""Styles of the local captcha site, loaded from ``styles.yaml`` beside this file."""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

import yaml

from solver.drawing import CaptchaDrawer
from solver.errors import SiteError
from solver.profiles import SyntheticSection

Variant = Literal["img", "data-uri", "canvas", "iframe", "background", "iframe-document",
                  "page-link", "delayed", "lazy", "single-use", "shadow", "fetch-form",
                  "redirect", "animated-gif"]
VARIANTS: tuple[str, ...] = ("img", "data-uri", "canvas", "iframe", "background",
                             "iframe-document", "page-link", "delayed", "lazy", "single-use",
                             "shadow", "fetch-form", "redirect", "animated-gif")

_IMG = {"selector": "img#captcha", "capture": "auto", "frame": None, "refresh": "#captcha-refresh"}

#: the profile's ``captcha`` section that reads each variant
VARIANT_CAPTURE: dict[str, dict[str, Any]] = {
    "img": _IMG,
    "data-uri": _IMG,
    "canvas": {**_IMG, "selector": "canvas#captcha"},
    "iframe": {**_IMG, "frame": "iframe#captcha-frame"},
    "background": {**_IMG, "selector": "#captcha"},
    # the patterns of sites in the wild; each shows an <img> in the end
    "iframe-document": {**_IMG, "frame": "iframe#captcha-frame"},  # the link loads a new document
    "page-link": _IMG,  # the refresh link reloads the whole page
    "delayed": _IMG,  # inserted by script after a delay; a refresh replaces the element
    "lazy": _IMG,  # loading=lazy, below the fold
    "single-use": _IMG,  # its URL answers once; a second fetch gets 403
    "shadow": _IMG,  # inside an open shadow root (Playwright's selectors pierce it)
    "fetch-form": _IMG,  # the form is sent by fetch(); the verdict is put into the page
    "redirect": _IMG,  # success is only a redirect to another URL
    "animated-gif": _IMG,  # an animated GIF whose frames each show part of the answer
}

FORM = {"input": "input[name=captcha]", "submit": "button[type=submit]",
        "success": ".flash.ok", "failure": ".flash.error", "success_url": None}

#: frames of the animated-gif variant, and the time each is shown
GIF_FRAMES = 2
GIF_FRAME_MS = 400


@dataclass(frozen=True)
class Style:
    """What a style's captchas are and how its page shows them."""

    name: str
    title: str
    variant: Variant
    charset: str
    min_length: int
    max_length: int
    case_sensitive: bool
    width: int
    height: int
    font_sizes: tuple[int, ...]
    noise_dots: int
    noise_curves: int
    ttl_seconds: float = 300.0
    #: more of the drawer's settings (solver.drawing.LOOK_SETTINGS): colours, clutter, strokes
    look: tuple[tuple[str, Any], ...] = ()
    #: TrueType files by name, looked for in the system's and matplotlib's font folders
    fonts: tuple[str, ...] = ()

    @functools.cached_property
    def drawer(self) -> CaptchaDrawer:
        look = {key: tuple(value) if isinstance(value, list) else value for key, value in self.look}
        return CaptchaDrawer(width=self.width, height=self.height, font_sizes=self.font_sizes,
                             noise_dots=self.noise_dots, noise_curves=self.noise_curves,
                             fonts=find_fonts(self.fonts), **look)

    def matches(self, expected: str, given: str) -> bool:
        given = given.strip()
        if self.case_sensitive:
            return given == expected
        return given.casefold() == expected.casefold()

    @property
    def image_type(self) -> str:
        """The file extension of the style's captcha images."""
        return "gif" if self.variant == "animated-gif" else "png"

    def image(self, answer: str) -> bytes:
        """The captcha image for ``answer``: a PNG, or an animated GIF for animated-gif."""
        if self.variant != "animated-gif":
            return self.drawer.png(answer)
        return _animated_gif(self.drawer, answer)

    def form_data(self) -> dict[str, Any]:
        """The profile's ``form`` section for this style."""
        if self.variant == "redirect":  # the site says yes only by going to its welcome page
            return {**FORM, "success": None, "success_url": f"/{self.name}/welcome"}
        return dict(FORM)

    def profile_data(self, base_url: str = "http://127.0.0.1:8765") -> dict[str, Any]:
        """The site profile that describes this style, as YAML-shaped data."""
        return {
            "name": self.name,
            "url": f"{base_url.rstrip('/')}/{self.name}/",
            "description": self.title,
            "captcha": dict(VARIANT_CAPTURE[self.variant]),
            "form": self.form_data(),
            "format": {"charset": self.charset, "length": [self.min_length, self.max_length],
                       "case_sensitive": self.case_sensitive},
            "model": {"pipeline": "ctc", "min_confidence": 0.5},
            # every synthetic setting, the look's at their defaults (the package's look)
            "synthetic": SyntheticSection(
                width=self.width, height=self.height, font_sizes=tuple(self.font_sizes),
                noise_dots=self.noise_dots, noise_curves=self.noise_curves,
            ).model_dump(mode="json"),
        }


_GIF_LOCK = threading.Lock()


def _animated_gif(drawer: CaptchaDrawer, answer: str) -> bytes:
    """An animated GIF of the captcha: each frame shows some of the characters (the image's
    columns around their centres) on the captcha's background; all frames together, laid
    over one another darkest-first, are the captcha (see :func:`solver.imaging.darkest_frame`)."""
    import io

    import numpy as np
    from PIL import Image

    with _GIF_LOCK:  # the drawer keeps the centres of its last drawing
        image, centres = drawer.image_and_centres(answer)
    palette_image = image.convert("RGB").quantize(256, dither=Image.Dither.NONE)
    indices = np.asarray(palette_image)
    background = int(np.bincount(indices.ravel()).argmax())  # most pixels are background
    per_frame = -(-len(centres) // GIF_FRAMES)
    # columns split halfway between the last character of a frame and the next one's first
    cuts = [0] + [round((centres[k * per_frame - 1] + centres[k * per_frame]) / 2)
                  for k in range(1, GIF_FRAMES) if k * per_frame < len(centres)] + [image.width]
    frames = []
    for left, right in zip(cuts, cuts[1:]):
        shown = np.full_like(indices, background)
        shown[:, left:right] = indices[:, left:right]
        frame = Image.fromarray(shown, mode="P")
        frame.putpalette(palette_image.getpalette())
        frames.append(frame)
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], loop=0,
                   duration=GIF_FRAME_MS, disposal=1, optimize=False)
    return out.getvalue()


_LOOK_KEYS = ("charset", "length", "case_sensitive", "width", "height", "font_sizes",
              "noise_dots", "noise_curves", "look", "fonts")

#: where :func:`find_fonts` looks for a style's fonts, in order
FONT_FOLDERS = ("/usr/share/fonts", "/usr/local/share/fonts", "/Library/Fonts",
                "C:/Windows/Fonts")


@functools.cache
def find_fonts(names: tuple[str, ...]) -> tuple[str, ...]:
    """The paths of the TrueType files ``names`` (file names such as ``DejaVuSerif-Bold.ttf``).

    A style's fonts are not shipped (no binaries in the repository): they are
    looked for in the system's font folders and in matplotlib's, which carries
    the DejaVu family. A font found nowhere is left out with a warning; with
    none found the captcha package's own font draws the style.
    """
    import logging
    from pathlib import Path

    if not names:
        return ()
    folders = [Path(folder) for folder in FONT_FOLDERS]
    try:
        import matplotlib

        folders.append(Path(matplotlib.get_data_path()) / "fonts" / "ttf")
    except ImportError:
        pass
    found = []
    for name in names:
        path = next((hit for folder in folders if folder.is_dir()
                     for hit in sorted(folder.rglob(name)) if hit.is_file()), None)
        if path is None:
            logging.getLogger(__name__).warning(
                "font %s not found in %s: the style is drawn without it", name,
                ", ".join(str(f) for f in folders))
        else:
            found.append(str(path))
    return tuple(found)


def _build(name: str, raw: dict[str, Any], everything: dict[str, Any]) -> Style:
    data = dict(raw)
    like = data.pop("like", None)
    if like is not None:
        base = everything[like]
        data = {**{key: base[key] for key in _LOOK_KEYS if key in base}, **data}
    if data.get("variant") not in VARIANTS:
        raise SiteError(f"style {name!r}: variant {data.get('variant')!r} is not one of "
                        f"{', '.join(VARIANTS)} (fix styles.yaml)")
    low, high = data.pop("length")
    data["look"] = tuple(sorted((data.pop("look", None) or {}).items()))
    data["fonts"] = tuple(data.pop("fonts", None) or ())
    return Style(name=name, title=data.pop("title"), variant=data.pop("variant"),
                 charset=data.pop("charset"), min_length=low, max_length=high,
                 case_sensitive=data.pop("case_sensitive"), width=data.pop("width"),
                 height=data.pop("height"), font_sizes=tuple(data.pop("font_sizes")),
                 noise_dots=data.pop("noise_dots"), noise_curves=data.pop("noise_curves"),
                 **data)


@functools.cache
def load_styles() -> dict[str, Style]:
    """Every style the local site ships, by name, in file order."""
    text = resources.files("solver.demo_site").joinpath("styles.yaml").read_text("utf-8")
    raw = yaml.safe_load(text)
    return {name: _build(name, spec, raw) for name, spec in raw.items()}


def get_style(name: str) -> Style:
    styles = load_styles()
    if name not in styles:
        raise SiteError(f"unknown style {name!r} (choose one of: {', '.join(styles)})")
    return styles[name]
