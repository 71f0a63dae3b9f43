"""Hostile sources (issue 18): a bad row costs that row, a bad file is one clear error.

Each test writes a small file in tmp_path; each row-level problem must leave the other rows
loaded and the bad one in the quarantine with a reason naming its line or column.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from journeyguard.features.config.model import SourceConfig
from journeyguard.features.errors import LoadError
from journeyguard.features.eventlog.frames import log_to_frame
from journeyguard.features.sources.load import load_events
from journeyguard.features.sources.quarantine import write_quarantine

HEADER = b"id,when,what,amount\n"
GOOD = b"a,2024-01-01T00:00:00Z,visit,1\n"
LATER = b"b,2024-01-02T00:00:00Z,order,2\n"


def source_of(tmp_path: Path, content: bytes, **options) -> SourceConfig:
    path = tmp_path / "events.csv"
    path.write_bytes(content)
    columns = {"customer_id": "id", "timestamp": "when", "event": "what", "value": "amount"}
    return SourceConfig(path=path, columns=columns, **options)


def quarantined(result) -> dict[int, tuple[str, str]]:
    rows = result.quarantine
    return {
        int(row): (reason, detail)
        for row, reason, detail in zip(
            rows["source_row"], rows["reason"], rows["detail"], strict=True
        )
    }


def loaded_events(result) -> list[str]:
    return log_to_frame(result.log)["event"].astype(str).tolist()


@pytest.mark.parametrize(
    ("bad_row", "reason", "said"),
    [
        (b"c,2024-01-01T00:00:00Z,visit,1,extra\n", "wrong number of fields", "expected 4 fields"),
        (b"c,2024-01-01T00:00:00Z\n", "wrong number of fields", "got 2"),
        (b"c,2024-01-01T00:00:00Z,caf\xe9,1\n", "undecodable bytes", "column 'what'"),
    ],
    ids=["extra field", "missing field", "latin-1 byte"],
)
def test_a_malformed_row_is_quarantined_and_the_rest_loads(tmp_path, bad_row, reason, said):
    source = source_of(tmp_path, HEADER + GOOD + bad_row + LATER)
    result = load_events(source)
    assert loaded_events(result) == ["visit", "order"]
    assert list(quarantined(result)) == [2]
    got_reason, detail = quarantined(result)[2]
    assert got_reason == reason
    assert "line 3" in detail and said in detail
    assert result.summary.rows_read == 3
    # Later rows keep their numbers: the row after the bad one is still row 3.
    source = source_of(tmp_path, HEADER + GOOD + bad_row + b"b,never,order,2\n")
    assert list(quarantined(load_events(source))) == [2, 3]


def test_undecodable_bytes_are_written_to_the_quarantine_readably(tmp_path):
    source = source_of(tmp_path, HEADER + GOOD + b"c,2024-01-01T00:00:00Z,caf\xe9,1\n")
    result = load_events(source)
    out = tmp_path / "quarantine.csv"
    write_quarantine(result.quarantine, out)
    written = pd.read_csv(out, dtype=str)
    assert written["reason"].tolist() == ["undecodable bytes"]
    assert "0xe9" in written["detail"].iloc[0] and "encoding" in written["detail"].iloc[0]
    assert written[["id", "what"]].values.tolist() == [["c", "caf\ufffd"]]  # the row kept


def test_a_row_with_a_field_too_many_is_kept_whole_in_its_detail(tmp_path):
    row = b"c,2024-01-01T00:00:00Z,visit," + b"9" * 200 + b",extra"
    result = load_events(source_of(tmp_path, HEADER + GOOD + row + b"\n"))
    assert quarantined(result)[2][1].endswith(row.decode())


def test_a_row_longer_than_a_block_is_quarantined(tmp_path):
    huge = b"c,2024-01-01T00:00:00Z," + b"x" * (3 << 20) + b",1\n"
    result = load_events(source_of(tmp_path, HEADER + GOOD + huge + LATER))
    assert loaded_events(result) == ["visit", "order"]
    reason, detail = quarantined(result)[2]
    assert reason == "over-long row" and "line 3" in detail


def test_a_quote_closed_lines_later_quarantines_the_lines_it_swallowed(tmp_path):
    content = HEADER + GOOD + b'c,"2024-01-01T00:00:00Z,visit,1\nd,x",y,z,1,2\n' + LATER
    result = load_events(source_of(tmp_path, content))
    assert loaded_events(result) == ["visit", "order"]
    reason, detail = quarantined(result)[2]
    assert reason == "wrong number of fields" and "lines 3-4" in detail


def test_a_quote_never_closed_stops_the_load_naming_its_line(tmp_path):
    source = source_of(tmp_path, HEADER + GOOD + b'c,2024-01-01T00:00:00Z,visit,"1\n' + LATER)
    with pytest.raises(LoadError) as error:
        load_events(source)
    message = str(error.value)
    assert message.startswith(f"{source.path}: line 3:") and "never closed" in message


@pytest.mark.parametrize(
    ("content", "said"),
    [(b"", "the file is empty"), (b"\n\n", "the file is empty"), (b"  \n", "line 1 .*is blank")],
    ids=["empty", "blank lines", "spaces"],
)
def test_an_empty_file_stops_the_load(tmp_path, content, said):
    source = source_of(tmp_path, content)
    with pytest.raises(LoadError, match=rf"events\.csv: {said}; expected a header line"):
        load_events(source)


def test_a_header_without_rows_stops_the_load(tmp_path):
    with pytest.raises(LoadError, match="no usable rows among 0"):
        load_events(source_of(tmp_path, HEADER))


def test_a_duplicated_header_column_is_refused_by_name(tmp_path):
    unused = source_of(tmp_path, b"id,when,what,amount,note,note\na,2024-01-01T00:00Z,x,1,n,m\n")
    assert load_events(unused).log.n_events == 1  # a column not read may repeat
    source = source_of(tmp_path, b"id,when,what,amount,when\na,2024-01-01T00:00Z,x,1,y\n")
    with pytest.raises(
        LoadError, match=r"events\.csv: column 'when' appears 2 times in the header"
    ):
        load_events(source)


def test_bad_bytes_in_the_header_stop_the_load(tmp_path):
    source = source_of(tmp_path, b"id,wh\xe9n,what,amount\n" + GOOD)
    with pytest.raises(LoadError, match=r"line 1 \(the header\).*not valid utf-8"):
        load_events(source)


@pytest.mark.parametrize(
    "content",
    [b"", b"PAR1 not really parquet", b"id,when\na,b\n"],
    ids=["empty", "fake", "csv named parquet"],
)
def test_a_file_that_is_not_parquet_is_one_clear_error(tmp_path, content):
    path = tmp_path / "events.parquet"
    path.write_bytes(content)
    with pytest.raises(LoadError, match=r"events\.parquet: not a readable Parquet file"):
        load_events(SourceConfig(path=path))


def test_a_truncated_parquet_file_is_one_clear_error(tmp_path):
    path = tmp_path / "events.parquet"
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(1000)],
            "timestamp": pd.date_range("2024-01-01", periods=1000, freq="h", tz="UTC"),
            "event": ["visit"] * 1000,
        }
    )
    frame.to_parquet(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(LoadError, match=r"events\.parquet: not a readable Parquet file"):
        load_events(SourceConfig(path=path))


@pytest.mark.parametrize(
    "when", ["3000-01-01T00:00:00Z", "1500-06-01T00:00:00+01:00"], ids=["2999+", "pre-1677"]
)
def test_a_timestamp_beyond_the_representable_range_is_quarantined(tmp_path, when):
    source = source_of(tmp_path, HEADER + GOOD + f"c,{when},visit,1\n".encode() + LATER)
    result = load_events(source)
    assert loaded_events(result) == ["visit", "order"]
    reason, detail = quarantined(result)[2]
    assert reason == "timestamp out of range"
    assert "column 'when'" in detail and when in detail and "1677" in detail


def test_naive_local_times_beyond_the_range_are_quarantined(tmp_path):
    source = source_of(
        tmp_path, HEADER + GOOD + b"c,3000-01-01 00:00,visit,1\n", timezone="Europe/Rome"
    )
    assert quarantined(load_events(source))[2][0] == "timestamp out of range"


def test_unix_times_beyond_the_range_are_quarantined(tmp_path):
    source = source_of(
        tmp_path,
        HEADER + b"a,1700000000,visit,1\nc,1e12,visit,1\nd,-1e12,visit,1\ne,inf,visit,1\n",
        timestamp_format="unix_s",
    )
    result = load_events(source)
    assert {row: reason for row, (reason, _) in quarantined(result).items()} == {
        2: "timestamp out of range",
        3: "timestamp out of range",
        4: "unparsable timestamp",
    }


def test_typed_parquet_times_beyond_the_range_are_quarantined(tmp_path):
    path = tmp_path / "events.parquet"
    times = pa.array([0, 32_503_680_000_000_000], type=pa.timestamp("us", tz="UTC"))  # 1970, 3000
    pq.write_table(
        pa.table({"customer_id": ["a", "b"], "timestamp": times, "event": ["x", "y"]}), path
    )
    result = load_events(SourceConfig(path=path))
    assert loaded_events(result) == ["x"]
    assert quarantined(result)[2][0] == "timestamp out of range"


@pytest.mark.parametrize("number", ["inf", "-inf", "Infinity", "1e400", "1e308", "nan"])
def test_a_value_that_is_not_a_finite_plausible_number_is_quarantined(tmp_path, number):
    row = f"c,2024-01-01T00:00:00Z,visit,{number}\n".encode()
    result = load_events(source_of(tmp_path, HEADER + GOOD + row + LATER))
    assert loaded_events(result) == ["visit", "order"]
    reason, detail = quarantined(result)[2]
    assert reason in {"unparsable value", "out-of-range value"}
    assert "column 'amount'" in detail and number in detail
    assert np.isfinite(log_to_frame(result.log)["value"]).all()


def test_three_huge_values_cannot_sum_to_infinity(tmp_path):
    from journeyguard.outreach.facts import customer_facts

    rows = b"".join(f"a,2024-01-0{d}T00:00:00Z,order,1e308\n".encode() for d in (2, 3, 4))
    result = load_events(source_of(tmp_path, HEADER + GOOD + rows))
    assert set(reason for reason, _ in quarantined(result).values()) == {"out-of-range value"}
    facts = customer_facts(result.log, pd.Timestamp("2024-02-01", tz="UTC"), None)
    assert facts["value"].tolist() == [1.0]


def test_typed_parquet_numbers_must_be_finite(tmp_path):
    path = tmp_path / "events.parquet"
    pq.write_table(
        pa.table(
            {
                "customer_id": ["a", "b", "c"],
                "timestamp": pa.array([0, 1, 2], type=pa.timestamp("s", tz="UTC")),
                "event": ["x", "y", "z"],
                "value": [1.0, float("inf"), None],
            }
        ),
        path,
    )
    result = load_events(SourceConfig(path=path))
    assert loaded_events(result) == ["x", "z"]
    assert quarantined(result)[2][0] == "out-of-range value"


def test_a_compressed_file_with_a_bad_row_is_read_row_by_row(tmp_path):
    import gzip

    path = tmp_path / "events.csv.gz"
    path.write_bytes(gzip.compress(HEADER + GOOD + b"c,2024-01-01T00:00:00Z,x,1,9\n" + LATER))
    columns = {"customer_id": "id", "timestamp": "when", "event": "what", "value": "amount"}
    result = load_events(SourceConfig(path=path, columns=columns))
    assert loaded_events(result) == ["visit", "order"]
    assert quarantined(result)[2][0] == "wrong number of fields"


HELPDESK = Path(__file__).resolve().parents[3] / "shared" / "data" / "helpdesk" / "finale.csv"


@pytest.mark.realdata
@pytest.mark.skipif(not HELPDESK.is_file(), reason=f"the real help desk log is absent: {HELPDESK}")
def test_a_real_log_slice_with_a_bad_line_loses_only_that_line(tmp_path):
    lines = HELPDESK.read_bytes().splitlines(keepends=True)[:301]
    broken = [*lines[:100], b"Case 9999,Closed,Value 1,2012/13/45 99:99:99.000\n", *lines[100:]]
    broken[200] = broken[200].rstrip(b"\r\n") + b",\xff\xfe\n"  # a field too many, bad bytes
    path = tmp_path / "finale.csv"
    path.write_bytes(b"".join(broken))
    source = SourceConfig(
        path=path,
        timestamp_format="%Y/%m/%d %H:%M:%S.%f",
        timezone="Europe/Rome",
        columns={
            "customer_id": "Case ID",
            "event": "Activity",
            "timestamp": "Complete Timestamp",
            "channel": "Resource",
        },
    )
    result = load_events(source)
    path.write_bytes(b"".join(lines))
    clean = load_events(source)
    assert result.summary.rows_read == 301
    assert result.log.n_events == clean.log.n_events - 1  # the row given a field too many
    malformed = {
        row: reason
        for row, (reason, _) in quarantined(result).items()
        if reason == "wrong number of fields"
    }
    assert malformed == {100: "wrong number of fields", 200: "wrong number of fields"}


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"", "the file is empty; expected a header line"),
        (HEADER + GOOD + b'c,2024-01-01T00:00:00Z,visit,"1\n' + LATER, "line 3: a quoted field"),
    ],
    ids=["empty", "unclosed quote"],
)
def test_validate_reports_a_bad_file_in_one_line(tmp_path, content, said):
    from typer.testing import CliRunner

    from journeyguard.features.cli import app

    (tmp_path / "events.csv").write_bytes(content)
    config = tmp_path / "jg.toml"
    config.write_text(
        '[source]\npath = "events.csv"\n'
        '[source.columns]\ncustomer_id = "id"\ntimestamp = "when"\nevent = "what"\n'
        '[output]\ndir = "out"\n'
    )
    result = CliRunner().invoke(app, ["validate", "--config", str(config)])
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {tmp_path / 'events.csv'}: ")
    assert said in result.output and "Traceback" not in result.output
    (tmp_path / "events.csv").write_bytes(HEADER + GOOD + b"c,x,1,2,3\n" + LATER)
    result = CliRunner().invoke(app, ["validate", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "wrong number of fields" in result.output
    quarantine = pd.read_csv(tmp_path / "out" / "quarantine.csv", dtype=str)
    assert quarantine["source_row"].tolist() == ["2"]


@pytest.mark.parametrize(
    ("bad_row", "reason"),
    [
        (b" 00003 19970103 1 9.99 extra\n", "wrong number of fields"),
        (b" 0000\xe9 19970103 1 9.99\n", "undecodable bytes"),
        (b" 00003 19970103 9.99\n", "wrong number of fields"),
    ],
    ids=["extra field", "latin-1 byte", "missing field"],
)
def test_whitespace_separated_files_set_bad_rows_aside_too(tmp_path, bad_row, reason):
    path = tmp_path / "cdnow.txt"
    path.write_bytes(
        b" customer_id  date n  dollar_value\n 00001 19970101  1   11.77\n"
        + bad_row
        + b" 00002 19970112  5   77.00\n"
    )
    source = SourceConfig(
        path=path,
        separator="whitespace",
        timestamp_format="%Y%m%d",
        timezone="UTC",
        columns={"timestamp": "date", "value": "dollar_value"},
        defaults={"event": "purchase"},
    )
    result = load_events(source)
    assert log_to_frame(result.log)["customer_id"].tolist() == ["00001", "00002"]
    assert quarantined(result)[2][0] == reason and "line 3" in quarantined(result)[2][1]


def test_a_missing_parquet_file_is_one_clear_error(tmp_path):
    with pytest.raises(LoadError, match=r"absent\.parquet: file not found"):
        load_events(SourceConfig(path=tmp_path / "absent.parquet"))


def test_every_timestamp_detail_names_the_column(tmp_path):
    rows = b"c,yesterday,visit,1\nd,2024-01-01T10:00:00,visit,1\n"
    result = load_events(source_of(tmp_path, HEADER + GOOD + rows))
    details = [detail for _, detail in quarantined(result).values()]
    assert len(details) == 2 and all(d.startswith("column 'when': ") for d in details)
