"""Columns of an Arrow IPC file (the store's, `canonical.write_canonical_arrow`) read from the
file's bytes without pyarrow: its import alone costs a one-shot command (`analyze` of the
store) about as much as reading the columns it needs.

Only what the store writes is understood: a little-endian file of one record batch, not
compressed, whose columns are flat (text dictionaries, times, numbers). `opened` gives None
for any other file, and its readers None for a column they cannot give as pyarrow would;
the caller then reads the file with pyarrow. Numbers are mapped from the file, not copied.
The layout is Arrow's columnar format: the footer (a flatbuffer, File.fbs) holds the schema
and where each message lies; a message (Message.fbs) gives its batch's length, each column's
length and null count, and where their buffers lie in the body that follows it.
"""

from __future__ import annotations

import contextlib
import itertools
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np

_MAGIC = b"ARROW1"
_TAIL = 4 + len(_MAGIC)  # the footer's length, then the magic
_CONTINUATION = b"\xff\xff\xff\xff"  # opens each message since Arrow 0.15
# Union tags of Schema.fbs's Type and Message.fbs's MessageHeader, and TimeUnit's nanosecond.
_INT, _FLOAT, _UTF8, _TIMESTAMP = 2, 3, 5, 10
_DICTIONARY_BATCH, _RECORD_BATCH = 2, 3
_NANOSECOND = 3
_BUFFERS = {_INT: 2, _FLOAT: 2, _UTF8: 3, _TIMESTAMP: 2}  # a flat column's: validity first
_BLOCK = struct.Struct("<qi4xq")  # File.fbs Block: offset, metadata length, body length
_PAIR = struct.Struct("<qq")  # FieldNode (length, null count) and Buffer (offset, length)


class _Table(NamedTuple):
    """A flatbuffer table at `at` in `data`. Fields are read by their slot (the order of
    their declaration in the schema); an absent field reads as its default."""

    data: bytes
    at: int

    def _field(self, slot: int) -> int:
        """Where the field lies; 0 when absent. The table's vtable says."""
        vtable = self.at - _unpack("<i", self.data, self.at)
        entry = 4 + 2 * slot
        if entry >= _unpack("<H", self.data, vtable):
            return 0
        offset = _unpack("<H", self.data, vtable + entry)
        return self.at + offset if offset else 0

    def scalar(self, slot: int, kind: str, default: int = 0) -> int:
        at = self._field(slot)
        return _unpack(kind, self.data, at) if at else default

    def table(self, slot: int) -> _Table | None:
        at = self._field(slot)
        return _Table(self.data, at + _unpack("<I", self.data, at)) if at else None

    def _vector(self, slot: int) -> tuple[int, int]:
        """(where its elements start, how many)."""
        at = self._field(slot)
        if not at:
            return 0, 0
        at += _unpack("<I", self.data, at)
        return at + 4, _unpack("<I", self.data, at)

    def tables(self, slot: int) -> list[_Table]:
        start, count = self._vector(slot)
        ats = [start + 4 * i for i in range(count)]
        return [_Table(self.data, at + _unpack("<I", self.data, at)) for at in ats]

    def structs(self, slot: int, layout: struct.Struct) -> list[tuple[int, ...]]:
        start, count = self._vector(slot)
        return [layout.unpack_from(self.data, start + layout.size * i) for i in range(count)]

    def text(self, slot: int) -> str:
        start, count = self._vector(slot)
        return self.data[start : start + count].decode()


def _unpack(kind: str, data: bytes, at: int) -> int:
    return struct.unpack_from(kind, data, at)[0]


class _Column(NamedTuple):
    kind: int  # the union tag of its values' type (the dictionary's, for a dictionary)
    bits: int  # the width of its values (of its indices, for a dictionary; 0: not fixed)
    dictionary: int | None  # the id of its dictionary
    first_buffer: int  # the index of its validity buffer among its batch's


class _Batch(NamedTuple):
    """A record batch: its rows, its columns' (length, null count) and where their buffers
    lie in the file (offset, length)."""

    rows: int
    nodes: list[tuple[int, ...]]
    buffers: list[tuple[int, int]]


