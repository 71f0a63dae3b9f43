"""Path-sequence features of snapshots: one vectorised implementation for training, batch
scoring and the prediction service.

Every feature of snapshot i is a function of the events `starts[i]:stops[i]` of its journey
(those at or before its `as_of`) and of a `Vocabulary` learned once at fit time, so one
journey alone gets exactly its row of a batch of millions. Sums over a prefix come from
cumulative sums along the sorted log, latest values from running maxima of event indices:
a few passes over the event arrays, whatever the number of snapshots.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from journeyguard.features.arrays import Segments, codes_in, first_in_journeys
from journeyguard.features.eventlog.columns import (
    CHANNEL,
    NS_PER_DAY,
    NS_PER_HOUR,
    NUMBER_LIMIT,
    SCORE,
    VALUE,
)
from journeyguard.features.eventlog.log import Coded, EventLog, Snapshots

if TYPE_CHECKING:
    import pandas as pd

    from journeyguard.features.vocabulary import Vocabulary

NONE = -1.0  # the code of "no such step" in the last-k and categorical features
_TABLE_CELLS = 8_000_000  # events x codes of one running-count table (32 MB)


@functools.cache  # called for every feature name of every build: names repeat
def slug(name: str) -> str:
    """A step name as part of a feature name: lower case, words joined by underscores."""
    return re.sub(r"[^0-9a-z]+", "_", str(name).lower()).strip("_") or "blank"


def build_features(snapshots: Snapshots, vocabulary: Vocabulary) -> pd.DataFrame:
    """The feature matrix of `snapshots`, one row per snapshot, columns named for people."""
    import pandas as pd  # here: the features command writes the arrays without pandas

    columns = feature_columns(snapshots, vocabulary)
    return pd.DataFrame(columns, index=pd.RangeIndex(len(snapshots)))


def feature_columns(snapshots: Snapshots, vocabulary: Vocabulary) -> dict[str, np.ndarray]:
    """The columns of `build_features` as arrays: what a few journeys of a request need,
    without the cost of a frame."""
    prefixes = _Prefixes(snapshots, vocabulary)
    columns: dict[str, np.ndarray] = {}
    columns |= _activity(prefixes)
    columns |= _step_counts(prefixes, vocabulary)
    columns |= _ngram_counts(prefixes, vocabulary)
    columns |= _recency_of_steps(prefixes, vocabulary)
    columns |= _timing(prefixes)
    columns |= _loops(prefixes)
    columns |= _position(prefixes, vocabulary)
    columns |= _scores(prefixes)
    columns |= _attributes(prefixes, vocabulary)
    columns |= _critical(prefixes, vocabulary, columns)
    return columns


def _compact(snapshots: Snapshots) -> tuple[EventLog, np.ndarray, np.ndarray]:
    """(log, starts, stops) of the snapshots over a log of their prefixes' events only: every
    feature makes passes over the whole log and reads a prefix's events alone, so neither
    other journeys nor events after the latest prefix of a journey should cost anything (at
    one `as_of`, a third of a year-long log). A journey whose snapshots all see nothing yet
    keeps its events, so that it stays in the log."""
    log, journeys = snapshots.log, snapshots.journeys
    starts, stops = snapshots.starts, snapshots.stops
    limit = np.zeros(log.n_journeys, dtype=np.int64)  # per journey, the end of the kept events
    np.maximum.at(limit, journeys, np.where(stops > starts, stops, log.offsets[journeys + 1]))
    keep = np.arange(log.n_events) < limit[log.journey_codes]
    if keep.all():
        return log, starts, stops
    kept = log.select(keep)
    renumber = np.cumsum(limit > log.offsets[:-1]) - 1
    kept_starts = kept.offsets[renumber[journeys]]
    return kept, kept_starts, kept_starts + (stops - starts)


class _Prefixes:
    """The snapshots' event prefixes, with the log's steps mapped into the vocabulary."""

    def __init__(self, snapshots: Snapshots, vocabulary: Vocabulary) -> None:
        log, self.start, self.stop = _compact(snapshots)
        self.log = log
        self.last = np.maximum(self.stop - 1, 0)
        self.events = self.stop - self.start
        self.as_of = snapshots.as_of
        known = codes_in(vocabulary.steps, log.steps)
        self.other = len(vocabulary.steps)
        # Steps never seen in training are "other", never an error.
        self.steps = np.where(known >= 0, known, self.other).astype(np.int64)[log.step_codes]
        self.same_journey_as_previous = np.r_[
            False, log.journey_codes[1:] == log.journey_codes[:-1]
        ]
        self._previous_steps: dict[int, np.ndarray] = {}  # n-grams and ping-pong share them

    def total(self, per_event: np.ndarray) -> np.ndarray:
        """Per snapshot, the sum of `per_event` over its prefix (which starts its journey)."""
        if per_event.dtype.kind in "biu":  # integers add exactly in any order
            running = np.concatenate(([0], np.cumsum(per_event)))
            return running[self.stop] - running[self.start]
        # Floats: sums restart at each journey, so no rounding depends on the journeys before
        # (a difference of two long running sums would lose their low bits).
        per_event = per_event.astype(np.float64, copy=False)
        if self._runs is not None:
            return self._runs.reduce(per_event, np.add, 0.0)
        sums = self._along_journeys(per_event, np.add)
        return np.where(self.events > 0, sums[self.last] if len(sums) else 0.0, 0.0)

    @functools.cached_property
    def _runs(self) -> Segments | None:
        """The prefixes laid out for sums and maxima along each at once, when no two share an
        event (at one `as_of`): those need only the prefixes' events, not running values
        along every journey."""
        return None if self._owners is None else Segments(self.start, self.events)

    def _along_journeys(self, per_event: np.ndarray, combine: np.ufunc) -> np.ndarray:
        """`combine` accumulated along each journey from its first event, as `accumulate`
        over that journey alone would: one vectorised step per position, every journey at once."""
        running = per_event.copy()
        order, bounds = self._by_position
        for position in range(1, len(bounds) - 1):
            index = order[bounds[position] : bounds[position + 1]]
            running[index] = combine(running[index - 1], running[index])
        return running

    @functools.cached_property
    def _by_position(self) -> tuple[np.ndarray, np.ndarray]:
        """Events ordered by their position in their journey, and where each position starts."""
        log = self.log
        position = np.arange(log.n_events) - log.offsets[log.journey_codes]
        order = np.argsort(position, kind="stable")
        counts = np.bincount(position, minlength=1) if log.n_events else np.zeros(1, np.int64)
        return order, np.concatenate(([0], np.cumsum(counts)))

    def totals(self, codes: np.ndarray, wanted: np.ndarray) -> np.ndarray:
        """Per wanted code (rows) and snapshot (columns), how many events of its prefix have
        that code: running counts along the events of a codes x events table (a few codes
        at a time on large logs), not one pass per code; one count of the prefixes' events
        when no two prefixes share one. Rows are contiguous: each is a feature column."""
        owned = self._owned(codes, wanted)
        if owned is not None:
            snapshot, column, _ = owned
            flat = np.bincount(column * len(self.start) + snapshot, minlength=self._cells(wanted))
            return flat.reshape(len(wanted), len(self.start))
        result = np.empty((len(wanted), len(self.start)), dtype=np.int64)
        for chunk, rows in self._chunks(codes, wanted):
            running = np.zeros((len(chunk), len(codes) + 1), dtype=np.int32)
            np.cumsum(chunk[:, None] == codes, axis=1, out=running[:, 1:])
            result[rows] = running[:, self.stop] - running[:, self.start]
        return result

    def latest_of_each(self, codes: np.ndarray, wanted: np.ndarray) -> np.ndarray:
        """Per wanted code (rows) and snapshot (columns), the index of the latest event of its
        prefix with that code, -1 if none."""
        owned = self._owned(codes, wanted, with_index=True)
        if owned is not None:
            snapshot, column, index = owned
            flat = np.full(self._cells(wanted), -1, dtype=np.int64)
            np.maximum.at(flat, column * len(self.start) + snapshot, index)
            return flat.reshape(len(wanted), len(self.start))
        result = np.empty((len(wanted), len(self.start)), dtype=np.int64)
        index = np.arange(len(codes))
        for chunk, rows in self._chunks(codes, wanted):
            flagged = np.where(chunk[:, None] == codes, index, -1)
            result[rows] = np.maximum.accumulate(flagged, axis=1)[:, self.last]
        inside = (result >= self.start) & (self.events > 0)
        return np.where(inside, result, -1)

    def _cells(self, wanted: np.ndarray) -> int:
        return len(self.start) * len(wanted)

    def _owned(
        self, codes: np.ndarray, wanted: np.ndarray, with_index: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
        """When no two prefixes share an event (one snapshot per journey, as at one `as_of`):
        the snapshot, the wanted column and (`with_index`) the index of every prefix event
        with a wanted code. None otherwise (snapshots of one journey at several times
        overlap)."""
        owner = self._owners
        if owner is None or len(np.unique(wanted)) != len(wanted) or not len(wanted):
            return None
        snapshot, index = owner
        inside = codes if index is None else codes[index]
        lookup = np.full(int(max(wanted.max(), codes.max(initial=0))) + 2, -1, dtype=np.int64)
        lookup[wanted] = np.arange(len(wanted))
        column = lookup[np.where(inside >= 0, inside, -1)]
        keep = column >= 0
        if with_index and index is None:
            index = np.arange(len(codes))
        if keep.all():  # every event counts (steps): no copies
            return snapshot, column, index if with_index else None
        return snapshot[keep], column[keep], index[keep] if with_index else None

    @functools.cached_property
    def _owners(self) -> tuple[np.ndarray, np.ndarray | None] | None:
        """(snapshot, event index) of every event inside a prefix, when prefixes are disjoint
        and in log order; None otherwise. The index is None when the prefixes hold every
        event of the log (cut at `as_of`): it would be 0, 1, 2, ..."""
        if len(self.start) > 1 and (self.start[1:] < self.stop[:-1]).any():
            return None
        lengths = self.events
        snapshot = np.repeat(np.arange(len(self.start)), lengths)
        if len(snapshot) == len(self.steps):
            return snapshot, None
        first = np.repeat(self.start - np.cumsum(lengths) + lengths, lengths)
        return snapshot, first + np.arange(len(snapshot))

    @staticmethod
    def _chunks(codes: np.ndarray, wanted: np.ndarray) -> Iterator[tuple[np.ndarray, slice]]:
        """Slices of `wanted` whose codes x events tables stay within _TABLE_CELLS."""
        width = max(1, _TABLE_CELLS // max(len(codes), 1))
        for first in range(0, len(wanted), width):
            yield wanted[first : first + width], slice(first, first + width)

    def latest(self, flagged: np.ndarray) -> np.ndarray:
        """Per snapshot, the index of the latest flagged event in its prefix, -1 if none."""
        index = np.where(flagged, np.arange(len(flagged)), -1)
        latest = np.maximum.accumulate(index)[self.last]
        return np.where((latest >= self.start) & (self.events > 0), latest, -1)

    def running_max(self, per_event: np.ndarray) -> np.ndarray:
        """Per snapshot, the maximum of a non-negative `per_event` over its prefix."""
        if self._runs is not None:
            return self._runs.reduce(per_event, np.maximum, np.nan)
        peak = self._along_journeys(per_event, np.maximum)
        return np.where(self.events > 0, peak[self.last] if len(peak) else np.nan, np.nan)

    def previous_step(self, lag: int) -> np.ndarray:
        """The step code of the event `lag` places earlier in the same journey, -1 where none."""
        if lag not in self._previous_steps:
            self._previous_steps[lag] = self.previous(self.steps, lag)
        return self._previous_steps[lag]

    def previous(self, values: np.ndarray, lag: int = 1) -> np.ndarray:
        """`values` of the event `lag` places earlier in the same journey, -1 where none."""
        earlier = np.full(len(values), -1, dtype=np.int64)
        if lag < len(values):
            codes = self.log.journey_codes
            same = codes[lag:] == codes[:-lag]
            earlier[lag:] = np.where(same, values[:-lag], -1)
        return earlier

    def days_before_as_of(self, index: np.ndarray) -> np.ndarray:
        """Per snapshot (columns of a 2-D `index`), days from the indexed event to `as_of`."""
        times = self.log.times[np.maximum(index, 0)]
        as_of = self.as_of
        return np.where(index >= 0, (as_of - times) / NS_PER_DAY, np.nan)


def _activity(p: _Prefixes) -> dict[str, np.ndarray]:
    first = p.log.times[p.start]
    tenure = np.where(p.events > 0, (p.as_of - first) / NS_PER_DAY, np.nan)
    recency = p.days_before_as_of(np.where(p.events > 0, p.last, -1))
    # Ratios stay comparable as journeys age, unlike tenure itself: a model trained on earlier
    # snapshots meets later ones with longer tenures.
    per_day = np.maximum(tenure, 1.0)
    columns = {
        "events": p.events.astype(np.float64),
        "tenure_days": tenure,
        "recency_days": recency,
        "events_per_day": p.events / per_day,
        "active_share": (tenure - recency) / per_day,
    }
    value = p.log.column(VALUE)
    if value is not None:
        columns["frequency"] = p.total(value > 0).astype(np.float64)  # missing is not > 0
        columns["monetary"] = p.total(_bounded(value))
    return columns


def _bounded(numbers: np.ndarray) -> np.ndarray:
    """Numbers to sum along the log: missing as 0, clipped to +-NUMBER_LIMIT. The loader
    rejects larger ones; a request may still send them, and one journey's 1e308 would
    otherwise overflow the running sum and make every later journey's total inf or NaN."""
    bounded = np.clip(numbers, -NUMBER_LIMIT, NUMBER_LIMIT)  # NaN stays NaN, inf the limit
    bounded[np.isnan(bounded)] = 0.0
    return bounded


