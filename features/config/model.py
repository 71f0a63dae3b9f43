"""The configuration's typed model: frozen dataclasses, one per TOML table, with their defaults.

`config.reader` builds a `Config` from the file once, at the edge; everything below takes it.
"""

from __future__ import annotations

import datetime
import difflib
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from journeyguard.features.errors import ConfigError
from journeyguard.features.workspace import Workspace

UNIX_FORMATS = ("unix_s", "unix_ms")
WHITESPACE = "whitespace"


@dataclass(frozen=True)
class AttributeSource:
    """Extra columns carried along: from the event source, or joined from a per-journey table."""

    columns: tuple[str, ...] = ()
    path: Path | None = None
    key: str | None = None
    separator: str = ","


_PARQUET_SUFFIXES = (".parquet", ".pq")


def is_parquet_file(path: Path, declared: str) -> bool:
    """Whether a source file is read as Parquet: as `format` declares it, or, when that is
    "auto", by its name."""
    if declared != "auto":
        return declared == "parquet"
    return path.suffix.lower() in _PARQUET_SUFFIXES


@dataclass(frozen=True)
class SourceConfig:
    path: Path | None = None
    url: str | None = None
    table: str | None = None
    query: str | None = None
    format: Literal["auto", "csv", "parquet"] = "auto"
    separator: str = ","
    encoding: str = "utf-8"
    timestamp_format: str | None = None
    timezone: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)
    attributes: AttributeSource = AttributeSource()

    @property
    def display_name(self) -> str:
        """How errors name the source: the file, or the table or query of the database."""
        if self.path is not None:
            return str(self.path)
        return f"{_redact(self.url or '')} ({self.table or 'query'})"

    def source_column(self, canonical: str) -> str | None:
        """The source's column for a canonical one; canonical names map to themselves."""
        return self.columns.get(canonical, canonical if canonical not in self.defaults else None)


@dataclass(frozen=True)
class Match:
    """Which events count as the outcome: by step name, or by the values of a column."""

    events: tuple[str, ...] = ()
    column: str | None = None
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class SnapshotRule:
    """When to take snapshots: every so often on a calendar grid, or after the first n events."""

    every: datetime.timedelta | None = None
    prefix: int | None = None


@dataclass(frozen=True)
class ResolutionKpi:
    """What a case is (`features.cases`): its start and end steps, keyed by `case_column` (or
    the journey when it is None). The KPI is the time from a start to an end; cases still open
    are censored, not dropped."""

    start: tuple[str, ...] = ("ticket_opened",)
    end: tuple[str, ...] = ("ticket_resolved",)
    case_column: str | None = "case_id"


@dataclass(frozen=True)
class Population:
    """Who a task is for at `as_of` (`features.population`): journeys with an event (of
    `events`, or any) within `active_within` before it, or journeys with a case still open."""

    active_within: datetime.timedelta | None = None
    events: tuple[str, ...] = ()  # with active_within: only these steps count as activity
    open_case: bool = False
    cases: ResolutionKpi | None = None  # the case definition, for open_case


@dataclass(frozen=True)
class TaskConfig:
    name: str
    label: Literal["occurs", "absent"]
    match: Match
    horizon: datetime.timedelta
    snapshots: SnapshotRule
    population: Population | None = None  # None: every journey with an event


@dataclass(frozen=True)
class AnalysisConfig:
    """Settings of `journeyguard analyze`."""

    funnels: dict[str, tuple[str, ...]] = field(default_factory=dict)
    anchor: str | None = None
    positions: int = 10
    min_support: int = 30


@dataclass(frozen=True)
class ServingConfig:
    """Settings of `journeyguard serve`."""

    api_token: str | None = None  # else JOURNEYGUARD_API_TOKEN; none: no token needed
    max_journeys: int = 1_000  # per request
    max_events: int = 10_000  # per journey
    max_body_bytes: int = 64 * 1024 * 1024  # per request, refused (413) before it is parsed
    max_in_flight_bytes: int = 6 * 1024 * 1024  # bodies scored at once per worker, else 503
    reload_every: datetime.timedelta = datetime.timedelta(seconds=30)  # champion check
    session_lifetime: datetime.timedelta = datetime.timedelta(hours=12)  # console login
    secure_cookie: bool = False  # Secure console cookie even over http (behind a TLS proxy)


