"""The general model's looks: drawn at random from the machine's fonts, written as a profile."""

from __future__ import annotations

import numpy as np
from solver.drawing import CaptchaDrawer
from solver.fonts import font_catalogue
from solver.profiles import load_profile_text
from solver.training.general import dump_profile, random_looks


def test_the_looks_repeat_with_their_seed_and_differ_between_seeds() -> None:
    assert random_looks(20, seed=3) == random_looks(20, seed=3)
    assert random_looks(20, seed=3) != random_looks(20, seed=4)


def test_the_written_profile_loads_and_every_look_draws_readable_text(tmp_path) -> None:
    looks = random_looks(200, seed=1)
    text = dump_profile(looks)
    profile = load_profile_text(text)  # validated as any profile is, within its value limit
    assert len(profile.synthetic.variants) == 200
    assert len(text.splitlines()) < 230  # a line a look
    # the spread a general model needs: many faces, light text on dark grounds, clutter or none
    faces = {font for look in looks for font in look.get("fonts", [])}
    assert len(faces) >= min(20, len(font_catalogue()) - 1)
    assert any(look["background"] != "random-light" and
               sum(int(look["background"][i:i + 2], 16) for i in (1, 3, 5)) < 300
               for look in looks)
    assert {look.get("noise_lines", 0) > 0 for look in looks} == {True, False}
    for index, look in enumerate(profile.synthetic.looks()[:40]):
        drawer = CaptchaDrawer.from_settings(look, seed=index)
        image = np.asarray(drawer.image("Ab3x9").convert("L"), dtype=np.float32)
        assert image.shape == (look.height, look.width)
        assert image.std() > 5, f"look {index} drew an empty image: {looks[index]}"
