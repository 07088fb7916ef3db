"""One exception hierarchy for the whole package.

Every error a user can cause carries the fix in its message; the CLI prints
``str(error)`` and exits with ``error.exit_code`` instead of a traceback.
"""

from __future__ import annotations


class SolverError(Exception):
    """Base class of every error the package raises on purpose."""

    #: exit status the CLI uses for this error
    exit_code: int = 1


class UsageError(SolverError):
    """The command line or a call's arguments are wrong."""

    exit_code = 2


class ProfileError(SolverError):
    """A site profile could not be loaded or is invalid.

    ``problems`` holds one line per problem, each formatted as
    ``PATH: key.path: problem (how to fix)``.
    """

    exit_code = 2

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class ProfileNotFoundError(ProfileError):
    """No profile of that name in the profiles directory."""


class BrowserNotFoundError(SolverError):
    """No Chromium to launch: neither Playwright's own nor a system one."""


class SiteError(SolverError):
    """A website failed the solver: a site that does not answer, answers with an HTTP error
    or gives no captcha to work with; or a local server (the captcha site, the API, the
    labelling page) that cannot listen or start, or is asked for a style it does not have."""