@dataclass(frozen=True)
class ActionConfig:
    """One action of the outreach catalog: whom it is for and what it costs."""

    name: str
    task: str
    min_risk: float
    cost: float = 0.0
    min_value: float | None = None  # the customer's total spend (`value`) at least this
    requires_open_case: bool = False  # only for a customer with a case still open
    blocked_by_open_case: bool = False  # never while a case is open (e.g. a discount)
    priority: int = 100  # lower first, when one customer qualifies for several
    message: dict[str, str] = field(default_factory=dict)  # extra fields of the message
    # Who of a priority gets the budget first: the risk, the value at risk, or the expected gain
    # of the action (uplift, or uplift x value - cost) once it has an uplift champion.
    rank_by: Literal["risk", "value_at_risk", "uplift", "uplift_value"] = "risk"
    uplift_experiment: str | None = None  # whose uplift champion; default: see Config.experiment_of


@dataclass(frozen=True)
class ExperimentConfig:
    """A randomised experiment to learn an action's uplift from (`journeyguard uplift train`).

    Read from the log: each journey's first `treatment` or `control` event is its moment (a
    `Match` whose `events` and `column` values must both hold when both are given); or, with
    `outbox`, from the outreach outbox's contact and holdout decisions of `action`. The outcome
    is the task `outcome`, counted over its horizon from that moment; `goal` says whether the
    action should make it more likely ("increase") or less ("reduce", e.g. churn)."""

    name: str
    outcome: str  # a task of the config
    treatment: Match | None = None
    control: Match | None = None
    action: str | None = None  # the outreach action the experiment stands for
    outbox: bool = False  # the outbox's own decisions of `action`, not the log's events
    goal: Literal["increase", "reduce"] = "reduce"
    split: Literal["hash", "time"] = "hash"  # the test part: by journey hash, or the latest fifth

    @property
    def model_task(self) -> str:
        """The name its models are registered under: journeyguard-uplift-<name>."""
        return f"uplift-{self.name}"


@dataclass(frozen=True)
class OutreachConfig:
    """Settings of `journeyguard outreach`: the catalog, limits and delivery."""

    campaign: str = "retention"
    actions: dict[str, ActionConfig] = field(default_factory=dict)
    holdout: float = 0.10
    budget_count: int | None = None  # per day
    budget_money: float | None = None  # per day
    cooldown: datetime.timedelta = datetime.timedelta(days=14)
    window: datetime.timedelta = datetime.timedelta(days=1)  # one decision per window
    opted_out: Path | None = None  # a CSV with a customer_id column
    database: str | None = None  # SQLAlchemy URL; default sqlite:///<output>/outreach.db
    webhook_url: str | None = None  # else JOURNEYGUARD_OUTREACH_WEBHOOK_URL
    webhook_secret: str | None = None  # else JOURNEYGUARD_OUTREACH_WEBHOOK_SECRET
    max_attempts: int = 8
    timeout: datetime.timedelta = datetime.timedelta(seconds=5)
    schedule: str = "0 6 * * *"  # cron, UTC
    misfire_grace: datetime.timedelta = datetime.timedelta(hours=1)


@dataclass(frozen=True)
class SurveyKpi:
    """A survey score: the `column` of the `event` steps, on a scale from `low` to `high`."""

    event: str
    column: str = "score"
    low: float = 1.0
    high: float = 5.0


@dataclass(frozen=True)
class RepeatKpi:
    """Share of customers with another `events` step within `window` of a purchase."""

    events: tuple[str, ...] = ("order_placed", "repeat_purchase")
    window: datetime.timedelta = datetime.timedelta(days=90)


@dataclass(frozen=True)
class KpiConfig:
    """The post-purchase KPIs (`journeyguard kpis`); defaults fit the simulator's steps, and a
    KPI whose steps a log lacks is reported as unavailable."""

    csat: SurveyKpi | None = SurveyKpi("csat_submitted", "score", 1.0, 5.0)
    nps: SurveyKpi | None = SurveyKpi("nps_submitted", "score", 0.0, 10.0)
    resolution: ResolutionKpi | None = ResolutionKpi()
    churn_task: str | None = "churn"  # a task of the config; None: no churn KPI
    repeat: RepeatKpi | None = RepeatKpi()


@dataclass(frozen=True)
class MonitoringConfig:
    """Thresholds of `journeyguard monitor`: a value past one is a breach."""

    feature_psi: float = 0.25  # population stability index of a feature
    score_psi: float = 0.2  # ... of the risk score
    # A PSI is a breach only beyond the level two samples of one population pass this rarely
    # (on so few rows as scored); 0: no such guard.
    psi_noise_quantile: float = 0.999
    calibration_gap: float = 0.05  # |realised - predicted| outcome rate within a band
    auc_drop: float = 0.05  # realised ROC AUC below the champion's test ROC AUC by this
    bins: int = 10  # quantile bins of the PSI


