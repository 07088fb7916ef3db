"""Captchas collected per second from the local site with 1, 2 and 4 pages.

    python benchmarks/collect.py --count 120 --pages 1,2,4 --name collect_local
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
    from solver.demo_site import CaptchaSite, LiveSite, SiteServer

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=120)
    parser.add_argument("--pages", default="1,2,4")
    parser.add_argument("--style", default="example")
    parser.add_argument("--name", default="collect_local")
    args = parser.parse_args()
    figures = {}
    site = CaptchaSite([args.style])
    with SiteServer(site.app, port=0) as server:
        profile = LiveSite(site, server).profile(args.style, str(ROOT / "site_profiles"))
        for pages in (int(p) for p in args.pages.split(",")):
            with tempfile.TemporaryDirectory() as out:
                summary = collect(profile, CollectOptions(count=args.count, out=Path(out), concurrency=pages))
            figures[f"{pages}_pages"] = {"images": summary.collected, "seconds": round(summary.seconds, 2),
                                         "per_second": round(summary.rate, 2),
                                         "duplicates": summary.duplicates, "failures": summary.failures,
                                         "capture": summary.methods}
            print(f"{pages} page(s): {summary.collected} captchas in {summary.seconds:.1f} s = "
                  f"{summary.rate:.1f}/s (duplicates {summary.duplicates}, failures {summary.failures})",
                  flush=True)
    save(args.name, {"style": args.style, **figures})


if __name__ == "__main__":
    main()
