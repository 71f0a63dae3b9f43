"""Evaluation metrics: pure functions of (y, score) arrays.

`y` holds binary labels (0/1 or bool); `score` holds one finite score per row, higher meaning
"more likely positive". Ranking metrics (AUCs, top 10 %, lift) accept any score; `brier` and
`log_loss` are only meaningful for probabilities, so callers pass calibrated probabilities in
[0, 1] (they are NaN when any score falls outside [0, 1]).

Orderings are deterministic: rows are ranked by descending score and tied scores keep their
input order (a stable sort), so the top of a cut is reproducible for a given input order.
Cut sizes use integer arithmetic: the top 10 % is ceil(n / 10) rows.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from journeyguard.features.stats import wilson_interval

LOG_LOSS_EPS = 1e-15
DEFAULT_DAY_EDGES = (0, 1, 3, 7, 14, 30, 60, 90, 180, 365)
METRICS = (
    "n", "positives", "rate", "roc_auc", "pr_auc", "brier", "log_loss", "precision_top10",
    "lift_top10",
)  # fmt: skip


def _check(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(y as int 0/1, score as float), or ValueError for empty, ragged or non-binary input."""
    y_arr, s_arr = np.asarray(y), np.asarray(score, dtype=float)
    if y_arr.ndim != 1 or s_arr.ndim != 1 or len(y_arr) != len(s_arr):
        raise ValueError(f"y and score must be 1-D of equal length: {y_arr.shape}, {s_arr.shape}")
    if len(y_arr) == 0:
        raise ValueError("y and score are empty")
    if not np.isin(y_arr, (0, 1)).all():
        raise ValueError("y must hold only 0/1 (or bool) labels")
    if not np.isfinite(s_arr).all():
        raise ValueError("score must be finite (no NaN or inf)")
    return y_arr.astype(np.int64), s_arr


def _ranked(y: np.ndarray, score: np.ndarray) -> np.ndarray:
    """y ordered by descending score, tied scores in input order."""
    return y[np.argsort(-score, kind="stable")]


def _ratio(num: float, den: float) -> float:
    return num / den if den else math.nan


