"""The local captcha site over real HTTP on 127.0.0.1 (no browser)."""

from __future__ import annotations

import http.cookiejar
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from solver.demo_site import SESSION_COOKIE, CaptchaSite, SiteServer, load_styles
from solver.errors import SiteError
from solver.profiles import ProfileRegistry

ROOT = Path(__file__).resolve().parents[2]


class Client:
    """A cookie-keeping HTTP client, like one browser session."""

    def __init__(self, server: SiteServer) -> None:
        self.server = server
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str) -> bytes:
        with self.opener.open(self.server.url + path, timeout=10) as response:
            return response.read()

    def post_answer(self, style: str, answer: str) -> str:
        data = urllib.parse.urlencode({"username": "ada", "captcha": answer}).encode()
        with self.opener.open(f"{self.server.url}/{style}/login", data=data, timeout=10) as response:
            return response.read().decode()

    @property
    def session(self) -> str:
        return next(c.value for c in self.jar if c.name == SESSION_COOKIE)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def served(clock: FakeClock) -> Iterator[tuple[CaptchaSite, SiteServer]]:
    site = CaptchaSite(seed=5, clock=clock)
    with SiteServer(site.app, port=0) as server:
        yield site, server


def test_image_is_png_of_the_style_size(served: tuple[CaptchaSite, SiteServer]) -> None:
    from solver.imaging import decode_image

    site, server = served
    client = Client(server)
    for number, (name, style) in enumerate(load_styles().items()):
        png = client.get(f"/{name}/captcha.{style.image_type}?t=unit{number}")
        assert png[:4] == (b"GIF8" if style.variant == "animated-gif" else b"\x89PNG"), name
        image = decode_image(png)
        assert image.shape == (style.height, style.width, 3), name
        answer = site.answer(client.session, name)
        assert answer is not None
        assert style.min_length <= len(answer) <= style.max_length
        assert set(answer) <= set(style.charset)
        assert site.challenge(client.session, name).png == png


def test_right_answer_once_then_refused(served: tuple[CaptchaSite, SiteServer]) -> None:
    site, server = served
    client = Client(server)
    client.get("/example/")
    client.get("/example/captcha.png")
    answer = site.answer(client.session, "example")
    page = client.post_answer("example", answer.lower())  # the example style ignores case
    assert 'class="flash ok"' in page and "Signed in as ada" in page
    assert site.answer(client.session, "example") is None  # used up
    page = client.post_answer("example", answer)
    assert 'class="flash error"' in page and "already used" in page


def test_wrong_answer_is_refused_and_used_up(served: tuple[CaptchaSite, SiteServer]) -> None:
    site, server = served
    client = Client(server)
    client.get("/digits/captcha.png")
    answer = site.answer(client.session, "digits")
    page = client.post_answer("digits", "x" + answer)
    assert 'class="flash error"' in page and "Wrong captcha" in page
    assert client.post_answer("digits", answer).count("flash ok") == 0
    assert site.stats["accepted"] == 0 and site.stats["refused"] == 2


def test_answer_expires(served: tuple[CaptchaSite, SiteServer], clock: FakeClock) -> None:
    site, server = served
    client = Client(server)
    client.get("/example/captcha.png")
    answer = site.answer(client.session, "example")
    clock.now += load_styles()["example"].ttl_seconds + 1
    page = client.post_answer("example", answer)
    assert 'class="flash error expired"' in page and "expired" in page


def test_new_captcha_replaces_the_old_one(served: tuple[CaptchaSite, SiteServer]) -> None:
    site, server = served
    client = Client(server)
    client.get("/example/captcha.png")
    first = site.answer(client.session, "example")
    client.get("/example/captcha.png")
    second = site.answer(client.session, "example")
    assert first != second
    assert "flash ok" not in client.post_answer("example", first)


def test_sessions_are_separate(served: tuple[CaptchaSite, SiteServer]) -> None:
    site, server = served
    alice, bob = Client(server), Client(server)
    alice.get("/example/captcha.png")
    bob.get("/example/captcha.png")
    assert alice.session != bob.session
    assert "flash ok" not in bob.post_answer("example", site.answer(alice.session, "example"))


