"""Validation rules of the loader, each on a tiny hand-written source."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from journeyguard.features.config.model import AttributeSource, SourceConfig
from journeyguard.features.errors import LoadError
from journeyguard.features.eventlog.frames import log_to_frame
from journeyguard.features.sources.load import load_events
from journeyguard.features.sources.quarantine import write_quarantine

HEADER = "id,when,what,amount\n"


def csv_source(tmp_path: Path, text: str, **options) -> SourceConfig:
    path = tmp_path / "events.csv"
    path.write_text(text, encoding="utf-8")
    columns = {"customer_id": "id", "timestamp": "when", "event": "what", "value": "amount"}
    return SourceConfig(path=path, columns=columns, **options)


def reasons(result) -> dict[int, str]:
    return dict(zip(result.quarantine["source_row"], result.quarantine["reason"], strict=True))


def test_good_rows_load_sorted_by_journey_then_time(tmp_path):
    source = csv_source(
        tmp_path,
        HEADER + "b,2024-01-02T10:00:00Z,order,10\n"
        "a,2024-01-03T00:00:00+01:00,refund,\n"
        "b,2024-01-01T09:00:00Z,visit,\n",
    )
    result = load_events(source)
    events = log_to_frame(result.log)
    assert list(events["customer_id"]) == ["a", "b", "b"]
    assert list(events["event"]) == ["refund", "visit", "order"]
    assert events["timestamp"].iloc[0] == pd.Timestamp("2024-01-02T23:00:00Z")
    assert str(events["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert list(result.log.offsets) == [0, 1, 3]
    assert result.quarantine.empty and result.summary.quarantined == {}


def test_missing_mapped_column_names_file_and_column(tmp_path):
    source = csv_source(tmp_path, "id,whn,what,amount\na,2024-01-01T00:00Z,x,1\n")
    with pytest.raises(LoadError) as error:
        load_events(source)
    message = str(error.value)
    assert str(source.path) in message and "'when'" in message and "timestamp" in message
    assert "did you mean 'whn'" in message


def test_unmapped_required_column_is_fatal(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("customer_id,timestamp\na,2024-01-01T00:00Z\n")
    with pytest.raises(LoadError, match=r"column 'event' not found .*needed as event"):
        load_events(SourceConfig(path=path))


def test_unparsable_timestamp_is_quarantined_with_row_and_value(tmp_path):
    source = csv_source(
        tmp_path,
        HEADER + "a,2024-01-01T00:00:00Z,x,1\na,yesterday,y,2\na,2024-02-30T00:00:00Z,z,3\n",
    )
    result = load_events(source)
    assert reasons(result) == {2: "unparsable timestamp", 3: "unparsable timestamp"}
    assert "'yesterday' is not an ISO 8601 timestamp" in result.quarantine["detail"].iloc[0]
    assert result.quarantine["what"].tolist() == ["y", "z"]  # the raw row is kept
    assert result.summary.rows_loaded == 1


def test_strftime_format_rejects_values_in_another_format(tmp_path):
    source = csv_source(
        tmp_path,
        HEADER + "a,2012/10/09 14:50:17.000,x,1\na,09-10-2012 14:50,y,1\n",
        timestamp_format="%Y/%m/%d %H:%M:%S.%f",
        timezone="UTC",
    )
    result = load_events(source)
    assert reasons(result) == {2: "unparsable timestamp"}
    assert "format '%Y/%m/%d %H:%M:%S.%f'" in result.quarantine["detail"].iloc[0]


def test_all_naive_timestamps_without_timezone_stop_the_load(tmp_path):
    source = csv_source(tmp_path, HEADER + "a,2024-01-01 10:00:00,x,1\n")
    with pytest.raises(LoadError) as error:
        load_events(source)
    assert "'when'" in str(error.value) and "timezone" in str(error.value)
    assert str(source.path) in str(error.value)


def test_naive_rows_among_aware_ones_are_quarantined(tmp_path):
    source = csv_source(
        tmp_path, HEADER + "a,2024-01-01T10:00:00Z,x,1\na,2024-01-01T11:00:00,y,1\n"
    )
    result = load_events(source)
    assert reasons(result) == {2: "naive timestamp"}


def test_configured_timezone_localises_naive_times_and_rejects_clock_gaps(tmp_path):
    source = csv_source(
        tmp_path,
        HEADER + "a,2024-01-15 10:00:00,winter,1\n"
        "a,2024-07-15 10:00:00,summer,1\n"
        "a,2024-03-31 02:30:00,gap,1\n"
        "a,2024-07-15 10:00:00+00:00,offset wins,1\n",
        timezone="Europe/Rome",
    )
    result = load_events(source)
    times = dict(
        zip(log_to_frame(result.log)["event"], log_to_frame(result.log)["timestamp"], strict=True)
    )
    assert times["winter"] == pd.Timestamp("2024-01-15T09:00:00Z")
    assert times["summer"] == pd.Timestamp("2024-07-15T08:00:00Z")
    assert times["offset wins"] == pd.Timestamp("2024-07-15T10:00:00Z")
    assert reasons(result) == {3: "invalid local time"}


def test_empty_ids_and_events_are_quarantined(tmp_path):
    source = csv_source(
        tmp_path,
        HEADER + "a,2024-01-01T00:00Z,x,1\n ,2024-01-01T00:00Z,x,1\nb,2024-01-01T00:00Z,,1\n,,,\n",
    )
    result = load_events(source)
    assert reasons(result) == {
        2: "missing customer_id",
        3: "missing event",
        4: "missing customer_id",
    }
    assert result.summary.quarantined == {"missing customer_id": 2, "missing event": 1}


def test_unparsable_value_is_quarantined(tmp_path):
    source = csv_source(
        tmp_path, HEADER + "a,2024-01-01T00:00Z,x,12.5\na,2024-01-02T00:00Z,y,twelve\n"
    )
    result = load_events(source)
    assert reasons(result) == {2: "unparsable value"}
    assert "twelve" in result.quarantine["detail"].iloc[0]
    assert log_to_frame(result.log)["value"].tolist() == [12.5]


def test_exact_duplicates_are_kept_once_and_reported(tmp_path):
    row = "a,2024-01-01T00:00:00Z,x,1\n"
    source = csv_source(tmp_path, HEADER + row + "a,2024-01-01T00:00:00Z,x,2\n" + row + row)
    result = load_events(source)
    assert result.log.n_events == 2
    assert reasons(result) == {3: "duplicate row", 4: "duplicate row"}
    assert result.quarantine["detail"].tolist() == ["same as row 1", "same as row 1"]
    assert result.summary.quarantined == {"duplicate row": 2}


def test_rows_differing_in_one_column_are_not_duplicates(tmp_path):
    source = csv_source(
        tmp_path,
        HEADER + "a,2024-01-01T00:00:00Z,x,\n"
        "a,2024-01-01T00:00:00Z,y,\n"
        "a,2024-01-01T00:00:00Z,y,\n"
        "a,2024-01-01T00:00:00Z,y,3\n",
    )
    result = load_events(source)
    assert log_to_frame(result.log)["event"].tolist() == ["x", "y", "y"]
    assert reasons(result) == {3: "duplicate row"}
    assert result.quarantine["detail"].tolist() == ["same as row 2"]


def test_the_same_instant_written_two_ways_is_a_duplicate(tmp_path):
    source = csv_source(
        tmp_path, HEADER + "a,2024-01-01T01:00:00+01:00,x,1\na,2024-01-01T00:00:00Z,x,1\n"
    )
    assert reasons(load_events(source)) == {2: "duplicate row"}


def test_no_usable_rows_is_fatal(tmp_path):
    source = csv_source(tmp_path, HEADER + "a,never,x,1\n,2024-01-01T00:00Z,x,1\n")
    with pytest.raises(LoadError, match="no usable rows among 2"):
        load_events(source)


def test_unix_seconds_and_whitespace_separated_files(tmp_path):
    path = tmp_path / "cdnow.txt"
    path.write_text(
        " customer_id  date number_of_cds  dollar_value\r\n"
        " 00001 19970101  1   11.77\r\n 00002 19970112  5   77.00\r\n"
    )
    source = SourceConfig(
        path=path,
        separator="whitespace",
        timestamp_format="%Y%m%d",
        timezone="UTC",
        columns={"timestamp": "date", "value": "dollar_value"},
        defaults={"event": "purchase"},
        attributes=AttributeSource(columns=("number_of_cds",)),
    )
    events = log_to_frame(load_events(source).log)
    assert events["customer_id"].tolist() == ["00001", "00002"]  # leading zeros kept
    assert events["event"].tolist() == ["purchase", "purchase"]
    assert events["number_of_cds"].tolist() == [1, 5]
    unix = csv_source(tmp_path, HEADER + "a,1360757015.0,x,1\n", timestamp_format="unix_s")
    assert log_to_frame(load_events(unix).log)["timestamp"].iloc[0] == pd.Timestamp(
        "2013-02-13T12:03:35Z"
    )


def test_attributes_joined_from_a_per_journey_table(tmp_path):
    source = csv_source(tmp_path, HEADER + "a,2024-01-01T00:00Z,x,1\nb,2024-01-01T00:00Z,x,1\n")
    table = tmp_path / "cases.csv"
    table.write_text("case,priority,team\na,1,red\nc,3,blue\n")
    attributes = AttributeSource(columns=("priority", "team"), path=table, key="case")
    events = log_to_frame(load_events(replace(source, attributes=attributes)).log)
    assert events["priority"].tolist()[0] == 1 and pd.isna(events["priority"].tolist()[1])
    assert events["team"].tolist()[0] == "red"
    table.write_text("case,priority,team\na,1,red\na,2,blue\n")
    with pytest.raises(LoadError, match="one journey per row"):
        load_events(replace(source, attributes=attributes))


def test_parquet_source_keeps_typed_timestamps(tmp_path):
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "a"],
            "event": ["x", "y"],
            "timestamp": pd.to_datetime(["2024-01-01 10:00", "2024-01-01 09:00"]),
        }
    )
    path = tmp_path / "e.parquet"
    frame.to_parquet(path)
    with pytest.raises(LoadError, match="naive timestamps"):
        load_events(SourceConfig(path=path))
    events = log_to_frame(load_events(SourceConfig(path=path, timezone="America/New_York")).log)
    assert events["event"].tolist() == ["y", "x"]
    assert events["timestamp"].iloc[0] == pd.Timestamp("2024-01-01T14:00:00Z")


def test_write_quarantine_keeps_every_rejected_row(tmp_path):
    source = csv_source(tmp_path, HEADER + "a,bad,x,1\na,2024-01-01T00:00Z,x,1\n")
    result = load_events(source)
    out = tmp_path / "out" / "quarantine.csv"
    write_quarantine(result.quarantine, out)
    written = pd.read_csv(out, dtype=str)
    assert written[["source_row", "reason", "when"]].values.tolist() == [
        ["1", "unparsable timestamp", "bad"]
    ]
