"""The HTTP API: read captchas over HTTP with the trained models (``solver serve``).

Each site's model is loaded on the first request that needs it, once, and then
shared by every request; readings run in worker threads, off the event loop::

    registry = ProfileRegistry("site_profiles")
    app = build_api_app(registry, Path("models"))
    with SiteServer(app, port=0) as server:
        print(server.url)

Endpoints (answers are JSON; errors are ``{"error": message}``, the message says the fix):

    POST /v1/sites/{name}/read  the image: raw bytes (Content-Type image/* or
                                application/octet-stream) or multipart/form-data
                                with a file field ``image``; answers
                                {"site", "text", "confidence", "ms", "fits"}
    GET  /v1/sites              every profile, its format, and its model if any
    GET  /healthz               {"ok": true}

Every request must name the server by a loopback ``Host`` (127.0.0.1, localhost,
[::1]), its ``host`` or one of ``allowed_hosts``; any other is refused with 400,
so that a page of another site cannot read through DNS rebinding
(:mod:`solver.host_check`). The API takes no JSON: a JSON body is a 415.

Statuses: 400 a body that is not a usable image (too large a picture included),
404 no profile of that name, 409 the site is known but cannot read now (no
trained model, a model that does not fit the profile, or an invalid profile;
fix it on the server, no restart needed), 413 a body over ``max_bytes``, 415 a
Content-Type the API does not take. A model is loaded once: restart the server
to use a retrained model or an edited profile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive

from solver.artifacts import METADATA_FILE, ModelError, read_metadata
from solver.errors import ProfileError, SolverError
from solver.host_check import TrustedHosts, trusted_hosts
from solver.imaging import ImageError, decode_image
from solver.profiles import ProfileRegistry, SiteProfile
from solver.recognizers import Reading, Recognizer
from solver.sites import model_folder, resolve_site

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 2 * 1024 * 1024
IMAGE_FIELD = "image"
NO_STORE = {"Cache-Control": "no-store"}
RAW_TYPES = ("application/octet-stream",)  # and every image/*
SEND_AN_IMAGE = (f"send the image bytes as the body with Content-Type image/png (or any image/*, "
                 f"or application/octet-stream), or multipart/form-data with a file field "
                 f"{IMAGE_FIELD!r}")


class UnknownSiteError(SolverError):
    """No profile of that name in the registry."""


class BodyTooLargeError(SolverError):
    """A request body over the API's limit."""


class BadRequestError(SolverError):
    """A request the API cannot take (no image field, a malformed multipart body)."""


class UnsupportedMediaError(BadRequestError):
    """A body whose Content-Type is neither an image nor multipart/form-data."""


@dataclass(frozen=True)
class SiteModel:
    """A site's profile and its loaded model.

    One Recognizer serves every thread: it locks its LiteRT interpreter around
    each invoke, and the rest of a reading (resizing, CTC decoding) runs in
    parallel. A pool of two Recognizers read no faster on 2 cores
    (``benchmarks/api.py``), so there is one.
    """

    profile: SiteProfile
    recognizer: Recognizer

    def read(self, image: np.ndarray) -> Reading:
        return self.recognizer.read(image)


