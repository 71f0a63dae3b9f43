"""Running the array code on Spark partitions: Arrow batches in, one `EventLog` per partition,
a frame out in a fixed Arrow schema.

`DataFrame.mapInArrow` hands each partition's rows over as Arrow batches (one Python call per
partition, the fastest of Spark 4's Arrow paths); a partition holds whole journeys, so the
code that runs on it sees exactly the events it would see in the whole log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from journeyguard.features.eventlog.columns import TIMESTAMP
from journeyguard.features.eventlog.frames import log_from_frame
from journeyguard.features.eventlog.log import EventLog

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.types import StructType

PartitionFunction = Callable[[EventLog], pd.DataFrame]


def whole_partition(batches: Iterable[pa.RecordBatch]) -> pa.Table | None:
    """A partition's batches as one table; None for an empty partition (it passes none)."""
    collected = list(batches)
    return pa.Table.from_batches(collected) if collected else None


def log_of_table(table: pa.Table, steps: np.ndarray) -> EventLog:
    """The canonical rows of a partition (`timestamp` as int64 ns) as an `EventLog` whose step
    vocabulary is the whole log's `steps`: code that looks steps up (a task's events) finds them
    in every partition, as in the whole log."""
    frame = table.to_pandas()
    frame[TIMESTAMP] = pd.to_datetime(table.column(TIMESTAMP).to_numpy(), unit="ns", utc=True)
    return with_steps(log_from_frame(frame), steps)


def with_steps(log: EventLog, steps: np.ndarray) -> EventLog:
    """The log with `steps` (sorted, a superset of its own) as its step vocabulary."""
    recode = np.searchsorted(steps, log.steps).astype(np.int32)
    return EventLog(
        journey_ids=log.journey_ids,
        offsets=log.offsets,
        steps=steps,
        step_codes=recode[log.step_codes] if log.n_events else log.step_codes,
        times=log.times,
        columns=log.columns,
    )


def to_arrow(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """`frame` in `schema`: columns by name, cast; a column the frame lacks is all null.
    Times are cut to microseconds, Spark's unit."""
    arrays = []
    for target in schema:
        if target.name not in frame.columns:
            arrays.append(pa.nulls(len(frame), target.type))
            continue
        values = frame[target.name]
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            micros = values.dt.floor("us").dt.as_unit("us").array.asi8
            array = pa.array(micros, mask=values.isna().to_numpy(), type=pa.int64())
            arrays.append(array.cast(pa.timestamp("us", tz="UTC")).cast(target.type))
            continue
        arrays.append(pa.array(values, from_pandas=True).cast(target.type, safe=False))
    return pa.Table.from_arrays(arrays, schema=schema)


def spark_schema_of(frame: pd.DataFrame) -> StructType:
    """The Spark schema of a frame that a partition function returns (a probe run's)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    times = [c for c in frame.columns if isinstance(frame[c].dtype, pd.DatetimeTZDtype)]
    inferred = pa.Schema.from_pandas(frame.drop(columns=times), preserve_index=False)
    fields = []
    for name in frame.columns:
        kind = pa.timestamp("us", tz="UTC") if name in times else inferred.field(name).type
        if pa.types.is_large_string(kind) or pa.types.is_dictionary(kind):
            kind = pa.string()
        fields.append(pa.field(name, kind))
    return from_arrow_schema(pa.schema(fields))


def map_logs(
    events: DataFrame,
    steps: np.ndarray,
    function: PartitionFunction,
    schema: StructType,
) -> DataFrame:
    """`function` run on each partition's `EventLog`, its frames as one DataFrame of `schema`.

    `function` is pickled to the executors: large objects it needs (a fitted transformer, a
    model) should reach it through a Spark broadcast, sent once per executor."""
    from pyspark.sql.pandas.types import to_arrow_schema

    arrow_schema = to_arrow_schema(schema, timezone="UTC")

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        table = whole_partition(batches)
        if table is None or table.num_rows == 0:
            return
        frame = function(log_of_table(table, steps))
        yield from to_arrow(frame, arrow_schema).to_batches()

    return events.mapInArrow(run, schema)


def probe_schema(function: PartitionFunction, sample: EventLog) -> StructType:
    """The schema of `function`'s frames, from a run on the first journeys of `sample` (all of
    it when those give no rows, whose column types an empty frame cannot tell)."""
    few = np.zeros(sample.n_journeys, dtype=bool)
    few[: min(200, sample.n_journeys)] = True
    frame = function(sample.select_journeys(few))
    return spark_schema_of(frame if len(frame) else function(sample))


def broadcast_value(broadcast: Any) -> Any:
    """A broadcast's value (its first use on an executor loads it there, once)."""
    return broadcast.value
