"""One Spark session from `[engine]`: Arrow on (never its slow fallback), the UI quiet, UTC."""

from __future__ import annotations

import os
import sys
import warnings
from typing import TYPE_CHECKING

from journeyguard.features.config.model import EngineConfig
from journeyguard.features.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# Settings every run needs; `[engine] conf` adds to them and may override them.
BASE_CONF = {
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # Without Arrow, None turns into the string 'nan' under pandas 3: fail instead.
    "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
    "spark.sql.session.timeZone": "UTC",
    # Parquet written with nanosecond times (ours are) reads as int64 ns instead of failing.
    "spark.sql.legacy.parquet.nanosAsLong": "true",
    "spark.ui.showConsoleProgress": "false",
    "spark.ui.enabled": "false",
}


def spark_session(engine: EngineConfig, app_name: str = "journeyguard") -> SparkSession:
    """The session of `engine.master` (a new one, or the process's running one)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError(
            "[engine] kind = 'spark' needs PySpark: pip install 'journeyguard[spark]' (and Java 17)"
        ) from None
    # PySpark 4 warns on every conversion under pandas 3; ours are Arrow tables end to end.
    warnings.filterwarnings(
        "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
    )
    # Workers start `python3` from PATH otherwise, which may lack this package.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.master(engine.master).appName(app_name)
    # Shuffles (the journey repartition, counts) in as many parts as the log's partitions,
    # not Spark's default 200 tasks of a few rows each.
    sized = {"spark.sql.shuffle.partitions": str(engine.partitions)}
    for key, value in (BASE_CONF | sized | dict(engine.conf)).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session
