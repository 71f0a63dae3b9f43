"""Monitoring: PSI and profiles by hand, step changes, calibration by band, and on the simulator
a doubled share of late deliveries is flagged while an unchanged log is not (for a churn
champion of its own: see `champion`); the CLI end to end on a copy of the session's trained
MLflow store (tests/workspace.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from journeyguard.features.config.model import Match, MonitoringConfig, SnapshotRule, TaskConfig
from journeyguard.features.eventlog.frames import log_from_frame
from journeyguard.features.eventlog.log import EventLog
from journeyguard.features.sources.simulate import P_DELAY, simulate
from journeyguard.training.monitor import (
    auc_upper_bound,
    bin_shares,
    breaches,
    calibration_by_band,
    gauge_values,
    monitor,
    profile,
    psi,
    psi_noise,
    step_changes,
)
from journeyguard.training.train import train_task
from tests.workspace import SOURCE_ATTRIBUTES, TASKS, TrainedWorkspace, empty_store

DAY = pd.Timedelta(days=1)
CHURN = TaskConfig(
    "churn", "absent", Match(events=("repeat_purchase",)), 60 * DAY, SnapshotRule(every=14 * DAY)
)
LATE = ("count__delivery_delayed", "rate__delivery_delayed", "days_since__delivery_delayed")
N = 3_000


def test_psi_of_identical_shares_is_zero_and_of_a_known_shift_is_known():
    shares = np.array([0.1, 0.2, 0.3, 0.4])
    assert psi(shares, shares) == pytest.approx(0.0, abs=1e-12)
    # (0.25 - 0.5) ln(0.5) + (0.75 - 0.5) ln(1.5) = 0.25 ln 3
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.25 * math.log(3))
    assert math.isfinite(psi([1.0, 0.0], [0.0, 1.0]))  # an emptied bin: large, not infinite
    with pytest.raises(ValueError, match="same bins"):
        psi([0.5, 0.5], [1.0])


def test_profile_bins_by_quantiles_with_missing_and_constant_values():
    values = np.array([1.0, 2.0, 3.0, 4.0, np.nan])
    found = profile(values, bins=2)
    assert found["edges"] == [2.5]
    assert found["shares"] == pytest.approx([0.4, 0.4, 0.2])  # <= 2.5, > 2.5, missing
    constant = profile(np.full(10, 7.0), bins=10)
    assert constant["edges"] == [7.0] and constant["shares"] == [1.0, 0.0, 0.0]
    assert bin_shares([7.0, 8.0], constant["edges"]).tolist() == [0.5, 0.5, 0.0]
    assert profile(np.full(3, np.nan), bins=4) == {"edges": [], "shares": [0.0, 1.0]}
    codes = profile(np.array([0, 0, 2, 5.0]), bins=2, categorical=True)
    assert codes["edges"] == [0.0, 2.0, 5.0] and codes["shares"] == [0.5, 0.25, 0.25, 0, 0]


def test_new_and_vanished_steps_ignore_the_outcome_and_later_events():
    log = log_from_frame(
        pd.DataFrame(
            {
                "customer_id": ["a", "a", "b", "b"],
                "timestamp": pd.to_datetime(
                    ["2025-01-01", "2025-01-02", "2025-01-01", "2025-02-01"], utc=True
                ),
                "event": ["order", "refund_v2", "escalated", "late_step"],
            }
        )
    )
    as_of = pd.Timestamp("2025-01-15", tz="UTC")
    found = step_changes(log, as_of, ("order", "refund"), outcome=("escalated",))
    assert found == {"new": ["refund_v2"], "vanished": ["refund"]}


def _with_auc(realised: float, expected: float, positives: int, negatives: int) -> dict:
    """A monitor result whose only finding could be the realised ROC AUC."""
    outcomes = {
        "roc_auc": realised,
        "test_roc_auc": expected,
        "roc_auc_high": auc_upper_bound(realised, positives, negatives),
        "by_band": [],
    }
    return {"feature_psi": {}, "score_psi": 0.0, "outcomes": outcomes}


def test_the_psi_of_two_samples_of_one_population_rarely_passes_its_noise():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=5_000)
    edges = profile(reference, bins=10)["edges"]
    shares = bin_shares(reference, edges).tolist()
    for rows in (40, 400):  # the escalation demo's dozens of open cases, and more
        noise = psi_noise(shares, rows, rows, np.random.default_rng(1))
        pairs = [(rng.normal(size=rows), rng.normal(size=rows)) for _ in range(2_000)]
        values = np.array([psi(bin_shares(a, edges), bin_shares(b, edges)) for a, b in pairs])
        assert np.mean(values > noise) < 0.005
        if rows == 40:  # where a fixed bar flags nearly every unchanged sample
            assert np.mean(values > 0.25) > 0.8 and noise > 1.0
    # A shift of 0.6 standard deviations passes the threshold, far above the noise of thousands.
    shifted = bin_shares(rng.normal(0.6, size=3_000), edges)
    noise = psi_noise(shares, 3_000, 5_000, np.random.default_rng(1))
    assert psi(shares, shifted) > 0.25 > noise


def test_two_of_a_few_dozen_rows_in_a_bin_the_reference_left_empty_are_noise():
    edges = [0.0]  # a count the reference never saw above 0
    shares = bin_shares(np.zeros(47), edges).tolist()
    noise = psi_noise(shares, 45, 47, np.random.default_rng(0))
    two = psi(shares, bin_shares(np.r_[np.zeros(43), 1.0, 1.0], edges))
    ten = psi(shares, bin_shares(np.r_[np.zeros(35), np.ones(10)], edges))
    assert two > 0.25 and two < noise < ten  # past the threshold, within the noise


def test_a_psi_within_its_noise_is_no_breach():
    thresholds = MonitoringConfig()
    result = {"feature_psi": {"recency_days": 0.6}, "score_psi": 0.3, "outcomes": {"by_band": []}}
    few = result | {"psi_noise": {"recency_days": 1.3, "risk_score": 1.3}}
    assert breaches(few, thresholds) == []
    many = result | {"psi_noise": {"recency_days": 0.01, "risk_score": 0.01}}
    assert [b["name"] for b in breaches(many, thresholds)] == ["recency_days", "risk_score"]


def test_an_auc_drop_is_a_breach_only_beyond_what_the_outcomes_can_say():
    thresholds = MonitoringConfig()
    # 5 escalations among 53 journeys: 0.59 against 0.72 is within the noise.
    assert auc_upper_bound(0.59, 5, 48) > 0.72
    assert breaches(_with_auc(0.59, 0.72, 5, 48), thresholds) == []
    # The same drop on 500 outcomes is a breach; a drop below the threshold never is.
    assert [b["check"] for b in breaches(_with_auc(0.59, 0.72, 500, 4_500), thresholds)] == [
        "auc_drop"
    ]
    assert breaches(_with_auc(0.69, 0.72, 500, 4_500), thresholds) == []
    assert auc_upper_bound(None, 0, 10) is None


def test_calibration_by_band_on_a_tiny_case():
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    risk = np.array([0.9, 0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1])
    band = np.array(["high"] * 4 + ["low"] * 4)
    rows = {row["band"]: row for row in calibration_by_band(y, risk, band, max_gap=0.05)}
    assert set(rows) == {"high", "low"}  # no medium row: the band is empty
    assert rows["high"]["realised"] == 1.0 and rows["high"]["gap"] == pytest.approx(0.1)
    assert rows["high"]["rows"] == 4 and not rows["high"]["breach"]  # 4 rows: within noise
    assert rows["low"]["gap"] == pytest.approx(-0.1) and not rows["low"]["breach"]

    many = np.repeat(y, 100), np.repeat(risk - 0.3 * (risk > 0.5), 100), np.repeat(band, 100)
    high = calibration_by_band(*many, max_gap=0.05)[0]
    assert high["band"] == "high" and high["predicted"] == pytest.approx(0.6)
    assert high["gap"] == pytest.approx(0.4) and high["breach"]


@pytest.fixture(scope="module")
def champion():
    """A churn champion of this module's own (about 8 s): the checks below need a model this
    well calibrated (seed 1, snapshots every 14 days). The session's shared churn champion
    (seed 4, every 28 days) breaches the 0.05 calibration gap on an unchanged log."""
    log = log_from_frame(simulate(N, seed=1).events)
    return train_task(log, CHURN, seed=0, reference_bins=10).model


def _monitor(model, log: EventLog) -> dict:
    return monitor(model, log, pd.Timestamp(log.last_time, tz="UTC"), CHURN, MonitoringConfig())


@pytest.mark.slow
def test_twice_the_late_deliveries_is_flagged_by_a_late_delivery_feature(champion):
    late = log_from_frame(simulate(N, seed=3, late_share=2 * P_DELAY).events)
    result = _monitor(champion, late)
    assert result["breach"]
    top = [row["feature"] for row in result["top_features"][:3]]
    assert set(top) & set(LATE), top
    flagged = {b["name"] for b in result["breaches"] if b["check"] == "feature_psi"}
    assert flagged & set(LATE), result["breaches"]
    json.dumps(result)  # the result file is plain JSON


@pytest.mark.slow
def test_an_unchanged_log_is_not_flagged(champion):
    result = _monitor(champion, log_from_frame(simulate(N, seed=2).events))
    assert not result["breach"], result["breaches"]
    assert result["max_feature_psi"] < 0.1 and result["score_psi"] < 0.1
    assert result["steps"] == {"new": [], "vanished": []}
    outcomes = result["outcomes"]
    assert outcomes["rows"] > 1_000 and {r["band"] for r in outcomes["by_band"]} <= {
        "high",
        "medium",
        "low",
    }
    assert outcomes["roc_auc"] > 0.7 and outcomes["test_roc_auc"] > 0.7
    assert pd.Timestamp(outcomes["as_of"]) == pd.Timestamp(result["as_of"]) - CHURN.horizon
    assert set(gauge_values(result)) >= {"risk_score", result["top_features"][0]["feature"]}


@pytest.mark.slow
def test_outcomes_never_look_past_as_of(champion):
    """Monitoring at an earlier as_of of a longer log gives what the log cut at as_of gives."""
    log = log_from_frame(simulate(N, seed=2).events)
    as_of = pd.Timestamp(log.last_time, tz="UTC") - 30 * DAY
    full = monitor(champion, log, as_of, CHURN, MonitoringConfig())
    cut = monitor(champion, log.until(as_of), as_of, CHURN, MonitoringConfig())
    assert full["outcomes"] == cut["outcomes"] and full["feature_psi"] == cut["feature_psi"]


@pytest.mark.slow
def test_a_champion_without_a_reference_is_told_to_retrain(champion):
    from dataclasses import replace

    old = replace(champion, info={k: v for k, v in champion.info.items() if k != "reference"})
    log = log_from_frame(simulate(300, seed=2).events)
    with pytest.raises(ValueError, match=r"no reference profile.*retrain"):
        _monitor(old, log)


CONFIG = (
    """
