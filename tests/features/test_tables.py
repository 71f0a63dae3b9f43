"""The features file without pandas: --as-of read as pandas reads it, Arrow tables equal to
pandas' own (metadata included, so a pandas or pyarrow upgrade that changes them fails here),
and the features command's file equal, byte for byte, to the frame's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st

from journeyguard.features.current import features_table
from journeyguard.features.dataset import features_at
from journeyguard.features.eventlog.frames import log_from_frame
from journeyguard.features.options import parse_as_of, parse_as_of_utc
from journeyguard.features.sources.simulate import simulate
from journeyguard.features.tables import arrow_table, write_table

AS_OF_TEXTS = [
    "2025-09-01",
    "2025-09-01T10:00",
    "2025-09-01 10:00",
    "2025-09-01T10:00:05Z",
    "2025-09-01T10:00:05.1",
    "2025-09-01T10:00:05.123456",
    "2025-09-01T10:00:05.1234567",  # nanoseconds: pandas' unit is ns
    "2025-09-01T10:00:05.123456000",
    "2025-09-01T10:00:05+02:00",
    "2025-09-01T10:00:05.5-08:30",
    "2025-09-01T00:00-23:59",
    "2024-02-29T23:59:59.999999999Z",
    "1969-12-31T23:59:59.5Z",
    "2025-09-01T10",  # the forms below go to pandas
    "20250901",
    "2025-09-01T10:00:05,5",
    "2025-09-01T10:00:05+0200",
]


def same_moment(fast: np.datetime64, expected: pd.Timestamp) -> bool:
    nanoseconds = fast.astype("datetime64[ns]").astype(np.int64)
    return np.datetime_data(fast.dtype)[0] == expected.unit and nanoseconds == expected.value


@pytest.mark.parametrize("text", AS_OF_TEXTS)
def test_as_of_without_pandas_is_the_moment_and_unit_pandas_reads(text):
    assert same_moment(parse_as_of_utc(text), parse_as_of(text))


@settings(max_examples=200, deadline=None)
@given(
    moment=st.datetimes(min_value=pd.Timestamp("1700-01-01"), max_value=pd.Timestamp("2200-01-01")),
    decimals=st.integers(0, 9),
    nanoseconds=st.integers(0, 999_999_999),
    offset=st.none() | st.just("Z") | st.integers(-23 * 60 - 59, 23 * 60 + 59),
    separator=st.sampled_from("T "),
)
def test_any_iso_moment_reads_as_pandas_reads_it(moment, decimals, nanoseconds, offset, separator):
    text = moment.strftime(f"%Y-%m-%d{separator}%H:%M:%S")
    if decimals:
        text += "." + f"{nanoseconds:09d}"[:decimals]
    if offset == "Z":
        text += "Z"
    elif offset is not None:
        text += f"{'-' if offset < 0 else '+'}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
    assert same_moment(parse_as_of_utc(text), parse_as_of(text))


@pytest.mark.parametrize(
    "text", ["2025-02-30", "2025-09-01T24:00:00", "yesterday", "2025-09-01T10:00+25:00"]
)
def test_a_bad_as_of_is_the_same_error_without_pandas(text):
    with pytest.raises(typer.BadParameter) as expected:
        parse_as_of(text)
    with pytest.raises(typer.BadParameter) as fast:
        parse_as_of_utc(text)
    assert str(fast.value) == str(expected.value)


# pyarrow reads a tz-aware column through Series.values, which pandas 3.1 deprecates (and
# silences in its own to_parquet).
@pytest.mark.filterwarnings("ignore:Series.values returning an ndarray")
@pytest.mark.parametrize("unit", ["us", "ns"])
@pytest.mark.parametrize("rows", [0, 1, 70])
def test_arrow_tables_equal_pandas_own(unit, rows):
    rng = np.random.default_rng(rows)
    floats = rng.normal(size=rows)
    floats[rng.random(rows) < 0.3] = np.nan
    columns = {
        "customer_id": np.array([f"C{i}" + "é" * (i % 3) for i in range(rows)]).astype(str),
        "as_of": np.full(rows, np.datetime64("2025-09-01T10:00:05.123456789", "ns")).astype(
            f"datetime64[{unit}]"
        ),
        "events": floats,
        "plain": np.arange(rows, dtype=np.float64),
    }
    frame = pd.DataFrame(
        columns | {"as_of": pd.DatetimeIndex(columns["as_of"]).tz_localize("UTC")},
        index=pd.RangeIndex(rows),
    )
    expected = pa.Table.from_pandas(frame, preserve_index=False)
    table = arrow_table(columns)
    assert table.equals(expected, check_metadata=True)
    table.validate(full=True)


def test_arrow_tables_hold_only_the_kinds_of_a_features_file():
    with pytest.raises(TypeError, match="'n'"):
        arrow_table({"n": np.arange(3)})


@pytest.fixture(scope="module")
def simulated_log():
    return log_from_frame(simulate(2_000, seed=3).events)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
@pytest.mark.parametrize("text", ["2025-09-01", "2025-09-01T10:00:05.123456789Z", "2024-01-01"])
def test_the_features_file_is_the_frames_byte_for_byte(simulated_log, tmp_path, suffix, text):
    """The command writes the Arrow table; `features_at`'s frame, written, is the same file."""
    from_frame, from_table = tmp_path / f"frame{suffix}", tmp_path / f"table{suffix}"
    write_table(features_at(simulated_log, parse_as_of(text)), from_frame)
    write_table(features_table(simulated_log, parse_as_of_utc(text)), from_table)
    assert from_table.read_bytes() == from_frame.read_bytes()
