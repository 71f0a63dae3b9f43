"""The configured source as a Spark DataFrame of validated, journey-partitioned events.

The source (Parquet, Delta or a catalog table) is read with the same column mapping as the
local loader; rows are partitioned by a hash of the trimmed journey id, and each partition is
validated by `features.sources.load.validate_rows`, the local loader's own rules: a duplicate
and its original share a journey, hence a partition. Rejected rows go to the quarantine table
with their reasons; usable rows stay as canonical columns, `timestamp` in int64 nanoseconds.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa

from journeyguard.features.config.model import Config, SourceConfig
from journeyguard.features.engine.partitions import log_of_table, to_arrow, whole_partition
from journeyguard.features.errors import ConfigError, LoadError
from journeyguard.features.eventlog.columns import (
    CANONICAL_COLUMNS,
    CUSTOMER_ID,
    EVENT,
    OPTIONAL_NUMBER_COLUMNS,
    TIMESTAMP,
)
from journeyguard.features.eventlog.frames import log_to_frame
from journeyguard.features.eventlog.log import EventLog
from journeyguard.features.sources.load import validate_rows
from journeyguard.features.sources.mapping import column_mapping
from journeyguard.features.sources.quarantine import DETAIL, REASON, SOURCE_ROW

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

RAW = "raw__"  # prefix of a quarantined row's source values inside the validated frame
SAMPLE_BUCKETS = 1_000_000  # journeys are sampled by hash bucket, so a sample keeps whole ones


@dataclass(frozen=True)
class SparkLog:
    """The validated events on Spark, persisted: canonical columns, partitioned by journey."""

    events: DataFrame
    steps: np.ndarray  # every step of the log, sorted: each partition's step vocabulary
    span: tuple[int, int]  # first and last event time, ns
    n_events: int
    n_journeys: int
    quarantined: dict[str, int]
    _samples: dict[float, EventLog] = field(default_factory=dict, compare=False, repr=False)

    def sample(self, fraction: float) -> EventLog:
        """The journeys of a hash-chosen `fraction` (all at 1) as one log on the driver;
        collected once per fraction (features and scoring of one run share it)."""
        if fraction not in self._samples:
            self._samples[fraction] = self._collect(fraction)
        return self._samples[fraction]

    def _collect(self, fraction: float) -> EventLog:
        from pyspark.sql import functions as F

        events = self.events
        if fraction < 1:
            bucket = F.pmod(F.xxhash64(F.col(CUSTOMER_ID)), F.lit(SAMPLE_BUCKETS))
            events = events.where(bucket < int(fraction * SAMPLE_BUCKETS))
        table = events.toArrow()
        if table.num_rows == 0:
            raise LoadError(f"no journeys in a {fraction:.2%} sample: raise [engine] fit_fraction")
        return log_of_table(table, self.steps)


def load_spark_log(spark: SparkSession, settings: Config) -> SparkLog:
    """Reads and validates the configured source on Spark; writes its quarantine table
    (`Workspace.quarantine_table`) and keeps the usable events persisted."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    source, engine = settings.source, settings.engine
    if source.attributes.path is not None:
        raise ConfigError(
            f"{settings.path}: [source.attributes] path (a joined table) is not read by the Spark "
            "engine yet; join the attributes into the source table instead"
        )
    raw = _read(spark, settings)
    mapping = column_mapping(source, raw.columns)
    wanted = list(dict.fromkeys(mapping.values()))
    nanos = _nanosecond_columns(settings, wanted)
    raw = raw.select(*wanted).withColumn(SOURCE_ROW, F.monotonically_increasing_id() + 1)
    schema = _validated_schema(raw.schema, mapping, source)
    journey = F.trim(F.col(f"`{mapping[CUSTOMER_ID]}`").cast("string"))
    validate = functools.partial(
        _validate_partition, mapping=mapping, source=source, nanos=nanos, schema=schema
    )
    validated = raw.repartition(engine.partitions, journey).mapInArrow(validate, schema)
    validated = validated.persist(StorageLevel.MEMORY_AND_DISK)
    rejected = validated.where(F.col(REASON).isNotNull())
    quarantine = rejected.select(
        SOURCE_ROW, REASON, DETAIL, *(F.col(f"{RAW}{c}").alias(c) for c in wanted)
    )
    path = settings.workspace.quarantine_table
    quarantine.write.mode("overwrite").parquet(str(path))
    quarantined = {r[REASON]: r["count"] for r in quarantine.groupBy(REASON).count().collect()}
    canonical = [f.name for f in schema if not f.name.startswith(RAW)]
    canonical = [c for c in canonical if c not in (SOURCE_ROW, REASON, DETAIL)]
    events = validated.where(F.col(REASON).isNull()).select(*canonical)
    stats = events.agg(
        F.min(TIMESTAMP).alias("first"),
        F.max(TIMESTAMP).alias("last"),
        F.count(F.lit(1)).alias("events"),
        F.countDistinct(CUSTOMER_ID).alias("journeys"),
    ).first()
    if not stats["events"]:
        raise LoadError(
            f"{source.display_name}: no usable rows; reasons: {quarantined} (quarantine: {path})"
        )
    steps = sorted(r[EVENT] for r in events.select(EVENT).distinct().collect())
    return SparkLog(
        events=events,
        steps=np.asarray(steps, dtype=object),
        span=(int(stats["first"]), int(stats["last"])),
        n_events=int(stats["events"]),
        n_journeys=int(stats["journeys"]),
        quarantined=quarantined,
    )


