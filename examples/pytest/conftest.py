"""Only needed where Playwright's own Chromium is not installed: launch a system one instead."""

import pytest

from solver.browser import choose_browser


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args, browser_type):
    return {**browser_type_launch_args, **choose_browser(browser_type.executable_path).launch_options()}
