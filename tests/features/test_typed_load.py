"""A typed Parquet source with nothing to set aside loads straight from Arrow into the log, the
source rows and the quarantine that the validating load gives it; anything that load would set
aside or type otherwise goes to that load."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journeyguard.features.config.reader import load_config, parse_config
from journeyguard.features.eventlog.frames import log_to_frame
from journeyguard.features.sources import typed
from journeyguard.features.sources.load import load_events
from journeyguard.features.sources.quarantine import write_quarantine
from journeyguard.features.sources.store import ingest
from journeyguard.features.sources.typed import _may_be_number, load_typed

from ..conftest import CONFIGS
from .test_store import assert_same_log, stored

MAPPING = {"customer_id": "id", "timestamp": "when", "event": "what", "value": "amount"}
START = np.datetime64("2024-01-01T00:00", "ns").astype(np.int64)

# Few distinct values, so that ties on journey and time are common.
row = st.tuples(
    st.sampled_from(["a", "b", " b ", "c"]),  # " b " is "b" once cleaned
    st.integers(0, 3),  # hours after START
    st.sampled_from(["visit", "order", "refund"]),
    st.one_of(st.none(), st.sampled_from([1.0, 2.5, -3.0])),
    st.sampled_from(["web", "phone", None, "  "]),  # "  " is missing once cleaned
    st.sampled_from(["gold", "silver", "plan 2"]),
    st.sampled_from([1, 2, 7]),
)


def table_of(lines: list[tuple], unit: str = "ns", ids_as_numbers: bool = False) -> pa.Table:
    ids, hours, steps, amounts, channels, segments, sizes = map(list, zip(*lines, strict=True))
    nanoseconds = START + np.array(hours, dtype=np.int64) * 3_600 * 10**9
    times = nanoseconds // {"ns": 1, "ms": 10**6}[unit]
    return pa.table(
        {
            "id": pa.array([ord(i.strip()) for i in ids]) if ids_as_numbers else pa.array(ids),
            "when": pa.array(times, pa.timestamp(unit, tz="Europe/Rome")),
            "what": steps,
            "amount": pa.array(amounts, pa.float64()),
            "channel": channels,
            "segment": segments,
            "size": pa.array(sizes, pa.int32()),
        }
    )


def raw_config(tmp_path: Path, source: Path, **source_options) -> dict:
    table = {
        "path": str(source),
        "columns": MAPPING,
        "attributes": {"columns": ["segment", "size"]},
    }
    return {"source": table | source_options, "output": {"dir": str(tmp_path / "out")}}


def config(tmp_path: Path, source: Path, **source_options):
    return parse_config(raw_config(tmp_path, source, **source_options), tmp_path / "c.toml")


def assert_loads_alike(source) -> None:
    typed = load_typed(source)
    assert typed is not None
    validated = load_events(source)
    assert validated.summary.quarantined == {}
    assert_same_log(typed.log, validated.log)
    assert np.array_equal(typed.source_rows, validated.source_rows)
    assert typed.rows_read == validated.summary.rows_read


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    lines=st.lists(row, min_size=1, max_size=40, unique_by=lambda r: r[:5]),
    unit=st.sampled_from(["ns", "ms"]),
    ids_as_numbers=st.booleans(),
    row_group=st.integers(1, 7),
    threads=st.booleans(),
)
def test_a_clean_typed_source_loads_as_the_validating_load_does(
    tmp_path_factory, lines, unit, ids_as_numbers, row_group, threads
):
    tmp_path = tmp_path_factory.mktemp("typed")
    path = tmp_path / "events.parquet"
    pq.write_table(table_of(lines, unit, ids_as_numbers), path, row_group_size=row_group)
    # Few rows load in this thread; a large file's, in two: both ways alike.
    with mock.patch.object(typed, "_THREADS_FROM", 0 if threads else len(lines) + 1):
        assert_loads_alike(config(tmp_path, path).source)


def test_naive_times_load_straight_only_as_utc(tmp_path):
    path = tmp_path / "events.parquet"
    naive = table_of([("a", 0, "visit", 1.0, "web", "gold", 1)])
    naive = naive.set_column(1, "when", naive.column("when").cast(pa.timestamp("ns")))
    pq.write_table(naive, path)
    assert_loads_alike(config(tmp_path, path, timezone="UTC").source)
    assert load_typed(config(tmp_path, path, timezone="Europe/Rome").source) is None
    assert load_typed(config(tmp_path, path).source) is None


def test_a_default_column_loads_as_the_validating_load_does(tmp_path):
    path = tmp_path / "events.parquet"
    pq.write_table(table_of([("a", 0, "visit", 1.0, "web", "gold", 1)]), path)
    assert_loads_alike(config(tmp_path, path, defaults={"case_id": "one case"}).source)


@pytest.mark.parametrize(
    ("column", "values", "why"),
    [
        ("id", ["a", None], "a missing journey"),
        ("what", ["visit", " "], "a blank step"),
        ("amount", [1.0, 1e16], "a number beyond the limit"),
        ("amount", [1.0, float("inf")], "an infinite number"),
        ("segment", ["1", "2.5"], "a text attribute of numbers: the load makes it numeric"),
        ("when", ["2024-01-01T00:00Z", "2024-01-01T01:00Z"], "times as text"),
    ],
)
def test_what_the_load_sets_aside_or_types_otherwise_goes_to_it(tmp_path, column, values, why):
    base = table_of(
        [("a", 0, "visit", 1.0, "web", "gold", 1), ("b", 1, "order", 2.0, "web", "x", 2)]
    )
    path = tmp_path / "events.parquet"
    index = base.column_names.index(column)
    pq.write_table(base.set_column(index, column, pa.array(values)), path)
    assert load_typed(config(tmp_path, path).source) is None, why


def test_exact_duplicates_go_to_the_validating_load(tmp_path):
    path = tmp_path / "events.parquet"
    line = ("a", 0, "visit", 1.0, "web", "gold", 1)
    pq.write_table(table_of([line, line]), path)
    source = config(tmp_path, path).source
    assert load_typed(source) is None
    assert load_events(source).summary.quarantined == {"duplicate row": 1}


def test_a_typed_ingest_writes_the_quarantine_the_validating_load_writes(tmp_path):
    path = tmp_path / "events.parquet"
    pq.write_table(table_of([("a", 0, "visit", 1.0, "web", "gold", 1)]), path)
    settings_ = config(tmp_path, path)
    ingest(settings_)
    write_quarantine(load_events(settings_.source).quarantine, tmp_path / "validated.csv")
    written = settings_.workspace.quarantine.read_text()
    assert written == (tmp_path / "validated.csv").read_text()
    assert written == "source_row,reason,detail,id,when,what,channel,amount,segment,size\n"


def test_a_typed_first_ingest_imports_no_pandas(tmp_path):
    path = tmp_path / "events.parquet"
    pq.write_table(table_of([("a", 0, "visit", 1.0, "web", "gold", 1)]), path)
    raw = raw_config(tmp_path, path)
    script = (
        "import sys, pathlib; from journeyguard.features.config.reader import parse_config; "
        "from journeyguard.features.sources.store import ingest; "
        f"print(ingest(parse_config({raw!r}, pathlib.Path('c.toml'))).action, "
        "'pandas' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ingested", "False"]


def test_every_text_pandas_reads_as_a_number_python_reads_as_one():
    texts = [
        "1",
        " 2 ",
        "-3.5",
        "+4e2",
        "1e500",
        "inf",
        "-Infinity",
        "nan",
        "1_000",
        "1,000",
        "0x1A",
        "١٢",
        "1.5.3",
        "True",
        "e5",
        ".5",
        "5.",
        "1e",
        "",
        "  ",
        "NaN",
        "12abc",
    ]
    parsed = pd.to_numeric(pd.Series(texts, dtype=object), errors="coerce")
    for text, number in zip(texts, parsed, strict=True):
        if not np.isnan(number):
            assert _may_be_number(text), text


@pytest.mark.realdata
def test_helpdesk_as_a_typed_export_loads_as_the_validating_load_does(shared_data, tmp_path):
    settings_ = load_config(CONFIGS / "helpdesk.toml")
    frame = log_to_frame(load_events(settings_.source).log)
    shuffled = frame.sample(frac=1.0, random_state=7).reset_index(drop=True)
    path = tmp_path / "helpdesk.parquet"
    pq.write_table(pa.Table.from_pandas(shuffled, preserve_index=False), path)
    attributes = {"columns": list(settings_.source.attributes.columns)}
    raw = {"source": {"path": str(path), "attributes": attributes}}
    source = parse_config(raw | {"output": {"dir": str(tmp_path)}}, tmp_path / "c.toml").source
    assert_loads_alike(source)


def test_a_typed_export_that_grew_is_appended_as_one_ingest_of_it(tmp_path):
    lines = [
        ("a", 0, "visit", 1.0, "web", "gold", 1),
        ("b", 1, "order", 2.0, None, "silver", 2),
        ("a", 0, "visit", 1.0, "web", "gold", 1),  # a duplicate of the first row, appended
        ("b", 2, "refund", None, "phone", "silver", 2),
    ]
    path = tmp_path / "events.parquet"
    pq.write_table(table_of(lines[:2]), path)
    grown = config(tmp_path, path)
    ingest(grown)
    pq.write_table(table_of(lines), path, row_group_size=2)
    result = ingest(grown)
    assert (result.action, result.rows_read, result.new_events) == ("appended", 2, 1)
    whole = parse_config(raw_config(tmp_path / "whole", path), tmp_path / "c.toml")
    ingest(whole)
    assert_same_log(stored(grown)[0], stored(whole)[0])
    assert np.array_equal(stored(grown)[1], stored(whole)[1])
    assert stored(grown)[2] == stored(whole)[2]
    assert "duplicate row,same as row 1" in stored(grown)[2]
