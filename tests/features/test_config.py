"""The configuration file: typed, checked, with did-you-mean hints."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from journeyguard.features.config.reader import load_config, parse_duration
from journeyguard.features.errors import ConfigError

from ..conftest import CONFIGS

MINIMAL = '[source]\npath = "data/events.csv"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "jg.toml"
    path.write_text(text)
    return path


def test_minimal_config_resolves_paths_against_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(write(tmp_path, MINIMAL))
    assert config.source.path == tmp_path / "data" / "events.csv"
    assert config.output_dir == tmp_path / "build" / "jg"
    assert config.tasks == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (MINIMAL + "[sourse]\n", r"jg.toml: unknown key 'sourse' \(did you mean 'source'\?\)"),
        ('[source]\npaht = "x.csv"\n', r"unknown key 'paht' \(did you mean 'path'\?\)"),
        (MINIMAL + '[source.columns]\ncustomerid = "id"\n', r"did you mean 'customer_id'"),
        (
            MINIMAL
            + "[tasks.churn]\nlabel = 'absent'\nmatch = { event = ['x'] }\nhorizon = '30d'\n"
            "snapshot = { every = '7d' }\n",
            r"\[tasks.churn\] unknown key 'snapshot' \(did you mean",
        ),
        ("[output]\n", r"missing key 'source'"),
        ('[source]\npath = "a.csv"\nurl = "sqlite://"\n', r"exactly one of `path`"),
        ('[source]\nurl = "sqlite://"\n', r"exactly one of `table` or `query`"),
        (MINIMAL + 'timezone = "Mars/Olympus"\n', r"unknown time zone 'Mars/Olympus'"),
        (MINIMAL + 'format = "xlsx"\n', r"format: expected one of \['auto', 'csv', 'parquet'\]"),
        (
            MINIMAL + "[tasks.t]\nlabel = 'sometimes'\n",
            r"label: expected one of \['occurs', 'absent'\]",
        ),
        (
            MINIMAL + "[tasks.t]\nlabel = 'occurs'\nmatch = { event = ['x'] }\nhorizon = 'soon'\n"
            "snapshots = { every = '7d' }\n",
            r"\[tasks.t.horizon\] expected a duration",
        ),
        (
            MINIMAL + "[tasks.t]\nlabel = 'occurs'\nmatch = { event = ['x'] }\nhorizon = '1d'\n"
            "snapshots = { every = '7d', prefix = 3 }\n",
            r"exactly one of `every",
        ),
        (
            MINIMAL + "[tasks.t]\nlabel = 'occurs'\nmatch = { column = 'x' }\nhorizon = '1d'\n"
            "snapshots = { prefix = 3 }\n",
            r"list the matching `values`",
        ),
        (MINIMAL + '[source.attributes]\ncolumns = ["value"]\n', r"canonical names"),
        (
            MINIMAL + '[kpis]\ncsat = { event = "csat", low = "one" }\n',
            r"\[kpis.csat\] low: expected a non-negative number",
        ),
        (MINIMAL + '[kpis]\nnps = { event = "nps", low = 10 }\n', r"expected low < high"),
        ("[source\n", r"not valid TOML"),
        (MINIMAL + '[serving]\napi_token = ""\n', r"\[serving\] api_token: empty"),
        (MINIMAL + '[serving]\napi_token = "  "\n', r"\[serving\] api_token: empty"),
        (MINIMAL + "[serving]\nmax_body_bytes = 0\n", r"max_body_bytes: expected a positive"),
        (MINIMAL + "[serving]\nsecure_cookie = 1\n", r"secure_cookie: expected true or false"),
    ],
)
def test_bad_configs_are_rejected_with_the_file_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as error:
        load_config(path)
    assert str(path) in str(error.value)


def test_tasks_are_typed(tmp_path):
    text = (
        MINIMAL
        + """
[tasks.churn]
label = "absent"
match = { event = ["purchase"] }
horizon = "91d"
snapshots = { every = "28d" }