[source]
path = '{events}'

"""
    + SOURCE_ATTRIBUTES
    + """
[output]
dir = "out"
"""
    + TASKS
    + """
[monitoring]
feature_psi = 0.25
"""
)


def test_cli_writes_the_result_and_logs_metrics_to_the_champion_run(
    trained_workspace: TrainedWorkspace, template_store: Path, tmp_path, monkeypatch
):
    from journeyguard.features.cli import app
    from journeyguard.training import registry

    runner = CliRunner()
    (tmp_path / "jg.toml").write_text(CONFIG.format(events=trained_workspace.events))
    config = ["--config", str(tmp_path / "jg.toml"), "--task", "churn"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", empty_store(template_store, tmp_path / "empty"))
    before = runner.invoke(app, ["monitor", *config])
    assert before.exit_code == 2 and "no champion model" in before.output
    # The session's champion (it logs to its run: a copy of the store).
    uri = trained_workspace.copy_store(tmp_path / "mlruns")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    champion = registry.champion_versions(uri)["churn"]["champion"]

    result = runner.invoke(app, ["monitor", *config, "--json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout[result.stdout.index("{") :])
    assert (found["run_id"], found["model_version"]) == (champion["run_id"], champion["version"])
    path = Path(found["path"])
    assert path == tmp_path / "out" / "monitor-churn.json"
    assert json.loads(path.read_text())["score_psi"] == found["score_psi"]
    assert {"breach", "breaches", "top_features", "steps", "outcomes"} <= set(found)

    text = runner.invoke(app, ["monitor", *config, "--as-of", "2025-11-01"])
    assert text.exit_code == 0, text.output
    assert "risk score PSI" in text.output and "features that moved most" in text.output

    client = registry._reader(uri)
    history = client.get_metric_history(found["run_id"], "monitor_score_psi")
    assert len(history) == 2 and history[0].value == pytest.approx(found["score_psi"])
    metrics = client.get_run(found["run_id"]).data.metrics
    assert {"monitor_max_feature_psi", "monitor_breach", "monitor_realised_roc_auc"} <= set(metrics)
