"""The configuration file: one TOML file, read once at the edge into a typed, frozen `Config`.

Unknown keys are rejected with a did-you-mean hint; relative paths are relative to the file.
"""

from __future__ import annotations

import datetime
import re
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

from journeyguard.features.config.model import (
    ActionConfig,
    AnalysisConfig,
    AttributeSource,
    Config,
    EngineConfig,
    ExperimentConfig,
    KpiConfig,
    Match,
    MonitoringConfig,
    OutreachConfig,
    Population,
    RepeatKpi,
    ResolutionKpi,
    ScheduleConfig,
    ServingConfig,
    SnapshotRule,
    SourceConfig,
    SurveyKpi,
    TaskConfig,
    did_you_mean,
)
from journeyguard.features.errors import ConfigError
from journeyguard.features.eventlog.columns import CANONICAL_COLUMNS, CUSTOMER_ID, TIMESTAMP

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(w|d|h|m|s)\s*$")
_DURATION_SECONDS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}


def load_config(path: str | Path) -> Config:
    """Reads and checks a configuration file."""
    path = Path(path).resolve()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    return parse_config(raw, path)


_TOP_KEYS = {
    "source", "tasks", "output", "analysis", "serving", "outreach", "kpis", "monitoring",
    "schedule", "experiments", "engine",
}  # fmt: skip


def parse_config(raw: dict[str, Any], path: Path) -> Config:
    """Builds a `Config` from a parsed TOML table; `path` anchors relative paths and errors."""
    reader = _Reader(path)
    table = reader.table(raw, "", _TOP_KEYS)
    source = _parse_source(reader, reader.require(table, "source", ""))
    tasks_table = reader.table(table.get("tasks", {}), "tasks", None)
    tasks = {name: _parse_task(reader, name, body) for name, body in tasks_table.items()}
    kpis = _parse_kpis(reader, table["kpis"], tasks) if "kpis" in table else KpiConfig()
    tasks = {name: _with_cases(reader, task, kpis.resolution) for name, task in tasks.items()}
    output = reader.table(table.get("output", {}), "output", {"dir"})
    # An explicit dir is relative to the file, like every path; the default to where we run.
    default_dir = Path.cwd() / "build" / path.stem
    output_dir = reader.path(output["dir"], "output.dir") if "dir" in output else default_dir
    analysis = _parse_analysis(reader, table.get("analysis", {}))
    serving = _parse_serving(reader, table.get("serving", {}))
    outreach = _parse_outreach(reader, table.get("outreach", {}), tasks)
    _check_case_actions(reader, outreach, kpis.resolution)
    experiments_table = reader.table(table.get("experiments", {}), "experiments", None)
    experiments = {
        name: _parse_experiment(reader, name, body, tasks, outreach)
        for name, body in experiments_table.items()
    }
    _check_uplift_actions(reader, outreach, experiments)
    return Config(
        path=path,
        source=source,
        tasks=tasks,
        output_dir=output_dir,
        analysis=analysis,
        serving=serving,
        outreach=outreach,
        kpis=kpis,
        monitoring=_parse_monitoring(reader, table.get("monitoring", {})),
        schedule=_parse_schedule(reader, table.get("schedule", {})),
        experiments=experiments,
        engine=_parse_engine(reader, table.get("engine", {}), source),
    )


def parse_duration(text: str) -> datetime.timedelta:
    """'30d', '12h', '90m', '45s', '2w' -> Timedelta."""
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"expected a duration such as '30d', '12h', '90m', '2w'; got {text!r}")
    return datetime.timedelta(seconds=float(match.group(1)) * _DURATION_SECONDS[match.group(2)])


_SOURCE_KEYS = {
    "path",
    "url",
    "table",
    "query",
    "format",
    "separator",
    "encoding",
    "timestamp_format",
    "timezone",
    "columns",
    "defaults",
    "attributes",
}


