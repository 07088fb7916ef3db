"""Site profiles: where a site puts its captcha and what the captcha looks like.

A profile is a YAML file, ``site_profiles/NAME.yaml``, loaded with a strict
subclass of ``yaml.SafeLoader`` and validated into frozen, typed objects.
Validation is strict: unknown keys, wrong types and out-of-range values are
errors, and all problems of a file are reported at once, one line each,
formatted as ``PATH: key.path: problem (how to fix)``.

The loader refuses what no profile needs and a hostile file could use: files
over 1 MB, a key written twice in one mapping, more than 10,000 values once
YAML aliases are expanded (the "billion laughs" bomb), an alias inside its own
anchor, nesting deeper than 32 levels, and numbers of more than 100 digits.
Messages quote at most about 60 characters of any value, and never the
contents of a file that is not a profile.

Example::

    >>> from solver.profiles import load_profile
    >>> profile = load_profile("site_profiles/example.yaml")
    >>> profile.format.charset[:10], profile.format.min_length
    ('0123456789', 4)
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from solver.archs import ARCHS
from solver.capture import MODES as CAPTURE_MODES
from solver.capture import describe_modes
from solver.charset import charset_problem, describe_characters, is_visible, short_repr
from solver.errors import ProfileError, ProfileNotFoundError

logger = logging.getLogger(__name__)

PROFILES_DIR_ENV = "SOLVER_PROFILES_DIR"
DEFAULT_PROFILES_DIR = "site_profiles"
MAX_LENGTH = 32
#: the profile format this solver reads and writes; a file says which it uses with a
#: top-level ``version:`` (leaving it out means this one)
PROFILE_VERSION = 1
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
URL_SCHEMES = ("http://", "https://", "file://")
MAX_FILE_BYTES = 1_000_000  # a profile is a few KB
MAX_VALUES = 10_000  # scalars, lists and mappings, with aliases expanded
MAX_DEPTH = 32  # lists and mappings inside one another
MAX_DIGITS = 100  # of a number written in the file
MAX_PROBLEMS = 20  # lines of one error; the rest are counted
MAX_LINE = 600  # characters of one problem line, a last guard


def _fix(problem: str, fix: str) -> PydanticCustomError:
    """An error raised from a validator; the text already carries its fix."""
    return PydanticCustomError("profile", "{text}", {"text": f"{problem} ({fix})"})


def _not_blank(value: str) -> str:
    if not value.strip():
        raise _fix("is empty", "give a CSS selector, or remove the key if it is optional")
    return value


Selector = Annotated[
    StrictStr,
    AfterValidator(_not_blank),
    Field(description="A CSS selector (Playwright syntax also works)."),
]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CaptchaSection(_Section):
    """Where the captcha image is and how to grab it."""

    selector: Selector = Field(
        description="CSS selector of the captcha element: an <img>, a <canvas>, "
        "or an element with a CSS background image.",
        examples=["img#captcha"],
    )
    capture: Literal[CAPTURE_MODES] = Field(  # type: ignore[valid-type]  # solver.capture's list
        "auto", description=f"How to grab the pixels: {describe_modes()}",
    )
    frame: Selector | None = Field(
        None,
        description="CSS selector of the <iframe> that holds the captcha (and its "
        "refresh control), or null when the captcha is in the page itself.",
        examples=["iframe#captcha-frame"],
    )
    refresh: Selector | None = Field(
        None,
        description="CSS selector of the control that draws a new captcha; null "
        "reloads the page instead.",
        examples=["#captcha-refresh"],
    )


class FormSection(_Section):
    """Where the answer goes and how the site says whether it was right."""

    input: Selector = Field(description="CSS selector of the text input for the answer.",
                            examples=["input[name=captcha]"])
    submit: Selector = Field(description="CSS selector of the submit button.",
                             examples=["button[type=submit]"])
    success: Selector | None = Field(
        None, description="CSS selector that appears when the answer was accepted.",
        examples=[".flash.ok"])
    failure: Selector | None = Field(
        None, description="CSS selector that appears when the answer was refused.",
        examples=[".flash.error"])
    success_url: StrictStr | None = Field(
        None, description="Where the site goes when it accepts the answer, for sites that say "
        "so only by a redirect: a URL, or a path starting with '/' (matched against the "
        "page's path); '*' matches within one path segment, '**' across them; a query in "
        "the page's URL is ignored unless the value has one.",
        examples=["/account/welcome", "https://portal.example/home*", "**/welcome"])

    @field_validator("success_url")
    @classmethod
    def _check_success_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.strip():
            raise _fix("is empty", "give the URL or path the site redirects to, or remove the key")
        if not (value.startswith(("/", "*")) or value.startswith(URL_SCHEMES)):
            raise _fix(f"{short_repr(value)} is neither a URL nor a path",
                       "write a path such as /account/welcome, a glob such as **/welcome, "
                       "or a full URL such as https://portal.example/home")
        return value

    def success_url_pattern(self) -> tuple[str, bool] | None:
        """``success_url`` as a regular expression, and whether it matches the whole URL
        (else the path and query); None without one.

            >>> regex, whole = FormSection(input="i", submit="b", success_url="/shop/*").success_url_pattern()
            >>> bool(re.match(regex, "/shop/thanks?order=7")), bool(re.match(regex, "/shop/a/b")), whole
            (True, False, False)
        """
        if self.success_url is None:
            return None
        whole = self.success_url.startswith(URL_SCHEMES) or self.success_url.startswith("*")
        parts = re.split(r"(\*\*|\*)", self.success_url)
        regex = "".join({"**": ".*", "*": "[^/]*"}.get(part, re.escape(part)) for part in parts)
        query = "" if "?" in self.success_url else r"(\?.*)?"  # no query written: any query
        return f"^{regex}{query}(#.*)?$", whole


class FormatSection(_Section):
    """What the captcha's text can be."""

    charset: StrictStr = Field(
        description="Every character the captcha can contain, each once.",
        examples=["0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"],
    )
    length: tuple[int, int] = Field(
        description=f"Number of characters: one number, or [min, max] within 1..{MAX_LENGTH}.",
        examples=[[4, 6], 4],
        json_schema_extra={
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": MAX_LENGTH},
                {"type": "array", "items": {"type": "integer", "minimum": 1,
                                            "maximum": MAX_LENGTH},
                 "minItems": 2, "maxItems": 2},
            ],
        },
    )
    case_sensitive: StrictBool = Field(
        True,
        description="Whether the site tells 'a' from 'A'. When false, answers are "
        "compared without case and the charset must not hold both cases of a letter.",
    )

    @field_validator("charset")
    @classmethod
    def _check_charset(cls, charset: str) -> str:
        problem = charset_problem(charset)
        if problem is not None:
            raise _fix(*problem)
        return charset

    @field_validator("length", mode="before")
    @classmethod
    def _check_length(cls, value: Any) -> tuple[int, int]:
        fix = f"write one number such as 4, or [min, max] such as [4, 6], within 1..{MAX_LENGTH}"
        if isinstance(value, bool):
            raise _fix(f"expected a number or [min, max], got {short_repr(value)}", fix)
        if isinstance(value, int):
            value = [value, value]
        if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise _fix(f"expected a number or [min, max], got {short_repr(value)}", fix)
        low, high = value
        if not (1 <= low <= MAX_LENGTH and 1 <= high <= MAX_LENGTH):
            raise _fix(f"{short_repr(list(value))} is outside 1..{MAX_LENGTH}", fix)
        if low > high:
            raise _fix(f"min {low} is greater than max {high}", f"write [{high}, {low}]")
        return (low, high)

    @model_validator(mode="after")
    def _check_case(self) -> FormatSection:
        if not self.case_sensitive:
            characters = set(self.charset)
            both = [ch for ch in self.charset if ch.islower() and ch.upper() in characters]
            if both:
                shown = ", ".join(repr(c) for c in both[:10]) + (", ..." if len(both) > 10 else "")
                raise _fix(
                    f"charset holds both cases of {shown} "
                    "but case_sensitive is false",
                    "keep one case in the charset, or set case_sensitive: true",
                )
            problem = charset_problem(self.charset, case_sensitive=False)
            if problem is not None:
                raise _fix(f"charset {problem[0]}", problem[1])
        return self

    @property
    def min_length(self) -> int:
        return self.length[0]

    @property
    def max_length(self) -> int:
        return self.length[1]

    def normalise(self, text: str) -> str:
        """``text`` in composed form (NFC), on the charset's case when the site ignores case."""
        from solver.charset import Charset

        return Charset(self.charset, self.case_sensitive).normalise(text)

    def label_problem(self, text: str) -> str | None:
        """Why ``text`` cannot be an answer for this format, or None if it can.

        Characters are counted after NFC normalisation, as a person counts them;
        invisible characters and stray combining marks are never in a charset.
        """
        text = self.normalise(text)
        shown = short_repr(text)
        hidden = [ch for ch in text if not is_visible(ch)]
        if hidden:  # checked first: a person cannot count what they cannot see
            return f"{shown} has characters outside the charset: {describe_characters(hidden)}"
        if not self.min_length <= len(text) <= self.max_length:
            wanted = (str(self.min_length) if self.min_length == self.max_length
                      else f"{self.min_length} to {self.max_length}")
            return f"{shown} has {len(text)} characters, expected {wanted}"
        characters = set(self.charset)
        outside = [ch for ch in text if ch not in characters]
        if outside:
            return f"{shown} has characters outside the charset: {describe_characters(outside)}"
        return None


