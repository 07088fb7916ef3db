"""Styles of the local captcha site, loaded from ``styles.yaml`` beside this file."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

import yaml

from solver.drawing import CaptchaDrawer
from solver.errors import SiteError
from solver.profiles import SyntheticSection

Variant = Literal["img", "data-uri", "canvas", "iframe", "background"]
VARIANTS: tuple[str, ...] = ("img", "data-uri", "canvas", "iframe", "background")

#: the profile's ``captcha`` section that reads each variant
VARIANT_CAPTURE: dict[str, dict[str, Any]] = {
    "img": {"selector": "img#captcha", "capture": "auto", "frame": None,
            "refresh": "#captcha-refresh"},
    "data-uri": {"selector": "img#captcha", "capture": "auto", "frame": None,
                 "refresh": "#captcha-refresh"},
    "canvas": {"selector": "canvas#captcha", "capture": "auto", "frame": None,
               "refresh": "#captcha-refresh"},
    "iframe": {"selector": "img#captcha", "capture": "auto", "frame": "iframe#captcha-frame",
               "refresh": "#captcha-refresh"},
    "background": {"selector": "#captcha", "capture": "auto", "frame": None,
                   "refresh": "#captcha-refresh"},
}

FORM = {"input": "input[name=captcha]", "submit": "button[type=submit]",
        "success": ".flash.ok", "failure": ".flash.error"}


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

    @functools.cached_property
    def drawer(self) -> CaptchaDrawer:
        return CaptchaDrawer(width=self.width, height=self.height, font_sizes=self.font_sizes,
                             noise_dots=self.noise_dots, noise_curves=self.noise_curves)

    def matches(self, expected: str, given: str) -> bool:
        given = given.strip()
        if self.case_sensitive:
            return given == expected
        return given.casefold() == expected.casefold()

    def profile_data(self, base_url: str = "http://127.0.0.1:8765") -> dict[str, Any]:
        """The site profile that describes this style, as YAML-shaped data."""
        return {
            "name": self.name,
            "url": f"{base_url.rstrip('/')}/{self.name}/",
            "description": self.title,
            "captcha": dict(VARIANT_CAPTURE[self.variant]),
            "form": dict(FORM),
            "format": {"charset": self.charset, "length": [self.min_length, self.max_length],
                       "case_sensitive": self.case_sensitive},
            "model": {"pipeline": "ctc", "min_confidence": 0.5},
            # every synthetic setting, the look's at their defaults (the package's look)
            "synthetic": SyntheticSection(
                width=self.width, height=self.height, font_sizes=tuple(self.font_sizes),
                noise_dots=self.noise_dots, noise_curves=self.noise_curves,
            ).model_dump(mode="json"),
        }


_LOOK_KEYS = ("charset", "length", "case_sensitive", "width", "height", "font_sizes",
              "noise_dots", "noise_curves")


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
