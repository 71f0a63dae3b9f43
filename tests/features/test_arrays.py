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


# Both paths of `integer_group_quantiles`: one sort of packed values (no number of bins is
# few enough), or counts per (group, bucket) (any number is).
SORTED, BUCKETED = 0, 1 << 40


@pytest.mark.parametrize("few_bins", [SORTED, BUCKETED])
@pytest.mark.parametrize("n_groups", [1, 7, 300])
@pytest.mark.parametrize("chunk", [7, 1 << 18])
@pytest.mark.parametrize("divisor", [1, 3_600_000_000_000])
@settings(max_examples=60, deadline=None)
@given(
    members=st.lists(
        st.tuples(
            st.integers(0, 6),
            st.integers(0, 2**32).map(lambda v: v * 1_000_000_000)  # whole seconds in ns
            | st.integers(-(2**62), 2**62)  # too wide to pack: the fallback
            | st.integers(-5, 5)
            | st.integers(120, 140),  # around the first bucket of two values
        ),
        min_size=1,
        max_size=60,
    )
)
def test_integer_group_quantiles_equal_group_quantiles_of_the_quotients(
    members, n_groups, divisor, chunk, few_bins
):
    groups = np.array([group for group, _ in members]) % n_groups
    values = np.array([value for _, value in members], dtype=np.int64)

    # Packed or bucketed a few values at a time, or all at once.
    before = arrays._PACKED_CHUNK, arrays._FEW_BINS
    arrays._PACKED_CHUNK, arrays._FEW_BINS = chunk, few_bins
    try:
        result = arrays.integer_group_quantiles(groups, values, n_groups, QUANTILES, divisor)
    finally:
        arrays._PACKED_CHUNK, arrays._FEW_BINS = before

    expected = arrays.group_quantiles(groups, values / divisor, n_groups, QUANTILES)
    np.testing.assert_array_equal(result, expected)  # NaN where empty, the rest to the bit


def _skewed_values(rng: np.random.Generator, n: int) -> np.ndarray:
    """Times in nanoseconds as a log has them: many ties (zeros, small positions, whole
    seconds), long tails past 2**53 (where floats round), a few negative."""
    kinds = rng.integers(0, 5, n)
    return np.select(
        [kinds == 0, kinds == 1, kinds == 2, kinds == 3],
        [
            np.zeros(n, dtype=np.int64),
            rng.integers(1, 200, n),
            np.minimum(rng.lognormal(28, 4, n), 2.0**61).astype(np.int64) // 10**9 * 10**9,
            rng.integers(2**53, 2**60, n),
        ],
        rng.integers(-(10**12), 10**12, n),
    )


@pytest.mark.parametrize("few_bins", [SORTED, BUCKETED])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n_groups", [1, 18, 140])
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint32])
def test_integer_group_quantiles_on_many_skewed_values(
    seed, n_groups, dtype, few_bins, monkeypatch
):
    monkeypatch.setattr(arrays, "_FEW_BINS", few_bins)
    # Thousands of values per group, so that wanted ranks fall in buckets of many values.
    rng = np.random.default_rng(seed)
    n = 200_000
    groups = (rng.zipf(1.5, n) - 1) % n_groups  # some groups large, some empty
    values = _skewed_values(rng, n)
    if dtype != np.int64:
        values = (values % 2**31).astype(dtype)
    quantiles = (0.0, 0.05, 0.5, 0.95, 0.99, 1.0)

    result = arrays.integer_group_quantiles(groups, values, n_groups, quantiles, 3_600)

    expected = arrays.group_quantiles(groups, values / 3_600, n_groups, quantiles)
    np.testing.assert_array_equal(result, expected)


