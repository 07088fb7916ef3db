"""A trained model's folder, ``models/NAME/``, and its ``metadata.json``.

The folder is self-describing: the metadata says what the model reads (input
size, channels, normalisation), what it writes (charset, blank index, length
range) and how it was made (profile fingerprint, data, metrics, versions).
Loading checks the model against the profile and refuses a mismatch with the fix.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from solver.errors import SolverError, UsageError

MODELS_DIR_ENV = "SOLVER_MODELS_DIR"

if TYPE_CHECKING:
    from solver.archs import ArchConfig
    from solver.profiles import SiteProfile

logger = logging.getLogger(__name__)

#: 2: ``arch`` and ``arch_config`` (1 had ``pipeline``, with the config in
#: ``training.config`` for ctc and in ``segmentation`` for segment; still read)
FORMAT_VERSION = 2
METADATA_FILE = "metadata.json"
KERAS_FILE = "model.keras"
LITE_FILE = "model.tflite"


class ModelError(SolverError):
    """A model folder that is missing, broken, or does not fit the profile."""

    exit_code = 2


@dataclass(frozen=True)
class ModelMetadata:
    """What ``metadata.json`` holds. See the module's doc."""

    name: str
    arch: str  # a name in solver.archs.ARCHS
    charset: str
    case_sensitive: bool
    blank_index: int
    input_height: int
    input_width: int
    input_channels: int
    min_length: int
    max_length: int
    normalisation: str = "divide_255"
    profile_fingerprint: str = ""
    format_version: int = FORMAT_VERSION
    files: dict[str, str] = field(default_factory=lambda: {"keras": KERAS_FILE, "lite": LITE_FILE})
    arch_config: dict[str, Any] = field(default_factory=dict)  # the arch's config, as to_dict writes it
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.input_height, self.input_width, self.input_channels)

    @property
    def config(self) -> ArchConfig:
        """``arch_config`` as its architecture's typed config."""
        from solver.archs import get_arch

        return get_arch(self.arch).config_from_dict(self.arch_config)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False) + "\n"


def write_metadata(folder: str | os.PathLike[str], metadata: ModelMetadata) -> Path:
    """Write ``metadata.json`` atomically (a reader never sees half a file)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / METADATA_FILE
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".metadata-", suffix=".json")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(metadata.to_json())
    os.chmod(temporary, 0o644)  # mkstemp makes it private; a model folder is meant to be shared
    os.replace(temporary, target)
    return target


def read_metadata(folder: str | os.PathLike[str]) -> ModelMetadata:
    folder = Path(folder)
    path = folder / METADATA_FILE
    if not path.is_file():
        raise ModelError(f"{folder}: no trained model here (no {METADATA_FILE}; train one with "
                         f"`solver train --site {folder.name}`, or point --models-dir at the "
                         "folder that holds it)")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"{path}: unreadable ({error}); retrain the model or restore the file") from None
    if not isinstance(raw, dict):
        raise ModelError(f"{path}: expected a JSON object; retrain the model or restore the file")
    version = raw.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelError(f"{path}: format_version {version!r} is not one this solver reads "
                         f"(it reads up to {FORMAT_VERSION}; upgrade solver, or retrain)")
    if version == 1:
        raw = _from_version_1(raw)
    known = set(ModelMetadata.__dataclass_fields__)
    missing = [key for key in ("name", "arch", "charset", "case_sensitive", "blank_index",
                               "input_height", "input_width", "input_channels", "min_length",
                               "max_length") if key not in raw]
    if missing:
        raise ModelError(f"{path}: missing {', '.join(missing)}; retrain the model")
    metadata = ModelMetadata(**{key: value for key, value in raw.items() if key in known})
    _check_consistent(metadata, path)
    return metadata


def _from_version_1(raw: dict[str, Any]) -> dict[str, Any]:
    """A version 1 file's fields as version 2 names them (its config moves to ``arch_config``)."""
    raw = dict(raw)
    if "pipeline" in raw:
        raw["arch"] = raw.pop("pipeline")
    training = raw.get("training") if isinstance(raw.get("training"), dict) else {}
    config = raw.pop("segmentation", None) if raw.get("arch") == "segment" else training.get("config")
    raw.setdefault("arch_config", config if isinstance(config, dict) else {})
    return raw


