"""An `EventLog` from plain lists, without a pandas frame: the prediction service's requests.

A request carries a few journeys of a few dozen events; building a frame for each would cost
more than the features themselves. `log_from_records` puts the lists in the same canonical
form as `frames.log_from_frame` (sorted codes, rows by journey, time, then every other
column), so a journey sent to the service gets the features it gets in batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from journeyguard.features.arrays import codes_in
from journeyguard.features.eventlog.columns import CANONICAL_COLUMNS
from journeyguard.features.eventlog.log import Coded, EventLog


def log_from_records(
    journey_ids: Sequence[str],
    times: Sequence[int],
    events: Sequence[str],
    columns: Mapping[str, Sequence[str | None] | np.ndarray] | None = None,
) -> EventLog:
    """Canonical form of parallel lists: one entry per event, times in int64 ns UTC.

    `columns` holds the optional columns: a float array for numbers (NaN for missing), a list
    of texts (None for missing) otherwise. Canonical columns come first, then the attributes
    in the given order, as in a frame read by `journeyguard.features.sources.load`.
    """
    journey_names, journey_codes = _encode(journey_ids)
    step_names, step_codes = _encode(events)
    time_values = np.asarray(times, dtype=np.int64)
    given = dict(columns or {})
    ordered = [c for c in CANONICAL_COLUMNS if c in given] + [
        c for c in given if c not in CANONICAL_COLUMNS
    ]
    encoded: dict[str, Coded | np.ndarray] = {}
    keys = [journey_codes, time_values, step_codes]
    for name in ordered:
        values = given[name]
        if isinstance(values, np.ndarray) and values.dtype.kind == "f":
            encoded[name] = values.astype(np.float64)
            keys.append(_rank(encoded[name]))
        else:
            categories, codes = _encode(values)
            encoded[name] = Coded(codes, categories)
            keys.append(codes)
    order = np.lexsort(keys[::-1])  # lexsort's last key is the primary one
    counts = np.bincount(journey_codes, minlength=len(journey_names))
    return EventLog(
        journey_ids=journey_names,
        offsets=np.concatenate(([0], np.cumsum(counts))).astype(np.int64),
        steps=step_names,
        step_codes=step_codes[order],
        times=time_values[order],
        columns={
            name: column.take(order) if isinstance(column, Coded) else column[order]
            for name, column in encoded.items()
        },
    )


def _encode(values: Sequence[str | None] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct values and an int32 code per value (-1 for None), as
    `pd.factorize(sort=True)` gives them; a dict is faster on a request's few values."""
    values = values.tolist() if isinstance(values, np.ndarray) else values
    distinct = sorted({value for value in values if value is not None})
    codes = codes_in(distinct, values).astype(np.int32)
    categories = np.empty(len(distinct), dtype=object)
    categories[:] = distinct
    return categories, codes


def _rank(values: np.ndarray) -> np.ndarray:
    """Numbers as sort keys the way `pd.factorize(sort=True)` ranks them: missing first."""
    missing = np.isnan(values)
    distinct = np.unique(values[~missing])
    return np.where(missing, -1, np.searchsorted(distinct, values))
