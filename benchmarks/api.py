"""Requests per second of the HTTP API (`solver serve`) and its latency, on this machine.

    python benchmarks/api.py --site digits --requests 2000 --concurrency 1,4,16 \
        --as-shipped --name api_digits

The server runs in its own process (the app `solver serve` builds, on uvicorn),
so the client's CPU use does not share its GIL; on a small machine they share
the cores, and the figures say how much CPU each used. The client is asyncio
with one keep-alive connection per concurrent client, each request a different
captcha of the profile's look. Figures go to ``benchmarks/results/NAME.json``.

``SiteServer``'s listening socket does not set TCP_NODELAY, so uvicorn's
response (headers, then body: two writes) waits on the client's delayed ACK,
about 40 ms a request on Linux. The server here sets it (``--tcp-nodelay``,
the default) and, with ``--as-shipped``, the same run without it is measured too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import ROOT, git_revision, save

from solver.artifacts import find_model
from solver.drawing import CaptchaDrawer, random_text
from solver.profiles import ProfileRegistry


def serve(args: argparse.Namespace) -> None:
    """The server process: the same app and server as `solver serve`."""
    import socket

    import solver.server as server_module
    from solver.api import build_api_app
    from solver.demo_site import SiteServer

    if args.tcp_nodelay:
        shipped_bind = server_module.bind

        def bind(host: str, port: int) -> socket.socket:
            sock = shipped_bind(host, port)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # accepted sockets inherit it
            return sock

        server_module.bind = bind

    registry = ProfileRegistry(ROOT / "site_profiles")
    app = build_api_app(registry, ROOT / "models")  # then the shipped ones
    server = SiteServer(app, port=0)
    print(server.url, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str,
               image: bytes) -> tuple[int, dict[str, Any]]:
    writer.write(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                 f"Content-Length: {len(image)}\r\n\r\n".encode() + image)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next(int(line.split(":", 1)[1]) for line in lines
                  if line.lower().startswith("content-length:"))
    return int(lines[0].split()[1]), json.loads(await reader.readexactly(length))


async def load(port: int, site: str, samples: list[tuple[str, bytes]], requests: int,
               concurrency: int) -> dict[str, Any]:
    """``requests`` reads from ``concurrency`` clients at once: rate, latency, correctness."""
    path = f"/v1/sites/{site}/read"
    latencies: list[float] = []
    server_ms: list[float] = []
    right = failed = 0
    next_index = 0

    async def client() -> None:
        nonlocal right, failed, next_index
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while next_index < requests:
                answer, image = samples[next_index % len(samples)]
                next_index += 1
                started = time.perf_counter()
                status, body = await post(reader, writer, path, image)
                latencies.append((time.perf_counter() - started) * 1000)
                if status != 200:
                    failed += 1
                    continue
                server_ms.append(body["ms"])
                right += body["text"] == answer
        finally:
            writer.close()
            await writer.wait_closed()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    array = np.array(latencies)
    return {"requests": requests, "concurrency": concurrency, "seconds": round(seconds, 3),
            "requests_per_second": round(requests / seconds, 1),
            "latency_median_ms": round(float(np.median(array)), 3),
            "latency_p95_ms": round(float(np.percentile(array, 95)), 3),
            "server_read_ms_median": round(statistics.median(server_ms), 3) if server_ms else None,
            "failed": failed, "right": right}


def start_server(tcp_nodelay: bool) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve",
         "--tcp-nodelay" if tcp_nodelay else "--no-tcp-nodelay"], cwd=ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    if not url.startswith("http://"):
        process.kill()
        raise SystemExit(f"the server did not start (it printed {url!r})")
    return process, int(url.rsplit(":", 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--site", default="digits")
    parser.add_argument("--requests", type=int, default=2000, help="per measurement")
    parser.add_argument("--concurrency", default="1,4,16", help="clients at once, comma-separated")
    parser.add_argument("--images", type=int, default=300, help="distinct captchas to send")
    parser.add_argument("--name", default="api_digits")
    parser.add_argument("--tcp-nodelay", action=argparse.BooleanOptionalAction, default=True,
                        help="set TCP_NODELAY on the server's socket (default: yes)")
    parser.add_argument("--as-shipped", action="store_true",
                        help="also measure without TCP_NODELAY, as SiteServer binds today")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the server
    parser.add_argument("--note", default="", help="added to the saved notes")
    args = parser.parse_args()
    if args.serve:
        serve(args)
        return

    profile = ProfileRegistry(ROOT / "site_profiles").load(args.site)
    drawer = CaptchaDrawer.from_settings(profile.synthetic)
    rng = random.Random(11)
    fmt = profile.format
    answers = [random_text(rng, fmt.charset, fmt.min_length, fmt.max_length)
               for _ in range(args.images)]
    samples = [(answer, drawer.png(answer)) for answer in answers]
    load_before = os.getloadavg()
    runs = []
    for tcp_nodelay in [args.tcp_nodelay] + ([False] if args.as_shipped else []):
        process, port = start_server(tcp_nodelay)
        try:
            asyncio.run(load(port, args.site, samples, 100, 4))  # loads the model, warms up
            for concurrency in (int(n) for n in args.concurrency.split(",")):
                server_cpu = cpu_seconds(process.pid)
                client_cpu = time.process_time()
                run = asyncio.run(load(port, args.site, samples, args.requests, concurrency))
                run["server_cpu_s"] = round(cpu_seconds(process.pid) - server_cpu, 2)
                run["client_cpu_s"] = round(time.process_time() - client_cpu, 2)
                run["tcp_nodelay"] = tcp_nodelay
                runs.append(run)
                print(f"TCP_NODELAY {'on ' if tcp_nodelay else 'off'}, "
                      f"concurrency {concurrency:>2}: "
                      f"{run['requests_per_second']:7.1f} requests/s, latency median "
                      f"{run['latency_median_ms']:.2f} ms, p95 {run['latency_p95_ms']:.2f} ms, "
                      f"read {run['server_read_ms_median']} ms, {run['right']}/{run['requests']} "
                      f"right, {run['failed']} failed (CPU: server {run['server_cpu_s']} s, "
                      f"client {run['client_cpu_s']} s in {run['seconds']} s)", flush=True)
        finally:
            process.terminate()
            process.wait(timeout=30)
    load_after = os.getloadavg()
    best = max(runs, key=lambda run: run["requests_per_second"])
    busy = max(load_before[0], load_after[0]) > 1.5
    figures = {
        "site": args.site, "model": os.path.relpath(find_model(args.site, ROOT / "models"), ROOT),
        "revision": git_revision(),
        "transport": "HTTP/1.1 keep-alive, raw PNG body, one connection per client, "
                     "server in its own process (uvicorn, h11)",
        "best": {key: best[key] for key in ("tcp_nodelay", "concurrency",
                                            "requests_per_second", "latency_median_ms",
                                            "latency_p95_ms")},
        "runs": runs,
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in load_after],
        "notes": ("client and server share the machine's cores; tcp_nodelay true: the server's "
                  "listening socket set TCP_NODELAY, which SiteServer does not do yet (without "
                  "it each keep-alive request waits ~40 ms on the client's delayed ACK); "
                  + ("other work was running (load average above 1.5): figures are lower bounds"
                     if busy else "the machine was otherwise idle")
                  + (f"; {args.note}" if args.note else "")),
    }
    print(f"best: {best['requests_per_second']} requests/s (concurrency "
          f"{best['concurrency']}); load average "
          f"{load_before[0]:.2f} before, {load_after[0]:.2f} after")
    save(args.name, figures)


if __name__ == "__main__":
    main()
