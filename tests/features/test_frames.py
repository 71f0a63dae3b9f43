"""Canonical order: the sort by journey and time that settles ties by the other columns equals
one sort by every column, whatever the ties."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from journeyguard.features.eventlog.frames import canonical_order, encode

rows = st.lists(
    st.tuples(
        st.sampled_from("abc"),
        st.integers(0, 2),
        st.sampled_from("xyz"),
        st.one_of(st.none(), st.integers(0, 2)),
        st.sampled_from(["p", "q", None]),
    ),
    min_size=1,
    max_size=60,
)


def sorted_by_every_column(events: pd.DataFrame) -> np.ndarray:
    keys = []
    for column in reversed(events.columns):
        series = events[column]
        if isinstance(series.dtype, pd.CategoricalDtype):
            keys.append(series.cat.codes.to_numpy())
        elif column == "timestamp":
            keys.append(series.to_numpy(dtype="datetime64[ns]").view(np.int64))
        else:
            keys.append(pd.factorize(series, sort=True)[0])
    return np.lexsort(keys)


# Hours pack journey and time into one sort key; "wide" times (4e18 ns apart, one ns off the
# grid) do not fit 63 bits, so they take the sort by two keys.
@settings(max_examples=100, deadline=None, derandomize=True)
@given(rows, st.sampled_from(["hours", "wide"]))
def test_canonical_order_is_the_sort_by_every_column(lines, spacing):
    frame = pd.DataFrame(lines, columns=["customer_id", "hour", "event", "value", "segment"])
    hour = frame.pop("hour")
    if spacing == "hours":
        offset = pd.to_timedelta(hour, unit="h")
    else:
        offset = pd.to_timedelta(hour * 4 * 10**18 + hour % 2, unit="ns")
    frame["timestamp"] = pd.Timestamp("1970-01-01", tz="UTC") + offset
    frame["value"] = frame["value"].astype("float64")
    events = encode(frame)
    assert np.array_equal(canonical_order(events), sorted_by_every_column(events))
