"""The labelling page's server: JSON endpoints over a :class:`DatasetStore`, and the page.

One person labels at a time: the server keeps the session's undo stack and the
images skipped, so reloading the page carries on where it was. The server is
the authority on labels: the page checks them too, for instant feedback, but a
label the profile refuses is answered with HTTP 422 and nothing is saved.

    fmt = profile.format
    store = DatasetStore("data/digits", fmt.charset, fmt.length, fmt.case_sensitive)
    app = build_label_app(store, profile, Recognizer("models/digits", profile))
    with SiteServer(app, port=0) as server:
        print(server.url)

Endpoints (POST bodies are JSON of at most ``MAX_BODY_BYTES`` and must say
``Content-Type: application/json``, which a page of another site cannot send here
without the browser asking first). Every request must name the server by a
loopback ``Host``, its ``host`` or one of ``allowed_hosts`` (else 400: DNS
rebinding), and a POST whose ``Origin`` is another site's is refused with 403
(:mod:`solver.host_check`):

    GET  /                the page
    GET  /api/format      the profile's charset, lengths and case rule; the model
    GET  /api/next        the next image to label, and the progress
    POST /api/save        {"file", "label"}: 422 refused by the profile, 409 labelled differently
    POST /api/skip        {"file"}: move on without saving
    POST /api/undo        revert this session's last save and show that image again
    POST /api/unskip      put the skipped images back in the queue
    GET  /image/{file}    an image of the dataset; 404 for anything else
"""

from __future__ import annotations

import json
import logging
import mimetypes
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from solver.dataset import DatasetError, DatasetStore, Entry, LabelConflictError
from solver.errors import SolverError
from solver.host_check import SameOriginChanges, TrustedHosts, trusted_hosts
from solver.reading import read_entries

if TYPE_CHECKING:
    from solver.profiles import SiteProfile
    from solver.recognizers import Recognizer

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024
NO_STORE = {"Cache-Control": "no-store"}
# images are named by a hash of their content: a name always means the same bytes
IMMUTABLE = {"Cache-Control": "max-age=86400, immutable"}


class UnknownImageError(DatasetError):
    """A file name that is not one of the dataset's images."""


class LabelRefusedError(DatasetError):
    """A label the profile's format does not allow."""


class NothingToUndoError(SolverError):
    """Undo with no save left to revert."""


class LabelSession:
    """One person's labelling: the saves this session can undo, and the images skipped.

        session = LabelSession(store, profile)
        entry = session.next_entry()
        session.save(entry.file, "4821")
        session.undo()  # the entry is back as it was
    """

    def __init__(self, store: DatasetStore, profile: SiteProfile) -> None:
        self.store = store
        self.profile = profile
        self._before_saves: list[Entry] = []  # each entry as it was before a save, newest last
        self._skipped: set[str] = set()
        self._lock = threading.RLock()

    def next_entry(self) -> Entry | None:
        """The least confident image still to label that was not skipped, if any."""
        with self._lock:
            skipped = set(self._skipped)
        return next((entry for entry in self.store.queue() if entry.file not in skipped), None)

    def entry(self, file: str) -> Entry:
        entry = self.store.get(file)
        if entry is None:
            raise UnknownImageError(f"{file!r} is not an image of {self.store.root} "
                                    "(reload the page to get the current queue)")
        return entry

    def save(self, file: str, label: str) -> Entry:
        """Label ``file`` by hand, or raise why not (refused, a conflict, an unknown file)."""
        fmt = self.profile.format
        text = fmt.normalise(label.strip())
        problem = fmt.label_problem(text)
        if problem is not None:
            allowed = _lengths(fmt.min_length, fmt.max_length)
            raise LabelRefusedError(f"{problem} (the profile allows {allowed} characters of "
                                    f"{fmt.charset!r}); nothing saved")
        with self._lock:
            before = self.entry(file)
            try:
                saved = self.store.set_label(file, text, source="hand")  # checks the format again
            except LabelConflictError:
                now = self.entry(file)
                raise LabelConflictError(
                    f"{file}: already labelled {now.label!r} (by {now.source or 'unknown'}); not "
                    f"replacing it with {text!r} (press Esc to move on; this page never replaces "
                    "a label)") from None
            self._before_saves.append(before)
            self._skipped.discard(file)
        return saved

    def skip(self, file: str) -> None:
        """Leave ``file`` unlabelled and show it no more in this session (see :meth:`unskip`)."""
        self.entry(file)
        with self._lock:
            self._skipped.add(file)

    def unskip(self) -> int:
        """Put every skipped image back in the queue; how many there were."""
        with self._lock:
            count = len(self._skipped)
            self._skipped.clear()
        return count

    def undo(self) -> tuple[Entry, str]:
        """Revert the last save: the entry as it was, and the label that was undone."""
        with self._lock:
            if not self._before_saves:
                raise NothingToUndoError("nothing to undo: no label saved on this page since the "
                                         "server started")
            before = self._before_saves.pop()
            undone = self.store.get(before.file)
            self.store.restore(before)
        return before, undone.label if undone is not None else ""

    def progress(self) -> dict[str, int]:
        stats = self.store.stats()
        with self._lock:
            return {"images": stats["images"], "labelled": stats["labelled"],
                    "remaining": stats["unlabelled"], "saved": len(self._before_saves),
                    "skipped": len(self._skipped)}


