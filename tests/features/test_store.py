"""The ingested log store: appending a grown source gives the store one ingest of it gives."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journeyguard.features.config.reader import parse_config
from journeyguard.features.errors import LoadError
from journeyguard.features.eventlog.log import Coded, EventLog
from journeyguard.features.sources.generations import MAX_PARTS, read_manifest, read_stored_parts
from journeyguard.features.sources.load import load_events
from journeyguard.features.sources.log import load_log
from journeyguard.features.sources.store import ingest

HEADER = "id,when,what,amount,segment"
MAPPING = {"customer_id": "id", "timestamp": "when", "event": "what", "value": "amount"}

# Few distinct values, so that ties, duplicates and bad cells are common.
rows = st.tuples(
    st.sampled_from(["a", "b", " b", "a", "b", ""]),
    st.sampled_from(
        ["2024-01-01T00:00Z", "2024-01-01T00:00+00:00", "2024-01-02T00:00Z"] * 2
        + ["2024-01-02", ""]
    ),
    st.sampled_from(["visit", "order"]),
    st.sampled_from(["", "1", "1.0", "x"]),
    st.sampled_from(["s1", "s2", ""]),
)


def config(tmp_path: Path, source: Path, out: str, **source_options):
    table = {"path": str(source), "columns": MAPPING, "attributes": {"columns": ["segment"]}}
    raw = {"source": table | source_options, "output": {"dir": str(tmp_path / out)}}
    return parse_config(raw, tmp_path / "c.toml")


def write_csv(path: Path, lines: list[tuple]) -> None:
    path.write_text("\n".join([HEADER, *(",".join(row) for row in lines)]) + "\n")


def stored(settings_) -> tuple[EventLog, np.ndarray, str]:
    """The store's log, its events' source rows, and the quarantine file's text."""
    folder = settings_.workspace.store
    stored_ = read_stored_parts(folder, read_manifest(folder) or {})
    assert stored_ is not None
    return *stored_.merged(), settings_.workspace.quarantine.read_text()


def assert_same_log(one: EventLog, other: EventLog) -> None:
    for name in ("journey_ids", "offsets", "steps", "step_codes", "times"):
        assert np.array_equal(getattr(one, name), getattr(other, name)), name
    assert list(one.columns) == list(other.columns)
    for name, column in one.columns.items():
        theirs = other.columns[name]
        if isinstance(column, Coded):
            assert isinstance(theirs, Coded)
            assert np.array_equal(column.codes, theirs.codes), name
            assert np.array_equal(column.categories, theirs.categories), name
        else:
            assert np.array_equal(column, theirs, equal_nan=True), name


@settings(max_examples=30, deadline=None, derandomize=True)
@given(lines=st.lists(rows, min_size=2, max_size=50), data=st.data())
def test_appending_in_slices_gives_the_store_of_one_ingest(tmp_path_factory, lines, data):
    cuts = data.draw(st.lists(st.integers(1, len(lines) - 1), max_size=6), label="cuts")
    tmp_path = tmp_path_factory.mktemp("store")
    source = tmp_path / "events.csv"
    sliced = config(tmp_path, source, "sliced")
    bounds = sorted({*cuts, len(lines)})
    usable_prefix_seen = False
    for bound in bounds:
        write_csv(source, lines[:bound])
        try:
            ingest(sliced)
            usable_prefix_seen = True
        except Exception as error:  # a prefix with no usable row stops like a load does
            assert type(error).__name__ == "LoadError", error
    whole = config(tmp_path, source, "whole")
    try:
        reference = load_events(whole.source)
    except Exception as error:
        assert type(error).__name__ == "LoadError"
        return
    assert usable_prefix_seen
    ingest(whole)
    log, source_rows, quarantine = stored(sliced)
    one_log, one_rows, one_quarantine = stored(whole)
    assert_same_log(log, one_log)
    assert_same_log(log, reference.log)
    assert np.array_equal(source_rows, one_rows)
    assert np.array_equal(source_rows, reference.source_rows)
    assert quarantine == one_quarantine


