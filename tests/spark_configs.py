"""A config of the shared simulated log for the Spark engine's tests."""

from __future__ import annotations

from pathlib import Path

from journeyguard.features.config.model import Config
from journeyguard.features.config.reader import load_config
from tests.workspace import SOURCE_ATTRIBUTES, TASKS

SPARK_CONFIG = f"""
[source]
path = '{{events}}'

{SOURCE_ATTRIBUTES}
[output]
dir = '{{output}}'

[engine]
kind = "spark"
partitions = 3
{TASKS}
[tasks.churn.population]
active_within = "90d"
"""


def spark_config(events: Path, folder: Path) -> Config:
    """The shared log's tasks, read by Spark in 3 journey partitions, outputs in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "spark.toml"
    path.write_text(SPARK_CONFIG.format(events=events, output=folder / "out"))
    return load_config(path)
