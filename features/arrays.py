"""Vectorised group operations on the integer-coded arrays of an `EventLog`.

Groups are dense integer codes (0..n_groups-1); nothing here loops over groups in Python, and
nothing needs pandas. Distinct values come from one sort: `np.unique` costs several times more
on millions of events with this numpy.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from journeyguard.features.eventlog.log import EventLog


def positions(log: EventLog) -> np.ndarray:
    """Each event's 0-based position within its journey."""
    return np.arange(log.n_events) - log.offsets[log.journey_codes]


def next_in_journey(log: EventLog) -> tuple[np.ndarray, np.ndarray]:
    """(index, next_index) of every event that has a next event in its journey."""
    codes = log.journey_codes
    index = np.flatnonzero(codes[1:] == codes[:-1])
    return index, index + 1


def dense_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes, distinct values): codes index the sorted distinct values."""
    distinct = sorted_unique(values)
    return np.searchsorted(distinct, values), distinct


def first_occurrences(values: np.ndarray) -> np.ndarray:
    """Indices of the first occurrence of each distinct value, in array order."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    return np.sort(order[np.r_[True, ordered[1:] != ordered[:-1]]]) if len(values) else order


def last_occurrences(values: np.ndarray) -> np.ndarray:
    """Indices of the last occurrence of each distinct value, in array order."""
    reversed_first = first_occurrences(values[::-1])
    return np.sort(len(values) - 1 - reversed_first)


_FEW_GROUPS = 1_024  # up to this many groups, partition each group instead of sorting all values


def group_order(groups: np.ndarray, n_groups: int) -> np.ndarray:
    """A stable order that brings each group's members together, in their original order
    within the group. A stable sort of small integers is a radix sort: linear."""
    group_type = np.uint16 if n_groups <= np.iinfo(np.uint16).max else np.int64
    return np.argsort(groups.astype(group_type, copy=False), kind="stable")


def group_quantiles(
    groups: np.ndarray,
    values: np.ndarray,
    n_groups: int,
    quantiles: tuple[float, ...] = (0.5, 0.95),
    order: np.ndarray | None = None,
) -> np.ndarray:
    """Per group, the quantiles of `values` (numpy's linear interpolation); NaN for empty groups.
    `order` is `group_order(groups, n_groups)` where the caller has it already.

    Returns an array of shape (n_groups, len(quantiles)).
    """
    result = np.full((n_groups, len(quantiles)), np.nan)
    if len(values) == 0:
        return result
    values = np.asarray(values, dtype=np.float64)
    counts = np.bincount(groups, minlength=n_groups)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    present, exact, low, high, weight = _ranks(counts, quantiles)
    if n_groups <= _FEW_GROUPS:
        # Few groups: a linear-time selection in each beats one sort of every value.
        if order is None and not _non_decreasing(groups):
            order = group_order(groups, n_groups)
        grouped = values if order is None else values[order]
        low_values, high_values = np.empty_like(exact), np.empty_like(exact)
        for row, group in enumerate(present.tolist()):
            members = grouped[starts[group] : starts[group] + counts[group]]
            kth = sorted({*low[row].tolist(), *high[row].tolist()})
            selected = np.partition(members, kth)
            low_values[row], high_values[row] = selected[low[row]], selected[high[row]]
    else:
        by_value = np.argsort(values)
        ordered = values[by_value[group_order(groups[by_value], n_groups)]]
        first = starts[present][:, None]
        low_values, high_values = ordered[first + low], ordered[first + high]
    result[present] = _interpolated(low_values, high_values, weight)
    return result


_PACKED_CHUNK = 1 << 18
_BUCKET_BITS = 6  # a bucket's width: values whose top 7 significant bits agree (1.6 %)
_FEW_BINS = 1 << 16  # (group, bucket) bins always worth counting, however few the values