def test_an_append_validates_only_the_new_rows_and_quarantines_duplicates(tmp_path):
    source = tmp_path / "events.csv"
    write_csv(source, [("a", "2024-01-01T00:00Z", "visit", "1", "s1")])
    settings_ = config(tmp_path, source, "out")
    assert ingest(settings_).action == "ingested"
    with source.open("a") as file:
        file.write("a,2024-01-01T00:00Z,visit,1,s1\nb,2024-01-02T00:00Z,order,x,s2\n")
        file.write("c,2024-01-03T00:00Z,order,2,s2\n")
    result = ingest(settings_)
    assert (result.action, result.rows_read, result.rows_total) == ("appended", 3, 4)
    assert (result.events, result.new_events) == (2, 1)
    assert result.quarantined == {"duplicate row": 1, "unparsable value": 1}
    _, _, quarantine = stored(settings_)
    assert "2,duplicate row,same as row 1,a,2024-01-01T00:00Z,visit,1,s1" in quarantine
    assert ingest(settings_).action == "current"


def test_appends_are_parts_until_a_week_of_them_is_compacted(tmp_path):
    source = tmp_path / "events.csv"
    days = [
        (f"c{day % 3}", f"2024-01-{day + 1:02d}T00:00Z", "visit", str(day), "s1")
        for day in range(2 * MAX_PARTS + 1)
    ]
    write_csv(source, days[:1])
    settings_ = config(tmp_path, source, "out")
    ingest(settings_)
    folder = settings_.workspace.store
    for day in range(1, len(days)):
        write_csv(source, days[: day + 1])
        assert ingest(settings_).action == "appended"
        manifest = json.loads((folder / "manifest.json").read_text())
        # Each append writes one day's part; the one that would make MAX_PARTS writes it all.
        assert len(manifest["parts"]) == day % MAX_PARTS
        assert [p["events"] for p in manifest["parts"]] == [1] * (day % MAX_PARTS)
        assert_same_log(load_log(settings_), load_events(settings_.source).log)
    assert manifest["generation"] == 3
    # The generation before stays whole, parts included, for a reader still on it.
    assert len(list(folder.glob("log-2*.arrow"))) == MAX_PARTS
    assert not [p for p in folder.glob("*-*.*") if p.stem.split("-")[1] == "1"]


def test_a_changed_source_or_mapping_is_ingested_again(tmp_path):
    source = tmp_path / "events.csv"
    write_csv(source, [("a", "2024-01-01T00:00Z", "visit", "1", "s1")])
    assert ingest(config(tmp_path, source, "out")).action == "ingested"
    write_csv(source, [("z", "2024-01-01T00:00Z", "visit", "1", "s1")] * 2)
    result = ingest(config(tmp_path, source, "out"))
    assert (result.action, result.reason) == ("ingested", "the source changed")
    result = ingest(config(tmp_path, source, "out", timezone="Europe/Rome"))
    assert (result.action, result.reason) == ("ingested", "new mapping")
    assert ingest(config(tmp_path, source, "out", timezone="Europe/Rome"), full=True).reason == (
        "asked for"
    )


def test_new_rows_a_full_load_would_type_otherwise_are_ingested_from_scratch(tmp_path):
    source = tmp_path / "events.csv"
    write_csv(source, [("a", "2024-01-01T00:00Z", "visit", "1", "12")])
    settings_ = config(tmp_path, source, "out")
    ingest(settings_)
    with source.open("a") as file:  # `segment` was numbers; now it is text
        file.write("b,2024-01-02T00:00Z,order,2,gold\n")
    result = ingest(settings_)
    assert result.action == "ingested" and "a column's kind differs" in result.reason
    assert_same_log(stored(settings_)[0], load_events(settings_.source).log)


def test_a_grown_parquet_export_is_appended(tmp_path):
    source = tmp_path / "events.parquet"
    table = pa.table(
        {
            "id": ["b", "a", "b", "a"],
            "when": ["2024-01-02T00:00Z", "2024-01-01T00:00Z", "2024-01-01T00:00Z", "bad"],
            "what": ["order", "visit", "visit", "visit"],
            "amount": [1.0, None, 2.0, 3.0],
            "segment": ["s1", "s2", "s1", "s2"],
        }
    )
    pq.write_table(table.slice(0, 2), source)
    settings_ = config(tmp_path, source, "out")
    ingest(settings_)
    pq.write_table(table, source, row_group_size=3)
    result = ingest(settings_)
    assert (result.action, result.rows_read, result.new_events) == ("appended", 2, 1)
    whole = config(tmp_path, source, "whole")
    ingest(whole)
    assert_same_log(stored(settings_)[0], stored(whole)[0])
    assert stored(settings_)[2] == stored(whole)[2]


