"""The drift gauges of the service: the latest `journeyguard monitor` result of each task,
exported to Prometheus and re-read whenever its file changes."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import bentoml

from journeyguard.serving.periodic import every

DRIFT_PSI = bentoml.metrics.Gauge(
    name="journeyguard_drift_psi",
    documentation="PSI against the champion's training reference of the risk score (feature="
    "'risk_score') and of the features that moved most, from the latest journeyguard monitor.",
    labelnames=["task", "model_version", "feature"],
    multiprocess_mode="mostrecent",
)
DRIFT_BREACH = bentoml.metrics.Gauge(
    name="journeyguard_drift_breach",
    documentation="1 when the latest journeyguard monitor of the task found a breach, else 0.",
    labelnames=["task"],
    multiprocess_mode="mostrecent",
)


class DriftGauges:
    """Sets the drift gauges from each task's monitor result file, again whenever a file
    changes (a new monitor run, or one for a newly promoted champion)."""

    def __init__(self, paths: dict[str, Path]) -> None:
        self.paths = paths
        self._seen: dict[str, int] = {}
        self._labels: dict[str, set[tuple[str, str]]] = {}
        self._stop = threading.Event()  # replaced by `watch`'s

    def refresh(self) -> bool:
        """Reads the files that changed since the last call; True when a gauge changed."""
        from journeyguard.training.monitor import gauge_values

        changed = False
        for task, path in self.paths.items():
            try:
                stamp = path.stat().st_mtime_ns
                if self._seen.get(task) == stamp:
                    continue
                result = json.loads(path.read_text(encoding="utf-8"))
                values = gauge_values(result)
            except (OSError, ValueError, KeyError, TypeError):  # absent, or not a result
                continue
            self._seen[task], changed = stamp, True
            version = str(result.get("model_version"))
            labels = {(version, feature) for feature in values}
            # A feature no longer among the top: NaN (labels cannot be removed across workers).
            for old_version, feature in self._labels.get(task, set()) - labels:
                DRIFT_PSI.labels(task, old_version, feature).set(math.nan)
            for feature, value in values.items():
                DRIFT_PSI.labels(task, version, feature).set(value)
            DRIFT_BREACH.labels(task).set(float(bool(result.get("breach"))))
            self._labels[task] = labels
        return changed

    def watch(self, every_seconds: float) -> None:
        """Refreshes now and then every `every_seconds` in the background."""
        self._stop = every(every_seconds, self.refresh, "drift-watch")

    def stop(self) -> None:
        self._stop.set()