@contextlib.contextmanager
def opened(path: str | Path) -> Iterator[ArrowFile | None]:
    """The file, open while in the block; None when its layout is not the store's."""
    with Path(path).open("rb") as file:
        try:
            found = ArrowFile.parse(file)
        except (struct.error, ValueError, UnicodeDecodeError, IndexError):
            found = None
        yield found


class ArrowFile:
    """An open Arrow IPC file of the store's layout (see `opened`), its columns to read."""

    def __init__(
        self,
        file: BinaryIO,
        columns: dict[str, _Column],
        batch: _Batch,
        dictionaries: dict[int, _Batch],
    ) -> None:
        self._file, self._columns, self._batch = file, columns, batch
        self._dictionaries = dictionaries

    @classmethod
    def parse(cls, file: BinaryIO) -> ArrowFile | None:
        """The file's schema, batch and dictionaries; None when not of the store's layout."""
        size = file.seek(0, 2)
        if size < len(_MAGIC) + _TAIL or _read_at(file, 0, len(_MAGIC)) != _MAGIC:
            return None
        tail = _read_at(file, size - _TAIL, _TAIL)
        length = _unpack("<i", tail, 0)
        if tail[4:] != _MAGIC or not 0 < length < size:
            return None
        data = _read_at(file, size - _TAIL - length, length)
        footer = _Table(data, _unpack("<I", data, 0))
        schema, blocks = footer.table(1), footer.structs(3, _BLOCK)
        if schema is None or schema.scalar(0, "<h") != 0 or len(blocks) != 1:
            return None  # big-endian, or not one record batch
        columns = _columns(schema)
        message = _message(file, blocks[0], _RECORD_BATCH)
        batch = None if message is None else _batch(*message)
        dictionaries = _dictionaries(file, footer.structs(2, _BLOCK))
        if columns is None or batch is None or dictionaries is None:
            return None
        return cls(file, columns, batch, dictionaries)

    @property
    def names(self) -> list[str]:
        return list(self._columns)

    def int64s(self, name: str) -> np.ndarray | None:
        """A column of int64 values or nanosecond times without nulls, as int64; None for
        any other column."""
        column = self._columns.get(name)
        if column is None or column.dictionary is not None or column.bits != 64:
            return None
        if column.kind not in (_INT, _TIMESTAMP) or self._nulls(self._batch, name):
            return None
        try:
            return self._fixed(self._batch, column.first_buffer + 1, np.int64)
        except ValueError:
            return None

    def coded_text(self, name: str) -> tuple[np.ndarray, list[str]] | None:
        """A dictionary column of text without nulls: its int32 indices and its dictionary's
        texts, in the dictionary's order; None for any other column."""
        column = self._columns.get(name)
        if column is None or column.kind != _UTF8 or column.bits != 32:
            return None
        dictionary = self._dictionaries.get(column.dictionary)  # type: ignore[arg-type]
        if dictionary is None or self._nulls(self._batch, name) or dictionary.nodes[0][1]:
            return None  # nulls: pyarrow's reader settles them
        try:
            indices = self._fixed(self._batch, column.first_buffer + 1, np.int32)
            if dictionary.rows == 0:
                return indices, []
            offsets = self._fixed(dictionary, 1, np.int32, dictionary.rows + 1)
            start, _ = dictionary.buffers[2]
            size = int(offsets[-1] - offsets[0])
            text = _read_at(self._file, start + int(offsets[0]), size)
        except ValueError:
            return None
        return indices, _texts(text, offsets - offsets[0])

    def _nulls(self, batch: _Batch, name: str) -> int:
        return batch.nodes[list(self._columns).index(name)][1]

    def _fixed(
        self, batch: _Batch, buffer: int, dtype: type, count: int | None = None
    ) -> np.ndarray:
        """A buffer's first `count` values (default: the batch's rows), mapped from the file
        copy-on-write: pages are read as they are touched, and only those written to are
        copied, where reading tens of megabytes into fresh memory costs several times more.
        The store replaces its files, never rewrites them, so the mapping stays valid."""
        count = batch.rows if count is None else count
        start, length = batch.buffers[buffer]
        kind = np.dtype(dtype).newbyteorder("<")
        if count * kind.itemsize > length:
            raise ValueError("a buffer shorter than its column")
        if count == 0:
            return np.zeros(0, dtype=dtype)
        values = np.memmap(self._file, dtype=kind, mode="c", offset=start, shape=(count,))
        return np.asarray(values).astype(dtype, copy=False)


