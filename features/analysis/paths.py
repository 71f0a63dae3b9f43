"""Path analysis: transitions, variants, step matrices, funnels, durations and bottlenecks.

Pure functions of an `EventLog`, vectorised over its sorted integer arrays, so one journey and
ten million take the same code path. Tables are dicts of equal-length numpy arrays (no pandas:
`journeyguard analyze` of a saved log never imports it). Times come out in hours.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np

from journeyguard.features.arrays import (
    count_distinct_journeys,
    first_by_journey,
    integer_group_quantiles,
    nested_group_quantiles,
    quantiles,
    rows_of_groups,
    sorted_unique,
)
from journeyguard.features.eventlog.columns import NS_PER_HOUR
from journeyguard.features.eventlog.log import EventLog

Table = dict[str, np.ndarray]
ENDED = "(ended)"
NOT_STARTED = "(not started)"
_HASH_BASES = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F))
_HASH_CHUNK = 1 << 18
_COMPARED_AT_ONCE = 1 << 14  # journeys whose steps are compared with their variant's at a time


class StepMatrix(NamedTuple):
    """shares[r, c]: the share of `journeys` whose event at positions[c] is rows[r]."""

    positions: np.ndarray
    rows: np.ndarray
    shares: np.ndarray
    journeys: int

    def share(self, row: str, position: int) -> float:
        found = np.flatnonzero(self.rows == row)
        if len(found) == 0:
            return 0.0
        return float(self.shares[found[0], np.flatnonzero(self.positions == position)[0]])


def transitions(log: EventLog, gaps: Gaps | None = None) -> Table:
    """Directly-follows pairs: count, journeys, out-probability, median and p95 hours between."""
    gaps = gaps or Gaps(log)
    pairs = _Pairs.of(log, gaps)
    hour_quantiles = integer_group_quantiles(pairs.ids, gaps.ns, pairs.n, divisor=NS_PER_HOUR)
    return _transition_table(log, gaps, pairs, hour_quantiles)


def transitions_and_dwell(log: EventLog, gaps: Gaps | None = None) -> tuple[Table, Table]:
    """`transitions` and `step_dwell` from one pass over the gaps: a step's dwell times are
    those of the pairs it opens."""
    gaps = gaps or Gaps(log)
    pairs = _Pairs.of(log, gaps)
    n_steps = len(log.steps)
    by_pair, by_step = nested_group_quantiles(
        pairs.ids, gaps.ns, pairs.n, pairs.source, n_steps, divisor=NS_PER_HOUR
    )
    return _transition_table(log, gaps, pairs, by_pair), _dwell_table(log, pairs, by_step)


class _Pairs(NamedTuple):
    """The distinct directly-follows pairs of a log's gaps: each gap's pair id, and per pair
    its steps (codes), count and total time between (ns)."""

    ids: np.ndarray
    source: np.ndarray
    target: np.ndarray
    counts: np.ndarray
    total_ns: np.ndarray

    @property
    def n(self) -> int:
        return len(self.counts)

    @classmethod
    def of(cls, log: EventLog, gaps: Gaps) -> _Pairs:
        n_steps = len(log.steps)
        # Codes and ids in numpy's index type: a count of narrower ones widens them first.
        code = gaps.steps.astype(np.intp)
        code *= n_steps
        code += gaps.next_steps
        all_counts = np.bincount(code, minlength=n_steps * n_steps)  # few steps: no sort needed
        distinct = np.flatnonzero(all_counts)
        ids = (np.cumsum(all_counts > 0) - 1)[code]
        del code
        source, target = np.divmod(distinct, n_steps)
        total_ns = np.bincount(ids, weights=gaps.ns, minlength=len(distinct))
        return cls(ids, source, target, all_counts[distinct], total_ns)


def _transition_table(
    log: EventLog, gaps: Gaps, pairs: _Pairs, hour_quantiles: np.ndarray
) -> Table:
    out_total = np.bincount(pairs.source, weights=pairs.counts, minlength=len(log.steps))
    journeys = count_distinct_journeys(gaps.journeys, pairs.ids, pairs.n)
    table = {
        "from": log.steps[pairs.source],
        "to": log.steps[pairs.target],
        "count": pairs.counts,
        "journeys": journeys.astype(np.int64),
        "probability": pairs.counts / out_total[pairs.source],
        "median_hours": hour_quantiles[:, 0],
        "p95_hours": hour_quantiles[:, 1],
        "total_hours": pairs.total_ns / NS_PER_HOUR,
    }
    return ranked(table, "count", pairs.source, pairs.target)


class Gaps:
    """Every event that has a next one in its journey, in log order: its step, the next
    one's, the time between (nanoseconds and hours) and the journey, in the narrowest
    integers that hold them, and no journey code per event: the tables of a large log
    spend much of their time in fresh memory."""

    def __init__(self, log: EventLog) -> None:
        has_next = np.ones(max(log.n_events - 1, 0), dtype=bool)
        has_next[log.offsets[1:-1] - 1] = False  # the last event of every journey but the last
        # Compressed by the mask, not gathered at its indices: a third faster.
        self.steps = log.step_codes[:-1][has_next]
        self.next_steps = log.step_codes[1:][has_next]
        self.ns = np.diff(log.times)[has_next]
        journey = np.arange(log.n_journeys, dtype=_codes_for(log.n_journeys))
        self.journeys = np.repeat(journey, np.maximum(np.diff(log.offsets) - 1, 0))

    @property
    def hours(self) -> np.ndarray:
        """The time between in hours, made when asked: kept, it would be one more array."""
        return self.ns / NS_PER_HOUR


def _codes_for(n: int) -> type[np.signedinteger]:
    """The integer type of codes 0..n-1: int32 unless they need more."""
    return np.int32 if n <= np.iinfo(np.int32).max else np.int64


def start_and_end_steps(log: EventLog) -> tuple[Table, Table]:
    """How many journeys start, and end, with each step."""
    tables = []
    for index in (log.offsets[:-1], log.offsets[1:] - 1):
        counts = np.bincount(log.step_codes[index], minlength=len(log.steps))
        used = np.flatnonzero(counts)
        table = {
            "step": log.steps[used],
            "journeys": counts[used],
            "share": counts[used] / max(log.n_journeys, 1),
        }
        tables.append(ranked(table, "journeys", used))
    return tables[0], tables[1]


def journey_variants(log: EventLog) -> np.ndarray:
    """A variant id per journey: equal ids for equal step sequences (dense, 0..n_variants-1).

    Journeys are grouped by a 64-bit polynomial hash of their step codes and length, and every
    journey is then compared event by event with its group's first journey, so a hash
    collision cannot merge two different sequences (it raises instead).
    """
    return _journey_variants(log)[0]


def _journey_variants(log: EventLog) -> tuple[np.ndarray, np.ndarray]:
    """`journey_variants`, and the first journey of each variant (`first_of_each` of it)."""
    if log.n_events == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    hashes = sequence_hashes(log)
    lengths = np.diff(log.offsets)
    # Ids in the order of the hashes, as dense codes of them would be: one sort of them,
    # cheaper than looking every journey up among the distinct hashes.
    by_hash = np.argsort(hashes)
    ordered = hashes[by_hash]
    opens = np.r_[True, ordered[1:] != ordered[:-1]]
    variant = np.empty(log.n_journeys, dtype=np.int64)
    variant[by_hash] = np.cumsum(opens) - 1
    first = np.minimum.reduceat(by_hash, np.flatnonzero(opens))
    # A variant's first journey equals itself: only the others need comparing.
    others = np.flatnonzero(first[variant] != np.arange(log.n_journeys))
    same = first[variant[others]]
    if (lengths[others] != lengths[same]).any() or not _same_steps(log, others, same):
        raise RuntimeError("two different step sequences share a hash; please report this log")
    return variant, first


def _same_steps(log: EventLog, journeys: np.ndarray, others: np.ndarray) -> bool:
    """Whether each of `journeys` has the steps of its journey in `others` (of equal lengths),
    some thousand journeys at a time: at once, their events' indices and steps were tens of
    megabytes of fresh memory, which costs more than the comparison."""
    for start in range(0, len(journeys), _COMPARED_AT_ONCE):
        part = slice(start, start + _COMPARED_AT_ONCE)
        mine = log.step_codes[rows_of_groups(log.offsets, journeys[part])]
        if (mine != log.step_codes[rows_of_groups(log.offsets, others[part])]).any():
            return False
    return True


def sequence_hashes(log: EventLog) -> np.ndarray:
    """Per journey, the sum over its events of (step code + 1) * B**(position + 1), times a
    second base, plus its length (uint64, wrapping): B = _HASH_BASES[0].

    Made from the powers of B by index in the log, B**(index + 1), then moved back to each
    journey's start by a power of B's inverse (B is odd): no position or journey code per
    event, which on a large log cost more than the hash. The log is read some hundred
    thousand events (whole journeys) at a time, with one table of powers for every chunk:
    fresh memory costs more here than the arithmetic.
    """
    base, mix = _HASH_BASES
    lengths = np.diff(log.offsets).astype(np.uint64)
    if log.n_events == 0:
        return lengths
    inverse = np.uint64(pow(int(base), -1, 1 << 64))
    # Chunks of whole journeys: each starts with the first journey at or after a multiple.
    cuts = np.searchsorted(log.offsets[:-1], np.arange(0, log.n_events, _HASH_CHUNK))
    cuts = np.r_[sorted_unique(cuts), log.n_journeys]
    sums = np.empty(log.n_journeys, dtype=np.uint64)
    with np.errstate(over="ignore"):
        powers = _powers(base, int(np.diff(log.offsets[cuts]).max()))
        for first, stop in itertools.pairwise(cuts.tolist()):
            start, end = int(log.offsets[first]), int(log.offsets[stop])
            terms = log.step_codes[start:end].astype(np.uint64)
            terms += np.uint64(1)
            terms *= powers[: end - start]  # B**(index - start + 1)
            sums[first:stop] = np.add.reduceat(terms, log.offsets[first:stop] - start)
            sums[first:stop] *= np.uint64(pow(int(base), start, 1 << 64))
        back = np.cumprod(np.full(int(lengths.max()) + 1, inverse, dtype=np.uint64))
        back = np.r_[np.uint64(1), back][lengths]  # inverse**length of each journey
        sums[1:] *= np.cumprod(back[:-1])  # inverse**start
        return sums * mix + lengths


def _powers(base: np.uint64, n: int) -> np.ndarray:
    """base**1 .. base**n (uint64, wrapping), by doubling in place: a cumulative product
    would take a second array of n."""
    powers = np.empty(n, dtype=np.uint64)
    powers[:1] = base
    done = 1
    with np.errstate(over="ignore"):
        while done < n:
            step = min(done, n - done)
            np.multiply(powers[:step], powers[done - 1], out=powers[done : done + step])
            done += step
    return powers


def first_of_each(groups: np.ndarray) -> np.ndarray:
    """For dense group codes, the index of each group's first member."""
    order = np.argsort(groups, kind="stable")
    ordered = groups[order]
    return order[np.r_[True, ordered[1:] != ordered[:-1]]] if len(groups) else order


