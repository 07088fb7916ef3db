"""The ddddocr candidate of the recipe choice: ddddocr's sure readings of unlabelled images,
with a threshold measured on the labels (all of them: it was trained on none), and nothing
where it reads them badly."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from solver.dataset import Sample
from solver.drawing import CaptchaDrawer
from solver.profiles import SiteProfile, load_profile

pytest.importorskip("ddddocr")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def profile(pair_profile_path: Path) -> SiteProfile:
    return load_profile(pair_profile_path)


def drawn(profile: SiteProfile, folder: Path, count: int, seed: int) -> list[Sample]:
    drawer = CaptchaDrawer.from_settings(profile.synthetic, seed=seed)
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for index in range(count):
        text = "".join(rng.choice("0123") for _ in range(2))
        (folder / f"{index:04d}.png").write_bytes(drawer.png(text))
        samples.append(Sample(folder / f"{index:04d}.png", text))
    return samples


def test_ddddocr_teaches_with_its_sure_readings_only(profile: SiteProfile, tmp_path: Path) -> None:
    from solver.training.recipes import teacher_labels
    from solver.training.train import TrainOptions

    labelled = drawn(profile, tmp_path / "held", 30, seed=21)
    pool = drawn(profile, tmp_path / "pool", 120, seed=22)
    truth = {s.path: s.label for s in pool}
    options = TrainOptions(profile, seed=1)
    guessed, line = teacher_labels(options, labelled, [s.path for s in pool], 0.95, 120)
    assert line.startswith("ddddocr reads ") and "sure of" in line, line
    assert len(guessed) >= 30 and all(sample.pseudo for sample in guessed)
    right = sum(truth[sample.path] == sample.label for sample in guessed)
    assert right / len(guessed) >= 0.95

    # a refused reading is never an image's pseudo-label
    first = guessed[0]
    again, _ = teacher_labels(options, labelled, [s.path for s in pool], 0.95, 120,
                              known_wrong={first.path.resolve(): {first.label}})
    assert first.path not in {sample.path for sample in again}

    # labels it never reads right: no threshold, nothing taken
    wrong = [Sample(s.path, ("1" if s.label[0] == "0" else "0") + s.label[1]) for s in labelled]
    none, said = teacher_labels(options, wrong, [s.path for s in pool], 0.95, 120)
    assert none == [] and said.endswith("left out"), said


def test_the_choice_tries_ddddocr_where_there_are_unlabelled_images(profile: SiteProfile,
                                                                    tmp_path: Path) -> None:
    import json

    from solver.training.models import CTCConfig
    from solver.training.recipes import RecipePlan, auto_train
    from solver.training.train import TrainOptions

    labelled = drawn(profile, tmp_path / "data", 40, seed=23)
    (tmp_path / "data" / "labels.csv").write_text(
        "file,label\n" + "".join(f"{s.path.name},{s.label}\n" for s in labelled))
    drawn(profile, tmp_path / "spare", 80, seed=24)
    options = TrainOptions(profile, data=[tmp_path / "data"], out=tmp_path / "model",
                           time_budget_s=30, workers=1, seed=3, input_height=24,
                           config=CTCConfig(height=24, width=48, filters=(8, 16, 16, 16),
                                            head_units=32, head_layers=1, dropout=0.0))
    lines: list[str] = []
    auto_train(options, unlabelled=[tmp_path / "spare"], report=lines.append,
               candidates=("real", "ddddocr"), general=None,
               plan=RecipePlan(candidate_share=0.3, round_share=0.2, final_share=0.1))
    recipe = json.loads((tmp_path / "model" / "metadata.json").read_text())["training"]["recipe"]
    tried = {attempt["name"]: attempt for attempt in recipe["tried"]}
    assert "ddddocr" in tried, "\n".join(lines)
    assert tried["ddddocr"]["note"].endswith("pseudo-labels")
    # its threshold is measured on all 40 labels, not on the 10 held out: ddddocr was trained
    # on none of them, and no confidence is 95% right on 10 readings with one mistake
    assert any(line.startswith("  [ddddocr] ddddocr reads ") and " of 40 labels" in line
               for line in lines), "\n".join(lines)