def _step_counts(p: _Prefixes, vocabulary: Vocabulary) -> dict[str, np.ndarray]:
    columns = {}
    names = [*map(slug, vocabulary.steps), "other"]
    counts = p.totals(p.steps, np.arange(len(names))).astype(np.float64)
    rates = counts / np.maximum(p.events, 1)
    for code, name in enumerate(names):
        columns[f"count__{name}"] = counts[code]
        columns[f"rate__{name}"] = rates[code]
    return columns


def _ngram_codes(p: _Prefixes, n: int) -> np.ndarray:
    """Per event, one code for the n steps ending at it (-1 where the journey is shorter)."""
    width = p.other + 1
    code = p.steps
    for lag in range(1, n):
        earlier = p.previous_step(lag)
        code = np.where((earlier >= 0) & (code >= 0), earlier * width**lag + code, -1)
    return code


def _encode_ngrams(vocabulary: Vocabulary, grams: tuple[tuple[str, ...], ...]) -> np.ndarray:
    """The codes `_ngram_codes` gives these n-grams of vocabulary steps."""
    width, n = len(vocabulary.steps) + 1, len(grams[0])
    steps = codes_in(vocabulary.steps, [step for gram in grams for step in gram])
    return steps.reshape(len(grams), n) @ width ** np.arange(n - 1, -1, -1, dtype=np.int64)