def integer_group_quantiles(
    groups: np.ndarray,
    values: np.ndarray,
    n_groups: int,
    quantiles: tuple[float, ...] = (0.5, 0.95),
    divisor: int = 1,
) -> np.ndarray:
    """`group_quantiles(groups, values / divisor, n_groups, quantiles)` to the last bit, for
    integer `values` (nanoseconds, positions); dividing the order statistics afterwards is
    exact, since it keeps their order. The order statistics come from counts of values per
    (group, logarithmic bucket) where there are fewer such bins than values (a few passes
    over the values instead of a sort), else from one sort of group and value packed into
    one int64. Values too wide for either fall back to `group_quantiles`."""
    values = np.asarray(values)
    span = _integer_span(values)
    if span is None:
        return group_quantiles(groups, values / divisor, n_groups, quantiles)
    n_buckets = _buckets_worth_counting(span, n_groups, len(values))
    if n_buckets is not None:
        bins = _Bins.of(groups, values, n_groups, n_buckets, span[0])
        statistics = _bucketed_order_statistics(bins, values, quantiles)
    else:
        statistics = _packed_order_statistics(groups, values, n_groups, quantiles, span)
    if statistics is None:
        return group_quantiles(groups, values / divisor, n_groups, quantiles)
    return _quantiles_of(statistics, n_groups, len(quantiles), divisor)


