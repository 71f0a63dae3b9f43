"""Snapshot datasets: (journey, as_of) rows with their point-in-time label, time split and
features, the features learned from the training rows only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from journeyguard.features.build import feature_columns
from journeyguard.features.config.model import TaskConfig
from journeyguard.features.current import active_at
from journeyguard.features.eventlog.log import EventLog, Snapshots
from journeyguard.features.labels import (
    default_test_from,
    label_snapshots,
    task_snapshots,
    time_split,
)
from journeyguard.features.population import eligibility
from journeyguard.features.vocabulary import Vocabulary

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


@dataclass(frozen=True)
class Labelled:
    """A task's labelled snapshots in its population, with their label and split, and how many
    were left out (and why)."""

    snapshots: Snapshots
    y: np.ndarray
    split: np.ndarray
    excluded: dict[str, int]


def build_dataset(
    log: EventLog,
    task: TaskConfig,
    *,
    test_from: pd.Timestamp | None = None,
    transformer_params: dict[str, Any] | None = None,
    span: tuple[int, int] | None = None,
) -> Dataset:
    """The task's labelled snapshots with their features.

    Snapshots outside the task's population (`features.population`), whose outcome already
    happened, or whose horizon runs past the data (censored), are left out and counted in
    `excluded`. Training rows are those whose label window closed
    before `test_from` (default: the last fifth of the labelled time span); the transformer
    learns its vocabulary, critical items and routes from them alone. `span` (first, last
    event ns) is the whole log's when `log` is a sample of its journeys (`labelled_snapshots`).
    """
    test_from = test_from if test_from is not None else default_test_from(log, task)
    labelled = labelled_snapshots(log, task, test_from, span)
    transformer = fit_transformer(labelled, task, test_from, transformer_params)
    frame = dataset_frame(labelled, transformer)
    return Dataset(frame, labelled.snapshots, transformer, test_from, labelled.excluded)


def labelled_snapshots(
    log: EventLog,
    task: TaskConfig,
    test_from: pd.Timestamp,
    span: tuple[int, int] | None = None,
) -> Labelled:
    """The task's snapshots of `log` in its population with a known label, and their split.

    `span` (first, last event ns; default the log's) places the snapshot grid and the end of
    the data: a part of a larger log passes the whole log's, and gets exactly its rows."""
    every = task_snapshots(log, task, span)
    in_population = eligibility(every, task).eligible
    snapshots = every.subset(in_population)
    data_end = pd.Timestamp(span[1], tz="UTC") if span is not None else None
    outcomes = label_snapshots(log, task, snapshots.journeys, snapshots.as_of, data_end)
    excluded = {
        "outside_population": int((~in_population).sum()),
        "already_happened": int(outcomes.already_happened.sum()),
        "censored": int((outcomes.censored & ~outcomes.already_happened).sum()),
    }
    snapshots = snapshots.subset(outcomes.labelled)
    y = outcomes.positive[outcomes.labelled]
    return Labelled(snapshots, y, time_split(snapshots.as_of, task, test_from), excluded)


def fit_transformer(
    labelled: Labelled,
    task: TaskConfig,
    test_from: pd.Timestamp,
    transformer_params: dict[str, Any] | None = None,
) -> PathFeatures:
    """`PathFeatures` fitted on the training rows of `labelled` (labels closed before
    `test_from`)."""
    train = labelled.split == "train"
    if not train.any():
        raise ValueError(
            f"task {task.name!r}: no snapshot's label window closes before the "
            f"test period starts at {test_from.isoformat()}; choose a later "
            "test start or a shorter horizon"
        )
    from journeyguard.features.transformer import PathFeatures

    transformer = PathFeatures(**(transformer_params or {}))
    return transformer.fit(labelled.snapshots.subset(train), labelled.y[train])


def dataset_frame(labelled: Labelled, transformer: PathFeatures) -> pd.DataFrame:
    """customer_id, as_of, y, split, then the features of each labelled snapshot."""
    snapshots = labelled.snapshots
    keys = pd.DataFrame(
        {
            "customer_id": snapshots.customer_ids.astype(str),
            "as_of": pd.DatetimeIndex(snapshots.as_of.view("datetime64[ns]")).tz_localize("UTC"),
            "y": labelled.y.astype(np.int8),
            "split": labelled.split,
        }
    )
    return pd.concat([keys, transformer.transform(snapshots)], axis=1)


def features_at(
    log: EventLog, as_of: pd.Timestamp, transformer_params: dict[str, Any] | None = None
) -> pd.DataFrame:
    """One row per journey active at `as_of` (an event at or before it): customer_id, as_of
    and the features, the vocabulary learned from those same events (`current.features_table`
    as a frame)."""
    snapshots, vocabulary = active_at(log, as_of.value, transformer_params)
    return features_frame(snapshots, vocabulary, as_of)


def features_frame(
    snapshots: Snapshots, vocabulary: Vocabulary, as_of: pd.Timestamp
) -> pd.DataFrame:
    """customer_id, as_of and the features (`features.build`) of snapshots taken at `as_of`:
    PathFeatures' code, without scikit-learn; one frame of keys and features."""
    features = feature_columns(snapshots, vocabulary)
    keys = {"customer_id": snapshots.customer_ids.astype(str), "as_of": pd.Timestamp(as_of)}
    # The frame holds the arrays as they are: stacking 164 columns into one block would copy
    # them all (fresh pages, in a new process) for a writer that reads them column by column.
    return pd.DataFrame(keys | features, index=pd.RangeIndex(len(snapshots)), copy=False)