def _parse_source(reader: _Reader, table: dict[str, Any]) -> SourceConfig:
    table = reader.table(table, "source", _SOURCE_KEYS)
    where = "source"
    path = reader.path(table["path"], "source.path") if "path" in table else None
    url = reader.string(table, "url", where)
    if (path is None) == (url is None):
        raise reader.error(where, "give exactly one of `path` (a CSV or Parquet file) or `url`")
    if url is not None and ("table" in table) == ("query" in table):
        raise reader.error(where, "with `url`, give exactly one of `table` or `query`")
    timezone = reader.string(table, "timezone", where)
    if timezone is not None:
        _check_timezone(reader, timezone)
    return SourceConfig(
        path=path,
        url=url,
        table=reader.string(table, "table", where),
        query=reader.string(table, "query", where),
        format=reader.choice(table, "format", where, ("auto", "csv", "parquet"), "auto"),
        separator=reader.string(table, "separator", where) or ",",
        encoding=reader.string(table, "encoding", where) or "utf-8",
        timestamp_format=reader.string(table, "timestamp_format", where),
        timezone=timezone,
        columns=_parse_columns(reader, table.get("columns", {})),
        defaults=_parse_defaults(reader, table.get("defaults", {})),
        attributes=_parse_attributes(reader, table.get("attributes", {})),
    )


def _parse_columns(reader: _Reader, table: Any) -> dict[str, str]:
    table = reader.table(table, "source.columns", set(CANONICAL_COLUMNS))
    return {key: reader.string(table, key, "source.columns") for key in table}


def _parse_defaults(reader: _Reader, table: Any) -> dict[str, str]:
    allowed = set(CANONICAL_COLUMNS) - {CUSTOMER_ID, TIMESTAMP}
    table = reader.table(table, "source.defaults", allowed)
    return {key: reader.string(table, key, "source.defaults") for key in table}


def _parse_attributes(reader: _Reader, table: Any) -> AttributeSource:
    where = "source.attributes"
    table = reader.table(table, where, {"columns", "path", "key", "separator"})
    columns = tuple(reader.strings(table, "columns", where))
    clash = [c for c in columns if c in CANONICAL_COLUMNS]
    if clash:
        raise reader.error(
            where, f"columns {clash} are canonical names; map them in [source.columns]"
        )
    path = reader.path(table["path"], f"{where}.path") if "path" in table else None
    key = reader.string(table, "key", where)
    if path is not None and key is None:
        raise reader.error(where, "with `path`, name the journey id column of that file in `key`")
    return AttributeSource(columns, path, key, reader.string(table, "separator", where) or ",")


def _parse_task(reader: _Reader, name: str, body: Any) -> TaskConfig:
    where = f"tasks.{name}"
    table = reader.table(body, where, {"label", "match", "horizon", "snapshots", "population"})
    label = reader.choice(table, "label", where, ("occurs", "absent"), None)
    match_table = reader.table(
        reader.require(table, "match", where), f"{where}.match", {"event", "column", "values"}
    )
    events = tuple(reader.strings(match_table, "event", f"{where}.match"))
    column = reader.string(match_table, "column", f"{where}.match")
    values = tuple(str(v) for v in match_table.get("values", []))
    if bool(events) == bool(column):
        raise reader.error(
            f"{where}.match", "give either `event = [...]` or `column` with `values`"
        )
    if column and not values:
        raise reader.error(f"{where}.match", "with `column`, list the matching `values`")
    horizon = reader.duration(reader.require(table, "horizon", where), f"{where}.horizon")
    snap = reader.table(
        reader.require(table, "snapshots", where), f"{where}.snapshots", {"every", "prefix"}
    )
    if len(snap) != 1:
        raise reader.error(
            f"{where}.snapshots", 'give exactly one of `every = "7d"` or `prefix = 5`'
        )
    every = reader.duration(snap["every"], f"{where}.snapshots.every") if "every" in snap else None
    prefix = snap.get("prefix")
    if prefix is not None and (not isinstance(prefix, int) or prefix < 1):
        raise reader.error(
            f"{where}.snapshots.prefix", f"expected a positive integer, got {prefix!r}"
        )
    rule = SnapshotRule(every, prefix)
    population = (
        _parse_population(reader, table["population"], f"{where}.population")
        if "population" in table
        else None
    )
    return TaskConfig(name, label, Match(events, column, values), horizon, rule, population)


