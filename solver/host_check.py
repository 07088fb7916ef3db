"""Keep other sites' pages out of the local servers: the ``Host`` and ``Origin`` checks.

A page on another site can point its own name at 127.0.0.1 (DNS rebinding); the
browser then treats a local server as that site, same-origin, and lets the page
read its answers and send it changes. A server that answers only the ``Host``
names it is reached by refuses those requests: the browser still sends the
attacker's name. ``solver label`` and ``solver serve`` answer 127.0.0.1,
localhost and [::1] (any port), the ``--host`` they listen on, and each
``--allow-host``::

    hosts = trusted_hosts("0.0.0.0", ["captcha.lan"])
    app = Starlette(routes=routes, middleware=[
        Middleware(TrustedHosts, allowed_hosts=hosts),
        Middleware(SameOriginChanges, action="change labels"),
    ])

The decision is Starlette's own ``TrustedHostMiddleware`` (ports ignored, IPv6
literals compared with their brackets, ``*.domain`` patterns); :class:`TrustedHosts`
only words its refusal as JSON with the fix. :class:`SameOriginChanges` refuses
a state-changing request whose ``Origin`` is another site's: the page's own
requests say its origin, scripts and curl send none.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from solver.errors import UsageError

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})  # read only: no Origin check
_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?")
_TRUSTED = "solver.host_trusted"  # scope key: the request passed the Host check
NO_STORE = {"Cache-Control": "no-store"}


def trusted_hosts(host: str | None = "127.0.0.1", allowed_hosts: Iterable[str] = ()) -> list[str]:
    """The ``Host`` names a server listening on ``host`` answers, as TrustedHostMiddleware takes them.

    Loopback names first, then ``host`` and ``allowed_hosts``, each lowercased,
    IPv6 literals in brackets, duplicates dropped. A pattern may be ``*.domain``
    (every name under it) or ``*`` (any name: no check at all)::

        trusted_hosts("::1", ["captcha.lan"])
        # ['127.0.0.1', 'localhost', '[::1]', 'captcha.lan']

    Raises :class:`UsageError` for a pattern that is no host name, IP address or
    ``*.domain`` (a port, a path, a ``*`` inside).
    """
    hosts = list(LOOPBACK_HOSTS)
    for pattern in ([host] if host else []) + list(allowed_hosts):
        normal = _normalise(pattern)
        if normal not in hosts:
            hosts.append(normal)
    return hosts


class TrustedHosts:
    """ASGI middleware: answer only requests whose ``Host`` is one of ``allowed_hosts``.

    Starlette's :class:`TrustedHostMiddleware` decides; a refusal is a 400 with
    ``{"error": message}`` naming the fix instead of its bare "Invalid host header".
    """

    def __init__(self, app: ASGIApp, allowed_hosts: Sequence[str]) -> None:
        self.app = app
        self.allowed_hosts = list(allowed_hosts)
        self._check = TrustedHostMiddleware(self._trusted, allowed_hosts=self.allowed_hosts,
                                            www_redirect=False)

    async def _trusted(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[_TRUSTED] = True
        await self.app(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._check(scope, receive, send)
            return
        answered = False

        async def send_or_explain(message: Message) -> None:
            nonlocal answered
            if scope.get(_TRUSTED):
                await send(message)
            elif not answered:  # Starlette's own refusal: answer ours in its place
                answered = True
                await self._refusal(scope)(scope, receive, send)

        await self._check(scope, receive, send_or_explain)

    def _refusal(self, scope: Scope) -> JSONResponse:
        host = Headers(scope=scope).get("host")
        names = ", ".join(self.allowed_hosts)
        what = f"Host {host!r} is not a name of this server" if host else "the request has no Host"
        return JSONResponse(
            {"error": f"{what} (it answers {names}, any port; refused so that pages of other "
                      "sites cannot reach it by pointing their name here): open it by one of "
                      "those names, or start it with --allow-host NAME to answer another"},
            status_code=400, headers=NO_STORE)


class SameOriginChanges:
    """ASGI middleware: refuse a state-changing request sent by a page of another origin.

    POST, PUT, DELETE and the like pass when their ``Origin`` is this server's own
    (its scheme is http or https and its host and port are the request's ``Host``)
    or when they have none (curl, scripts); else 403 with ``{"error": message}``.
    ``action`` says what such requests do, for the message ("change labels").
    """

    def __init__(self, app: ASGIApp, action: str = "change anything") -> None:
        self.app = app
        self.action = action

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            headers = Headers(scope=scope)
            origin = headers.get("origin")
            host = headers.get("host", "")
            if origin is not None and not _same_origin(origin, host):
                own = f"http://{host}"
                response = JSONResponse(
                    {"error": f"a request from {origin!r} may not {self.action} here: only this "
                              f"server's own page ({own}/) may, or a client that sends no Origin "
                              "(open the page there, or leave the Origin header out)"},
                    status_code=403, headers=NO_STORE)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _same_origin(origin: str, host: str) -> bool:
    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        return False
    return (parts.scheme in ("http", "https") and bool(host)
            and parts.netloc.lower() == host.lower() and not parts.path)


def _normalise(pattern: str) -> str:
    """``pattern`` as TrustedHostMiddleware compares it, or a :class:`UsageError` with the fix."""
    text = pattern.strip().lower()
    if text == "*":
        return text
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        pass
    else:
        return f"[{address.compressed}]" if address.version == 6 else address.compressed
    name = text[2:] if text.startswith("*.") else text
    if not _HOST_NAME.fullmatch(name):
        why = ("a '*' may only start the pattern, as in *.example.com" if "*" in name
               else "a port is not part of it" if ":" in name
               else "not a host name")
        raise UsageError(f"allowed host {pattern!r}: {why} (give a host name, an IP address, or "
                         "*.domain for every name under a domain; no scheme, port or path)")
    return text
