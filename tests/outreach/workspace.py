"""The outreach tests' workspace: the session's simulated log (and a copy of its trained store)
under a config with an outreach campaign; the `workspace` and `untrained` fixtures
(tests/outreach/conftest.py) make one per module."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.workspace import SOURCE_ATTRIBUTES, TASKS, SimulatedLog, TrainedWorkspace

BUDGET_COUNT, BUDGET_MONEY, DISCOUNT_COST = 30, 200.0, 10.0
ACTIONS = f"""
[outreach.actions.discount]
task = "churn"
min_risk = 0.6
min_value = 100.0
cost = {DISCOUNT_COST}
blocked_by_open_case = true
priority = 2
message = {{ offer = "10% off your next order" }}

[outreach.actions.follow_up]
task = "escalation"
min_risk = 0.05
requires_open_case = true
priority = 1
"""
CONFIG = (
    """
[source]
path = '{events}'

"""
    + SOURCE_ATTRIBUTES
    + """
[output]
dir = '{output}'
"""
    + TASKS
    + """
[tasks.refund]
label = "occurs"
match = {{ event = ["refund_requested"] }}
horizon = "14d"
snapshots = {{ prefix = 8 }}

[outreach]
campaign = "retention"
holdout = 0.25
cooldown = "14d"
window = "1d"
schedule = "0 6 * * *"
misfire_grace = "2h"
budget = {{ count = {count}, money = {money} }}
{extra}
{actions}
"""
)


@dataclass(frozen=True)
class Workspace:
    """The shared simulated log and, unless `tracking_uri` is empty, a copy of the MLflow store
    holding the champions of churn and escalation (the config's third task, refund, has none)."""

    folder: Path
    events: Path
    tracking_uri: str

    def config(self, output: Path, extra: str = "", actions: str = ACTIONS) -> Path:
        """A config over the shared log and store whose outputs go to `output`."""
        output.mkdir(parents=True, exist_ok=True)
        path = output / "jg.toml"
        text = CONFIG.format(
            events=self.events,
            output=output,
            count=BUDGET_COUNT,
            money=BUDGET_MONEY,
            extra=extra,
            actions=actions,
        )
        path.write_text(text)
        return path


def trained_outreach(trained: TrainedWorkspace, factory: pytest.TempPathFactory) -> Workspace:
    """The session's trained workspace with a copy of its store (nothing here changes it)."""
    folder = factory.mktemp("outreach")
    return Workspace(folder, trained.events, trained.copy_store(folder / "mlruns"))


def untrained_outreach(simulated: SimulatedLog, factory: pytest.TempPathFactory) -> Workspace:
    """The session's simulated log without a store: for tests that score nothing."""
    return Workspace(factory.mktemp("outreach-log"), simulated.events, "")
