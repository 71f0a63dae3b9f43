"""Shared fixtures: paths to the real logs beside the checkout, and the PostgreSQL URL."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# Before any test imports MLflow or BentoML: they start telemetry when imported.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")

# Property tests draw the same examples on every run (deterministic CI); to search afresh,
# run with HYPOTHESIS_PROFILE=explore.
settings.register_profile("deterministic", derandomize=True)
settings.register_profile("explore", derandomize=False, max_examples=1_000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
CONFIGS = REPO / "configs"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real public logs; tests that need it skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the real logs are not at {SHARED_DATA} (see its README)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = os.environ.get("JOURNEYGUARD_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("JOURNEYGUARD_TEST_POSTGRES_URL is not set (.ci/run sets it)")
    return url
