"""`solver site` (the local synthetic captcha site) and `solver browser` (the Chromium to drive)."""

from __future__ import annotations

import argparse

from solver.cli._common import Parents, Verbs, count, port, serve_foreground


def cmd_site_serve(args: argparse.Namespace) -> int:
    from solver.demo_site import CaptchaSite
    from solver.server import SiteServer

    site = CaptchaSite(seed=args.seed, default_style=args.style,
                       lockout_after=getattr(args, "lockout_after", None))
    server = SiteServer(site.app, host=args.host, port=args.port, access_log=args.verbose)
    print(f"Local captcha site on {server.url}/ (style {args.style} at {server.url_for(args.style)}"
          f"; all styles: {', '.join(site.styles)}). Ctrl-C stops it.", flush=True)
    return serve_foreground(server, args.host, "reach this test site")


def cmd_site_styles(args: argparse.Namespace) -> int:
    from solver.demo_site import load_styles

    for name, style in load_styles().items():
        length = (str(style.min_length) if style.min_length == style.max_length
                  else f"{style.min_length}-{style.max_length}")
        print(f"{name:<11} {style.variant:<10} {length:>4} chars  {style.title}")
    return 0


def cmd_browser_which(args: argparse.Namespace) -> int:
    from solver.browser import current_choice

    print(current_choice().describe())
    return 0


def cmd_browser_install(args: argparse.Namespace) -> int:
    from solver.browser import install

    choice = install(timeout=args.timeout)
    print(f"Browser ready: {choice.describe()}")
    return 0


def add_site_verbs(verbs: Verbs, parents: Parents) -> None:
    """`solver site serve|styles`."""
    site = verbs.add_parser("site", help="the local synthetic captcha site")
    site_verbs = site.add_subparsers(dest="action", metavar="ACTION", required=True)
    serve = site_verbs.add_parser("serve", help="serve the site (every style; --style is the home page)")
    serve.add_argument("--style", default="example", help="style shown at / (default: example)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    serve.add_argument("--port", type=port, default=8765, help="port (default: 8765; 0: any free port)")
    serve.add_argument("--seed", type=int, help="make the sequence of answers reproducible")
    serve.add_argument("--lockout-after", type=count, metavar="N",
                       help="answer HTTP 429 to a session after its first N submissions (to test "
                       "a client's respect for a site's limits)")
    serve.set_defaults(func=cmd_site_serve)
    styles = site_verbs.add_parser("styles", help="list the site's styles")
    styles.set_defaults(func=cmd_site_styles)


def add_browser_verbs(verbs: Verbs, parents: Parents) -> None:
    """`solver browser which|install`."""
    browser = verbs.add_parser("browser", help="find or install the Chromium to drive")
    browser_verbs = browser.add_subparsers(dest="action", metavar="ACTION", required=True)
    which = browser_verbs.add_parser("which", help="say which Chromium would be launched")
    which.set_defaults(func=cmd_browser_which)
    install = browser_verbs.add_parser(
        "install", help="get a Chromium: Playwright's, else a system one (apt-get as root)")
    install.add_argument("--timeout", type=float, default=600, help="seconds per download step")
    install.set_defaults(func=cmd_browser_install)
