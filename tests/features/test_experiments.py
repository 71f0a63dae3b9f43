"""Experiments: their configuration, and their rows read from a log without look-ahead."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from journeyguard.features.config.reader import load_config
from journeyguard.features.errors import ConfigError
from journeyguard.features.eventlog.frames import log_from_frame
from journeyguard.features.eventlog.log import Snapshots
from journeyguard.features.experiments import arms_from_log, experiment_rows
from journeyguard.features.transformer import PathFeatures

BASE = """
[source]
path = "events.csv"

[tasks.visit]
label = "occurs"
match = { event = ["visit"] }
horizon = "14d"
snapshots = { every = "7d" }

[outreach.actions.mail]
task = "visit"
min_risk = 0.5
"""

EMAIL = """
[experiments.email]
treatment = { event = ["campaign"], column = "cell", values = ["email"] }
control = { event = ["campaign"], column = "cell", values = ["none"] }
outcome = "visit"
goal = "increase"
"""


def config(tmp_path: Path, text: str):
    path = tmp_path / "jg.toml"
    path.write_text(BASE + text)
    return load_config(path)


def test_an_experiment_names_its_arms_outcome_and_goal(tmp_path):
    settings = config(tmp_path, EMAIL)
    email = settings.experiment("email")
    assert email.treatment.events == ("campaign",) and email.treatment.values == ("email",)
    assert (email.outcome, email.goal, email.split, email.outbox) == (
        "visit",
        "increase",
        "hash",
        False,
    )
    assert email.model_task == "uplift-email"


def test_an_action_is_an_experiment_of_its_own_outbox_decisions(tmp_path):
    mail = config(tmp_path, "").experiment("mail")
    assert (mail.outbox, mail.action, mail.outcome) == (True, "mail", "visit")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (EMAIL.replace('outcome = "visit"', 'outcome = "vist"'), r"outcome: expected one of"),
        (EMAIL.replace("control = ", "contrl = "), r"unknown key 'contrl' \(did you mean"),
        (
            EMAIL.replace('column = "cell", values = ["none"]', 'column = "cell"'),
            r"\[experiments.email.control\] give `column` and its `values` together",
        ),
        ("[experiments.x]\noutbox = true\n", r"with `outbox = true`, name the `action`"),
        ("[experiments.x]\noutcome = 'visit'\n", r"give `treatment` and `control`"),
        (EMAIL + 'action = "mial"\n', r"action: expected one of .*did you mean 'mail'"),
    ],
)
def test_a_bad_experiment_is_refused_with_its_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        config(tmp_path, text)


def test_an_unknown_experiment_names_the_known_ones(tmp_path):
    with pytest.raises(ConfigError, match=r"no experiment 'emial' \(did you mean 'email'\?\)"):
        config(tmp_path, EMAIL).experiment("emial")


def _log():
    t0 = pd.Timestamp("2024-06-01", tz="UTC")
    rows = [
        ("A", t0 - pd.Timedelta(days=3), "purchase", "email", "gold"),  # the arm, repeated
        ("A", t0, "campaign", "email", "gold"),
        ("A", t0 + pd.Timedelta(days=2), "visit", None, "gold"),
        ("A", t0 + pd.Timedelta(days=5), "campaign", "none", "gold"),  # later: not its arm
        ("B", t0 - pd.Timedelta(days=1), "purchase", None, "blue"),
        ("B", t0 + pd.Timedelta(hours=1), "campaign", "none", "blue"),
        ("C", t0 - pd.Timedelta(days=1), "visit", None, "blue"),
        ("C", t0 + pd.Timedelta(hours=2), "campaign", "email", "blue"),
        ("Z", t0 + pd.Timedelta(days=40), "purchase", None, None),  # the data runs past
    ]
    columns = ["customer_id", "timestamp", "event", "cell", "tier"]
    return log_from_frame(pd.DataFrame(rows, columns=columns))


def test_rows_take_each_journeys_first_arm_and_label_from_its_moment(tmp_path):
    settings = config(tmp_path, EMAIL)
    log = _log()
    email = settings.experiment("email")
    rows = experiment_rows(log, email, settings.task("visit"), arms_from_log(log, email))
    assert rows.customer_ids.tolist() == ["A", "B", "C"]
    assert rows.treated.tolist() == [True, False, True]
    # C visited before its e-mail: still a row (visits recur), with no visit after it.
    assert rows.y.tolist() == [1, 0, 0] and rows.good.tolist() == [1, 0, 0]


def test_the_arms_look_alike_to_the_features_but_keep_what_their_event_carries(tmp_path):
    settings = config(tmp_path, EMAIL)
    log = _log()
    email = settings.experiment("email")
    rows = experiment_rows(log, email, settings.task("visit"), arms_from_log(log, email))
    everything = Snapshots.at(log, log.last_time)  # a vocabulary that knows the campaign step
    features = PathFeatures(min_count=1).fit(everything).transform(rows.snapshots)
    # The moment is one neutral offer event: never the arm's step nor its cell ...
    assert features["events"].tolist() == [2, 2, 2]
    assert features["count__campaign"].tolist() == [0, 0, 0]
    assert features["attr__cell"].isna().all()
    assert features["count__visit"].tolist() == [0, 0, 1]  # ... nor the outcome after it
    # ... but the attributes the events carry are seen: B (control) and C (treated) share
    # their tier, A has its own.
    tier = features["attr__tier"]
    assert tier.notna().all() and tier[1] == tier[2] != tier[0]
    assert features["last_1"].nunique() == 1  # the offer, for both arms


def test_events_matching_both_arms_are_refused(tmp_path):
    settings = config(tmp_path, EMAIL.replace('values = ["none"]', 'values = ["email"]'))
    with pytest.raises(ValueError, match=r"match both the treatment and the control"):
        arms_from_log(_log(), settings.experiment("email"))


def test_a_reduce_goal_counts_the_absence_of_the_outcome_as_good(tmp_path):
    settings = config(tmp_path, EMAIL.replace('goal = "increase"', 'goal = "reduce"'))
    log, email = _log(), settings.experiment("email")
    rows = experiment_rows(log, email, settings.task("visit"), arms_from_log(log, email))
    assert np.array_equal(rows.good, 1 - rows.y)