@pytest.mark.parametrize("edited_row", [0, 1])  # the first rows' values, the last rows' times
def test_a_parquet_export_whose_read_rows_changed_is_ingested_again(tmp_path, edited_row):
    source = tmp_path / "events.parquet"
    table = pa.table(
        {
            "id": ["a", "b", "c"],
            "when": ["2024-01-01T00:00Z", "2024-01-02T00:00Z", "2024-01-03T00:00Z"],
            "what": ["visit", "order", "visit"],
            "amount": [1.0, 2.0, 3.0],
            "segment": ["s1", "s2", "s1"],
        }
    )
    pq.write_table(table.slice(0, 2), source)
    settings_ = config(tmp_path, source, "out")
    ingest(settings_)
    column = "id" if edited_row == 0 else "when"
    edited = table.column(column).to_pylist()
    edited[edited_row] = "z" if edited_row == 0 else "2024-01-02T00:01Z"
    pq.write_table(table.set_column(table.schema.get_field_index(column), column, [edited]), source)
    result = ingest(settings_)
    assert (result.action, result.reason) == ("ingested", "the source changed")


def test_commands_read_a_current_store_and_say_so(tmp_path, capsys):
    source = tmp_path / "events.csv"
    write_csv(source, [("a", "2024-01-01T00:00Z", "visit", "1", "s1")])
    settings_ = config(tmp_path, source, "out")
    first = load_log(settings_)
    assert "ingested into" in capsys.readouterr().err
    again = load_log(settings_, columns=[])
    assert "source unchanged" in capsys.readouterr().err
    assert_same_log(again, replace(first, columns={}))


def test_a_database_source_has_no_store(tmp_path):
    settings_ = parse_config(
        {"source": {"url": "sqlite:///x.db", "table": "events"}}, tmp_path / "c.toml"
    )
    with pytest.raises(LoadError, match="only file sources"):
        ingest(settings_)


def test_commands_that_find_the_store_stale_together_all_get_the_log(tmp_path):
    """Service workers reloading at once: one appends, the others wait on the lock and then
    read what it wrote."""
    from concurrent.futures import ThreadPoolExecutor

    source = tmp_path / "events.csv"
    write_csv(source, [("a", "2024-01-01T00:00Z", "visit", "1", "s1")])
    settings_ = config(tmp_path, source, "out")
    ingest(settings_)
    with source.open("a") as file:
        file.write("b,2024-01-02T00:00Z,order,2,s2\n")
    with ThreadPoolExecutor(4) as pool:
        logs = list(pool.map(lambda _: load_log(settings_), range(4)))
    assert [log.n_events for log in logs] == [2, 2, 2, 2]


def test_a_canonical_source_needs_no_store(tmp_path):
    from journeyguard.features.eventlog.canonical import write_canonical

    source = tmp_path / "events.csv"
    write_csv(source, [("a", "2024-01-01T00:00Z", "visit", "1", "s1")])
    log = load_events(config(tmp_path, source, "csv").source).log
    write_canonical(log, tmp_path / "events.parquet")
    settings_ = parse_config(
        {"source": {"path": str(tmp_path / "events.parquet")}, "output": {"dir": "out"}},
        tmp_path / "c.toml",
    )
    result = ingest(settings_)
    assert (result.action, result.events, result.journeys) == ("canonical", 1, 1)
    assert not settings_.workspace.store.exists()


def test_a_missing_source_file_is_named(tmp_path):
    with pytest.raises(LoadError, match=r"nothing\.csv: file not found"):
        ingest(config(tmp_path, tmp_path / "nothing.csv", "out"))


def test_a_source_removed_after_its_ingest_is_named(tmp_path):
    source = tmp_path / "events.csv"
    write_csv(source, [("a", "2024-01-01T00:00Z", "visit", "1", "s1")])
    settings_ = config(tmp_path, source, "out")
    load_log(settings_)
    source.unlink()
    with pytest.raises(LoadError, match=r"events\.csv: file not found"):
        load_log(settings_)
