"""How well a model reads a labelled set: accuracies, confusions, and accuracy against coverage.

Coverage: when readings below a confidence threshold are refused (the agent
asks for a new captcha instead of submitting), what share is still answered,
and how often those answers are right.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from solver.dataset import Sample
from solver.errors import SolverError
from solver.imaging import read_image
from solver.recognizers import Reading, Recognizer

THRESHOLDS = (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99)


@dataclass
class Evaluation:
    """Figures of one evaluation run."""

    images: int
    sequence_accuracy: float
    character_accuracy: float
    position_accuracy: list[float]
    confusions: list[tuple[str, str, int]]  # (truth, read, count), most frequent first
    coverage: list[dict[str, float]]  # threshold, coverage, accuracy
    milliseconds_per_image: float
    errors: list[dict[str, Any]] = field(default_factory=list)  # a few wrong readings

    def table(self) -> str:
        lines = [f"images               {self.images}",
                 f"sequence accuracy    {self.sequence_accuracy:.2%}",
                 f"character accuracy   {self.character_accuracy:.2%}",
                 "per position         " + "  ".join(f"{i + 1}:{a:.1%}" for i, a in
                                                   enumerate(self.position_accuracy)),
                 f"time per image       {self.milliseconds_per_image:.2f} ms (decode + read)"]
        if self.confusions:
            lines.append("most confused        " + ", ".join(
                f"{truth}->{read} x{count}" for truth, read, count in self.confusions[:8]))
        lines.append("")
        lines.append("threshold  coverage  accuracy")
        for row in self.coverage:
            lines.append(f"{row['threshold']:>9.2f}  {row['coverage']:>8.1%}  "
                         + (f"{row['accuracy']:>8.2%}" if row["coverage"] else "       -"))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["confusions"] = [{"truth": t, "read": r, "count": c} for t, r, c in self.confusions]
        return data


def _aligned(truth: str, read: str) -> list[tuple[str, str]]:
    """Character pairs of two strings aligned by edit distance (gaps as '')."""
    rows, cols = len(truth) + 1, len(read) + 1
    cost = [[0] * cols for _ in range(rows)]
    for i in range(rows):
        cost[i][0] = i
    for j in range(cols):
        cost[0][j] = j
    for i in range(1, rows):
        for j in range(1, cols):
            cost[i][j] = min(cost[i - 1][j] + 1, cost[i][j - 1] + 1,
                             cost[i - 1][j - 1] + (truth[i - 1] != read[j - 1]))
    pairs, i, j = [], len(truth), len(read)
    while i or j:
        if i and j and cost[i][j] == cost[i - 1][j - 1] + (truth[i - 1] != read[j - 1]):
            pairs.append((truth[i - 1], read[j - 1]))
            i, j = i - 1, j - 1
        elif i and cost[i][j] == cost[i - 1][j] + 1:
            pairs.append((truth[i - 1], ""))
            i -= 1
        else:
            pairs.append(("", read[j - 1]))
            j -= 1
    return pairs[::-1]


def score(readings: Sequence[Reading], truths: Sequence[str], names: Sequence[str] | None = None,
          milliseconds: float = 0.0) -> Evaluation:
    """Figures for readings against their true labels."""
    if not truths:
        raise SolverError("nothing to evaluate: the data holds no labelled images")
    names = names or [str(i) for i in range(len(truths))]
    texts = [r.text for r in readings]
    right = [t == r for t, r in zip(truths, texts)]
    characters = correct_characters = 0
    confusions: Counter[tuple[str, str]] = Counter()
    longest = max(len(t) for t in truths)
    position_right, position_total = [0] * longest, [0] * longest
    for truth, read in zip(truths, texts):
        pairs = _aligned(truth, read)
        characters += len(truth)
        correct_characters += sum(a == b for a, b in pairs if a)
        confusions.update((a or "∅", b or "∅") for a, b in pairs if a != b)
        for index, character in enumerate(truth):
            position_total[index] += 1
            position_right[index] += index < len(read) and read[index] == character
    coverage = []
    for threshold in THRESHOLDS:
        kept = [ok for ok, reading in zip(right, readings) if reading.confidence >= threshold]
        coverage.append({"threshold": threshold, "coverage": len(kept) / len(right),
                         "accuracy": sum(kept) / len(kept) if kept else 0.0})
    errors = [{"file": name, "truth": truth, "read": reading.text,
               "confidence": round(reading.confidence, 4)}
              for name, truth, reading, ok in zip(names, truths, readings, right) if not ok][:50]
    return Evaluation(
        images=len(truths), sequence_accuracy=sum(right) / len(right),
        character_accuracy=correct_characters / max(characters, 1),
        position_accuracy=[r / t if t else 0.0 for r, t in zip(position_right, position_total)],
        confusions=[(a, b, c) for (a, b), c in confusions.most_common(20)],
        coverage=coverage, milliseconds_per_image=milliseconds, errors=errors)


def evaluate(recognizer: Recognizer, samples: Sequence[Sample], batch_size: int = 64) -> Evaluation:
    """Read every sample with ``recognizer`` and score the readings."""
    started = time.perf_counter()
    readings: list[Reading] = []
    for start in range(0, len(samples), batch_size):
        part = samples[start:start + batch_size]
        readings.extend(recognizer.read_batch([read_image(s.path) for s in part]))
    milliseconds = (time.perf_counter() - started) * 1000 / max(len(samples), 1)
    truths = [recognizer.charset.normalise(s.label) for s in samples]
    return score(readings, truths, [s.path.name for s in samples], milliseconds)


def write_report(evaluation: Evaluation, folder: str | Path, title: str,
                 history: list[dict[str, float]] | None = None) -> list[Path]:
    """``metrics.json``, ``report.md`` and PNG plots (coverage, confusions, training curves)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / "metrics.json", folder / "report.md"]
    written[0].write_text(json.dumps(evaluation.to_dict(), indent=2) + "\n", encoding="utf-8")
    plots = _plots(evaluation, folder, history)
    lines = [f"# {title}", "", "```", evaluation.table(), "```", ""]
    for plot in plots:
        lines += [f"![{plot.stem}]({plot.name})", ""]
    if evaluation.errors:
        lines += ["## Some wrong readings", "", "| file | truth | read | confidence |",
                  "| --- | --- | --- | --- |"]
        lines += [f"| {e['file']} | {e['truth']} | {e['read']} | {e['confidence']:.3f} |"
                  for e in evaluation.errors[:20]]
    written[1].write_text("\n".join(lines) + "\n", encoding="utf-8")
    return written + plots