def nested_group_quantiles(
    groups: np.ndarray,
    values: np.ndarray,
    n_groups: int,
    parents: np.ndarray,
    n_parents: int,
    quantiles: tuple[float, ...] = (0.5, 0.95),
    divisor: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """`integer_group_quantiles` by group and by parent group (`parents[group]`, each group
    in one parent): the parents' bins are sums of their groups' bins, so the values are
    counted once for both."""
    values = np.asarray(values)
    span = _integer_span(values)
    n_buckets = None if span is None else _buckets_worth_counting(span, n_groups, len(values))
    if span is None or n_buckets is None:
        by_group = integer_group_quantiles(groups, values, n_groups, quantiles, divisor)
        by_parent = integer_group_quantiles(parents[groups], values, n_parents, quantiles, divisor)
        return by_group, by_parent
    bins = _Bins.of(groups, values, n_groups, n_buckets, span[0])
    by_group, by_parent = (
        _quantiles_of(_bucketed_order_statistics(b, values, quantiles), n, len(quantiles), divisor)
        for b, n in ((bins, n_groups), (bins.merged(parents, n_parents), n_parents))
    )
    return by_group, by_parent


def _integer_span(values: np.ndarray) -> tuple[int, int] | None:
    """The smallest and largest of integer values whose range fits an int64 (what the
    bucketed and packed paths take), else None."""
    if len(values) == 0 or values.dtype.kind not in "iu" or values.dtype == np.uint64:
        return None
    smallest, largest = int(values.min()), int(values.max())
    return (smallest, largest) if (largest - smallest).bit_length() <= 63 else None


def _buckets_worth_counting(span: tuple[int, int], n_groups: int, n_values: int) -> int | None:
    """The buckets per group of values in `span` where there are fewer (group, bucket) bins
    than values (or few bins), else None: a sort of the values is cheaper."""
    n_buckets = _bucket_of(span[1] - span[0]) + 1
    return n_buckets if n_groups * n_buckets <= max(n_values, _FEW_BINS) else None


def _quantiles_of(
    statistics: OrderStatistics, n_groups: int, n_quantiles: int, divisor: int
) -> np.ndarray:
    present, low, high, weight = statistics
    result = np.full((n_groups, n_quantiles), np.nan)
    result[present] = _interpolated(low / divisor, high / divisor, weight)
    return result


OrderStatistics = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _packed_order_statistics(
    groups: np.ndarray,
    values: np.ndarray,
    n_groups: int,
    quantiles: tuple[float, ...],
    span: tuple[int, int],
) -> OrderStatistics | None:
    """(groups present, the values at the ranks below and above each quantile, the upper
    one's weight) from one sort of group and value (`span`: their smallest and largest)
    packed into one int64; None where they do not fit beside each other."""
    smallest, largest = span
    group_bits = max(n_groups - 1, 0).bit_length()
    # The low bits in which no two values differ (whole seconds in nanoseconds) need no room.
    varying = int(np.bitwise_or.reduce(values)) ^ int(np.bitwise_and.reduce(values))
    shift = (varying & -varying).bit_length() - 1 if varying else 0
    value_bits = ((largest - smallest) >> shift).bit_length()
    if value_bits + group_bits > 63:
        return None
    packed = groups.astype(np.int64)
    packed <<= value_bits
    for start in range(0, len(values), _PACKED_CHUNK):  # a chunk at a time: small temporaries
        part = slice(start, start + _PACKED_CHUNK)
        packed[part] |= np.subtract(values[part], smallest, dtype=np.int64) >> shift
    packed.sort()
    starts = np.searchsorted(packed, np.arange(n_groups, dtype=np.int64) << value_bits)
    bounds = np.r_[starts, len(packed)]
    present, _, low, high, weight = _ranks(np.diff(bounds), quantiles)
    first = bounds[present][:, None]
    mask = (1 << value_bits) - 1

    def value_at(rank: np.ndarray) -> np.ndarray:
        return ((packed[first + rank] & mask) << shift) + smallest

    return present, value_at(low), value_at(high), weight


class _Bins(NamedTuple):
    """Integer values counted per (group, logarithmic bucket) bin, buckets ordered as their
    values are: each value's key (group * n_buckets + bucket), the count of each bin, and
    where keys are not bins (`merged`), the bin of each key."""

    keys: np.ndarray
    counts: np.ndarray
    n_buckets: int
    smallest: int
    bin_of_key: np.ndarray | None = None

    @classmethod
    def of(
        cls, groups: np.ndarray, values: np.ndarray, n_groups: int, n_buckets: int, smallest: int
    ) -> _Bins:
        keys = np.empty(len(values), dtype=np.int64)
        for start in range(0, len(values), _PACKED_CHUNK):  # a chunk at a time: small temporaries
            part = slice(start, start + _PACKED_CHUNK)
            keys[part] = _buckets(np.subtract(values[part], smallest, dtype=np.int64))
            keys[part] += groups[part].astype(np.int64) * n_buckets
        counts = np.bincount(keys, minlength=n_groups * n_buckets)
        return cls(keys, counts, n_buckets, smallest)

    def merged(self, parents: np.ndarray, n_parents: int) -> _Bins:
        """The bins of groups merged into their parents (`parents[group]`): added up, with
        no pass over the values."""
        assert self.bin_of_key is None
        buckets = np.arange(self.n_buckets, dtype=np.int64)
        bin_of_key = (parents.astype(np.int64)[:, None] * self.n_buckets + buckets).ravel()
        counts = np.bincount(bin_of_key, self.counts, n_parents * self.n_buckets)
        return self._replace(counts=counts.astype(np.int64), bin_of_key=bin_of_key)


def _bucketed_order_statistics(
    binned: _Bins, values: np.ndarray, quantiles: tuple[float, ...]
) -> OrderStatistics:
    """`_packed_order_statistics` without sorting the values: the cumulative counts of the
    bins name the bin that holds each wanted rank. A bin of one value (small values have one
    each) gives it; only the values of the other wanted bins are sorted, a few in a hundred."""
    counts, n_buckets = binned.counts, binned.n_buckets
    ends = np.cumsum(counts)  # where each bin's values end, in the order of bins then values
    group_ends = ends[n_buckets - 1 :: n_buckets]
    sizes = np.diff(group_ends, prepend=0)
    present, _, low, high, weight = _ranks(sizes, quantiles)
    ranks = np.concatenate((low, high), axis=1) + (group_ends - sizes)[present][:, None]
    bins = np.searchsorted(ends, ranks, side="right")
    wide = bins % n_buckets >= _FIRST_WIDE_BUCKET
    found = np.empty(bins.shape, dtype=np.int64)
    found[~wide] = _bucket_floor(bins[~wide] % n_buckets) + binned.smallest
    if wide.any():
        wanted = np.zeros(len(counts), dtype=bool)
        wanted[bins[wide]] = True
        to_bin = binned.bin_of_key
        members = np.flatnonzero((wanted if to_bin is None else wanted[to_bin])[binned.keys])
        member_bins = binned.keys[members] if to_bin is None else to_bin[binned.keys[members]]
        member_values = values[members]
        order = np.lexsort((member_values, member_bins))
        at = np.searchsorted(member_bins[order], bins[wide])
        at += ranks[wide] - (ends[bins[wide]] - counts[bins[wide]])  # the rank in its bin
        found[wide] = member_values[order[at]]
    n_quantiles = len(quantiles)
    return present, found[:, :n_quantiles], found[:, n_quantiles:], weight


# An offset's bucket keeps the exponent and top _BUCKET_BITS mantissa bits of it as a
# float64 (whose bits order as non-negative values do; converting rounds, never reorders),
# counted from 1.0's: 0 is bucket 0, 1 bucket 1, and every offset below 2**(_BUCKET_BITS + 1)
# is alone in its bucket, since its float keeps all its bits.
_BUCKET_ORIGIN = (1023 << _BUCKET_BITS) - 1


def _buckets(offsets: np.ndarray) -> np.ndarray:
    """The bucket of each non-negative int64 offset (int64, non-decreasing in the offset)."""
    bits = offsets.astype(np.float64).view(np.int64)
    bits >>= 52 - _BUCKET_BITS
    bits -= _BUCKET_ORIGIN
    return np.maximum(bits, 0, out=bits)


def _bucket_of(offset: int) -> int:
    return int(_buckets(np.array([offset], dtype=np.int64))[0])


def _bucket_floor(buckets: np.ndarray) -> np.ndarray:
    """The offset of each bucket of one value (below _FIRST_WIDE_BUCKET)."""
    bits = (buckets.astype(np.int64) + _BUCKET_ORIGIN) << (52 - _BUCKET_BITS)
    floors = bits.view(np.float64).astype(np.int64)
    floors[buckets == 0] = 0
    return floors


# The first bucket of two offsets or more, 2**(_BUCKET_BITS + 1)'s.
_FIRST_WIDE_BUCKET = ((_BUCKET_BITS + 1) << _BUCKET_BITS) + 1


def _ranks(
    counts: np.ndarray, quantiles: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(groups present, exact rank, the ranks below and above it, weight of the upper one)
    of each quantile in each present group of `counts` members, as numpy ranks them."""
    present = np.flatnonzero(counts)
    exact = np.multiply.outer(counts[present] - 1, np.asarray(quantiles, dtype=np.float64))
    low, high = np.floor(exact).astype(np.int64), np.ceil(exact).astype(np.int64)
    return present, exact, low, high, exact - low


def _interpolated(low: np.ndarray, high: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """numpy's own interpolation, so results equal np.quantile's to the last bit."""
    step = high - low
    return np.where(weight >= 0.5, high - step * (1 - weight), low + step * weight)


def quantiles(values: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
    """`np.quantile(values, qs)`, to the last bit, NaN when empty. numpy's own imports
    numpy.ma, which nothing else in `analyze` needs."""
    return group_quantiles(np.zeros(len(values), dtype=np.intp), values, 1, qs)[0]


def first_in_journeys(
    journeys: np.ndarray, items: np.ndarray, n_items: int, order: np.ndarray | None = None
) -> np.ndarray:
    """Index of each item's first event in each journey, grouped by item, for journey codes
    in sorted order (a log's). Grouping events by item (a radix sort; `order` if the caller
    has it) keeps them in log order, so journeys within an item are sorted: firsts are where
    the journey or the item changes."""
    if len(items) == 0:
        return np.zeros(0, dtype=np.int64)
    order = group_order(items, n_items) if order is None else order
    journey, item = journeys[order], items[order]
    return order[np.r_[True, (journey[1:] != journey[:-1]) | (item[1:] != item[:-1])]]


_FIRSTS_PER_BLOCK = 1 << 19  # (journey, item) slots in one block's table of first events


def first_by_journey(
    offsets: np.ndarray, items: np.ndarray, n_items: int
) -> tuple[np.ndarray, np.ndarray]:
    """(journey, index) of each item's first event in each journey of a log whose journeys
    start at `offsets` (and the last ends at offsets[-1]): the events of `first_in_journeys`,
    journey by journey and by item within one. The smallest index in each (journey, item)
    slot of a table, a block of journeys at a time: it reads the events once, in order,
    instead of sorting them, needs no journey code per event, and lookups of the result
    read the log in order too."""
    rows = max(_FIRSTS_PER_BLOCK // max(n_items, 1), 1)
    index_type = np.int32 if offsets[-1] < np.iinfo(np.int32).max else np.int64
    journeys, firsts = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    for low in range(0, len(offsets) - 1, rows):
        high = min(low + rows, len(offsets) - 1)
        start, stop = int(offsets[low]), int(offsets[high])
        row = np.arange(high - low, dtype=index_type) * n_items
        slots = np.repeat(row, np.diff(offsets[low : high + 1])) + items[start:stop]
        table = np.full((high - low) * n_items, stop, dtype=index_type)
        np.minimum.at(table, slots, np.arange(start, stop, dtype=index_type))
        slot = np.flatnonzero(table < stop)
        journeys.append(low + slot // n_items)
        firsts.append(table[slot].astype(np.int64))
    return np.concatenate(journeys), np.concatenate(firsts)


def _journey_blocks(journeys: np.ndarray, rows: int) -> Iterator[tuple[int, int, int, int]]:
    """Blocks of up to `rows` consecutive journey codes of sorted `journeys`: (the first code,
    how many codes, where the block's events start and stop)."""
    if len(journeys) == 0:
        return
    low, high = int(journeys[0]), int(journeys[-1]) + 1
    bounds = np.searchsorted(journeys, np.arange(low, high + rows, rows)).tolist()
    for block, (start, stop) in enumerate(itertools.pairwise(bounds)):
        yield low + block * rows, min(rows, high - low - block * rows), start, stop


def codes_in(known: Sequence, values: Sequence | np.ndarray) -> np.ndarray:
    """The index of each value in `known`, -1 where absent (a dict lookup: fast on the few
    names of steps and categories, and on a request's few values)."""
    index = {name: code for code, name in enumerate(known)}
    # map calls the dict's own get, no Python frame per value (a quarter faster).
    lookups = map(index.get, values, itertools.repeat(-1))
    return np.fromiter(lookups, dtype=np.int64, count=len(values))


def found_sorted(known: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The indices in `known` (sorted) of those `values` it holds, in the values' order."""
    at = np.searchsorted(known, values)
    found = at < len(known)
    found[found] = known[at[found]] == values[found]
    return at[found]


def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The indices `starts[i]:starts[i] + lengths[i]` of every i, one after the other."""
    return np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())


def rows_of_groups(offsets: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """The row indices of the given groups (`offsets[g]:offsets[g + 1]` each), in order."""
    return ranges(offsets[groups], offsets[groups + 1] - offsets[groups])


def pair_codes(left: np.ndarray, right: np.ndarray, n_right: int) -> np.ndarray:
    """One int64 code per (left, right) pair, `left * n_right + right`."""
    return left.astype(np.int64) * n_right + right.astype(np.int64)


_DENSE_LIMIT = 64_000_000  # journeys x items up to which a table of flags beats a sort


def count_distinct_journeys(
    journeys: np.ndarray,
    items: np.ndarray,
    n_items: int,
    weights: np.ndarray | None = None,
    order: np.ndarray | None = None,
) -> np.ndarray:
    """Per item, how many distinct journeys have it (or the sum of a per-journey weight).
    `order` is `group_order(items, n_items)` where the caller has it already."""
    sorted_journeys = len(journeys) > 0 and _non_decreasing(journeys)
    if sorted_journeys and weights is None and n_items <= _FLAG_ITEMS:
        return _count_by_flags(journeys, items, n_items)
    if sorted_journeys and n_items <= np.iinfo(np.uint16).max:
        # Sorted journeys (a log's): each pair's first occurrence, by one radix sort.
        first = first_in_journeys(journeys, items, n_items, order)
        journey, item = journeys[first], items[first]
    else:
        journey, item = _distinct_pairs(journeys, items, n_items)
    per_journey = None if weights is None else weights[journey]
    return np.bincount(item, weights=per_journey, minlength=n_items)


_FLAG_ITEMS = 4_096  # up to this many items, a block of flags holds thousands of journeys
_FLAG_BYTES = 4_000_000  # one block's table of flags


def _count_by_flags(journeys: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    """`count_distinct_journeys` without weights, for sorted journeys: a table of flags (a row
    per journey, a column per item) per block of journeys, set and counted, which touches the
    pairs once instead of sorting them; blocks bound its memory."""
    rows = max(_FLAG_BYTES // max(n_items, 1), 1)
    flags = np.empty(min(rows, int(journeys[-1] - journeys[0]) + 1) * n_items, dtype=bool)
    counts = np.zeros(n_items, dtype=np.int64)
    for first_journey, n_rows, start, stop in _journey_blocks(journeys, rows):
        table = flags[: n_rows * n_items]
        table[:] = False
        table[(journeys[start:stop] - first_journey) * n_items + items[start:stop]] = True
        counts += np.count_nonzero(table.reshape(n_rows, n_items), axis=0)
    return counts


def _distinct_pairs(
    journeys: np.ndarray, items: np.ndarray, n_items: int
) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (journey, item) pairs, in any order of journeys."""
    codes = pair_codes(journeys, items, n_items)
    n_journeys = int(journeys.max()) + 1 if len(journeys) else 0
    if n_journeys * n_items <= _DENSE_LIMIT:
        seen = np.zeros(n_journeys * n_items, dtype=bool)
        seen[codes] = True
        distinct = np.flatnonzero(seen)
    else:
        distinct = sorted_unique(codes)
    return np.divmod(distinct, n_items)


def _non_decreasing(values: np.ndarray) -> bool:
    return bool((values[1:] >= values[:-1]).all())


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """The distinct values, sorted (a sort and a comparison: faster than np.unique here)."""
    ordered = np.sort(values)
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]] if len(ordered) else ordered


class Segments:
    """Runs `array[starts[i] : starts[i] + lengths[i]]` of an array, laid out for reductions
    along every run at once, each in its run's order (a float sum then rounds exactly as a
    loop over that run alone would, which `np.add.reduceat`'s pairwise sums do not).

    Runs are ranked longest first, and their elements gathered position by position: the
    k-th elements of the runs longer than k form one block, whose runs are the first ones of
    the block before. A reduction is then one in-place slice operation per position, with no
    index arrays in the loop.
    """

    def __init__(self, starts: np.ndarray, lengths: np.ndarray) -> None:
        lengths = np.asarray(lengths, dtype=np.int64)
        self.rank = np.argsort(-lengths, kind="stable")
        longest = int(lengths.max(initial=0))
        # Runs longer than each position: the sizes of the position's block.
        self.sizes = len(lengths) - np.cumsum(np.bincount(lengths, minlength=longest + 1))[:-1]
        self.bounds = np.concatenate(([0], np.cumsum(self.sizes)))
        within = np.arange(self.bounds[-1]) - np.repeat(self.bounds[:-1], self.sizes)
        position = np.repeat(np.arange(longest), self.sizes)
        self.order = np.asarray(starts, dtype=np.int64)[self.rank][within] + position
        self.n_runs = len(lengths)

    def reduce(self, values: np.ndarray, combine: np.ufunc, empty: float) -> np.ndarray:
        """Per run, `combine` accumulated over its values from its first on (`combine.reduce`
        of the run, in order); `empty` for a run of no values. A 2-D `values` (events x k)
        reduces its k columns together, in one pass."""
        shape = (self.n_runs, *values.shape[1:])
        result = np.full(shape, empty, dtype=np.result_type(values, type(empty)))
        if not len(self.sizes):
            return result
        laid_out = values[self.order]
        running = laid_out[: self.sizes[0]].copy()
        for size, start in zip(self.sizes[1:].tolist(), self.bounds[1:-1].tolist(), strict=True):
            combine(running[:size], laid_out[start : start + size], out=running[:size])
        result[self.rank[: self.sizes[0]]] = running
        return result
