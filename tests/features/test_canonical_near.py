"""The stored events an append's events could equal (`read_canonical_arrow_near`) against a
plain selection of the events that share journey and time with one of them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journeyguard.features.eventlog import canonical
from journeyguard.features.eventlog.log import Coded, EventLog

# Ids of one length (the file's dictionary searched as it lies) and of several (laid out).
SAME_LENGTH = ["a1", "a2", "b1", "b7", "c3", "d4"]
MIXED_LENGTHS = ["a", "a2", "b", "bb7", "c", "日本"]


def sorted_log(ids: list[str], times_by_journey: list[list[int]], seed: int) -> EventLog:
    """A log of the journeys `ids` (sorted, with their times), with a text and a number
    column that have missing cells."""
    order = np.argsort(np.array(ids, dtype=object))
    ids = [ids[i] for i in order]
    times = [sorted(times_by_journey[i]) for i in order]
    lengths = np.array([len(journey) for journey in times], dtype=np.int64)
    n_events = int(lengths.sum())
    rng = np.random.default_rng(seed)
    steps = np.array(["order", "visit"], dtype=object)
    channels = np.array(["chat", "email", "phone"], dtype=object)
    return EventLog(
        journey_ids=np.array(ids, dtype=object),
        offsets=np.r_[0, np.cumsum(lengths)].astype(np.int64),
        steps=steps,
        step_codes=rng.integers(0, len(steps), n_events).astype(np.int32),
        times=np.array([t for journey in times for t in journey], dtype=np.int64),
        columns={
            "channel": Coded(rng.integers(-1, 3, n_events).astype(np.int32), channels),
            "value": np.where(rng.random(n_events) < 0.3, np.nan, rng.random(n_events)),
        },
    )


def journeys_times(ids: list[str]):
    return st.lists(st.lists(st.integers(0, 12), min_size=1, max_size=5), min_size=len(ids))


@pytest.mark.parametrize("names", [SAME_LENGTH, MIXED_LENGTHS])
@settings(max_examples=60, deadline=None, derandomize=True)
@given(data=st.data(), seed=st.integers(0, 9))
def test_the_events_near_are_those_sharing_journey_and_time(tmp_path_factory, names, data, seed):
    stored_ids = data.draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
    near_ids = data.draw(
        st.lists(st.sampled_from([*names, "a", "a0", "a10", "zz"]), min_size=1, unique=True)
    )
    stored = sorted_log(stored_ids, data.draw(journeys_times(stored_ids)), seed)
    near = sorted_log(near_ids, data.draw(journeys_times(near_ids)), seed + 1)
    path = tmp_path_factory.mktemp("near") / "log.arrow"
    canonical.write_canonical_arrow(stored, path)

    log, taken = canonical.read_canonical_arrow_near(path, near)

    near_pairs = set(zip(near.journey_ids[near.journey_codes], near.times.tolist(), strict=True))
    stored_pairs = zip(stored.journey_ids[stored.journey_codes], stored.times.tolist(), strict=True)
    expected = [row for row, pair in enumerate(stored_pairs) if pair in near_pairs]
    assert taken.tolist() == expected
    held = sorted(set(stored.journey_ids.tolist()) & set(near.journey_ids.tolist()))
    assert log.journey_ids.tolist() == held
    assert (
        log.journey_ids[log.journey_codes].tolist()
        == stored.journey_ids[stored.journey_codes[expected]].tolist()
    )
    assert log.times.tolist() == stored.times[expected].tolist()
    assert log.steps[log.step_codes].tolist() == stored.steps[stored.step_codes[expected]].tolist()
    channel, stored_channel = log.columns["channel"], stored.columns["channel"]
    assert isinstance(channel, Coded) and isinstance(stored_channel, Coded)
    assert channel.categories.tolist() == sorted(set(channel.categories.tolist()))
    assert _texts(channel) == [_texts(stored_channel)[row] for row in expected]
    assert np.array_equal(log.columns["value"], stored.columns["value"][expected], equal_nan=True)


def _texts(column: Coded) -> list[str | None]:
    return [None if code < 0 else column.categories[code] for code in column.codes.tolist()]
