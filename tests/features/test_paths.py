"""Path analysis on tiny logs computed by hand, and invariants on a simulated one."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from journeyguard.features.analysis import paths
from journeyguard.features.eventlog.frames import log_from_frame
from journeyguard.features.eventlog.log import EventLog


def log_of(*journeys: str, hours: dict[str, list[float]] | None = None) -> EventLog:
    """Journeys written as 'id: a b c'; events one hour apart unless `hours` says otherwise."""
    rows = []
    for journey in journeys:
        name, steps = journey.split(":")
        offsets = (hours or {}).get(name, range(len(steps.split())))
        for step, hour in zip(steps.split(), offsets, strict=True):
            rows.append(
                (name, pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(hours=hour), step)
            )
    return log_from_frame(pd.DataFrame(rows, columns=["customer_id", "timestamp", "event"]))


LOG = log_of(
    "a: order ship deliver",
    "b: order ship ship deliver",
    "c: order ticket",
    hours={"a": [0, 2, 10], "b": [0, 1, 3, 4], "c": [0, 5]},
)


def test_transitions_by_hand():
    table = pd.DataFrame(paths.transitions(LOG)).set_index(["from", "to"])
    expected = {
        ("order", "ship"): 2,
        ("ship", "deliver"): 2,
        ("ship", "ship"): 1,
        ("order", "ticket"): 1,
    }
    assert table["count"].to_dict() == expected
    assert table.loc[("order", "ship"), "probability"] == pytest.approx(2 / 3)
    assert table.loc[("ship", "deliver"), "probability"] == pytest.approx(2 / 3)
    # ship -> deliver took 8 h in a and 1 h in b: median 4.5 h, p95 by linear interpolation.
    assert table.loc[("ship", "deliver"), "median_hours"] == pytest.approx(4.5)
    assert table.loc[("ship", "deliver"), "p95_hours"] == pytest.approx(1 + 0.95 * 7)
    assert table.loc[("ship", "ship"), "journeys"] == 1


def test_variants_and_start_end():
    log = log_of("a: x y", "b: x y", "c: y x", "d: x y y")
    variants = pd.DataFrame(paths.variants(log))
    # Ties keep the order of their first journeys: c before d.
    steps = paths.variant_steps(log, variants["first_journey"].to_numpy())
    assert steps == [["x", "y"], ["y", "x"], ["x", "y", "y"]]
    assert variants["journeys"].tolist() == [2, 1, 1]
    assert variants["rank"].tolist() == [1, 2, 3]
    starts, ends = paths.start_and_end_steps(LOG)
    assert dict(zip(starts["step"], starts["journeys"], strict=True)) == {"order": 3}
    assert ends["step"].tolist() == ["deliver", "ticket"]  # by journeys, then by name
    assert dict(zip(ends["step"], ends["journeys"], strict=True)) == {"deliver": 2, "ticket": 1}


def test_step_matrix_shares_by_position():
    matrix = paths.step_matrix(LOG, n_positions=4)
    assert matrix.share("order", 1) == 1.0
    assert matrix.share("ship", 2) == pytest.approx(2 / 3)
    assert matrix.share("ticket", 2) == pytest.approx(1 / 3)
    assert matrix.share("(ended)", 3) == pytest.approx(1 / 3)
    assert matrix.share("(ended)", 4) == pytest.approx(2 / 3)
    np.testing.assert_allclose(matrix.shares.sum(axis=0), 1.0)


def test_anchored_step_matrix():
    matrix = paths.anchored_step_matrix(LOG, "ship", n_positions=2)
    assert matrix.journeys == 2
    assert matrix.share("order", -1) == 1.0 and matrix.share("(not started)", -2) == 1.0
    assert matrix.share("deliver", 1) == 0.5 and matrix.share("ship", 1) == 0.5
    np.testing.assert_allclose(matrix.shares.sum(axis=0), 1.0)
    with pytest.raises(ValueError, match="unknown step 'shipp'"):
        paths.anchored_step_matrix(LOG, "shipp")


def test_funnel_counts_only_steps_after_the_previous_stage():
    log = log_of("a: order ship deliver", "b: deliver order ship", "c: order deliver")
    funnel = pd.DataFrame(paths.funnel(log, ["order", "ship", "deliver"]))
    assert funnel["journeys"].tolist() == [3, 2, 1]
    assert funnel["drop_off"].tolist() == [0, 1, 1]
    assert funnel["conversion"].tolist() == pytest.approx([1.0, 2 / 3, 1 / 2])
    assert funnel["median_hours_from_previous"].tolist()[1:] == [1.0, 1.0]


def test_durations_and_dwell():
    durations = pd.DataFrame(paths.step_durations(LOG)).set_index("step")
    assert durations.loc["deliver", "median_hours_from_first"] == pytest.approx(7.0)  # 10 and 4
    assert durations.loc["ship", "journeys"] == 2
    dwell = pd.DataFrame(paths.step_dwell(LOG)).set_index("step")
    assert dwell.loc["ship", "count"] == 3 and dwell.loc["ship", "total_dwell_hours"] == 11
    lengths = paths.journey_lengths(LOG)
    assert lengths["events_median"] == 3 and lengths["duration_median_hours"] == 5


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(st.sampled_from("abcd"), min_size=1, max_size=6), min_size=1, max_size=25))
def test_transition_and_variant_counts_match_a_plain_python_count(journeys):
    log = log_of(*[f"j{i:02d}: {' '.join(steps)}" for i, steps in enumerate(journeys)])
    expected_pairs: dict[tuple[str, str], int] = {}
    for steps in journeys:
        for pair in itertools.pairwise(steps):
            expected_pairs[pair] = expected_pairs.get(pair, 0) + 1
    table = paths.transitions(log)
    assert (
        dict(zip(zip(table["from"], table["to"], strict=True), table["count"], strict=True))
        == expected_pairs
    )
    expected_variants: dict[tuple[str, ...], int] = {}
    for steps in journeys:
        expected_variants[tuple(steps)] = expected_variants.get(tuple(steps), 0) + 1
    variants = paths.variants(log)
    steps = paths.variant_steps(log, variants["first_journey"])
    found = {tuple(s): n for s, n in zip(steps, variants["journeys"], strict=True)}
    assert found == expected_variants


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.lists(st.tuples(st.sampled_from("abcd"), st.integers(0, 10**6)), min_size=1, max_size=9),
        min_size=1,
        max_size=25,
    )
)
def test_transitions_and_dwell_together_equal_each_alone(journeys):
    # Together, a step's dwell times come from the bins of the pairs it opens; alone, from
    # the gaps by step: the same tables to the last bit.
    hours = {f"j{i}": list(np.cumsum([h / 3600 for _, h in j])) for i, j in enumerate(journeys)}
    log = log_of(
        *(f"j{i}: " + " ".join(step for step, _ in j) for i, j in enumerate(journeys)),
        hours=hours,
    )

    together, dwell = paths.transitions_and_dwell(log)

    for mine, alone in ((together, paths.transitions(log)), (dwell, paths.step_dwell(log))):
        assert mine.keys() == alone.keys()
        for name in mine:
            np.testing.assert_array_equal(mine[name], alone[name], err_msg=name)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(st.sampled_from("abcd"), min_size=1, max_size=40), min_size=1, max_size=8))
def test_sequence_hashes_are_the_polynomial_of_each_journey(journeys):
    # Made from powers by index in the log, they equal the hash of each journey on its own.
    log = log_of(*[f"j{i}: {' '.join(steps)}" for i, steps in enumerate(journeys)])
    base, mix = (int(b) for b in paths._HASH_BASES)
    expected = []
    for j in range(log.n_journeys):
        codes = log.step_codes[log.offsets[j] : log.offsets[j + 1]].tolist()
        total = sum((c + 1) * base ** (p + 1) for p, c in enumerate(codes))
        expected.append((total * mix + len(codes)) % 2**64)
    paths._HASH_CHUNK, before = 3, paths._HASH_CHUNK  # step codes read a few at a time
    try:
        assert paths.sequence_hashes(log).tolist() == expected
    finally:
        paths._HASH_CHUNK = before
    assert paths.sequence_hashes(log).tolist() == expected


def test_variants_survive_hashes_that_collide_or_raise(monkeypatch):
    # A second base of 0 hashes a journey to its length alone: every journey of one length
    # collides.
    monkeypatch.setattr(paths, "_HASH_BASES", (np.uint64(1), np.uint64(0)))
    alike = log_of("a: x y", "b: z", "c: x y", "d: x y", "e: z")
    assert paths.journey_variants(alike).tolist() == [1, 0, 1, 1, 0]  # ids by hash: by length
    assert paths.variants(alike)["first_journey"].tolist() == [0, 1]
    with pytest.raises(RuntimeError, match="share a hash"):
        paths.journey_variants(log_of("a: x y", "b: y x"))
    # Compared a journey at a time, the collision is found past the first comparison too.
    monkeypatch.setattr(paths, "_COMPARED_AT_ONCE", 1)
    assert paths.journey_variants(alike).tolist() == [1, 0, 1, 1, 0]
    with pytest.raises(RuntimeError, match="share a hash"):
        paths.journey_variants(log_of("a: x y", "b: x y", "c: y x"))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.sampled_from("abcd"), min_size=1, max_size=8), min_size=1, max_size=20))
def test_funnel_counts_match_a_walk_through_each_journey(journeys):
    # Each stage counts the journeys whose next event of that step comes after the stage
    # before (a repeated step included).
    stages = ["a", "b", "a", "c"]
    log = log_of(*[f"j{i:02d}: {' '.join(steps)}" for i, steps in enumerate(journeys)])
    assume(set(stages) <= set(log.steps))  # an unknown step is an error, tested by hand
    expected = [0] * len(stages)
    for steps in journeys:
        at = -1
        for stage, name in enumerate(stages):
            if name not in steps[at + 1 :]:
                break
            at = steps.index(name, at + 1)
            expected[stage] += 1
    assert paths.funnel(log, stages)["journeys"].tolist() == expected


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_variant_numbers_equal_a_format_per_row(seed):
    from journeyguard.features.analysis.assemble import _variant_numbers

    # Runs of equal journeys, most of one, medians of any size (NaN and infinities too).
    rng = np.random.default_rng(seed)
    n = 2_000
    journeys = np.sort(rng.zipf(1.3, n))[::-1].astype(np.int64)
    medians = rng.lognormal(0, 6, n) * rng.choice([1, -1], n)
    medians[rng.integers(0, n, 20)] = rng.choice([np.nan, np.inf, 0.0, 1e-300], 20)
    table = {
        "rank": np.arange(1, n + 1),
        "journeys": journeys,
        "share": journeys / 123_457,
        "median_duration_hours": medians,
    }

    rows = [
        f"{rank},{count},{share:.6g},{median:.6g},"
        for rank, count, share, median in zip(*table.values(), strict=True)
    ]
    assert _variant_numbers(table) == [rows[0], *('"\n' + row for row in rows[1:])]
    assert _variant_numbers({name: values[:0] for name, values in table.items()}) == []


def test_variants_csv_quotes_steps_and_rounds_numbers(monkeypatch):
    import csv
    import io

    from journeyguard.features.analysis import assemble
    from journeyguard.features.analysis.assemble import VARIANT_STEP_SEPARATOR

    def _variants_csv(log, table):
        return b"".join(assemble._variants_csv_parts(log, table))

    log = log_from_frame(
        pd.DataFrame(
            {
                "customer_id": ["a", "a", "b", "b", "c"],
                "timestamp": pd.to_datetime(
                    [
                        "2025-01-01 00:00",
                        "2025-01-01 00:20",
                        "2025-01-01 00:00",
                        "2025-01-01 07:00",
                        "2025-01-02 00:00",
                    ],
                    utc=True,
                ),
                "event": ['said "hi", twice', "paid", 'said "hi", twice', "paid", "paid"],
            }
        )
    )
    table = paths.variants(log)
    text = _variants_csv(log, table).decode()
    monkeypatch.setattr(assemble, "_CSV_ROWS_AT_ONCE", 1)  # a join per row: the same file
    assert _variants_csv(log, table).decode() == text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row["steps"] for row in rows] == [
        VARIANT_STEP_SEPARATOR.join(['said "hi", twice', "paid"]),
        "paid",
    ]
    assert [int(row["journeys"]) for row in rows] == [2, 1]
    # Numbers to 6 significant digits: the median of 1/3 h and 7 h, and 2 journeys of 3.
    assert rows[0]["median_duration_hours"] == "3.66667"
    assert rows[0]["share"] == "0.666667"
