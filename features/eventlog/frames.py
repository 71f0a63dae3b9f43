"""Between pandas frames and `EventLog`: encoding, canonical order, and back.

`log_from_frame` trusts the values it is given (validation lives in `sources.load`); it
only puts them in canonical form: text dictionary-encoded in sorted order, times as UTC
nanoseconds, rows sorted by journey, time and then every other column.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from journeyguard.features.eventlog import order
from journeyguard.features.eventlog.canonical import read_canonical
from journeyguard.features.eventlog.columns import (
    CANONICAL_COLUMNS,
    CUSTOMER_ID,
    EVENT,
    OPTIONAL_NUMBER_COLUMNS,
    OPTIONAL_TEXT_COLUMNS,
    REQUIRED_COLUMNS,
    TIME_DTYPE,
    TIMESTAMP,
)
from journeyguard.features.eventlog.log import Coded, EventLog


def log_from_frame(frame: pd.DataFrame) -> EventLog:
    """Canonical form of a frame with at least `customer_id`, `timestamp` and `event`."""
    events = encode(frame)
    return log_from_encoded(events.iloc[canonical_order(events)])


def log_from_encoded(events: pd.DataFrame) -> EventLog:
    """An `EventLog` of a frame that `encode` made and `canonical_order` sorted."""
    journey = events[CUSTOMER_ID].array
    counts = np.bincount(journey.codes, minlength=len(journey.categories))
    columns = {}
    for name in events.columns:
        if name in REQUIRED_COLUMNS:
            continue
        values = events[name]
        if isinstance(values.dtype, pd.CategoricalDtype):
            columns[name] = Coded(
                values.cat.codes.to_numpy().astype(np.int32),
                values.cat.categories.to_numpy(dtype=object),
            )
        else:
            columns[name] = values.to_numpy(dtype=np.float64)
    return EventLog(
        journey_ids=journey.categories.to_numpy(dtype=object),
        offsets=np.concatenate(([0], np.cumsum(counts))).astype(np.int64),
        steps=events[EVENT].cat.categories.to_numpy(dtype=object),
        step_codes=events[EVENT].cat.codes.to_numpy().astype(np.int32),
        times=events[TIMESTAMP].to_numpy(dtype="datetime64[ns]").view(np.int64),
        columns=columns,
    )


def read_log(path: str | Path) -> EventLog:
    """A Parquet log: straight into arrays when `write_canonical` wrote it, else through a frame."""
    log = read_canonical(path)
    return log if log is not None else log_from_frame(pd.read_parquet(path))


def concat_logs(first: EventLog, second: EventLog) -> EventLog:
    """One canonical log of both logs' events, as if they had been one frame: a column only one
    side has is missing on the other side's events."""
    if second.n_events == 0:
        return first
    frame = pd.concat([log_to_frame(first), log_to_frame(second)], ignore_index=True)
    return log_from_frame(frame)


def log_to_frame(log: EventLog) -> pd.DataFrame:
    """The log as a frame: categoricals for text, UTC times, floats for numbers."""
    frame = pd.DataFrame(
        {
            CUSTOMER_ID: pd.Categorical.from_codes(log.journey_codes, log.journey_ids),
            TIMESTAMP: pd.DatetimeIndex(log.times.view("datetime64[ns]")).tz_localize("UTC"),
            EVENT: pd.Categorical.from_codes(log.step_codes, log.steps),
        }
    )
    for name, column in log.columns.items():
        frame[name] = (
            pd.Categorical.from_codes(column.codes, column.categories)
            if isinstance(column, Coded)
            else column
        )
    return frame


def encode(frame: pd.DataFrame) -> pd.DataFrame:
    """Canonical columns first, then attributes; text dictionary-encoded in sorted order, times
    as UTC nanoseconds, numbers as float64. Rows keep their order and index."""
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"an event log needs the columns {missing}; got {list(frame.columns)}")
    present = [c for c in CANONICAL_COLUMNS if c in frame.columns]
    attributes = [c for c in frame.columns if c not in CANONICAL_COLUMNS]
    events = frame[present + attributes].copy()
    events[TIMESTAMP] = pd.to_datetime(events[TIMESTAMP], utc=True).astype(TIME_DTYPE)
    for column in (CUSTOMER_ID, EVENT, *OPTIONAL_TEXT_COLUMNS):
        if column in events.columns:
            events[column] = _sorted_categorical(events[column])
    for column in OPTIONAL_NUMBER_COLUMNS:
        if column in events.columns:
            events[column] = pd.to_numeric(events[column]).astype("float64")
    for column in attributes:
        values = events[column]
        if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
            events[column] = values.astype("float64")
        else:  # text, whatever its dtype: dictionary-encoded like the canonical text columns
            events[column] = _sorted_categorical(values)
    return events


def canonical_order(events: pd.DataFrame) -> np.ndarray:
    """Row order by journey, time, then every other column (`eventlog.order`): total, so input
    order cannot show. Stable: rows equal in every column keep their relative order."""
    others = [
        events[column].cat.codes.to_numpy()
        if isinstance(events[column].dtype, pd.CategoricalDtype)
        else events[column].to_numpy(dtype=np.float64)
        for column in events.columns
        if column not in (CUSTOMER_ID, TIMESTAMP)
    ]
    return order.canonical_order(
        events[CUSTOMER_ID].cat.codes.to_numpy(),
        events[TIMESTAMP].to_numpy(dtype="datetime64[ns]").view(np.int64),
        others,
    )


def _sorted_categorical(column: pd.Series) -> pd.Categorical:
    """Dictionary-encodes text with sorted categories, none unused: codes are deterministic."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        encoded = _without_unused_categories(column)
        if not pd.api.types.is_string_dtype(encoded.cat.categories):
            encoded = encoded.cat.rename_categories(encoded.cat.categories.astype(str))
        if not encoded.cat.categories.is_monotonic_increasing:
            encoded = encoded.cat.reorder_categories(encoded.cat.categories.sort_values())
        return encoded.array
    codes, uniques = pd.factorize(column, sort=True)
    categorical = pd.Categorical.from_codes(codes, categories=pd.Index(uniques).astype(str))
    if not categorical.categories.is_monotonic_increasing:  # numbers sort apart from their text
        categorical = categorical.reorder_categories(sorted(categorical.categories))
    return categorical


def _without_unused_categories(column: pd.Series) -> pd.Series:
    """`cat.remove_unused_categories()` by one count of the codes (pandas finds the used ones
    with a sort of every row: most of `encode` on millions of events)."""
    codes = column.cat.codes.to_numpy()
    categories = column.cat.categories
    used = np.bincount(codes[codes >= 0], minlength=len(categories)) > 0
    if used.all():
        return column
    renumber = np.cumsum(used) - 1
    kept = pd.Categorical.from_codes(
        np.where(codes >= 0, renumber[np.maximum(codes, 0)], -1), categories[used]
    )
    return pd.Series(kept, index=column.index, name=column.name)
