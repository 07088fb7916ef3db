"""solver: learn a website's text captcha and solve it inside Playwright.

The package imports light: heavy parts (Playwright, the site server, models)
load when first used.

    >>> import solver
    >>> profile = solver.load_profile("site_profiles/example.yaml")
    >>> profile.format.length
    (4, 6)
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("solver")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

if TYPE_CHECKING:
    from solver.errors import ProfileError, SolverError
    from solver.profiles import ProfileRegistry, SiteProfile, load_profile
    from solver.recognizers import Recognizer
    from solver.solve import AsyncSolver, Solver

__all__ = ["AsyncSolver", "ProfileError", "ProfileRegistry", "Recognizer", "SiteProfile", "Solver",
           "SolverError", "load_profile"]

_LAZY = {
    "load_profile": "solver.profiles",
    "SiteProfile": "solver.profiles",
    "ProfileRegistry": "solver.profiles",
    "SolverError": "solver.errors",
    "ProfileError": "solver.errors",
    "Solver": "solver.solve",
    "AsyncSolver": "solver.solve",
    "Recognizer": "solver.recognizers",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'solver' has no attribute {name!r}")
