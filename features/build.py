"""Path-sequence features of snapshots: one vectorised implementation for training, batch
scoring and the prediction service.

Every feature of snapshot i is a function of the events `starts[i]:stops[i]` of its journey
(those at or before its `as_of`) and of a `Vocabulary` learned once at fit time, so one
journey alone gets exactly its row of a batch of millions. The passes over the prefixes'
events are `features.prefixes`'.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

import numpy as np

from journeyguard.features.arrays import codes_in, first_in_journeys
from journeyguard.features.eventlog.columns import (
    CHANNEL,
    NS_PER_DAY,
    NS_PER_HOUR,
    NUMBER_LIMIT,
    SCORE,
    VALUE,
)
from journeyguard.features.eventlog.log import Coded, Snapshots
from journeyguard.features.prefixes import Prefixes

if TYPE_CHECKING:
    import pandas as pd

    from journeyguard.features.vocabulary import Vocabulary

NONE = -1.0  # the code of "no such step" in the last-k and categorical features


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
    prefixes = Prefixes(snapshots, vocabulary)
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


def _activity(p: Prefixes) -> dict[str, np.ndarray]:
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


def _step_counts(p: Prefixes, vocabulary: Vocabulary) -> dict[str, np.ndarray]:
    columns = {}
    names = [*map(slug, vocabulary.steps), "other"]
    counts = p.totals(p.steps, np.arange(len(names)))
    rates = counts / np.maximum(p.events, 1)
    for code, name in enumerate(names):
        columns[f"count__{name}"] = counts[code]
        columns[f"rate__{name}"] = rates[code]
    return columns


def _ngram_codes(p: Prefixes, n: int) -> np.ndarray:
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


def _ngram_counts(p: Prefixes, vocabulary: Vocabulary) -> dict[str, np.ndarray]:
    columns = {}
    for n, grams in ((2, vocabulary.bigrams), (3, vocabulary.trigrams)):
        if not grams:
            continue
        counts = p.totals(_ngram_codes(p, n), _encode_ngrams(vocabulary, grams))
        columns.update(zip(_ngram_names(grams), counts, strict=True))
    return columns


def _recency_of_steps(p: Prefixes, vocabulary: Vocabulary) -> dict[str, np.ndarray]:
    latest = p.latest_of_each(p.steps, np.arange(len(vocabulary.steps)))
    days = p.days_before_as_of(latest)
    return {f"days_since__{slug(step)}": days[code] for code, step in enumerate(vocabulary.steps)}


def _timing(p: Prefixes) -> dict[str, np.ndarray]:
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
    p: Prefixes, x: np.ndarray, y: np.ndarray, use: np.ndarray, sum_y: np.ndarray | None = None
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


def _loops(p: Prefixes) -> dict[str, np.ndarray]:
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


def _position(p: Prefixes, vocabulary: Vocabulary) -> dict[str, np.ndarray]:
    columns = {}
    if vocabulary.stage_rank:
        rank = np.append(np.asarray(vocabulary.stage_rank, dtype=np.float64), 0.0)
        columns["furthest_stage"] = p.running_max(rank[p.steps])
    for k in range(1, vocabulary.last_k + 1):
        index = p.stop - k
        present = p.events >= k
        columns[f"last_{k}"] = np.where(present, p.steps[np.maximum(index, 0)], NONE)
    return columns


def _scores(p: Prefixes) -> dict[str, np.ndarray]:
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


def _attributes(p: Prefixes, vocabulary: Vocabulary) -> dict[str, np.ndarray]:
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
    p: Prefixes, vocabulary: Vocabulary, columns: dict[str, np.ndarray]
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


def _route_match(p: Prefixes, vocabulary: Vocabulary, route: tuple[str, ...]) -> np.ndarray:
    """The share of the route that the journey's prefix walks, from its first event on."""
    if not route or len(p.steps) == 0:
        return np.zeros(len(p.start))
    codes = codes_in(vocabulary.steps, route)  # -1, matching no event, for unknown steps
    k = np.arange(len(route))
    at = np.minimum(p.start[:, None] + k, len(p.steps) - 1)  # (snapshots, route steps)
    on_route = (p.events[:, None] > k) & (p.steps[at] == codes)
    return np.logical_and.accumulate(on_route, axis=1).sum(axis=1) / len(route)
