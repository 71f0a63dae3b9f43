"""The group operations against plain numpy and Python, on both of their code paths."""

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journeyguard.features import arrays

QUANTILES = (0.0, 0.5, 0.95, 1.0)


@pytest.mark.parametrize("n_groups", [8, arrays._FEW_GROUPS + 1])
@settings(max_examples=40, deadline=None)
@given(
    members=st.lists(
        st.tuples(st.integers(0, 6), st.floats(0, 1e6, allow_nan=False)), min_size=1, max_size=60
    )
)
@pytest.mark.parametrize("by_group", [False, True])
def test_group_quantiles_equal_numpy_per_group(members, n_groups, by_group):
    # Both paths: partitioning each group (few groups) and one sort of every value (many);
    # groups 7 and up are always empty. Members already in group order skip the grouping.
    members = sorted(members, key=lambda member: member[0]) if by_group else members
    groups = np.array([group for group, _ in members])
    values = np.array([value for _, value in members])

    result = arrays.group_quantiles(groups, values, n_groups, QUANTILES)

    for group in range(n_groups):
        mine = values[groups == group]
        if len(mine) == 0:
            assert np.isnan(result[group]).all()
        else:
            assert result[group].tolist() == np.quantile(mine, QUANTILES).tolist()


@pytest.mark.parametrize("sort_journeys", [True, False])
@settings(max_examples=40, deadline=None)
@given(pairs=st.lists(st.tuples(st.integers(0, 9), st.integers(0, 4)), min_size=1, max_size=60))
def test_count_distinct_journeys_equals_a_set_count(pairs, sort_journeys):
    # Sorted journeys take the radix path, unsorted ones the table of flags.
    pairs = sorted(pairs) if sort_journeys else pairs
    journeys = np.array([journey for journey, _ in pairs])
    items = np.array([item for _, item in pairs])
    weights = np.arange(10, dtype=np.float64) + 0.5

    counts = arrays.count_distinct_journeys(journeys, items, 6)
    weighted = arrays.count_distinct_journeys(journeys, items, 6, weights)

    distinct = set(pairs)
    expected = [sum(1 for _, item in distinct if item == i) for i in range(6)]
    expected_weights = [sum(weights[j] for j, item in distinct if item == i) for i in range(6)]
    assert counts.tolist() == expected
    np.testing.assert_allclose(weighted, expected_weights)


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.integers(-1000, 1000), max_size=40)
    | st.lists(st.floats(-1e6, 1e6, allow_nan=False), max_size=40)
)
def test_quantiles_equal_numpy(values):
    array = np.array(values)
    result = arrays.quantiles(array, QUANTILES)
    if len(array) == 0:
        assert np.isnan(result).all()
    else:
        assert result.tolist() == np.quantile(array, QUANTILES).tolist()


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(
        st.floats(-1e12, 1e12, allow_nan=False) | st.just(float("nan")), min_size=1, max_size=50
    ),
    runs=st.lists(st.tuples(st.integers(0, 49), st.integers(0, 12)), max_size=12),
)
def test_segments_reduce_each_run_in_its_order(values, runs):
    # Sums as a loop over each run alone rounds them (to the last bit), maxima with NaN;
    # runs may be empty, overlap, or come in any order.
    values = np.array(values)
    runs = [(start % len(values), length) for start, length in runs]
    runs = [(start, min(length, len(values) - start)) for start, length in runs]
    starts = np.array([start for start, _ in runs], dtype=np.int64)
    lengths = np.array([length for _, length in runs], dtype=np.int64)
    segments = arrays.Segments(starts, lengths)

    sums = segments.reduce(values, np.add, 0.0)
    peaks = segments.reduce(values, np.maximum, np.nan)
    paired = segments.reduce(np.stack([values, -values], axis=1), np.add, 0.0)

    for i, (start, length) in enumerate(runs):
        run = values[start : start + length]
        total = 0.0 if length == 0 else functools.reduce(lambda a, b: a + b, run.tolist())
        assert sums[i] == total or (np.isnan(sums[i]) and np.isnan(total))
        assert paired[i, 0] == sums[i] or np.isnan(sums[i])
        if length == 0:
            assert np.isnan(peaks[i])
        else:
            assert np.array_equal(peaks[i], np.maximum.reduce(run), equal_nan=True)
