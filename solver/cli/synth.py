"""`solver synth fit` (look-alike settings fitted to a site's captchas) and `solver synth
preview` (the two side by side)."""

from __future__ import annotations

import argparse
from pathlib import Path

from solver.cli._common import Parents, Verbs, load_profile


def cmd_synth_fit(args: argparse.Namespace) -> int:
    from solver.errors import UsageError
    from solver.synth import fit_look, load_sample, synthetic_block, synthetic_data
    from solver.synth import update_profile_file

    if args.evaluate < 4:
        raise UsageError(f"--evaluate {args.evaluate}: draw at least 4 look-alikes per trial")
    profile = load_profile(args)
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
    from solver.errors import UsageError
    from solver.synth_sheet import write_preview

    if args.n < 1:
        raise UsageError(f"-n {args.n}: show at least 1 row")
    profile = load_profile(args)
    out = Path(args.out or f"{profile.name}-preview.png")
    if out.suffix.lower() != ".png":
        raise UsageError(f"--out {out}: the sheet is a PNG; give a path ending in .png")
    sheet = write_preview(profile, out, args.data, rows=args.n, seed=args.seed)
    beside = f" beside {sheet.real} real images" if sheet.real else ""
    print(f"{out}: {sheet.lookalikes} look-alikes{beside} ({sheet.width}x{sheet.height})")
    return 0


def add_verbs(verbs: Verbs, parents: Parents) -> None:
    """`solver synth fit|preview`."""
    synth = verbs.add_parser("synth", help="fit look-alike settings to a site's own captchas, "
                             "and show them side by side")
    synth_verbs = synth.add_subparsers(dest="action", metavar="ACTION", required=True)
    fit = synth_verbs.add_parser(
        "fit", parents=[parents.profiles_dir, parents.site],
        help="measure the site's images and choose synthetic settings that resemble them")
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
        "preview", parents=[parents.profiles_dir, parents.site],
        help="a PNG sheet of real images and look-alikes side by side, to judge the fit")
    preview.add_argument("--data", metavar="DIR",
                         help="labelled folder of the site's captchas for the real column")
    preview.add_argument("--out", metavar="PNG", help="sheet to write (default: NAME-preview.png)")
    preview.add_argument("-n", type=int, default=8, metavar="N", help="rows (default 8)")
    preview.add_argument("--seed", type=int, default=0)
    preview.set_defaults(func=cmd_synth_preview)