def suggest_missing(store: DatasetStore, recognizer: Recognizer, batch_size: int = 64) -> int:
    """Read every unlabelled image that has no suggestion yet and store the readings.

    The labelling queue puts the least confident readings first, so this gives
    its order a meaning. Returns how many readings were stored; images that
    cannot be read are logged and left without a suggestion.
    """
    waiting = [entry for entry in store.queue() if not entry.suggestion]
    stored = 0
    started = time.perf_counter()
    with store.batch():
        for entry, reading in read_entries(store, recognizer, waiting, batch_size=batch_size):
            if reading is not None:
                store.suggest(entry.file, reading.text, reading.confidence)
                stored += 1
    if waiting:
        logger.info("%s: %d readings stored in %.1f s", store.root, stored,
                    time.perf_counter() - started)
    return stored


def build_label_app(store: DatasetStore, profile: SiteProfile,
                    recognizer: Recognizer | None = None, *, host: str = "127.0.0.1",
                    allowed_hosts: Iterable[str] = ()) -> Starlette:
    """The labelling page for ``store`` as an ASGI app (serve it with ``SiteServer``).

    With a ``recognizer``, the images still to label that have no suggestion
    are read first (:func:`suggest_missing`), so the page pre-fills its input
    and shows the least confident readings first.

    Requests must name the server as 127.0.0.1, localhost, [::1], ``host`` (the
    address it listens on) or one of ``allowed_hosts`` (``*.domain`` patterns
    too); :func:`solver.host_check.trusted_hosts` raises ``UsageError`` for a
    malformed one.
    """
    hosts = trusted_hosts(host, allowed_hosts)  # checked before the images are read
    if recognizer is not None:
        suggest_missing(store, recognizer)
    session = LabelSession(store, profile)
    page = resources.files("solver.labeller").joinpath("page.html").read_text(encoding="utf-8")
    fmt = profile.format
    about = {"site": profile.name, "dataset": str(store.root), "charset": fmt.charset,
             "min_length": fmt.min_length, "max_length": fmt.max_length,
             "case_sensitive": fmt.case_sensitive,
             "model": str(recognizer.model_dir) if recognizer is not None else None}

    def state(**extra: Any) -> dict[str, Any]:
        entry = session.next_entry()
        return {"item": _item(entry) if entry else None, "progress": session.progress(), **extra}

    def index(request: Request) -> Response:
        return HTMLResponse(page, headers=NO_STORE)

    def format_info(request: Request) -> Response:
        return JSONResponse(about, headers=NO_STORE)

    def next_item(request: Request) -> Response:
        return JSONResponse(state(), headers=NO_STORE)

    def save(body: dict[str, Any]) -> dict[str, Any]:
        saved = session.save(_text(body, "file"), _text(body, "label"))
        return state(saved={"file": saved.file, "label": saved.label})

    def skip(body: dict[str, Any]) -> dict[str, Any]:
        session.skip(_text(body, "file"))
        return state()

    def undo(body: dict[str, Any]) -> dict[str, Any]:
        restored, label = session.undo()
        return {"item": _item(restored), "undone": label, "progress": session.progress()}

    def unskip(body: dict[str, Any]) -> dict[str, Any]:
        return state(unskipped=session.unskip())

    def image(request: Request) -> Response:
        file = request.path_params["file"]
        entry = store.get(file)
        path = (store.root / file).resolve()
        if entry is None or path.parent != store.root.resolve() or not path.is_file():
            return PlainTextResponse(f"{file}: not an image of this dataset", status_code=404)
        media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return Response(path.read_bytes(), media_type=media_type, headers=IMMUTABLE)

    return Starlette(
        routes=[
            Route("/", index),
            Route("/api/format", format_info),
            Route("/api/next", next_item),
            Route("/api/save", _json_action(save), methods=["POST"]),
            Route("/api/skip", _json_action(skip), methods=["POST"]),
            Route("/api/undo", _json_action(undo), methods=["POST"]),
            Route("/api/unskip", _json_action(unskip), methods=["POST"]),
            Route("/image/{file}", image),
        ],
        middleware=[Middleware(TrustedHosts, allowed_hosts=hosts),
                    Middleware(SameOriginChanges, action="change labels")],
    )


