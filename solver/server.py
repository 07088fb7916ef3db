"""Serve an ASGI app with uvicorn on a local port, in the foreground or from a thread.

Every server of the package runs on it: the local captcha site (``solver site``),
the HTTP API (``solver serve``) and the labelling page (``solver label``).
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
from types import TracebackType
from typing import Any

from solver.errors import SiteError

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or a :class:`SiteError` that says how to get one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # uvicorn writes headers and body apart; without this the body waits ~40 ms for
    # the client's delayed ACK (Nagle). Accepted sockets inherit the option on Linux.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise SiteError(
                f"port {port} on {host} is already in use (stop whatever listens there, "
                "or choose another port with --port, or --port 0 for any free one)"
            ) from None
        if error.errno == errno.EACCES:
            raise SiteError(f"not allowed to listen on {host}:{port} "
                            "(choose a port above 1023 with --port)") from None
        raise SiteError(f"cannot listen on {host}:{port}: {error.strerror} "
                        "(check the --host address)") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


class SiteServer:
    """Serves an ASGI app on ``host:port`` from a background thread, or in the foreground.

    Use as a context manager; ``port=0`` picks a free port::

        with SiteServer(site.app, port=0) as server:
            print(server.url)
    """

    def __init__(self, app: Any, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 access_log: bool = False) -> None:
        import uvicorn

        self.host = host
        self._socket = bind(host, port)
        self.port = self._socket.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", access_log=access_log,
                                lifespan="off", timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def url_for(self, style: str) -> str:
        """The URL of one folder of the app (a style of the local site)."""
        return f"{self.url}/{style}/"

    def start(self, timeout: float = 10.0) -> SiteServer:
        self._thread = threading.Thread(target=self._server.run,
                                        kwargs={"sockets": [self._socket]},
                                        name=f"site-server-{self.port}", daemon=True)
        self._thread.start()
        waited = threading.Event()
        for _ in range(int(timeout / 0.02)):
            if self._server.started or not self._thread.is_alive():
                break
            waited.wait(0.02)
        if not self._server.started:
            self.stop()
            raise SiteError(f"the server on {self.url} did not start within {timeout:.0f} s "
                            "(run with --debug to see why)")
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until Ctrl-C."""
        self._server.run(sockets=[self._socket])

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._socket.close()

    def __enter__(self) -> SiteServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()
