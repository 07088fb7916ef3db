"""Shared helpers of the benchmark scripts: machine facts, saving results, the ddddocr peer."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu or platform.processor(), "cores": os.cpu_count(),
            "python": platform.python_version(), "platform": platform.platform(),
            "date": datetime.date.today().isoformat()}


def save(name: str, figures: dict[str, Any], command: list[str] | None = None) -> Path:
    """Write ``benchmarks/results/NAME.json`` with the figures, the command and the machine."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    record = {"name": name, "command": " ".join(command or sys.argv), "machine": machine(),
              "figures": figures}
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"saved {path.relative_to(ROOT)}")
    return path


def git_revision() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=ROOT, check=False).stdout.strip()
    except OSError:
        return ""


def labelled_samples(profile, data: str, corrections: str | None) -> list:  # type: ignore[no-untyped-def]
    """The folder's labelled images that fit the profile, with ``corrections`` (file,label) applied."""
    from solver.dataset import apply_corrections, check_labels, read_corrections, read_labelled_folder

    fmt = profile.format
    samples = read_labelled_folder(data)
    if corrections:
        samples, changed = apply_corrections(samples, read_corrections(corrections))
        print(f"corrections: {changed} labels fixed from {corrections}")
    labels = check_labels(samples, fmt.charset, fmt.min_length, fmt.max_length, fmt.case_sensitive)
    print("\n".join(labels.lines()))
    return labels.kept


class Ddddocr:
    """The peer: ddddocr reads captchas with its own model and no training."""

    def __init__(self) -> None:
        import ddddocr

        self._ocr = ddddocr.DdddOcr(show_ad=False)

    @staticmethod
    def available() -> bool:
        try:
            import ddddocr  # noqa: F401
        except ImportError:
            return False
        return True

    def read(self, data: bytes) -> str:
        return self._ocr.classification(data)

    def run(self, images: list[bytes], truths: list[str], normalise) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        for data in images[:5]:  # warm up
            self.read(data)
        started = time.perf_counter()
        readings = [normalise(self.read(data)) for data in images]
        seconds = time.perf_counter() - started
        right = sum(r == t for r, t in zip(readings, truths))
        return {"sequence_accuracy": right / len(truths), "images": len(truths),
                "ms_per_image": seconds * 1000 / len(truths)}
