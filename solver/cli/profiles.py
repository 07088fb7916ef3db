"""`solver profiles`: list, check, show and describe site profiles."""

from __future__ import annotations

import argparse
import json
from solver.cli._common import Parents, Verbs, load_profile, model_for, models_dir
from solver.errors import SolverError


def cmd_profiles_list(args: argparse.Namespace) -> int:
    from solver import shipped
    from solver.artifacts import METADATA_FILE
    from solver.profiles import ProfileRegistry

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
        model = model_for(args, name)
        where = ("no" if not (model / METADATA_FILE).is_file()
                 else shipped.LABEL if shipped.is_shipped(model) else str(model))
        rows.append((name, profile.url, profile.model.pipeline, where, source))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    print(f"(looked in {registry.directory}/ and {models_dir(args)}/, then the {shipped.LABEL} "
          f"ones in {shipped.root()}/; a name in the former shadows the {shipped.LABEL} one)")
    return 1 if broken else 0


def cmd_profiles_check(args: argparse.Namespace) -> int:
    from solver.errors import ProfileError
    from solver.profiles import load_profile as load_profile_file

    failed = 0
    for path in args.paths:
        try:
            load_profile_file(path)
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
    profile = load_profile(args)
    print(f"# {profile.source}" if profile.source else "", end="\n" if profile.source else "")
    print(profile.to_yaml(), end="")
    return 0


def add_verbs(verbs: Verbs, parents: Parents) -> None:
    """`solver profiles list|check|schema|show`."""
    profiles = verbs.add_parser("profiles", help="list, check and describe site profiles")
    profile_verbs = profiles.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = profile_verbs.add_parser(
        "list", parents=[parents.profiles_dir, parents.models_dir],
        help="name, URL, pipeline, and where its model and profile come from")
    listing.set_defaults(func=cmd_profiles_list)
    check = profile_verbs.add_parser("check", help="validate profile files, printing every problem")
    check.add_argument("paths", nargs="+", metavar="PATH")
    check.set_defaults(func=cmd_profiles_check)
    schema = profile_verbs.add_parser("schema", help="print the profile format as JSON Schema")
    schema.set_defaults(func=cmd_profiles_schema)
    show = profile_verbs.add_parser("show", parents=[parents.profiles_dir, parents.site],
                                    help="print a profile with every default filled in")
    show.set_defaults(func=cmd_profiles_show)
