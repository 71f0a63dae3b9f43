"""What a `JourneyModel` scores with: a raw score in log-odds per row of a feature matrix, and
each feature's contribution to it.

Every scorer has `name`, `raw(matrix)`, `contributions(matrix)` (one column per feature of the
matrix, then the expected value or intercept; each row sums to the raw score) and `prepare()`.
- `LightGBMScorer`: a booster; contributions are its TreeSHAP values (from tables when the
  trees are small enough).
- `LogisticScorer`: a regularised logistic regression on the standardised features (missing
  values at the fit rows' median); a feature's contribution is its term, the intercept last.
- `BlendScorer`: weighted log-odds of other scorers, each reading its own columns of the matrix;
  the contributions add up the same way.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Protocol

import lightgbm as lgb
import numpy as np

from journeyguard.training import treeshap


class Scorer(Protocol):
    name: str

    def raw(self, matrix: np.ndarray) -> np.ndarray: ...

    def contributions(self, matrix: np.ndarray) -> np.ndarray: ...

    def prepare(self) -> None: ...


@dataclass
class LightGBMScorer:
    classifier: lgb.LGBMClassifier
    name: str = "lightgbm"

    def raw(self, matrix: np.ndarray) -> np.ndarray:
        return self.classifier.booster_.predict(matrix, raw_score=True, num_threads=1)

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        """LightGBM's TreeSHAP values, from tables where the trees are small enough."""
        if self._shap_tables is None:
            return self.classifier.booster_.predict(matrix, pred_contrib=True, num_threads=1)
        return treeshap.contributions(self._shap_tables, matrix)

    def prepare(self) -> None:
        """Builds now what scoring would build on first use (the TreeSHAP tables, ~0.1 s)."""
        _ = self._shap_tables

    @functools.cached_property
    def _shap_tables(self) -> treeshap.ShapTables | None:
        return treeshap.tables_of(self.classifier.booster_)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_shap_tables", None)  # made again from the booster, never stored
        return state


@dataclass
class LogisticScorer:
    """raw = intercept + sum_j coef_j (x_j - mean_j) / scale_j, a missing x_j counting as the
    fit rows' median: feature j's contribution is its term, exactly (the terms and the
    intercept add up to the raw score)."""

    medians: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    detail: str = ""
    name: str = "logistic"

    def raw(self, matrix: np.ndarray) -> np.ndarray:
        return self._terms(matrix).sum(axis=1) + self.intercept

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        terms = self._terms(matrix)
        return np.column_stack([terms, np.full(len(terms), self.intercept)])

    def prepare(self) -> None:
        pass

    def _terms(self, matrix: np.ndarray) -> np.ndarray:
        filled = np.where(np.isnan(matrix), self.medians, matrix)
        return (filled - self.mean) / self.scale * self.coef


@dataclass
class BlendScorer:
    """sum_i weight_i * raw_i over member scorers, member i reading `columns[i]` of the matrix."""

    members: list[Any]
    weights: list[float]
    columns: list[np.ndarray]
    name: str = "blend"

    def raw(self, matrix: np.ndarray) -> np.ndarray:
        return sum(
            w * m.raw(matrix[:, c])
            for m, w, c in zip(self.members, self.weights, self.columns, strict=True)
        )

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        result = np.zeros((len(matrix), matrix.shape[1] + 1))
        for member, weight, columns in zip(self.members, self.weights, self.columns, strict=True):
            part = member.contributions(matrix[:, columns])
            result[:, columns] += weight * part[:, :-1]
            result[:, -1] += weight * part[:, -1]
        return result

    def prepare(self) -> None:
        for member in self.members:
            member.prepare()