def _columns(schema: _Table) -> dict[str, _Column] | None:
    """The schema's columns, or None when one is not flat or of a type not read here."""
    columns, buffer = {}, 0
    for field in schema.tables(1):
        kind, kind_table = field.scalar(2, "<B"), field.table(3)
        encoding = field.table(4)
        if field.tables(5) or kind not in _BUFFERS or kind_table is None:
            return None
        bits = _width(kind, kind_table)
        dictionary = None
        if encoding is not None:
            index = encoding.table(1)
            bits = 32 if index is None else index.scalar(0, "<i")
            if index is not None and not index.scalar(1, "<?"):
                return None  # unsigned indices
            dictionary = encoding.scalar(0, "<q")
        columns[field.text(0)] = _Column(kind, bits, dictionary, buffer)
        buffer += 2 if dictionary is not None else _BUFFERS[kind]
    return columns


def _width(kind: int, kind_table: _Table) -> int:
    if kind == _INT:
        return kind_table.scalar(0, "<i") if kind_table.scalar(1, "<?") else 0
    if kind == _FLOAT:
        return 64 if kind_table.scalar(0, "<h") == 2 else 0  # DOUBLE
    if kind == _TIMESTAMP:
        return 64 if kind_table.scalar(0, "<h") == _NANOSECOND else 0
    return 0


def _message(file: BinaryIO, block: tuple[int, ...], header: int) -> tuple[_Table, int] | None:
    """The header of the message at `block` if it is of type `header`, and where its body
    starts in the file."""
    offset, metadata_length, _ = block
    metadata = _read_at(file, offset, metadata_length)
    if metadata[:4] != _CONTINUATION:
        return None
    root = 8  # after the continuation and the flatbuffer's length
    message = _Table(metadata, root + _unpack("<I", metadata, root))
    found = message.table(2)
    if message.scalar(1, "<B") != header or found is None:
        return None
    return found, offset + metadata_length


def _dictionaries(file: BinaryIO, blocks: list[tuple[int, ...]]) -> dict[int, _Batch] | None:
    """The batch of each dictionary, by id; None when one is a delta or compressed."""
    dictionaries = {}
    for block in blocks:
        message = _message(file, block, _DICTIONARY_BATCH)
        data = None if message is None else message[0].table(1)
        if message is None or data is None or message[0].scalar(2, "<?"):
            return None
        batch = _batch(data, message[1])
        if batch is None:
            return None
        dictionaries[message[0].scalar(0, "<q")] = batch
    return dictionaries


def _batch(header: _Table, body: int) -> _Batch | None:
    """A RecordBatch header's batch; None when its body is compressed."""
    if header.table(3) is not None:
        return None
    buffers = [(body + start, length) for start, length in header.structs(2, _PAIR)]
    return _Batch(header.scalar(0, "<q"), header.structs(1, _PAIR), buffers)


def _read_at(file: BinaryIO, at: int, length: int) -> bytes:
    file.seek(at)
    data = file.read(length)
    if len(data) != length:
        raise ValueError("the file ends early")
    return data


def _texts(data: bytes, offsets: np.ndarray) -> list[str]:
    """The UTF-8 texts between consecutive offsets (from 0). Where no text holds a NUL, one
    goes between every two, and the whole is decoded once and split: several times faster
    than a decode or a slice per text."""
    if b"\0" not in data:
        separated = np.insert(np.frombuffer(data, dtype=np.uint8), offsets[1:-1], 0)
        return separated.tobytes().decode().split("\0")
    bounds = offsets.tolist()
    return [data[start:end].decode() for start, end in itertools.pairwise(bounds)]
