"""Shared fixtures: paths to the real logs beside the checkout, the PostgreSQL URL, and the
session's one simulated log and one trained workspace (tests/workspace.py).

A test that depends on `trained_workspace` or `template_store`, directly or through another
fixture, is marked `slow` here at collection: `-m "not slow"` never trains nor migrates a store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from tests.workspace import (
    SimulatedLog,
    TrainedWorkspace,
    build_simulated_log,
    build_trained_workspace,
)

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


# Session fixtures too slow for `-m "not slow"`: the tests needing them are marked at collection.
SLOW_FIXTURES = {
    "trained_workspace": "trains two champions (about 15 s)",
    "template_store": "migrates a new MLflow store (1-2 s)",
}


def pytest_itemcollected(item: pytest.Item) -> None:
    if not SLOW_FIXTURES.keys().isdisjoint(getattr(item, "fixturenames", ())):
        item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def simulated_log(tmp_path_factory: pytest.TempPathFactory) -> SimulatedLog:
    """The shared simulated log (3,000 customers), without any model. Read only."""
    return build_simulated_log(tmp_path_factory.mktemp("simulated"))


@pytest.fixture(scope="session")
def trained_workspace(
    simulated_log: SimulatedLog, tmp_path_factory: pytest.TempPathFactory
) -> TrainedWorkspace:
    """The shared log with the churn and escalation champions and their risk lists, trained
    once per session. Read only: copy its store (`copy_store`) to change registry state."""
    return build_trained_workspace(simulated_log, tmp_path_factory.mktemp("trained"))


@pytest.fixture(scope="session")
def template_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty MLflow SQLite database, built once (migrations take seconds): copy it
    with `tests.workspace.empty_store`."""
    from journeyguard.training import registry

    root = tmp_path_factory.mktemp("template") / "mlruns"
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        uri = registry.tracking_uri(root)
    registry.champion_versions(uri)  # opens the store: runs the migrations
    return root / "mlflow.db"


@pytest.fixture(scope="session")
def spark_session():  # type: ignore[no-untyped-def]
    """One local[2] Spark session for the test session (starting one takes seconds); skips
    where PySpark or Java is missing (`make install` brings both)."""
    import shutil

    pytest.importorskip("pyspark", reason="pip install 'journeyguard[spark]'")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("no Java for Spark: apt-get install openjdk-17-jre-headless")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from journeyguard.features.config.model import EngineConfig
    from journeyguard.features.engine.session import spark_session as start

    session = start(EngineConfig(kind="spark", master="local[2]", partitions=3))
    yield session
    session.stop()
