"""The features' vocabulary and its fitting: what the features count and name, learned once from
the events the training snapshots see (never later ones), then used by every build.

Fitting is apart from building (`features.build`), which only reads a `Vocabulary`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from journeyguard.features.analysis.paths import most_frequent_route
from journeyguard.features.arrays import first_in_journeys, group_quantiles, positions
from journeyguard.features.build import build_features
from journeyguard.features.eventlog.columns import CANONICAL_COLUMNS
from journeyguard.features.eventlog.log import Coded, EventLog, Snapshots
from journeyguard.features.stats import newcombe_interval


@dataclass(frozen=True)
class Vocabulary:
    """What the features need from training data: names to count, and what they mean."""

    steps: tuple[str, ...]
    bigrams: tuple[tuple[str, str], ...] = ()
    trigrams: tuple[tuple[str, str, str], ...] = ()
    stage_rank: tuple[float, ...] = ()  # per step: its typical position in a journey
    attributes: dict[str, tuple[str, ...] | None] = field(default_factory=dict)  # None: numeric
    critical: tuple[tuple[str, float], ...] = ()  # (feature name, outcome-rate difference)
    routes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # positive/negative
    last_k: int = 3


def learn_vocabulary(
    snapshots: Snapshots,
    y: np.ndarray | None = None,
    *,
    min_count: int = 5,
    max_bigrams: int = 50,
    max_trigrams: int = 30,
    last_k: int = 3,
    critical_top: int = 10,
) -> Vocabulary:
    """What the features count, learned from the events the snapshots see (never later ones):
    steps, the frequent bigrams and trigrams (at least `min_count` times), each step's typical
    stage, attribute categories, and with labels `y` the critical items and routes."""
    log = snapshots.log
    seen_until = np.zeros(log.n_journeys, dtype=np.int64)
    np.maximum.at(seen_until, snapshots.journeys, snapshots.stops)
    seen_all = (seen_until == log.offsets[1:]).all()  # a log cut at `as_of` already
    seen = log if seen_all else log.select(np.arange(log.n_events) < seen_until[log.journey_codes])
    present = np.flatnonzero(np.bincount(seen.step_codes, minlength=len(seen.steps)))
    position = positions(seen)
    vocabulary = Vocabulary(
        steps=tuple(str(s) for s in seen.steps[present]),
        bigrams=_frequent_ngrams(seen, position, 2, min_count, max_bigrams),
        trigrams=_frequent_ngrams(seen, position, 3, min_count, max_trigrams),
        stage_rank=tuple(float(rank) for rank in median_first_positions(seen)[present]),
        attributes={
            name: (_used_categories(column) if isinstance(column, Coded) else None)
            for name, column in seen.columns.items()
            if name not in CANONICAL_COLUMNS
        },
        last_k=last_k,
    )
    if y is None:
        return vocabulary
    return replace(
        vocabulary,
        critical=_critical_items(snapshots, vocabulary, y, critical_top),
        routes=_routes(snapshots, vocabulary, np.asarray(y, dtype=bool)),
    )


def median_first_positions(log: EventLog) -> np.ndarray:
    """Per step of `log`, the median 1-based position of its first event in the journeys that
    reach it (NaN for none): the `median_position` of `analysis.paths.step_durations`, whose
    hours a vocabulary does not need (they took half of its time)."""
    first = first_in_journeys(log.journey_codes, log.step_codes, len(log.steps))
    position = first - log.offsets[log.journey_codes[first]] + 1
    median = group_quantiles(
        log.step_codes[first], position.astype(np.float64), len(log.steps), (0.5,)
    )
    return median[:, 0]


def _used_categories(column: Coded) -> tuple[str, ...]:
    """The categories that some event has, in their sorted order."""
    used = np.bincount(column.codes[column.codes >= 0], minlength=len(column.categories))
    return tuple(str(c) for c in column.categories[np.flatnonzero(used)])


def _frequent_ngrams(
    log: EventLog, position: np.ndarray, n: int, min_count: int, top: int
) -> tuple[tuple[str, ...], ...]:
    """The n-step sequences of consecutive events seen at least `min_count` times, most
    frequent first (ties by name), at most `top`; `position` is each event's in its journey."""
    codes = log.step_codes.astype(np.int64)
    width = len(log.steps)
    ends = np.flatnonzero(position >= n - 1)  # events that end n steps of a journey
    gram = codes[ends]
    for lag in range(1, n):
        gram += codes[ends - lag] * width**lag
    counts = np.bincount(gram)
    frequent = np.flatnonzero(counts >= min_count)
    frequent = frequent[np.lexsort((frequent, -counts[frequent]))][:top]
    grams = []
    for code in frequent:
        parts = [(int(code) // width**p) % width for p in range(n - 1, -1, -1)]
        grams.append(tuple(str(log.steps[c]) for c in parts))
    return tuple(grams)


def _critical_items(
    snapshots: Snapshots, vocabulary: Vocabulary, y: np.ndarray, top: int
) -> tuple[tuple[str, float], ...]:
    """The step and n-gram counts whose presence most raises the outcome rate, by the lower
    end of the 95 % interval of the difference (Newcombe), kept only when that end is > 0."""
    features = build_features(snapshots, vocabulary)
    names = [
        c
        for c in features.columns
        if c.startswith(("count__", "bigram__", "trigram__")) and c != "count__other"
    ]
    present = features[names].to_numpy() > 0
    positive = np.asarray(y, dtype=bool)
    n_with = present.sum(axis=0)
    positives_with = (present & positive[:, None]).sum(axis=0)
    n_without, positives_without = len(positive) - n_with, positive.sum() - positives_with
    low, _ = newcombe_interval(positives_with, n_with, positives_without, n_without)
    difference = np.divide(
        positives_with, n_with, out=np.zeros(len(names)), where=n_with > 0
    ) - np.divide(positives_without, n_without, out=np.zeros(len(names)), where=n_without > 0)
    chosen = [i for i in np.argsort(-low, kind="stable") if low[i] > 0][:top]
    return tuple((names[i], float(difference[i])) for i in chosen)


def _routes(
    snapshots: Snapshots, vocabulary: Vocabulary, positive: np.ndarray
) -> dict[str, tuple[str, ...]]:
    """The most frequent routes of snapshots with and without the outcome."""
    log = snapshots.log
    lengths = snapshots.stops - snapshots.starts
    routes = {}
    for kind, members in (("positive", positive), ("negative", ~positive)):
        walked = most_frequent_route(
            log.step_codes, len(log.steps), snapshots.starts, lengths, members
        )
        routes[kind] = tuple(str(log.steps[code]) for code, _ in walked)
    return routes
