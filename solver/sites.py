"""From a site's name to what reads its captchas: its profile, its model folder, its reader.

Every entry point (:class:`~solver.solve.Solver`, the HTTP API, the pytest plugin,
the CLI) resolves a site here, so "which profile, which model" has one answer:

* the profile: a :class:`~solver.profiles.SiteProfile` as given, else a name (or
  a .yaml path) loaded by a :class:`~solver.profiles.ProfileRegistry`:
  ``profiles_dir``, else ``$SOLVER_PROFILES_DIR``, else ``./site_profiles``,
  then the profiles shipped in the package;
* the model folder: ``model_dir`` when given, else ``models_dir/NAME`` when it
  holds a model (``models_dir``, else ``$SOLVER_MODELS_DIR``, else ``./models``),
  else the shipped model of that name (:func:`solver.artifacts.find_model`);
* the reader: a :class:`~solver.recognizers.Recognizer` of that folder, which
  refuses a model that does not fit the profile.

::

    site = resolve_site("example")             # the shipped profile and model, unless yours shadow them
    site.profile.url, site.model_dir
    recognizer = site.load_recognizer()        # reads image bytes: recognizer.read(png).text
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from solver.artifacts import find_model
from solver.profiles import ProfileRegistry, SiteProfile
from solver.recognizers import Recognizer

#: how a caller names a site: its profile, a profile name, or a profile file's path
SiteSpec = SiteProfile | str | os.PathLike[str]


@dataclass(frozen=True)
class Site:
    """A site's profile and the folder its model is read from (loaded only when asked)."""

    profile: SiteProfile
    model_dir: Path

    def load_recognizer(self, *, warm_up: bool = True) -> Recognizer:
        """The site's reader: its model, checked against its profile.

        ``warm_up`` reads a blank image once, so that the first real reading does
        not pay for the interpreter's allocation (a solver and the API want that;
        a one-off ``solver predict`` does not)."""
        recognizer = Recognizer(self.model_dir, self.profile)  # refuses a model that does not fit
        if warm_up:
            recognizer.warm_up()
        return recognizer


def resolve_profile(profile: SiteSpec, profiles_dir: str | os.PathLike[str] | None = None, *,
                    registry: ProfileRegistry | None = None) -> SiteProfile:
    """``profile`` itself, or the profile that name or path names, loaded by ``registry``
    (else by ``ProfileRegistry(profiles_dir)``: that folder, then the shipped profiles)."""
    if isinstance(profile, SiteProfile):
        return profile
    return (registry or ProfileRegistry(profiles_dir)).load(profile)


def model_folder(name: str, model_dir: str | os.PathLike[str] | None = None,
                 models_dir: str | os.PathLike[str] | None = None) -> Path:
    """``model_dir`` when given, else where model ``name`` is found: ``models_dir/NAME`` when
    it holds a model, else the shipped one, else ``models_dir/NAME`` (so that a "no model"
    error names where ``solver train`` would write it)."""
    return Path(model_dir) if model_dir else find_model(name, models_dir)


def resolve_site(profile: SiteSpec, *, model_dir: str | os.PathLike[str] | None = None,
                 profiles_dir: str | os.PathLike[str] | None = None,
                 models_dir: str | os.PathLike[str] | None = None,
                 registry: ProfileRegistry | None = None) -> Site:
    """The site ``profile`` names and its model folder (see the module's doc for the rules).

    Nothing is read from the model folder yet: :meth:`Site.load_recognizer` does
    that, and a missing or unfitting model is reported there."""
    resolved = resolve_profile(profile, profiles_dir, registry=registry)
    return Site(resolved, model_folder(resolved.name, model_dir, models_dir))
