"""The loaded log does not depend on the order of the input rows (property tests)."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journeyguard.features.config.model import SourceConfig
from journeyguard.features.eventlog.frames import log_from_frame, log_to_frame
from journeyguard.features.sources.load import load_events

pytestmark = pytest.mark.slow  # property tests of a second or more each

rows = st.lists(
    st.tuples(
        st.sampled_from(["c1", "c2", "c10", "x"]),
        st.integers(0, 5).map(lambda h: f"2024-01-01T0{h}:00:00Z"),
        st.sampled_from(["order", "ticket", "refund"]),
        st.one_of(st.none(), st.sampled_from([1.0, 2.5])),
    ),
    min_size=1,
    max_size=30,
)


def frame(data) -> pd.DataFrame:
    return pd.DataFrame(data, columns=["customer_id", "timestamp", "event", "value"])


@settings(deadline=None)  # timing is the benchmarks' business, not a test's
@given(rows, st.randoms(use_true_random=False))
def test_event_log_is_independent_of_row_order(data, random):
    shuffled = list(data)
    random.shuffle(shuffled)
    a, b = log_from_frame(frame(data)), log_from_frame(frame(shuffled))
    pd.testing.assert_frame_equal(log_to_frame(a), log_to_frame(b))
    assert (a.offsets == b.offsets).all() and (a.step_codes == b.step_codes).all()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows, st.randoms(use_true_random=False))
def test_loading_a_file_is_independent_of_row_order(tmp_path, data, random):
    shuffled = list(data)
    random.shuffle(shuffled)
    logs = []
    for name, content in (("a.csv", data), ("b.csv", shuffled)):
        path = tmp_path / name
        frame(content).to_csv(path, index=False)
        logs.append(load_events(SourceConfig(path=path)))
    pd.testing.assert_frame_equal(log_to_frame(logs[0].log), log_to_frame(logs[1].log))
    assert logs[0].summary.quarantined == logs[1].summary.quarantined
