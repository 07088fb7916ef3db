"""Debian packages the project's setup installs itself (a system Chromium, fonts), as root only.

    apt = apt_get()          # None: no apt-get here, or not root; say what to run instead
    if apt:
        output = apt_install(apt, ["chromium"], timeout=600)
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence


def apt_get() -> str | None:
    """The ``apt-get`` to install with: on a Debian-like system, running as root; else None."""
    apt = shutil.which("apt-get")
    if apt and hasattr(os, "geteuid") and os.geteuid() == 0:
        return apt
    return None


def apt_install(apt: str, packages: Sequence[str], timeout: float,
                options: Sequence[str] = ()) -> str:
    """``apt-get update`` then ``apt-get install -y PACKAGES``, without questions; their output
    (a step that runs past ``timeout`` seconds ends the install, and says so)."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    output = ""
    for step in ([apt, "update", "-qq"], [apt, "install", "-y", "-qq", *options, *packages]):
        try:
            done = subprocess.run(step, timeout=timeout, capture_output=True, text=True, env=env)
        except subprocess.TimeoutExpired:
            output += f"{step[1]} did not finish within {timeout:.0f} s\n"
            break
        output += done.stdout + done.stderr
    return output


def last_lines(output: str, count: int = 5) -> str:
    """The end of apt-get's output, indented under a report line."""
    return "\n    ".join(output.strip().splitlines()[-count:])