def variants(log: EventLog) -> Table:
    """Distinct step sequences with how many journeys follow each, most frequent first.
    A variant's steps are those of its `first_journey` (see `variant_steps`)."""
    variant, representative = _journey_variants(log)
    counts = np.bincount(variant)
    durations = log.times[log.offsets[1:] - 1] - log.times[log.offsets[:-1]]
    hours = integer_group_quantiles(variant, durations, len(counts), (0.5,), NS_PER_HOUR)[:, 0]
    order = np.lexsort((representative, -counts))  # ties: by their first journey's id
    return {
        "rank": np.arange(1, len(counts) + 1),
        "journeys": counts[order],
        "share": counts[order] / max(log.n_journeys, 1),
        "median_duration_hours": hours[order],
        "first_journey": representative[order],
    }


def variant_steps(log: EventLog, journeys: np.ndarray) -> list[list[str]]:
    """The step names of each of the given journeys, in order."""
    names, bounds = _names_in_journeys(log, journeys, log.steps)
    return [names[start:stop] for start, stop in itertools.pairwise(bounds)]


def joined_steps(
    log: EventLog, journeys: np.ndarray, separator: str, names: np.ndarray | None = None
) -> list[str]:
    """The steps of each of the given journeys as one text, joined by `separator`; `names`
    gives the text of each step code (default: the step names). Joined straight from one
    list, since a list per journey sets off the garbage collector again and again."""
    texts, bounds = _names_in_journeys(log, journeys, log.steps if names is None else names)
    return [separator.join(texts[start:stop]) for start, stop in itertools.pairwise(bounds)]


