"""Reasons in the journey's own words: the features that push a risk up the most, as text.

`describe(feature, value)` turns one feature value into a phrase ("refund denied 2 times",
"escalated 3 days ago"); `reason_arrays` picks, per row, the features with the largest
positive contributions to the model's score.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from journeyguard.features.vocabulary import Vocabulary


def words(slug: str) -> str:
    return slug.replace("_", " ")


def _count(n: float) -> str:
    return "once" if n == 1 else f"{n:.0f} times"


def _days(days: float) -> str:
    if days < 1:
        return f"{days * 24:.0f} hours"
    return f"{days:.0f} day" + ("" if round(days) == 1 else "s")


def _hours(hours: float) -> str:
    return f"{hours:.0f} h" if hours < 48 else _days(hours / 24)


_SIMPLE = {  # features whose phrase needs only their value
    "events": lambda value: f"{value:.0f} steps so far",
    "events_per_day": lambda value: f"{value * 30:.1f} steps a month",
    "active_share": lambda value: f"active for {value:.0%} of the time since the first step",
    "quiet_over_gap": lambda value: f"quiet for {value:.1f}x the usual time between steps",
    "tenure_days": lambda value: f"customer for {_days(value)}",
    "recency_days": lambda value: f"last activity {_days(value)} ago",
    "frequency": lambda value: f"{value:.0f} purchases",
    "monetary": lambda value: f"{value:,.2f} spent in all",
    "gap_mean_hours": lambda value: f"{_hours(value)} between steps on average",
    "gap_max_hours": lambda value: f"longest wait {_hours(value)}",
    "gap_last_hours": lambda value: f"{_hours(value)} before the latest step",
    "gap_trend_hours_per_step": lambda value: "waits growing" if value > 0 else "waits shrinking",
    "repeats": lambda value: f"{value:.0f} repeated steps",
    "distinct_steps": lambda value: f"{value:.0f} different steps",
    "pingpong_steps": lambda value: f"back and forth between steps {_count(value)}",
    "pingpong_channels": lambda value: f"bounced between teams {_count(value)}",
    "furthest_stage": lambda value: f"reached stage {value:.0f}",
    "score_last": lambda value: f"latest survey score {value:g}",
    "score_mean": lambda value: f"average survey score {value:.1f}",
    "score_count": lambda value: f"{value:.0f} surveys answered",
    "score_trend": lambda value: "survey scores falling" if value < 0 else "survey scores rising",
    # BG/NBD quantities (training.bgnbd_features), counted in weeks from the first purchase
    "bgnbd__expected_purchases": lambda value: f"{value:.1f} purchases expected in the horizon",
    "bgnbd__p_alive": lambda value: f"{value:.0%} likely to be still buying",
    "bgnbd__frequency": lambda value: f"bought again on {value:.0f} days",
    "bgnbd__recency_weeks": lambda value: f"last purchase {value:.0f} weeks after the first",
    "bgnbd__age_weeks": lambda value: f"first purchase {value:.0f} weeks ago",
}


def describe(feature: str, value: float, vocabulary: Vocabulary | None = None) -> str:
    """One feature's value in plain words."""
    return _phrase(feature, vocabulary)(value)


def _phrase(feature: str, vocabulary: Vocabulary | None = None) -> Callable[[float], str]:
    """The function that puts a value of `feature` in plain words (NaN: its absence), chosen
    once for all of the feature's values."""
    kind, _, rest = feature.partition("__")
    absent = f"never {words(rest)}" if kind == "days_since" else f"no {words(feature)}"
    present = _present(feature, kind, rest, vocabulary)
    return lambda value: (
        absent if isinstance(value, float) and math.isnan(value) else present(value)
    )


def _present(
    feature: str, kind: str, rest: str, vocabulary: Vocabulary | None
) -> Callable[[float], str]:
    if feature in _SIMPLE:
        return _SIMPLE[feature]
    if kind == "count":
        return lambda value: f"{words(rest)} {_count(value)}"
    if kind == "rate":
        return lambda value: f"{words(rest)} in {value:.0%} of steps"
    if kind == "days_since":
        return lambda value: f"{words(rest)} {_days(value)} ago"
    if kind in ("bigram", "trigram"):
        path = " then ".join(words(part) for part in rest.split("__"))
        return lambda value: f"{path} {_count(value)}"
    if feature.startswith("last_"):
        which = {"1": "latest step", "2": "the step before"}.get(
            feature[5:], f"{feature[5:]} steps back"
        )
        return lambda value: f"{which}: {_step_name(value, vocabulary)}"
    if kind == "attr":
        return lambda value: f"{words(rest)}: {_attribute(rest, value, vocabulary)}"
    if kind == "critical":
        return lambda value: _critical(rest, value)
    return lambda value: f"{words(feature)} {value:g}"


def _step_name(code: float, vocabulary: Vocabulary | None) -> str:
    if vocabulary is None or code < 0:
        return "none"
    steps = vocabulary.steps
    return words(steps[int(code)]) if int(code) < len(steps) else "another step"


def _attribute(name: str, value: float, vocabulary: Vocabulary | None) -> str:
    from journeyguard.features.build import slug

    for attribute, categories in (vocabulary.attributes if vocabulary else {}).items():
        if slug(attribute) == name and categories is not None and 0 <= value < len(categories):
            return str(categories[int(value)])
    return f"{value:g}"


