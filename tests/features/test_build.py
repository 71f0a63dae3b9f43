"""Path-sequence features: hand-computed values, point-in-time and order invariance (property
tests), and the training/serving parity guarantee: one journey alone gets its batch row."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone

from journeyguard.features.analysis.paths import step_durations
from journeyguard.features.dataset import features_at
from journeyguard.features.eventlog.frames import log_from_frame
from journeyguard.features.eventlog.log import Coded, Snapshots
from journeyguard.features.sources.simulate import simulate
from journeyguard.features.tables import write_table
from journeyguard.features.transformer import PathFeatures

T0 = pd.Timestamp("2024-03-01", tz="UTC")
HOUR = pd.Timedelta(hours=1)


def frame(rows: list[tuple]) -> pd.DataFrame:
    """rows: (journey, hours after T0, step, channel, score)."""
    return pd.DataFrame(
        [(j, T0 + h * HOUR, e, c, s) for j, h, e, c, s in rows],
        columns=["customer_id", "timestamp", "event", "channel", "score"],
    )


TINY = frame(
    [
        ("a", 0, "order", "web", None),
        ("a", 10, "ticket", "team_a", None),
        ("a", 12, "reassign", "team_b", None),
        ("a", 18, "reassign", "team_a", None),
        ("a", 20, "survey", "email", 2.0),
        ("a", 44, "survey", "email", 4.0),
        ("a", 100, "refund", "web", None),  # after as_of: never seen
        ("b", 5, "order", "web", None),
    ]
)
AS_OF = T0 + 48 * HOUR


def features_of(events: pd.DataFrame, as_of: pd.Timestamp, **params) -> pd.DataFrame:
    snapshots = Snapshots.at(log_from_frame(events), as_of)
    return PathFeatures(min_count=1, **params).fit(snapshots).transform(snapshots)


def test_hand_computed_features():
    row = features_of(TINY, AS_OF).iloc[0]
    assert row["events"] == 6 and row["tenure_days"] == 2.0
    assert row["recency_days"] == pytest.approx(4 / 24)
    assert row["count__reassign"] == 2 and row["rate__reassign"] == pytest.approx(2 / 6)
    assert "count__refund" not in row.index  # a step seen only after as_of is not learned
    assert row["days_since__ticket"] == pytest.approx(38 / 24)
    assert row["bigram__reassign__reassign"] == 1 and row["bigram__order__ticket"] == 1
    assert row["gap_mean_hours"] == pytest.approx(44 / 5) and row["gap_max_hours"] == 24
    assert row["gap_last_hours"] == 24
    assert row["repeats"] == 2 and row["distinct_steps"] == 4
    assert row["pingpong_channels"] == 1  # team_a, team_b, team_a
    assert row["score_last"] == 4.0 and row["score_trend"] == pytest.approx(2.0)
    assert row["score_mean"] == 3.0 and row["score_count"] == 2
    b = features_of(TINY, AS_OF).iloc[1]
    assert b["events"] == 1 and np.isnan(b["gap_mean_hours"]) and b["last_2"] == -1


def test_one_journeys_huge_numbers_never_reach_another_journeys_features():
    # Sums run along the whole log: three 1e308 of journey a made b's total NaN (issue 18).
    events = frame(
        [
            ("a", 1, "survey", "email", 1e308),
            ("a", 2, "survey", "email", 1e308),
            ("a", 3, "survey", "email", 1e308),
            ("b", 5, "survey", "email", 3.0),
        ]
    )
    events["value"] = [1e308, 1e308, 1e308, 5.0]
    built = features_of(events, AS_OF)
    alone = features_of(events[events["customer_id"] == "b"], AS_OF)
    for column in ("monetary", "score_mean"):
        assert np.isfinite(built[column]).all()
        assert built[column].iloc[1] == alone[column].iloc[0]
    assert built["monetary"].iloc[1] == 5.0 and built["score_mean"].iloc[1] == 3.0


def test_feature_names_are_readable_and_stable():
    events = TINY.assign(event=TINY["event"].replace({"reassign": "Ticket Reassigned!"}))
    snapshots = Snapshots.at(log_from_frame(events), AS_OF)
    transformer = PathFeatures(min_count=1).fit(snapshots)
    names = list(transformer.get_feature_names_out())
    assert "count__ticket_reassigned" in names and "days_since__ticket_reassigned" in names
    assert names == list(transformer.transform(snapshots).columns)
    assert clone(transformer).get_params() == transformer.get_params()


def test_a_step_never_seen_in_training_counts_as_other():
    snapshots = Snapshots.at(log_from_frame(TINY), AS_OF)
    transformer = PathFeatures(min_count=1).fit(snapshots)
    new = frame([("c", 0, "order", "web", None), ("c", 1, "teleport", "web", None)])
    row = transformer.transform(Snapshots.at(log_from_frame(new), AS_OF)).iloc[0]
    assert row["count__other"] == 1 and row["count__order"] == 1


journeys = st.lists(
    st.tuples(
        st.sampled_from(["j1", "j2", "j3", "j4"]),
        st.integers(0, 200),
        st.sampled_from(["order", "ticket", "refund", "survey", "chat"]),
        st.sampled_from(["web", "team_a", "team_b"]),
        st.one_of(st.none(), st.integers(1, 5).map(float)),
    ),
    min_size=1,
    max_size=40,
    unique_by=lambda r: (r[0], r[1]),
)


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(journeys, journeys, st.integers(0, 200))
def test_events_after_as_of_change_nothing(rows, later_rows, cut):
    as_of = T0 + cut * HOUR
    base = frame(rows)
    if (base["timestamp"] > as_of).all():
        return  # no journey is active yet
    later = frame([(j, cut + 1 + h, e, c, s) for j, h, e, c, s in later_rows])
    with_later = pd.concat([base, later], ignore_index=True)
    without_after = base[base["timestamp"] <= as_of]
    expected = features_of(base, as_of)
    pd.testing.assert_frame_equal(features_of(with_later, as_of), expected)
    pd.testing.assert_frame_equal(features_of(without_after, as_of), expected)


@pytest.mark.slow
@settings(max_examples=40, deadline=None)
@given(journeys, st.randoms(use_true_random=False))
def test_row_order_changes_nothing(rows, random):
    shuffled = list(rows)
    random.shuffle(shuffled)
    as_of = T0 + 150 * HOUR
    if (frame(rows)["timestamp"] > as_of).all():
        return
    pd.testing.assert_frame_equal(
        features_of(frame(shuffled), as_of), features_of(frame(rows), as_of)
    )


@pytest.fixture(scope="module")
def batch():
    simulation = simulate(3_000, seed=5)
    log = log_from_frame(simulation.events)
    as_of = pd.Timestamp("2025-09-01", tz="UTC")
    snapshots = Snapshots.at(log, as_of)
    y = np.random.default_rng(0).random(len(snapshots)) < 0.3  # labels for the critical items
    transformer = PathFeatures().fit(snapshots, y)
    return simulation.events, transformer, transformer.transform(snapshots), snapshots, as_of


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000))
def test_one_journey_alone_equals_its_row_in_the_batch(batch, pick):
    """The training/serving parity guarantee, through the very code the service calls."""
    events, transformer, matrix, snapshots, as_of = batch
    position = pick % len(snapshots)
    customer = snapshots.customer_ids[position]
    alone_log = log_from_frame(events[events["customer_id"] == customer])
    alone = transformer.transform(Snapshots.at(alone_log, as_of))
    pd.testing.assert_frame_equal(alone, matrix.iloc[[position]].reset_index(drop=True))


def test_a_journey_alone_equals_its_row_in_the_batch_to_1e_9(batch):
    """A journey's features may not depend on the journeys before it in the arrays beyond
    1e-9: a Spark partition holds other journeys than the whole log, and its rows must equal
    the local command's (running maxima once lost bits to a lift by the journey's code)."""
    events, transformer, matrix, snapshots, as_of = batch
    for position in range(len(snapshots) - 20, len(snapshots)):  # the farthest from the start
        customer = snapshots.customer_ids[position]
        alone_log = log_from_frame(events[events["customer_id"] == customer])
        alone = transformer.transform(Snapshots.at(alone_log, as_of))
        expected = matrix.iloc[[position]].reset_index(drop=True)
        pd.testing.assert_frame_equal(alone, expected, check_exact=False, rtol=0, atol=1e-9)


def test_critical_items_and_routes_are_learned_from_labels(batch):
    _, _, matrix, snapshots, _ = batch
    assert {"critical__items", "critical__weight", "critical__route_positive"} <= set(matrix)
    assert matrix["critical__route_positive"].between(0, 1).all()
    # Labels that a denied refund drives: the learned critical items must name it first.
    y = matrix["count__refund_denied"].to_numpy() > 0
    learned = PathFeatures().fit(snapshots, y).vocabulary_
    assert learned.critical[0][0] == "count__refund_denied" and learned.critical[0][1] > 0.9
    assert set(learned.routes) == {"positive", "negative"} and learned.routes["positive"]
    rows = PathFeatures().fit(snapshots, y).transform(snapshots)
    assert (rows.loc[y, "critical__items"] >= 1).all()


def test_snapshots_at_one_as_of_equal_the_overlapping_path(batch):
    """Snapshots at one as_of count their prefixes' events in one pass; repeated snapshots of
    a journey overlap and take the running tables. Both give every row the same features."""
    _, transformer, matrix, snapshots, _ = batch
    twice = Snapshots(
        snapshots.log,
        np.repeat(snapshots.journeys, 2),
        np.repeat(snapshots.as_of, 2),
    )
    overlapping = transformer.transform(twice)
    pd.testing.assert_frame_equal(overlapping.iloc[::2].reset_index(drop=True), matrix)


def test_snapshots_that_see_nothing_yet_or_share_a_journey_keep_their_rows(batch):
    """Features read only each prefix's events, so the build keeps no others: snapshots before
    a journey's first event, at several times of one journey, or of a few journeys, each get
    the row that the journey alone gives at that time."""
    events, transformer, _, snapshots, as_of = batch
    log = snapshots.log
    early = log.first_time - 1
    cases = [  # (journey codes, as_of ns): one journey twice; then each journey once
        (np.array([3, 0, 3, 7, 1]), np.array([as_of.value, early, early, log.last_time, 0])),
        (np.array([7, 0, 3]), np.array([as_of.value, early, log.last_time])),
    ]
    for journeys, times in cases:
        mixed = transformer.transform(Snapshots(log, journeys, times))
        for row, (journey, time) in enumerate(zip(journeys, times, strict=True)):
            customer = log.journey_ids[journey]
            alone_log = log_from_frame(events[events["customer_id"] == customer])
            alone = transformer.transform(Snapshots(alone_log, np.array([0]), np.array([time])))
            pd.testing.assert_frame_equal(mixed.iloc[[row]].reset_index(drop=True), alone)


def test_features_at_equal_the_transformer_on_every_journey_active_at_as_of(batch):
    """The features command's path (the log cut at as_of once, vocabulary and features from the
    cut log) gives PathFeatures' rows, later events and all."""
    _, _, _, snapshots, as_of = batch
    table = features_at(snapshots.log, as_of)
    fitted = PathFeatures().fit(snapshots)
    expected = fitted.transform(snapshots)
    assert list(table["customer_id"]) == list(snapshots.customer_ids.astype(str))
    assert (table["as_of"] == as_of).all()
    pd.testing.assert_frame_equal(table.drop(columns=["customer_id", "as_of"]), expected)