@functools.cache  # the same vocabulary's names for every build
def _ngram_names(grams: tuple[tuple[str, ...], ...]) -> list[str]:
    return [("bigram__" if len(g) == 2 else "trigram__") + "__".join(map(slug, g)) for g in grams]


def _ngram_counts(p: _Prefixes, vocabulary: Vocabulary) -> dict[str, np.ndarray]:
    columns = {}
    for n, grams in ((2, vocabulary.bigrams), (3, vocabulary.trigrams)):
        if not grams:
            continue
        counts = p.totals(_ngram_codes(p, n), _encode_ngrams(vocabulary, grams))
        columns.update(zip(_ngram_names(grams), counts.astype(np.float64), strict=True))
    return columns


def _recency_of_steps(p: _Prefixes, vocabulary: Vocabulary) -> dict[str, np.ndarray]:
    latest = p.latest_of_each(p.steps, np.arange(len(vocabulary.steps)))
    days = p.days_before_as_of(latest)
    return {f"days_since__{slug(step)}": days[code] for code, step in enumerate(vocabulary.steps)}


def _timing(p: _Prefixes) -> dict[str, np.ndarray]:
    """Hours between consecutive events: mean, max, the latest, and their trend (slope)."""
    times = p.log.times
    gap = np.zeros(len(times))
    gap[1:] = np.where(p.same_journey_as_previous[1:], (times[1:] - times[:-1]) / NS_PER_HOUR, 0)
    has_gap = p.same_journey_as_previous
    n_gaps = p.events - 1
    span = (times[p.last] - times[p.start]) / NS_PER_HOUR
    mean_gap = np.where(n_gaps > 0, span / np.maximum(n_gaps, 1), np.nan)
    quiet = (p.as_of - times[p.last]) / NS_PER_HOUR
    columns = {
        "gap_mean_hours": mean_gap,
        # How many usual gaps the journey has been quiet for: overdue journeys are at risk.
        "quiet_over_gap": np.where(
            mean_gap > 0, quiet / np.where(mean_gap > 0, mean_gap, 1), np.nan
        ),
        "gap_max_hours": np.where(n_gaps > 0, p.running_max(gap), np.nan),
        "gap_last_hours": np.where(n_gaps > 0, gap[p.last], np.nan),
    }
    position = np.arange(len(times)) - p.log.offsets[p.log.journey_codes]
    columns["gap_trend_hours_per_step"] = _slope(p, position, gap, has_gap)
    return columns