@pytest.mark.parametrize("few_bins", [SORTED, BUCKETED])
@pytest.mark.parametrize("seed", [0, 1])
def test_nested_group_quantiles_equal_those_of_groups_and_of_parents(seed, few_bins, monkeypatch):
    # Parents' quantiles come from their groups' bins added up: the same as counting anew.
    monkeypatch.setattr(arrays, "_FEW_BINS", few_bins)
    rng = np.random.default_rng(seed)
    n, n_groups, n_parents = 50_000, 40, 9
    groups = (rng.zipf(1.5, n) - 1) % n_groups
    parents = rng.integers(0, n_parents - 1, n_groups)  # the last parent has no group
    values = _skewed_values(rng, n)
    quantiles = (0.0, 0.5, 0.95, 1.0)

    by_group, by_parent = arrays.nested_group_quantiles(
        groups, values, n_groups, parents, n_parents, quantiles, 3_600
    )

    expected_parents = arrays.group_quantiles(parents[groups], values / 3_600, n_parents, quantiles)
    np.testing.assert_array_equal(by_parent, expected_parents)
    expected_groups = arrays.group_quantiles(groups, values / 3_600, n_groups, quantiles)
    np.testing.assert_array_equal(by_group, expected_groups)


def test_integer_group_quantiles_of_nothing_and_of_one_value():
    empty = arrays.integer_group_quantiles(np.zeros(0, np.int64), np.zeros(0, np.int64), 2)
    assert empty.shape == (2, 2) and np.isnan(empty).all()
    one = arrays.integer_group_quantiles(np.array([1]), np.array([7200]), 2, (0.5,), 3600)
    assert np.isnan(one[0, 0]) and one[1, 0] == 2.0


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


@pytest.mark.parametrize("flag_bytes", [6, 13, 1_000])
def test_count_distinct_journeys_by_blocks_of_flags(monkeypatch, flag_bytes):
    # Sorted journeys without weights set flags a block of journeys at a time: one journey
    # per block, a few, or all of them.
    monkeypatch.setattr(arrays, "_FLAG_BYTES", flag_bytes)
    rng = np.random.default_rng(3)
    journeys = np.sort(rng.integers(5, 40, 300))
    items = rng.integers(0, 6, 300)

    counts = arrays.count_distinct_journeys(journeys, items, 6)

    distinct = set(zip(journeys.tolist(), items.tolist(), strict=True))
    assert counts.tolist() == [sum(1 for _, i in distinct if i == item) for item in range(6)]


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


@pytest.mark.parametrize("slots", [1, 7, 1_000])
@settings(max_examples=40, deadline=None)
@given(pairs=st.lists(st.tuples(st.integers(0, 9), st.integers(0, 4)), max_size=60))
def test_first_by_journey_is_first_in_journeys_journey_by_journey(pairs, slots):
    # A block of one journey (a slot per item of it), of one or two, or of all of them.
    arrays._FIRSTS_PER_BLOCK, before = slots, arrays._FIRSTS_PER_BLOCK
    try:
        journeys = np.array(sorted(journey for journey, _ in pairs), dtype=np.int64)
        items = np.array([item for _, item in pairs], dtype=np.int64)
        # Journeys 0..11, some without events; a log's offsets of them.
        offsets = np.searchsorted(journeys, np.arange(13))
        journey, first = arrays.first_by_journey(offsets, items, 5)
    finally:
        arrays._FIRSTS_PER_BLOCK = before

    expected = {}
    for index, key in enumerate(zip(journeys.tolist(), items.tolist(), strict=True)):
        expected.setdefault(key, index)
    assert list(zip(journey.tolist(), first.tolist(), strict=True)) == [
        (key[0], expected[key]) for key in sorted(expected)
    ]
    assert sorted(first.tolist()) == sorted(arrays.first_in_journeys(journeys, items, 5).tolist())


@settings(max_examples=50, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 5)), max_size=20))
def test_ranges_and_the_rows_of_groups_are_the_concatenated_slices(spans):
    starts = np.array([s for s, _ in spans], dtype=np.int64)
    lengths = np.array([n for _, n in spans], dtype=np.int64)
    expected = [i for s, n in spans for i in range(s, s + n)]
    assert arrays.ranges(starts, lengths).tolist() == expected
    offsets = np.r_[0, np.cumsum(lengths)]
    groups = np.flatnonzero(lengths % 2 == 0)
    rows = [i for g in groups for i in range(offsets[g], offsets[g + 1])]
    assert arrays.rows_of_groups(offsets, groups).tolist() == rows
