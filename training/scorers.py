"""What a `JourneyModel` scores with: a raw score in log-odds per row of a feature matrix, and
each feature's contribution to it.

Every scorer has `name`, `raw(matrix)`, `contributions(matrix)` (one column per feature of the
matrix, then the expected value or intercept; each row sums to the raw score), `scores(matrix)`
(both at once, the same numbers bit for bit) and `prepare()`.
- `LightGBMScorer`: a booster; contributions are its TreeSHAP values (from tables when the
  trees are small enough, which give its raw scores too).
- `LogisticScorer`: a regularised logistic regression on the standardised features (missing
  values at the fit rows' median); a feature's contribution is its term, the intercept last.
- `BlendScorer`: weighted log-odds of other scorers, each reading its own columns of the matrix;
  the contributions add up the same way.
- `TreeTableScorer`: a `LightGBMScorer`'s exported form (`exported()`), its TreeSHAP tables
  alone: the same numbers without LightGBM.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from journeyguard.training import treeshap

if TYPE_CHECKING:  # a scorer that only scores never imports LightGBM
    import lightgbm as lgb


class Scorer(Protocol):
    name: str

    def raw(self, matrix: np.ndarray) -> np.ndarray: ...

    def contributions(self, matrix: np.ndarray) -> np.ndarray: ...

    def scores(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def prepare(self) -> None: ...

    def exported(self) -> Scorer: ...


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

    def scores(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`raw` and `contributions`, from one pass over the trees' decisions where the tables
        exist (their raw score is LightGBM's bit for bit)."""
        if self._shap_tables is None:
            return self.raw(matrix), self.contributions(matrix)
        return treeshap.scores(self._shap_tables, matrix)

    def prepare(self) -> None:
        """Builds now what scoring would build on first use (the TreeSHAP tables)."""
        _ = self._shap_tables

    def exported(self) -> Scorer:
        """Its tables as a `TreeTableScorer`; itself where the trees are too large for them."""
        tables = self._shap_tables
        return self if tables is None else TreeTableScorer(tables)

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
        return self._contributions(self._terms(matrix))

    def scores(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        terms = self._terms(matrix)
        return terms.sum(axis=1) + self.intercept, self._contributions(terms)

    def prepare(self) -> None:
        pass

    def exported(self) -> Scorer:
        return self

    def _terms(self, matrix: np.ndarray) -> np.ndarray:
        filled = np.where(np.isnan(matrix), self.medians, matrix)
        return (filled - self.mean) / self.scale * self.coef

    def _contributions(self, terms: np.ndarray) -> np.ndarray:
        return np.column_stack([terms, np.full(len(terms), self.intercept)])


@dataclass
class BlendScorer:
    """sum_i weight_i * raw_i over member scorers, member i reading `columns[i]` of the matrix."""

    members: list[Any]
    weights: list[float]
    columns: list[np.ndarray]
    name: str = "blend"

    def raw(self, matrix: np.ndarray) -> np.ndarray:
        return _weighted(self.weights, [m.raw(matrix[:, c]) for m, c in self._reading()])

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        parts = [m.contributions(matrix[:, c]) for m, c in self._reading()]
        return self._added(matrix, parts)

    def scores(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        both = [m.scores(matrix[:, c]) for m, c in self._reading()]
        raws = [raw for raw, _ in both]
        return _weighted(self.weights, raws), self._added(matrix, [part for _, part in both])

    def prepare(self) -> None:
        for member in self.members:
            member.prepare()

    def exported(self) -> Scorer:
        return replace(self, members=[member.exported() for member in self.members])

    def _reading(self) -> list[tuple[Any, np.ndarray]]:
        """Each member with the columns of the matrix it reads."""
        return list(zip(self.members, self.columns, strict=True))

    def _added(self, matrix: np.ndarray, parts: list[np.ndarray]) -> np.ndarray:
        """The members' contributions (`parts`) weighted into the blend's columns."""
        result = np.zeros((len(matrix), matrix.shape[1] + 1))
        for part, weight, columns in zip(parts, self.weights, self.columns, strict=True):
            result[:, columns] += weight * part[:, :-1]
            result[:, -1] += weight * part[:, -1]
        return result


@dataclass
class TreeTableScorer:
    """A LightGBM model as its TreeSHAP tables (`treeshap.ShapTables`): raw scores and
    contributions the same as its `LightGBMScorer`'s bit for bit, from arrays alone."""

    tables: treeshap.ShapTables
    name: str = "lightgbm"

    def raw(self, matrix: np.ndarray) -> np.ndarray:
        return treeshap.raw(self.tables, matrix)

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        return treeshap.contributions(self.tables, matrix)

    def scores(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return treeshap.scores(self.tables, matrix)

    def prepare(self) -> None:
        pass

    def exported(self) -> Scorer:
        return self


def _weighted(weights: list[float], raws: list[np.ndarray]) -> np.ndarray:
    """sum_i weight_i * raw_i, added in member order from 0 (Python's `sum`)."""
    return sum(w * raw for w, raw in zip(weights, raws, strict=True))
