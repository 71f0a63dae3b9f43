"""`journeyguard uplift train` end to end on a randomised experiment read from a log file:
treatment and control events in a CSV, a real MLflow SQLite store in a temporary folder."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from journeyguard.features.cli import app
from journeyguard.features.config.reader import load_config
from journeyguard.features.sources.log import load_log
from journeyguard.outreach.gains import uplift_gains
from journeyguard.outreach.outbox import enqueue, open_outbox, outbox_url
from journeyguard.outreach.policy import (
    DECISION_COLUMNS,
    decide,
    decision_key,
    idempotency_key,
    window_start,
)
from journeyguard.training import registry
from journeyguard.training.uplift_metrics import gain_captured
from tests.training.experiment_log import CAMPAIGN, CONFIG, experiment_log
from tests.workspace import empty_store

runner = CliRunner()


@pytest.fixture
def experiment(tmp_path: Path, template_store: Path, monkeypatch) -> tuple[Path, pd.DataFrame]:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", empty_store(template_store, tmp_path / "mlruns"))
    events, truth = experiment_log(3_000, seed=3)
    events.to_csv(tmp_path / "events.csv", index=False)
    (tmp_path / "jg.toml").write_text(CONFIG)
    return tmp_path / "jg.toml", truth


def test_uplift_train_learns_who_the_email_helps_and_registers_a_champion(experiment, tmp_path):
    config, truth = experiment
    out = tmp_path / "predictions.csv"
    args = ["uplift", "train", "--config", str(config), "--experiment", "email", "--json"]
    result = runner.invoke(app, [*args, "--predictions-out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["model_name"] == "journeyguard-uplift-email" and report["promoted"]
    assert {c["name"] for c in report["candidates"]} == {
        "two_model_logistic", "two_model_lightgbm",
        "transformed_outcome_logistic", "transformed_outcome_lightgbm",
    }  # fmt: skip
    assert report["winner"] in {c["name"] for c in report["candidates"]}
    # The planted effect: +25 points for frequent buyers, none or harm for the rest.
    effect = report["average_effect"]
    assert effect["effect_low"] < effect["effect"] < effect["effect_high"]
    assert effect["effect_low"] > 0
    assert report["metrics"]["qini"] > report["metrics"]["risk_qini"]
    assert report["deciles"][0]["effect"] > report["deciles"][-1]["effect"]
    predictions = pd.read_csv(out)
    assert list(predictions.columns) == ["customer_id", "uplift", "treated", "outcome"]
    assert len(predictions) == report["rows"]["test"]
    assert set(predictions["treated"]) == {0, 1}
    planted = predictions.merge(truth, on="customer_id")
    assert gain_captured(planted["uplift"].to_numpy(), planted["planted_uplift"].to_numpy()) > 0.9
    champion = registry.uplift_champion_versions(registry.tracking_uri())["email"]["champion"]
    assert champion["version"] == 1
    assert "uplift-email" not in registry.champion_versions(registry.tracking_uri())

    again = runner.invoke(app, [*args[:-1], "--seed", "0"])
    assert again.exit_code == 0, again.output
    # Same data and seed: the same Qini on the same test rows, so the challenger ties and wins.
    assert "challenger v2" in again.stdout and "champion v1" in again.stdout
    assert "promoted to champion" in again.stdout


def test_an_action_ranks_by_the_gain_its_uplift_champion_predicts(experiment):
    config, truth = experiment
    settings = load_config(config)
    log = load_log(settings)
    scores = pd.DataFrame({"customer_id": truth["customer_id"], "task": "visit", "risk": 0.5})
    as_of = CAMPAIGN - pd.Timedelta(hours=1)
    before = uplift_gains(settings, log, as_of, scores)
    assert before == ({}, {"mail": "by risk: no champion of journeyguard-uplift-email yet"})
    trained = runner.invoke(
        app, ["uplift", "train", "--config", str(config), "--experiment", "email"]
    )
    assert trained.exit_code == 0, trained.output
    gains, ranking = uplift_gains(settings, log, as_of, scores)
    assert ranking == {"mail": "by uplift: journeyguard-uplift-email v1"}
    planted = truth.set_index("customer_id")["planted_uplift"]
    predicted = gains["mail"]
    # Those the e-mail helps (+25 points) are predicted well above those it harms.
    assert predicted[planted > 0.2].mean() > predicted[planted < 0].mean() + 0.1
    facts = pd.DataFrame({"value": 0.0, "open_case": False}, index=scores["customer_id"])
    decisions = decide(
        scores, facts, settings.outreach, as_of=as_of, nearest_contact={}, opted_out=set(),
        gains=gains,
    )  # fmt: skip
    contacted = decisions[decisions["decision"] == "contact"]
    assert contacted["reason"].str.contains("expected gain").all()
    top = contacted["customer_id"].head(len(contacted) // 5)
    assert planted[top].mean() > planted.mean() + 0.05


def test_an_action_learns_from_its_own_outbox_decisions(experiment, tmp_path):
    config, truth = experiment
    # An action's own decisions read as an experiment; visits are what the e-mail is for.
    extra = '[experiments.mail_outbox]\noutbox = true\naction = "mail"\ngoal = "increase"\n'
    ranked = 'rank_by = "uplift"\nuplift_experiment = "mail_outbox"'
    config.write_text(config.read_text().replace('rank_by = "uplift"', ranked) + extra)
    settings = load_config(config)
    # The outbox decided an hour before the e-mails went out: contacted are those e-mailed.
    as_of = CAMPAIGN - pd.Timedelta(hours=1)
    start = window_start(as_of, settings.outreach.window)
    rows = []
    for customer, treated in zip(truth["customer_id"], truth["treated"], strict=True):
        contact = bool(treated)
        rows.append(
            {
                "decision_key": decision_key("retention", customer, start),
                "idempotency_key": idempotency_key("retention", customer, "mail", start)
                if contact
                else None,
                "campaign": "retention", "window_start": start, "customer_id": customer,
                "action": "mail", "task": "visit", "risk": 0.5,
                "decision": "contact" if contact else "holdout", "reason": "by hand",
                "cost": 0.0, "as_of": as_of,
                "payload": {"customer_id": customer, "action": "mail"} if contact else None,
            }
        )  # fmt: skip
    engine = open_outbox(outbox_url(settings))
    enqueue(engine, pd.DataFrame(rows, columns=DECISION_COLUMNS), now=as_of.to_pydatetime())
    engine.dispose()
    out = tmp_path / "mail.parquet"
    result = runner.invoke(
        app,
        ["uplift", "train", "--config", str(config), "--experiment", "mail_outbox", "--json",
         "--predictions-out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["model_name"] == "journeyguard-uplift-mail_outbox"
    assert report["rows"]["train"] + report["rows"]["test"] == len(truth)
    assert report["average_effect"]["effect_low"] > 0
    predictions = pd.read_parquet(out).merge(truth, on="customer_id")
    assert (predictions["treated_x"] == predictions["treated_y"].astype(int)).all()

    # The report measures the same decisions, ranked by the champion's uplift and by risk.
    later = (CAMPAIGN + pd.Timedelta(days=29)).isoformat()
    shown = runner.invoke(
        app, ["outreach", "report", "--config", str(config), "--as-of", later, "--json"]
    )
    assert shown.exit_code == 0, shown.output
    mail = json.loads(shown.stdout)["uplift"]["mail"]
    assert mail["model"] == "journeyguard-uplift-mail_outbox v1"
    assert mail["rows"] == len(truth) and mail["realised"]["effect_low"] > 0
    assert len(mail["deciles"]) == len(mail["risk_deciles"]) == 10
    assert mail["deciles"][0]["effect"] > mail["deciles"][-1]["effect"]
    text = runner.invoke(app, ["outreach", "report", "--config", str(config), "--as-of", later])
    assert "Qini by predicted uplift" in text.stdout and "by risk" in text.stdout


def test_an_unknown_experiment_exits_2_naming_the_known_ones(experiment):
    config, _ = experiment
    result = runner.invoke(app, ["uplift", "train", "--config", str(config), "--experiment", "x"])
    assert result.exit_code == 2
    assert "no experiment 'x'" in result.output and "['email', 'mail']" in result.output