def _parse_population(reader: _Reader, body: Any, where: str) -> Population:
    table = reader.table(body, where, {"active_within", "events", "open_case"})
    open_case = reader.boolean(table, "open_case", where, False)
    if ("active_within" in table) == open_case:
        raise reader.error(
            where,
            'give one of `active_within = "90d"` (with optional `events`) or `open_case = true`',
        )
    if open_case:
        if "events" in table:
            raise reader.error(where, "`events` goes with `active_within`, not `open_case`")
        return Population(open_case=True)
    within = reader.duration(table["active_within"], f"{where}.active_within")
    return Population(active_within=within, events=tuple(reader.strings(table, "events", where)))


def _with_cases(reader: _Reader, task: TaskConfig, cases: ResolutionKpi | None) -> TaskConfig:
    """A task whose population is open cases, given the one definition of a case."""
    if task.population is None or not task.population.open_case:
        return task
    if cases is None:
        raise reader.error(
            f"tasks.{task.name}.population",
            "open_case needs the definition of a case: [kpis] resolution = { start, end, "
            "case_column }",
        )
    return replace(task, population=replace(task.population, cases=cases))


def _check_case_actions(
    reader: _Reader, outreach: OutreachConfig, cases: ResolutionKpi | None
) -> None:
    """Actions that look at open cases need the one definition of a case."""
    for name, action in outreach.actions.items():
        if cases is None and (action.requires_open_case or action.blocked_by_open_case):
            raise reader.error(
                f"outreach.actions.{name}",
                "requires_open_case and blocked_by_open_case need the definition of a case: "
                "[kpis] resolution = { start, end, case_column }",
            )


def _parse_analysis(reader: _Reader, table: Any) -> AnalysisConfig:
    where = "analysis"
    table = reader.table(table, where, {"funnels", "anchor", "positions", "min_support"})
    funnels_table = reader.table(table.get("funnels", {}), f"{where}.funnels", None)
    funnels = {
        name: tuple(reader.strings(funnels_table, name, f"{where}.funnels"))
        for name in funnels_table
    }
    short = [name for name, steps in funnels.items() if len(steps) < 2]
    if short:
        raise reader.error(f"{where}.funnels", f"a funnel needs at least two steps: {short}")
    return AnalysisConfig(
        funnels=funnels,
        anchor=reader.string(table, "anchor", where),
        positions=reader.positive_int(table, "positions", where, 10),
        min_support=reader.positive_int(table, "min_support", where, 30),
    )


def _parse_serving(reader: _Reader, table: Any) -> ServingConfig:
    where = "serving"
    keys = {
        "api_token", "max_journeys", "max_events", "max_body_bytes", "max_in_flight_bytes",
        "reload_every",
        "session_lifetime", "secure_cookie",
    }  # fmt: skip
    table = reader.table(table, where, keys)
    default = ServingConfig()
    token = reader.string(table, "api_token", where)
    if token is not None and not token.strip():
        # An empty token used to turn the check off without a word.
        raise reader.error(
            where, "api_token: empty; give the token, or remove the key to serve without one"
        )

    def duration(key: str) -> datetime.timedelta:
        if key not in table:
            return getattr(default, key)
        return reader.duration(table[key], f"{where}.{key}")

    return ServingConfig(
        api_token=token,
        max_journeys=reader.positive_int(table, "max_journeys", where, default.max_journeys),
        max_events=reader.positive_int(table, "max_events", where, default.max_events),
        max_body_bytes=reader.positive_int(table, "max_body_bytes", where, default.max_body_bytes),
        max_in_flight_bytes=reader.positive_int(
            table, "max_in_flight_bytes", where, default.max_in_flight_bytes
        ),
        reload_every=duration("reload_every"),
        session_lifetime=duration("session_lifetime"),
        secure_cookie=reader.boolean(table, "secure_cookie", where, default.secure_cookie),
    )