def _slope(
    p: _Prefixes, x: np.ndarray, y: np.ndarray, use: np.ndarray, sum_y: np.ndarray | None = None
) -> np.ndarray:
    """Per snapshot, the least-squares slope of y on x over the prefix's `use` events; `y` is
    0 where not used, and `sum_y` its totals where the caller has them. `x` holds integers
    (positions, ordinals): their sums are exact in any order, so they take the running
    counts, and only the sums with y add along each prefix."""
    x = np.where(use, x, 0)
    n, sx, sxx = (p.total(v).astype(np.float64) for v in (use, x, x * x))
    sy = p.total(y) if sum_y is None else sum_y
    sxy = p.total(x * y)
    denominator = n * sxx - sx * sx
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = (n * sxy - sx * sy) / denominator
    return np.where((n >= 2) & (denominator > 0), slope, np.nan)


def _loops(p: _Prefixes) -> dict[str, np.ndarray]:
    """Repeats and ping-pong: a step seen before in the journey; an A B A pattern."""
    repeat = np.ones(len(p.steps), dtype=bool)
    repeat[first_in_journeys(p.log.journey_codes, p.steps, p.other + 1)] = False
    columns = {
        "repeats": p.total(repeat).astype(np.float64),
        "distinct_steps": p.total(~repeat).astype(np.float64),
        "pingpong_steps": p.total(
            _pingpong(p.steps, p.previous_step(1), p.previous_step(2))
        ).astype(np.float64),
    }
    channel = p.log.column(CHANNEL)
    if isinstance(channel, Coded):
        codes = channel.codes.astype(np.int64)
        one, two = p.previous(codes, 1), p.previous(codes, 2)
        columns["pingpong_channels"] = p.total(_pingpong(codes, one, two)).astype(np.float64)
    return columns