def _names_in_journeys(
    log: EventLog, journeys: np.ndarray, names: np.ndarray
) -> tuple[list[str], list[int]]:
    """The name of every event of the given journeys, one journey after another, and where
    each journey begins and ends in that list."""
    lengths = np.diff(log.offsets)[journeys]
    bounds = np.r_[0, np.cumsum(lengths)]
    events = np.repeat(log.offsets[journeys] - bounds[:-1], lengths) + np.arange(bounds[-1])
    return names[log.step_codes[events]].tolist(), bounds.tolist()


def step_matrix(log: EventLog, n_positions: int = 10) -> StepMatrix:
    """Share of journeys whose k-th event (k = 1..n_positions) is each step, plus '(ended)'."""
    n_steps = len(log.steps)
    counts = np.zeros((n_steps, n_positions), dtype=np.int64)
    for k in range(n_positions):
        counts[:, k] = np.bincount(log.step_codes[_kth_events(log, k)], minlength=n_steps)
    shares = counts / max(log.n_journeys, 1)
    ended = 1.0 - shares.sum(axis=0)
    return _matrix(
        np.arange(1, n_positions + 1), log.steps, shares, log.n_journeys, [(ENDED, ended)]
    )


def _kth_events(log: EventLog, k: int) -> np.ndarray:
    """The index of the k-th event (from 0) of each journey that has one: read at the
    journeys' offsets, which touches those events only, instead of finding every event's
    position."""
    return log.offsets[:-1][np.diff(log.offsets) > k] + k