_OUTREACH_KEYS = {
    "campaign", "actions", "holdout", "budget", "cooldown", "window", "opted_out", "database",
    "webhook_url", "webhook_secret", "max_attempts", "timeout", "schedule", "misfire_grace",
}  # fmt: skip
_MOVED_OUTREACH_KEYS = ("opens_case", "closes_case")  # cases are defined once, by the KPI
_ACTION_KEYS = {
    "task", "min_risk", "cost", "min_value", "requires_open_case", "blocked_by_open_case",
    "priority", "message", "rank_by", "uplift_experiment",
}  # fmt: skip
RANK_BY = ("risk", "value_at_risk", "uplift", "uplift_value")


def _parse_outreach(reader: _Reader, table: Any, tasks: dict[str, TaskConfig]) -> OutreachConfig:
    where = "outreach"
    for key in _MOVED_OUTREACH_KEYS:
        if key in table:
            raise reader.error(
                f"{where}.{key}",
                "cases are defined once, for every use: set the start and end steps in "
                "[kpis] resolution = { start, end, case_column }",
            )
    table = reader.table(table, where, _OUTREACH_KEYS)
    default = OutreachConfig()
    actions_table = reader.table(table.get("actions", {}), f"{where}.actions", None)
    actions = {
        name: _parse_action(reader, name, body, tasks) for name, body in actions_table.items()
    }
    budget = reader.table(table.get("budget", {}), f"{where}.budget", {"count", "money"})
    holdout = reader.number(table, "holdout", where, default.holdout)
    if not 0 <= holdout < 1:
        raise reader.error(where, f"holdout: expected a share in [0, 1), got {holdout!r}")

    def duration(key: str) -> datetime.timedelta:
        if key not in table:
            return getattr(default, key)
        return reader.duration(table[key], f"{where}.{key}")

    return OutreachConfig(
        campaign=reader.string(table, "campaign", where) or default.campaign,
        actions=actions,
        holdout=holdout,
        budget_count=int(reader.positive_int(budget, "count", f"{where}.budget", 1))
        if "count" in budget
        else None,
        budget_money=reader.number(budget, "money", f"{where}.budget", None)
        if "money" in budget
        else None,
        cooldown=duration("cooldown"),
        window=duration("window"),
        opted_out=reader.path(table["opted_out"], f"{where}.opted_out")
        if "opted_out" in table
        else None,
        database=reader.string(table, "database", where),
        webhook_url=reader.string(table, "webhook_url", where),
        webhook_secret=reader.string(table, "webhook_secret", where),
        max_attempts=reader.positive_int(table, "max_attempts", where, default.max_attempts),
        timeout=duration("timeout"),
        schedule=reader.string(table, "schedule", where)
        if "schedule" in table
        else default.schedule,
        misfire_grace=duration("misfire_grace"),
    )


def _parse_action(
    reader: _Reader, name: str, body: Any, tasks: dict[str, TaskConfig]
) -> ActionConfig:
    where = f"outreach.actions.{name}"
    table = reader.table(body, where, _ACTION_KEYS)
    task = reader.string(table, "task", where)
    if task not in tasks:
        raise reader.error(
            where, f"task: expected one of the config's tasks {sorted(tasks)}, got {task!r}"
        )
    min_risk = reader.number(table, "min_risk", where, None)
    if not 0 <= min_risk <= 1:
        raise reader.error(where, f"min_risk: expected a probability in [0, 1], got {min_risk}")
    message = reader.table(table.get("message", {}), f"{where}.message", None)
    return ActionConfig(
        name=name,
        task=task,
        min_risk=min_risk,
        cost=reader.number(table, "cost", where, 0.0),
        min_value=reader.number(table, "min_value", where, None) if "min_value" in table else None,
        requires_open_case=reader.boolean(table, "requires_open_case", where, False),
        blocked_by_open_case=reader.boolean(table, "blocked_by_open_case", where, False),
        priority=reader.positive_int(table, "priority", where, 100),
        message={key: str(value) for key, value in message.items()},
        rank_by=reader.choice(table, "rank_by", where, RANK_BY, "risk"),
        uplift_experiment=reader.string(table, "uplift_experiment", where),
    )


_EXPERIMENT_KEYS = {"outcome", "treatment", "control", "action", "outbox", "goal", "split"}


