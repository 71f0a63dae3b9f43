"""What is at stake (training.value): expected spend over a horizon from the log's purchases,
with no look-ahead, and NaN with a reason where the log cannot say."""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd

from journeyguard.features.eventlog.frames import log_from_frame
from journeyguard.features.eventlog.log import Snapshots
from journeyguard.features.sources.simulate import simulate
from journeyguard.training import value

HORIZON = datetime.timedelta(days=60)


def test_a_log_without_purchase_values_has_no_value_and_says_why():
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "a", "b"],
            "timestamp": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-01-05"], utc=True),
            "event": ["order", "order", "order"],
        }
    )
    log = log_from_frame(frame)
    as_of = pd.Timestamp("2024-03-01", tz="UTC")
    found = value.customer_values(Snapshots.at(log, as_of), HORIZON, as_of)
    assert np.isnan(found.value).all()
    assert found.reason == "the log has no purchase values"


def test_values_on_the_simulator_follow_purchases_and_never_see_the_future():
    events = simulate(1_500, seed=4).events
    log = log_from_frame(events)
    as_of = pd.Timestamp((log.first_time + 2 * log.last_time) // 3, tz="UTC")
    snapshots = Snapshots.at(log, as_of)
    found = value.customer_values(snapshots, HORIZON, as_of)
    assert found.reason is None
    assert np.isfinite(found.value).all() and (found.value >= 0).all()
    # The same value from the log as it stood at as_of: later purchases change nothing.
    past = log.until(as_of)
    then = value.customer_values(Snapshots.at(past, as_of), HORIZON, as_of)
    np.testing.assert_allclose(found.value, then.value, rtol=1e-9)
    # Customers who bought more often so far are worth more over the next 60 days.
    seen = events[pd.to_datetime(events["timestamp"], utc=True) <= as_of]
    buys = seen[seen["value"] > 0].groupby("customer_id", observed=True).size()
    count = buys.reindex(snapshots.customer_ids.astype(str), fill_value=0).to_numpy()
    frequent, rare = found.value[count >= 3].mean(), found.value[count <= 1].mean()
    assert frequent > rare
    # A longer horizon is worth more to everyone.
    longer = value.customer_values(snapshots, 2 * HORIZON, as_of)
    assert (longer.value > found.value).all()
