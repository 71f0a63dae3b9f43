"""What scoring needs of a trained model, and nothing more: the one implementation of a task's
features, risk and contributions that batch scoring and the service call.

A `JourneyModel` (`training.models`) scores through its `ScoringModel`. Its exported form
(`JourneyModel.exported`) holds plain arrays instead of the fitted LightGBM and scikit-learn
objects, so that a process that only scores (`journeyguard score`) neither imports those
libraries nor unpickles their objects: seconds of a scoring command (`champion_store`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from journeyguard.features.build import feature_columns
from journeyguard.features.eventlog.log import Snapshots
from journeyguard.features.vocabulary import Vocabulary
from journeyguard.training.bgnbd_features import BGNBDFeatures
from journeyguard.training.calibration import Calibrator
from journeyguard.training.scorers import Scorer


@dataclass(frozen=True)
class ScoringModel:
    """A task's features (from `vocabulary`, and `bgnbd` where the scorer reads BG/NBD
    quantities), raw score and contributions (`scorer`) and risk (`calibrator`)."""

    task: str
    vocabulary: Vocabulary | None  # None: it scores feature rows, but cannot build them
    scorer: Scorer
    calibrator: Calibrator
    feature_names: list[str]
    info: dict[str, Any] = field(default_factory=dict)
    bgnbd: BGNBDFeatures | None = None

    def feature_matrix(self, snapshots: Snapshots) -> np.ndarray:
        """The features of snapshots as one float64 array in `feature_names` order."""
        if self.vocabulary is None:
            raise ValueError(f"the {self.task} model has no vocabulary to build features with")
        columns = feature_columns(snapshots, self.vocabulary)
        if self.bgnbd is not None:
            columns |= self.bgnbd.columns(snapshots)
        # Column-major: filled column by column, and the trees read it column by column.
        matrix = np.empty((len(snapshots), len(self.feature_names)), dtype=np.float64, order="F")
        for j, name in enumerate(self.feature_names):
            matrix[:, j] = columns[name]
        return matrix

    def predict_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of the outcome for a `feature_matrix`."""
        return self.calibrator.predict(self.scorer.raw(matrix))

    def predict_interval_matrix(self, matrix: np.ndarray) -> tuple[np.ndarray, ...]:
        """The calibrated probabilities of a `feature_matrix` and their 95 % intervals:
        (risk, low, high)."""
        raw = self.scorer.raw(matrix)
        return (self.calibrator.predict(raw), *self.calibrator.interval(raw))

    def contribution_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """Per feature of a `feature_matrix`, its contribution to the raw (log-odds) score,
        then the expected value (or intercept): each row sums to the raw score."""
        return self.scorer.contributions(matrix)

    def predict_interval_and_contributions(self, matrix: np.ndarray) -> tuple[np.ndarray, ...]:
        """`predict_interval_matrix` and `contribution_matrix` of one matrix, the same numbers:
        (risk, low, high, contributions), the raw scores and contributions from one pass of
        the scorer (`scores`)."""
        raw, contributions = self.scorer.scores(matrix)
        return self.calibrator.predict(raw), *self.calibrator.interval(raw), contributions

    def predict(self, snapshots: Snapshots) -> np.ndarray:
        return self.predict_matrix(self.feature_matrix(snapshots))
