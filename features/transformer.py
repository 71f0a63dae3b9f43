"""`PathFeatures`: the feature builder behind scikit-learn's transformer contract.

`fit` learns the vocabulary from the snapshots it is given (and, with labels, the critical
items and routes); `transform` builds the matrix of any snapshots, of one journey or millions,
with `features.build`: the one implementation that training, batch scoring and the service use.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from journeyguard.features.build import build_features, slug
from journeyguard.features.eventlog.log import Snapshots
from journeyguard.features.vocabulary import Vocabulary, learn_vocabulary


class PathFeatures(TransformerMixin, BaseEstimator):
    """Path-sequence features of snapshots (see `journeyguard.features.build` for the list)."""

    def __init__(
        self,
        *,
        min_count: int = 5,
        max_bigrams: int = 50,
        max_trigrams: int = 30,
        last_k: int = 3,
        critical_top: int = 10,
    ) -> None:
        self.min_count = min_count
        self.max_bigrams = max_bigrams
        self.max_trigrams = max_trigrams
        self.last_k = last_k
        self.critical_top = critical_top

    def fit(self, snapshots: Snapshots, y: np.ndarray | None = None) -> PathFeatures:
        self.vocabulary_: Vocabulary = learn_vocabulary(
            snapshots,
            y,
            min_count=self.min_count,
            max_bigrams=self.max_bigrams,
            max_trigrams=self.max_trigrams,
            last_k=self.last_k,
            critical_top=self.critical_top,
        )
        empty = snapshots.subset(np.zeros(len(snapshots), dtype=bool))
        self.feature_names_out_ = np.asarray(
            build_features(empty, self.vocabulary_).columns, dtype=object
        )
        return self

    def transform(self, snapshots: Snapshots) -> pd.DataFrame:
        check_is_fitted(self, "vocabulary_")
        return build_features(snapshots, self.vocabulary_)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        check_is_fitted(self, "feature_names_out_")
        return self.feature_names_out_

    @property
    def categorical_features_(self) -> list[str]:
        """Columns holding codes rather than quantities: the last steps, text attributes."""
        check_is_fitted(self, "vocabulary_")
        codes = [f"last_{k}" for k in range(1, self.vocabulary_.last_k + 1)]
        return codes + [
            f"attr__{slug(name)}"
            for name, categories in self.vocabulary_.attributes.items()
            if categories is not None
        ]