class SiteModels:
    """Loads each site's model on first use, once, and shares it between threads.

        models = SiteModels(ProfileRegistry("site_profiles"), Path("models"))
        models.get("digits").read(decode_image(png))

    Failures are not cached: a site whose model was missing reads as soon as
    one is trained. ``loads`` counts the models loaded, per site.
    """

    def __init__(self, registry: ProfileRegistry, models_dir: Path) -> None:
        self.registry = registry
        self.models_dir = Path(models_dir)
        self.loads: Counter[str] = Counter()
        self._loaded: dict[str, SiteModel] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def profile_path(self, name: str) -> Path:
        # looked up among the registry's files only: a name is never read as a path
        path = self.registry.paths().get(name)
        if path is None:
            available = ", ".join(self.registry.names()) or "none"
            raise UnknownSiteError(f"no site {name!r} (sites: {available}; GET /v1/sites lists "
                                   f"them, or add {name}.yaml to {self.registry.directory}/)")
        return path

    def model_folder(self, name: str) -> Path:
        """``models_dir/NAME`` when it holds a model, else the package's shipped one of that name."""
        return model_folder(name, models_dir=self.models_dir)

    def loaded(self, name: str) -> bool:
        return name in self._loaded

    def get(self, name: str) -> SiteModel:
        """The site's model, loading it if no thread has yet (blocks; call it from a thread)."""
        model = self._loaded.get(name)
        if model is not None:
            return model
        with self._site_lock(name):
            model = self._loaded.get(name)
            if model is None:
                model = self._load(name)
                self._loaded[name] = model
            return model

    def _site_lock(self, name: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(name, threading.Lock())

    def _load(self, name: str) -> SiteModel:
        # the registry's own file for the name: a name is never read as a path
        site = resolve_site(self.profile_path(name), registry=self.registry,
                            models_dir=self.models_dir)
        started = time.perf_counter()
        # warmed up: the first invoke allocates (about 10 ms), not on a client's time
        recognizer = site.load_recognizer()
        self.loads[name] += 1
        logger.info("%s: loaded %s in %.0f ms", name, site.model_dir,
                    (time.perf_counter() - started) * 1000)
        return SiteModel(site.profile, recognizer)


def build_api_app(registry: ProfileRegistry, models_dir: Path,
                  max_bytes: int = DEFAULT_MAX_BYTES, *, host: str = "127.0.0.1",
                  allowed_hosts: Iterable[str] = ()) -> Starlette:
    """The HTTP API over ``registry``'s profiles and ``models_dir/NAME`` models (else the
    shipped ones), as an ASGI app.

    ``max_bytes`` bounds a request body (413 beyond, checked while it streams
    in). Requests must name the server as 127.0.0.1, localhost, [::1], ``host``
    (the address it listens on) or one of ``allowed_hosts`` (``*.domain``
    patterns too). ``app.state.models`` is the :class:`SiteModels` cache.
    """
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be positive, not {max_bytes}")
    hosts = trusted_hosts(host, allowed_hosts)
    models = SiteModels(registry, models_dir)

    async def read(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            if not models.loaded(name):
                models.profile_path(name)  # an unknown site is refused before its body is read
            data = await _image_bytes(request, max_bytes)
            result = await run_in_threadpool(_read, models, name, data)
        except SolverError as error:
            return _error(str(error), _status_of(error))
        return JSONResponse(result, headers=NO_STORE)

    def sites(request: Request) -> Response:  # reads files: Starlette runs it in a thread
        return JSONResponse({"sites": [_describe(models, name, path)
                                       for name, path in registry.paths().items()]},
                            headers=NO_STORE)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True}, headers=NO_STORE)

    app = Starlette(
        routes=[
            Route("/v1/sites/{name}/read", read, methods=["POST"]),
            Route("/v1/sites", sites),
            Route("/healthz", healthz),
        ],
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
        middleware=[Middleware(TrustedHosts, allowed_hosts=hosts)],
    )
    app.state.models = models
    return app


# ---------------------------------------------------------------------------
# internals

_STATUS_OF_ERROR: tuple[tuple[type[SolverError], int], ...] = (
    (UnsupportedMediaError, 415),
    (ImageError, 400),
    (BadRequestError, 400),
    (UnknownSiteError, 404),
    (ModelError, 409),
    (ProfileError, 409),
    (BodyTooLargeError, 413),
)


def _status_of(error: SolverError) -> int:
    return next((code for kind, code in _STATUS_OF_ERROR if isinstance(error, kind)), 500)


def _read(models: SiteModels, name: str, data: bytes) -> dict[str, Any]:
    """Decode and read one image (in a worker thread): the response's fields."""
    model = models.get(name)
    started = time.perf_counter()
    image = decode_image(data, source="the request's image")  # outside the pool: runs in parallel
    decoded = time.perf_counter()
    reading = model.read(image)
    milliseconds = (decoded - started) * 1000 + reading.milliseconds
    text = reading.text
    return {"site": name, "text": text, "confidence": round(reading.confidence, 4),
            "ms": round(milliseconds, 3), "fits": model.profile.format.label_problem(text) is None}


