"""One population for every consumer: for the same log and `as_of`, the training dataset, batch
scoring, the service's answers, the monitor and the outreach cycle see the same journeys."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from journeyguard.features.config.reader import load_config
from journeyguard.features.dataset import build_dataset
from journeyguard.features.eventlog.log import Snapshots
from journeyguard.features.labels import task_snapshots
from journeyguard.features.population import eligibility
from journeyguard.outreach.cycle import score_tasks
from journeyguard.serving.champions import Champion
from journeyguard.serving.predict import predict
from journeyguard.training import registry
from journeyguard.training.monitor import monitor
from journeyguard.training.score import score_log
from tests.workspace import TrainedWorkspace

POPULATIONS = """
[tasks.churn]
label = "absent"
match = {{ event = ["repeat_purchase"] }}
horizon = "60d"
snapshots = {{ every = "28d" }}
population = {{ active_within = "45d" }}

[tasks.escalation]
label = "occurs"
match = {{ event = ["escalated"] }}
horizon = "14d"
snapshots = {{ every = "7d" }}
population = {{ open_case = true }}

[kpis]
resolution = {{ start = ["ticket_opened", "ticket_reopened"], end = ["ticket_resolved"] }}

[outreach]
[outreach.actions.discount]
task = "churn"
min_risk = 0.0
[outreach.actions.follow_up]
task = "escalation"
min_risk = 0.0
"""


@pytest.fixture(scope="module")
def settings(trained_workspace: TrainedWorkspace, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("populations")
    config = folder / "populations.toml"
    config.write_text(
        f"[source]\npath = '{trained_workspace.events}'\n[output]\ndir = '{folder / 'out'}'\n"
        + POPULATIONS.format()
    )
    return load_config(config)


@pytest.fixture(scope="module")
def champions(trained_workspace: TrainedWorkspace) -> dict[str, Champion]:
    found = {}
    for task in ("churn", "escalation"):
        loaded = registry.load_model(task, "champion", uri=trained_workspace.tracking_uri)
        assert loaded is not None
        found[task] = Champion(task, loaded[0], loaded[1].version)
    return found


def grid_times(settings, task: str) -> list[int]:
    """Snapshot times of the task's calendar whose horizon closes within the log."""
    log_times = task_snapshots(settings_log(settings), settings.task(task)).as_of
    end = settings_log(settings).last_time - pd.Timedelta(settings.task(task).horizon).value
    times = np.unique(log_times[log_times <= end])
    return times[:: max(len(times) // 3, 1)][:3].tolist()


_LOGS: dict[Path, object] = {}


def settings_log(settings):
    from journeyguard.features.sources.log import load_log

    if settings.path not in _LOGS:
        _LOGS[settings.path] = load_log(settings)
    return _LOGS[settings.path]


@pytest.mark.parametrize("task", ["churn", "escalation"])
def test_every_consumer_sees_the_same_population(
    settings, champions, trained_workspace: TrainedWorkspace, task, monkeypatch
):
    log = settings_log(settings)
    config = settings.task(task)
    model = champions[task].model
    tracking_uri = trained_workspace.tracking_uri
    dataset = build_dataset(log, config)
    checked, left_out = 0, 0
    for as_of_ns in grid_times(settings, task):
        as_of = pd.Timestamp(as_of_ns, tz="UTC")
        everyone = Snapshots.at(log, as_of)
        expected = set(everyone.customer_ids[eligibility(everyone, config).eligible].astype(str))
        # The dataset: its rows at this grid time (an `absent` task excludes none that were
        # eligible; an `occurs` task drops those whose outcome already happened).
        rows = dataset.frame[dataset.frame["as_of"] == as_of]
        in_dataset = set(rows["customer_id"])
        if config.label == "absent":
            assert in_dataset == expected
        else:
            assert in_dataset <= expected
        # Batch scoring, as `journeyguard score` and the risk list.
        scored = score_log(log, model, as_of, config)
        assert set(scored["customer_id"]) == expected
        # The service: every journey asked about, eligible exactly for those.
        ids = everyone.customer_ids.tolist()
        answers = predict(everyone, ids, {task: champions[task]}, settings.tasks)
        service = {a["customer_id"] for a in answers if a["risks"][task]["eligible"]}
        assert service == expected
        assert all(
            a["risks"][task]["risk"] is None and a["risks"][task]["reason"]
            for a in answers
            if not a["risks"][task]["eligible"]
        )
        # The monitor scores the same journeys for drift.
        assert model.info.get("reference") is not None
        result = monitor(model, log, as_of, config, settings.monitoring)
        assert result["rows"] == len(expected)
        # The outreach cycle scores the same journeys.
        with monkeypatch.context() as patch:
            patch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
            outreach = score_tasks(settings, log, as_of)
        assert set(outreach.loc[outreach["task"] == task, "customer_id"]) == expected
        checked += len(expected)
        left_out += len(everyone) - len(expected)
    assert checked > 0 and left_out > 0  # a population that keeps some and leaves some