[tasks.reopen]
label = "occurs"
match = { column = "channel", values = ["phone", 3] }
horizon = "12h"
snapshots = { prefix = 5 }
"""
    )
    config = load_config(write(tmp_path, text))
    churn, reopen = config.task("churn"), config.task("reopen")
    assert churn.label == "absent" and churn.match.events == ("purchase",)
    assert churn.horizon == pd.Timedelta(days=91) and churn.snapshots.every == pd.Timedelta(days=28)
    assert reopen.match.column == "channel" and reopen.match.values == ("phone", "3")
    assert reopen.snapshots.prefix == 5 and reopen.horizon == pd.Timedelta(hours=12)
    with pytest.raises(ConfigError, match=r"no task 'chrun' \(did you mean 'churn'\?\)"):
        config.task("chrun")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", pd.Timedelta(days=30)),
        ("2w", pd.Timedelta(days=14)),
        ("90m", pd.Timedelta(minutes=90)),
        ("1.5h", pd.Timedelta(minutes=90)),
        (" 45s ", pd.Timedelta(seconds=45)),
    ],
)
def test_durations(text, expected):
    assert parse_duration(text) == expected


def test_sql_url_password_is_not_printed(tmp_path):
    config = load_config(
        write(tmp_path, '[source]\nurl = "postgresql://u:secret@h/db"\ntable = "events"\n')
    )
    assert "secret" not in config.source.display_name


@pytest.mark.parametrize("name", ["simulator", "helpdesk", "bpic2014", "cdnow"])
def test_example_configs_parse(name):
    config = load_config(CONFIGS / f"{name}.toml")
    assert config.tasks, "every example config defines at least one task"


def test_the_schedule_has_a_cron_per_job_with_defaults(tmp_path):
    default = load_config(write(tmp_path, MINIMAL + '[outreach]\nschedule = "15 7 * * *"\n'))
    crons = {job: default.schedule.cron(job, default.outreach) for job in ("retrain", "outreach")}
    assert crons == {"retrain": "30 3 * * 0", "outreach": "15 7 * * *"}  # weekly; [outreach]'s
    assert (default.schedule.retries, default.schedule.early_retrain) == (3, True)
    text = (
        MINIMAL
        + '[schedule]\ningest = "0 1 * * *"\noutreach = "0 8 * * *"\nearly_retrain = false\n'
        + 'retries = 0\nretry_backoff = "2m"\nmisfire_grace = "30m"\n'
    )
    config = load_config(write(tmp_path, text))
    assert config.schedule.cron("ingest", config.outreach) == "0 1 * * *"
    assert config.schedule.cron("outreach", config.outreach) == "0 8 * * *"
    assert not config.schedule.early_retrain and config.schedule.retries == 0
    assert config.schedule.retry_backoff == pd.Timedelta(minutes=2)
    assert config.schedule.misfire_grace == pd.Timedelta(minutes=30)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[schedule]\nretrian = "0 3 * * 0"\n', r"\[schedule\] unknown key 'retrian' \(did you"),
        ("[schedule]\nretries = -1\n", r"\[schedule\] retries: expected a whole number >= 0"),
        ('[schedule]\nretry_backoff = "soon"\n', r"\[schedule.retry_backoff\] expected a dur"),
        ("[schedule]\nscore = 5\n", r"\[schedule\] score: expected a string"),
    ],
)
def test_bad_schedules_are_rejected_with_the_file_and_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, MINIMAL + text))


def test_the_engine_is_typed_with_local_defaults(tmp_path):
    assert load_config(write(tmp_path, MINIMAL)).engine.kind == "local"
    text = MINIMAL + (
        '[engine]\nkind = "spark"\nmaster = "spark://head:7077"\npartitions = 64\n'
        'fit_fraction = 0.01\ntrain_rows = 1000\n[engine.conf]\n"spark.executor.memory" = "8g"\n'
    )
    engine = load_config(write(tmp_path, text)).engine
    assert (engine.kind, engine.master, engine.partitions) == ("spark", "spark://head:7077", 64)
    assert (engine.fit_fraction, engine.train_rows) == (0.01, 1000)
    assert engine.conf == {"spark.executor.memory": "8g"}


@pytest.mark.parametrize(
    ("engine", "message"),
    [
        ('kind = "dask"', r"\[engine\] kind: expected one of \['local', 'spark'\], got 'dask'"),
        ("fit_fraction = 1.5", r"fit_fraction: expected a share in \(0, 1\]"),
        ("partitons = 4", r"unknown key 'partitons' \(did you mean 'partitions'\?\)"),
    ],
)
def test_bad_engine_settings_are_rejected(tmp_path, engine, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, MINIMAL + f"[engine]\n{engine}\n"))


def test_spark_reads_no_sql_url(tmp_path):
    text = '[source]\nurl = "sqlite:///x.db"\ntable = "events"\n[engine]\nkind = "spark"\n'
    with pytest.raises(ConfigError, match=r"Spark reads \[source\] path or \[engine\] table"):
        load_config(write(tmp_path, text))