def _plots(evaluation: Evaluation, folder: Path, history: list[dict[str, float]] | None) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise SolverError("plots need matplotlib (pip install matplotlib, or install solver "
                          "with the train extra)") from error
    paths = []
    figure, axis = plt.subplots(figsize=(5, 3.5))
    axis.plot([r["coverage"] for r in evaluation.coverage],
              [r["accuracy"] for r in evaluation.coverage], marker="o")
    for row in evaluation.coverage:
        axis.annotate(f"{row['threshold']:.2f}", (row["coverage"], row["accuracy"]), fontsize=7)
    axis.set(xlabel="coverage (share of captchas answered)", ylabel="sequence accuracy",
             title="Accuracy against coverage")
    axis.grid(alpha=0.3)
    paths.append(folder / "coverage.png")
    figure.tight_layout()
    figure.savefig(paths[-1], dpi=110)
    plt.close(figure)
    if evaluation.confusions:
        top = evaluation.confusions[:12]
        figure, axis = plt.subplots(figsize=(5, 3.5))
        axis.barh([f"{t} -> {r}" for t, r, _ in top][::-1], [c for _, _, c in top][::-1])
        axis.set(xlabel="count", title="Most confused characters")
        paths.append(folder / "confusions.png")
        figure.tight_layout()
        figure.savefig(paths[-1], dpi=110)
        plt.close(figure)
    if history:
        figure, axis = plt.subplots(figsize=(5, 3.5))
        epochs = [h["epoch"] for h in history]
        axis.plot(epochs, [h["val_sequence_accuracy"] for h in history], label="validation accuracy")
        axis.set(xlabel="epoch", ylabel="sequence accuracy", title="Training")
        other = axis.twinx()
        other.plot(epochs, [h["loss"] for h in history], color="tab:red", label="loss")
        other.set_ylabel("CTC loss")
        other.set_yscale("log")
        paths.append(folder / "training.png")
        figure.tight_layout()
        figure.savefig(paths[-1], dpi=110)
        plt.close(figure)
    return paths
