"""Captchas collected per second from the local site, per style, with 1, 2 and 4 pages.

    python benchmarks/collect.py --count 100 --pages 1 --styles all --name collect_styles
    python benchmarks/collect.py --count 120 --pages 1,2,4 --styles example --name collect_local
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import ROOT, save  # noqa: E402


def main() -> None:
    from solver.collect import CollectOptions, collect
    from solver.demo_site import CaptchaSite, LiveSite, SiteServer, load_styles

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=120)
    parser.add_argument("--pages", default="1,2,4")
    parser.add_argument("--styles", "--style", default="example",
                        help="comma-separated styles, or 'all' (default example)")
    parser.add_argument("--name", default="collect_local")
    args = parser.parse_args()
    styles = list(load_styles()) if args.styles == "all" else args.styles.split(",")
    figures: dict[str, dict[str, object]] = {}
    site = CaptchaSite(styles)
    with SiteServer(site.app, port=0) as server:
        for style in styles:
            profile = LiveSite(site, server).profile(style, str(ROOT / "site_profiles"))
            for pages in (int(p) for p in args.pages.split(",")):
                with tempfile.TemporaryDirectory() as out:
                    summary = collect(profile, CollectOptions(count=args.count, out=Path(out),
                                                              concurrency=pages))
                figures.setdefault(style, {})[f"{pages}_pages"] = {
                    "images": summary.collected, "seconds": round(summary.seconds, 2),
                    "per_second": round(summary.rate, 2), "duplicates": summary.duplicates,
                    "failures": summary.failures, "fallbacks": summary.fallbacks,
                    "capture": summary.methods}
                print(f"{style:10s} {pages} page(s): {summary.collected} captchas in "
                      f"{summary.seconds:.1f} s = {summary.rate:.1f}/s (duplicates {summary.duplicates}, "
                      f"failures {summary.failures}, fallbacks {summary.fallbacks})", flush=True)
    save(args.name, figures)


if __name__ == "__main__":
    main()
