"""Tables to files: Parquet, or CSV when the file's name ends in .csv.

A table is a pandas frame, or an Arrow table built by `arrow_table` without pandas: the features
command writes one so as not to import pandas (a sixth of its time), and its file is the one the
frame of the same columns gives, byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa


def write_table(table: pd.DataFrame | pa.Table, out: Path) -> None:
    """Writes `table` to `out` (CSV by suffix, else Parquet), creating the folder if needed."""
    # Here: the command line imports this module, analyze needs neither.
    import pyarrow as pa

    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".csv":
        (table.to_pandas() if isinstance(table, pa.Table) else table).to_csv(out, index=False)
    elif isinstance(table, pa.Table):
        import pyarrow.parquet as pq

        # Dictionary encoding pays for text; tried on every float column (features, scores) it
        # costs a third of the write.
        text = [field.name for field in table.schema if not pa.types.is_floating(field.type)]
        pq.write_table(table, out, use_dictionary=text)
    else:
        import pandas as pd

        text = [c for c in table.columns if not pd.api.types.is_float_dtype(table[c])]
        table.to_parquet(out, index=False, use_dictionary=text)


def arrow_table(columns: Mapping[str, np.ndarray]) -> pa.Table:
    """The Arrow table that `pa.Table.from_pandas(pd.DataFrame(columns), preserve_index=False)`
    gives, pandas' metadata included, for the columns a features file has: text (numpy str),
    UTC times (naive numpy datetime64) and float64 (NaN for missing). Any other kind of
    column is a TypeError.

    Arrays are put together from their buffers: `pa.array` of a numpy array imports pandas
    (to ask whether it is a Series), which this function is here to avoid."""
    import numpy as np
    import pyarrow as pa

    arrays, described = [], []
    for name, values in columns.items():
        kind, metadata = values.dtype.kind, None
        if kind == "U":
            array, pandas_type, numpy_type = _large_strings(values), "object", "str"
        elif kind == "M":
            unit = np.datetime_data(values.dtype)[0]
            ticks = pa.py_buffer(np.ascontiguousarray(values).view(np.int64))
            array = pa.Array.from_buffers(pa.timestamp(unit, "UTC"), len(values), [None, ticks])
            pandas_type, numpy_type = "datetimetz", f"datetime64[{unit}]"
            metadata = {"timezone": "UTC"}
        elif values.dtype == np.float64:
            array, pandas_type, numpy_type = _floats(values), "float64", "float64"
        else:
            raise TypeError(f"column {name!r}: no features file holds {values.dtype} values")
        arrays.append(array)
        described.append(
            {
                "name": name,
                "field_name": name,
                "pandas_type": pandas_type,
                "numpy_type": numpy_type,
                "metadata": metadata,
            }
        )
    pandas = {
        "index_columns": [],
        "column_indexes": [],
        "columns": described,
        "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": _pandas_version(),
    }
    table = pa.Table.from_arrays(arrays, names=list(columns))
    return table.replace_schema_metadata({"pandas": json.dumps(pandas)})


def _floats(values: np.ndarray) -> pa.Array:
    """float64 values without a copy, NaN missing (as from_pandas reads them)."""
    import numpy as np
    import pyarrow as pa

    values = np.ascontiguousarray(values)
    present = ~np.isnan(values)
    missing = len(values) - int(np.count_nonzero(present))
    validity = pa.py_buffer(np.packbits(present, bitorder="little")) if missing else None
    return pa.Array.from_buffers(
        pa.float64(), len(values), [validity, pa.py_buffer(values)], null_count=missing
    )


def _large_strings(values: np.ndarray) -> pa.Array:
    """Text as Arrow's large_string (what pandas' str columns become): UTF-8 bytes end to end,
    and where each value ends."""
    import numpy as np
    import pyarrow as pa

    texts = values.tolist()
    data = "".join(texts).encode()
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    if len(data) != lengths.sum():  # text beyond ASCII: lengths in bytes, not characters
        lengths = np.fromiter((len(t.encode()) for t in texts), dtype=np.int64, count=len(texts))
    ends = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=ends[1:])
    buffers = [None, pa.py_buffer(ends), pa.py_buffer(data)]
    return pa.Array.from_buffers(pa.large_string(), len(texts), buffers)


def _pandas_version() -> str:
    """The version of pandas that would read the file, without importing it."""
    from importlib.metadata import version

    return version("pandas")
