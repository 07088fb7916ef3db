"""The HTTP API (`solver serve`) on a real uvicorn server, with the shipped models."""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import struct
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from solver.api import DEFAULT_MAX_BYTES, build_api_app
from solver.demo_site import SiteServer
from solver.drawing import CaptchaDrawer, random_text
from solver.profiles import ProfileRegistry, SiteProfile

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ROOT / "solver" / "shipped" / "profiles"
MODELS = ROOT / "solver" / "shipped" / "models"


# ---------------------------------------------------------------------------
# helpers


class Client:
    """A keep-alive HTTP/1.1 connection to the server, as most clients hold one."""

    def __init__(self, server: SiteServer) -> None:
        self.connection = http.client.HTTPConnection(server.host, server.port, timeout=60)

    def call(self, method: str, path: str, body: bytes | Iterator[bytes] | None = None,
             headers: Mapping[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        self.connection.request(method, path, body=body, headers=dict(headers or {}),
                                encode_chunked=body is not None and not isinstance(body, bytes))
        response = self.connection.getresponse()
        assert response.getheader("content-type") == "application/json"
        return response.status, json.loads(response.read())

    def read(self, site: str, image: bytes,
             content_type: str = "image/png") -> tuple[int, dict[str, Any]]:
        return self.call("POST", f"/v1/sites/{site}/read", image, {"Content-Type": content_type})

    def read_multipart(self, site: str, image: bytes,
                       field: str = "image") -> tuple[int, dict[str, Any]]:
        body, content_type = multipart(field, image)
        return self.read(site, body, content_type)

    def close(self) -> None:
        self.connection.close()


def call(server: SiteServer, method: str, path: str, body: bytes | None = None,
         headers: Mapping[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    client = Client(server)
    try:
        return client.call(method, path, body, headers)
    finally:
        client.close()


def multipart(field: str, data: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body with one file field, as a browser or `curl -F` sends it."""
    boundary = "----solver-test-boundary-7MA4YWxkTrZu0gW"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; "
            f"filename=\"captcha.png\"\r\nContent-Type: image/png\r\n\r\n").encode()
    body += data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def captchas(profile: SiteProfile, count: int, seed: int) -> list[tuple[str, bytes]]:
    """``count`` (answer, PNG) pairs in the profile's look."""
    drawer = CaptchaDrawer.from_settings(profile.synthetic)
    rng = random.Random(seed)
    fmt = profile.format
    answers = [random_text(rng, fmt.charset, fmt.min_length, fmt.max_length)
               for _ in range(count)]
    return [(answer, drawer.png(answer)) for answer in answers]


def png(width: int, height: int) -> bytes:
    """A white 1-bit PNG of any size, compressed row by row (a 30000x30000 one is ~110 KB)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    row = b"\x00" + b"\xff" * ((width + 7) // 8)
    compressor = zlib.compressobj(9)
    pixels = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
            + chunk(b"IEND", b""))


def write_profile(folder: Path, source: str, name: str) -> None:
    data = yaml.safe_load((PROFILES / f"{source}.yaml").read_text())
    data["name"] = name
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(data))


# ---------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> ProfileRegistry:
    """digits and example with their shipped models; untrained (no model), mismatch (a model
    trained for another format) and broken (an invalid profile)."""
    folder = tmp_path_factory.mktemp("profiles")
    for name in ("digits", "example"):
        write_profile(folder, name, name)
    write_profile(folder, "digits", "untrained")
    write_profile(folder, "example", "mismatch")
    (folder / "broken.yaml").write_text("name: broken\nurl: [\n")
    return ProfileRegistry(folder, shipped=False)  # these sites only


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    (folder / "digits").symlink_to(MODELS / "digits")
    (folder / "example").symlink_to(MODELS / "example")
    (folder / "mismatch").symlink_to(MODELS / "digits")
    return folder


@pytest.fixture(scope="module")
def server(registry: ProfileRegistry, models_dir: Path) -> Iterator[SiteServer]:
    with SiteServer(build_api_app(registry, models_dir), port=0) as running:
        yield running


@pytest.fixture(scope="module")
def digits() -> SiteProfile:
    return ProfileRegistry(PROFILES).load("digits")


@pytest.fixture(scope="module")
def example() -> SiteProfile:
    return ProfileRegistry(PROFILES).load("example")


@pytest.fixture
def client(server: SiteServer) -> Iterator[Client]:
    connection = Client(server)
    yield connection
    connection.close()


# ---------------------------------------------------------------------------
# tests


def test_healthz(client: Client) -> None:
    assert client.call("GET", "/healthz") == (200, {"ok": True})


def test_read_raw_body(client: Client, digits: SiteProfile) -> None:
    right = 0
    for index, (answer, image) in enumerate(captchas(digits, 20, seed=1)):
        content_type = "image/png" if index % 2 else "application/octet-stream"
        status, body = client.read("digits", image, content_type)
        assert status == 200, body
        assert set(body) == {"site", "text", "confidence", "ms", "fits"}
        assert body["site"] == "digits"
        assert 0.0 <= body["confidence"] <= 1.0
        assert 0.0 < body["ms"] < 1000
        assert body["fits"] is (len(body["text"]) == 4 and body["text"].isdigit())
        right += body["text"] == answer
    assert right >= 19  # the shipped model reads ~99.6% of these


def test_read_multipart_reads_as_the_raw_body(client: Client, example: SiteProfile) -> None:
    right = 0
    for answer, image in captchas(example, 10, seed=2):
        status, raw = client.read("example", image)
        assert status == 200, raw
        status, form = client.read_multipart("example", image)
        assert status == 200, form
        assert form["text"] == raw["text"] and form["confidence"] == raw["confidence"]
        right += form["text"] == answer
    assert right >= 8  # the shipped example model reads ~97%


def test_multipart_without_the_image_field(client: Client, digits: SiteProfile) -> None:
    (_, image), = captchas(digits, 1, seed=3)
    status, body = client.read_multipart("digits", image, field="file")
    assert status == 400
    assert body["error"].startswith("the multipart body has no file field 'image' (it has 'file')")


@pytest.mark.parametrize(("data", "message"), [
    (b"<html>Service unavailable</html>", "not an image: 32 bytes starting with b'<html>Servic'"),
    (b"", "the request's image: empty (0 bytes)"),
    (png(5000, 40), "the request's image: 5000x40 pixels is too large for a captcha"),
    (png(30000, 30000), "the image is far too large for a captcha"),  # a decompression bomb
], ids=["html", "empty", "too-wide", "bomb"])
def test_bad_image_is_400_with_the_reason(client: Client, digits: SiteProfile, data: bytes,
                                          message: str) -> None:
    assert len(data) < DEFAULT_MAX_BYTES
    status, body = client.read("digits", data)
    assert status == 400
    assert message in body["error"]
    (_, image), = captchas(digits, 1, seed=4)
    assert client.read("digits", image)[0] == 200  # the same connection still reads


def test_truncated_image_is_400(client: Client, digits: SiteProfile) -> None:
    (_, image), = captchas(digits, 1, seed=5)
    status, body = client.read("digits", image[: len(image) // 2])
    assert status == 400
    assert body["error"].startswith("the request's image:")


def test_oversize_body_is_413_and_the_server_carries_on(client: Client,
                                                        digits: SiteProfile) -> None:
    oversize = b"\x89PNG" + b"\x00" * DEFAULT_MAX_BYTES
    status, body = client.read("digits", oversize)  # Content-Length: refused before reading
    assert status == 413
    assert body["error"] == (
        f"{len(oversize)} bytes is over the limit of {DEFAULT_MAX_BYTES} bytes (a captcha image "
        "is a few KiB; crop it to the captcha, or start the server with a larger --max-bytes)")
    chunks = iter([oversize[i:i + 65536] for i in range(0, len(oversize), 65536)])
    status, body = client.call("POST", "/v1/sites/digits/read", chunks,  # no length: counted
                               {"Content-Type": "image/png"})
    assert status == 413
    assert body["error"].startswith(f"the body is over the limit of {DEFAULT_MAX_BYTES} bytes")
    status, body = client.read_multipart("digits", oversize)
    assert status == 413
    (_, image), = captchas(digits, 1, seed=6)
    status, body = client.read("digits", image)  # on the same connection
    assert status == 200 and len(body["text"]) == 4


def test_unknown_site_is_404(client: Client, registry: ProfileRegistry,
                             digits: SiteProfile) -> None:
    (_, image), = captchas(digits, 1, seed=7)
    status, body = client.read("nosuchsite", image)
    assert status == 404
    assert body["error"] == (
        "no site 'nosuchsite' (sites: broken, digits, example, mismatch, untrained; GET /v1/sites "
        f"lists them, or add nosuchsite.yaml to {registry.directory}/)")
    for name in ("digits.yaml", ".."):  # a name is never read as a path
        assert client.read(name, image)[0] == 404
    status, body = client.call("GET", "/v2/anything")
    assert status == 404 and "POST /v1/sites/NAME/read" in body["error"]


@pytest.mark.parametrize(("site", "message"), [
    ("untrained", "/untrained: no trained model here (no metadata.json; train one with "
                  "`solver train --site untrained`"),
    ("mismatch", "/mismatch: this model does not fit profile 'mismatch': the model's charset "
                 "'0123456789' differs from the profile's"),
    ("broken", "broken.yaml: line 3, column 1: invalid YAML"),
])
def test_site_that_cannot_read_is_409(client: Client, digits: SiteProfile, site: str,
                                      message: str) -> None:
    (_, image), = captchas(digits, 1, seed=8)
    status, body = client.read(site, image)
    assert status == 409
    assert message in body["error"]


def test_wrong_content_type_is_415(client: Client, digits: SiteProfile) -> None:
    (_, image), = captchas(digits, 1, seed=9)
    status, body = client.read("digits", image, "application/x-www-form-urlencoded")
    assert status == 415
    assert "add -H 'Content-Type: image/png'" in body["error"]
    status, body = client.call("GET", "/v1/sites/digits/read")
    assert status == 405 and "POST" in body["error"]


def test_sites_lists_profiles_and_models(client: Client) -> None:
    status, body = client.call("GET", "/v1/sites")
    assert status == 200
    sites = {site["name"]: site for site in body["sites"]}
    assert list(sites) == ["broken", "digits", "example", "mismatch", "untrained"]
    assert sites["digits"]["format"] == {"charset": "0123456789", "min_length": 4,
                                         "max_length": 4, "case_sensitive": True}
    model = sites["digits"]["model"]
    assert model["pipeline"] == "ctc"
    assert model["input"] == {"height": 32, "width": 88, "channels": 1}
    assert model["validation_accuracy"] > 0.9
    assert sites["example"]["format"]["case_sensitive"] is False
    assert sites["untrained"]["model"] is None
    assert "invalid YAML" in sites["broken"]["error"]


def test_fifty_concurrent_requests_load_the_model_once(registry: ProfileRegistry,
                                                       models_dir: Path,
                                                       digits: SiteProfile) -> None:
    app = build_api_app(registry, models_dir)
    samples = captchas(digits, 50, seed=10)
    start = threading.Barrier(50)

    def read(sample: tuple[str, bytes]) -> tuple[str, int, dict[str, Any]]:
        answer, image = sample
        client = Client(server)
        try:
            client.connection.connect()
            start.wait(timeout=30)  # every request is in flight before the model is loaded
            return (answer, *client.read("digits", image))
        finally:
            client.close()

    with SiteServer(app, port=0) as server, ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(read, samples))
    assert [status for _, status, _ in results] == [200] * 50
    right = sum(body["text"] == answer for answer, _, body in results)
    assert right >= 48  # the shipped model reads ~99.6% of these
    assert app.state.models.loads == {"digits": 1}


def test_solver_serve_command(tmp_path: Path, digits: SiteProfile) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "solver", "serve", "--port", "0", "--profiles-dir", str(PROFILES),
         "--models-dir", str(MODELS), "--max-bytes", "100000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # Ctrl-C as in a terminal
    try:
        assert process.stdout is not None
        summary = process.stdout.readline()
        assert "with a model in" in summary and "digits, example" in summary
        started = process.stdout.readline()
        assert started.startswith("HTTP API on http://127.0.0.1:")
        port = int(started.split("http://127.0.0.1:", 1)[1].split("/", 1)[0])
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            connection.request("GET", "/healthz")
            assert json.loads(connection.getresponse().read()) == {"ok": True}
            (_, image), = captchas(digits, 1, seed=11)
            connection.request("POST", "/v1/sites/digits/read", body=image,
                               headers={"Content-Type": "image/png"})
            response = connection.getresponse()
            assert response.status == 200
            assert len(json.loads(response.read())["text"]) == 4
            connection.request("POST", "/v1/sites/digits/read", body=b"\0" * 100_001,
                               headers={"Content-Type": "image/png"})
            response = connection.getresponse()
            assert response.status == 413
            assert "over the limit of 100000 bytes" in json.loads(response.read())["error"]
        finally:
            connection.close()
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C
        process.communicate(timeout=30)
    assert process.returncode == 0