async def _image_bytes(request: Request, max_bytes: int) -> bytes:
    """The request's image: the raw body, or the multipart field ``image``, within the limit."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:  # refused before a byte is read
        raise BodyTooLargeError(_too_large(max_bytes, f"{declared} bytes"))
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    limited = Request(request.scope, _limited(request.receive, max_bytes))
    if content_type == "multipart/form-data":
        return await _multipart_image(limited, max_bytes)
    if content_type.startswith("image/") or content_type in RAW_TYPES:
        return await limited.body()
    hint = (" (curl sends that for --data-binary unless told otherwise: add "
            "-H 'Content-Type: image/png')"
            if content_type == "application/x-www-form-urlencoded" else "")
    shown = f"Content-Type {content_type!r}" if content_type else "no Content-Type"
    raise UnsupportedMediaError(f"{shown} is not an image{hint}: {SEND_AN_IMAGE}")


async def _multipart_image(request: Request, max_bytes: int) -> bytes:
    try:
        async with request.form(max_files=1, max_fields=16, max_part_size=max_bytes) as form:
            field = form.get(IMAGE_FIELD)
            if isinstance(field, str):  # curl -F image=hello: a text field, not a file
                raise BadRequestError(
                    f"the multipart field {IMAGE_FIELD!r} came as text, not as a file: send the "
                    f"file with curl -F {IMAGE_FIELD}=@captcha.png (the @ makes curl send the "
                    "file's contents), or a form's <input type=file>")
            if not isinstance(field, UploadFile):
                sent = ", ".join(repr(key) for key in form.keys()) or "no fields"
                raise BadRequestError(f"the multipart body has no file field {IMAGE_FIELD!r} "
                                      f"(it has {sent}): {SEND_AN_IMAGE}")
            return await field.read()
    except HTTPException as error:  # python-multipart's refusals, e.g. a malformed body
        raise BadRequestError(f"unreadable multipart body ({error.detail}): {SEND_AN_IMAGE}") from None


def _limited(receive: Receive, max_bytes: int) -> Receive:
    """``receive`` that raises :class:`BodyTooLargeError` once the body passes ``max_bytes``."""
    received = 0

    async def limited() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > max_bytes:
                raise BodyTooLargeError(_too_large(max_bytes, "the body"))
        return message

    return limited


def _too_large(max_bytes: int, what: str) -> str:
    return (f"{what} is over the limit of {max_bytes} bytes (a captcha image is a few KiB; crop "
            "it to the captcha, or start the server with a larger --max-bytes)")


def _describe(models: SiteModels, name: str, path: Path) -> dict[str, Any]:
    """One entry of ``GET /v1/sites``: the profile's format and its model, or what is wrong."""
    entry: dict[str, Any] = {"name": name}
    try:
        profile = models.registry.load(path)
    except SolverError as error:
        return {**entry, "error": str(error)}
    fmt = profile.format
    entry.update(description=profile.description, url=profile.url,
                 format={"charset": fmt.charset, "min_length": fmt.min_length,
                         "max_length": fmt.max_length, "case_sensitive": fmt.case_sensitive},
                 min_confidence=profile.model.min_confidence)
    model_dir = models.model_folder(name)
    if not (model_dir / METADATA_FILE).is_file():
        entry["model"] = None
        return entry
    try:
        metadata = read_metadata(model_dir)
    except ModelError as error:
        entry["model"] = {"error": str(error)}
        return entry
    entry["model"] = {
        "pipeline": metadata.arch,  # the profile's word for it
        "input": {"height": metadata.input_height, "width": metadata.input_width,
                  "channels": metadata.input_channels},
        "trained_seconds": metadata.training.get("seconds"),
        "validation_accuracy": metadata.metrics.get("validation_sequence_accuracy"),
        "loaded": models.loaded(name),
    }
    return entry


def _error(message: str, status: int) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=NO_STORE)


async def _http_error(request: Request, error: Exception) -> Response:
    """Starlette's own refusals (no such route, wrong method) as JSON too."""
    status = getattr(error, "status_code", 500)
    hint = {404: " (the API has POST /v1/sites/NAME/read, GET /v1/sites and GET /healthz)",
            405: " (read an image with POST)"}.get(status, "")
    return _error(f"{getattr(error, 'detail', error)}{hint}", status)


async def _server_error(request: Request, error: Exception) -> Response:
    logger.error("%s %s failed", request.method, request.url.path, exc_info=error)
    return _error("internal error (the server's log has the traceback; please report it)", 500)
