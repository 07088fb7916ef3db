"""The `solver` command line. Each verb is a small function; ``main`` returns the exit status.

Exit status: 0 success, 1 the job failed (e.g. invalid profiles found by
``profiles check``), 2 a usage or profile error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from solver import __version__
from solver.artifacts import MODELS_DIR_ENV
from solver.artifacts import find_model
from solver.artifacts import models_dir as default_models_dir
from solver.errors import SolverError

if TYPE_CHECKING:
    from solver.demo_site import SiteServer
    from solver.solve import SolveResult

logger = logging.getLogger("solver")


def _models_dir(args: argparse.Namespace) -> Path:
    """Where models are written: --models-dir, else $SOLVER_MODELS_DIR, else ./models."""
    return default_models_dir(getattr(args, "models_dir", None))


def _model_for(args: argparse.Namespace, name: str) -> Path:
    """Where model ``name`` is read from: the models folder, else the package's shipped one."""
    return find_model(name, getattr(args, "models_dir", None))


def _start_model(args: argparse.Namespace) -> Path | None:
    """--from: a model folder, or a bare name found like any model (the models folder, then the
    shipped ones), so that `--from general` works from any folder."""
    if not args.start_from:
        return None
    given = Path(args.start_from)
    if given.exists() or len(given.parts) > 1:
        return given
    return _model_for(args, args.start_from)


def _load_tensorflow(args: argparse.Namespace) -> None:
    """Import TensorFlow for a training verb, its C++ start-up lines kept off stderr unless
    --verbose (absl's and CUDA's come from native code whatever TF_CPP_MIN_LOG_LEVEL says)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if args.verbose else "2" if args.debug else "3")
    from solver.quiet import native_stderr_filtered

    with native_stderr_filtered():
        import tensorflow  # noqa: F401


def _serve_foreground(server: SiteServer, host: str, exposed: str) -> int:
    """Serve until Ctrl-C; warn first when ``host`` lets other machines in (what they can do: ``exposed``)."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning("listening on %s: other machines can %s", host, exposed)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


# --------------------------------------------------------------------- profiles


def cmd_profiles_list(args: argparse.Namespace) -> int:
    from solver.profiles import ProfileRegistry

    from solver import shipped
    from solver.artifacts import METADATA_FILE

    registry = ProfileRegistry(args.profiles_dir)
    paths = registry.paths()
    if not paths:
        print(f"No profiles in {registry.directory}/ (write NAME.yaml there; "
              "see README.md, or `solver profiles schema`)")
        return 0
    # PROFILE and MODEL say where each comes from: a path, or "shipped" (inside the package)
    rows = [("NAME", "URL", "PIPELINE", "MODEL", "PROFILE")]
    broken = 0
    for name, path in paths.items():
        source = shipped.LABEL if registry.is_shipped(path) else str(path)
        try:
            profile = registry.load(path)
        except SolverError:
            rows.append((name, "(invalid: run `solver profiles check " + str(path) + "`)", "", "",
                         source))
            broken += 1
            continue
        model = _model_for(args, name)
        where = ("no" if not (model / METADATA_FILE).is_file()
                 else shipped.LABEL if shipped.is_shipped(model) else str(model))
        rows.append((name, profile.url, profile.model.pipeline, where, source))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    print(f"(looked in {registry.directory}/ and {_models_dir(args)}/, then the {shipped.LABEL} "
          f"ones in {shipped.root()}/; a name in the former shadows the {shipped.LABEL} one)")
    return 1 if broken else 0


def cmd_profiles_check(args: argparse.Namespace) -> int:
    from solver.errors import ProfileError
    from solver.profiles import load_profile

    failed = 0
    for path in args.paths:
        try:
            load_profile(path)
        except ProfileError as error:
            failed += 1
            for line in error.problems:
                print(line)
        else:
            print(f"{path}: ok")
    if len(args.paths) > 1:
        print(f"{len(args.paths) - failed} valid, {failed} invalid")
    return 1 if failed else 0


def cmd_profiles_schema(args: argparse.Namespace) -> int:
    from solver.profiles import profile_schema

    print(json.dumps(profile_schema(), indent=2))
    return 0


def cmd_profiles_show(args: argparse.Namespace) -> int:
    from solver.profiles import ProfileRegistry

    profile = ProfileRegistry(args.profiles_dir).load(args.site)
    print(f"# {profile.source}" if profile.source else "", end="\n" if profile.source else "")
    print(profile.to_yaml(), end="")
    return 0


# --------------------------------------------------------------------- site


def cmd_site_serve(args: argparse.Namespace) -> int:
    from solver.demo_site import CaptchaSite, SiteServer

    site = CaptchaSite(seed=args.seed, default_style=args.style,
                       lockout_after=getattr(args, "lockout_after", None))
    server = SiteServer(site.app, host=args.host, port=args.port, access_log=args.verbose)
    print(f"Local captcha site on {server.url}/ (style {args.style} at {server.url_for(args.style)}"
          f"; all styles: {', '.join(site.styles)}). Ctrl-C stops it.", flush=True)
    return _serve_foreground(server, args.host, "reach this test site")


def cmd_site_styles(args: argparse.Namespace) -> int:
    from solver.demo_site import load_styles

    for name, style in load_styles().items():
        length = (str(style.min_length) if style.min_length == style.max_length
                  else f"{style.min_length}-{style.max_length}")
        print(f"{name:<11} {style.variant:<10} {length:>4} chars  {style.title}")
    return 0


# --------------------------------------------------------------------- browser


def cmd_browser_which(args: argparse.Namespace) -> int:
    from solver.browser import current_choice

    print(current_choice().describe())
    return 0


def cmd_browser_install(args: argparse.Namespace) -> int:
    from solver.browser import install

    choice = install(timeout=args.timeout)
    print(f"Browser ready: {choice.describe()}")
    return 0


# --------------------------------------------------------------------- dataset


def _store(args: argparse.Namespace, profile=None, read_only: bool = False):  # type: ignore[no-untyped-def]
    """The site's dataset; the verbs that only read open it ``read_only`` (it writes nothing)."""
    from solver.dataset import DatasetStore
    from solver.profiles import ProfileRegistry

    profile = profile or ProfileRegistry(args.profiles_dir).load(args.site)
    root = Path(args.data or Path("data") / profile.name)
    fmt = profile.format
    return DatasetStore(root, fmt.charset, fmt.length, fmt.case_sensitive, read_only=read_only)


