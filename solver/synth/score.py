"""Score look-alikes against a site's images: how far their statistics are apart.

:class:`Reference` holds the real images' statistics and spreads; its
distance is the mean standardised difference of the statistics (0: as close
as the images are to their own average). :class:`Evaluator` draws seeded
look-alikes with a look's settings and scores them, once per look.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from solver.drawing import CaptchaDrawer
from solver.profiles import SyntheticSection
from solver.synth.measure import FEATURES, HISTOGRAM_BINS, HISTOGRAMS, Measurements, Probe, measure


@dataclass(frozen=True)
class Reference:
    """What look-alikes are compared with: the real images' statistics and spreads."""

    probe: Probe
    means: np.ndarray
    scales: np.ndarray
    weights: np.ndarray

    @classmethod
    def of(cls, measured: Measurements, probe: Probe) -> Reference:
        floors = np.asarray(list(FEATURES.values()) + [0.02] * HISTOGRAM_BINS)
        spread = np.asarray([np.std(column[np.isfinite(column)]) if np.isfinite(column).any()
                             else 0.0 for column in measured.table.T])
        weights = np.asarray([1.0] * len(FEATURES) + [weight / bins for bins, weight
                                                        in HISTOGRAMS.values()
                                                        for _ in range(bins)])
        return cls(probe, measured.means(), np.maximum(np.nan_to_num(spread), floors), weights)

    def differences(self, measured: Measurements) -> np.ndarray:
        """Per statistic: how many real-image spreads the look-alikes' mean is away."""
        return np.nan_to_num(np.abs(measured.means() - self.means) / self.scales, nan=3.0)

    def distance(self, measured: Measurements) -> float:
        """One number: 0 when the look-alikes' statistics match the real ones on average."""
        return float(np.sum(self.differences(measured) * self.weights) / np.sum(self.weights))

    def worst(self, measured: Measurements, count: int = 3) -> list[tuple[str, float]]:
        """The statistics furthest apart, for a reader."""
        names = list(FEATURES) + [name for name, (bins, _) in HISTOGRAMS.items()
                                  for _ in range(bins)]
        merged: dict[str, list[float]] = {}
        for name, value in zip(names, self.differences(measured)):
            merged.setdefault(name, []).append(float(value))
        means = {name: sum(values) / len(values) for name, values in merged.items()}
        return sorted(means.items(), key=lambda item: -item[1])[:count]


class Evaluator:
    """Draws seeded look-alikes of the real labels and scores them against the reference.

    Each look is drawn and measured once (``calls`` counts them): a search asks for
    the same settings many times. Fonts in the settings resolve against ``fonts_base``.
    """

    def __init__(self, reference: Reference, texts: list[str], fonts_base: Path | None,
                 seed: int) -> None:
        self.reference, self.texts, self.base, self.seed = reference, texts, fonts_base, seed
        self.cache: dict[str, tuple[float, Measurements]] = {}
        self.calls = 0

    def measurements(self, settings: SyntheticSection) -> Measurements:
        """The statistics of the look-alikes drawn with ``settings``."""
        return self._run(settings)[1]

    def score(self, settings: SyntheticSection) -> float:
        """Their distance to the real images (see :meth:`Reference.distance`)."""
        return self._run(settings)[0]

    def _run(self, settings: SyntheticSection) -> tuple[float, Measurements]:
        key = settings.model_dump_json()
        if key not in self.cache:
            self.calls += 1
            drawer = CaptchaDrawer.from_settings(settings, self.base, seed=self.seed)
            images = [np.asarray(drawer.image(text)) for text in self.texts]
            measured = measure(images, self.reference.probe, self.texts, colours=False)
            self.cache[key] = (self.reference.distance(measured), measured)
        return self.cache[key]
