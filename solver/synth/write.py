"""Write fitted look-alike settings into a profile file's ``synthetic`` section.

Only that section changes: everything else in the file stays as it was,
comments included, and the rewrite is checked by loading the result.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from solver.profiles import SyntheticSection, load_profile_text
from solver.synth.measure import FitError

_TOP_LEVEL_KEY = re.compile(r"^[A-Za-z_][\w-]*\s*:")


def synthetic_data(settings: SyntheticSection, keep: Sequence[str] = ()) -> dict[str, Any]:
    """The settings as YAML data: those that differ from their default, and ``keep``."""
    defaults = SyntheticSection().model_dump(mode="json")
    return {key: value for key, value in settings.model_dump(mode="json").items()
            if key in keep or value != defaults[key]}


def synthetic_block(data: dict[str, Any], comments: dict[str, str] | None = None,
                    header: str = "") -> list[str]:
    """``synthetic:`` and one ``  key: value`` line per setting, values in flow style."""
    comments = comments or {}
    lines = ["synthetic:" + (f"  {header}" if header else "")]
    for key, value in data.items():
        comment = comments.get(key)
        lines.append(f"  {key}: {json.dumps(value)}" + (f"  {comment}" if comment else ""))
    return lines


def _split_comment(line: str) -> tuple[str, str]:
    """``'  width: 160  # pixels'`` -> (``'  width: 160'``, ``'# pixels'``), quotes respected."""
    quote = ""
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1] in " \t"):
            return line[:index].rstrip(), line[index:]
    return line.rstrip(), ""


def update_profile_text(text: str, settings: SyntheticSection,
                        path: str | os.PathLike[str] | None = None) -> tuple[str, list[str]]:
    """``text`` (a profile's YAML) with its ``synthetic`` section replaced by ``settings``,
    and one line per changed setting. Everything outside that section stays as it was,
    comments included; comments on the section's own lines are kept where their key is.
    """
    before = load_profile_text(text, path)
    raw = yaml.safe_load(text) or {}
    old_keys = list((raw.get("synthetic") or {}).keys()) if isinstance(raw, dict) else []
    data = synthetic_data(settings, keep=old_keys)
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(r"^synthetic\s*:", line)), None)
    comments: dict[str, str] = {}
    standalone: list[str] = []
    header = ""
    if start is None:
        while lines and not lines[-1].strip():
            lines.pop()
        head, tail = lines, []
    else:
        end = start + 1
        while end < len(lines) and not _TOP_LEVEL_KEY.match(lines[end]) and not (
                lines[end].startswith("#")):
            end += 1
        while end > start + 1 and not lines[end - 1].strip():  # blank lines stay outside
            end -= 1
        code, header = _split_comment(lines[start])
        if not code.endswith(":"):  # flow style, synthetic: {width: 70}: its comment goes
            header = ""
        for line in lines[start + 1:end]:
            code, comment = _split_comment(line)
            key = re.match(r"^\s+([\w-]+)\s*:", code)
            if key and comment:
                comments[key.group(1)] = comment
            elif not code.strip() and comment:
                standalone.append("  " + comment)
        head, tail = lines[:start], lines[end:]
    block = synthetic_block(data, comments, header)
    new_text = "\n".join(head + block[:1] + standalone + block[1:] + tail) + "\n"
    after = load_profile_text(new_text, path)
    outside = {key: value for key, value in before.to_dict().items() if key != "synthetic"}
    if {key: value for key, value in after.to_dict().items() if key != "synthetic"} != outside \
            or after.synthetic != settings:
        raise FitError(f"{path or 'the profile'}: rewriting its synthetic section would change "
                       "more than that section (edit the file by hand; the settings are printed "
                       "above)")
    changes = []
    old, new = before.synthetic.model_dump(mode="json"), settings.model_dump(mode="json")
    for key in new:
        if old[key] != new[key]:
            changes.append(f"{key}: {json.dumps(old[key])} -> {json.dumps(new[key])}")
    return new_text, changes


def update_profile_file(path: str | os.PathLike[str], settings: SyntheticSection) -> list[str]:
    """Write ``settings`` into the profile file's ``synthetic`` section (see
    :func:`update_profile_text`) by an atomic replace; returns the changed settings."""
    import tempfile

    path = Path(path)
    text, changes = update_profile_text(path.read_text(encoding="utf-8"), settings, path)
    if not changes:
        return changes
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, path.stat().st_mode & 0o777)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return changes
