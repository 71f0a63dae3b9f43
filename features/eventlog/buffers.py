"""Between numpy and Arrow arrays through their buffers.

pyarrow's own conversions import pandas (a quarter second) to check for or to make pandas
objects: `pa.array`, and `to_numpy` of arrays with nulls or of nanosecond times. The store and
a typed ingest need pandas nowhere else, so they cross here.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def values(array: Any) -> np.ndarray:
    """A fixed-width array's values (numbers, booleans, times, dictionary indices) as a view
    of its buffer, whatever lies under its nulls (booleans are unpacked)."""
    import pyarrow as pa

    kind, start, stop = array.type, array.offset, array.offset + len(array)
    data = array.buffers()[1]
    if pa.types.is_boolean(kind):
        return _bits(data, start, stop)
    signed = pa.types.is_signed_integer(kind) or pa.types.is_timestamp(kind)
    letter = "f" if pa.types.is_floating(kind) else "i" if signed else "u"
    return np.frombuffer(data, dtype=f"{letter}{kind.bit_width // 8}")[start:stop]


def valid(array: Any) -> np.ndarray:
    """Which cells hold a value."""
    if array.null_count == 0:
        return np.ones(len(array), dtype=bool)
    return _bits(array.buffers()[0], array.offset, array.offset + len(array))


def values_at(array: Any, positions: np.ndarray, missing: float, cells: Any = None) -> np.ndarray:
    """The values at `positions`, `missing` where `cells` (default: the array) has nulls
    there; only those cells' validity bits are unpacked."""
    cells = array if cells is None else cells
    picked = values(array)[positions]  # a copy
    if cells.null_count:
        bitmap = np.frombuffer(cells.buffers()[0], dtype=np.uint8)
        at = positions + cells.offset
        picked[((bitmap[at >> 3] >> (at & 7).astype(np.uint8)) & 1) == 0] = missing
    return picked


def with_missing(array: Any, missing: float, cells: Any = None) -> np.ndarray:
    """`values(array)` with `missing` where `cells` (default: the array) has nulls."""
    cells = array if cells is None else cells
    if cells.null_count == 0:
        return values(array)
    return np.where(valid(cells), values(array), missing)


def texts_at(strings: Any, positions: np.ndarray) -> np.ndarray:
    """The values at `positions` of a string array, decoded from its buffers."""
    offsets = np.frombuffer(strings.buffers()[1], dtype=np.int32)[strings.offset :]
    data = memoryview(strings.buffers()[2])
    starts, ends = offsets[positions].tolist(), offsets[positions + 1].tolist()
    texts = [str(data[a:b], "utf-8") for a, b in zip(starts, ends, strict=True)]
    return np.array(texts, dtype=object)


def fixed_width(numbers: np.ndarray, kind: Any, present: np.ndarray | None = None) -> Any:
    """An Arrow array of numpy `numbers`, null where `present` is False."""
    import pyarrow as pa

    bitmap = None
    if present is not None and not present.all():
        bitmap = pa.py_buffer(np.packbits(present, bitorder="little"))
    data = pa.py_buffer(np.ascontiguousarray(numbers))
    return pa.Array.from_buffers(kind, len(numbers), [bitmap, data])


def strings(texts: np.ndarray) -> Any:
    """An Arrow string array of `texts`."""
    import pyarrow as pa

    plain = texts.tolist()
    try:
        whole = "".join(plain)
    except TypeError:  # not all Python strings (numpy's, say): made so one by one
        plain = [str(text) for text in plain]
        whole = "".join(plain)
    if whole.isascii():  # a character is a byte: lengths without encoding each value
        data, lengths = whole.encode(), np.fromiter(map(len, plain), np.int64, len(plain))
    else:
        encoded = [text.encode() for text in plain]
        data, lengths = b"".join(encoded), np.fromiter(map(len, encoded), np.int64, len(plain))
    if len(data) >= 2**31:  # beyond 32-bit offsets: Arrow splits it
        return pa.array(plain)
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int32)
    return pa.Array.from_buffers(
        pa.string(), len(plain), [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


def found_texts(strings: Any, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which `queries` a sorted string array holds, and their positions in it (in the
    queries' order): one binary search over the values' UTF-8 bytes at a fixed width (UTF-8
    sorts as code points do), without making a Python string of every value."""
    encoded = [str(query).encode() for query in queries.tolist()]
    known = _at_fixed_width(strings, max(map(len, encoded), default=0))
    wanted = np.array(encoded, dtype=known.dtype)
    at = np.searchsorted(known, wanted)
    found = at < len(known)
    found[found] = known[at[found]] == wanted[found]
    return found, at[found]


def _at_fixed_width(strings: Any, at_least: int) -> np.ndarray:
    """A string array's UTF-8 values as numpy bytes of one width (at least `at_least`),
    NUL-padded: a view of its data where every value has the same length (ids of one
    pattern), laid out anew otherwise."""
    offsets = np.frombuffer(strings.buffers()[1], dtype=np.int32)[
        strings.offset : strings.offset + len(strings) + 1
    ]
    data = np.frombuffer(strings.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    lengths = np.diff(offsets)
    width = max(int(lengths.max(initial=0)), at_least, 1)
    if len(data) and (lengths == lengths[0]).all():
        return data.view(f"S{lengths[0]}").astype(f"S{width}", copy=False)
    starts = np.repeat(np.arange(len(lengths)) * width - offsets[:-1] + offsets[0], lengths)
    laid_out = np.zeros(len(lengths) * width, dtype=np.uint8)
    laid_out[starts + np.arange(len(data))] = data
    return laid_out.view(f"S{width}")


def _bits(buffer: Any, start: int, stop: int) -> np.ndarray:
    bits = np.unpackbits(np.frombuffer(buffer, dtype=np.uint8), bitorder="little")
    return bits[start:stop].astype(bool)
