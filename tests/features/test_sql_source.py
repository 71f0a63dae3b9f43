"""The same log read from a CSV file, from SQLite and from PostgreSQL."""

from __future__ import annotations

import uuid

import pandas as pd
import pytest
import sqlalchemy

from journeyguard.features.config.model import SourceConfig
from journeyguard.features.errors import LoadError
from journeyguard.features.eventlog.frames import log_to_frame
from journeyguard.features.sources.load import load_events

ROWS = pd.DataFrame(
    {
        "cust": ["b", "a", "a", "a", ""],
        "ts": [
            "2024-01-02T00:00:00Z",
            "2024-01-01T00:00:00Z",
            "2024-01-01T05:00:00+02:00",
            "2024-01-01T00:00:00Z",
            "2024-01-03T00:00:00Z",
        ],
        "step": ["order", "order", "ticket", "order", "order"],
        "amount": [10.0, 5.0, None, 5.0, 1.0],
    }
)
COLUMNS = {"customer_id": "cust", "timestamp": "ts", "event": "step", "value": "amount"}


def load_from(url: str, table: str):
    engine = sqlalchemy.create_engine(url)
    try:
        ROWS.to_sql(table, engine, index=False)
        return load_events(SourceConfig(url=url, table=table, columns=COLUMNS))
    finally:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text(f'DROP TABLE IF EXISTS "{table}"'))
        engine.dispose()


def check(result) -> None:
    events = log_to_frame(result.log)
    assert events["customer_id"].tolist() == ["a", "a", "b"]
    assert events["event"].tolist() == ["order", "ticket", "order"]
    assert result.summary.quarantined == {"duplicate row": 1, "missing customer_id": 1}


def test_sqlite_table(tmp_path):
    check(load_from(f"sqlite:///{tmp_path / 'events.db'}", "events"))


def test_sqlite_query_and_errors(tmp_path):
    url = f"sqlite:///{tmp_path / 'events.db'}"
    engine = sqlalchemy.create_engine(url)
    ROWS.to_sql("events", engine, index=False)
    engine.dispose()
    query = "SELECT * FROM events WHERE cust <> 'b';"
    result = load_events(SourceConfig(url=url, query=query, columns=COLUMNS))
    assert result.log.journey_ids.tolist() == ["a"]
    with pytest.raises(LoadError, match="no such table"):
        load_events(SourceConfig(url=url, table="nope", columns=COLUMNS))


@pytest.mark.postgres
def test_postgres_table(postgres_url):
    check(load_from(postgres_url, f"jg_events_{uuid.uuid4().hex[:8]}"))
