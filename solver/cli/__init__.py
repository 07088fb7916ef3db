"""The `solver` command line. Each verb is a small function; ``main`` returns the exit status.

One module per verb group, each with its ``cmd_*`` functions (thin adapters from
flags to library calls) and an ``add_verbs`` that declares them; the flags that
several verbs share are parent parsers in :mod:`solver.cli._common`.

Exit status: 0 success, 1 the job failed (e.g. invalid profiles found by
``profiles check``), 2 a usage or profile error.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from solver import __version__
from solver.cli import dataset, profiles, site, solve, synth, train
from solver.cli._common import build_parents
from solver.errors import SolverError


def build_parser() -> argparse.ArgumentParser:
    """The `solver` parser with every verb, in the order `solver --help` lists them."""
    parser = argparse.ArgumentParser(
        prog="solver",
        description="Learn a website's text captcha and solve it inside Playwright.",
    )
    parser.add_argument("--version", action="version", version=f"solver {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    parents = build_parents()
    profiles.add_verbs(verbs, parents)
    site.add_site_verbs(verbs, parents)
    site.add_browser_verbs(verbs, parents)
    train.add_verbs(verbs, parents)
    dataset.add_verbs(verbs, parents)
    solve.add_verbs(verbs, parents)
    synth.add_verbs(verbs, parents)
    solve.add_demo_verb(verbs, parents)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `solver` command line (``argv``, else ``sys.argv[1:]``); the exit status.

    A :class:`~solver.errors.SolverError` is one ``error:`` line on stderr (its
    traceback with ``--debug``), Ctrl-C is 130, a closed output pipe 141."""
    from solver.quiet import show_banners

    parser = build_parser()
    args = parser.parse_args(argv)
    show_banners(args.verbose or args.debug)  # LiteRT's and TensorFlow's start-up lines
    logging.basicConfig(level=logging.DEBUG if args.debug else
                        logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except SolverError as error:
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `solver ... | head`: the reader has all it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the interpreter's own final flush is quiet
        return 141