# ---------------------------------------------------------------------------
# internals

_STATUS_OF_ERROR: tuple[tuple[type[SolverError], int], ...] = (
    (UnknownImageError, 404),
    (LabelConflictError, 409),
    (NothingToUndoError, 409),
    (DatasetError, 422),  # refused by the profile's format, here or by the store
)


_SURROGATE = re.compile(r"[\ud800-\udfff]")  # half of a UTF-16 pair: valid JSON, not text


class _BadRequest(SolverError):
    """A request body the page would never send."""


def _json_action(action: Callable[[dict[str, Any]], dict[str, Any]]
                 ) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint that reads a JSON object, runs ``action`` in the threadpool (the store
    writes and syncs files) and answers JSON; errors become ``{"error": message}``."""

    async def endpoint(request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return _error("send a JSON body with Content-Type: application/json", 415)
        body = await _capped_body(request, MAX_BODY_BYTES)
        if body is None:
            return _error(f"the request body is over {MAX_BODY_BYTES} bytes (the page sends a "
                          "file name and a label: a few hundred bytes)", 413)
        try:
            data = json.loads(body or b"{}")
        except RecursionError:  # json's decoder recurses once per [ or {
            return _error("the request body is JSON nested too deeply (send one flat object, "
                          "as the page does)", 400)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return _error("the request body is not valid JSON", 400)
        if not isinstance(data, dict):
            return _error("the request body must be a JSON object", 400)
        surrogate = _lone_surrogate(data)
        if surrogate is not None:  # "\udc00" parses, but no answer that repeats it can be encoded
            return _error(f"the request body holds a lone surrogate ({surrogate!r}) in a string, "
                          "which is not text (send the label as UTF-8, or as \\u escapes in "
                          "pairs)", 400)
        try:
            result = await run_in_threadpool(action, data)
        except _BadRequest as error:
            return _error(str(error), 400)
        except SolverError as error:
            status = next(code for kind, code in _STATUS_OF_ERROR + ((SolverError, 500),)
                          if isinstance(error, kind))
            return _error(str(error), status)
        return JSONResponse(result, headers=NO_STORE)

    return endpoint


async def _capped_body(request: Request, limit: int) -> bytes | None:
    """The request's body, or ``None`` once it passes ``limit`` bytes (declared or streamed)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:  # refused before a byte is read
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def _lone_surrogate(data: Any) -> str | None:
    """The first lone surrogate in any string (key or value) of parsed JSON, if one is."""
    waiting = [data]
    while waiting:  # a loop, not recursion: the nesting is as deep as json allowed
        value = waiting.pop()
        if isinstance(value, dict):
            waiting.extend(value.keys())
            waiting.extend(value.values())
        elif isinstance(value, list):
            waiting.extend(value)
        elif isinstance(value, str):
            found = _SURROGATE.search(value)
            if found:
                return found.group()
    return None


def _error(message: str, status: int) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=NO_STORE)


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise _BadRequest(f"the request needs {key!r} as a string")
    return value


def _item(entry: Entry) -> dict[str, Any]:
    return {"file": entry.file, "image": f"/image/{quote(entry.file)}",
            "suggestion": entry.suggestion, "confidence": entry.confidence}


def _lengths(low: int, high: int) -> str:
    return str(low) if low == high else f"{low} to {high}"

