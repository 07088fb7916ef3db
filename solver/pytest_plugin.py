"""pytest plugin: captcha fixtures for your own pytest-playwright suites.

Installed with the package (entry point ``pytest11``)::

    # test_login.py
    def test_login(page, captcha_solver):
        captcha_solver.open(page)            # the profile's URL (or --captcha-url) and pre-steps
        result = captcha_solver.solve(page)  # read, fill, submit, check, retry
        assert result.success, result.to_json()

    $ pytest --captcha-site example [--captcha-url http://staging.example/login]

The fixtures form a chain, as pytest-playwright's do, and a conftest.py can
override any link of it:

* ``captcha_profile`` (session): the ``--captcha-site`` profile, at ``--captcha-url``
  when it is given;
* ``captcha_recognizer`` (session): that profile's model, loaded once;
* ``captcha_solver``: a :class:`solver.Solver` of the two, for Playwright's sync API;
* ``captcha_async_solver``: a :class:`solver.AsyncSolver` of the two, for its async API.

::

    # conftest.py: your own profile, at your test server's address
    @pytest.fixture(scope="session")
    def captcha_profile(shop_server):
        return load_profile("site_profiles/shop.yaml").with_url(shop_server.url)

A test can name its own site with ``@pytest.mark.captcha_site("digits")``: its
solver reads that profile (``--captcha-url`` belongs to ``--captcha-site``) with
that site's model, each loaded once per site for the whole session.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import pytest

if TYPE_CHECKING:
    from solver.profiles import SiteProfile
    from solver.readers import Reader
    from solver.recognizers import Reading
    from solver.solve import AsyncSolver, Solver

GROUP = "captcha-solver"
NEEDS_A_SITE = ("captcha_solver needs a site profile: run pytest with --captcha-site NAME, "
                "or mark the test with @pytest.mark.captcha_site('NAME') (or override the "
                "captcha_profile fixture in a conftest.py)")
T = TypeVar("T")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(GROUP, "solving text captchas with solver (captcha_solver fixture)")
    group.addoption("--captcha-site", metavar="NAME",
                    help="site profile the captcha_solver fixture uses (a name or a .yaml path)")
    group.addoption("--captcha-url", metavar="URL",
                    help="open this URL instead of the --captcha-site profile's (a staging server, say)")
    group.addoption("--captcha-profiles-dir", metavar="DIR",
                    help="folder of NAME.yaml profiles (default: $SOLVER_PROFILES_DIR, else ./site_profiles; "
                         "then the shipped ones)")
    group.addoption("--captcha-models-dir", metavar="DIR",
                    help="folder of trained models (default: $SOLVER_MODELS_DIR, else ./models; then the "
                         "shipped ones)")
    group.addoption("--captcha-attempts", type=int, default=3, metavar="N",
                    help="tries per solve (default 3)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "captcha_site(name): the site profile captcha_solver uses in this test")


def _or_fail(load: Callable[[], T]) -> T:
    """``load()``, with the solver's own errors (a missing profile or model, ...) as a test
    failure that says the fix, without a traceback through the plugin."""
    from solver.errors import SolverError

    try:
        return load()
    except SolverError as error:
        pytest.fail(f"captcha_solver: {error}", pytrace=False)


@pytest.fixture(scope="session")
def captcha_profile(pytestconfig: pytest.Config) -> SiteProfile:
    """The ``--captcha-site`` profile, pointed at ``--captcha-url`` when that is given."""
    from solver.sites import resolve_profile

    site = pytestconfig.getoption("captcha_site")
    if not site:
        pytest.fail(NEEDS_A_SITE, pytrace=False)
    profile = _or_fail(lambda: resolve_profile(site, pytestconfig.getoption("captcha_profiles_dir")))
    url = pytestconfig.getoption("captcha_url")
    return _or_fail(lambda: profile.with_url(url)) if url else profile


@pytest.fixture(scope="session")
def captcha_recognizer(captcha_profile: SiteProfile, pytestconfig: pytest.Config) -> Reader[Reading]:
    """``captcha_profile``'s model (``--captcha-models-dir``, else the usual folders), loaded once."""
    from solver.sites import resolve_site

    models_dir = pytestconfig.getoption("captcha_models_dir")
    return _or_fail(lambda: resolve_site(captcha_profile, models_dir=models_dir).load_recognizer())


@pytest.fixture(scope="session")
def _captcha_sites() -> dict[str, tuple[SiteProfile, Reader[Reading]]]:
    """The sites that ``captcha_site`` marks named, each resolved and loaded once."""
    return {}


def _profile_and_recognizer(request: pytest.FixtureRequest) -> tuple[SiteProfile, Reader[Reading]]:
    """The test's ``captcha_site`` mark's site, else the fixture chain's."""
    from solver.sites import resolve_site

    config = request.config
    marker = request.node.get_closest_marker("captcha_site")
    site = marker.args[0] if marker and marker.args else None
    if site is None or site == config.getoption("captcha_site"):
        return request.getfixturevalue("captcha_profile"), request.getfixturevalue("captcha_recognizer")
    sites: dict[str, tuple[SiteProfile, Reader[Reading]]] = request.getfixturevalue("_captcha_sites")
    if site not in sites:
        resolved = _or_fail(lambda: resolve_site(site, profiles_dir=config.getoption("captcha_profiles_dir"),
                                                 models_dir=config.getoption("captcha_models_dir")))
        sites[site] = (resolved.profile, _or_fail(resolved.load_recognizer))
    return sites[site]


@pytest.fixture
def captcha_solver(request: pytest.FixtureRequest) -> Solver:
    """A :class:`solver.Solver` for ``--captcha-site`` (or the test's ``captcha_site`` mark)."""
    from solver.solve import Solver

    profile, recognizer = _profile_and_recognizer(request)
    return _or_fail(lambda: Solver(profile, recognizer=recognizer,
                                   attempts=request.config.getoption("captcha_attempts")))


@pytest.fixture
def captcha_async_solver(request: pytest.FixtureRequest) -> AsyncSolver:
    """A :class:`solver.AsyncSolver` (Playwright's async API) for the same site as ``captcha_solver``."""
    from solver.solve import AsyncSolver

    profile, recognizer = _profile_and_recognizer(request)
    return _or_fail(lambda: AsyncSolver(profile, recognizer=recognizer,
                                        attempts=request.config.getoption("captcha_attempts")))