def cmd_dataset_stats(args: argparse.Namespace) -> int:
    from solver.dataset import PSEUDO_SOURCE, label_counts

    store = _store(args, read_only=True)
    stats = store.stats()
    pseudo = sum(bool(e.label) and e.source == PSEUDO_SOURCE for e in store.entries())
    print(f"{store.root}: {stats['images']} images, {stats['labelled']} labelled "
          f"({stats['verified']} verified by the site"
          + (f", {pseudo} pseudo-labels that training leaves out without --pseudo-labels"
             if pseudo else "")
          + f"), {stats['unlabelled']} unlabelled"
          + (f" ({stats['suggested']} with a model's suggestion)" if stats["suggested"] else "")
          + (f"; {stats['missing']} of them missing from the folder (their rows are kept: "
             "put the images back, or `solver dataset prune` drops them)" if stats["missing"] else ""))
    counts = label_counts(store.samples())
    if counts:
        print("characters: " + " ".join(f"{ch}:{n}" for ch, n in sorted(counts.items()))
              + (" (pseudo-labels not counted)" if pseudo else ""))
    return 0


def cmd_dataset_import(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from solver.dataset import read_labelled_folder

    store = _store(args)
    total = len(read_labelled_folder(args.folder, contained=True))  # refuses a bad folder first
    with tqdm(total=total, unit="img", desc="import", disable=args.quiet or None,
              dynamic_ncols=True) as bar:
        counts = store.import_folder(args.folder, source=args.source, verified=args.verified,
                                     force=args.force, progress=bar.update)
    print(f"{store.root}: " + ", ".join(f"{n} {what}" for what, n in counts.items()))
    return 1 if counts["refused"] or counts["conflicts"] else 0


def cmd_dataset_prune(args: argparse.Namespace) -> int:
    store = _store(args)
    missing = store.missing()
    if not missing:
        print(f"{store.root}: nothing to prune (every listed image is there)")
        return 0
    labelled = sum(bool(e.label) for e in missing)
    if not args.yes:
        print(f"{store.root}: {len(missing)} rows would be dropped ({labelled} with a label); "
              "run again with --yes to drop them for good", file=sys.stderr)
        return 1
    dropped = store.prune()
    print(f"{store.root}: dropped {len(dropped)} rows whose images are missing "
          f"({labelled} labels with them)")
    return 0


def cmd_dataset_export(args: argparse.Namespace) -> int:
    store = _store(args, read_only=True)
    count = store.export(args.out, layout=args.layout, verified_only=args.verified_only)
    print(f"{count} labelled images written to {args.out} ({args.layout} layout)")
    return 0


def cmd_dataset_split(args: argparse.Namespace) -> int:
    from solver.dataset import read_labelled_folder, write_split

    store = _store(args, read_only=True)
    train, test = write_split(store.samples(args.verified_only), args.out, args.test, args.seed)
    print(f"train: {train} ({len(read_labelled_folder(train))} images); "
          f"test: {test} ({len(read_labelled_folder(test))} images); seed {args.seed}")
    return 0


def _open_reader(args: argparse.Namespace, profile):  # type: ignore[no-untyped-def]
    from solver.prelabel import default_reader_spec, open_reader

    spec = args.reader or default_reader_spec(profile, _models_dir(args))
    return open_reader(spec, profile, _models_dir(args))


def _read_entries(store, reader, entries: list, bar):  # type: ignore[no-untyped-def]
    """(entry, proposal or None) for each entry, read in the reader's batches.

    One unreadable image spoils a batch: that batch is read again image by image,
    and the unreadable ones give None (logged).
    """
    size = max(1, reader.batch_size)
    for start in range(0, len(entries), size):
        chunk = entries[start:start + size]
        try:
            proposals = reader.propose([(store.root / e.file).read_bytes() for e in chunk])
        except (OSError, SolverError):
            proposals = []
            for entry in chunk:
                try:
                    proposals.append(reader.read((store.root / entry.file).read_bytes()))
                except (OSError, SolverError) as error:
                    logger.warning("%s: not read (%s)", store.root / entry.file, error)
                    proposals.append(None)
        yield from zip(chunk, proposals)
        bar.update(len(chunk))


class _ReadTally:
    """What a pre-labelling run read: fitting readings by confidence, misfits, failures."""

    BANDS = ((0.98, ">=0.98"), (0.9, "0.90-0.98"), (0.5, "0.50-0.90"), (0.0, "<0.50"))

    def __init__(self) -> None:
        from collections import Counter

        self.bands: Counter[str] = Counter()
        self.misfits: Counter[str] = Counter()
        self.misfit_examples: list[str] = []
        self.unreadable = 0

    def add(self, proposal) -> None:  # type: ignore[no-untyped-def]
        if proposal is None:
            self.unreadable += 1
        elif not proposal.fits:
            self.misfits["no fitting reading"] += 1
            if len(self.misfit_examples) < 3:
                self.misfit_examples.append(proposal.problem)
        elif proposal.confidence is None:
            self.bands["no confidence"] += 1
        else:
            self.bands[next(name for low, name in self.BANDS if proposal.confidence >= low)] += 1

    @property
    def count(self) -> int:
        return sum(self.bands.values()) + sum(self.misfits.values()) + self.unreadable

    def lines(self) -> list[str]:
        order = [name for _, name in self.BANDS] + ["no confidence"]
        out = ["confidence: " + (", ".join(f"{name} {self.bands[name]}" for name in order
                                           if self.bands[name]) or "no fitting readings")]
        misfits = sum(self.misfits.values())
        out.append(f"no fitting reading: {misfits}"
                   + (f" (e.g. {'; '.join(self.misfit_examples)})" if misfits else ""))
        if self.unreadable:
            out.append(f"unreadable images: {self.unreadable} (see the warnings above)")
        return out


def cmd_dataset_suggest(args: argparse.Namespace) -> int:
    import time

    from tqdm import tqdm

    from solver.profiles import ProfileRegistry

    profile = ProfileRegistry(args.profiles_dir).load(args.site)
    reader = _open_reader(args, profile)  # first: a missing reader changes nothing
    store = _store(args, profile)
    entries = [e for e in store.present() if args.all or (e.needs_label and not e.suggestion)]
    if args.limit is not None:
        entries = entries[:args.limit]
    if not entries:
        print(f"{store.root}: nothing to read: no unlabelled image without a suggestion "
              "(--all reads every image again)")
        return 0
    tally, suggested, started = _ReadTally(), 0, time.perf_counter()
    interrupted = False
    with tqdm(total=len(entries), unit="img", desc="suggest", disable=args.quiet or None,
              dynamic_ncols=True) as bar, store.batch():
        try:
            for entry, proposal in _read_entries(store, reader, entries, bar):
                tally.add(proposal)
                if proposal is not None and proposal.fits:
                    store.suggest(entry.file, proposal.text, proposal.confidence)
                    suggested += 1
        except KeyboardInterrupt:
            interrupted = True
    print(f"{store.root}: read {tally.count} of {len(entries)} images with "
          f"{reader.description} in {time.perf_counter() - started:.1f} s; "
          f"{suggested} suggestions stored")
    for line in tally.lines():
        print("  " + line)
    if interrupted:
        print("interrupted: the suggestions above are saved; "
              + ("--all reads every image again" if args.all
                 else "run the same command again to continue"), file=sys.stderr)
        return 130
    print(f"next: `solver label --site {profile.name}` shows them, least confident first")
    return 0


def cmd_dataset_pseudo_label(args: argparse.Namespace) -> int:
    import time

    from tqdm import tqdm

    from solver.dataset import PSEUDO_SOURCE, LabelConflictError

    if not 0.0 < args.min_confidence <= 1.0:
        from solver.errors import UsageError

        raise UsageError(f"--min-confidence {args.min_confidence}: use a number above 0 and "
                         "at most 1, e.g. 0.98")
    from solver.profiles import ProfileRegistry

    profile = ProfileRegistry(args.profiles_dir).load(args.site)
    reader = _open_reader(args, profile)  # first: a missing reader changes nothing
    store = _store(args, profile)
    entries = [e for e in store.present() if e.needs_label]
    if args.limit is not None:
        entries = entries[:args.limit]
    tally, labelled, below, started = _ReadTally(), 0, 0, time.perf_counter()
    interrupted = False
    with tqdm(total=len(entries), unit="img", desc="pseudo-label", disable=args.quiet or None,
              dynamic_ncols=True) as bar, store.batch():
        try:
            for entry, proposal in _read_entries(store, reader, entries, bar):
                tally.add(proposal)
                if proposal is None or not proposal.fits:
                    continue
                store.suggest(entry.file, proposal.text, proposal.confidence)
                if proposal.confidence is None or proposal.confidence < args.min_confidence:
                    below += 1
                    continue
                try:  # labelled meanwhile (e.g. on the labelling page): that label stays
                    saved = store.set_label(entry.file, proposal.text, source=PSEUDO_SOURCE)
                except LabelConflictError:
                    continue
                labelled += saved.source == PSEUDO_SOURCE
        except KeyboardInterrupt:
            interrupted = True
    print(f"{store.root}: read {tally.count} of {len(entries)} unlabelled images with "
          f"{reader.description} in {time.perf_counter() - started:.1f} s")
    print(f"  pseudo-labelled {labelled} (confidence >= {args.min_confidence:g}); "
          f"{below} kept as suggestions only (less sure, or no confidence)")
    for line in tally.lines():
        print("  " + line)
    if interrupted:
        print("interrupted: the labels above are saved; run the same command again to continue",
              file=sys.stderr)
        return 130
    print(f"next: `solver train --site {profile.name} --data {store.root} --pseudo-labels` "
          "trains on them too (without --pseudo-labels training leaves them out)")
    return 0


def cmd_label(args: argparse.Namespace) -> int:
    from solver import shipped
    from solver.demo_site import SiteServer
    from solver.labeller import build_label_app
    from solver.profiles import ProfileRegistry
    from solver.recognizers import Recognizer

    profile = ProfileRegistry(args.profiles_dir).load(args.site)
    store = _store(args)
    model_dir = Path(args.model) if args.model else _model_for(args, profile.name)
    # no model yet is normal for a site's first labels: the page then has no pre-fill
    has_model = bool(args.model) or (model_dir / "metadata.json").is_file()
    recognizer = Recognizer(model_dir, profile) if has_model else None
    app = build_label_app(store, profile, recognizer,  # reads the images without a suggestion
                          host=args.host, allowed_hosts=args.allow_host or ())
    server = SiteServer(app, host=args.host, port=args.port, access_log=args.verbose)
    stats = store.stats()
    print(f"{store.root}: {stats['images']} images, {stats['labelled']} labelled, "
          f"{stats['unlabelled']} to label "
          + (f"({stats['suggested']} with a reading of {shipped.describe(model_dir)})" if recognizer
             else f"(no model in {model_dir}: no suggestions)"))
    print(f"Labelling page on {server.url}/ (Enter saves, Esc skips, Ctrl+Z undoes the last "
          "save). Ctrl-C stops it.", flush=True)
    return _serve_foreground(server, args.host, "change this dataset's labels")


# --------------------------------------------------------------------- collect


def cmd_collect(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from solver.collect import CollectOptions, collect
    from solver.profiles import ProfileRegistry
    from solver.recognizers import Recognizer

    profile = ProfileRegistry(args.profiles_dir).load(args.site)
    if args.url:
        profile = profile.with_url(args.url)
    recognizer = None
    if args.label != "none" and args.model:
        from solver.prelabel import open_reader

        # ddddocr, general, site or a folder; readings are mapped into the profile's format
        recognizer = open_reader(args.model, profile, _models_dir(args))
    elif args.label != "none":
        recognizer = Recognizer(_model_for(args, profile.name), profile)
    store = _store(args)
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


# --------------------------------------------------------------------- learn


def cmd_learn(args: argparse.Namespace) -> int:
    """Rounds of confirmed collection and training (solver.learn); 130 on Ctrl-C, 1 on a lock-out."""
    from solver.learn import LearnOptions, learn
    from solver.profiles import ProfileRegistry

    profile = ProfileRegistry(args.profiles_dir).load(args.site)
    if args.url:
        profile = profile.with_url(args.url)
    options = LearnOptions(
        data=Path(args.data) if args.data else None, models_dir=_models_dir(args),
        target=args.target, per_round=args.per_round, label_budget=args.label_budget,
        time_budget_s=args.time_budget * 60 if args.time_budget else None, rate=args.rate,
        round_train_s=args.round_minutes * 60, start=args.start, restart=args.restart,
        timeout_ms=args.timeout * 1000, headed=args.headed, connect=args.connect, seed=args.seed)
    summary = learn(profile, options, report=lambda line: print(line, flush=True))
    for line in summary.lines():
        print(line)
    return 130 if summary.interrupted else 1 if summary.locked_out else 0


# --------------------------------------------------------------------- solve


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
        stages = ", ".join(f"{stage} {ms:.1f} ms" for stage, ms in result.ms.items())
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
    from solver.profiles import ProfileRegistry
    from solver.solve import Solver
    from solver.steps import run_sync

    profile = ProfileRegistry(args.profiles_dir).load(args.site)
    if args.url:
        profile = profile.with_url(args.url)
    facts.update(site=profile.name, url=profile.url)
    model_dir = Path(args.model) if args.model else _model_for(args, profile.name)
    solver = Solver(profile, model_dir, attempts=args.attempts, timeout_ms=args.timeout * 1000)
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


# --------------------------------------------------------------------- models


def _site_model(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The profile, and the Recognizer for --model DIR or models/NAME."""
    from solver.profiles import ProfileRegistry
    from solver.recognizers import Recognizer

    profile = ProfileRegistry(args.profiles_dir).load(args.site)
    model_dir = Path(args.model) if args.model else _model_for(args, profile.name)
    return profile, Recognizer(model_dir, profile)


def _count(text: str) -> int:
    """An argument that must be a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is too few: give at least 1")
    return value


def _port(text: str) -> int:
    """A TCP port to listen on: 0-65535, where 0 lets the system pick a free one."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port (use 0-65535; 0 picks a free one)")
    return value


#: the flags of a hand-made recipe, with their defaults; giving any of them means --recipe manual
MANUAL_TRAIN_FLAGS = {"synthetic": 20_000, "real_fraction": 0.5, "start_from": None, "epochs": 30,
                      "epoch_steps": 0, "augment_lookalikes": 0.0, "batch_size": 64,
                      "patience": 6, "emphasise": None, "resume": False}


def _train_recipe(args: argparse.Namespace) -> str:
    """auto, real, general or manual: what --recipe says, else what the other flags imply."""
    from solver.errors import UsageError

    given = [name for name, default in MANUAL_TRAIN_FLAGS.items()
             if getattr(args, name) not in (None, default if name == "resume" else None)]
    if args.recipe is None:
        return "auto" if args.data and not given and args.pipeline != "segment" else "manual"
    if args.recipe != "manual" and given:
        flags = ", ".join("--" + {"start_from": "from", "emphasise": "emphasise"}.get(
            name, name.replace("_", "-")) for name in given)
        raise UsageError(f"--recipe {args.recipe} chooses its own settings, so {flags} would be "
                         "ignored: leave them out, or use --recipe manual")
    if args.recipe != "manual" and not args.data:
        raise UsageError(f"--recipe {args.recipe} trains on labelled images: give --data DIR "
                         "(or use --recipe manual for look-alikes only)")
    return args.recipe


def cmd_train(args: argparse.Namespace) -> int:
    _load_tensorflow(args)
    from solver.profiles import ProfileRegistry
    from solver.training.train import TrainOptions, train

    profile = ProfileRegistry(args.profiles_dir).load(args.site)
    recipe = _train_recipe(args)
    for name, default in MANUAL_TRAIN_FLAGS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    options = TrainOptions(
        profile=profile, data=[Path(d) for d in args.data], pipeline=args.pipeline,
        synthetic=args.synthetic, real_fraction=args.real_fraction,
        start_from=_start_model(args), epochs=args.epochs,
        time_budget_s=args.time_budget * 60 if args.time_budget else None,
        batch_size=args.batch_size, seed=args.seed,
        out=Path(args.out) if args.out else _models_dir(args) / profile.name,
        resume=args.resume, patience=args.patience, quantize=args.quantize,
        workers=args.workers, emphasis=args.emphasise, pseudo_labels=args.pseudo_labels,
        augment_lookalikes=args.augment_lookalikes, max_steps_per_epoch=args.epoch_steps,
        input_height=args.input_height, learning_rate=args.learning_rate,
        precision=args.precision, validation_synthetic=args.validation_lookalikes)
    report = lambda line: print(line, flush=True)  # noqa: E731
    if recipe == "manual":
        if args.unlabelled:
            from solver.errors import UsageError

            raise UsageError("--unlabelled is for the recipe choice (leave out the manual flags, "
                             "or give --recipe auto); --recipe manual trains on --data only")
        train(options, report=report)
        return 0
    from solver.training.recipes import CANDIDATES, auto_train

    if options.time_budget_s is None:
        options.time_budget_s = 15 * 60
    general = _model_for(args, "general")
    if recipe == "general" and not (general / "metadata.json").is_file():
        from solver.errors import UsageError

        raise UsageError(f"--recipe general starts from {general}, which is not there "
                         "(give --models-dir, or `make general-model`)")
    auto_train(options, unlabelled=[Path(d) for d in args.unlabelled], report=report,
               candidates=CANDIDATES if recipe == "auto" else (recipe,), general=general)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Read each file and print its reading as soon as it is read.

    A file that cannot be read is named on stderr with why, and the others are
    still read; the exit status is then 1. Under ``--json`` it is a record
    ``{"file", "error"}`` in the same list (one file: one object, as on success).
    """
    from solver.imaging import ImageError, read_image

    _, recognizer = _site_model(args)
    results: list[dict[str, object]] = []
    failed = 0
    for path in args.files:
        try:
            # read_image takes only a regular file, at most the limit for one captcha
            reading = recognizer.read(read_image(path))
        except ImageError as error:
            failed += 1
            message = str(error) if str(error).startswith(path) else f"{path}: {error}"
            print(f"error: {message}", file=sys.stderr, flush=True)
            results.append({"file": path, "error": message})
            continue
        row = {"file": path, "text": reading.text, "confidence": round(reading.confidence, 4),
               "ms": round(reading.milliseconds, 3)}
        results.append(row)
        if not args.json:
            print(f"{path}\t{reading.text}\t{row['confidence']:.4f}", flush=True)
    if args.json:
        print(json.dumps(results if len(results) > 1 else results[0], indent=2))
    if failed and len(args.files) > 1:
        print(f"error: {failed} of {len(args.files)} files could not be read (see above)",
              file=sys.stderr)
    return 1 if failed else 0


def cmd_eval(args: argparse.Namespace) -> int:
    from solver.dataset import check_labels, read_labelled_folder
    from solver.evaluate import evaluate, write_report

    if args.curve:
        return _eval_curve(args)
    profile, recognizer = _site_model(args)
    samples = _corrected([s for folder in args.data for s in read_labelled_folder(folder)], args)
    fmt = profile.format
    labels = check_labels(samples, fmt.charset, fmt.min_length, fmt.max_length, fmt.case_sensitive)
    if labels.refused_count:
        for line in labels.lines():
            print(line)
    result = evaluate(recognizer, labels.kept)
    print(result.table())
    if args.report:
        history_file = recognizer.model_dir / "history.json"
        history = (json.loads(history_file.read_text())["history"]
                   if history_file.is_file() else None)
        written = write_report(result, args.report, f"{profile.name}: {recognizer.model_dir} on "
                               f"{', '.join(args.data)}", history)
        print(f"report: {', '.join(str(p) for p in written)}")
    return 0


# --------------------------------------------------------------------- serve


def cmd_serve(args: argparse.Namespace) -> int:
    from solver.api import build_api_app
    from solver.demo_site import SiteServer
    from solver.errors import UsageError
    from solver.profiles import ProfileRegistry

    if args.max_bytes < 1:
        raise UsageError(f"--max-bytes {args.max_bytes}: give a positive number of bytes")
    registry = ProfileRegistry(args.profiles_dir)
    models_dir = _models_dir(args)
    app = build_api_app(registry, models_dir, max_bytes=args.max_bytes, host=args.host,
                        allowed_hosts=args.allow_host or ())
    server = SiteServer(app, host=args.host, port=args.port, access_log=args.verbose)
    names = registry.names()
    trained = [name for name in names if (find_model(name, models_dir) / "metadata.json").is_file()]
    print(f"{len(names)} sites in {registry.directory}/ and the shipped ones, {len(trained)} with a "
          f"model in {models_dir}/ or shipped "
          f"({', '.join(trained) or 'none: train one with `solver train --site NAME`'})")
    print(f"HTTP API on {server.url}/ (POST {server.url}/v1/sites/NAME/read with the image; "
          f"GET {server.url}/v1/sites). Ctrl-C stops it.", flush=True)
    return _serve_foreground(server, args.host, "use this API")


def _corrected(samples: list, args: argparse.Namespace) -> list:
    """The samples with ``--corrections`` applied (label fixes by file name)."""
    from solver.dataset import apply_corrections, read_corrections

    if not args.corrections:
        return samples
    fixes = read_corrections(args.corrections)
    samples, changed = apply_corrections(samples, fixes)
    print(f"corrections: {changed} labels fixed from {args.corrections}")
    return samples


def _eval_curve(args: argparse.Namespace) -> int:
    _load_tensorflow(args)
    from solver.dataset import check_labels, read_labelled_folder
    from solver.profiles import ProfileRegistry
    from solver.training.curve import CurveOptions, curve_table, learning_curve, parse_sizes, plot_curve

    profile = ProfileRegistry(args.profiles_dir).load(args.site)
    fmt = profile.format
    samples = _corrected([s for folder in args.data for s in read_labelled_folder(folder)], args)
    labels = check_labels(samples, fmt.charset, fmt.min_length, fmt.max_length, fmt.case_sensitive)
    for line in labels.lines():
        print(line)
    out = Path(args.report or Path("reports") / f"{profile.name}-curve")
    options = CurveOptions(sizes=parse_sizes(args.curve), test_fraction=args.test_fraction,
                           seed=args.seed, synthetic=args.synthetic,
                           start_from=Path(args.start_from) if args.start_from else None,
                           steps=args.steps, emphasis=None)
    points = learning_curve(profile, labels.kept, options, out, report=lambda line: print(line, flush=True))
    print(curve_table(points))
    plot = plot_curve({"this run": points}, out / "curve.png",
                      f"{profile.name}: accuracy against labels")
    print(f"report: {out / 'curve.json'}, {plot}; file lists in {out / 'splits'}")
    return 0


# --------------------------------------------------------------------- synth


def cmd_synth_fit(args: argparse.Namespace) -> int:
    from solver.errors import UsageError
    from solver.profiles import ProfileRegistry
    from solver.synthfit import fit_look, load_sample, synthetic_block, synthetic_data
    from solver.synthfit import update_profile_file

    if args.evaluate < 4:
        raise UsageError(f"--evaluate {args.evaluate}: draw at least 4 look-alikes per trial")
    profile = ProfileRegistry(args.profiles_dir).load(args.site)
    if profile.synthetic.variants:
        raise UsageError(f"{profile.source or profile.name}: synthetic.variants is set; the fit finds "
                         "one look (fit a copy of the profile without variants, then add its "
                         "settings to the list as a variant)")
    images, labels = load_sample(args.data, args.sample, args.seed)
    fmt = profile.format
    labels = [label if fmt.label_problem(label) is None else "" for label in labels]
    base = profile.source.parent if profile.source else None
    print(f"{profile.name}: fitting look-alikes to {len(images)} images of {args.data}",
          flush=True)
    def progress(line: str) -> None:
        if args.verbose:
            print(f"  {line}", flush=True)

    result = fit_look(images, labels, profile.synthetic, fmt.charset, fmt.length,
                      fonts=args.font or None, fonts_base=base, evaluation_images=args.evaluate,
                      seed=args.seed, progress=progress, case_sensitive=fmt.case_sensitive)
    worst = ", ".join(f"{name} {value:.1f}" for name, value in result.worst)
    print(f"distance to the real images (0: as close as they are to their own average): "
          f"{result.score_before:.2f} with the profile's settings, {result.score_after:.2f} "
          f"fitted; furthest apart: {worst} ({result.seconds:.0f} s)")
    data = synthetic_data(result.settings, keep=("width", "height", "fonts", "font_sizes"))
    print("\n".join(synthetic_block(data)))
    if args.write:
        if profile.source is None:
            raise UsageError("--write needs a profile file (give --site NAME or a .yaml path)")
        changes = update_profile_file(profile.source, result.settings)
        print(f"wrote {profile.source}: " + ("; ".join(changes) if changes else "no changes"))
    else:
        print(f"(not written: add --write to put these into {profile.source or 'the profile'})")
    return 0


def cmd_synth_preview(args: argparse.Namespace) -> int:
    import random

    import numpy as np
    from PIL import Image

    from solver.drawing import CaptchaDrawer, random_text
    from solver.errors import UsageError
    from solver.profiles import ProfileRegistry
    from solver.synthfit import load_sample, preview_sheet

    if args.n < 1:
        raise UsageError(f"-n {args.n}: show at least 1 row")
    profile = ProfileRegistry(args.profiles_dir).load(args.site)
    out = Path(args.out or f"{profile.name}-preview.png")
    if out.suffix.lower() != ".png":
        raise UsageError(f"--out {out}: the sheet is a PNG; give a path ending in .png")
    fmt = profile.format
    real: list[tuple[np.ndarray, str]] = []
    if args.data:
        images, labels = load_sample(args.data, args.n, args.seed)
        real = list(zip(images, labels))
    rng = random.Random(args.seed)
    texts = [label if label and fmt.label_problem(label) is None
             else random_text(rng, fmt.charset, fmt.min_length, fmt.max_length)
             for _, label in real] or [random_text(rng, fmt.charset, fmt.min_length,
                                                   fmt.max_length) for _ in range(args.n)]
    base = profile.source.parent if profile.source else None
    drawer = CaptchaDrawer.from_settings(profile.synthetic, base, seed=args.seed)
    lookalikes = [(np.asarray(drawer.image(text)), text) for text in texts]
    sheet = preview_sheet(lookalikes, real,
                          titles=(f"real: {args.data}", f"look-alike: {profile.name}"))
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(out)
    beside = f" beside {len(real)} real images" if real else ""
    print(f"{out}: {len(lookalikes)} look-alikes{beside} ({sheet.shape[1]}x{sheet.shape[0]})")
    return 0


# --------------------------------------------------------------------- demo


def cmd_demo(args: argparse.Namespace) -> int:
    from solver.demo import run_demo

    report = run_demo(style=args.style, port=args.port, headed=args.headed,
                      profiles_dir=args.profiles_dir, models_dir=str(_models_dir(args)),
                      seed=args.seed, solves=args.solves,
                      progress=(lambda line: print(line, flush=True)) if args.verbose else None)
    for line in report.lines():
        print(line)
    return 0 if report.ok else 1


# --------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="solver",
        description="Learn a website's text captcha and solve it inside Playwright.",
    )
    parser.add_argument("--version", action="version", version=f"solver {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

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

    profiles = verbs.add_parser("profiles", help="list, check and describe site profiles")
    profile_verbs = profiles.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = profile_verbs.add_parser("list", parents=[profiles_dir, models_dir],
                                       help="name, URL, pipeline, and where its model and profile come from")
    listing.set_defaults(func=cmd_profiles_list)
    check = profile_verbs.add_parser("check", help="validate profile files, printing every problem")
    check.add_argument("paths", nargs="+", metavar="PATH")
    check.set_defaults(func=cmd_profiles_check)
    schema = profile_verbs.add_parser("schema", help="print the profile format as JSON Schema")
    schema.set_defaults(func=cmd_profiles_schema)
    show = profile_verbs.add_parser("show", parents=[profiles_dir],
                                    help="print a profile with every default filled in")
    show.add_argument("--site", required=True, metavar="NAME",
                      help="profile name, or a path to a .yaml file")
    show.set_defaults(func=cmd_profiles_show)

    site = verbs.add_parser("site", help="the local synthetic captcha site")
    site_verbs = site.add_subparsers(dest="action", metavar="ACTION", required=True)
    serve = site_verbs.add_parser("serve", help="serve the site (every style; --style is the home page)")
    serve.add_argument("--style", default="example", help="style shown at / (default: example)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8765, help="port (default: 8765; 0: any free port)")
    serve.add_argument("--seed", type=int, help="make the sequence of answers reproducible")
    serve.add_argument("--lockout-after", type=_count, metavar="N",
                       help="answer HTTP 429 to a session after its first N submissions (to test "
                       "a client's respect for a site's limits)")
    serve.set_defaults(func=cmd_site_serve)
    styles = site_verbs.add_parser("styles", help="list the site's styles")
    styles.set_defaults(func=cmd_site_styles)

    browser = verbs.add_parser("browser", help="find or install the Chromium to drive")
    browser_verbs = browser.add_subparsers(dest="action", metavar="ACTION", required=True)
    which = browser_verbs.add_parser("which", help="say which Chromium would be launched")
    which.set_defaults(func=cmd_browser_which)
    install = browser_verbs.add_parser(
        "install", help="get a Chromium: Playwright's, else a system one (apt-get as root)")
    install.add_argument("--timeout", type=float, default=600, help="seconds per download step")
    install.set_defaults(func=cmd_browser_install)

    site_arg = argparse.ArgumentParser(add_help=False, parents=[profiles_dir, models_dir])
    site_arg.add_argument("--site", required=True, metavar="NAME",
                          help="profile name, or a path to a .yaml file")

    training = verbs.add_parser("train", parents=[site_arg],
                                help="train a model for a profile (needs the train extra)")
    training.add_argument("--data", action="append", default=[], metavar="DIR",
                          help="labelled folder (labels.csv or label-in-file-name); repeatable")
    training.add_argument("--pseudo-labels", action="store_true",
                          help="also train on pseudo-labels (source pseudo in labels.csv); "
                          "validation still uses real labels only")
    training.add_argument("--pipeline", choices=("ctc", "segment"),
                          help="default: the profile's model.pipeline")
    training.add_argument(
        "--recipe", choices=("auto", "real", "general", "manual"), default=None,
        help="auto (the default with --data): hold out part of the labels, try each recipe on "
        "them within the time budget (real labels only; fine-tuning the general model; then "
        "pseudo-labels of unlabelled images), keep the best; real or general: that recipe "
        "alone, with the same choice of pseudo-labels; manual: exactly the flags below "
        "(the default without --data, and whenever one of the flags below is given)")
    training.add_argument("--unlabelled", action="append", default=[], metavar="DIR",
                          help="images of the site without labels, for the recipe choice's "
                          "pseudo-labels (a dataset's own unlabelled images count too); repeatable")
    training.add_argument("--synthetic", type=int, default=None, metavar="N",
                          help="look-alike captchas to draw (0: none; default 20000)")
    training.add_argument("--real-fraction", type=float, default=None,
                          help="share of each batch taken from real images (default 0.5)")
    training.add_argument("--from", dest="start_from", metavar="MODEL_DIR",
                          help="fine-tune from this model folder, or a model's name (general: the "
                          "shipped general model)")
    training.add_argument("--epochs", type=int, default=None, help="default 30")
    training.add_argument("--time-budget", type=float, metavar="MINUTES",
                          help="the whole run's time, drawing look-alikes included: stop (keeping "
                          "the best epoch) when the next epoch would pass it (default 15 with "
                          "the recipe choice; none with --recipe manual)")
    training.add_argument("--epoch-steps", type=int, default=None, metavar="N",
                          help="at most N batches an epoch, each epoch a fresh random part of a "
                          "large set (0: the whole set; default)")
    training.add_argument("--augment-lookalikes", type=float, default=None, metavar="STRENGTH",
                          help="warp look-alikes afresh every epoch, so a set seen many times "
                          "is not learnt by heart; it blurs fine detail (0 vs O in the captcha "
                          "package's look lost accuracy), so 0, off, is the default")
    training.add_argument("--input-height", type=int, default=32, metavar="ROWS",
                          help="the model's input rows (default 32; the width keeps the aspect)")
    training.add_argument("--learning-rate", type=float, default=3e-3,
                          help="peak learning rate of the warm-up and cosine schedule")
    training.add_argument("--validation-lookalikes", type=_count, default=1000, metavar="N",
                          help="fresh look-alikes that pick the best epoch when there are no real "
                          "images to hold out (default 1000; more gives a steadier pick)")
    training.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                          help="bfloat16: the layers compute in bfloat16, faster where the CPU "
                          "has it natively (AVX512-BF16, AMX) or on a GPU; the saved model is "
                          "float32 either way (default float32)")
    training.add_argument("--batch-size", type=int, default=None, help="default 64")
    training.add_argument("--patience", type=int, default=None,
                          help="stop after this many epochs without a better validation score "
                          "(default 6)")
    training.add_argument("--seed", type=int, default=0)
    training.add_argument("--out", metavar="DIR", help="model folder (default: models/NAME)")
    training.add_argument("--resume", action="store_true",
                          help="continue from the last finished epoch in OUT/checkpoint")
    training.add_argument("--quantize", action="store_true",
                          help="int8 weights in the light model (smaller, faster; check accuracy)")
    training.add_argument("--workers", type=int, help="processes drawing look-alikes")
    training.add_argument("--emphasise", metavar="CHARS[:WEIGHT]",
                          help="draw these characters WEIGHT times as often in look-alikes "
                          "(default weight 3), e.g. 0O:3 for a pair the model confuses")
    training.set_defaults(func=cmd_train)

    model_arg = argparse.ArgumentParser(add_help=False)
    model_arg.add_argument("--model", metavar="DIR", help="model folder (default: models/NAME)")
    predict = verbs.add_parser("predict", parents=[site_arg, model_arg],
                               help="read captcha image files: FILE<TAB>TEXT<TAB>CONFIDENCE")
    predict.add_argument("files", nargs="+", metavar="FILE")
    predict.add_argument("--json", action="store_true", help="JSON output")
    predict.set_defaults(func=cmd_predict)
    evaluation = verbs.add_parser("eval", parents=[site_arg, model_arg],
                                  help="accuracy of a model on labelled folders")
    evaluation.add_argument("--data", action="append", required=True, metavar="DIR",
                            help="labelled folder; repeatable")
    evaluation.add_argument("--report", metavar="DIR",
                            help="write metrics.json, report.md and PNG plots there")
    evaluation.add_argument("--corrections", metavar="CSV",
                            help="file,label rows that fix wrong labels of the data (by file name)")
    evaluation.add_argument("--curve", metavar="N,N,...",
                            help="learning curve: train on this many labels each (e.g. 50,100,200,500) "
                            "and read the same held-out test images (needs the train extra)")
    evaluation.add_argument("--test-fraction", type=float, default=0.2,
                            help="with --curve: share of the labels held out for testing (default 0.2)")
    evaluation.add_argument("--seed", type=int, default=0, help="with --curve: the split's seed")
    evaluation.add_argument("--synthetic", type=int, default=0, metavar="N",
                            help="with --curve: look-alikes mixed in at every point (default 0)")
    evaluation.add_argument("--from", dest="start_from", metavar="MODEL_DIR",
                            help="with --curve: fine-tune every point from this model (transfer)")
    evaluation.add_argument("--steps", type=int, default=1500,
                            help="with --curve: optimiser steps per point (default 1500)")
    evaluation.set_defaults(func=cmd_eval)

    dataset = verbs.add_parser("dataset", help="stats, import, export, split and pre-label a "
                               "site's dataset")
    dataset_verbs = dataset.add_subparsers(dest="action", metavar="ACTION", required=True)
    site_data = argparse.ArgumentParser(add_help=False, parents=[profiles_dir])
    site_data.add_argument("--site", required=True, metavar="NAME",
                           help="profile name (its format checks the labels), or a .yaml path")
    site_data.add_argument("--data", metavar="DIR", help="dataset folder (default: data/NAME)")
    stats = dataset_verbs.add_parser("stats", parents=[site_data], help="counts and characters")
    stats.set_defaults(func=cmd_dataset_stats)
    imports = dataset_verbs.add_parser(
        "import", parents=[site_data],
        help="add a labels.csv folder or a label-in-file-name folder")
    imports.add_argument("folder", metavar="FOLDER")
    imports.add_argument("--source", default="import", help="recorded as the labels' source")
    imports.add_argument("--verified", action="store_true", help="mark the labels as verified")
    imports.add_argument("--force", action="store_true", help="replace labels that differ")
    imports.add_argument("--quiet", action="store_true", help="no progress bar")
    imports.set_defaults(func=cmd_dataset_import)
    prune = dataset_verbs.add_parser(
        "prune", parents=[site_data],
        help="drop the rows whose image is missing from the folder (their labels go with them)")
    prune.add_argument("--yes", action="store_true",
                       help="drop them (without it, only says how many would go)")
    prune.set_defaults(func=cmd_dataset_prune)
    export = dataset_verbs.add_parser("export", parents=[site_data],
                                      help="write the labelled images to a folder")
    export.add_argument("out", metavar="OUT")
    export.add_argument("--layout", choices=("csv", "names"), default="csv",
                        help="csv: images + labels.csv; names: images named by their label")
    export.add_argument("--verified-only", action="store_true")
    export.set_defaults(func=cmd_dataset_export)
    split = dataset_verbs.add_parser(
        "split", parents=[site_data],
        help="seeded train/test split as two labelled folders (OUT/train, OUT/test)")
    split.add_argument("--out", required=True, metavar="DIR")
    split.add_argument("--test", type=float, default=0.2, help="test fraction (default 0.2)")
    split.add_argument("--seed", type=int, default=0)
    split.add_argument("--verified-only", action="store_true")
    split.set_defaults(func=cmd_dataset_split)
    reading = argparse.ArgumentParser(add_help=False, parents=[site_data, models_dir])
    reading.add_argument(
        "--reader", metavar="SPEC",
        help="what reads the images: site (models/NAME), general (models/general, the shipped "
        "general model), ddddocr (needs the prelabel extra), or a model folder; readings are "
        "mapped into the profile's format (default: site if it has a model, else ddddocr if "
        "installed, else general)")
    reading.add_argument("--limit", type=int, metavar="N", help="read at most N images")
    reading.add_argument("--quiet", action="store_true", help="no progress bar")
    suggest = dataset_verbs.add_parser(
        "suggest", parents=[reading],
        help="store a reader's proposals beside the unlabelled images, for `solver label`")
    suggest.add_argument("--all", action="store_true",
                         help="read every image (labelled ones, and ones with a suggestion, too); "
                         "labels are never changed")
    suggest.set_defaults(func=cmd_dataset_suggest)
    pseudo = dataset_verbs.add_parser(
        "pseudo-label", parents=[reading],
        help="label unlabelled images with confident readings (source pseudo; training uses "
        "them only with --pseudo-labels)")
    pseudo.add_argument("--min-confidence", type=float, default=0.98, metavar="P",
                        help="readings at least this sure become pseudo-labels (default 0.98)")
    pseudo.set_defaults(func=cmd_dataset_pseudo_label)

    label = verbs.add_parser(
        "label", parents=[site_data, models_dir, model_arg],
        help="a local web page to label a dataset's images by hand (Enter saves, Esc skips, "
             "Ctrl+Z undoes)")
    label.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    label.add_argument("--allow-host", action="append", metavar="NAME",
                       help="also answer requests for this host name (repeatable; *.example.com "
                       "for a domain); only 127.0.0.1, localhost, [::1] and --host are answered "
                       "otherwise, which keeps other sites' pages out (DNS rebinding)")
    label.add_argument("--port", type=_port, default=8766, help="port (default: 8766; 0: any free port)")
    label.set_defaults(func=cmd_label)

    # the verbs that drive a browser against the site
    browsing = argparse.ArgumentParser(add_help=False)
    browsing.add_argument("--headed", action="store_true", help="show the browser window")
    browsing.add_argument("--timeout", type=float, default=10, metavar="SECONDS",
                          help="per page action (default 10)")
    browsing.add_argument("--connect", metavar="URL",
                          help="use a remote browser: ws://... (playwright launch-server) or "
                          "http://HOST:PORT (Chromium's --remote-debugging-port)")
    solving = verbs.add_parser(
        "solve", parents=[profiles_dir, models_dir, browsing],
        help="open the profile's page, read the captcha, submit it, check, retry")
    solving.add_argument("--site", required=True, metavar="NAME",
                         help="profile name, or a path to a .yaml file")
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
        "collect", parents=[profiles_dir, models_dir, browsing],
        help="grab captchas from the profile's site into a dataset (data/NAME)")
    collecting.add_argument("--site", required=True, metavar="NAME",
                            help="profile name, or a path to a .yaml file")
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
        "learn", parents=[profiles_dir, models_dir, browsing],
        help="learn a site from the site itself: rounds of collection with the site confirming "
        "each answer, and training, until --target")
    learning.add_argument("--site", required=True, metavar="NAME",
                          help="profile name, or a path to a .yaml file")
    learning.add_argument("--data", metavar="DIR", help="dataset folder (default: data/NAME); "
                          "the run's state is kept in DIR/learn/")
    learning.add_argument("--target", type=float, default=0.95, metavar="SHARE",
                          help="stop when a round reads this share of fresh captchas right "
                          "(default 0.95)")
    learning.add_argument("--per-round", type=_count, default=200, metavar="N",
                          help="captchas read in each round (default 200)")
    learning.add_argument("--label-budget", type=_count, metavar="N",
                          help="the most answers to submit in all (default: no limit)")
    learning.add_argument("--time-budget", type=float, default=30, metavar="MIN",
                          help="minutes for the whole run, every session counted (default 30; "
                          "0: no limit)")
    learning.add_argument("--rate", type=float, default=1.0, metavar="PER_SECOND",
                          help="the most submissions a second (default 1)")
    learning.add_argument("--round-minutes", type=float, default=5, metavar="MIN",
                          help="the most minutes one round's training takes (default 5)")
    learning.add_argument("--start", default="auto", metavar="SPEC",
                          help="what reads the first round: auto (the site's model, else the "
                          "dataset's labels, else ddddocr, else general), site, ddddocr, general "
                          "or a model folder")
    learning.add_argument("--restart", action="store_true",
                          help="forget the run's state and start anew (the dataset stays)")
    learning.add_argument("--url", help="learn from this URL instead of the profile's")
    learning.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    learning.set_defaults(func=cmd_learn)

    api = verbs.add_parser(
        "serve", parents=[profiles_dir, models_dir],
        help="HTTP API: POST /v1/sites/NAME/read with an image answers its text (JSON)")
    api.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    api.add_argument("--allow-host", action="append", metavar="NAME",
                     help="also answer requests for this host name (repeatable; *.example.com "
                     "for a domain); only 127.0.0.1, localhost, [::1] and --host are answered "
                     "otherwise, which keeps other sites' pages out (DNS rebinding)")
    api.add_argument("--port", type=_port, default=8080, help="port (default: 8080; 0: any free port)")
    api.add_argument("--max-bytes", type=int, default=2 * 1024 * 1024, metavar="N",
                     help="largest request body; larger ones get 413 (default: 2 MiB)")
    api.set_defaults(func=cmd_serve)

    synth = verbs.add_parser("synth", help="fit look-alike settings to a site's own captchas, "
                             "and show them side by side")
    synth_verbs = synth.add_subparsers(dest="action", metavar="ACTION", required=True)
    fit = synth_verbs.add_parser(
        "fit", parents=[profiles_dir],
        help="measure the site's images and choose synthetic settings that resemble them")
    fit.add_argument("--site", required=True, metavar="NAME",
                     help="profile name, or a path to a .yaml file")
    fit.add_argument("--data", required=True, metavar="DIR",
                     help="labelled folder of the site's captchas (labels.csv or label-in-file-name)")
    fit.add_argument("--write", action="store_true",
                     help="write the settings into the profile's synthetic section (the rest of "
                     "the file is kept, comments included)")
    fit.add_argument("--sample", type=int, default=96, metavar="N",
                     help="real images to measure (default 96)")
    fit.add_argument("--evaluate", type=int, default=16, metavar="N",
                     help="look-alikes drawn per trial setting (default 16; more: steadier, slower)")
    fit.add_argument("--font", action="append", metavar="TTF",
                     help="font to try; repeatable (default: the captcha package's font and the "
                     "system's upright .ttf fonts)")
    fit.add_argument("--seed", type=int, default=0)
    fit.set_defaults(func=cmd_synth_fit)
    preview = synth_verbs.add_parser(
        "preview", parents=[profiles_dir],
        help="a PNG sheet of real images and look-alikes side by side, to judge the fit")
    preview.add_argument("--site", required=True, metavar="NAME",
                         help="profile name, or a path to a .yaml file")
    preview.add_argument("--data", metavar="DIR",
                         help="labelled folder of the site's captchas for the real column")
    preview.add_argument("--out", metavar="PNG", help="sheet to write (default: NAME-preview.png)")
    preview.add_argument("-n", type=int, default=8, metavar="N", help="rows (default 8)")
    preview.add_argument("--seed", type=int, default=0)
    preview.set_defaults(func=cmd_synth_preview)

    demo = verbs.add_parser("demo", parents=[profiles_dir, models_dir],
                            help="run the local site and drive it in a real browser")
    demo.add_argument("--style", default="example", help="site style to open (default: example)")
    demo.add_argument("--port", type=_port, default=0, help="site port (default: any free port)")
    demo.add_argument("--seed", type=int, help="reproducible answers")
    demo.add_argument("--headed", action="store_true", help="show the browser window")
    demo.add_argument("--solves", type=int, default=20,
                      help="captchas to solve with the shipped model (default 20; 0: none)")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
