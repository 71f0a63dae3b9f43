"""Reading a text file record by record, so that one bad row costs one row, not the load.

pyarrow reads a whole CSV file or nothing: a row with a field too many or too few, bytes not
valid in the file's encoding, or a row longer than its block stop it. When it refuses a file,
`read_records` reads it again here (Python's csv module, the same dialect: double quotes, quoted
fields may span lines, blank lines skipped) and sets such rows aside, each with the line it
starts on. Problems of the whole file (empty, a bad header, a quote never closed) raise
`LoadError` naming the file and what was expected.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import pandas as pd
import pyarrow as pa

from journeyguard.features.errors import LoadError

# pyarrow's default block: a longer row is what made it refuse the file, so the limit agrees.
MAX_ROW_CHARS = 1 << 20
WRONG_FIELDS = "wrong number of fields"
UNDECODABLE = "undecodable bytes"
OVER_LONG = "over-long row"
_EXCERPT = 80  # characters of a rejected row shown in its detail
_CHUNK_ROWS = 1 << 18  # rows gathered as Python strings before they become Arrow text


@dataclass(frozen=True)
class Records:
    """The wanted columns of the usable rows, as text indexed by source row (1 = the first
    row after the header), and the rows set aside: source_row, reason, detail."""

    frame: pd.DataFrame
    rejected: pd.DataFrame


@dataclass(frozen=True)
class _Record:
    fields: list[str]
    first_line: int
    lines: list[str]

    @property
    def where(self) -> str:
        last = self.first_line + len(self.lines) - 1
        return (
            f"line {self.first_line}"
            if last == self.first_line
            else f"lines {self.first_line}-{last}"
        )


def read_header(path: Path, separator: str | None, encoding: str) -> list[str]:
    """The header's column names; `separator` None splits on runs of whitespace."""
    with _open(path, encoding) as handle:
        header = next(_records(handle, separator), None)
    if header is None or not "".join(header.fields).strip():
        empty = "the file is empty" if header is None else f"{header.where} (the header) is blank"
        raise LoadError(f"{path}: {empty}; expected a header line naming the columns")
    names = list(header.fields)
    if names and names[0].startswith("\ufeff"):  # a byte order mark, as pyarrow drops it
        names[0] = names[0][1:]
    for name in names:
        if _undecodable(name):
            raise LoadError(
                f"{path}: line 1 (the header): {_bytes_text(name)} not valid {encoding}; "
                "set [source] encoding to the file's encoding"
            )
    return names


def read_records(path: Path, columns: list[str], separator: str | None, encoding: str) -> Records:
    """The named columns of every usable row; malformed rows set aside with a reason."""
    header = read_header(path, separator, encoding)
    wanted = [header.index(c) for c in columns]
    values: list[list[str]] = [[] for _ in columns]
    chunks: list[pa.Table] = []
    rows: list[int] = []
    rejected: list[dict[str, object]] = []
    last: _Record | None = None
    with _open(path, encoding) as handle, _field_limit():
        records = _records(handle, separator)
        next(records)  # the header
        for row, record in enumerate(records, start=1):
            last = record
            problem = _problem(record, header, wanted, encoding)
            if problem is not None:
                rejected.append({"source_row": row, "reason": problem[0], "detail": problem[1]})
                if problem[0] == UNDECODABLE:  # fields told apart: keep them, readable
                    rejected[-1] |= {
                        c: _readable(record.fields[i]) for c, i in zip(columns, wanted, strict=True)
                    }
                continue
            rows.append(row)
            for target, position in zip(values, wanted, strict=True):
                target.append(record.fields[position])
            if len(values[0]) >= _CHUNK_ROWS:  # as Arrow text: a fraction of Python's strings
                chunks.append(_chunk(columns, values))
    if last is not None and separator is not None and _ends_inside_quotes(last, separator):
        raise LoadError(
            f"{path}: line {last.first_line}: a quoted field opened here is never closed, so the "
            f"rest of the file ({len(last.lines):,} lines) would be one value; expected a "
            'closing " on the same row'
        )
    chunks.append(_chunk(columns, values))
    # As the fast reader gives them: the same dtypes whichever reader read the file.
    frame = pa.concat_tables(chunks).to_pandas()
    frame.index = pd.Index(rows, name="source_row", dtype="int64")
    aside = pd.DataFrame(rejected, columns=["source_row", "reason", "detail", *columns])
    return Records(frame, aside.dropna(axis=1, how="all"))