def _pingpong(codes: np.ndarray, one: np.ndarray, two: np.ndarray) -> np.ndarray:
    """Events back at the value two events earlier (`two`) after leaving it (`one` earlier):
    the A of A B A."""
    return (codes >= 0) & (two == codes) & (one >= 0) & (one != codes)


def _position(p: _Prefixes, vocabulary: Vocabulary) -> dict[str, np.ndarray]:
    columns = {}
    if vocabulary.stage_rank:
        rank = np.append(np.asarray(vocabulary.stage_rank, dtype=np.float64), 0.0)
        columns["furthest_stage"] = p.running_max(rank[p.steps])
    for k in range(1, vocabulary.last_k + 1):
        index = p.stop - k
        present = p.events >= k
        columns[f"last_{k}"] = np.where(present, p.steps[np.maximum(index, 0)], NONE)
    return columns


def _scores(p: _Prefixes) -> dict[str, np.ndarray]:
    score = p.log.column(SCORE)
    if score is None or isinstance(score, Coded):
        return {}
    scored = ~np.isnan(score)
    latest = p.latest(scored)
    count = p.total(scored).astype(np.float64)
    bounded = _bounded(score)  # 0 where not scored
    total = p.total(bounded)
    ordinal = np.cumsum(scored)  # x for the trend: 1st, 2nd, ... score
    return {
        "score_last": np.where(latest >= 0, score[np.maximum(latest, 0)], np.nan),
        "score_mean": np.where(count > 0, total / np.maximum(count, 1), np.nan),
        "score_count": count,
        "score_trend": _slope(p, ordinal, bounded, scored, total),
    }