def test_seed_makes_the_answers_reproducible() -> None:
    def answers(seed: int) -> list[str]:
        site = CaptchaSite(seed=seed)
        with SiteServer(site.app, port=0) as server:
            client = Client(server)
            out = []
            for _ in range(5):
                client.get("/example/captcha.png")
                out.append(site.answer(client.session, "example"))
                client.get("/digits/captcha.png")  # other styles draw from their own sequence
            return out

    assert answers(11) == answers(11)
    assert answers(11) != answers(12)


def test_pages_never_contain_the_answer(served: tuple[CaptchaSite, SiteServer]) -> None:
    site, server = served
    client = Client(server)
    for name in load_styles():
        page = client.get(f"/{name}/").decode()
        frame = client.get(f"/{name}/frame").decode()
        answer = site.answer(client.session, name)
        if answer is not None:  # only the data: URI style draws while rendering the page
            assert answer not in page and answer not in frame
        assert 'name="captcha"' in page


def test_unknown_style_is_404_with_the_list(served: tuple[CaptchaSite, SiteServer]) -> None:
    _, server = served
    with pytest.raises(urllib.error.HTTPError) as caught:
        Client(server).get("/nope/")
    with caught.value as response:
        assert response.code == 404
        assert b'href="/example/"' in response.read()


def test_oversized_form_is_refused(served: tuple[CaptchaSite, SiteServer]) -> None:
    _, server = served
    client = Client(server)
    with pytest.raises(urllib.error.HTTPError) as caught:
        client.opener.open(f"{server.url}/example/login", data=b"captcha=" + b"A" * 20_000)
    with caught.value as response:
        assert response.code == 413


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with pytest.raises(SiteError) as caught:
            SiteServer(CaptchaSite().app, port=port)
    assert str(caught.value) == (
        f"port {port} on 127.0.0.1 is already in use (stop whatever listens there, or choose "
        "another port with --port, or --port 0 for any free one)")


def test_unknown_style_name_is_refused() -> None:
    with pytest.raises(SiteError, match=r"unknown style 'nope' \(choose from: example, digits"):
        CaptchaSite(styles=["example", "nope"])


def test_each_style_has_its_matching_profile() -> None:
    registry = ProfileRegistry(ROOT / "solver" / "shipped" / "profiles")
    for name, style in load_styles().items():
        profile = registry.load(name)
        assert profile.to_dict() == {**style.profile_data(), "description": profile.description}


def test_every_capture_variant_is_shipped() -> None:
    from solver.demo_site.styles import VARIANTS

    variants = {style.variant for style in load_styles().values()}
    assert variants == set(VARIANTS)
    styles = load_styles()
    assert styles["example"].charset == "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    assert (styles["example"].min_length, styles["example"].max_length) == (4, 6)
    assert (styles["digits"].charset, styles["digits"].min_length, styles["digits"].max_length) \
        == ("0123456789", 4, 4)


def test_a_single_use_image_url_answers_once(served: tuple[CaptchaSite, SiteServer]) -> None:
    site, server = served
    client = Client(server)
    first = client.get("/once/captcha.png?t=abc")
    assert site.challenge(client.session, "once").png == first
    for query in ("?t=abc", ""):  # the same URL again, or none: refused, nothing drawn
        with pytest.raises(urllib.error.HTTPError) as caught:
            client.get("/once/captcha.png" + query)
        with caught.value as response:
            assert response.code == 403
    assert site.stats["refetched"] == 2
    assert site.challenge(client.session, "once").png == first
    assert client.get("/once/captcha.png?t=abd") != first  # another URL: a new captcha


def test_the_fetch_form_answers_json_and_the_redirect_form_redirects(
        served: tuple[CaptchaSite, SiteServer]) -> None:
    import json

    site, server = served
    client = Client(server)
    client.get("/fetchform/captcha.png?n=1")
    verdict = json.loads(client.post_answer("fetchform", site.answer(client.session, "fetchform")))
    assert verdict == {"ok": True, "class": "flash ok", "role": "status",
                       "message": "Signed in as ada: the captcha was right."}
    client.get("/redirect/captcha.png?n=1")
    with client.opener.open(f"{server.url}/redirect/login", data=urllib.parse.urlencode(
            {"username": "ada", "captcha": site.answer(client.session, "redirect")}).encode()) as response:
        assert response.url == f"{server.url}/redirect/welcome?user=ada"
        body = response.read().decode()
    assert "Welcome, ada" in body and "flash" not in body
    assert 'class="flash error"' in client.post_answer("redirect", "0000")
