"""What several verb groups share: the parent parsers (each flag declared once), argument
types, and the few helpers that turn parsed flags into library arguments."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from solver.artifacts import MODELS_DIR_ENV
from solver.artifacts import models_dir as default_models_dir

if TYPE_CHECKING:
    from solver.dataset import DatasetStore
    from solver.profiles import SiteProfile
    from solver.server import SiteServer
    from solver.sites import Site

#: the CLI's messages are logged as "solver", whichever verb module writes them
logger = logging.getLogger("solver")

#: what ``add_subparsers`` returns: each verb group adds its verbs to it
Verbs: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

SITE_HELP = "profile name, or a path to a .yaml file"


@dataclass(frozen=True)
class Parents:
    """The parent parsers that verbs combine (``parents=[...]``); each flag is declared in one."""

    profiles_dir: argparse.ArgumentParser  # --profiles-dir
    models_dir: argparse.ArgumentParser  # --models-dir
    site: argparse.ArgumentParser  # --site NAME
    site_models: argparse.ArgumentParser  # --profiles-dir, --models-dir, --site
    model: argparse.ArgumentParser  # --model DIR
    site_data: argparse.ArgumentParser  # --profiles-dir, --site (for a dataset), --data
    browsing: argparse.ArgumentParser  # --headed, --timeout, --connect
    listening: argparse.ArgumentParser  # --host, --allow-host (a local page or API)


def site_option(help_text: str = SITE_HELP) -> argparse.ArgumentParser:
    """A parent with the one declaration of ``--site NAME`` (``help_text`` says what it is for)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--site", required=True, metavar="NAME", help=help_text)
    return parent


def build_parents() -> Parents:
    """Every shared parent parser, built once per :func:`solver.cli.build_parser`."""
    profiles_dir = argparse.ArgumentParser(add_help=False)
    profiles_dir.add_argument(
        "--profiles-dir", metavar="DIR",
        help="folder of NAME.yaml profiles (default: $SOLVER_PROFILES_DIR, else ./site_profiles); "
             "a name not there is looked for among the shipped profiles")
    models_dir = argparse.ArgumentParser(add_help=False)
    models_dir.add_argument(
        "--models-dir", metavar="DIR",
        help=f"folder of trained models (default: ${MODELS_DIR_ENV}, else ./models); a model not "
             "there is looked for among the shipped ones; training writes here")
    site = site_option()
    site_models = argparse.ArgumentParser(add_help=False, parents=[profiles_dir, models_dir, site])
    model = argparse.ArgumentParser(add_help=False)
    model.add_argument("--model", metavar="DIR", help="model folder (default: models/NAME)")
    site_data = argparse.ArgumentParser(
        add_help=False,
        parents=[profiles_dir,
                 site_option("profile name (its format checks the labels), or a .yaml path")])
    site_data.add_argument("--data", metavar="DIR", help="dataset folder (default: data/NAME)")
    browsing = argparse.ArgumentParser(add_help=False)
    browsing.add_argument("--headed", action="store_true", help="show the browser window")
    browsing.add_argument("--timeout", type=float, default=10, metavar="SECONDS",
                          help="per page action (default 10)")
    browsing.add_argument("--connect", metavar="URL",
                          help="use a remote browser: ws://... (playwright launch-server) or "
                          "http://HOST:PORT (Chromium's --remote-debugging-port)")
    listening = argparse.ArgumentParser(add_help=False)
    listening.add_argument("--host", default="127.0.0.1",
                           help="address to bind (default: 127.0.0.1)")
    listening.add_argument("--allow-host", action="append", metavar="NAME",
                           help="also answer requests for this host name (repeatable; "
                           "*.example.com for a domain); only 127.0.0.1, localhost, [::1] and "
                           "--host are answered otherwise, which keeps other sites' pages out "
                           "(DNS rebinding)")
    return Parents(profiles_dir, models_dir, site, site_models, model, site_data, browsing,
                   listening)


# --------------------------------------------------------------------- argument types


def count(text: str) -> int:
    """An argument that must be a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is too few: give at least 1")
    return value


def port(text: str) -> int:
    """A TCP port to listen on: 0-65535, where 0 lets the system pick a free one."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port (use 0-65535; 0 picks a free one)")
    return value


# --------------------------------------------------------------------- flags to library arguments


def models_dir(args: argparse.Namespace) -> Path:
    """Where models are written: --models-dir, else $SOLVER_MODELS_DIR, else ./models."""
    return default_models_dir(getattr(args, "models_dir", None))


def model_for(args: argparse.Namespace, name: str) -> Path:
    """Where model ``name`` is read from: the models folder, else the package's shipped one."""
    from solver.sites import model_folder

    return model_folder(name, models_dir=getattr(args, "models_dir", None))


def load_profile(args: argparse.Namespace) -> SiteProfile:
    """The profile --site names (a name in --profiles-dir or the shipped ones, or a .yaml path),
    with --url in its place when the verb has one and it is given."""
    from solver.sites import resolve_profile

    profile = resolve_profile(args.site, args.profiles_dir)
    return profile.with_url(args.url) if getattr(args, "url", None) else profile


def resolve(args: argparse.Namespace) -> Site:
    """The --site profile and its model folder: --model DIR, else models/NAME, else shipped."""
    from solver.sites import resolve_site

    return resolve_site(load_profile(args), model_dir=args.model,
                        models_dir=getattr(args, "models_dir", None))


def open_store(args: argparse.Namespace, profile: SiteProfile | None = None,
               read_only: bool = False) -> DatasetStore:
    """The site's dataset (--data, else data/NAME); the verbs that only read open it
    ``read_only`` (it writes nothing)."""
    from solver.dataset import DatasetStore

    profile = profile or load_profile(args)
    root = Path(args.data or Path("data") / profile.name)
    fmt = profile.format
    return DatasetStore(root, fmt.charset, fmt.length, fmt.case_sensitive, read_only=read_only)


def report_line(line: str) -> None:
    """A library's progress line, printed as it comes."""
    print(line, flush=True)


def serve_foreground(server: SiteServer, host: str, exposed: str) -> int:
    """Serve until Ctrl-C; warn first when ``host`` lets other machines in (what they can do:
    ``exposed``)."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning("listening on %s: other machines can %s", host, exposed)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0