@dataclass(frozen=True)
class ScheduleConfig:
    """Settings of `journeyguard schedule`: a cron (UTC) per job of the daily pipeline, the
    early retrain on a monitor breach, and the retries of a failed job. The defaults run
    ingest, the weekly retrain, scores and monitoring before the outreach cycle."""

    ingest: str = "0 3 * * *"
    retrain: str = "30 3 * * 0"  # weekly, Sunday, after that day's ingest
    score: str = "0 5 * * *"
    monitor: str = "30 5 * * *"
    outreach: str | None = None  # None: `[outreach] schedule`
    early_retrain: bool = True  # a monitor breach retrains, at most once per retrain interval
    retries: int = 3  # more attempts of a failed run
    retry_backoff: datetime.timedelta = datetime.timedelta(minutes=10)  # doubled each retry
    misfire_grace: datetime.timedelta = datetime.timedelta(hours=1)

    def cron(self, job: str, outreach: OutreachConfig) -> str:
        """The cron expression of a job; the outreach cycle's defaults to `[outreach]`'s."""
        if job == "outreach":
            return self.outreach or outreach.schedule
        return getattr(self, job)


@dataclass(frozen=True)
class EngineConfig:
    """Where the features, dataset, score and analyze commands run: in this process (`local`), or
    on Apache Spark (`spark`, `features.engine.spark`) against any Spark master."""

    kind: Literal["local", "spark"] = "local"
    master: str = "local[2]"
    partitions: int = 8  # journey-hash partitions of the log; each becomes one EventLog
    source_format: Literal["parquet", "delta"] = "parquet"  # of [source] path, read by Spark
    table: str | None = None  # a Spark catalog table read instead of [source] path
    fit_fraction: float = 1.0  # share of journeys (by hash) the vocabulary and value models see
    train_rows: int = 500_000  # the stratified sample LightGBM trains on
    conf: dict[str, str] = field(default_factory=dict)  # extra Spark settings (spark.*)


@dataclass(frozen=True)
class Config:
    path: Path
    source: SourceConfig
    tasks: dict[str, TaskConfig]
    output_dir: Path
    analysis: AnalysisConfig = AnalysisConfig()
    serving: ServingConfig = ServingConfig()
    outreach: OutreachConfig = OutreachConfig()
    kpis: KpiConfig = KpiConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    experiments: dict[str, ExperimentConfig] = field(default_factory=dict)
    engine: EngineConfig = EngineConfig()

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def workspace(self) -> Workspace:
        """The paths under `output_dir`."""
        return Workspace(self.output_dir)

    def with_engine(self, kind: str | None) -> Config:
        """This config with the engine a command line chose (`--engine`); None keeps it."""
        if kind is None:
            return self
        if kind not in ("local", "spark"):
            raise ConfigError(f"--engine: expected 'local' or 'spark', got {kind!r}")
        if kind == "spark" and self.source.path is None and self.engine.table is None:
            raise ConfigError(f"{self.path}: Spark reads [source] path or [engine] table")
        return replace(self, engine=replace(self.engine, kind=kind))

    def task(self, name: str) -> TaskConfig:
        if name not in self.tasks:
            raise ConfigError(
                f"{self.path}: no task {name!r}{did_you_mean(name, self.tasks)}; "
                f"tasks: {sorted(self.tasks)}"
            )
        return self.tasks[name]

    def experiment(self, name: str) -> ExperimentConfig:
        """`[experiments.<name>]`, or for an outreach action without one of that name, the
        outbox's own contact and holdout decisions of the action."""
        if name in self.experiments:
            return self.experiments[name]
        if name in self.outreach.actions:
            action = self.outreach.actions[name]
            return ExperimentConfig(name, action.task, action=name, outbox=True)
        known = sorted(set(self.experiments) | set(self.outreach.actions))
        raise ConfigError(
            f"{self.path}: no experiment {name!r}{did_you_mean(name, known)}; experiments "
            f"([experiments.*], and each outreach action's own holdout): {known}"
        )

    def experiment_of(self, action: str) -> ExperimentConfig:
        """The experiment whose uplift champion ranks `action`: its `uplift_experiment`, else
        the one experiment that names the action, else the action's own outbox decisions."""
        chosen = self.outreach.actions[action].uplift_experiment
        if chosen is not None:
            return self.experiment(chosen)
        naming = [e for e in self.experiments.values() if e.action == action]
        return naming[0] if len(naming) == 1 else self.experiment(action)


def nanoseconds(duration: datetime.timedelta) -> int:
    """A duration in integer nanoseconds, the unit of event times."""
    return (duration // datetime.timedelta(microseconds=1)) * 1_000


def did_you_mean(key: str, options: Any) -> str:
    """A hint for a misspelled key or name, or nothing when none is close."""
    close = difflib.get_close_matches(key, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _redact(url: str) -> str:
    """A database URL without its password, for messages."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)
