"""The site resolver (solver.sites): which profile, which model folder, which reader."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from solver.artifacts import ModelError
from solver.errors import ProfileError, ProfileNotFoundError
from solver.profiles import load_profile
from solver.sites import Site, model_folder, resolve_profile, resolve_site

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "solver" / "shipped"
MODELS = SHIPPED / "models"
PROFILES = SHIPPED / "profiles"


@pytest.fixture(autouse=True)
def no_user_folders(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ./site_profiles or ./models of the checkout, nor the environment's, in the way."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SOLVER_PROFILES_DIR", raising=False)
    monkeypatch.delenv("SOLVER_MODELS_DIR", raising=False)


def test_a_name_gives_the_shipped_profile_and_model() -> None:
    site = resolve_site("example")
    assert site.profile == load_profile(PROFILES / "example.yaml")
    assert site.model_dir == MODELS / "example"


def test_a_path_or_a_profile_object_is_taken_as_it_is() -> None:
    profile = load_profile(PROFILES / "digits.yaml").with_url("http://127.0.0.1:9/")
    assert resolve_profile(profile) is profile
    assert resolve_site(profile).profile is profile
    assert resolve_profile(str(PROFILES / "digits.yaml")).name == "digits"
    assert resolve_site(PROFILES / "digits.yaml").model_dir == MODELS / "digits"


def test_the_users_model_shadows_the_shipped_one_and_an_explicit_folder_wins(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    assert resolve_site("digits", models_dir=mine).model_dir == MODELS / "digits"  # none of mine yet
    shutil.copytree(MODELS / "digits", mine / "digits")
    assert resolve_site("digits", models_dir=mine).model_dir == mine / "digits"
    assert resolve_site("digits", models_dir=mine, model_dir=MODELS / "digits").model_dir == \
        MODELS / "digits"
    # no model anywhere: the user's folder, where `solver train` would write one
    assert model_folder("nowhere", models_dir=mine) == mine / "nowhere"


def test_the_users_profile_shadows_the_shipped_one(tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    folder.mkdir()
    text = (PROFILES / "digits.yaml").read_text(encoding="utf-8")
    (folder / "digits.yaml").write_text(text.replace("min_confidence: 0.5", "min_confidence: 0.25"),
                                        encoding="utf-8")
    assert resolve_site("digits", profiles_dir=folder).profile.model.min_confidence == 0.25


def test_an_unknown_name_says_which_there_are() -> None:
    with pytest.raises(ProfileNotFoundError, match=r"no profile of that name \(did you mean 'digits'\?"):
        resolve_site("digitz")
    with pytest.raises(ProfileError, match="does not end in .yaml or .yml"):
        resolve_site("../digits")


def test_the_reader_is_loaded_only_when_asked_and_refuses_a_model_that_does_not_fit() -> None:
    site = Site(load_profile(PROFILES / "digits.yaml"), MODELS / "example")  # nothing read yet
    with pytest.raises(ModelError, match="this model does not fit profile 'digits'"):
        site.load_recognizer()
    recognizer = resolve_site("digits").load_recognizer(warm_up=False)
    assert recognizer.model_dir == MODELS / "digits"
    assert recognizer.metadata.charset == "0123456789"
