"""The three public logs load through their example configs; every quarantined row is explained.

The expectations are computed here from the raw files with plain pandas, independently of the
loader: what is quarantined must be exactly the rows that repeat an earlier row exactly.
"""

from __future__ import annotations

import pandas as pd
import pytest

from journeyguard.features.config.reader import load_config
from journeyguard.features.eventlog.frames import log_to_frame
from journeyguard.features.sources.load import load_events

from ..conftest import CONFIGS

pytestmark = pytest.mark.realdata


def test_helpdesk(shared_data):
    result = load_events(load_config(CONFIGS / "helpdesk.toml").source)
    raw = pd.read_csv(shared_data / "helpdesk" / "finale.csv", dtype=str)
    key = ["Case ID", "Activity", "Resource", "Complete Timestamp"]
    assert result.summary.rows_read == len(raw) == 21_348
    assert result.summary.journeys == raw["Case ID"].nunique() == 4_580
    assert result.summary.event_types == 14
    assert result.summary.quarantined == {"duplicate row": int(raw.duplicated(key).sum())}
    assert result.summary.rows_loaded == len(raw) - int(raw.duplicated(key).sum())
    # Rome is UTC+1 in winter: the first event of Case 1, 2012/10/09 14:50:17 local, is 12:50 UTC.
    first = log_to_frame(result.log)[log_to_frame(result.log)["customer_id"] == "Case 1"][
        "timestamp"
    ].iloc[0]
    assert first == pd.Timestamp("2012-10-09T12:50:17Z")


def test_bpic2014(shared_data):
    result = load_events(load_config(CONFIGS / "bpic2014.toml").source)
    assert (result.summary.rows_read, result.summary.journeys) == (39_911, 4_000)
    assert result.summary.event_types == 36 and result.summary.quarantined == {}
    events = log_to_frame(result.log)
    assert events["priority"].notna().all()  # joined from the case attributes file
    assert pd.api.types.is_numeric_dtype(events["priority"])


def test_cdnow(shared_data):
    result = load_events(load_config(CONFIGS / "cdnow.toml").source)
    raw = pd.read_csv(shared_data / "cdnow" / "CDNOW_master.txt", sep=r"\s+", dtype=str)
    duplicates = int(raw.duplicated().sum())
    assert (result.summary.rows_read, result.summary.journeys) == (69_659, 23_570)
    assert result.summary.quarantined == {"duplicate row": duplicates}
    assert log_to_frame(result.log)["timestamp"].max() == pd.Timestamp("1998-06-30T00:00:00Z")