def evaluate(y: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """n, positives, rate, roc_auc, pr_auc (average precision), brier, log_loss,
    precision_top10 and lift_top10 (= precision_top10 / rate) of one set of predictions.

    roc_auc and pr_auc are NaN when y has a single class; lift_top10 is NaN when rate is 0.
    brier and log_loss assume `score` holds probabilities: they are NaN when any score is
    outside [0, 1]; log_loss clips scores to [1e-15, 1 - 1e-15]. The top 10 % is the first
    ceil(n / 10) rows by descending score, ties broken by input order. n and positives are int.
    """
    y, score = _check(y, score)
    n, positives = len(y), int(y.sum())
    rate = positives / n
    two_classes = 0 < positives < n
    probabilities = bool(((score >= 0) & (score <= 1)).all())
    p = np.clip(score, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    precision_top10 = float(_ranked(y, score)[: -(-n // 10)].mean())
    return {
        "n": n,
        "positives": positives,
        "rate": rate,
        "roc_auc": float(roc_auc_score(y, score)) if two_classes else math.nan,
        "pr_auc": float(average_precision_score(y, score)) if two_classes else math.nan,
        "brier": float(np.mean((score - y) ** 2)) if probabilities else math.nan,
        "log_loss": float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))
        if probabilities
        else math.nan,
        "precision_top10": precision_top10,
        "lift_top10": _ratio(precision_top10, rate),
    }


def calibration_curve(y: np.ndarray, score: np.ndarray, *, bins: int = 10) -> pd.DataFrame:
    """Reliability table over quantile bins of the score, lowest scores first.

    Rows are sorted by ascending score (ties in input order) and split into min(bins, n)
    consecutive bins whose sizes differ by at most one, so tied scores may straddle a bin
    edge. Columns: bin (0-based), n, mean_score, observed_rate, observed_low, observed_high
    (Wilson 95 % interval of observed_rate).
    """
    y, score = _check(y, score)
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    order = np.argsort(score, kind="stable")
    parts = np.array_split(order, min(bins, len(y)))
    counts = np.array([len(part) for part in parts])
    hits = np.array([y[part].sum() for part in parts])
    low, high = wilson_interval(hits, counts)
    return pd.DataFrame(
        {
            "bin": np.arange(len(parts)),
            "n": counts,
            "mean_score": [float(score[part].mean()) for part in parts],
            "observed_rate": hits / counts,
            "observed_low": low,
            "observed_high": high,
        }
    )


def lift_curve(y: np.ndarray, score: np.ndarray, *, points: int = 20) -> pd.DataFrame:
    """Cumulative gains of targeting the top of the ranking, one row per k = 1..points.

    share = k / points of the population is targeted: the first ceil(k * n / points) rows by
    descending score (ties in input order), counted in n_targeted. precision is the positive
    rate among them, recall the share of all positives they capture (NaN without positives),
    lift = precision / rate (NaN without positives). The last row has recall 1 and lift 1.
    """
    y, score = _check(y, score)
    if points < 1:
        raise ValueError(f"points must be >= 1, got {points}")
    n, positives = len(y), int(y.sum())
    captured = np.cumsum(_ranked(y, score))
    k = np.arange(1, points + 1)
    cuts = -(-k * n // points)
    precision = captured[cuts - 1] / cuts
    recall = captured[cuts - 1] / positives if positives else np.full(points, math.nan)
    lift = precision / (positives / n) if positives else np.full(points, math.nan)
    return pd.DataFrame(
        {"share": k / points, "n_targeted": cuts, "precision": precision, "recall": recall,
         "lift": lift}
    )  # fmt: skip


def metrics_by_group(
    y: np.ndarray, score: np.ndarray, groups: np.ndarray | pd.Series, *, min_n: int = 30
) -> pd.DataFrame:
    """evaluate() per group value: one row per group present, the group value first.

    The group column is named after the Series (else "group"). Groups are sorted by value, or
    by category order when `groups` is categorical (see `days_bin_labels`); missing group values
    form a last group of their own. `groups` is matched to y by position, not index. Groups
    with fewer than `min_n` rows are kept, with small=True; their metrics are noisy.
    """
    y, score = _check(y, score)
    name = groups.name if isinstance(groups, pd.Series) and groups.name is not None else "group"
    key = groups.reset_index(drop=True) if isinstance(groups, pd.Series) else pd.Series(groups)
    if len(key) != len(y):
        raise ValueError(f"groups has {len(key)} rows, y has {len(y)}")
    by = key.groupby(key, sort=True, dropna=False, observed=True)
    rows = [{name: value, **evaluate(y[idx], score[idx])} for value, idx in by.indices.items()]
    table = pd.DataFrame(rows, columns=[name, *METRICS])
    table["small"] = table["n"] < min_n
    return table


def _edge(value: float) -> str:
    return f"{value:g}"


def days_bin_labels(edges: Sequence[float] = DEFAULT_DAY_EDGES) -> list[str]:
    """The labels `days_bins` can return, in order: "0-1d", "1-3d", ..., "365d+"."""
    if len(edges) < 1 or any(b <= a for a, b in itertools.pairwise(edges)):
        raise ValueError(f"edges must be non-empty and strictly increasing: {edges}")
    spans = [f"{_edge(a)}-{_edge(b)}d" for a, b in itertools.pairwise(edges)]
    return [*spans, f"{_edge(edges[-1])}d+"]


def days_bins(days: np.ndarray, edges: Sequence[float] = DEFAULT_DAY_EDGES) -> np.ndarray:
    """Label each day count with its left-closed bin: [0, 1) -> "0-1d", [1, 3) -> "1-3d", ...,
    [365, inf) -> "365d+". Returns an object array of str; NaN days give None. Days below the
    first edge raise ValueError. For ordered tables, wrap the result in
    `pd.Categorical(labels, categories=days_bin_labels(edges))`.
    """
    labels = np.array(days_bin_labels(edges), dtype=object)
    days = np.asarray(days, dtype=float)
    missing = np.isnan(days)
    if (days[~missing] < edges[0]).any():
        raise ValueError(f"days below the first edge {edges[0]}")
    index = np.searchsorted(np.asarray(edges, dtype=float), np.where(missing, edges[0], days),
                            side="right") - 1  # fmt: skip
    out = labels[index]
    out[missing] = None
    return out