def _chunk(columns: list[str], values: list[list[str]]) -> pa.Table:
    """The rows gathered so far as an Arrow table; `values` emptied for the next ones."""
    table = pa.table(
        {c: pa.array(v, type=pa.string()) for c, v in zip(columns, values, strict=True)}
    )
    for gathered in values:
        gathered.clear()
    return table


def _problem(
    record: _Record, header: list[str], wanted: list[int], encoding: str
) -> tuple[str, str] | None:
    """The reason and detail that set a record aside, or None when it is usable."""
    chars = sum(len(line) for line in record.lines)
    if chars > MAX_ROW_CHARS:
        return (
            OVER_LONG,
            f"{record.where}: {chars:,} characters; at most {MAX_ROW_CHARS:,} in a row",
        )
    if len(record.fields) != len(header):  # the whole row in the detail: nothing is lost
        text = _readable("".join(record.lines).rstrip("\r\n"))
        return WRONG_FIELDS, (
            f"{record.where}: expected {len(header)} fields ({', '.join(header)}), "
            f"got {len(record.fields)}: {text}"
        )
    for position in wanted:
        value = record.fields[position]
        if _undecodable(value):
            return UNDECODABLE, (
                f"{record.where}, column {header[position]!r}: {_bytes_text(value)} not valid "
                f"{encoding} ({_readable(value[:_EXCERPT])}); set [source] encoding if the file "
                f"is not {encoding}"
            )
    return None


def _records(handle: TextIO, separator: str | None) -> Iterator[_Record]:
    """Non-blank records with their lines: csv's, or whitespace-split lines."""
    lines = _Lines(handle)
    if separator is None:
        for line in lines:
            fields = line.split()
            record = lines.take()
            if fields:
                yield _Record(fields, lines.line_number, record)
        return
    for fields in csv.reader(lines, delimiter=separator):
        record = lines.take()
        if fields:
            yield _Record(fields, lines.line_number - len(record) + 1, record)


class _Lines:
    """A file's lines, keeping those read since the last `take` (one record's lines)."""

    def __init__(self, handle: TextIO) -> None:
        self._handle, self._kept, self.line_number = handle, [], 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self._handle.readline()
        if not line:
            raise StopIteration
        self.line_number += 1
        self._kept.append(line)
        return line

    def take(self) -> list[str]:
        kept, self._kept = self._kept, []
        return kept


def _ends_inside_quotes(record: _Record, separator: str) -> bool:
    """Whether the file's last record ran into the end of the file inside a quoted field."""
    try:
        list(csv.reader(record.lines, delimiter=separator, strict=True))
    except csv.Error as error:
        return "unexpected end of data" in str(error)
    return False


@contextmanager
def _open(path: Path, encoding: str) -> Iterator[TextIO]:
    # Decompressed by the file's suffix (.gz, .bz2, .zst, ...) as pyarrow's reader does;
    # surrogateescape keeps undecodable bytes as lone surrogates, to be reported per row.
    with (
        open_bytes(path) as raw,
        io.TextIOWrapper(raw, encoding=encoding, errors="surrogateescape", newline="") as handle,
    ):
        yield handle


def open_bytes(path: Path) -> pa.NativeFile:
    """The file's bytes, decompressed when its suffix names a compression."""
    return pa.input_stream(str(path), compression="detect")


@contextmanager
def _field_limit() -> Iterator[None]:
    """csv refuses fields over 128 KiB; rows over MAX_ROW_CHARS are reported here instead."""
    previous = csv.field_size_limit(sys.maxsize)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _undecodable(text: str) -> bool:
    return not text.isascii() and any("\udc80" <= char <= "\udcff" for char in text)


def _bytes_text(text: str) -> str:
    found = sorted({ord(c) - 0xDC00 for c in text if "\udc80" <= c <= "\udcff"})
    shown = " ".join(f"0x{b:02x}" for b in found[:5])
    return f"byte {shown} is" if len(found) == 1 else f"bytes {shown} are"


def _readable(text: str) -> str:
    """Text with undecodable bytes shown as U+FFFD, so the quarantine file can be written."""
    if not _undecodable(text):
        return text
    return "".join("\ufffd" if "\udc80" <= char <= "\udcff" else char for char in text)
