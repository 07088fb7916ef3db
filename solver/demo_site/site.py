"""The local synthetic captcha site: a login-like page per style.

Each request for a captcha draws a fresh answer, keeps it server-side under
the browser's session cookie and returns only pixels. An answer is good for
one try and for ``ttl_seconds``; every page after a try shows a new captcha.

Tests drive the site in-process and read the answers from :class:`CaptchaSite`::

    site = CaptchaSite(seed=7)
    with SiteServer(site) as server:
        page.goto(server.url_for("example"))
        ...
        answer = site.answer(session_id, "example")
"""

from __future__ import annotations

import base64
import html
import inspect
import logging
import random
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from solver.demo_site.styles import Style, load_styles
from solver.drawing import random_text
from solver.errors import SiteError

logger = logging.getLogger(__name__)

SESSION_COOKIE = "captcha_session"
MAX_CHALLENGES = 4096
MAX_FORM_BYTES = 16 * 1024
NO_STORE = {"Cache-Control": "no-store"}


@dataclass
class Challenge:
    """One captcha shown to one session."""

    answer: str
    png: bytes
    issued_at: float
    style: str = ""


class CaptchaSite:
    """The site's state and its ASGI app (``site.app``).

    ``seed`` makes the sequence of answers of each style reproducible (pixels
    are not: the captcha package draws its noise from ``secrets``).
    ``clock`` returns seconds; tests pass their own to reach expiry quickly.
    """

    def __init__(self, styles: Iterable[str] | None = None, *, seed: int | None = None,
                 default_style: str | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        every = load_styles()
        names = list(styles) if styles is not None else list(every)
        unknown = [name for name in names if name not in every]
        if unknown:
            raise SiteError(f"unknown style {unknown[0]!r} (choose from: {', '.join(every)})")
        if default_style is not None and default_style not in names:
            raise SiteError(f"unknown style {default_style!r} (choose from: {', '.join(names)})")
        self.styles: dict[str, Style] = {name: every[name] for name in names}
        self.default_style = default_style
        self.seed = seed
        self.clock = clock
        self._random = {name: random.Random(f"{seed}/{name}") if seed is not None
                        else secrets.SystemRandom() for name in names}
        self._challenges: OrderedDict[tuple[str, str], Challenge] = OrderedDict()
        self._lock = threading.Lock()
        self.stats = {"issued": 0, "accepted": 0, "refused": 0, "expired": 0}
        #: the latest captchas issued, oldest first (tests compare what a client grabbed)
        self.history: deque[Challenge] = deque(maxlen=MAX_CHALLENGES)
        self.app = Starlette(routes=[
            Route("/", self._index),
            Route("/healthz", self._health),
            Route("/{style}/", self._per_style(self._page)),
            Route("/{style}", self._per_style(self._slash)),
            Route("/{style}/login", self._per_style(self._login), methods=["POST"]),
            Route("/{style}/captcha.png", self._per_style(self._captcha_png)),
            Route("/{style}/captcha.b64", self._per_style(self._captcha_b64)),
            Route("/{style}/frame", self._per_style(self._frame)),
        ])

    # ----------------------------------------------------------- for tests

    def answer(self, session_id: str, style: str) -> str | None:
        """The answer of the captcha now shown to ``session_id``, if any."""
        with self._lock:
            challenge = self._challenges.get((session_id, style))
            return challenge.answer if challenge else None

    def challenge(self, session_id: str, style: str) -> Challenge | None:
        """The captcha now shown to ``session_id`` (answer and the PNG served)."""
        with self._lock:
            return self._challenges.get((session_id, style))

    # ----------------------------------------------------------- internals

    def _issue(self, session_id: str, style: Style) -> Challenge:
        with self._lock:
            answer = random_text(self._random[style.name], style.charset,
                                 style.min_length, style.max_length)
        png = style.drawer.png(answer)
        challenge = Challenge(answer=answer, png=png, issued_at=self.clock(), style=style.name)
        with self._lock:
            self.history.append(challenge)
            key = (session_id, style.name)
            self._challenges[key] = challenge
            self._challenges.move_to_end(key)
            while len(self._challenges) > MAX_CHALLENGES:
                self._challenges.popitem(last=False)
            self.stats["issued"] += 1
        return challenge

    def _take(self, session_id: str, style: Style) -> Challenge | None:
        with self._lock:
            return self._challenges.pop((session_id, style.name), None)

    @staticmethod
    def _session(request: Request) -> tuple[str, bool]:
        session_id = request.cookies.get(SESSION_COOKIE)
        if session_id and 8 <= len(session_id) <= 64:
            return session_id, False
        return secrets.token_urlsafe(18), True

    def _per_style(self, handler: Callable[..., Any]) -> Callable[[Request], Awaitable[Response]]:
        """An endpoint for ``/{style}/...``: 404 for unknown styles, a session cookie for
        new visitors; ``handler(request, style, session_id)`` does the rest (a sync one
        in the threadpool, since drawing a captcha takes a few milliseconds of CPU)."""

        async def endpoint(request: Request) -> Response:
            style = self.styles.get(request.path_params["style"])
            if style is None:
                return self._not_found()
            session_id, new = self._session(request)
            if inspect.iscoroutinefunction(handler):
                response = await handler(request, style, session_id)
            else:
                response = await run_in_threadpool(handler, request, style, session_id)
            if new:
                response.set_cookie(SESSION_COOKIE, session_id, httponly=True, samesite="lax",
                                    path="/")
            return response

        return endpoint

    def _not_found(self) -> Response:
        links = "".join(f'<li><a href="/{name}/">{name}</a></li>' for name in self.styles)
        return HTMLResponse(f"<!doctype html><title>Not found</title><h1>No such style</h1>"
                            f"<ul>{links}</ul>", status_code=404)

    # ----------------------------------------------------------- routes

    def _health(self, request: Request) -> Response:
        return PlainTextResponse("ok")

    def _index(self, request: Request) -> Response:
        if self.default_style:
            return RedirectResponse(f"/{self.default_style}/", status_code=302)
        items = "".join(f'<li><a href="/{name}/">{html.escape(style.title)}</a></li>'
                        for name, style in self.styles.items())
        return HTMLResponse(f"<!doctype html><html><head><title>Local captcha site</title></head>"
                            f"<body><h1>Local captcha site</h1><ul>{items}</ul></body></html>")

    def _slash(self, request: Request, style: Style, session_id: str) -> Response:
        return RedirectResponse(f"/{style.name}/", status_code=308)

    def _page(self, request: Request, style: Style, session_id: str) -> Response:
        return self._render(style, session_id, flash="")

    async def _login(self, request: Request, style: Style, session_id: str) -> Response:
        # a login form is tiny: read it with a limit and parse it by hand rather
        # than pull in a multipart parser
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_FORM_BYTES:
                return PlainTextResponse("form too large", status_code=413)
            chunks.append(chunk)
        fields = parse_qs(b"".join(chunks).decode("utf-8", "replace"), keep_blank_values=True)
        given = (fields.get("captcha") or [""])[0]
        user = (fields.get("username") or [""])[0].strip() or "guest"
        return await run_in_threadpool(self._check, style, session_id, given, user)

    def _check(self, style: Style, session_id: str, given: str, user: str) -> Response:
        challenge = self._take(session_id, style)
        if challenge is None:
            outcome = "refused"
            flash = ('<p class="flash error" role="alert">No captcha was shown to this session, '
                     'or it was already used. Type the new one.</p>')
        elif self.clock() - challenge.issued_at > style.ttl_seconds:
            outcome = "expired"
            flash = ('<p class="flash error expired" role="alert">The captcha expired. '
                     'Type the new one.</p>')
        elif style.matches(challenge.answer, given):
            outcome = "accepted"
            flash = (f'<p class="flash ok" role="status">Signed in as {html.escape(user)}: '
                     'the captcha was right.</p>')
        else:
            outcome = "refused"
            flash = '<p class="flash error" role="alert">Wrong captcha. Type the new one.</p>'
        with self._lock:
            self.stats[outcome] += 1
        logger.info("style %s: answer %s", style.name, outcome)
        return self._render(style, session_id, flash)

    def _captcha_png(self, request: Request, style: Style, session_id: str) -> Response:
        challenge = self._issue(session_id, style)
        return Response(challenge.png, media_type="image/png", headers=NO_STORE)

    def _captcha_b64(self, request: Request, style: Style, session_id: str) -> Response:
        challenge = self._issue(session_id, style)
        text = "data:image/png;base64," + base64.b64encode(challenge.png).decode("ascii")
        return PlainTextResponse(text, headers=NO_STORE)

    def _frame(self, request: Request, style: Style, session_id: str) -> Response:
        body = (f'<!doctype html><html><head><style>body{{margin:0}}a{{font:13px sans-serif}}'
                f'</style></head><body>{_img(style)}<br>'
                f'<a id="captcha-refresh" href="#">New captcha</a>'
                f'<script>{_script(style, in_frame=True)}</script></body></html>')
        return HTMLResponse(body, headers=NO_STORE)

    def _render(self, style: Style, session_id: str, flash: str) -> Response:
        if style.variant == "data-uri":
            challenge = self._issue(session_id, style)
            data = base64.b64encode(challenge.png).decode("ascii")
            widget = (f'<img id="captcha" alt="captcha" width="{style.width}" '
                      f'height="{style.height}" src="data:image/png;base64,{data}">')
        elif style.variant == "canvas":
            widget = (f'<canvas id="captcha" width="{style.width}" height="{style.height}" '
                      f'aria-label="captcha"></canvas>')
        elif style.variant == "iframe":
            widget = (f'<iframe id="captcha-frame" title="captcha" src="/{style.name}/frame" '
                      f'width="{style.width + 8}" height="{style.height + 30}"></iframe>')
        elif style.variant == "background":
            widget = (f'<div id="captcha" role="img" aria-label="captcha" style="width:'
                      f'{style.width}px;height:{style.height}px;background-repeat:no-repeat;'
                      f"background-image:url('/{style.name}/captcha.png?n={secrets.token_hex(4)}')"
                      f'"></div>')
        else:
            widget = _img(style)
        refresh = "" if style.variant == "iframe" else \
            '<a id="captcha-refresh" href="#">New captcha</a>'
        page = _PAGE.format(
            title=html.escape(style.title), style=style.name, flash=flash, widget=widget,
            refresh=refresh, script=_script(style, in_frame=False),
        )
        return HTMLResponse(page, headers=NO_STORE)


def _img(style: Style) -> str:
    return (f'<img id="captcha" alt="captcha" width="{style.width}" height="{style.height}" '
            f'src="/{style.name}/captcha.png?n={secrets.token_hex(4)}">')


def _script(style: Style, in_frame: bool) -> str:
    """The page's refresh (and, for a canvas, drawing) code."""
    url = f"'/{style.name}/captcha.png?n=' + Date.now() + Math.random()"
    if style.variant == "iframe" and not in_frame:
        return ""
    if style.variant in ("img", "iframe"):
        refresh = f"document.getElementById('captcha').src = {url};"
    elif style.variant == "data-uri":
        refresh = (f"fetch('/{style.name}/captcha.b64', {{cache: 'no-store'}})"
                   ".then(r => r.text()).then(t => { document.getElementById('captcha').src = t; });")
    elif style.variant == "background":
        refresh = f"document.getElementById('captcha').style.backgroundImage = 'url(' + {url} + ')';"
    else:  # canvas: drawn from script, marked when done so a reader knows it is ready
        refresh = (f"const c = document.getElementById('captcha'); c.dataset.drawn = 'false';"
                   f"fetch({url}, {{cache: 'no-store'}}).then(r => r.blob())"
                   ".then(b => createImageBitmap(b)).then(img => {"
                   " const g = c.getContext('2d'); g.clearRect(0, 0, c.width, c.height);"
                   " g.drawImage(img, 0, 0); c.dataset.drawn = 'true'; });")
    script = (f"function refreshCaptcha() {{ {refresh} }}\n"
              "document.getElementById('captcha-refresh').addEventListener('click', e => {"
              " e.preventDefault(); refreshCaptcha(); });\n")
    if style.variant == "canvas":
        script += "refreshCaptcha();\n"
    return script


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in: {title}</title>
<style>
body {{ font: 15px/1.4 system-ui, sans-serif; max-width: 26rem; margin: 3rem auto; }}
label {{ display: block; margin: .6rem 0; }} input {{ display: block; width: 100%; }}
.flash {{ padding: .5rem .8rem; border-radius: 4px; }}
.flash.ok {{ background: #e3f6e5; }} .flash.error {{ background: #fde8e8; }}
.captcha {{ margin: .8rem 0; }}
</style></head>
<body><main>
<h1>Sign in</h1>
<p class="style">Style: {style}</p>
{flash}
<form method="post" action="/{style}/login" id="login">
<label>User name <input name="username" autocomplete="username"></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<div class="captcha">{widget}<br>{refresh}</div>
<label>Type the characters you see <input name="captcha" autocomplete="off" required></label>
<button type="submit">Sign in</button>
</form>
</main>
<script>{script}</script>
</body></html>
"""
