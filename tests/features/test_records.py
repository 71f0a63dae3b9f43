"""`log_from_records` builds the same canonical log as the frame path, without pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journeyguard.features.eventlog.frames import log_from_frame
from journeyguard.features.eventlog.log import Coded, EventLog
from journeyguard.features.eventlog.records import log_from_records

STEPS = ["order_placed", "delivered", "ticket_opened", "escalated"]
events = st.tuples(
    st.sampled_from(["b", "a", "c"]),  # journey
    st.integers(0, 5),  # time: few values, so ties must be broken the same way
    st.sampled_from(STEPS),
    st.none() | st.sampled_from(["web", "phone"]),  # channel
    st.none() | st.sampled_from([1.5, 20.0, -3.0]),  # value
    st.none() | st.sampled_from(["gold", "basic"]),  # an attribute
)


def assert_same_log(left: EventLog, right: EventLog) -> None:
    np.testing.assert_array_equal(left.journey_ids, right.journey_ids)
    np.testing.assert_array_equal(left.offsets, right.offsets)
    np.testing.assert_array_equal(left.steps, right.steps)
    np.testing.assert_array_equal(left.step_codes, right.step_codes)
    np.testing.assert_array_equal(left.times, right.times)
    assert list(left.columns) == list(right.columns)
    for name, column in left.columns.items():
        other = right.columns[name]
        if isinstance(column, Coded):
            np.testing.assert_array_equal(column.values(), other.values())
        else:
            np.testing.assert_array_equal(column, other)


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(st.lists(events, min_size=1, max_size=25))
def test_records_and_frames_give_the_same_log(rows):
    journeys, times, steps, channels, values, tiers = (list(c) for c in zip(*rows, strict=True))
    times_ns = [t * 3_600 * 10**9 for t in times]
    from_records = log_from_records(
        journeys,
        times_ns,
        steps,
        {"tier": tiers, "value": np.array(values, dtype=float), "channel": channels},
    )
    frame = pd.DataFrame(
        {
            "customer_id": journeys,
            "timestamp": pd.to_datetime(times_ns, utc=True),
            "event": steps,
            "channel": pd.Series(channels, dtype=object),
            "value": pd.Series(values, dtype="float64"),
            "tier": pd.Series(tiers, dtype=object),
        }
    )
    assert_same_log(from_records, log_from_frame(frame))


def test_missing_text_is_minus_one_and_missing_numbers_nan():
    log = log_from_records(
        ["x", "x"],
        [2, 1],
        ["b", "a"],
        {"channel": [None, "web"], "value": np.array([np.nan, 2.0])},
    )
    assert list(log.steps[log.step_codes]) == ["a", "b"]  # sorted by time
    assert list(log.columns["channel"].codes) == [0, -1]
    np.testing.assert_array_equal(log.columns["value"], [2.0, np.nan])
