"""The champion store every worker of the service keeps."""

from __future__ import annotations

from journeyguard.serving.champions import ChampionStore
from tests.serving.conftest import Workspace
from tests.workspace import TRAINED_TASKS


def test_watching_loads_the_champions_before_it_returns(workspace: Workspace):
    """A worker takes requests once the service's __init__ (which starts watching) returns,
    and readiness is asked of any one worker: a worker still loading answered 503 while
    another said ready (seen in CI on /predict right after /readyz said 200)."""
    store = ChampionStore(TRAINED_TASKS, workspace.tracking_uri, str(workspace.config))
    try:
        store.watch(every_seconds=3600)
        assert store.ready, store.reason
        assert set(store.current()) == set(TRAINED_TASKS)
    finally:
        store.stop()
