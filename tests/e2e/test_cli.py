"""The command line end to end on a small simulated log, in a temporary folder."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from journeyguard.features.cli import app

runner = CliRunner()

CONFIG = """
[source]
path = "events.parquet"

[source.attributes]
columns = ["segment", "country"]

[output]
dir = "out"

[tasks.churn]
label = "absent"
match = {{ event = ["repeat_purchase"] }}
horizon = "60d"
snapshots = {{ every = "{every}" }}

[tasks.escalation]
label = "occurs"
match = {{ event = ["escalated"] }}
horizon = "14d"
snapshots = {{ prefix = 6 }}
"""


def run(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    (folder / "jg.toml").write_text(CONFIG.format(every="28d"))
    run("simulate", "--customers", "1500", "--seed", "2", "--out", str(folder / "events.parquet"))
    return folder


def test_validate_prints_the_summary(workdir):
    output = run("validate", "--config", str(workdir / "jg.toml"), "--json")
    summary = json.loads(output)
    assert summary["journeys"] == 1500 and summary["quarantined"] == {}
    assert Path(summary["quarantine_file"]).is_file()


def test_analyze_writes_json_csv_and_report(workdir):
    out = workdir / "analysis"
    output = run(
        "analyze", "--config", str(workdir / "jg.toml"), "--task", "churn", "--out", str(out)
    )
    assert "critical steps for churn" in output
    analysis = json.loads((out / "analysis.json").read_text())
    assert analysis["critical"]["task"] == "churn" and analysis["critical"]["steps"]
    variants = pd.read_csv(out / "variants.csv")
    assert variants["journeys"].sum() == 1500 == analysis["meta"]["journeys"]
    assert len(variants) == analysis["meta"]["variants"]
    page = (out / "report.html").read_text()
    assert "<svg" in page and "http://" not in page and "https://" not in page


def test_analyze_rejects_an_as_of_with_no_known_outcome(workdir):
    result = runner.invoke(
        app,
        [
            "analyze",
            "--config",
            str(workdir / "jg.toml"),
            "--task",
            "churn",
            "--as-of",
            "2030-01-01",
            "--out",
            str(workdir / "later"),
        ],
    )
    assert result.exit_code == 2
    assert "censored" in result.output and "try an earlier --as-of" in result.output


def test_features_one_row_per_active_journey(workdir):
    out = workdir / "features.parquet"
    run(
        "features", "--config", str(workdir / "jg.toml"), "--as-of", "2025-06-01", "--out", str(out)
    )
    table = pd.read_parquet(out)
    assert table["customer_id"].is_unique and "count__order_placed" in table
    events = pd.read_parquet(workdir / "events.parquet")
    active = events.loc[
        events["timestamp"] <= pd.Timestamp("2025-06-01", tz="UTC"), "customer_id"
    ].nunique()
    assert len(table) == active


def test_ingest_stores_a_csv_export_and_commands_read_it(workdir):
    """The simulated log as a CSV export: ingested once, appended to, then read by features."""
    events = pd.read_parquet(workdir / "events.parquet").sample(frac=1.0, random_state=0)
    csv = workdir / "export.csv"
    events.iloc[:-50].to_csv(csv, index=False)
    config = workdir / "export.toml"
    config.write_text(
        f'[source]\npath = "{csv}"\n[source.attributes]\ncolumns = ["segment", "country"]\n'
        f'[output]\ndir = "{workdir / "export-out"}"\n'
    )
    first = json.loads(run("ingest", "--config", str(config), "--json"))
    assert first["action"] == "ingested" and first["events"] == len(events) - 50
    events.iloc[-50:].to_csv(csv, mode="a", header=False, index=False)
    second = json.loads(run("ingest", "--config", str(config), "--json"))
    assert (second["action"], second["rows_read"], second["events"]) == (
        "appended",
        50,
        len(events),
    )
    out = workdir / "export-features.parquet"
    result = runner.invoke(
        app, ["features", "--config", str(config), "--as-of", "2025-06-01", "--out", str(out)]
    )
    assert result.exit_code == 0 and "the ingested store" in result.stderr
    canonical = workdir / "features.parquet"
    if canonical.exists():  # written by the test before, from the canonical file
        pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(canonical))


def test_dataset_has_labels_and_a_clean_time_split(workdir):
    out = workdir / "dataset.parquet"
    run("dataset", "--config", str(workdir / "jg.toml"), "--task", "churn", "--out", str(out))
    data = pd.read_parquet(out)
    assert set(data["split"]) == {"train", "gap", "test"}
    test_from = data.loc[data["split"] == "test", "as_of"].min()
    train_closes = data.loc[data["split"] == "train", "as_of"].max() + pd.Timedelta(days=60)
    assert train_closes < test_from
    assert set(data["y"]) == {0, 1}


def test_unknown_task_and_bad_config_exit_2_with_a_message(workdir):
    result = runner.invoke(
        app,
        [
            "dataset",
            "--config",
            str(workdir / "jg.toml"),
            "--task",
            "chrun",
            "--out",
            str(workdir / "x.parquet"),
        ],
    )
    assert result.exit_code == 2 and "did you mean 'churn'" in result.output
    bad = workdir / "bad.toml"
    bad.write_text('[source]\npaht = "x"\n')
    result = runner.invoke(app, ["validate", "--config", str(bad)])
    assert result.exit_code == 2 and "did you mean 'path'" in result.output


@pytest.mark.slow
def test_demo_runs_every_stage(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    (tmp_path / "jg.toml").write_text(CONFIG.format(every="28d"))
    output = run("demo", "--config", str(tmp_path / "jg.toml"), "--customers", "600")
    assert "== validate" in output and "== analyze --task churn" in output
    assert (tmp_path / "out" / "analysis" / "escalation" / "report.html").is_file()
    assert "== train" in output and "promoted to champion" in output
    risk = pd.read_parquet(tmp_path / "out" / "risk-churn.parquet")
    assert len(risk) > 0 and risk["reason_1"].notna().any()
    # The last stage: the pipeline over the last simulated week, every run recorded.
    assert "== schedule" in output and "one simulated week" in output
    from journeyguard.outreach.outbox import open_outbox
    from journeyguard.outreach.runs import runs_frame

    runs = runs_frame(open_outbox(f"sqlite:///{tmp_path / 'out' / 'outreach.db'}"))
    assert (runs["job"] == "score").sum() == 7 and set(runs["outcome"]) <= {"ok", "skipped"}
    # The log arrives as a daily export: ingested into the store once, then a day appended
    # each morning, whose new events are exactly the day's exported rows.
    ingests = runs.loc[runs["job"] == "ingest", "counts"].tolist()
    assert [c["action"] for c in ingests] == ["ingested"] + ["appended"] * 6
    assert all(c["new_events"] == c["exported"] for c in ingests[1:])
    assert "log: the ingested store" in output
    assert (runs.loc[runs["job"] == "outreach", "outcome"] == "skipped").all()  # no actions