def _read(spark: SparkSession, settings: Config) -> DataFrame:
    """The source as Spark reads it: the `[engine] table`, or `[source] path` as Parquet or
    Delta (Delta needs the delta-spark package on the session)."""
    engine, source = settings.engine, settings.source
    if engine.table is not None:
        return spark.table(engine.table)
    if source.path is None:
        raise ConfigError(f"{settings.path}: Spark reads [source] path or [engine] table")
    if source.format == "csv" or source.path.suffix.lower() in (".csv", ".tsv", ".txt"):
        raise ConfigError(
            f"{settings.path}: the Spark engine reads Parquet, Delta or a table; convert "
            f"{source.path} (e.g. `journeyguard validate` then write Parquet)"
        )
    if not source.path.exists():
        raise LoadError(f"{source.path}: file not found")
    return spark.read.format(engine.source_format).load(str(source.path))


def _nanosecond_columns(settings: Config, columns: list[str]) -> list[str]:
    """Source columns holding nanosecond times, which Spark reads as int64 (see
    `session.BASE_CONF`): the validation turns them back into times."""
    source = settings.source
    if settings.engine.table is not None or settings.engine.source_format != "parquet":
        return []
    import pyarrow.dataset as ds

    assert source.path is not None
    schema = ds.dataset(str(source.path), format="parquet").schema
    return [
        f.name
        for f in schema
        if f.name in columns and pa.types.is_timestamp(f.type) and f.type.unit == "ns"
    ]


def _validated_schema(raw: StructType, mapping: dict[str, str], source: SourceConfig) -> StructType:
    """Canonical columns (as the local log has them), then a quarantined row's source row,
    reason, detail and raw values (as text)."""
    from pyspark.sql.types import (
        DoubleType,
        LongType,
        NumericType,
        StringType,
        StructField,
        StructType,
    )

    types = {f.name: f.dataType for f in raw.fields}
    present = [c for c in CANONICAL_COLUMNS if c in mapping or c in source.defaults]
    fields = []
    for name in [*present, *source.attributes.columns]:
        if name == TIMESTAMP:
            kind = LongType()
        elif name in OPTIONAL_NUMBER_COLUMNS or (
            name in source.attributes.columns and isinstance(types[name], NumericType)
        ):
            kind = DoubleType()
        else:
            kind = StringType()
        fields.append(StructField(name, kind))
    fields += [
        StructField(SOURCE_ROW, LongType()),
        StructField(REASON, StringType()),
        StructField(DETAIL, StringType()),
        *(StructField(f"{RAW}{c}", StringType()) for c in dict.fromkeys(mapping.values())),
    ]
    return StructType(fields)


def _validate_partition(
    batches: Iterator[pa.RecordBatch],
    *,
    mapping: dict[str, str],
    source: SourceConfig,
    nanos: list[str],
    schema: StructType,
) -> Iterator[pa.RecordBatch]:
    """One partition through the local loader's validation: its events, then its rejects."""
    from pyspark.sql.pandas.types import to_arrow_schema

    table = whole_partition(batches)
    if table is None or table.num_rows == 0:
        return
    for name in nanos:
        index = table.schema.get_field_index(name)
        table = table.set_column(index, name, table.column(name).cast(pa.timestamp("ns", "UTC")))
    raw = table.to_pandas().sort_values(SOURCE_ROW).set_index(SOURCE_ROW)
    log, quarantine, _ = validate_rows(raw, mapping, source)
    arrow_schema = to_arrow_schema(schema, timezone="UTC")
    if log is not None:
        events = log_to_frame(log)
        events[TIMESTAMP] = log.times
        yield from to_arrow(_text_attributes(events, arrow_schema), arrow_schema).to_batches()
    if len(quarantine):
        rejects = quarantine[[SOURCE_ROW, REASON, DETAIL]].copy()
        for column in dict.fromkeys(mapping.values()):
            values = quarantine[column]
            rejects[f"{RAW}{column}"] = values.astype("string").where(values.notna(), None)
        yield from to_arrow(rejects, arrow_schema).to_batches()


def _text_attributes(events: pd.DataFrame, schema: pa.Schema) -> pd.DataFrame:
    """Attributes the schema holds as text, as text even where a partition's values all read as
    numbers (the local loader then makes numbers of the whole column: see README)."""
    for target in schema:
        if target.name in events.columns and pa.types.is_string(target.type):
            column = events[target.name]
            if not isinstance(column.dtype, pd.CategoricalDtype) and column.dtype.kind == "f":
                events[target.name] = column.map(_number_text)
    return events


def _number_text(value: float) -> str | None:
    """A number as its shortest text: 5.0 as '5', 0.1 as '0.1'."""
    if pd.isna(value):
        return None
    return str(int(value)) if float(value).is_integer() else repr(float(value))
