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
import json
import logging
import random
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse,
                                 Response)
from starlette.routing import Route

from solver.demo_site.styles import Style, load_styles
from solver.drawing import random_text
from solver.errors import SiteError

logger = logging.getLogger(__name__)

SESSION_COOKIE = "captcha_session"
MAX_CHALLENGES = 4096
MAX_FORM_BYTES = 16 * 1024
NO_STORE = {"Cache-Control": "no-store"}
#: the delayed variant inserts its captcha this long after the page loads, and a new one
#: this long after its refresh is clicked
DELAY_MS = 300
REPLACE_DELAY_MS = 50
MAX_SINGLE_USE_URLS = 16384  # image URLs of the single-use variant remembered as used


@dataclass
class Challenge:
    """One captcha shown to one session."""

    answer: str
    png: bytes  # the image served: a PNG, or an animated GIF for the animated-gif variant
    issued_at: float
    style: str = ""


class CaptchaSite:
    """The site's state and its ASGI app (``site.app``).

    ``seed`` makes the sequence of answers of each style reproducible (pixels
    are not: the captcha package draws its noise from ``secrets``).
    ``clock`` returns seconds; tests pass their own to reach expiry quickly.
    ``lockout_after``: a site that locks a visitor out, for tests of a client's
    respect: a session's submission after its first ``lockout_after`` ones is
    answered HTTP 429, and so is every later request of that session.
    """

    def __init__(self, styles: Iterable[str] | None = None, *, seed: int | None = None,
                 default_style: str | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 lockout_after: int | None = None) -> None:
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
        self.stats = {"issued": 0, "accepted": 0, "refused": 0, "expired": 0, "refetched": 0,
                      "locked_out": 0}
        self.lockout_after = lockout_after
        self._submissions: OrderedDict[str, int] = OrderedDict()  # per session, when counted
        # single-use image URLs already served, per session: a second fetch is refused (403)
        self._used_urls: OrderedDict[tuple[str, str], None] = OrderedDict()
        #: the latest captchas issued, oldest first (tests compare what a client grabbed)
        self.history: deque[Challenge] = deque(maxlen=MAX_CHALLENGES)
        self.app = Starlette(routes=[
            Route("/", self._index),
            Route("/healthz", self._health),
            Route("/{style}/", self._per_style(self._page)),
            Route("/{style}", self._per_style(self._slash)),
            Route("/{style}/login", self._per_style(self._login), methods=["POST"]),
            Route("/{style}/captcha.png", self._per_style(self._captcha_png)),
            Route("/{style}/captcha.gif", self._per_style(self._captcha_png)),
            Route("/{style}/welcome", self._per_style(self._welcome)),
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
        png = style.image(answer)
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
            if self._locked_out(session_id, counting=handler == self._login):
                return PlainTextResponse("Too many attempts. Try again later.", status_code=429,
                                         headers={**NO_STORE, "Retry-After": "3600"})
            if inspect.iscoroutinefunction(handler):
                response = await handler(request, style, session_id)
            else:
                response = await run_in_threadpool(handler, request, style, session_id)
            if new:
                response.set_cookie(SESSION_COOKIE, session_id, httponly=True, samesite="lax",
                                    path="/")
            return response

        return endpoint

    def _locked_out(self, session_id: str, counting: bool) -> bool:
        """Whether ``session_id`` is locked out (``lockout_after``); a submission counts first."""
        if self.lockout_after is None:
            return False
        with self._lock:
            count = self._submissions.get(session_id, 0) + counting
            self._submissions[session_id] = count
            self._submissions.move_to_end(session_id)
            while len(self._submissions) > MAX_CHALLENGES:
                self._submissions.popitem(last=False)
            locked = count > self.lockout_after
            self.stats["locked_out"] += locked
            return locked

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
            outcome, kind, role = "refused", "error", "alert"
            message = "No captcha was shown to this session, or it was already used. Type the new one."
        elif self.clock() - challenge.issued_at > style.ttl_seconds:
            outcome, kind, role = "expired", "error expired", "alert"
            message = "The captcha expired. Type the new one."
        elif style.matches(challenge.answer, given):
            outcome, kind, role = "accepted", "ok", "status"
            message = f"Signed in as {user}: the captcha was right."
        else:
            outcome, kind, role = "refused", "error", "alert"
            message = "Wrong captcha. Type the new one."
        with self._lock:
            self.stats[outcome] += 1
        logger.info("style %s: answer %s", style.name, outcome)
        if style.variant == "fetch-form":  # the page's script shows the verdict itself
            return JSONResponse({"ok": outcome == "accepted", "class": f"flash {kind}",
                                 "role": role, "message": message}, headers=NO_STORE)
        if style.variant == "redirect" and outcome == "accepted":
            return RedirectResponse(f"/{style.name}/welcome?user={quote(user)}", status_code=303)
        flash = f'<p class="flash {kind}" role="{role}">{html.escape(message)}</p>'
        return self._render(style, session_id, flash)

    def _welcome(self, request: Request, style: Style, session_id: str) -> Response:
        user = html.escape(request.query_params.get("user", "guest"))
        return HTMLResponse(f"<!doctype html><title>Welcome</title><main><h1>Welcome, {user}</h1>"
                            f'<p><a href="/{style.name}/">Sign in again</a></p></main>',
                            headers=NO_STORE)

    def _captcha_png(self, request: Request, style: Style, session_id: str) -> Response:
        if style.variant == "single-use":
            key = (session_id, request.url.query)
            with self._lock:
                used = not request.url.query or key in self._used_urls
                if used:
                    self.stats["refetched"] += 1
                else:
                    self._used_urls[key] = None
                    while len(self._used_urls) > MAX_SINGLE_USE_URLS:
                        self._used_urls.popitem(last=False)
            if used:
                return PlainTextResponse("this captcha URL was used already", status_code=403,
                                         headers=NO_STORE)
        challenge = self._issue(session_id, style)
        media_type = "image/gif" if style.image_type == "gif" else "image/png"
        return Response(challenge.png, media_type=media_type, headers=NO_STORE)

    def _captcha_b64(self, request: Request, style: Style, session_id: str) -> Response:
        challenge = self._issue(session_id, style)
        text = "data:image/png;base64," + base64.b64encode(challenge.png).decode("ascii")
        return PlainTextResponse(text, headers=NO_STORE)

    def _frame(self, request: Request, style: Style, session_id: str) -> Response:
        if style.variant == "iframe-document":  # a plain link loads the next document
            refresh = f'<a id="captcha-refresh" href="/{style.name}/frame">Another code</a>'
            script = ""
        else:
            refresh = '<a id="captcha-refresh" href="#">New captcha</a>'
            script = f"<script>{_script(style, in_frame=True)}</script>"
        body = (f'<!doctype html><html><head><style>body{{margin:0}}a{{font:13px sans-serif}}'
                f'</style></head><body>{_img(style)}<br>{refresh}{script}</body></html>')
        return HTMLResponse(body, headers=NO_STORE)

    def _render(self, style: Style, session_id: str, flash: str) -> Response:
        variant = style.variant
        refresh = '<a id="captcha-refresh" href="#">New captcha</a>'
        if variant == "data-uri":
            challenge = self._issue(session_id, style)
            data = base64.b64encode(challenge.png).decode("ascii")
            widget = (f'<img id="captcha" alt="captcha" width="{style.width}" '
                      f'height="{style.height}" src="data:image/png;base64,{data}">')
        elif variant == "canvas":
            widget = (f'<canvas id="captcha" width="{style.width}" height="{style.height}" '
                      f'aria-label="captcha"></canvas>')
        elif variant in ("iframe", "iframe-document"):
            widget = (f'<iframe id="captcha-frame" title="captcha" src="/{style.name}/frame" '
                      f'width="{style.width + 8}" height="{style.height + 30}"></iframe>')
            refresh = ""
        elif variant == "background":
            widget = (f'<div id="captcha" role="img" aria-label="captcha" style="width:'
                      f'{style.width}px;height:{style.height}px;background-repeat:no-repeat;'
                      f"background-image:url('/{style.name}/captcha.png?n={secrets.token_hex(4)}')"
                      f'"></div>')
        elif variant == "page-link":  # the same image URL; a plain link reloads the page
            widget = _img(style, query="")
            refresh = f'<a id="captcha-refresh" href="/{style.name}/">New captcha</a>'
        elif variant == "delayed":  # the script inserts the image later
            widget = f'<span id="captcha-slot" style="display:inline-block;min-height:{style.height}px"></span>'
        elif variant == "lazy":  # below the fold: the browser fetches it when scrolled near
            widget = ('<div class="terms" style="height:2400px">Terms of use: please read them '
                      'all before signing in.</div>' + _img(style, lazy=True))
        elif variant == "shadow":  # the script builds the widget in an open shadow root
            widget = '<captcha-box id="captcha-box"></captcha-box>'
            refresh = ""
        else:
            widget = _img(style)
        page = _PAGE.format(
            title=html.escape(style.title), style=style.name, flash=flash, widget=widget,
            refresh=refresh, script=_script(style, in_frame=False),
        )
        return HTMLResponse(page, headers=NO_STORE)


def _img(style: Style, query: str | None = None, lazy: bool = False) -> str:
    """The captcha's <img>; ``query`` "" for the bare URL (the default: a fresh one)."""
    if query is None:
        query = "?t=" if style.variant == "single-use" else "?n="
        query += secrets.token_hex(8)
    return (f'<img id="captcha" alt="captcha" width="{style.width}" height="{style.height}" '
            + ('loading="lazy" ' if lazy else "")
            + f'src="/{style.name}/captcha.{style.image_type}{query}">')


def _script(style: Style, in_frame: bool) -> str:
    """The page's refresh code (and what else its variant does by script)."""
    variant = style.variant
    token = "t" if variant == "single-use" else "n"
    url = f"'/{style.name}/captcha.{style.image_type}?{token}=' + Date.now() + Math.random()"
    if (variant == "iframe" and not in_frame) or variant in ("iframe-document", "page-link"):
        return ""  # the frame's own script, or plain links
    if variant in ("img", "iframe", "lazy", "single-use", "fetch-form", "redirect",
                   "animated-gif"):
        refresh = f"document.getElementById('captcha').src = {url};"
    elif variant == "data-uri":
        refresh = (f"fetch('/{style.name}/captcha.b64', {{cache: 'no-store'}})"
                   ".then(r => r.text()).then(t => { document.getElementById('captcha').src = t; });")
    elif variant == "background":
        refresh = f"document.getElementById('captcha').style.backgroundImage = 'url(' + {url} + ')';"
    elif variant == "delayed":  # the old image goes at once, a new element comes later
        refresh = (f"document.getElementById('captcha-slot').replaceChildren();"
                   f" insertCaptcha({REPLACE_DELAY_MS});")
    elif variant == "shadow":
        refresh = (f"document.getElementById('captcha-box').shadowRoot"
                   f".getElementById('captcha').src = {url};")
    else:  # canvas: drawn from script, marked when done so a reader knows it is ready
        refresh = (f"const c = document.getElementById('captcha'); c.dataset.drawn = 'false';"
                   f"fetch({url}, {{cache: 'no-store'}}).then(r => r.blob())"
                   ".then(b => createImageBitmap(b)).then(img => {"
                   " const g = c.getContext('2d'); g.clearRect(0, 0, c.width, c.height);"
                   " g.drawImage(img, 0, 0); c.dataset.drawn = 'true'; });")
    script = f"function refreshCaptcha() {{ {refresh} }}\n"
    if variant == "shadow":
        script = (
            "customElements.define('captcha-box', class extends HTMLElement {\n"
            "  connectedCallback() {\n"
            "    const root = this.attachShadow({mode: 'open'});\n"
            f"    root.innerHTML = {_js_string(_img(style))} + '<br><a id=\"captcha-refresh\" href=\"#\">New captcha</a>';\n"
            "    root.getElementById('captcha-refresh').addEventListener('click', e => {"
            " e.preventDefault(); refreshCaptcha(); });\n"
            "  }\n"
            "});\n") + script
    else:
        script += ("document.getElementById('captcha-refresh').addEventListener('click', e => {"
                   " e.preventDefault(); refreshCaptcha(); });\n")
    if variant == "canvas":
        script += "refreshCaptcha();\n"
    if variant == "delayed":
        script = (
            "function insertCaptcha(delay) { setTimeout(() => {\n"
            "  const img = document.createElement('img');\n"
            f"  img.id = 'captcha'; img.alt = 'captcha'; img.width = {style.width};"
            f" img.height = {style.height}; img.src = {url};\n"
            "  document.getElementById('captcha-slot').replaceChildren(img); }, delay); }\n"
            f"insertCaptcha({DELAY_MS});\n") + script
    if variant == "fetch-form":
        # the verdict comes back as JSON; the new captcha is asked for in the same task as
        # the message is shown, as such sites do
        script += (
            "document.getElementById('login').addEventListener('submit', async e => {\n"
            "  e.preventDefault();\n"
            "  const form = e.target;\n"
            f"  const response = await fetch('/{style.name}/login', {{method: 'POST',"
            " body: new URLSearchParams(new FormData(form))});\n"
            "  const verdict = await response.json();\n"
            "  refreshCaptcha();\n"
            "  const note = document.createElement('p');\n"
            "  note.className = verdict.class; note.setAttribute('role', verdict.role);"
            " note.textContent = verdict.message;\n"
            "  document.getElementById('messages').replaceChildren(note);\n"
            "  form.elements.captcha.value = '';\n"
            "});\n")
    return script


def _js_string(text: str) -> str:
    return json.dumps(text).replace("</", "<\\/")


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
<div id="messages">{flash}</div>
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
