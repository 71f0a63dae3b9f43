"""The store file read without pyarrow (`eventlog.ipc`) against pyarrow's reading of it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journeyguard.features.eventlog import canonical, ipc
from journeyguard.features.eventlog.log import Coded, EventLog

# ASCII, UTF-8 of several bytes, empty text and NUL (decoded text by text, not split).
texts = st.sampled_from(["a", "b", "c-17", "", "é", "日本", "x\0y", "\0"])


def random_log(seed: int, ids: list[str], more_steps: tuple[str, ...] = ()) -> EventLog:
    """A sorted log of journeys `ids` with the optional columns the store holds (text and
    numbers, with nulls)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 9, len(ids))
    n_events = int(lengths.sum())
    steps = np.array(sorted({"order", "delivery", "ticket", *more_steps}), dtype=object)
    channels = np.array(["email", "phone"], dtype=object)
    return EventLog(
        journey_ids=np.array(sorted(ids), dtype=object),
        offsets=np.r_[0, np.cumsum(lengths)].astype(np.int64),
        steps=steps,
        step_codes=rng.integers(0, len(steps), n_events).astype(np.int32),
        times=np.sort(rng.integers(0, 2**62, n_events)),
        columns={
            "channel": Coded(rng.integers(-1, 2, n_events).astype(np.int32), channels),
            "value": np.where(rng.random(n_events) < 0.3, np.nan, rng.random(n_events)),
        },
    )


def numbered(n: int) -> list[str]:
    return [f"c{number:06d}" for number in range(n)]


def read_with_pyarrow(path: Path, columns: list[str]) -> EventLog:
    with pa.memory_map(str(path)) as source:
        table = pa.ipc.open_file(source).read_all()
        return canonical._log_of_table(table, [c for c in columns if c in table.column_names])


def assert_same_log(one: EventLog, other: EventLog) -> None:
    for name in ("journey_ids", "offsets", "steps", "step_codes", "times"):
        mine, theirs = getattr(one, name), getattr(other, name)
        assert mine.dtype == theirs.dtype, name
        assert np.array_equal(mine, theirs), name
        if mine.dtype == object:
            assert [type(text) for text in mine] == [type(text) for text in theirs], name
    assert not one.columns and not other.columns


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n_journeys", [1, 7, 5_000])
def test_the_required_columns_equal_pyarrow_s(tmp_path, seed, n_journeys):
    log = random_log(seed, numbered(n_journeys))
    path = tmp_path / "log.arrow"
    canonical.write_canonical_arrow(log, path)

    mine = canonical._read_required_columns(path, [])

    assert mine is not None
    assert_same_log(mine, read_with_pyarrow(path, []))
    assert np.array_equal(mine.journey_ids, log.journey_ids)


@pytest.mark.parametrize("empty", [[0], [3], [6], [1, 2, 4]])
def test_journeys_without_events_keep_their_offsets(tmp_path, empty):
    # Offsets come from where the codes change when every journey has events; a journey
    # without any (a log's part names some) takes the count instead.
    log = random_log(4, numbered(7))
    lengths = np.diff(log.offsets)
    keep = ~np.isin(np.repeat(np.arange(7), lengths), empty)
    lengths[empty] = 0
    sparse = EventLog(
        log.journey_ids,
        np.r_[0, np.cumsum(lengths)].astype(np.int64),
        log.steps,
        log.step_codes[keep],
        log.times[keep],
    )
    path = tmp_path / "log.arrow"
    canonical.write_canonical_arrow(sparse, path)

    mine = canonical._read_required_columns(path, [])

    assert mine is not None
    assert_same_log(mine, read_with_pyarrow(path, []))
    assert mine.offsets.tolist() == sparse.offsets.tolist()


@settings(max_examples=40, deadline=None, derandomize=True)
@given(names=st.lists(texts, min_size=1, max_size=6, unique=True), seed=st.integers(0, 9))
def test_any_text_reads_as_pyarrow_reads_it(tmp_path_factory, names, seed):
    path = tmp_path_factory.mktemp("ipc") / "log.arrow"
    canonical.write_canonical_arrow(random_log(seed, names, more_steps=tuple(names)), path)

    mine = canonical._read_required_columns(path, [])

    assert mine is not None
    assert_same_log(mine, read_with_pyarrow(path, []))