def _parse_experiment(
    reader: _Reader,
    name: str,
    body: Any,
    tasks: dict[str, TaskConfig],
    outreach: OutreachConfig,
) -> ExperimentConfig:
    where = f"experiments.{name}"
    table = reader.table(body, where, _EXPERIMENT_KEYS)
    action = reader.string(table, "action", where)
    if action is not None and action not in outreach.actions:
        raise reader.error(
            where,
            f"action: expected one of the outreach actions {sorted(outreach.actions)}, "
            f"got {action!r}{did_you_mean(action, outreach.actions)}",
        )
    outbox = reader.boolean(table, "outbox", where, False)
    arms = {"treatment", "control"} & set(table)
    if outbox and (arms or action is None):
        raise reader.error(
            where, "with `outbox = true`, name the `action` and leave out treatment and control"
        )
    if not outbox and arms != {"treatment", "control"}:
        raise reader.error(
            where,
            "give `treatment` and `control`, each { event = [...] } optionally narrowed by "
            '{ column = "...", values = [...] } (or `outbox = true` with an `action`)',
        )
    outcome = reader.string(table, "outcome", where)
    if outcome is None and action is not None:
        outcome = outreach.actions[action].task
    if outcome not in tasks:
        raise reader.error(
            where,
            f"outcome: expected one of the config's tasks {sorted(tasks)} (its horizon counts "
            f"from each treatment or control event), got {outcome!r}",
        )
    return ExperimentConfig(
        name=name,
        outcome=outcome,
        treatment=None if outbox else _parse_arm(reader, table["treatment"], f"{where}.treatment"),
        control=None if outbox else _parse_arm(reader, table["control"], f"{where}.control"),
        action=action,
        outbox=outbox,
        goal=reader.choice(table, "goal", where, ("increase", "reduce"), "reduce"),
        split=reader.choice(table, "split", where, ("hash", "time"), "hash"),
    )


def _parse_arm(reader: _Reader, body: Any, where: str) -> Match:
    """An arm's events: steps, a column's values, or steps narrowed by a column's values."""
    table = reader.table(body, where, {"event", "column", "values"})
    events = tuple(reader.strings(table, "event", where))
    column = reader.string(table, "column", where)
    values = tuple(str(v) for v in table.get("values", []))
    if not events and not column:
        raise reader.error(where, "give `event = [...]`, or `column` with `values`, or both")
    if bool(column) != bool(values):
        raise reader.error(where, "give `column` and its `values` together")
    return Match(events, column, values)


def _check_uplift_actions(
    reader: _Reader, outreach: OutreachConfig, experiments: dict[str, ExperimentConfig]
) -> None:
    """An action's `uplift_experiment` must name an experiment of the config or an action."""
    known = set(experiments) | set(outreach.actions)
    for name, action in outreach.actions.items():
        chosen = action.uplift_experiment
        if chosen is not None and chosen not in known:
            raise reader.error(
                f"outreach.actions.{name}",
                f"uplift_experiment: expected one of {sorted(known)}, got {chosen!r}"
                f"{did_you_mean(chosen, known)}",
            )


