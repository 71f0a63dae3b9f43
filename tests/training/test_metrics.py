"""journeyguard.training.metrics on tiny hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from journeyguard.features.stats import wilson_interval
from journeyguard.training.metrics import (
    calibration_curve,
    days_bin_labels,
    days_bins,
    evaluate,
    lift_curve,
    metrics_by_group,
)

Y20 = np.array([1, 1] + [0] * 18)  # rate 0.1; the top 10 % of 20 rows is 2 rows
DESCENDING = np.linspace(0.95, 0.0, 20)


def test_perfect_ranking() -> None:
    m = evaluate(Y20, DESCENDING)
    assert (m["n"], m["positives"], m["rate"]) == (20, 2, 0.1)
    assert m["roc_auc"] == 1.0
    assert m["pr_auc"] == 1.0
    assert m["precision_top10"] == 1.0
    assert m["lift_top10"] == pytest.approx(1 / m["rate"])


def test_reversed_ranking() -> None:
    m = evaluate(Y20, DESCENDING[::-1])
    assert m["roc_auc"] == 0.0
    assert m["precision_top10"] == 0.0
    assert m["lift_top10"] == 0.0


def test_aucs_match_sklearn_on_random_data() -> None:
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 500)
    score = np.round(rng.random(500) * 0.5 + y * 0.2, 2)  # rounded: many ties
    m = evaluate(y, score)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, score), abs=1e-12)


def test_precision_top10_breaks_ties_by_input_order() -> None:
    # cut = ceil(20 / 10) = 2: row 1 (0.9) then the first of the rows tied at 0.5
    score = np.array([0.5, 0.9, 0.5] + [0.1] * 17)
    y = np.array([0, 1, 1] + [0] * 17)
    assert evaluate(y, score)["precision_top10"] == 0.5
    assert evaluate(y[[2, 1, 0, *range(3, 20)]], score)["precision_top10"] == 1.0
    assert evaluate(y, score)["lift_top10"] == pytest.approx(0.5 / 0.1)


def test_top10_cut_is_ceil_of_a_tenth_in_integer_arithmetic() -> None:
    # 0.1 * 70 == 7.000000000000001 in floating point; the cut must still be 7 rows
    y = np.array([1] * 7 + [0] * 63)
    assert evaluate(y, np.linspace(1, 0, 70))["precision_top10"] == 1.0
    # n = 11: ceil(1.1) = 2 rows, one of them positive
    y11 = np.array([1] + [0] * 10)
    assert evaluate(y11, np.linspace(1, 0, 11))["precision_top10"] == 0.5


def test_brier_and_log_loss_by_hand() -> None:
    y = np.array([1, 0, 1, 0])
    p = np.array([0.8, 0.3, 0.5, 0.0])
    m = evaluate(y, p)
    assert m["brier"] == pytest.approx((0.2**2 + 0.3**2 + 0.5**2 + 0.0**2) / 4)  # 0.095
    # the 0.0 is clipped to 1e-15: its loss -log(1 - 1e-15) is ~1e-15
    assert m["log_loss"] == pytest.approx(-(math.log(0.8) + math.log(0.7) + math.log(0.5)) / 4)


def test_log_loss_clips_certain_mistakes() -> None:
    m = evaluate(np.array([0, 1]), np.array([1.0, 0.0]))
    assert m["log_loss"] == pytest.approx(-math.log(1e-15), rel=1e-4)  # finite, ~34.5
    assert m["brier"] == 1.0


def test_brier_and_log_loss_are_nan_for_scores_that_are_not_probabilities() -> None:
    m = evaluate(np.array([0, 1, 1]), np.array([-2.0, 0.5, 3.0]))
    assert math.isnan(m["brier"]) and math.isnan(m["log_loss"])
    assert m["roc_auc"] == 1.0


@pytest.mark.parametrize("label", [0, 1])
def test_one_class_gives_nan_aucs(label: int) -> None:
    m = evaluate(np.full(10, label), np.linspace(0, 1, 10))
    assert math.isnan(m["roc_auc"]) and math.isnan(m["pr_auc"])
    assert m["rate"] == label
    assert math.isnan(m["lift_top10"]) if label == 0 else m["lift_top10"] == 1.0


@pytest.mark.parametrize(
    ("y", "score"),
    [
        (np.array([0, 2]), np.array([0.1, 0.2])),
        (np.array([0, 1]), np.array([0.1, np.nan])),
        (np.array([0, 1]), np.array([0.1])),
        (np.array([], dtype=int), np.array([])),
    ],
)
def test_bad_input_raises(y: np.ndarray, score: np.ndarray) -> None:
    with pytest.raises(ValueError):
        evaluate(y, score)


def test_calibration_curve_by_hand() -> None:
    score = np.arange(10) / 10
    y = np.array([0, 0, 0, 1, 1, 0, 1, 1, 1, 1])
    cal = calibration_curve(y, score, bins=5)
    assert list(cal.columns) == [
        "bin", "n", "mean_score", "observed_rate", "observed_low", "observed_high",
    ]  # fmt: skip
    assert cal["bin"].tolist() == [0, 1, 2, 3, 4]
    assert cal["n"].tolist() == [2] * 5
    assert cal["mean_score"].tolist() == pytest.approx([0.05, 0.25, 0.45, 0.65, 0.85])
    assert cal["observed_rate"].tolist() == [0.0, 0.5, 0.5, 1.0, 1.0]
    assert (cal["observed_low"] <= cal["observed_rate"]).all()
    assert (cal["observed_rate"] <= cal["observed_high"]).all()
    assert cal["observed_low"].iloc[0] == 0.0 and cal["observed_high"].iloc[-1] == 1.0


def test_calibration_bins_have_equal_counts_even_with_ties() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 23)
    for score in (rng.random(23), np.full(23, 0.4), np.round(rng.random(23), 1)):
        cal = calibration_curve(y, score, bins=5)
        assert cal["n"].sum() == 23
        assert cal["n"].max() - cal["n"].min() <= 1
        assert (cal["observed_low"] <= cal["observed_rate"]).all()
        assert (cal["observed_rate"] <= cal["observed_high"]).all()
    assert len(calibration_curve(y[:3], np.arange(3.0), bins=10)) == 3  # never an empty bin


def test_wilson_interval_known_value() -> None:
    low, high = wilson_interval(np.array([5]), np.array([10]))
    assert (low[0], high[0]) == pytest.approx((0.2366, 0.7634), abs=1e-4)


def test_lift_curve_by_hand() -> None:
    y = np.array([1, 1] + [0] * 8)
    curve = lift_curve(y, np.linspace(1, 0, 10), points=5)
    assert curve["share"].tolist() == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert curve["n_targeted"].tolist() == [2, 4, 6, 8, 10]
    assert curve["precision"].tolist() == pytest.approx([1, 0.5, 1 / 3, 0.25, 0.2])
    assert curve["recall"].tolist() == [1.0] * 5
    assert curve["lift"].tolist() == pytest.approx([5, 2.5, 5 / 3, 1.25, 1])


def test_lift_curve_last_point_is_everyone() -> None:
    rng = np.random.default_rng(11)
    y = rng.integers(0, 2, 37)
    curve = lift_curve(y, rng.random(37))
    assert len(curve) == 20
    last = curve.iloc[-1]
    assert (last["share"], last["n_targeted"], last["recall"], last["lift"]) == (1.0, 37, 1.0, 1.0)
    assert curve["recall"].is_monotonic_increasing


def test_metrics_by_group_one_row_per_group() -> None:
    rng = np.random.default_rng(5)
    prefix = np.array([3] * 35 + [1] * 40 + [2] * 10)
    y = rng.integers(0, 2, len(prefix))
    score = rng.random(len(prefix))
    table = metrics_by_group(y, score, pd.Series(prefix, name="prefix_length"), min_n=30)
    assert table.columns[0] == "prefix_length"
    assert table["prefix_length"].tolist() == [1, 2, 3]
    assert table["n"].tolist() == [40, 10, 35]
    assert table["small"].tolist() == [False, True, False]
    mask = prefix == 2
    assert table.iloc[1]["roc_auc"] == pytest.approx(roc_auc_score(y[mask], score[mask]))
    assert table.iloc[1]["positives"] == y[mask].sum()


def test_metrics_by_group_keeps_category_order_and_one_class_groups() -> None:
    days = np.array([400.0, 0.5, 20.0, 0.2, 400.0, 5.0])
    bins = pd.Categorical(days_bins(days), categories=days_bin_labels())
    y = np.array([1, 0, 1, 0, 0, 1])
    table = metrics_by_group(y, np.linspace(0.9, 0.1, 6), pd.Series(bins), min_n=2)
    assert table.columns[0] == "group"
    assert table["group"].tolist() == ["0-1d", "3-7d", "14-30d", "365d+"]  # not string order
    assert table["n"].tolist() == [2, 1, 1, 2]
    assert table["small"].tolist() == [False, True, True, False]
    assert math.isnan(table.iloc[0]["roc_auc"])  # the 0-1d group has no positive


def test_days_bins_labels() -> None:
    days = np.array([0, 0.5, 1, 2.9, 3, 7, 29.99, 30, 364.9, 365, 1000, np.nan])
    assert days_bins(days).tolist() == [
        "0-1d", "0-1d", "1-3d", "1-3d", "3-7d", "7-14d", "14-30d", "30-60d", "180-365d",
        "365d+", "365d+", None,
    ]  # fmt: skip
    assert days_bin_labels() == [
        "0-1d", "1-3d", "3-7d", "7-14d", "14-30d", "30-60d", "60-90d", "90-180d", "180-365d",
        "365d+",
    ]  # fmt: skip
    assert days_bins(np.array([0.25, 5.0]), edges=(0, 0.5, 2)).tolist() == ["0-0.5d", "2d+"]
    with pytest.raises(ValueError):
        days_bins(np.array([-1.0]))


def test_metrics_by_group_matches_by_position_and_keeps_missing_groups() -> None:
    groups = pd.Series(["b", None, "a", "b", "a", None], index=[10, 5, 3, 2, 1, 0], name="seg")
    y = np.array([1, 0, 0, 1, 1, 0])
    table = metrics_by_group(y, np.linspace(0.9, 0.1, 6), groups, min_n=1)
    assert table["seg"].tolist()[:2] == ["a", "b"] and pd.isna(table["seg"].iloc[2])
    assert table["n"].tolist() == [2, 2, 2]
    assert table["positives"].tolist() == [1, 2, 0]
    assert not table["small"].any()
    plain = metrics_by_group(y, np.linspace(0.9, 0.1, 6), np.array([0, 0, 0, 1, 1, 1]))
    assert plain["group"].tolist() == [0, 1] and plain["small"].all()
    with pytest.raises(ValueError):
        metrics_by_group(y, np.linspace(0.9, 0.1, 6), np.array([0, 1]))