def _attributes(p: _Prefixes, vocabulary: Vocabulary) -> dict[str, np.ndarray]:
    """Each attribute's latest known value as of the snapshot (text as a category code)."""
    columns = {}
    for name, categories in vocabulary.attributes.items():
        values = p.log.column(name)
        if values is None:
            columns[f"attr__{slug(name)}"] = np.full(len(p.start), np.nan)
            continue
        if isinstance(values, Coded):
            # Codes of the training categories: a value never seen in training is unknown.
            known = codes_in(categories or (), values.categories)
            per_event = np.append(np.where(known >= 0, known, np.nan), np.nan)[values.codes]
        else:
            per_event = values
        latest = p.latest(
            ~np.isnan(per_event) if not isinstance(values, Coded) else values.codes >= 0
        )
        value = per_event[np.maximum(latest, 0)]
        columns[f"attr__{slug(name)}"] = np.where(latest >= 0, value, np.nan)
    return columns


def _critical(
    p: _Prefixes, vocabulary: Vocabulary, columns: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """How closely the journey so far follows the critical paths of the training data."""
    if not vocabulary.critical and not vocabulary.routes:
        return {}
    present = [
        (columns[name] > 0, difference)
        for name, difference in vocabulary.critical
        if name in columns
    ]
    result = {
        "critical__items": sum(
            (hit.astype(np.float64) for hit, _ in present), np.zeros(len(p.start))
        ),
        "critical__weight": sum(
            (hit * difference for hit, difference in present), np.zeros(len(p.start))
        ),
    }
    for kind, route in vocabulary.routes.items():
        result[f"critical__route_{kind}"] = _route_match(p, vocabulary, route)
    return result


def _route_match(p: _Prefixes, vocabulary: Vocabulary, route: tuple[str, ...]) -> np.ndarray:
    """The share of the route that the journey's prefix walks, from its first event on."""
    if not route or len(p.steps) == 0:
        return np.zeros(len(p.start))
    codes = codes_in(vocabulary.steps, route)  # -1, matching no event, for unknown steps
    k = np.arange(len(route))
    at = np.minimum(p.start[:, None] + k, len(p.steps) - 1)  # (snapshots, route steps)
    on_route = (p.events[:, None] > k) & (p.steps[at] == codes)
    return np.logical_and.accumulate(on_route, axis=1).sum(axis=1) / len(route)
