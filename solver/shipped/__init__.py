"""What ships inside the package: the local captcha site's profiles and the models that read them.

``profiles/NAME.yaml`` are the local site's styles; ``models/NAME/`` are the
trained ``example``, ``digits`` and ``general`` models. They are the last place
looked in, after the user's own folders, so a profile or model of the same name
there shadows the shipped one:

* profiles: ``--profiles-dir``, else ``$SOLVER_PROFILES_DIR``, else
  ``./site_profiles``; then :func:`profiles_path`;
* models: ``--models-dir``, else ``$SOLVER_MODELS_DIR``, else ``./models``;
  then :func:`models_path`.

Found through :mod:`importlib.resources`, so they work from any folder once the
package is installed::

    >>> from solver import shipped
    >>> (shipped.models_path() / "example" / "metadata.json").is_file()
    True
"""

from __future__ import annotations

import functools
from importlib.resources import files
from pathlib import Path

#: how `solver profiles list` and the demo name a shipped file's origin
LABEL = "shipped"


@functools.cache
def root() -> Path:
    """This package's folder on disk."""
    resources = files(__name__)
    if not isinstance(resources, Path):  # a zip import; LiteRT and the YAML loader want real files
        raise RuntimeError(f"solver's shipped files are not on disk ({resources!r}): install the "
                           "package unzipped (`pip install` does)")
    return resources


def profiles_path() -> Path:
    """The folder of the shipped profiles, ``NAME.yaml``."""
    return root() / "profiles"


def models_path() -> Path:
    """The folder of the shipped models, ``NAME/``."""
    return root() / "models"


def is_shipped(path: str | Path) -> bool:
    """Whether ``path`` lies among the shipped files."""
    try:
        Path(path).resolve().relative_to(root().resolve())
    except ValueError:
        return False
    return True


def describe(path: str | Path) -> str:
    """``path`` as a user reads it: ``example (shipped)`` for a shipped file, else the path."""
    return f"{Path(path).stem} ({LABEL})" if is_shipped(path) else str(path)