def _parse_kpis(reader: _Reader, table: Any, tasks: dict[str, TaskConfig]) -> KpiConfig:
    """An explicit [kpis] table: only the KPIs it names."""
    where = "kpis"
    table = reader.table(table, where, {"csat", "nps", "resolution", "churn_task", "repeat"})

    def survey(key: str, low: float, high: float) -> SurveyKpi | None:
        if key not in table:
            return None
        body = reader.table(table[key], f"{where}.{key}", {"event", "column", "low", "high"})
        event = reader.string(body, "event", f"{where}.{key}")
        if not event:
            raise reader.error(f"{where}.{key}", "missing key 'event' (the survey's step)")
        low = reader.number(body, "low", f"{where}.{key}", low)
        high = reader.number(body, "high", f"{where}.{key}", high)
        if low >= high:
            raise reader.error(f"{where}.{key}", f"expected low < high, got {low:g} and {high:g}")
        column = reader.string(body, "column", f"{where}.{key}") or "score"
        return SurveyKpi(event, column, low, high)

    resolution = None
    if "resolution" in table:
        body = reader.table(
            table["resolution"], f"{where}.resolution", {"start", "end", "case_column"}
        )
        start = tuple(reader.strings(body, "start", f"{where}.resolution"))
        end = tuple(reader.strings(body, "end", f"{where}.resolution"))
        if not start or not end:
            raise reader.error(f"{where}.resolution", "give the `start` and `end` steps")
        case_column = reader.string(body, "case_column", f"{where}.resolution")
        resolution = ResolutionKpi(start, end, case_column)
    churn_task = reader.string(table, "churn_task", where)
    if churn_task is not None and churn_task not in tasks:
        raise reader.error(
            where, f"churn_task: expected one of the tasks {sorted(tasks)}, got {churn_task!r}"
        )
    repeat = None
    if "repeat" in table:
        body = reader.table(table["repeat"], f"{where}.repeat", {"event", "window"})
        events = tuple(reader.strings(body, "event", f"{where}.repeat"))
        if not events:
            raise reader.error(f"{where}.repeat", "give the purchase steps in `event`")
        window = reader.duration(body.get("window", "90d"), f"{where}.repeat.window")
        repeat = RepeatKpi(events, window)
    return KpiConfig(
        csat=survey("csat", 1.0, 5.0),
        nps=survey("nps", 0.0, 10.0),
        resolution=resolution,
        churn_task=churn_task,
        repeat=repeat,
    )


def _parse_monitoring(reader: _Reader, table: Any) -> MonitoringConfig:
    where = "monitoring"
    keys = {"feature_psi", "score_psi", "psi_noise_quantile", "calibration_gap", "auc_drop", "bins"}
    table = reader.table(table, where, keys)
    default = MonitoringConfig()
    quantile = reader.number(table, "psi_noise_quantile", where, default.psi_noise_quantile)
    if not 0 <= quantile < 1:
        raise reader.error(
            where, f"psi_noise_quantile: expected a share in [0, 1), got {quantile!r}"
        )
    return MonitoringConfig(
        feature_psi=reader.number(table, "feature_psi", where, default.feature_psi),
        score_psi=reader.number(table, "score_psi", where, default.score_psi),
        psi_noise_quantile=quantile,
        calibration_gap=reader.number(table, "calibration_gap", where, default.calibration_gap),
        auc_drop=reader.number(table, "auc_drop", where, default.auc_drop),
        bins=reader.positive_int(table, "bins", where, default.bins),
    )


_SCHEDULE_CRONS = ("ingest", "retrain", "score", "monitor", "outreach")


def _parse_schedule(reader: _Reader, table: Any) -> ScheduleConfig:
    """The crons stay text here: the scheduler checks them (reading a config never imports
    APScheduler)."""
    where = "schedule"
    keys = {*_SCHEDULE_CRONS, "early_retrain", "retries", "retry_backoff", "misfire_grace"}
    table = reader.table(table, where, keys)
    default = ScheduleConfig()
    crons = {
        key: reader.string(table, key, where) or getattr(default, key) for key in _SCHEDULE_CRONS
    }
    retries = table.get("retries", default.retries)
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise reader.error(where, f"retries: expected a whole number >= 0, got {retries!r}")

    def duration(key: str) -> datetime.timedelta:
        if key not in table:
            return getattr(default, key)
        return reader.duration(table[key], f"{where}.{key}")

    return ScheduleConfig(
        **crons,
        early_retrain=reader.boolean(table, "early_retrain", where, default.early_retrain),
        retries=retries,
        retry_backoff=duration("retry_backoff"),
        misfire_grace=duration("misfire_grace"),
    )


_ENGINE_KEYS = {
    "kind", "master", "partitions", "source_format", "table", "fit_fraction", "train_rows", "conf",
}  # fmt: skip