def _critical(rest: str, value: float) -> str:
    if rest == "items":
        return f"{value:.0f} known risk steps on the way"
    if rest == "weight":
        return "several high-risk steps on the way"
    kind = rest.removeprefix("route_")
    return f"follows the typical {'at-risk' if kind == 'positive' else 'safe'} path ({value:.0%})"


# Summaries of other features: as a reason they would say less than the steps they count.
NOT_REASONS = ("critical__items", "critical__weight")


def reason_arrays(
    feature_values: np.ndarray,
    contributions: np.ndarray,
    names: list[str],
    k: int = 3,
    vocabulary: Vocabulary | None = None,
) -> tuple[list[list[str | None]], np.ndarray]:
    """Per row, the k features (one column per name, no `bias`) with the largest positive
    contributions: for each rank, the text of every row (None where fewer features push the
    risk up), and the contributions (NaN there)."""
    shown = np.array([name not in NOT_REASONS for name in names])
    columns = np.flatnonzero(shown)
    values = contributions[:, columns]  # a copy, which _top overwrites
    order, largest = _top(values, k)
    every = np.arange(len(values))[:, None]
    column = columns[order] if len(columns) else order
    pushes = largest > 0
    texts = np.full(largest.shape, None, dtype=object)
    texts[pushes] = _described(
        column[pushes], feature_values[every, column][pushes], names, vocabulary
    )
    chosen = np.where(pushes, largest, np.nan)
    return [texts[:, rank].tolist() for rank in range(order.shape[1])], chosen


def _described(
    column: np.ndarray, value: np.ndarray, names: list[str], vocabulary: Vocabulary | None
) -> np.ndarray:
    """The text of each (feature column, value) pair, described once per distinct text: rows
    share most of theirs, and a value shown in whole days or hours shares it with every value
    rounding to the same number (`_as_shown`)."""
    if not len(column):
        return np.empty(0, dtype=object)
    unit, shown = _as_shown(names, column, value)
    order = np.lexsort((shown, unit, column))
    column, unit, shown, value = column[order], unit[order], shown[order], value[order]
    same = (
        (column[1:] == column[:-1])
        & (unit[1:] == unit[:-1])
        & ((shown[1:] == shown[:-1]) | (np.isnan(shown[1:]) & np.isnan(shown[:-1])))
    )
    group = np.concatenate([[0], np.cumsum(~same)])
    first = np.flatnonzero(np.concatenate([[True], ~same]))
    column, value = column[first], value[first]
    starts = np.flatnonzero(np.concatenate([[True], column[1:] != column[:-1]]))
    described = np.empty(len(first), dtype=object)
    for start, end in zip(starts, [*starts[1:], len(first)], strict=True):
        in_words = _phrase(names[column[start]], vocabulary)
        described[start:end] = [in_words(v) for v in value[start:end].tolist()]
    result = np.empty(len(order), dtype=object)
    result[order] = described[group]
    return result


_IN_DAYS = ("tenure_days", "recency_days")  # and every days_since__: phrased by `_days`
_IN_HOURS = ("gap_mean_hours", "gap_max_hours", "gap_last_hours")  # phrased by `_hours`


def _as_shown(
    names: list[str], column: np.ndarray, value: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each value as its phrase shows it: the unit (1 hours, 2 days) and the whole number
    `_days` or `_hours` rounds it to (np.rint rounds half to even, as the format does), or unit
    0 and the value itself for every other phrase and for negative values."""
    kind = np.array(
        [2 if n in _IN_DAYS or n.startswith("days_since__") else n in _IN_HOURS for n in names],
        dtype=np.int8,
    )[column]
    in_days, in_hours = (kind == 2) & (value >= 0), (kind == 1) & (value >= 0)
    as_hours = in_days & (value < 1) | in_hours & (value < 48)
    hours = np.where(in_days, value * 24, value)
    days = np.where(in_hours, value / 24, value)
    unit = np.where(as_hours, 1, np.where(in_days | in_hours, 2, 0))
    shown = np.where(as_hours, np.rint(hours), np.where(unit == 2, np.rint(days), value))
    return unit, shown


def _top(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the columns of its k largest values, largest first and the leftmost first among
    equal ones (the first k of a stable descending sort), and those values. Found by k passes
    of `_first_maximum` rather than by sorting every row's hundreds of columns; each value
    taken is set to -inf in `values` (the caller's copy)."""
    k = min(k, values.shape[1])
    order = np.empty((len(values), k), dtype=np.intp)
    largest = np.empty((len(values), k))
    every = np.arange(len(values))
    for rank in range(k):
        order[:, rank], largest[:, rank] = _first_maximum(values)
        values[every, order[:, rank]] = -np.inf
    return order, largest


def _first_maximum(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the column of its first largest value, as `argmax` gives it, and that value;
    found column by column: along the rows of column-major contributions argmax is strided,
    about 10 times slower."""
    largest = np.full(len(values), -np.inf)
    column = np.zeros(len(values), dtype=np.intp)
    for j in range(values.shape[1]):
        larger = values[:, j] > largest
        np.copyto(largest, values[:, j], where=larger)
        column[larger] = j
    return column, largest
