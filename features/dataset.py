"""Snapshot datasets: (journey, as_of) rows with their point-in-time label, time split and
features, the features learned from the training rows only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from journeyguard.features.build import feature_columns
from journeyguard.features.config.model import TaskConfig
from journeyguard.features.eventlog.log import EventLog, Snapshots
from journeyguard.features.labels import (
    default_test_from,
    label_snapshots,
    task_snapshots,
    time_split,
)
from journeyguard.features.population import eligibility
from journeyguard.features.vocabulary import learn_vocabulary

if TYPE_CHECKING:
    from journeyguard.features.transformer import PathFeatures

KEY_COLUMNS = ["customer_id", "as_of", "y", "split"]


@dataclass(frozen=True)
class Dataset:
    """`frame`: customer_id, as_of, y, split ('train' | 'gap' | 'test'), then the features."""

    frame: pd.DataFrame
    snapshots: Snapshots
    transformer: PathFeatures
    test_from: pd.Timestamp
    excluded: dict[str, int] = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        return [c for c in self.frame.columns if c not in KEY_COLUMNS]


def build_dataset(
    log: EventLog,
    task: TaskConfig,
    *,
    test_from: pd.Timestamp | None = None,
    transformer_params: dict[str, Any] | None = None,
) -> Dataset:
    """The task's labelled snapshots with their features.

    Snapshots outside the task's population (`features.population`), whose outcome already
    happened, or whose horizon runs past the data (censored), are left out and counted in
    `excluded`. Training rows are those whose label window closed
    before `test_from` (default: the last fifth of the labelled time span); the transformer
    learns its vocabulary, critical items and routes from them alone.
    """
    every = task_snapshots(log, task)
    in_population = eligibility(every, task).eligible
    snapshots = every.subset(in_population)
    outcomes = label_snapshots(log, task, snapshots.journeys, snapshots.as_of)
    excluded = {
        "outside_population": int((~in_population).sum()),
        "already_happened": int(outcomes.already_happened.sum()),
        "censored": int((outcomes.censored & ~outcomes.already_happened).sum()),
    }
    snapshots = snapshots.subset(outcomes.labelled)
    y = outcomes.positive[outcomes.labelled]
    test_from = test_from if test_from is not None else default_test_from(log, task)
    split = time_split(snapshots.as_of, task, test_from)
    train = split == "train"
    if not train.any():
        raise ValueError(
            f"task {task.name!r}: no snapshot's label window closes before the "
            f"test period starts at {test_from.isoformat()}; choose a later "
            "test start or a shorter horizon"
        )
    from journeyguard.features.transformer import PathFeatures

    transformer = PathFeatures(**(transformer_params or {}))
    transformer.fit(snapshots.subset(train), y[train])
    keys = pd.DataFrame(
        {
            "customer_id": snapshots.customer_ids.astype(str),
            "as_of": pd.DatetimeIndex(snapshots.as_of.view("datetime64[ns]")).tz_localize("UTC"),
            "y": y.astype(np.int8),
            "split": split,
        }
    )
    frame = pd.concat([keys, transformer.transform(snapshots)], axis=1)
    return Dataset(frame, snapshots, transformer, test_from, excluded)


def features_at(
    log: EventLog, as_of: pd.Timestamp, transformer_params: dict[str, Any] | None = None
) -> pd.DataFrame:
    """One row per journey active at `as_of` (an event at or before it): customer_id, as_of
    and the features, the vocabulary learned from those same events."""
    snapshots = Snapshots.at(log, as_of)
    vocabulary = learn_vocabulary(snapshots, **(transformer_params or {}))
    # PathFeatures' code, without scikit-learn; one frame of keys and features, one copy.
    features = feature_columns(snapshots, vocabulary)
    keys = {"customer_id": snapshots.customer_ids.astype(str), "as_of": pd.Timestamp(as_of)}
    return pd.DataFrame(keys | features, index=pd.RangeIndex(len(snapshots)))
