"""`solver dataset` (stats, import, prune, export, split, suggest, pseudo-label) and
`solver label` (the labelling page)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from solver.cli._common import (Parents, Verbs, load_profile, models_dir, open_store, port,
                                resolve, serve_foreground)

if TYPE_CHECKING:
    from solver.prelabel import PrelabelReader
    from solver.profiles import SiteProfile


def cmd_dataset_stats(args: argparse.Namespace) -> int:
    from solver.dataset import PSEUDO_SOURCE, label_counts

    store = open_store(args, read_only=True)
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

    store = open_store(args)
    total = len(read_labelled_folder(args.folder, contained=True))  # refuses a bad folder first
    with tqdm(total=total, unit="img", desc="import", disable=args.quiet or None,
              dynamic_ncols=True) as bar:
        counts = store.import_folder(args.folder, source=args.source, verified=args.verified,
                                     force=args.force, progress=bar.update)
    print(f"{store.root}: " + ", ".join(f"{n} {what}" for what, n in counts.items()))
    return 1 if counts["refused"] or counts["conflicts"] else 0


def cmd_dataset_prune(args: argparse.Namespace) -> int:
    store = open_store(args)
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
    store = open_store(args, read_only=True)
    count = store.export(args.out, layout=args.layout, verified_only=args.verified_only)
    print(f"{count} labelled images written to {args.out} ({args.layout} layout)")
    return 0


def cmd_dataset_split(args: argparse.Namespace) -> int:
    from solver.dataset import read_labelled_folder, write_split

    store = open_store(args, read_only=True)
    train, test = write_split(store.samples(args.verified_only), args.out, args.test, args.seed)
    print(f"train: {train} ({len(read_labelled_folder(train))} images); "
          f"test: {test} ({len(read_labelled_folder(test))} images); seed {args.seed}")
    return 0


def _open_reader(args: argparse.Namespace, profile: SiteProfile) -> PrelabelReader:
    """--reader, else the default reader for the site (its model, ddddocr, or general)."""
    from solver.prelabel import default_reader_spec, open_reader

    spec = args.reader or default_reader_spec(profile, models_dir(args))
    return open_reader(spec, profile, models_dir(args))


def cmd_dataset_suggest(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from solver.reading import suggest

    profile = load_profile(args)
    reader = _open_reader(args, profile)  # first: a missing reader changes nothing
    store = open_store(args, profile)
    entries = [e for e in store.present() if args.all or (e.needs_label and not e.suggestion)]
    if args.limit is not None:
        entries = entries[:args.limit]
    if not entries:
        print(f"{store.root}: nothing to read: no unlabelled image without a suggestion "
              "(--all reads every image again)")
        return 0
    with tqdm(total=len(entries), unit="img", desc="suggest", disable=args.quiet or None,
              dynamic_ncols=True) as bar:
        run = suggest(store, reader, entries, progress=bar.update)
    print(f"{store.root}: read {run.tally.count} of {len(entries)} images with "
          f"{reader.description} in {run.seconds:.1f} s; {run.stored} suggestions stored")
    for line in run.tally.lines():
        print("  " + line)
    if run.interrupted:
        print("interrupted: the suggestions above are saved; "
              + ("--all reads every image again" if args.all
                 else "run the same command again to continue"), file=sys.stderr)
        return 130
    print(f"next: `solver label --site {profile.name}` shows them, least confident first")
    return 0


def cmd_dataset_pseudo_label(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from solver.errors import UsageError
    from solver.reading import pseudo_label

    if not 0.0 < args.min_confidence <= 1.0:
        raise UsageError(f"--min-confidence {args.min_confidence}: use a number above 0 and "
                         "at most 1, e.g. 0.98")
    profile = load_profile(args)
    reader = _open_reader(args, profile)  # first: a missing reader changes nothing
    store = open_store(args, profile)
    entries = [e for e in store.present() if e.needs_label]
    if args.limit is not None:
        entries = entries[:args.limit]
    with tqdm(total=len(entries), unit="img", desc="pseudo-label", disable=args.quiet or None,
              dynamic_ncols=True) as bar:
        run = pseudo_label(store, reader, entries, args.min_confidence, progress=bar.update)
    print(f"{store.root}: read {run.tally.count} of {len(entries)} unlabelled images with "
          f"{reader.description} in {run.seconds:.1f} s")
    print(f"  pseudo-labelled {run.stored} (confidence >= {args.min_confidence:g}); "
          f"{run.below} kept as suggestions only (less sure, or no confidence)")
    for line in run.tally.lines():
        print("  " + line)
    if run.interrupted:
        print("interrupted: the labels above are saved; run the same command again to continue",
              file=sys.stderr)
        return 130
    print(f"next: `solver train --site {profile.name} --data {store.root} --pseudo-labels` "
          "trains on them too (without --pseudo-labels training leaves them out)")
    return 0


def cmd_label(args: argparse.Namespace) -> int:
    from solver import shipped
    from solver.artifacts import METADATA_FILE
    from solver.labeller import build_label_app
    from solver.server import SiteServer

    site = resolve(args)
    store = open_store(args, site.profile)
    # no model yet is normal for a site's first labels: the page then has no pre-fill
    has_model = bool(args.model) or (site.model_dir / METADATA_FILE).is_file()
    recognizer = site.load_recognizer(warm_up=False) if has_model else None
    app = build_label_app(store, site.profile, recognizer,  # reads the images without a suggestion
                          host=args.host, allowed_hosts=args.allow_host or ())
    server = SiteServer(app, host=args.host, port=args.port, access_log=args.verbose)
    stats = store.stats()
    print(f"{store.root}: {stats['images']} images, {stats['labelled']} labelled, "
          f"{stats['unlabelled']} to label "
          + (f"({stats['suggested']} with a reading of {shipped.describe(site.model_dir)})"
             if recognizer else f"(no model in {site.model_dir}: no suggestions)"))
    print(f"Labelling page on {server.url}/ (Enter saves, Esc skips, Ctrl+Z undoes the last "
          "save). Ctrl-C stops it.", flush=True)
    return serve_foreground(server, args.host, "change this dataset's labels")


def add_verbs(verbs: Verbs, parents: Parents) -> None:
    """`solver dataset ...` and `solver label`."""
    dataset = verbs.add_parser("dataset", help="stats, import, export, split and pre-label a "
                               "site's dataset")
    dataset_verbs = dataset.add_subparsers(dest="action", metavar="ACTION", required=True)
    site_data = parents.site_data
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
    reading = argparse.ArgumentParser(add_help=False, parents=[site_data, parents.models_dir])
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
        "label", parents=[site_data, parents.models_dir, parents.model, parents.listening],
        help="a local web page to label a dataset's images by hand (Enter saves, Esc skips, "
             "Ctrl+Z undoes)")
    label.add_argument("--port", type=port, default=8766, help="port (default: 8766; 0: any free port)")
    label.set_defaults(func=cmd_label)