def _check_consistent(metadata: ModelMetadata, path: Path) -> None:
    from solver.archs import ARCHS

    problems = []
    arch = ARCHS.get(metadata.arch)
    if arch is None:
        problems.append(f"arch {metadata.arch!r} is not one of {', '.join(ARCHS)}")
    elif arch.blank_last and metadata.blank_index != len(metadata.charset):
        problems.append(f"blank_index {metadata.blank_index} is not {len(metadata.charset)} "
                        "(the blank is the last class)")
    if metadata.input_channels not in (1, 3):
        problems.append(f"input_channels {metadata.input_channels} is not 1 or 3")
    if arch is not None and metadata.normalisation != arch.normalisation:
        problems.append(f"normalisation {metadata.normalisation!r} is not {arch.name}'s "
                        f"{arch.normalisation!r}")
    if arch is not None:
        try:
            metadata.config
        except (TypeError, ValueError, UsageError) as error:
            problems.append(f"arch_config {metadata.arch_config!r} is not a {arch.name} config "
                            f"({error})")
    if problems:
        raise ModelError(f"{path}: " + "; ".join(problems) + " (retrain the model)")


def check_fits_profile(metadata: ModelMetadata, profile: SiteProfile, folder: Path) -> None:
    """Refuse a model that cannot answer the profile's captchas."""
    fmt = profile.format
    problems = []
    if metadata.charset != fmt.charset:
        missing = "".join(ch for ch in fmt.charset if ch not in metadata.charset)
        extra = "".join(ch for ch in metadata.charset if ch not in fmt.charset)
        detail = ", ".join(part for part in (f"it lacks {missing!r}" if missing else "",
                                             f"it adds {extra!r}" if extra else "") if part)
        problems.append(f"the model's charset {metadata.charset!r} differs from the profile's "
                        f"{fmt.charset!r}" + (f" ({detail})" if detail else " (order differs)"))
    if (metadata.min_length, metadata.max_length) != (fmt.min_length, fmt.max_length):
        problems.append(f"the model reads {metadata.min_length}..{metadata.max_length} characters, "
                        f"the profile wants {fmt.min_length}..{fmt.max_length}")
    if metadata.case_sensitive != fmt.case_sensitive:
        problems.append(f"the model is case_sensitive={str(metadata.case_sensitive).lower()}, "
                        f"the profile says {str(fmt.case_sensitive).lower()}")
    if problems:
        raise ModelError(f"{folder}: this model does not fit profile {profile.name!r}: "
                         + "; ".join(problems)
                         + f" (retrain it with `solver train --site {profile.name}`, or use the "
                         "profile it was trained for)")
    if metadata.profile_fingerprint and metadata.profile_fingerprint != profile.fingerprint():
        logger.warning("%s was trained for another version of profile %r (its look-alike "
                       "settings or pipeline changed); it may read worse until retrained",
                       folder, profile.name)


def models_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The user's folder of trained models, where ``solver train`` writes: ``explicit``, else
    ``$SOLVER_MODELS_DIR``, else ``./models``."""
    return Path(explicit or os.environ.get(MODELS_DIR_ENV) or "models")


def find_model(name: str, explicit: str | os.PathLike[str] | None = None, *,
               shipped: bool = True) -> Path:
    """The folder to read model ``name`` from: the user's (:func:`models_dir`) when it holds a
    model, else the one shipped in the package (``solver.shipped``), else the user's (where
    ``solver train --site NAME`` would write it, so that a "no model" error names it).

    A local model shadows the shipped one of the same name::

        >>> find_model("example", "/nowhere")   # doctest: +ELLIPSIS
        PosixPath('.../solver/shipped/models/example')
    """
    local = models_dir(explicit) / name
    if (local / METADATA_FILE).is_file() or not shipped:
        return local
    from solver import shipped as package

    bundled = package.models_path() / name
    return bundled if (bundled / METADATA_FILE).is_file() else local