def anchored_step_matrix(log: EventLog, anchor: str, n_positions: int = 5) -> StepMatrix:
    """Like `step_matrix`, relative to each journey's first `anchor` (positions -k..k).

    Only journeys that reach the anchor count; '(not started)' and '(ended)' fill positions
    before their first and after their last event.
    """
    at_anchor = np.flatnonzero(log.step_codes == _step_code(log, anchor))
    journey = log.journey_codes[at_anchor]
    first = at_anchor[np.r_[True, journey[1:] != journey[:-1]]] if len(at_anchor) else at_anchor
    anchor_index = np.full(log.n_journeys, -1, dtype=np.int64)
    anchor_index[log.journey_codes[first]] = first
    has_anchor = anchor_index[log.journey_codes] >= 0
    relative = np.arange(log.n_events) - anchor_index[log.journey_codes]
    keep = has_anchor & (np.abs(relative) <= n_positions)
    width = 2 * n_positions + 1
    counts = np.bincount(
        log.step_codes[keep].astype(np.int64) * width + relative[keep] + n_positions,
        minlength=len(log.steps) * width,
    )
    shares = counts.reshape(len(log.steps), width) / max(len(first), 1)
    columns = np.arange(-n_positions, n_positions + 1)
    missing = 1.0 - shares.sum(axis=0)
    fill = [
        (NOT_STARTED, np.where(columns < 0, missing, 0.0)),
        (ENDED, np.where(columns > 0, missing, 0.0)),
    ]
    return _matrix(columns, log.steps, shares, len(first), fill)


def _matrix(
    columns: np.ndarray,
    steps: np.ndarray,
    shares: np.ndarray,
    journeys: int,
    extra: list[tuple[str, np.ndarray]],
) -> StepMatrix:
    rows = np.concatenate([steps, np.array([name for name, _ in extra], dtype=object)])
    shares = np.vstack([shares, *[values for _, values in extra]])
    used = shares.sum(axis=1) > 1e-12
    return StepMatrix(columns, rows[used], shares[used], journeys)


