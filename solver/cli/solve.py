"""The verbs that use a site's model on the site or for others: `solver solve`, `collect`,
`learn`, `serve` (the HTTP API) and `demo`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from solver.cli._common import (Parents, Verbs, count, load_profile, model_for, models_dir,
                                open_store, port, report_line, resolve, serve_foreground)
from solver.errors import SolverError

if TYPE_CHECKING:
    from solver.solve import SolveResult


def cmd_solve(args: argparse.Namespace) -> int:
    """Open the page, solve, print each attempt (or JSON); 0 solved, 1 not, 2 a usage error.

    Under ``--json`` a failure (the site does not answer, no captcha on the
    page, ...) is JSON too: the shape of an outcome, ``success`` false, with
    ``error``; the error also goes to stderr.
    """
    from solver.solve import SolveResult

    facts: dict[str, object] = {"site": args.site, "url": args.url, "load_ms": None}
    try:
        result = _solve_on_page(args, facts)
    except SolverError as error:
        if not args.json or args.debug:
            raise
        print(json.dumps({**facts, **SolveResult(False, "", 0.0, []).to_json(),
                          "error": str(error)}, indent=2))
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    if args.json:
        print(json.dumps({**facts, **result.to_json()}, indent=2))
    else:
        for number, attempt in enumerate(result.attempts, 1):
            detail = f" ({attempt.reason})" if attempt.reason else ""
            print(f"attempt {number}: read {attempt.text!r} (confidence {attempt.confidence:.3f}): "
                  f"{attempt.outcome}{detail}")
        stages = ", ".join(f"{stage} {ms:.1f} ms" for stage, ms in result.milliseconds.items())
        slow = len(result.waits) - result.fallbacks
        print(("solved" if result.success else "NOT solved") + f" in {len(result.attempts)} "
              f"attempt(s); page load {facts['load_ms']:.0f} ms; {stages}; fallbacks "
              f"{result.fallbacks}, other waits over 1 s {slow}")
    return 0 if result.success else 1


def _solve_on_page(args: argparse.Namespace, facts: dict[str, object]) -> SolveResult:
    """The SolveResult of `solver solve`; ``facts`` gets site, url and load_ms as they are known."""
    import time

    from playwright.sync_api import sync_playwright

    from solver.browser import connect_steps, launch_chromium
    from solver.solve import Solver
    from solver.steps import run_sync

    site = resolve(args)
    facts.update(site=site.profile.name, url=site.profile.url)
    solver = Solver(site.profile, site.model_dir, attempts=args.attempts,
                    timeout_ms=args.timeout * 1000)
    with sync_playwright() as playwright:
        browser = (run_sync(connect_steps(playwright, args.connect)) if args.connect
                   else launch_chromium(playwright, headless=not args.headed))
        try:
            page = browser.new_page()
            started = time.perf_counter()
            solver.open(page)  # a site that does not answer: SiteError (solver.page.navigation_error)
            facts["load_ms"] = round((time.perf_counter() - started) * 1000, 1)
            return solver.solve(page)
        finally:
            browser.close()


def cmd_collect(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from solver.collect import CollectOptions, collect
    from solver.sites import resolve_site

    profile = load_profile(args)
    recognizer = None
    if args.label != "none" and args.model:
        from solver.prelabel import open_reader

        # ddddocr, general, site or a folder; readings are mapped into the profile's format
        recognizer = open_reader(args.model, profile, models_dir(args))
    elif args.label != "none":
        recognizer = resolve_site(profile, models_dir=args.models_dir).load_recognizer(
            warm_up=False)
    store = open_store(args, profile)
    options = CollectOptions(
        count=args.n, out=store.root, concurrency=args.concurrency, label=args.label,
        headed=args.headed, timeout_ms=args.timeout * 1000, retries=args.retries,
        connect=args.connect)
    options.check()
    already = len(store)
    with tqdm(total=args.n, initial=min(already, args.n), unit="img", desc=profile.name,
              disable=args.quiet or None, dynamic_ncols=True) as bar:
        try:
            summary = collect(profile, options, recognizer, progress=bar.update, store=store)
        except KeyboardInterrupt:
            bar.close()
            print(f"interrupted: {store.root} holds {len(store)} images; run the same command "
                  "again to continue", file=sys.stderr)
            return 130
    for line in summary.lines():
        print(line)
    stats = store.stats()
    print(f"{store.root}: {stats['images']} images, {stats['labelled']} labelled "
          f"({stats['verified']} verified by the site), {stats['unlabelled']} to label"
          + (" (`solver label --site " + profile.name + "`)" if stats["unlabelled"] else ""))
    return 0


def cmd_learn(args: argparse.Namespace) -> int:
    """Rounds of confirmed collection and training (solver.learn); 130 on Ctrl-C, 1 on a lock-out."""
    from pathlib import Path

    from solver.learn import LearnOptions, learn

    profile = load_profile(args)
    options = LearnOptions(
        data=Path(args.data) if args.data else None, models_dir=models_dir(args),
        target=args.target, per_round=args.per_round, label_budget=args.label_budget,
        time_budget_s=args.time_budget * 60 if args.time_budget else None, rate=args.rate,
        round_train_s=args.round_minutes * 60,
        read_on_s=None if args.read_on_minutes is None else args.read_on_minutes * 60,
        collect_while_training=not args.no_collect_while_training, start=args.start,
        trial=args.trial, restart=args.restart,
        timeout_ms=args.timeout * 1000, headed=args.headed, connect=args.connect, seed=args.seed)
    summary = learn(profile, options, report=report_line)
    for line in summary.lines():
        print(line)
    return 130 if summary.interrupted else 1 if summary.locked_out else 0


def cmd_serve(args: argparse.Namespace) -> int:
    from solver.api import build_api_app
    from solver.artifacts import METADATA_FILE
    from solver.errors import UsageError
    from solver.profiles import ProfileRegistry
    from solver.server import SiteServer

    if args.max_bytes < 1:
        raise UsageError(f"--max-bytes {args.max_bytes}: give a positive number of bytes")
    registry = ProfileRegistry(args.profiles_dir)
    folder = models_dir(args)
    app = build_api_app(registry, folder, max_bytes=args.max_bytes, host=args.host,
                        allowed_hosts=args.allow_host or ())
    server = SiteServer(app, host=args.host, port=args.port, access_log=args.verbose)
    names = registry.names()
    trained = [name for name in names if (model_for(args, name) / METADATA_FILE).is_file()]
    print(f"{len(names)} sites in {registry.directory}/ and the shipped ones, {len(trained)} with a "
          f"model in {folder}/ or shipped "
          f"({', '.join(trained) or 'none: train one with `solver train --site NAME`'})")
    print(f"HTTP API on {server.url}/ (POST {server.url}/v1/sites/NAME/read with the image; "
          f"GET {server.url}/v1/sites). Ctrl-C stops it.", flush=True)
    return serve_foreground(server, args.host, "use this API")


def cmd_demo(args: argparse.Namespace) -> int:
    from solver.demo import run_demo

    report = run_demo(style=args.style, port=args.port, headed=args.headed,
                      profiles_dir=args.profiles_dir, models_dir=str(models_dir(args)),
                      seed=args.seed, solves=args.solves,
                      progress=report_line if args.verbose else None)
    for line in report.lines():
        print(line)
    return 0 if report.ok else 1


def add_verbs(verbs: Verbs, parents: Parents) -> None:
    """`solver solve`, `collect`, `learn` and `serve` (`demo` comes last: :func:`add_demo_verb`)."""
    on_site = [parents.profiles_dir, parents.models_dir, parents.browsing, parents.site]
    solving = verbs.add_parser(
        "solve", parents=on_site,
        help="open the profile's page, read the captcha, submit it, check, retry")
    solving.add_argument("--model", metavar="DIR", help="model folder (default: models/NAME)")
    solving.add_argument("--url", help="open this URL instead of the profile's")
    solving.add_argument("--attempts", type=int, default=3,
                         help="tries before giving up (default 3); a reading that breaks the "
                         "profile or is unsure is not submitted, and counts as a try")
    solving.add_argument("--json", action="store_true",
                         help="print the outcome as JSON (success, text, confidence, attempts, "
                         "milliseconds per stage)")
    solving.set_defaults(func=cmd_solve)

    collecting = verbs.add_parser(
        "collect", parents=on_site,
        help="grab captchas from the profile's site into a dataset (data/NAME)")
    collecting.add_argument("-n", type=int, required=True, metavar="N",
                            help="collect until the dataset holds N images (again: continues)")
    collecting.add_argument("--data", "--out", dest="data", metavar="DIR",
                            help="dataset folder (default: data/NAME)")
    collecting.add_argument("--concurrency", type=int, default=1, metavar="K",
                            help="pages in parallel, each with its own session (default 1)")
    collecting.add_argument("--label", choices=("none", "model", "confirm"), default="none",
                            help="none: images only; model: keep the model's reading as a "
                            "suggestion; confirm: submit the reading and keep it as a verified "
                            "label when the site accepts it")
    collecting.add_argument("--model", metavar="SPEC",
                            help="what reads the captchas for --label: a model folder, general "
                            "(models/general), ddddocr, or site (default: models/NAME, which must "
                            "fit the profile); other readers' texts are mapped into the profile's "
                            "format")
    collecting.add_argument("--url", help="collect from this URL instead of the profile's")
    collecting.add_argument("--retries", type=int, default=3,
                            help="retries per captcha, with backoff, before giving up (default 3)")
    collecting.add_argument("--quiet", action="store_true", help="no progress bar")
    collecting.set_defaults(func=cmd_collect)

    learning = verbs.add_parser(
        "learn", parents=on_site,
        help="learn a site from the site itself: rounds of collection with the site confirming "
        "each answer, and training, until --target")
    learning.add_argument("--data", metavar="DIR", help="dataset folder (default: data/NAME); "
                          "the run's state is kept in DIR/learn/")
    learning.add_argument("--target", type=float, default=0.95, metavar="SHARE",
                          help="stop when a round reads this share of fresh captchas right "
                          "(default 0.95)")
    learning.add_argument("--per-round", type=count, default=200, metavar="N",
                          help="captchas read in each round (default 200)")
    learning.add_argument("--label-budget", type=count, metavar="N",
                          help="the most answers to submit in all (default: no limit)")
    learning.add_argument("--time-budget", type=float, default=30, metavar="MIN",
                          help="minutes for the whole run, every session counted (default 30; "
                          "0: no limit)")
    learning.add_argument("--rate", type=float, default=1.0, metavar="PER_SECOND",
                          help="the most submissions a second (default 1)")
    learning.add_argument("--round-minutes", type=float, default=5, metavar="MIN",
                          help="the most minutes one round's training takes (default 5)")
    learning.add_argument("--read-on-minutes", type=float, metavar="MIN",
                          help="a round that reads fewer than --target right reads on past "
                          "--per-round for this long, for more labels (default: 0, the reading "
                          "goes on while the model trains; with --no-collect-while-training, "
                          "--round-minutes)")
    learning.add_argument("--no-collect-while-training", action="store_true",
                          help="stop reading while a model trains (by default the round's reader "
                          "reads on meanwhile, at --rate: the training has the CPU, the reading "
                          "waits on the rate limit, and the next training gets the labels)")
    learning.add_argument("--start", default="auto", metavar="SPEC",
                          help="what reads the first round: auto (the site's model, else the "
                          "dataset's labels, else a trial of ddddocr and general: see "
                          "--trial), site, ddddocr, general or a model folder")
    learning.add_argument("--trial", type=int, default=20, metavar="N",
                          help="with no model of the site's own and more than one starting "
                          "reader, each reads N of the first captchas in turn (all of them "
                          "reading every one), and the site's verdicts choose which reads on "
                          "(default 20; 0: no trial, ddddocr first)")
    learning.add_argument("--restart", action="store_true",
                          help="forget the run's state and start anew (the dataset stays)")
    learning.add_argument("--url", help="learn from this URL instead of the profile's")
    learning.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    learning.set_defaults(func=cmd_learn)

    api = verbs.add_parser(
        "serve", parents=[parents.profiles_dir, parents.models_dir, parents.listening],
        help="HTTP API: POST /v1/sites/NAME/read with an image answers its text (JSON)")
    api.add_argument("--port", type=port, default=8080, help="port (default: 8080; 0: any free port)")
    api.add_argument("--max-bytes", type=int, default=2 * 1024 * 1024, metavar="N",
                     help="largest request body; larger ones get 413 (default: 2 MiB)")
    api.set_defaults(func=cmd_serve)


def add_demo_verb(verbs: Verbs, parents: Parents) -> None:
    """`solver demo`."""
    demo = verbs.add_parser("demo", parents=[parents.profiles_dir, parents.models_dir],
                            help="run the local site and drive it in a real browser")
    demo.add_argument("--style", default="example", help="site style to open (default: example)")
    demo.add_argument("--port", type=port, default=0, help="site port (default: any free port)")
    demo.add_argument("--seed", type=int, help="reproducible answers")
    demo.add_argument("--headed", action="store_true", help="show the browser window")
    demo.add_argument("--solves", type=int, default=20,
                      help="captchas to solve with the shipped model (default 20; 0: none)")
    demo.set_defaults(func=cmd_demo)
