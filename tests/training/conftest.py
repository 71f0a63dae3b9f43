"""Fixtures of the training tests that talk to a real MLflow store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from journeyguard.features.eventlog.frames import log_from_frame
from journeyguard.features.eventlog.log import Snapshots
from journeyguard.features.sources.simulate import simulate
from journeyguard.features.transformer import PathFeatures
from journeyguard.training import registry
from journeyguard.training.models import JourneyModel, train_lightgbm, training_slices
from tests.workspace import empty_store

TASK = "churn"


@pytest.fixture
def uri(template_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh store for one test: a copy of the session's template database."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return empty_store(template_store, tmp_path / "mlruns")


@pytest.fixture(scope="module")
def trained() -> tuple[JourneyModel, pd.DataFrame]:
    """A small real model: simulated journeys, path features, LightGBM with calibration."""
    sim = simulate(1500, seed=3)
    snapshots = Snapshots.at(log_from_frame(sim.events), pd.Timestamp("2025-09-01", tz="UTC"))
    transformer = PathFeatures().fit(snapshots)
    features = transformer.transform(snapshots)
    noise = np.random.default_rng(0).random(len(features)) < 0.15
    y = ((features["count__refund_denied"] > 0).to_numpy() ^ noise).astype(int)
    slices = training_slices(np.arange(len(features)))  # every row its own as_of
    model = train_lightgbm(TASK, transformer, features, y, slices, seed=0)
    return model, features


def log_version(
    model: JourneyModel, features: pd.DataFrame, uri: str, score: float = 0.8, **kwargs
):
    """Logs `model` as a new version of its task's model, with a test score of `score`."""
    return registry.log_model(
        model,
        uri=uri,
        params={"seed": 0, "rows": len(features)},
        metrics={"test_roc_auc": score, "baseline_test_roc_auc": score - 0.05},
        tags={"dataset_fingerprint": "0123456789abcdef"},
        artifacts=kwargs.get("artifacts", {}),
        input_example=features.head(20),
    )