def first_steps(log: EventLog, depth: int = 4) -> dict[str, Table]:
    """The opening of journeys, for a Sankey diagram: how many journeys have each step at
    positions 1..depth (`nodes`), and how many go from each step at position k to each at k + 1
    (`flows`, positioned at k)."""
    n_steps = len(log.steps)
    node = np.zeros((depth, n_steps), dtype=np.int64)
    flow = np.zeros((max(depth - 1, 0), n_steps * n_steps), dtype=np.int64)
    for k in range(depth):
        node[k] = np.bincount(log.step_codes[_kth_events(log, k)], minlength=n_steps)
        if k + 1 < depth:
            at = _kth_events(log, k + 1) - 1  # at k, in journeys that go on to k + 1
            pair = log.step_codes[at].astype(np.int64) * n_steps + log.step_codes[at + 1]
            flow[k] = np.bincount(pair, minlength=n_steps * n_steps)
    node, flow = node.ravel(), flow.ravel()
    node_at, flow_at = np.flatnonzero(node), np.flatnonzero(flow)
    node_position, node_step = np.divmod(node_at, n_steps)
    flow_from, flow_to = np.divmod(flow_at, n_steps)
    flow_position, flow_from = np.divmod(flow_from, n_steps)
    return {
        "nodes": {
            "position": node_position + 1,
            "step": log.steps[node_step],
            "journeys": node[node_at],
        },
        "flows": {
            "position": flow_position + 1,
            "from": log.steps[flow_from],
            "to": log.steps[flow_to],
            "journeys": flow[flow_at],
        },
    }


def funnel(log: EventLog, steps: list[str]) -> Table:
    """Journeys reaching each named step in order (each after the previous one), and drop-off."""
    # Of the journeys still in the funnel: the event each has reached (at first, a virtual
    # one before its start), where it ends, and the time it reached the previous stage.
    reached, ends, since = log.offsets[:-1] - 1, log.offsets[1:], None
    journeys_reaching, medians = [], []
    for step in steps:
        candidates = np.flatnonzero(log.step_codes == _step_code(log, step))
        # Each journey's first candidate after where it stands: a search per journey, whose
        # positions come in order, instead of a journey code for every candidate.
        at = np.searchsorted(candidates, reached, side="right")
        index = candidates[np.minimum(at, len(candidates) - 1)] if len(candidates) else at
        found = (at < len(candidates)) & (index < ends)
        reached, ends = index[found], ends[found]
        times = log.times[reached]
        medians.append(
            float(_median_hours(times - since[found]))
            if since is not None and len(reached)
            else np.nan
        )
        since = times
        journeys_reaching.append(len(reached))
    reaching = np.asarray(journeys_reaching, dtype=np.int64)
    previous = np.r_[reaching[0], reaching[:-1]]
    return {
        "step": np.asarray(steps, dtype=object),
        "journeys": reaching,
        "conversion": np.divide(reaching, previous, out=np.zeros(len(steps)), where=previous > 0),
        "drop_off": previous - reaching,
        "median_hours_from_previous": np.asarray(medians),
    }


def _median_hours(nanoseconds: np.ndarray) -> float:
    """`quantiles(nanoseconds / NS_PER_HOUR, (0.5,))`, from one sort of the integers."""
    one = np.zeros(len(nanoseconds), dtype=np.int64)
    return integer_group_quantiles(one, nanoseconds, 1, (0.5,), NS_PER_HOUR)[0, 0]


def step_durations(log: EventLog) -> Table:
    """Per step: journeys reaching it, the hours from their first event to its first occurrence,
    and the median position (1-based) of that first occurrence."""
    n_steps = len(log.steps)
    journey, first = first_by_journey(log.offsets, log.step_codes, n_steps)
    step = log.step_codes[first]
    start = log.offsets[journey]
    del journey  # in place from here: few arrays of every first event at once
    since_start = log.times[first]
    since_start -= log.times[start]
    hour_quantiles = integer_group_quantiles(step, since_start, n_steps, divisor=NS_PER_HOUR)
    del since_start
    first -= start
    first += 1  # the position, from 1
    position = integer_group_quantiles(step, first, n_steps, (0.5,))
    journeys = np.bincount(step, minlength=n_steps)
    used = np.flatnonzero(journeys)
    order = used[np.lexsort((used, hour_quantiles[used, 0]))]
    return {
        "step": log.steps[order],
        "journeys": journeys[order],
        "median_hours_from_first": hour_quantiles[order, 0],
        "p95_hours_from_first": hour_quantiles[order, 1],
        "median_position": position[order, 0],
    }