class ModelSection(_Section):
    """Which recognition pipeline to train and how sure it must be."""

    pipeline: Literal[tuple(ARCHS)] = Field(  # type: ignore[valid-type]  # solver.archs' list
        next(iter(ARCHS)),
        description="; ".join(f"'{name}': {arch.summary}" for name, arch in ARCHS.items()) + ".",
    )
    min_confidence: float = Field(
        0.5, ge=0.0, le=1.0, strict=False,
        description="Readings below this confidence are not submitted; the agent "
        "asks for a new captcha instead.",
    )

    @field_validator("min_confidence", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fix(f"expected a number from 0 to 1, got {short_repr(value)}", "write e.g. 0.5")
        return value


class SyntheticSection(_Section):
    """How to draw look-alike captchas with the ``captcha`` package for training."""

    width: StrictInt = Field(160, ge=16, le=2048, description="Image width in pixels.")
    height: StrictInt = Field(60, ge=8, le=1024, description="Image height in pixels.")
    fonts: tuple[StrictStr, ...] = Field(
        (),
        description="TrueType font files, relative to the profile's folder or absolute; "
        "empty uses the captcha package's own font.",
    )
    font_sizes: tuple[Annotated[StrictInt, Field(ge=4, le=512)], ...] = Field(
        (42, 50, 56), min_length=1, description="Font sizes to pick from, in pixels.")
    noise_dots: StrictInt = Field(50, ge=0, le=10_000, description="Random dots drawn over the text.")
    noise_curves: StrictInt = Field(1, ge=0, le=100, description="Random curves drawn over the text.")
    background: StrictStr = Field(
        "random-light",
        description="Background colour: a quoted \"#rrggbb\", or random-light (each channel "
        "238..255, the captcha package's look).", examples=["#f0f0f0"])
    background_jitter: StrictInt = Field(
        0, ge=0, le=128,
        description="Each channel of a \"#rrggbb\" background varies by up to this much per image.")
    background_gradient: StrictInt = Field(
        0, ge=-255, le=255,
        description="How much darker the left edge is than the right (negative: the right edge).")
    border: StrictStr | None = Field(
        None, description="Colour of a 1-pixel frame around the image (quoted \"#rrggbb\"), "
        "or null for none.", examples=["#000000"])
    text_colours: StrictStr | tuple[StrictStr, ...] = Field(
        "random",
        description="random (each channel 10..200, partly transparent: the captcha package's "
        "look), random-dark (each channel 0..150, opaque), or a list of quoted \"#rrggbb\" "
        "colours to pick from.", examples=[["#202020", "#1f3f8f"]])
    colour_per_character: StrictBool = Field(
        False, description="Pick a text colour for each character (and each dot, curve and "
        "line) instead of one per image.")
    clutter_colours: StrictStr | tuple[StrictStr, ...] = Field(
        "text",
        description="Colours of the dots, curves and lines: text (those of the text, as "
        "colour_per_character says), or a list of quoted \"#rrggbb\" colours, one picked for "
        "each dot, curve and line.", examples=[["#8c8c8c", "#c03030"]])
    upper_case_share: float | None = Field(
        None, ge=0.0, le=1.0, strict=False,
        description="For sites that ignore case: the share of letters drawn in upper case, "
        "the rest in lower case (the answer keeps the charset's case); null draws letters as "
        "the charset has them. Needs format.case_sensitive: false.", examples=[0.5])
    baseline: StrictBool = Field(
        False, description="Characters keep their own heights on one baseline (lower-case "
        "letters shorter than capitals, descenders below), as most sites draw text; false "
        "stretches each character to the full height of the line, the captcha package's look.")
    stroke: StrictInt = Field(
        0, ge=0, le=8, description="Extra outline around each character, in pixels: bolder text.")
    antialias: StrictBool = Field(
        True, description="Smooth character edges; false draws them hard-edged, pixel by "
        "pixel, as many older sites do.")
    rotation: StrictInt = Field(
        30, ge=0, le=90, description="Each character turns by up to this many degrees either way.")
    vertical_jitter: StrictInt = Field(
        6, ge=0, le=100,
        description="Characters move up or down at random, by up to half this many pixels.")
    overlap: float = Field(
        0.25, ge=0.0, le=1.0, strict=False,
        description="Each character may overlap the previous one by up to this share of the "
        "average character width.")
    gap_probability: float = Field(
        0.5, ge=0.0, le=1.0, strict=False,
        description="Chance of a space-wide gap before each character.")
    spacing: float = Field(
        0.0, ge=-0.5, le=2.0, strict=False,
        description="Extra room after each character, as a share of the average character "
        "width (negative: closer together).")
    noise_lines: StrictInt = Field(
        0, ge=0, le=100, description="Random straight lines drawn over the text.")
    line_width: StrictInt = Field(
        1, ge=1, le=10, description="Width of the curves and lines, in pixels.")
    blur: float | None = Field(
        None, ge=0.0, le=5.0, strict=False,
        description="null: the captcha package's light smoothing; a number: a Gaussian blur "
        "of that radius in pixels instead (0: none, sharp edges).", examples=[0.8])
    grayscale: StrictBool = Field(False, description="Draw in shades of grey only.")
    variants: tuple[dict[str, Any], ...] = Field(
        (), description="Several looks in one: each entry changes some of the settings above "
        "(any but variants); every look-alike is drawn in one of them, picked evenly. For sites "
        "with more than one look, and for general models.",
        examples=[[{"fonts": ["fonts/Serif.ttf"], "noise_lines": 3}, {"grayscale": True}]])

    @field_validator("variants", mode="before")
    @classmethod
    def _variants(cls, value: Any) -> Any:
        if not isinstance(value, (list, tuple)):
            raise _fix(f"expected a list, got {_yaml_type(value)}",
                       "write a YAML list of mappings, e.g. [{grayscale: true}, {noise_lines: 2}]")
        allowed = [key for key in cls.model_fields if key != "variants"]
        for index, variant in enumerate(value):
            if not isinstance(variant, Mapping) or not variant:
                raise _fix(f"entry {index} is {_yaml_type(variant)}",
                           "give each variant as a mapping of settings, e.g. {grayscale: true}")
            for key in variant:
                if key not in allowed:
                    close = difflib.get_close_matches(str(key)[:100], allowed, n=1, cutoff=0.6)
                    hint = f"did you mean '{close[0]}'?" if close else f"use one of {', '.join(allowed)}"
                    raise _fix(f"entry {index}: unknown key {short_repr(key)}", hint)
        return tuple(dict(variant) for variant in value)

    @model_validator(mode="after")
    def _check_variants(self) -> SyntheticSection:
        for index in range(len(self.variants)):
            try:
                self.look(index)
            except ValidationError as error:
                first = error.errors()[0]
                where = ".".join(str(part) for part in first["loc"])
                raise _fix(f"variants entry {index}: {where}: {first['msg']}",
                           "fix that setting of the variant") from None
        return self

    def look(self, index: int) -> SyntheticSection:
        """The settings of variant ``index``: this section's, changed by the variant."""
        base = self.model_dump(exclude={"variants"})
        return SyntheticSection.model_validate({**base, **self.variants[index]})

    def looks(self) -> list[SyntheticSection]:
        """Every look drawn for training: the variants', or this one when there are none."""
        return [self.look(i) for i in range(len(self.variants))] or [self]

    @field_validator("fonts", "font_sizes", mode="before")
    @classmethod
    def _list(cls, value: Any) -> Any:
        if isinstance(value, list):
            return tuple(value)
        if isinstance(value, tuple):
            return value
        raise _fix(f"expected a list, got {short_repr(value)}", "write a YAML list such as [42, 50]")

    @field_validator("background", mode="before")
    @classmethod
    def _background(cls, value: Any) -> Any:
        if value == "random-light":
            return value
        return _colour(value, '"#f0f0f0"', "or random-light")

    @field_validator("border", mode="before")
    @classmethod
    def _border(cls, value: Any) -> Any:
        return None if value is None else _colour(value, '"#000000"', "or null for no border")

    @field_validator("text_colours", mode="before")
    @classmethod
    def _text_colours(cls, value: Any) -> Any:
        if value in TEXT_COLOUR_SCHEMES:
            return value
        return _colours(value, ("#202020", "#1f3f8f"), "or random or random-dark")

    @field_validator("clutter_colours", mode="before")
    @classmethod
    def _clutter_colours(cls, value: Any) -> Any:
        if value == "text":
            return value
        return _colours(value, ("#8c8c8c", "#c03030"), "or text")

    @field_validator("overlap", "gap_probability", "spacing", "blur", "upper_case_share",
                     mode="before")
    @classmethod
    def _number(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name in ("blur", "upper_case_share"):
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fix(f"expected a number, got {_yaml_type(value)}",
                       "write a number without quotes, e.g. 0.5")
        return value

    @model_validator(mode="after")
    def _check_jitter(self) -> SyntheticSection:
        if self.background_jitter and self.background == "random-light":
            raise _fix(f"background_jitter {self.background_jitter} needs a \"#rrggbb\" background",
                       'set background, e.g. "#f0f0f0", or remove background_jitter')
        return self

    def fingerprint_data(self) -> dict[str, Any]:
        """The settings as a model's fingerprint sees them.

        Settings added after the first models were trained count only when they
        differ from their default, so those models' fingerprints still match.
        """
        data = self.model_dump(mode="json")
        defaults = type(self)().model_dump(mode="json")
        return {key: value for key, value in data.items()
                if key in _FIRST_SYNTHETIC_KEYS or value != defaults[key]}


_FIRST_SYNTHETIC_KEYS = ("width", "height", "fonts", "font_sizes", "noise_dots", "noise_curves")
TEXT_COLOUR_SCHEMES = ("random", "random-dark")
COLOUR_PATTERN = re.compile(r"^#[0-9a-fA-F]{6}$")


def _colour(value: Any, example: str, alternatives: str) -> str:
    """A "#rrggbb" colour, lower-cased; an error with the fix otherwise."""
    if value is None:
        raise _fix("expected a colour, got null",
                   f"quote the colour, e.g. {example}: an unquoted # starts a YAML comment")
    if not isinstance(value, str) or not COLOUR_PATTERN.match(value):
        shown = short_repr(value) if isinstance(value, str) else _yaml_type(value)
        raise _fix(f"{shown} is not a colour", f'write a quoted "#rrggbb" such as {example}, '
                   f"{alternatives}")
    return value.lower()


def _colours(value: Any, examples: tuple[str, str], alternatives: str) -> str | tuple[str, ...]:
    """A colour or a non-empty list of them (see :func:`_colour`); ``alternatives`` names the
    keywords the setting also takes, for the error's fix."""
    one = f'"{examples[0]}"'
    if isinstance(value, (list, tuple)):
        if not value:
            raise _fix("is empty", f'list at least one colour, e.g. ["{examples[0]}", '
                       f'"{examples[1]}"], {alternatives}')
        return tuple(_colour(colour, one, "one per list item") for colour in value)
    return _colour(value, one, f"a list of them, {alternatives}")


ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class PreStep(_Section):
    """One action on the way to the captcha (a login page, a menu); exactly one of
    ``goto``, ``click``, ``fill`` (with ``env``) or ``wait_for``."""

    goto: StrictStr | None = Field(None, description="Open this URL.")
    click: Selector | None = Field(None, description="Click this element.")
    fill: Selector | None = Field(None, description="Type into this input the value of ``env``.")
    env: StrictStr | None = Field(
        None, description="For fill: the environment variable holding the value (values never "
        "live in the profile itself).", examples=["SITE_USER"])
    wait_for: Selector | None = Field(None, description="Wait until this element is visible.")

    @model_validator(mode="after")
    def _one_action(self) -> PreStep:
        actions = [key for key in ("goto", "click", "fill", "wait_for") if getattr(self, key) is not None]
        if len(actions) != 1:
            raise _fix(f"has {' and '.join(actions) or 'no action'}",
                       "give exactly one of goto, click, fill or wait_for per step")
        if self.fill is not None and not self.env:
            raise _fix("fill needs env", "name the environment variable that holds the value, "
                       "e.g. env: SITE_USER (values never go in the profile)")
        if self.env is not None and self.fill is None:
            raise _fix("env is only for fill", "remove env, or make the step a fill")
        if self.env is not None and not ENV_NAME.match(self.env):
            raise _fix(f"env {short_repr(self.env)} is not a variable name", "write e.g. SITE_USER")
        if self.goto is not None and not self.goto.startswith(URL_SCHEMES):
            raise _fix(f"goto {short_repr(self.goto)} is not a URL", "start it with http://, https:// or file://")
        return self

    def describe(self) -> str:
        if self.fill is not None:
            return f"fill {self.fill} from ${self.env}"
        action = next(key for key in ("goto", "click", "wait_for") if getattr(self, key) is not None)
        return f"{action} {getattr(self, action)}"

    def value_from(self, environ: Mapping[str, str]) -> str:
        """The value to type, from the environment; an error with the fix when unset."""
        from solver.errors import UsageError

        assert self.env is not None  # only fill steps have values
        value = environ.get(self.env)
        if value is None:
            raise UsageError(f"the profile's step '{self.describe()}' needs the environment "
                             f"variable {self.env} (export {self.env}=...)")
        return value


def _newer_version(version: int) -> PydanticCustomError:
    return _fix(f"{version} is a newer profile format than version {PROFILE_VERSION}, the one this "
                "solver reads", "upgrade the solver package, or rewrite the profile in version "
                f"{PROFILE_VERSION}")


class SiteProfile(_Section):
    """A validated site profile. Build one with :func:`load_profile`."""

    version: StrictInt = Field(
        PROFILE_VERSION,
        description=f"The profile format the file is written in; {PROFILE_VERSION}, the "
        "current one, when left out.", examples=[PROFILE_VERSION])
    name: StrictStr = Field(
        description="The profile's name: the file name without .yaml; lower-case "
        "letters, digits, '-' and '_'.",
        examples=["example"],
    )
    url: StrictStr = Field(description="Page that shows the captcha (http, https or file).",
                           examples=["http://127.0.0.1:8765/example/"])
    description: StrictStr = Field("", description="Free text for people.")
    captcha: CaptchaSection
    form: FormSection
    format: FormatSection
    model: ModelSection = Field(default_factory=ModelSection)
    synthetic: SyntheticSection = Field(default_factory=SyntheticSection)
    steps: tuple[PreStep, ...] = Field(
        (), description="Actions that lead from url to the captcha (log-in pages, menus), in order.")
    source: Path | None = Field(None, exclude=True, repr=False,
                                json_schema_extra={"readOnly": True})

    @field_validator("version")
    @classmethod
    def _check_version(cls, version: int) -> int:
        if version > PROFILE_VERSION:
            raise _newer_version(version)
        if version < 1:
            raise _fix(f"{version} is not a profile format version",
                       f"write version: {PROFILE_VERSION}, or remove the key")
        return version

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        if not NAME_PATTERN.match(name):
            raise _fix(f"{short_repr(name)} is not a valid name",
                       "use lower-case letters, digits, '-' and '_', starting with a letter or digit")
        return name

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        if not url.startswith(URL_SCHEMES) or len(url.split("://", 1)[1]) == 0:
            raise _fix(f"{short_repr(url)} is not an http, https or file URL",
                       "write a full URL such as http://127.0.0.1:8765/example/")
        return url

    @model_validator(mode="after")
    def _check_case_share(self) -> SiteProfile:
        looks = self.synthetic.looks()
        if self.format.case_sensitive and any(look.upper_case_share is not None for look in looks):
            raise _fix("synthetic.upper_case_share is set but format.case_sensitive is true "
                       "(a look-alike's case would then not match its answer)",
                       "remove upper_case_share, or set format.case_sensitive: false")
        return self

    def with_url(self, url: str) -> SiteProfile:
        """A copy of this profile pointing at another URL (a test server's port, say)."""
        return self.model_copy(update={"url": self._check_url(url)})

    def to_dict(self) -> dict[str, Any]:
        """The profile as plain data, in the shape of its YAML file."""
        data = self.model_dump(mode="json")
        del data["version"]  # the current one, which a file may leave out
        data["format"]["length"] = list(self.format.length)
        if not self.steps:  # most profiles have none; keep their files short
            del data["steps"]
        return data

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def fingerprint(self) -> str:
        """Hash of what a model depends on (format and look-alike settings)."""
        data = self.to_dict()
        relevant = {"format": data["format"], "synthetic": self.synthetic.fingerprint_data(),
                    "pipeline": data["model"]["pipeline"]}
        return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------
# error messages

_TYPE_NAMES = {
    "string_type": ("a string", 'quote it, e.g. "text"'),
    "int_type": ("a whole number", "write a number without quotes, e.g. 160"),
    "int_from_float": ("a whole number", "write a number without a decimal point"),
    "bool_type": ("true or false", "write true or false without quotes"),
    "float_type": ("a number", "write a number without quotes"),
    "model_type": ("a mapping of keys", "indent the keys under it, one per line"),
    "model_attributes_type": ("a mapping of keys", "indent the keys under it, one per line"),
    "dict_type": ("a mapping of keys", "indent the keys under it, one per line"),
    "tuple_type": ("a list", "write a YAML list such as [42, 50]"),
}


def _yaml_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {short_repr(value)}"
    if isinstance(value, str):
        return f"the string {short_repr(value)}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _allowed_keys(model: type[BaseModel], location: tuple[Any, ...]) -> list[str]:
    """The keys a mapping at ``location`` (a key path under ``model``) accepts."""
    parts = list(location)
    while parts:
        field = model.model_fields.get(str(parts.pop(0)))
        annotation = getattr(field, "annotation", None)
        items = getattr(annotation, "__args__", ())  # tuple[Model, ...]: the next part is an index
        if items and isinstance(items[0], type) and issubclass(items[0], BaseModel):
            annotation = items[0]
            if parts and isinstance(parts[0], int):
                parts.pop(0)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return [name for name, info in model.model_fields.items() if not info.exclude]


def _field_example(location: tuple[Any, ...]) -> str | None:
    model: type[BaseModel] = SiteProfile
    info = None
    for part in location:
        info = model.model_fields.get(str(part))
        if info is None:
            return None
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            model = info.annotation
    if info is None or not info.examples:
        return None
    example = info.examples[0]
    return json.dumps(example) if isinstance(example, (str, list)) else str(example)


def _describe(error: Mapping[str, Any]) -> tuple[tuple[Any, ...], str]:
    """Turn one pydantic error into (key path, 'problem (fix)')."""
    location = tuple(error["loc"])
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "profile":
        return location, ctx["text"]
    if kind == "extra_forbidden":
        key = str(location[-1])[:100]
        allowed = _allowed_keys(SiteProfile, location[:-1])
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        if close:
            return location, f"unknown key (did you mean '{close[0]}'?)"
        listed = [name for name in allowed if name != "version"]  # the settings, not the format's
        return location, f"unknown key (remove it; allowed here: {', '.join(listed)})"
    if kind == "missing":
        example = _field_example(location)
        key = str(location[-1])
        fix = f"add it, e.g. {key}: {example}" if example else "add it"
        return location, f"required key is missing ({fix})"
    if kind == "literal_error":
        expected = ctx.get("expected", "")
        choices = [c.strip().strip("'") for c in re.split(r",| or ", expected) if c.strip()]
        return location, f"{short_repr(value)} is not one of {', '.join(choices)} (use one of them)"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        bound = {"greater_than_equal": f"at least {ctx.get('ge')}",
                 "less_than_equal": f"at most {ctx.get('le')}",
                 "greater_than": f"more than {ctx.get('gt')}",
                 "less_than": f"less than {ctx.get('lt')}"}[kind]
        return location, f"{short_repr(value)} is out of range (use a value {bound})"
    if kind in ("string_too_short", "too_short"):
        return location, "is empty (give a value, or remove the key if it is optional)"
    if kind in _TYPE_NAMES:
        wanted, fix = _TYPE_NAMES[kind]
        return location, f"expected {wanted}, got {_yaml_type(value)} ({fix})"
    return location, f"{error['msg']} (see `solver profiles schema` for the format)"


def _format_location(location: tuple[Any, ...]) -> str:
    text = ""
    for part in location:
        name = str(part)
        if not (name.isprintable() and len(name) <= 40 and ":" not in name):
            name = short_repr(part, 40)  # a key from the file: bounded, and on one line
        text += f"[{name}]" if isinstance(part, int) else (f".{name}" if text else name)
    return text or "(top level)"


# ---------------------------------------------------------------------------
# loading


def _where(path: str | os.PathLike[str] | None) -> str:
    return str(path) if path is not None else "<string>"


def _error(problems: list[str], where: str, error: type[ProfileError] = ProfileError) -> ProfileError:
    """A :class:`ProfileError` of at most MAX_PROBLEMS lines of at most MAX_LINE characters each."""
    lines = [line if len(line) <= MAX_LINE else line[:MAX_LINE - 3] + "..."
             for line in problems[:MAX_PROBLEMS]]
    if len(problems) > MAX_PROBLEMS:
        lines.append(f"{where}: ... and {len(problems) - MAX_PROBLEMS} more problems (fix these first)")
    return error(lines)


_START_FIX = "(start the file with keys such as name:, url:, captcha:, form:, format:)"
_KINDS = ((bool, "a boolean"), (int, "a number"), (float, "a number"), (str, "a string"),
          (list, "a list"), (bytes, "binary data"), (set, "a set"))


def _kind(value: Any) -> str:
    """What a YAML value is, in words, without its content."""
    if value is None:
        return "empty"
    for kind, words in _KINDS:
        if isinstance(value, kind):
            return words
    return f"a {type(value).__name__}"


def profile_from_data(data: Any, path: str | os.PathLike[str] | None = None) -> SiteProfile:
    """Validate already-parsed YAML data into a :class:`SiteProfile`."""
    where = _where(path)
    # a file that is not a profile at all (a password file, some other tool's YAML) gets one
    # line that names what it is, never a line that quotes what it holds
    if not isinstance(data, dict):
        raise ProfileError([f"{where}: (top level): not a site profile: its top level is "
                            f"{_kind(data)}, not a mapping of keys {_START_FIX}"])
    known = [name for name, info in SiteProfile.model_fields.items() if not info.exclude]
    if data and not any(isinstance(key, str) and key in known for key in data):
        raise ProfileError([f"{where}: (top level): not a site profile: none of its keys is a "
                            f"profile key {_START_FIX}"])
    version = data.get("version")
    if isinstance(version, int) and not isinstance(version, bool) and version > PROFILE_VERSION:
        # a newer format's other keys would only add confusing problems: name this one alone
        raise ProfileError([f"{where}: version: {_newer_version(version).context['text']}"])
    data = dict(data)
    stem = Path(path).stem if path is not None else None
    problems: list[str] = []
    if stem is not None:
        if "name" not in data:
            data["name"] = stem
        elif isinstance(data["name"], str) and data["name"] != stem:
            name = data["name"]
            rename = (f"rename the file to {name}.yaml" if len(name) <= 60 and name.isprintable()
                      else "rename the file after the name")
            problems.append(
                f"{where}: name: {short_repr(name)} does not match the file name "
                f"{short_repr(Path(path).name)} ({rename}, or set name: {stem})"
            )
    try:
        profile = SiteProfile.model_validate(data)
    except ValidationError as error:
        for item in error.errors(include_url=False):
            location, text = _describe(item)
            problems.append(f"{where}: {_format_location(location)}: {text}")
        raise _error(problems, where) from None
    if path is not None:
        profile = profile.model_copy(update={"source": Path(path)})
        problems.extend(_check_files(profile, where))
    if problems:
        raise _error(problems, where)
    return profile


def _check_files(profile: SiteProfile, where: str) -> list[str]:
    problems = []
    base = profile.source.parent if profile.source else Path.cwd()
    for index, font in enumerate(profile.synthetic.fonts):
        if not (base / font).is_file():
            problems.append(
                f"{where}: synthetic.fonts[{index}]: font file {short_repr(font)} not found "
                f"(give a .ttf path relative to {base} or an absolute one)"
            )
    return problems


class _LoadProblem(yaml.YAMLError):
    """Something the profile loader refuses, at a line of the file."""

    def __init__(self, mark: yaml.Mark | None, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.mark, self.problem, self.fix = mark, problem, fix


class _ProfileLoader(yaml.SafeLoader):
    """``yaml.SafeLoader``, refusing what a profile never needs and a hostile file could use.

    While composing, it counts every value (scalar, list, mapping) as it will be
    once aliases are expanded: an alias counts the whole of its anchor, so the
    nine-fold "billion laughs" is refused after a few thousand values, before any
    Python object is built. It also refuses an alias inside its own anchor (an
    endless value), nesting beyond MAX_DEPTH, and a key written twice in one
    mapping (YAML keeps the last silently; a merge key ``<<`` may be overridden).
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._values = 0
        self._aliases_seen = False
        self._depth = 0
        self._open_anchors: set[str] = set()
        self._sizes: dict[int, int] = {}

    def _expanded_size(self, node: yaml.Node) -> int:
        known = self._sizes.get(id(node))
        if known is None:
            if isinstance(node, yaml.SequenceNode):
                known = 1 + sum(self._expanded_size(item) for item in node.value)
            elif isinstance(node, yaml.MappingNode):
                known = 1 + sum(self._expanded_size(key) + self._expanded_size(value)
                                for key, value in node.value)
            else:
                known = 1
            self._sizes[id(node)] = known
        return known

    def _count(self, values: int, mark: yaml.Mark) -> None:
        self._values += values
        if self._values <= MAX_VALUES:
            return
        if self._aliases_seen:
            raise _LoadProblem(mark, f"YAML aliases expand to more than {MAX_VALUES:,} values",
                               "each alias repeats everything under its anchor; a profile needs a "
                               "few hundred values, so write them out or use fewer aliases")
        raise _LoadProblem(mark, f"the file holds more than {MAX_VALUES:,} values",
                           "a profile needs a few hundred; check that this is the right file")

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open_anchors:
                anchor = short_repr(event.anchor, 40).strip("'\"")
                raise _LoadProblem(event.start_mark,
                                   f"alias *{anchor} is used inside its own anchor &{anchor}",
                                   "a profile cannot contain itself; write the values out")
            target = self.anchors.get(event.anchor)
            if target is not None:  # an unknown alias is PyYAML's own error
                self._aliases_seen = True
                self._count(self._expanded_size(target), event.start_mark)
            return super().compose_node(parent, index)
        self._count(1, event.start_mark)
        if not isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _LoadProblem(event.start_mark, f"nested more than {MAX_DEPTH} levels deep",
                               "a profile nests 5 at most; check the brackets and the indentation")
        if event.anchor is not None:
            self._open_anchors.add(event.anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
            self._open_anchors.discard(event.anchor)

    def compose_mapping_node(self, anchor: str | None) -> yaml.MappingNode:
        node = super().compose_mapping_node(anchor)
        first: dict[tuple[str, str], yaml.Node] = {}
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                continue
            earlier = first.setdefault((key.tag, key.value), key)
            if earlier is not key:
                raise _LoadProblem(key.start_mark,
                                   f"key {short_repr(key.value, 40)} written twice, on lines "
                                   f"{earlier.start_mark.line + 1} and {key.start_mark.line + 1}",
                                   "keep one of them")
        return node


def _guarded(constructor: Any) -> Any:
    """A scalar constructor whose failures (a 30th of February, ``!!int nine``) are profile errors."""

    def construct(loader: _ProfileLoader, node: yaml.Node) -> Any:
        kind = node.tag.rsplit(":", 1)[-1]
        if kind == "int" and isinstance(node.value, str) and len(node.value) > MAX_DIGITS:
            raise _LoadProblem(node.start_mark,
                               f"the number {short_repr(node.value)} has more than {MAX_DIGITS} digits",
                               "no profile setting needs one; check the value")
        try:
            return constructor(loader, node)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError, IndexError):
            raise _LoadProblem(node.start_mark,
                               f"{short_repr(node.value)} is not a valid {short_repr(kind, 30)[1:-1]}",
                               "fix it, or quote it to keep it as text") from None

    return construct


for _tag in ("null", "bool", "int", "float", "binary", "timestamp"):
    _ProfileLoader.add_constructor(
        f"tag:yaml.org,2002:{_tag}",
        _guarded(yaml.SafeLoader.yaml_constructors[f"tag:yaml.org,2002:{_tag}"]))


def _size_problem(size: int | None, where: str) -> ProfileError:
    shown = f"{size:,} bytes" if size is not None else f"more than {MAX_FILE_BYTES:,} bytes"
    return ProfileError([f"{where}: (file): is {shown}, over the 1 MB limit for a profile (a profile "
                         "is a few KB of YAML; check that this is the right file)"])


def _parse(text: str, where: str) -> Any:
    """The YAML data of ``text``, or a ProfileError with one short line."""
    loader = None
    try:
        loader = _ProfileLoader(text)  # the reader checks the characters at once
        return loader.get_single_data()
    except _LoadProblem as error:
        at = f"line {error.mark.line + 1}" if error.mark else "(top level)"
        raise ProfileError([f"{where}: {at}: {error.problem} ({error.fix})"]) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        if mark is not None:
            at = f"line {mark.line + 1}, column {mark.column + 1}"
        elif isinstance(getattr(error, "position", None), int):  # a ReaderError: a bad character
            line = text.count("\n", 0, error.position) + 1
            at = f"line {line}, column {error.position - text.rfind(chr(10), 0, error.position)}"
        else:
            at = "(top level)"
        if isinstance(error, yaml.reader.ReaderError):
            problem = (f"unacceptable character #x{error.character:04x}: special characters are "
                       "not allowed" if isinstance(error.character, int) else str(error.reason))
        else:
            problem = getattr(error, "problem", None) or str(error)
        problem = " ".join(str(problem).split())
        problem = problem if len(problem) <= 200 else problem[:197] + "..."
        raise ProfileError([
            f"{where}: {at}: invalid YAML: {problem} "
            "(check the indentation, and quote values that contain ': ' or start with a symbol)"
        ]) from None
    except RecursionError:  # a guard: nesting is refused long before Python's own limit
        raise ProfileError([f"{where}: (top level): nested too deeply (a profile nests 5 levels "
                            "at most; check the brackets and the indentation)"]) from None
    finally:
        if loader is not None:
            loader.dispose()


def load_profile_text(text: str, path: str | os.PathLike[str] | None = None) -> SiteProfile:
    """Parse and validate YAML text. ``path`` is only used in messages and for the name."""
    where = _where(path)
    if len(text) > MAX_FILE_BYTES // 4:  # only then can the UTF-8 encoding be over the limit
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > MAX_FILE_BYTES:
            raise _size_problem(size, where)
    return profile_from_data(_parse(text, where), path)


def load_profile(path: str | os.PathLike[str]) -> SiteProfile:
    """Load and validate one profile file (at most 1 MB of UTF-8 YAML).

    >>> load_profile("site_profiles/digits.yaml").format.length
    (4, 4)
    """
    path = Path(path)
    try:
        with path.open("rb") as file:  # read a bounded amount: the path may be /dev/zero
            raw = file.read(MAX_FILE_BYTES + 1)
            size = os.fstat(file.fileno()).st_size if len(raw) > MAX_FILE_BYTES else 0
        if len(raw) > MAX_FILE_BYTES:
            raise _size_problem(size if size > MAX_FILE_BYTES else None, str(path))
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise ProfileNotFoundError([
            f"{path}: (file): no such file (check the path, or list profiles with `solver profiles list`)"
        ]) from None
    except UnicodeDecodeError as error:
        raise ProfileError([f"{path}: (file): not UTF-8 text (byte {raw[error.start]:#04x} at "
                            f"position {error.start}; save the profile as UTF-8)"]) from None
    except OSError as error:
        raise ProfileError([f"{path}: (file): cannot read it: {error.strerror or error} "
                            "(check the file)"]) from None
    return load_profile_text(text, path)


def profile_schema() -> dict[str, Any]:
    """A JSON Schema of the profile format, for editors."""
    schema = SiteProfile.model_json_schema(mode="validation")
    schema["properties"].pop("source", None)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "solver site profile"
    # `name` defaults to the file name, so a file may leave it out
    schema["required"] = [key for key in schema.get("required", []) if key != "name"]
    length = schema["$defs"]["FormatSection"]["properties"]["length"]
    for key in ("type", "prefixItems", "maxItems", "minItems", "items"):
        length.pop(key, None)
    return schema


# ---------------------------------------------------------------------------
# registry


def profiles_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The profiles directory: the argument, else $SOLVER_PROFILES_DIR, else ./site_profiles."""
    if override:
        return Path(override)
    return Path(os.environ.get(PROFILES_DIR_ENV) or DEFAULT_PROFILES_DIR)


def _same_folder(one: Path, other: Path) -> bool:
    try:
        return one.resolve() == other.resolve()
    except OSError:
        return False


def _folder_profiles(folder: Path) -> dict[str, Path]:
    """The ``NAME.yaml``/``NAME.yml`` files of one folder, by name; a name twice is warned about."""
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.iterdir()):
        if path.suffix in (".yaml", ".yml") and path.is_file():
            if path.stem in found:
                logger.warning("profile %r is defined twice: %s and %s; using %s",
                               path.stem, found[path.stem], path, found[path.stem])
                continue
            found[path.stem] = path
    return found


class ProfileRegistry:
    """Finds profiles by name (``NAME.yaml`` or ``NAME.yml``): in one folder first, then among the
    profiles shipped in the package (``solver.shipped``), unless ``shipped=False``.

    The folder is ``directory``, else ``$SOLVER_PROFILES_DIR``, else ``./site_profiles``; a
    profile there shadows the shipped one of the same name::

        >>> registry = ProfileRegistry("my_profiles")
        >>> registry.load("example").name         # shipped, unless my_profiles/example.yaml exists
        'example'
        >>> registry.is_shipped(registry.paths()["example"])
        True
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None, *,
                 shipped: bool = True) -> None:
        self.directory = profiles_dir(directory)
        self.shipped_directory: Path | None = None
        if shipped:
            from solver import shipped as package

            self.shipped_directory = package.profiles_path()

    @property
    def directories(self) -> list[Path]:
        """The folders looked in, first to last (the shipped one once, even when named twice)."""
        folders = [self.directory]
        if self.shipped_directory is not None and not _same_folder(self.directory,
                                                                   self.shipped_directory):
            folders.append(self.shipped_directory)
        return folders

    def is_shipped(self, path: str | os.PathLike[str]) -> bool:
        """Whether ``path`` is one of the package's own profiles."""
        return (self.shipped_directory is not None
                and _same_folder(Path(path).parent, self.shipped_directory))

    def paths(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for folder in self.directories:
            found.update({name: path for name, path in _folder_profiles(folder).items()
                          if name not in found})  # the user's folder shadows the shipped one
        return dict(sorted(found.items()))

    def names(self) -> list[str]:
        return list(self.paths())

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def load(self, name_or_path: str | os.PathLike[str]) -> SiteProfile:
        """Load a profile by name, or by path when given a .yaml/.yml file.

        Anything else with a folder in it (``../../etc/passwd``) is refused
        before it is opened: a profile file's name ends in .yaml or .yml.
        """
        text = str(name_or_path)
        if text.endswith((".yaml", ".yml")):
            return load_profile(text)
        if os.sep in text or "/" in text or (os.altsep and os.altsep in text):
            raise ProfileError([
                f"{text}: (file): not a profile file, its name does not end in .yaml or .yml (give "
                "a profile name, or the path of a .yaml or .yml file; `solver profiles list` shows "
                "the names)"
            ])
        paths = self.paths()
        if text in paths:
            return load_profile(paths[text])
        close = difflib.get_close_matches(text, list(paths), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        available = ", ".join(paths) or "none"
        raise ProfileNotFoundError([
            f"{self.directory}: {text}: no profile of that name ({hint}available: {available}; "
            f"or pass a path to a .yaml file, or choose the folder with --profiles-dir or ${PROFILES_DIR_ENV})"
        ])
