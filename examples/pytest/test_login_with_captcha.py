"""An example of testing your own site's captcha flow with the solver's pytest plugin.

Run it against the local demo site:

    solver site serve &                       # http://127.0.0.1:8765
    pytest examples/pytest --captcha-site example
"""

def test_sign_in_passes_the_captcha(page, captcha_solver):
    captcha_solver.open(page)
    result = captcha_solver.solve(page)
    assert result.success, result.to_json()
    assert page.locator(".flash.ok").is_visible()


def test_the_captcha_reads_as_the_profile_says(page, captcha_solver):
    captcha_solver.open(page)
    reading = captcha_solver.read(page)
    assert captcha_solver.profile.format.label_problem(reading.text) is None