def journey_lengths(log: EventLog) -> dict[str, float]:
    """Median and p95 of events per journey and of journey duration (first to last event)."""
    events = np.diff(log.offsets)
    hours = (log.times[log.offsets[1:] - 1] - log.times[log.offsets[:-1]]) / NS_PER_HOUR
    events_median, events_p95 = quantiles(events, (0.5, 0.95)).tolist()
    hours_median, hours_p95 = quantiles(hours, (0.5, 0.95)).tolist()
    return {
        "events_median": events_median,
        "events_p95": events_p95,
        "duration_median_hours": hours_median,
        "duration_p95_hours": hours_p95,
    }


def step_dwell(log: EventLog, gaps: Gaps | None = None) -> Table:
    """Per step: how long journeys wait after it until their next event (dwell time)."""
    gaps = gaps or Gaps(log)
    hour_quantiles = integer_group_quantiles(
        gaps.steps, gaps.ns, len(log.steps), divisor=NS_PER_HOUR
    )
    return _dwell_table(log, _Pairs.of(log, gaps), hour_quantiles)


def _dwell_table(log: EventLog, pairs: _Pairs, hour_quantiles: np.ndarray) -> Table:
    """The dwell table of each step's `hour_quantiles`; its count and total are those of the
    pairs it opens."""
    n_steps = len(log.steps)
    count = np.bincount(pairs.source, pairs.counts, n_steps).astype(np.int64)
    total_hours = np.bincount(pairs.source, pairs.total_ns, n_steps) / NS_PER_HOUR
    used = np.flatnonzero(count)
    return {
        "step": log.steps[used],
        "count": count[used],
        "median_dwell_hours": hour_quantiles[used, 0],
        "p95_dwell_hours": hour_quantiles[used, 1],
        "total_dwell_hours": total_hours[used],
    }


def bottlenecks(transition_table: Table, dwell: Table, top: int = 20) -> dict[str, Table]:
    """The slowest transitions and steps weighted by traffic: by total hours spent in them."""
    columns = ["from", "to", "count", "median_hours", "p95_hours", "total_hours"]
    slow = ranked({c: transition_table[c] for c in columns}, "total_hours")
    slow_steps = ranked(dwell, "total_dwell_hours")
    return {"transitions": head(slow, top), "steps": head(slow_steps, top)}


def most_frequent_route(
    step_codes: np.ndarray,
    n_steps: int,
    starts: np.ndarray,
    lengths: np.ndarray,
    members: np.ndarray,
    max_steps: int = 15,
) -> list[tuple[int, int]]:
    """The most frequent route of the member sequences `step_codes[starts:starts + lengths]`:
    from the first event, at each position the step most of the sequences still on the route
    take next, until more of them end there than go on. Returns (step code, sequences still
    on the route) per position."""
    following = members.copy()
    route = []
    last = len(step_codes) - 1
    for position in range(max_steps):
        going_on = following & (lengths > position)
        ended = int((following & (lengths == position)).sum())
        counts = np.bincount(step_codes[starts[going_on] + position], minlength=n_steps)
        best = int(np.argmax(counts)) if going_on.any() else -1
        if best < 0 or counts[best] <= ended:
            break
        following = going_on & (step_codes[np.minimum(starts + position, last)] == best)
        route.append((best, int(following.sum())))
    return route


def ranked(table: Table, by: str, *tie_breakers: np.ndarray) -> Table:
    """Descending by `by`; ties by the given keys (step codes sort as their names), then by
    position, so the output never depends on anything but the data."""
    keys = [np.arange(len(table[by])), *reversed(tie_breakers), -table[by]]
    order = np.lexsort(keys)
    return {name: values[order] for name, values in table.items()}


def head(table: Table, n: int) -> Table:
    return {name: values[:n] for name, values in table.items()}


def _step_code(log: EventLog, step: str) -> int:
    found = np.flatnonzero(log.steps == step)
    if len(found) == 0:
        raise ValueError(f"unknown step {step!r}; steps in the log: {list(log.steps)}")
    return int(found[0])
