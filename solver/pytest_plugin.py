"""pytest plugin: a ``captcha_solver`` fixture for your own pytest-playwright suites.

Installed with the package (entry point ``pytest11``)::

    # test_login.py
    def test_login(page, captcha_solver):
        captcha_solver.open(page)            # the profile's URL (or --captcha-url) and pre-steps
        result = captcha_solver.solve(page)  # read, fill, submit, check, retry
        assert result.success, result.to_json()

    $ pytest --captcha-site example [--captcha-url http://staging.example/login]

A test can name its own site with ``@pytest.mark.captcha_site("digits")``.
Solvers (and their models) are loaded once per site for the whole session.
"""

from __future__ import annotations

from typing import Any

import pytest

GROUP = "captcha-solver"


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


@pytest.fixture(scope="session")
def _captcha_solvers() -> dict[str, Any]:
    return {}


@pytest.fixture
def captcha_solver(request: pytest.FixtureRequest, _captcha_solvers: dict[str, Any]) -> Any:
    """A :class:`solver.Solver` for ``--captcha-site`` (or the test's ``captcha_site`` mark)."""
    from solver.errors import SolverError
    from solver.solve import Solver

    config = request.config
    marker = request.node.get_closest_marker("captcha_site")
    site = marker.args[0] if marker and marker.args else config.getoption("captcha_site")
    if not site:
        pytest.fail("captcha_solver needs a site profile: run pytest with --captcha-site NAME, "
                    "or mark the test with @pytest.mark.captcha_site('NAME')", pytrace=False)
    if site not in _captcha_solvers:
        try:
            solver = Solver.for_site(site, profiles_dir=config.getoption("captcha_profiles_dir"),
                                     models_dir=config.getoption("captcha_models_dir"),
                                     attempts=config.getoption("captcha_attempts"))
        except SolverError as error:
            pytest.fail(f"captcha_solver: {error}", pytrace=False)
        url = config.getoption("captcha_url")
        if url and site == config.getoption("captcha_site"):  # the URL belongs to --captcha-site
            solver.core.profile = solver.core.profile.with_url(url)
        _captcha_solvers[site] = solver
    return _captcha_solvers[site]
