"""Fixtures of the outreach tests: an outbox on SQLite and on PostgreSQL, a settable clock,
a real loopback receiver, and a factory of decision frames."""

from __future__ import annotations

import base64
import datetime
import uuid
from collections.abc import Callable, Iterator

import pandas as pd
import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

from journeyguard.outreach.outbox import open_outbox
from journeyguard.outreach.policy import DECISION_COLUMNS
from journeyguard.outreach.receiver import Receiver
from tests.outreach.workspace import Workspace, trained_outreach, untrained_outreach
from tests.workspace import SimulatedLog, TrainedWorkspace

UTC = datetime.UTC
SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(bytes(range(32, 64))).decode()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def outbox_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A fresh, empty outbox database: a SQLite file, or a schema of its own on PostgreSQL
    (search_path set in the URL, so subprocesses given the URL land in it too)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'outbox.db'}"
        return
    base = make_url(request.getfixturevalue("postgres_url"))
    schema = f"outbox_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        url = base.update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture
def engine(outbox_url: str) -> Iterator[Engine]:
    engine = open_outbox(outbox_url)
    yield engine
    engine.dispose()


class Clock:
    """A clock that moves only when told. It starts at the real time, to the second, because
    the receiver refuses signatures more than five minutes away from its own clock."""

    def __init__(self) -> None:
        self.time = datetime.datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime.datetime:
        return self.time

    def advance(self, seconds: float) -> datetime.datetime:
        self.time += datetime.timedelta(seconds=seconds)
        return self.time


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(SECRET) as running:
        yield running


MakeDecisions = Callable[..., pd.DataFrame]


@pytest.fixture
def make_decisions(clock: Clock) -> MakeDecisions:
    """A factory of decision frames shaped like the policy's output."""

    def make(
        customers: list[str],
        *,
        decision: str = "contact",
        campaign: str = "retention",
        as_of: datetime.datetime | None = None,
        cost: float = 2.5,
    ) -> pd.DataFrame:
        as_of = pd.Timestamp(as_of or clock())
        window_start = as_of.floor("D")
        rows = []
        for customer in customers:
            key = f"{campaign}:{window_start.isoformat()}:{customer}"
            contact = decision == "contact"
            rows.append(
                {
                    "decision_key": key,
                    "idempotency_key": f"msg_{uuid.uuid5(uuid.NAMESPACE_URL, key).hex}"
                    if contact
                    else None,
                    "campaign": campaign,
                    "window_start": window_start,
                    "customer_id": customer,
                    "action": "call_back" if contact else None,
                    "task": "churn",
                    "risk": 0.8,
                    "decision": decision,
                    "reason": "risk 0.80 >= 0.50",
                    "cost": cost if contact else 0.0,
                    "as_of": as_of,
                    "payload": {"customer_id": customer, "action": "call_back", "risk": 0.8}
                    if contact
                    else None,
                }
            )
        return pd.DataFrame(rows, columns=DECISION_COLUMNS)

    return make


@pytest.fixture(scope="module")
def workspace(
    trained_workspace: TrainedWorkspace, tmp_path_factory: pytest.TempPathFactory
) -> Workspace:
    return trained_outreach(trained_workspace, tmp_path_factory)


@pytest.fixture(scope="module")
def untrained(simulated_log: SimulatedLog, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return untrained_outreach(simulated_log, tmp_path_factory)