def test_the_features_file_reads_back_as_the_frame(batch, tmp_path):
    """The features file reads back as the frame, dtypes and all: text dictionary-encoded,
    numbers plain."""
    _, _, _, snapshots, as_of = batch
    table = features_at(snapshots.log, as_of)
    out = tmp_path / "features.parquet"
    write_table(table, out)
    pd.testing.assert_frame_equal(pd.read_parquet(out), table)
    encodings = pq.ParquetFile(out).metadata.row_group(0)
    assert "RLE_DICTIONARY" in encodings.column(0).encodings  # customer_id
    assert "RLE_DICTIONARY" not in encodings.column(2).encodings  # events


def test_the_vocabulary_stages_steps_as_the_path_analysis_does(batch):
    """A step's stage is the median position of its first event (`analysis.paths`), and the
    attribute categories are those some event has, sorted."""
    _, transformer, _, snapshots, as_of = batch
    seen = snapshots.log.until(as_of)
    durations = step_durations(seen)
    expected = dict(zip(durations["step"], durations["median_position"], strict=True))
    vocabulary = transformer.vocabulary_
    assert vocabulary.stage_rank == tuple(float(expected[step]) for step in vocabulary.steps)
    for name, categories in vocabulary.attributes.items():
        column = seen.column(name)
        if isinstance(column, Coded):
            used = np.unique(column.codes[column.codes >= 0])
            assert categories == tuple(str(c) for c in column.categories[used])


@pytest.mark.parametrize("n", [2, 3])
def test_the_frequent_ngrams_are_those_a_loop_over_each_journey_counts(batch, n):
    _, transformer, _, snapshots, as_of = batch
    seen = snapshots.log.until(as_of)
    counted: Counter[tuple[str, ...]] = Counter()
    for journey in range(seen.n_journeys):
        steps = [
            str(seen.steps[c])
            for c in seen.step_codes[seen.offsets[journey] : seen.offsets[journey + 1]]
        ]
        counted.update(tuple(steps[i : i + n]) for i in range(len(steps) - n + 1))
    frequent = sorted(
        (gram for gram, count in counted.items() if count >= 5), key=lambda g: (-counted[g], g)
    )
    vocabulary = transformer.vocabulary_
    learned, top = (vocabulary.bigrams, 50) if n == 2 else (vocabulary.trigrams, 30)
    assert list(learned) == frequent[:top]
