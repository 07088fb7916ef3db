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


# ----------------------------------------------------------------- the pytest plugin's chain

pytest_plugins = ("pytester",)
# the inner runs need no browser, and pytest-playwright's soft-assertion scope does not nest
NO_BROWSER = ("-p", "no:playwright")

CHAIN_TESTS = f'''
import pytest

SEEN = []

def test_the_chain(captcha_profile, captcha_recognizer, captcha_solver, captcha_async_solver):
    assert type(captcha_solver).__name__ == "Solver"
    assert type(captcha_async_solver).__name__ == "AsyncSolver"
    for solver in (captcha_solver, captcha_async_solver):
        assert solver.profile is captcha_profile and solver.recognizer is captcha_recognizer
    assert solver.core.attempts == 2
    SEEN.append(captcha_recognizer)
    print("PROFILE", captcha_profile.name, captcha_profile.url)

def test_the_recognizer_is_loaded_once(captcha_recognizer):
    assert SEEN == [captcha_recognizer]

@pytest.mark.captcha_site("example")
def test_a_mark_names_another_site(captcha_solver):
    assert captcha_solver.profile.name == "example"
    assert captcha_solver.profile.url == "http://127.0.0.1:8765/example/"  # its own URL
    assert str(captcha_solver.recognizer.model_dir) == {str(MODELS / "example")!r}
'''


def test_the_plugins_fixtures_flow_from_captcha_profile(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_chain=CHAIN_TESTS)
    result = pytester.runpytest(*NO_BROWSER, "-s", "--captcha-site", "digits", "--captcha-attempts", "2",
                                "--captcha-url", "http://127.0.0.1:9/staging")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*PROFILE digits http://127.0.0.1:9/staging*"])


def test_a_conftest_can_override_captcha_profile(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(f'''
import pytest
from solver.profiles import load_profile

@pytest.fixture(scope="session")
def captcha_profile():
    return load_profile({str(PROFILES / "digits.yaml")!r}).with_url("http://127.0.0.1:9/own")
''')
    pytester.makepyfile(test_chain=CHAIN_TESTS)
    result = pytester.runpytest(*NO_BROWSER, "-s", "--captcha-attempts", "2")  # no --captcha-site needed
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*PROFILE digits http://127.0.0.1:9/own*"])


def test_without_a_site_the_fixture_says_what_to_do(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_chain=CHAIN_TESTS)
    result = pytester.runpytest(*NO_BROWSER, "-k", "the_chain")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*captcha_solver needs a site profile: run pytest with "
                                 "--captcha-site NAME*"])
