"""Bad and hostile requests to `solver label`'s page and `solver serve`'s API, on real servers.

No browser: each test speaks HTTP with http.client, so it can send what a browser would
never let a page send (a forged ``Host``, a foreign ``Origin``, a lone surrogate).

DNS rebinding is the threat behind the host checks: a page on another site that points
its own name at 127.0.0.1 is same-origin with these servers unless they refuse a
``Host`` that is not theirs.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from solver.api import DEFAULT_MAX_BYTES, build_api_app
from solver.cli import main
from solver.dataset import DatasetStore, Entry
from solver.demo_site import SiteServer
from solver.drawing import CaptchaDrawer
from solver.errors import UsageError
from solver.labeller import build_label_app
from solver.labeller.app import MAX_BODY_BYTES
from solver.profiles import ProfileRegistry

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ROOT / "solver" / "shipped" / "profiles"
REGISTRY = ProfileRegistry(PROFILES)
DIGITS = REGISTRY.load("digits")  # exactly 4 digits
DRAWER = CaptchaDrawer.from_settings(DIGITS.synthetic)
DEEP_JSON = b"[" * 5000
JSON = {"Content-Type": "application/json"}


# ---------------------------------------------------------------------------
# helpers


def call(server: SiteServer, method: str, path: str, body: bytes | Iterator[bytes] | None = None,
         headers: Mapping[str, str] | None = None) -> tuple[int, str, str]:
    """One request on its own connection: the status, Content-Type and body text.

    A ``Host`` among ``headers`` replaces the one http.client would send.
    """
    connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=dict(headers or {}),
                           encode_chunked=body is not None and not isinstance(body, bytes))
        response = connection.getresponse()
        return (response.status, response.getheader("content-type", ""),
                response.read().decode("utf-8"))
    finally:
        connection.close()


def error_of(text: str) -> str:
    """The message of a JSON ``{"error": ...}`` answer."""
    return json.loads(text)["error"]


def save_body(file: str, label: str) -> bytes:
    return json.dumps({"file": file, "label": label}).encode()


def on_disk(root: Path, file: str) -> Entry:
    entry = DatasetStore(root).get(file)
    assert entry is not None
    return entry


def multipart_text_field(field: str, value: str) -> tuple[bytes, str]:
    """A multipart/form-data body with one text field, as `curl -F field=value` sends it."""
    boundary = "----solver-security-boundary-41XqB"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"\r\n\r\n"
            f"{value}\r\n--{boundary}--\r\n").encode()
    return body, f"multipart/form-data; boundary={boundary}"


# ---------------------------------------------------------------------------
# fixtures


@pytest.fixture
def store(tmp_path: Path) -> DatasetStore:
    fmt = DIGITS.format
    store = DatasetStore(tmp_path / "data", fmt.charset, fmt.length, fmt.case_sensitive)
    for text in ("1111", "2222"):
        store.add(DRAWER.png(text))
    return store


@pytest.fixture
def labeller(store: DatasetStore) -> Iterator[SiteServer]:
    with SiteServer(build_label_app(store, DIGITS), port=0) as server:
        yield server


@pytest.fixture(scope="module")
def api() -> Iterator[SiteServer]:
    with SiteServer(build_api_app(REGISTRY, ROOT / "solver" / "shipped" / "models"), port=0) as server:
        yield server


@pytest.fixture
def first_file(store: DatasetStore) -> str:
    return store.queue()[0].file


# ---------------------------------------------------------------------------
# Host: DNS rebinding


@pytest.mark.parametrize("which", ["labeller", "api"])
def test_a_foreign_host_is_refused(which: str, request: pytest.FixtureRequest) -> None:
    server: SiteServer = request.getfixturevalue(which)
    path = "/api/format" if which == "labeller" else "/v1/sites"
    for host in ("evil.example", f"evil.example:{server.port}", "127.0.0.1.evil.example",
                 f"[::2]:{server.port}"):
        status, content_type, text = call(server, "GET", path, headers={"Host": host})
        assert status == 400, (host, text)
        assert content_type == "application/json"
        message = error_of(text)
        assert message.startswith(f"Host {host!r} is not a name of this server")
        assert message.endswith("start it with --allow-host NAME to answer another")
        assert "127.0.0.1, localhost, [::1]" in message
        assert "dataset" not in json.loads(text)  # the dataset's path is not given away


def test_a_foreign_host_cannot_save(labeller: SiteServer, store: DatasetStore,
                                    first_file: str) -> None:
    status, _, _ = call(labeller, "POST", "/api/save", save_body(first_file, "1111"),
                        {**JSON, "Host": "evil.example"})
    assert status == 400
    assert on_disk(store.root, first_file).label == ""


@pytest.mark.parametrize("which", ["labeller", "api"])
def test_loopback_hosts_are_accepted(which: str, request: pytest.FixtureRequest) -> None:
    server: SiteServer = request.getfixturevalue(which)
    path = "/api/format" if which == "labeller" else "/healthz"
    port = server.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LocalHost:{port}", f"[::1]:{port}",
                 "127.0.0.1", "localhost"):
        status, _, text = call(server, "GET", path, headers={"Host": host})
        assert status == 200, (host, text)


def test_the_bound_host_and_allowed_hosts_are_accepted(store: DatasetStore) -> None:
    app = build_label_app(store, DIGITS, host="0.0.0.0", allowed_hosts=["captcha.lan", "::5"])
    with SiteServer(app, port=0) as server:
        for host in ("0.0.0.0", "captcha.lan:8766", "CAPTCHA.lan", "[::5]:1", "localhost"):
            assert call(server, "GET", "/api/next", headers={"Host": host})[0] == 200, host
        assert call(server, "GET", "/api/next", headers={"Host": "other.lan"})[0] == 400
    api = build_api_app(REGISTRY, ROOT / "solver" / "shipped" / "models", host="::1", allowed_hosts=["*.lan"])
    with SiteServer(api, port=0) as server:
        for host in ("[::1]:80", "a.lan", "b.c.lan:80"):
            assert call(server, "GET", "/healthz", headers={"Host": host})[0] == 200, host
        assert call(server, "GET", "/healthz", headers={"Host": "lan.evil"})[0] == 400


@pytest.mark.parametrize("pattern", ["evil*.example", "a.*.lan", "", "host/path", "a b"])
def test_a_malformed_allowed_host_says_the_fix(store: DatasetStore, pattern: str) -> None:
    with pytest.raises(UsageError, match=r"allowed host .* \(give a host name, an IP address"):
        build_label_app(store, DIGITS, allowed_hosts=[pattern])


@pytest.mark.parametrize("verb", ["label", "serve"])
def test_the_command_line_threads_host_and_allow_host(verb: str, store: DatasetStore,
                                                      tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """`solver label|serve --host ADDRESS --allow-host NAME` let both in; other names stay out."""
    seen: dict[str, int] = {}
    path = "/api/next" if verb == "label" else "/healthz"

    def serve_forever(server: SiteServer) -> None:  # instead of blocking until Ctrl-C
        with server:
            for name, host in (("bound", f"127.0.0.2:{server.port}"), ("allowed", "captcha.lan"),
                               ("loopback", f"localhost:{server.port}"),
                               ("foreign", "evil.example")):
                seen[name] = call(server, "GET", path, headers={"Host": host})[0]

    monkeypatch.setattr(SiteServer, "serve_forever", serve_forever)
    where = ["--site", "digits", "--data", str(store.root)] if verb == "label" else []
    command = [verb, "--profiles-dir", str(PROFILES), "--models-dir", str(tmp_path / "none"),
               *where, "--port", "0", "--host", "127.0.0.2"]  # all of 127/8 is loopback on Linux
    assert main([*command, "--allow-host", "captcha.lan"]) == 0
    assert seen == {"bound": 200, "allowed": 200, "loopback": 200, "foreign": 400}
    capsys.readouterr()
    assert main([*command, "--allow-host", "captcha.lan:8080"]) == 2
    assert capsys.readouterr().err == (
        "error: allowed host 'captcha.lan:8080': a port is not part of it (give a host name, an "
        "IP address, or *.domain for every name under a domain; no scheme, port or path)\n")


# ---------------------------------------------------------------------------
# Origin: the labelling page's state-changing requests


def test_a_foreign_origin_cannot_save_or_undo(labeller: SiteServer, store: DatasetStore,
                                              first_file: str) -> None:
    port = labeller.port
    for origin in ("http://evil.example", f"http://evil.example:{port}", "null",
                   f"http://localhost:{port + 1}", f"http://127.0.0.1:{port}/page",
                   f"ftp://127.0.0.1:{port}"):
        status, content_type, text = call(
            labeller, "POST", "/api/save", save_body(first_file, "1111"),
            {**JSON, "Origin": origin})
        assert status == 403, (origin, text)
        assert content_type == "application/json"
        assert error_of(text).startswith(f"a request from {origin!r} may not change labels here")
        assert on_disk(store.root, first_file).label == ""

    same_origin = {**JSON, "Origin": f"http://127.0.0.1:{port}"}
    status, _, text = call(labeller, "POST", "/api/save", save_body(first_file, "1111"),
                               same_origin)
    assert status == 200, text
    assert on_disk(store.root, first_file).label == "1111"
    for action in ("/api/undo", "/api/skip", "/api/unskip"):
        status, _, _ = call(labeller, "POST", action, b"{}",
                                {**JSON, "Origin": "http://evil.example"})
        assert status == 403, action
    assert on_disk(store.root, first_file).label == "1111"  # the undo was refused
    status, _, text = call(labeller, "DELETE", "/api/save", None,
                               {"Origin": "http://evil.example"})
    assert status == 403, text


def test_same_host_and_missing_origins_are_allowed(labeller: SiteServer, store: DatasetStore,
                                                   first_file: str) -> None:
    port = labeller.port
    localhost = {**JSON, "Host": f"localhost:{port}", "Origin": f"http://LOCALHOST:{port}"}
    status, _, text = call(labeller, "POST", "/api/save", save_body(first_file, "1111"),
                               localhost)
    assert status == 200, text
    status, _, text = call(labeller, "POST", "/api/undo", b"{}", JSON)  # curl: no Origin
    assert status == 200, text
    assert on_disk(store.root, first_file).label == ""


# ---------------------------------------------------------------------------
# bodies the page would never send


def test_oversize_bodies_are_413(labeller: SiteServer, api: SiteServer, store: DatasetStore,
                                 first_file: str) -> None:
    big = save_body(first_file, "1" * (MAX_BODY_BYTES + 1))
    status, _, text = call(labeller, "POST", "/api/save", big, JSON)
    assert status == 413, text
    assert error_of(text) == (f"the request body is over {MAX_BODY_BYTES} bytes (the page sends "
                              "a file name and a label: a few hundred bytes)")
    chunks = iter([big[:1000], big[1000:]])  # no Content-Length: counted as it comes
    status, _, text = call(labeller, "POST", "/api/save", chunks, JSON)
    assert status == 413, text
    # a declared length is refused before any of the body is read: not waited for, not buffered
    status, _, text = call(labeller, "POST", "/api/save", b"{}",
                           {**JSON, "Content-Length": str(10**9)})
    assert status == 413, text
    assert on_disk(store.root, first_file).label == ""

    huge = b"[" * (DEFAULT_MAX_BYTES + 1)
    status, _, text = call(api, "POST", "/v1/sites/digits/read", huge, JSON)
    assert status == 413, text


def test_deeply_nested_json_is_400(labeller: SiteServer, api: SiteServer) -> None:
    status, _, text = call(labeller, "POST", "/api/save", DEEP_JSON, JSON)
    assert status == 400, text
    assert error_of(text) == ("the request body is JSON nested too deeply (send one flat object, "
                              "as the page does)")
    nested = b'{"file": "x", "label": ' + b"[" * 4000 + b"]" * 4000 + b"}"
    status, _, text = call(labeller, "POST", "/api/save", nested, JSON)
    assert status == 400, text
    status, _, text = call(api, "POST", "/v1/sites/digits/read", DEEP_JSON, JSON)
    assert status == 415, text  # the API takes no JSON at all
    assert "is not an image" in error_of(text)


@pytest.mark.parametrize("field", ["label", "file"])
def test_a_lone_surrogate_is_400(labeller: SiteServer, store: DatasetStore, first_file: str,
                                 field: str) -> None:
    fields = {"file": json.dumps(first_file), "label": '"AB\\udc00C"'}
    fields[field] = '"AB\\udc00C"'
    body = ('{"file": %s, "label": %s}' % (fields["file"], fields["label"])).encode()
    status, content_type, text = call(labeller, "POST", "/api/save", body, JSON)
    assert status == 400, text
    assert content_type == "application/json"
    assert error_of(text) == ("the request body holds a lone surrogate ('\\udc00') in a string, "
                              "which is not text (send the label as UTF-8, or as \\u escapes "
                              "in pairs)")
    assert on_disk(store.root, first_file).label == ""


def test_a_text_field_instead_of_a_file_says_how_to_send_one(api: SiteServer) -> None:
    body, content_type = multipart_text_field("image", "hello")  # curl -F image=hello
    status, _, text = call(api, "POST", "/v1/sites/digits/read", body,
                               {"Content-Type": content_type})
    assert status == 400, text
    assert error_of(text).startswith(
        "the multipart field 'image' came as text, not as a file: send the file with "
        "curl -F image=@captcha.png (the @ makes curl send the file's contents)")