def _parse_engine(reader: _Reader, table: Any, source: SourceConfig) -> EngineConfig:
    where = "engine"
    table = reader.table(table, where, _ENGINE_KEYS)
    default = EngineConfig()
    fit_fraction = reader.number(table, "fit_fraction", where, default.fit_fraction)
    if not 0 < fit_fraction <= 1:
        raise reader.error(where, f"fit_fraction: expected a share in (0, 1], got {fit_fraction}")
    conf = reader.table(table.get("conf", {}), f"{where}.conf", None)
    if not all(isinstance(v, str | int | float | bool) for v in conf.values()):
        raise reader.error(f"{where}.conf", "expected Spark settings as strings or numbers")
    engine = EngineConfig(
        kind=reader.choice(table, "kind", where, ("local", "spark"), default.kind),
        master=reader.string(table, "master", where) or default.master,
        partitions=reader.positive_int(table, "partitions", where, default.partitions),
        source_format=reader.choice(
            table, "source_format", where, ("parquet", "delta"), default.source_format
        ),
        table=reader.string(table, "table", where),
        fit_fraction=fit_fraction,
        train_rows=reader.positive_int(table, "train_rows", where, default.train_rows),
        conf={str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in conf.items()},
    )
    if engine.table is None and source.path is None and engine.kind == "spark":
        raise reader.error(where, "Spark reads [source] path or [engine] table, not a SQL url")
    return engine


def _check_timezone(reader: _Reader, timezone: str) -> None:
    import zoneinfo  # here: only a config with a time zone needs it, ~1 ms of every start

    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise reader.error(
            "source.timezone",
            f"unknown time zone {timezone!r} "
            "(expected an IANA name such as 'Europe/Rome' or 'UTC')",
        ) from None


class _Reader:
    """Typed access to TOML tables with errors that name the file and the key."""

    def __init__(self, path: Path) -> None:
        self.path_ = path

    def error(self, where: str, message: str) -> ConfigError:
        return ConfigError(
            f"{self.path_}: [{where}] {message}" if where else f"{self.path_}: {message}"
        )

    def table(self, value: Any, where: str, allowed: set[str] | None) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(where, f"expected a table, got {value!r}")
        for key in value:
            if allowed is not None and key not in allowed:
                raise self.error(
                    where,
                    f"unknown key {key!r}{did_you_mean(key, allowed)}; "
                    f"known keys: {sorted(allowed)}",
                )
        return value

    def require(self, table: dict[str, Any], key: str, where: str) -> Any:
        if key not in table:
            raise self.error(where, f"missing key {key!r}")
        return table[key]

    def string(self, table: dict[str, Any], key: str, where: str) -> str | None:
        value = table.get(key)
        if value is not None and not isinstance(value, str):
            raise self.error(where, f"{key}: expected a string, got {value!r}")
        return value

    def strings(self, table: dict[str, Any], key: str, where: str) -> list[str]:
        value = table.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(where, f"{key}: expected a list of strings, got {value!r}")
        return value

    def choice(
        self,
        table: dict[str, Any],
        key: str,
        where: str,
        options: tuple[str, ...],
        default: str | None,
    ) -> Any:
        value = table.get(key, default)
        if value not in options:
            raise self.error(where, f"{key}: expected one of {list(options)}, got {value!r}")
        return value

    def positive_int(self, table: dict[str, Any], key: str, where: str, default: int) -> int:
        value = table.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise self.error(where, f"{key}: expected a positive integer, got {value!r}")
        return value

    def number(self, table: dict[str, Any], key: str, where: str, default: Any) -> Any:
        if key not in table and default is None:
            raise self.error(where, f"missing key {key!r}")
        value = table.get(key, default)
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise self.error(where, f"{key}: expected a non-negative number, got {value!r}")
        return float(value)

    def boolean(self, table: dict[str, Any], key: str, where: str, default: bool) -> bool:
        value = table.get(key, default)
        if not isinstance(value, bool):
            raise self.error(where, f"{key}: expected true or false, got {value!r}")
        return value

    def duration(self, value: Any, where: str) -> datetime.timedelta:
        try:
            return parse_duration(value)
        except ValueError as error:
            raise self.error(where, str(error)) from None

    def path(self, value: Any, where: str) -> Path:
        if not isinstance(value, str) or not value:
            raise self.error(where, f"expected a path, got {value!r}")
        return (self.path_.parent / Path(value).expanduser()).resolve()
