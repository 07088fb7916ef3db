"""Solving on the local site: success rate and the solve's own cost, per style.

For each style, a real browser solves ``--solves`` captchas one after another
with the shipped model (``models/digits`` for the styles of 4 digits, ``models/example``
for the others). Reported: success on the first attempt and overall, and the
solve's own cost beyond page load (grab + read + fill and submit, on the
attempt that ended the solve), median and p95. The site's answer time (the
verdict) is reported apart: it is the site's, not the solver's.

    python benchmarks/solve.py --solves 300 --name solve_local
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import ROOT, save  # noqa: E402
from solver.artifacts import find_model  # noqa: E402



def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_style(style: str, solves: int) -> dict[str, object]:
    from playwright.sync_api import sync_playwright

    from solver.browser import launch_chromium
    from solver.demo_site import CaptchaSite, LiveSite, SiteServer
    from solver.solve import Solver

    site = CaptchaSite([style])
    with SiteServer(site.app, port=0) as server:
        profile = LiveSite(site, server).profile(style, str(ROOT / "site_profiles"))
        model = find_model("digits" if site.styles[style].charset == "0123456789" else "example",
                           ROOT / "models")
        solver = Solver(profile, model)
        first = overall = 0
        costs, verdicts, reads = [], [], []
        fallbacks = 0
        failed: list[list[dict[str, object]]] = []
        outcomes: dict[str, int] = {}
        started = time.perf_counter()
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            page = browser.new_page()
            solver.open(page)
            for _ in range(solves):
                result = solver.solve(page)
                overall += result.success
                fallbacks += result.fallbacks
                for attempt in result.attempts:
                    outcomes[attempt.outcome] = outcomes.get(attempt.outcome, 0) + 1
                if not result.success:
                    failed.append([{"text": a.text, "confidence": round(a.confidence, 3),
                                    "outcome": a.outcome, "reason": a.reason} for a in result.attempts])
                first += result.success and len(result.attempts) == 1
                last = result.attempts[-1].milliseconds
                costs.append(last.get("grab", 0) + last.get("read", 0) + last.get("submit", 0))
                reads.append(last.get("read", 0))
                if "verdict" in last:
                    verdicts.append(last["verdict"])
                if not result.success or profile.form.success_url:  # or the site went elsewhere
                    solver.open(page)
            browser.close()
        seconds = time.perf_counter() - started
    figures = {"solves": solves, "first_attempt_rate": first / solves, "overall_rate": overall / solves,
               "cost_ms_median": statistics.median(costs), "cost_ms_p95": percentile(costs, 0.95),
               "read_ms_median": statistics.median(reads),
               "verdict_ms_median": statistics.median(verdicts) if verdicts else None,
               "solves_per_second": solves / seconds, "fallbacks": fallbacks, "model": str(model.relative_to(ROOT)),
               "attempt_outcomes": outcomes, "failed_solves": failed}
    print(f"{style:10s} first attempt {100 * first / solves:6.2f}%  overall {100 * overall / solves:6.2f}%  "
          f"cost median {figures['cost_ms_median']:.1f} ms p95 {figures['cost_ms_p95']:.1f} ms  "
          f"(read {figures['read_ms_median']:.2f} ms; site verdict {figures['verdict_ms_median'] or 0:.0f} ms; "
          f"fallbacks {fallbacks})",
          flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--solves", type=int, default=300)
    parser.add_argument("--styles", default="all", help="comma-separated styles, or 'all' (the default)")
    parser.add_argument("--name", default="solve_local")
    args = parser.parse_args()
    from solver.demo_site import load_styles

    styles = list(load_styles()) if args.styles == "all" else args.styles.split(",")
    figures = {style: run_style(style, args.solves) for style in styles}
    save(args.name, figures)


if __name__ == "__main__":
    main()