def test_an_empty_log_is_left_to_pyarrow(tmp_path):
    path = tmp_path / "log.arrow"
    nothing = np.zeros(0, dtype=np.int64)
    steps = np.array(["order"], dtype=object)
    empty = EventLog(np.zeros(0, dtype=object), np.zeros(1, np.int64), steps, nothing, nothing)
    canonical.write_canonical_arrow(empty, path)

    # pyarrow writes no record batch at all: the file is left to it (a store is never empty).
    assert canonical._read_required_columns(path, []) is None


def test_optional_columns_asked_for_are_read_by_pyarrow(tmp_path):
    path = tmp_path / "log.arrow"
    canonical.write_canonical_arrow(random_log(3, numbered(50)), path)

    assert canonical._read_required_columns(path, ["channel"]) is None
    assert canonical._read_required_columns(path, ["absent", "customer_id"]) is not None
    log = canonical.read_canonical_arrow(path, ["channel"])
    assert list(log.columns) == ["channel"]


@pytest.mark.parametrize(
    "write",
    [
        lambda table, path: path.write_bytes(b"not an arrow file"),
        lambda table, path: path.write_bytes(b"ARROW1\0\0" + b"\0" * 20 + b"ARROW1"),
        # Two record batches: read by pyarrow.
        lambda table, path: _write_batches(table, path, max_chunksize=10),
        # Compressed buffers: read by pyarrow.
        lambda table, path: _write_batches(table, path, compression="zstd"),
    ],
)
def test_files_of_another_layout_are_left_to_pyarrow(tmp_path, write):
    log = random_log(4, numbered(30))
    path = tmp_path / "log.arrow"
    write(canonical._canonical_table(log), path)

    with ipc.opened(path) as file:
        found = file
    assert found is None
    if path.read_bytes().startswith(b"ARROW1") and len(path.read_bytes()) > 100:
        assert_same_log(canonical.read_canonical_arrow(path, []), read_with_pyarrow(path, []))


def _write_batches(table: pa.Table, path: Path, **options: object) -> None:
    chunks = options.pop("max_chunksize", None)
    write_options = pa.ipc.IpcWriteOptions(**options)  # type: ignore[arg-type]
    with (
        pa.OSFile(str(path), "wb") as sink,
        pa.ipc.new_file(sink, table.schema, options=write_options) as writer,
    ):
        writer.write_table(table, max_chunksize=chunks)


def test_nulls_in_a_required_column_are_left_to_pyarrow(tmp_path):
    path = tmp_path / "log.arrow"
    table = canonical._canonical_table(random_log(5, numbered(20)))
    ids = table.column("customer_id").combine_chunks()
    mask = pa.array([index == 3 for index in range(len(ids))])
    with_null = pa.DictionaryArray.from_arrays(
        pa.compute.if_else(mask, pa.scalar(None, pa.int32()), ids.indices), ids.dictionary
    )
    table = table.set_column(0, "customer_id", with_null)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)

    with ipc.opened(path) as file:
        assert file is not None
        assert file.coded_text("customer_id") is None
        assert file.coded_text("event") is not None
        assert file.int64s("timestamp") is not None
    assert canonical._read_required_columns(path, []) is None


def test_the_log_stays_writable_and_whole_when_its_file_is_replaced(tmp_path):
    # Mapped copy-on-write: callers may change arrays in place, and the store replaces
    # its files (a new one renamed over the old) while a log read from them lives on.
    path = tmp_path / "log.arrow"
    canonical.write_canonical_arrow(random_log(7, numbered(300)), path)
    log = canonical.read_canonical_arrow(path, [])
    expected = read_with_pyarrow(path, [])
    replacement = tmp_path / "new.arrow"
    canonical.write_canonical_arrow(random_log(8, numbered(20)), replacement)
    replacement.replace(path)

    assert_same_log(log, expected)
    log.times[:5] = -1
    assert (log.times[:5] == -1).all()
    assert canonical.read_canonical_arrow(path, []).n_journeys == 20


def test_reading_the_store_without_columns_never_imports_pyarrow(tmp_path):
    path = tmp_path / "log.arrow"
    canonical.write_canonical_arrow(random_log(6, numbered(40)), path)
    script = (
        "import sys\n"
        "from journeyguard.features.eventlog.canonical import read_canonical_arrow\n"
        f"log = read_canonical_arrow({str(path)!r}, [])\n"
        "assert log.n_journeys == 40\n"
        "assert 'pyarrow' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
