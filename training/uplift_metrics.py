"""How well a ranking finds the customers an action helps: pure functions of the outcome, the
arm and a score, all on randomised rows.

- The Qini curve (Radcliffe 2007): customers ranked by score, highest first; after the first
  k, Q(k) = good outcomes among the treated - good outcomes among the control x (treated /
  control so far): the good outcomes the action added among the first k. Drawn with the share
  targeted on x and Q(k) per customer of the population on y, so logs of any size compare.
- The Qini coefficient: the area between that curve and the straight line of random
  targeting (0 for a random ranking, larger is better; negative ranks the harmed first).
- Uplift by decile: the realised difference of the good outcome's rate, treated - control,
  in each tenth of the ranking, with its Newcombe interval, beside the mean prediction.
- The average effect: the same difference over every row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from journeyguard.features.stats import newcombe_interval

CURVE_POINTS = 101  # the curve as logged and drawn: every percent of the ranking
DECILES = 10


def _ranked_counts(good: np.ndarray, treated: np.ndarray, score: np.ndarray) -> tuple:
    """Running counts along the ranking (highest score first; ties in row order)."""
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")
    t = np.asarray(treated, dtype=bool)[order]
    g = np.asarray(good, dtype=np.float64)[order]
    return np.cumsum(t), np.cumsum(~t), np.cumsum(g * t), np.cumsum(g * ~t)


def qini_values(good: np.ndarray, treated: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Q(k) for k = 0..n (Q(0) = 0): the good outcomes the action added among the first k."""
    n_t, n_c, good_t, good_c = _ranked_counts(good, treated, score)
    ratio = np.divide(n_t, n_c, out=np.zeros(len(n_t)), where=n_c > 0)
    return np.concatenate(([0.0], good_t - good_c * ratio))


def qini_coefficient(good: np.ndarray, treated: np.ndarray, score: np.ndarray) -> float:
    """The area between the Qini curve and the random line, both axes per customer."""
    q = qini_values(good, treated, score)
    n = len(q) - 1
    if n == 0:
        return float("nan")
    random = np.linspace(0.0, q[-1], n + 1)
    return float(np.trapezoid(q - random, dx=1.0 / n) / n)


def qini_curve(
    good: np.ndarray, treated: np.ndarray, score: np.ndarray, points: int = CURVE_POINTS
) -> pd.DataFrame:
    """`points` points of the curve: share targeted, Q per customer, and the random line."""
    q = qini_values(good, treated, score)
    n = len(q) - 1
    share = np.linspace(0.0, 1.0, points)
    at = np.rint(share * n).astype(int)
    scale = max(n, 1)
    return pd.DataFrame(
        {"share": share, "qini": q[at] / scale, "random": share * q[-1] / scale},
    )


def average_effect(good: np.ndarray, treated: np.ndarray) -> dict[str, float]:
    """The good outcome's rate among the treated minus among the control, with the 95 %
    Newcombe interval, and the counts behind it."""
    treated = np.asarray(treated, dtype=bool)
    good = np.asarray(good, dtype=np.float64)
    n_t, n_c = int(treated.sum()), int((~treated).sum())
    pos_t, pos_c = float(good[treated].sum()), float(good[~treated].sum())
    rate_t = pos_t / n_t if n_t else float("nan")
    rate_c = pos_c / n_c if n_c else float("nan")
    low, high = newcombe_interval(
        np.array([pos_t]), np.array([n_t]), np.array([pos_c]), np.array([n_c])
    )
    both = n_t > 0 and n_c > 0
    return {
        "treated_n": n_t,
        "control_n": n_c,
        "treated_rate": rate_t,
        "control_rate": rate_c,
        "effect": rate_t - rate_c,
        "effect_low": float(low[0]) if both else float("nan"),
        "effect_high": float(high[0]) if both else float("nan"),
    }


def uplift_by_decile(
    good: np.ndarray, treated: np.ndarray, score: np.ndarray, groups: int = DECILES
) -> pd.DataFrame:
    """Per tenth of the ranking (1: the highest predicted uplift): the mean prediction and
    the realised effect with its interval (`average_effect` of the tenth's rows)."""
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")
    rows = []
    for decile, part in enumerate(np.array_split(order, groups), start=1):
        effect = average_effect(np.asarray(good)[part], np.asarray(treated)[part])
        rows.append({"decile": decile, "predicted": float(np.mean(score[part]))} | effect)
    return pd.DataFrame(rows)


def gain_captured(score: np.ndarray, true_gain: np.ndarray, share: float = 0.2) -> float:
    """The planted gain of the top `share` ranked by `score`, as a share of the most any
    ranking could capture there (the top `share` by the true gain itself)."""
    k = max(1, round(share * len(score)))
    by_score = np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")[:k]
    best = np.sort(np.asarray(true_gain, dtype=np.float64))[::-1][:k].sum()
    return float(true_gain[by_score].sum() / best) if best > 0 else float("nan")


def qini_difference_error(
    good: np.ndarray,
    treated: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    *,
    reps: int = 200,
    seed: int = 0,
) -> float:
    """The bootstrap standard error of qini(first) - qini(second) on the same rows (resampled
    together, a fixed seed: the same rows give the same error)."""
    rng = np.random.default_rng(seed)
    n = len(good)
    differences = []
    for _ in range(reps):
        pick = rng.integers(0, n, n)
        differences.append(
            qini_coefficient(good[pick], treated[pick], first[pick])
            - qini_coefficient(good[pick], treated[pick], second[pick])
        )
    return float(np.std(differences, ddof=1))
