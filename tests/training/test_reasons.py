"""training.reasons: the top reasons of each row, in the order a stable descending sort gives."""

from __future__ import annotations

import numpy as np

from journeyguard.training.reasons import describe, reason_arrays


def test_top_reasons_are_the_largest_positive_contributions_leftmost_first_on_ties() -> None:
    names = ["events", "recency_days", "critical__items", "frequency"]
    values = np.array([[3.0, 2.0, 1.0, 4.0], [5.0, 1.0, 9.0, 2.0], [1.0, 1.0, 1.0, 1.0]])
    contributions = np.array(
        [
            [0.2, 0.5, 0.9, 0.2],  # critical__items is never a reason; a tie: events first
            [-0.1, 0.0, 0.7, 0.3],  # one feature pushes the risk up
            [0.0, 0.0, 0.0, 0.0],  # none does
        ]
    )
    texts, chosen = reason_arrays(values, contributions, names, k=3)
    assert texts == [  # per rank, every row
        ["last activity 2 days ago", "2 purchases", None],
        ["3 steps so far", None, None],
        ["4 purchases", None, None],
    ]
    np.testing.assert_array_equal(
        chosen, [[0.5, 0.2, 0.2], [0.3, np.nan, np.nan], [np.nan, np.nan, np.nan]]
    )


def test_the_order_is_a_stable_descending_sort_of_every_row() -> None:
    rng = np.random.default_rng(5)
    contributions = rng.integers(-3, 4, (500, 12)).astype(float)  # many ties
    names = [f"recency_days_{i}" for i in range(12)]  # each column's text names it
    values = np.ones_like(contributions)
    order = np.argsort(-contributions, axis=1, kind="stable")[:, :4]
    want = np.take_along_axis(contributions, order, axis=1)
    texts = [
        [describe(names[c], 1.0) if w > 0 else None for c, w in zip(o, r, strict=True)]
        for o, r in zip(order, want, strict=True)
    ]
    for layout in (contributions, np.asfortranarray(contributions)):  # scoring's is the latter
        got, chosen = reason_arrays(values, layout, names, k=4)
        np.testing.assert_array_equal(chosen, np.where(want > 0, want, np.nan))
        assert [list(row) for row in zip(*got, strict=True)] == texts


def test_each_text_describes_its_own_row_when_rows_share_values() -> None:
    rng = np.random.default_rng(6)
    names = ["recency_days", "events", "frequency", "tenure_days"]
    contributions = rng.normal(size=(400, 4))
    values = rng.choice([0.5, 1.0, 2.0, 30.0, np.nan], size=(400, 4))  # shared, and missing
    texts, _ = reason_arrays(values, contributions, names, k=2)
    order = np.argsort(-contributions, axis=1, kind="stable")[:, :2]
    for rank in range(2):
        want = [
            describe(names[c], values[row, c]) if contributions[row, c] > 0 else None
            for row, c in enumerate(order[:, rank])
        ]
        assert texts[rank] == want


def test_values_shown_in_whole_days_or_hours_are_described_as_each_alone() -> None:
    """Values that round to one number of days or hours share one description: at and around
    every half hour and half day, where the rounding turns, each text is the value's own."""
    names = ["recency_days", "days_since__refund_denied", "gap_max_hours", "events_per_day"]
    half_steps = np.arange(0, 400) / 48  # half hours, then half days past a day
    values = np.concatenate(
        [half_steps, np.nextafter(half_steps, -1), np.nextafter(half_steps, 9e9), [-0.3, np.nan]]
    )
    for feature, scale in zip(names, (1, 1, 24, 1), strict=True):
        shown = values * scale
        texts, _ = reason_arrays(shown[:, None], np.ones((len(shown), 1)), [feature], k=1)
        assert texts[0] == [describe(feature, v) for v in shown.tolist()], feature
