"""The general model's looks: many captcha looks, drawn at random from this machine's fonts.

``models/general`` is where a new site's training starts and a pre-labeller for a
site with no model. It should have seen as many ways of drawing a captcha as
there are: type (every upright face in :func:`solver.fonts.font_catalogue`, by
weight, serifs and width), size and placement, colours (one per image or per
character, clutter in the text's colours or its own, light text on a dark ground),
clutter (dots, arcs, lines, of several widths), hard or smooth edges, blur, grey.
A hand-written list of eight looks (the first general model) read 1.4% and 36.9%
of two real sites; this module draws a few hundred looks at random instead, each
a ``synthetic.variants`` entry, and writes them into the general profile::

    python -m solver.training.general --looks 200 --seed 1 \\
        --write solver/training/profiles/general.yaml

The looks are drawn from ranges a person would call "a captcha", not fitted to
any site: the development sets are for measuring the model, not for making it.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from solver.fonts import FontFace, font_catalogue

#: the general profile's fixed part: what it reads, and the model it trains
HEADER: dict[str, Any] = {
    "name": "general",
    "url": "file:///dev/null",
    "description": "General model: 3-8 characters of 0-9a-zA-Z in many looks",
    "captcha": {"selector": "img"},
    "form": {"input": "input", "submit": "button"},
    "format": {"charset": "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
               "length": [3, 8], "case_sensitive": True},
    "model": {"pipeline": "ctc", "min_confidence": 0.5},
}

_INTRO = """\
# The general model's look-alikes: {count} captcha looks drawn at random (seed {seed}) from
# this machine's fonts by `python -m solver.training.general` (see that module), so that
# models/general reads captchas of sites it has never seen well enough to pre-label them and
# to be a starting point for fine-tuning. Written by:
#   python -m solver.training.general --looks {count} --seed {seed} --write {path}
# Rebuild the model with `make general-model`. The fonts are those `make setup` installs
# (Debian's free font packages); a look whose fonts this machine lacks draws in the others.
"""


def _hex(rgb: Sequence[int]) -> str:
    return "#" + "".join(f"{max(0, min(255, int(c))):02x}" for c in rgb)


def _dark(rng: random.Random) -> str:
    """A colour that reads as text on a light ground: dark, or strong and saturated."""
    if rng.random() < 0.5:
        return _hex([rng.randint(0, 90) for _ in range(3)])
    strong = [rng.randint(0, 80), rng.randint(0, 160), rng.randint(120, 230)]
    rng.shuffle(strong)
    return _hex(strong)


def _light(rng: random.Random, low: int = 190) -> str:
    return _hex([rng.randint(low, 255) for _ in range(3)])


def random_look(rng: random.Random, fonts: Sequence[FontFace]) -> dict[str, Any]:
    """One captcha look as ``synthetic`` settings (a variants entry), drawn from ``rng``."""
    height = rng.choice([24, 28, 30, 32, 36, 40, 44, 50, 56, 60, 70])
    width = int(round(height * rng.uniform(2.2, 4.6)))
    faces = rng.sample(list(fonts), k=min(len(fonts), rng.choice([1, 1, 2, 3])))
    size = height * rng.uniform(0.55, 0.95)
    look: dict[str, Any] = {
        "width": width, "height": height,
        "fonts": [face.path for face in faces if face.path],
        "font_sizes": sorted({max(6, int(size * f)) for f in (0.9, 1.0, 1.1)}),
        "rotation": rng.choice([0, 5, 10, 15, 20, 30, 40]),
        "vertical_jitter": rng.choice([0, 2, 4, 6, 10]),
        "overlap": round(rng.choice([0.0, 0.0, 0.1, 0.2, 0.3, 0.4]), 2),
        "gap_probability": rng.choice([0.0, 0.0, 0.1, 0.3]),
        "spacing": round(rng.choice([-0.1, 0.0, 0.0, 0.1, 0.2, 0.4]), 2),
        "baseline": rng.random() < 0.5,
        "stroke": rng.choice([0, 0, 0, 0, 1, 2]) if height >= 36 else 0,
        "antialias": rng.random() < 0.8,
        # clutter and blur in proportion to the image: 100 dots bury a 24-pixel captcha
        "noise_dots": int(width * height * rng.choice([0, 0, 0.001, 0.003, 0.006, 0.01])),
        "noise_curves": rng.choice([0, 0, 0, 1, 2, 3]),
        "noise_lines": rng.choice([0, 0, 1, 2, 3, 5, 8]),
        "line_width": rng.choice([1, 1, 2, 3]),
        "blur": (None if rng.random() < 0.3 else
                 round(rng.choice([0.0, 0.0, 0.4, 0.7, 1.0]) * min(1.0, height / 50), 2)),
        "grayscale": rng.random() < 0.25,
        "colour_per_character": rng.random() < 0.35,
    }
    inverted = rng.random() < 0.1  # light text on a dark ground
    if inverted:
        look["background"] = _hex([rng.randint(0, 70) for _ in range(3)])
        look["background_jitter"] = rng.choice([0, 10, 20])
        look["text_colours"] = [_light(rng) for _ in range(rng.randint(1, 3))]
    else:
        ground = rng.random()
        if ground < 0.35:
            look["background"] = "random-light"
        else:
            look["background"] = _light(rng, 150 if ground < 0.55 else 200)
            look["background_jitter"] = rng.choice([0, 10, 20, 40])
            if rng.random() < 0.25:
                look["background_gradient"] = rng.choice([-80, -40, 40, 80])
        scheme = rng.random()
        look["text_colours"] = ("random" if scheme < 0.3 else "random-dark" if scheme < 0.6
                                else [_dark(rng) for _ in range(rng.randint(1, 3))])
    if rng.random() < 0.3:  # clutter in colours of its own
        pick = _light if inverted else _dark
        look["clutter_colours"] = [pick(rng) if rng.random() < 0.7 else _hex(
            [rng.randint(100, 200)] * 3) for _ in range(rng.randint(1, 3))]
    if rng.random() < 0.1:
        look["border"] = _hex([rng.randint(0, 120)] * 3)
    from solver.profiles import SyntheticSection

    defaults = SyntheticSection()
    # a setting at its default is left out: the file stays small and says what differs
    return {key: value for key, value in look.items()
            if value != [] and _plain(getattr(defaults, key)) != value}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def random_looks(count: int, seed: int, fonts: Sequence[FontFace] | None = None
                 ) -> list[dict[str, Any]]:
    """``count`` looks, the same for the same ``seed`` and fonts."""
    faces = list(fonts if fonts is not None else font_catalogue())
    if not faces:
        raise ValueError("no fonts found: install some (make setup does) to draw the looks")
    rng = random.Random(seed)
    return [random_look(rng, faces) for _ in range(count)]


def dump_profile(looks: Sequence[dict[str, Any]]) -> str:
    """The general profile as YAML text, a line a look."""
    head = yaml.safe_dump(HEADER, sort_keys=False, width=100, default_flow_style=None)
    head += "synthetic:\n  width: 160\n  height: 60\n"
    lines = [yaml.safe_dump(look, sort_keys=False, default_flow_style=True, width=10**6).strip()
             for look in looks]
    return head + "  variants:\n" + "".join(f"  - {line}\n" for line in lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m solver.training.general",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--looks", type=int, default=200, help="how many looks (default 200; a profile holds at most 10,000 values)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--write", type=Path, required=True, help="the profile to write")
    args = parser.parse_args(argv)
    looks = random_looks(args.looks, args.seed)
    text = _INTRO.format(count=args.looks, seed=args.seed, path=args.write)
    text += dump_profile(looks)
    tmp = args.write.with_name(f".{args.write.name}.tmp")
    tmp.write_text(text)
    tmp.replace(args.write)
    print(f"wrote {args.write}: {len(looks)} looks from {len({f for look in looks for f in look.get('fonts', [''])})} fonts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
