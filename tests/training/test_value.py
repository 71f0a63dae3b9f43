"""What is at stake (training.value): expected spend over a horizon from the log's purchases,
with no look-ahead, and NaN with a reason where the log cannot say."""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd

from journeyguard.features.eventlog.frames import log_from_frame, log_to_frame
from journeyguard.features.eventlog.log import Snapshots
from journeyguard.features.sources.simulate import simulate
from journeyguard.training import bgnbd, spend, value

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


def test_the_summary_from_the_log_arrays_is_spend_summary_of_its_purchases():
    """`value` summarises the log's purchases from its journey codes and int64 times; the
    numbers, the fitted models and the values must be those of `spend_summary` on the same
    purchases with text ids (as they were computed before), to the bit. The log has same-day
    purchases (some at one instant), refunds and zeros (not purchases), missing values,
    purchases after as_of and customers who never bought."""
    events = simulate(1_500, seed=4).events
    bought = events[events["value"] > 0]
    same_day = bought.sample(frac=0.5, random_state=1)
    later = same_day.assign(timestamp=same_day["timestamp"] + pd.Timedelta(minutes=30))
    refunds = bought.sample(frac=0.2, random_state=2).assign(value=lambda f: -f["value"])
    zeros = bought.sample(frac=0.1, random_state=3).assign(value=0.0)
    times = events["timestamp"]
    as_of = times.min() + (times.max() - times.min()) * 2 / 3
    first = events[events["customer_id"] == events.loc[times.idxmin(), "customer_id"]]
    never = first.assign(customer_id="Z0", value=np.nan)
    not_yet = first.assign(customer_id="Z1", value=first["value"].where(times > as_of))
    extra = [same_day, later, later, refunds, zeros, never, not_yet]
    log = log_from_frame(pd.concat([events, *extra], ignore_index=True))
    snapshots = Snapshots.at(log, as_of)

    frame = log_to_frame(log)  # the log's order: a day's values are added in it
    purchases = frame[(frame["value"] > 0) & (frame["timestamp"] <= as_of)]
    ids = purchases["customer_id"].astype(str).to_numpy()
    summary = spend.spend_summary(ids, purchases["timestamp"], purchases["value"], as_of)
    assert {"Z0", "Z1"} <= set(snapshots.customer_ids) - set(summary.index)
    row = summary.reindex(pd.Index(snapshots.customer_ids.astype(str)))
    weeks_known = (snapshots.as_of - log.times[snapshots.starts]) / (7 * bgnbd.DAY_NS)
    want = (
        row["frequency"].fillna(0).to_numpy(float),
        row["recency"].fillna(0).to_numpy(),
        row["T"].fillna(pd.Series(weeks_known, index=row.index)).to_numpy(),
        row["monetary"].fillna(0).to_numpy(),
    )
    got = value._of_snapshots(value._summary(log, as_of.value), snapshots)
    for name, got_column, want_column in zip(summary.columns, got, want, strict=True):
        np.testing.assert_array_equal(got_column, want_column, err_msg=name)

    models = value.value_models(log, as_of.value)
    rates = bgnbd.fit(summary["frequency"], summary["recency"], summary["T"])
    amounts = spend.fit(summary["frequency"], summary["monetary"])
    assert models == value.ValueModels(rates, amounts)
    found = value.customer_values(snapshots, HORIZON, as_of)
    expected = spend.customer_value(rates, amounts, *want, HORIZON / datetime.timedelta(weeks=1))
    np.testing.assert_array_equal(found.value, expected)
