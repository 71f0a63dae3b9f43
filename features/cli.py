"""The `journeyguard` command line: the features commands, and the root that composes the rest.

Other packages add their commands through the `journeyguard.commands` entry points of
pyproject.toml; they are imported only when run, so `analyze` never loads the training stack.
`journeyguard demo` runs the stages of `journeyguard.demo` entry points after its own, in order.
"""

# Without `from __future__ import annotations`: typer reads the annotations of every command
# on every run, and evaluating them from strings cost ~4 ms; names imported only for type
# checking are quoted.
import gc
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from journeyguard.features.config.model import Config
from journeyguard.features.config.reader import load_config
from journeyguard.features.errors import ConfigError, LoadError
from journeyguard.features.options import (
    ConfigOption,
    EngineOption,
    PastOption,
    parse_as_of,
    parse_as_of_utc,
)
from journeyguard.features.sources.log import load_log
from journeyguard.features.tables import write_table

if TYPE_CHECKING:  # annotations only (typer 0.28 carries a click of its own: see _as_click)
    from importlib.metadata import EntryPoint

    import click
    import pandas as pd

    from journeyguard.features.dataset import Dataset

COMMANDS_GROUP = "journeyguard.commands"
DEMO_GROUP = "journeyguard.demo"
SIMULATOR_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "simulator.toml"


class _RootGroup(TyperGroup):
    """Lists registered commands beside its own and imports one only when it is asked for."""

    def list_commands(self, ctx: "click.Context") -> list[str]:
        return sorted({*super().list_commands(ctx), *_registered(COMMANDS_GROUP)})

    def invoke(self, ctx: "click.Context") -> Any:
        # Bad input is the user's to fix: a message naming the file and key, exit status 2.
        try:
            return super().invoke(ctx)
        except (ConfigError, LoadError) as error:
            typer.secho(f"error: {error}", fg="red", err=True)
            raise typer.Exit(2) from None

    def get_command(self, ctx: "click.Context", name: str) -> "click.Command | None":
        command = super().get_command(ctx, name)
        if command is None and name in (registered := _registered(COMMANDS_GROUP)):
            command = _as_click(registered[name].load(), name)
        return command


app = typer.Typer(
    cls=_RootGroup,
    no_args_is_help=True,
    add_completion=False,
    help="JourneyGuard: post-purchase journeys, churn and escalation risk, outreach.",
)


def main() -> None:
    """The console script: turns off the telemetry of the libraries, then runs the command."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    keep_freed_memory()
    try:
        app()
    finally:
        # Leaving, Python would sweep every object still alive for cycles, to free memory the
        # process is about to give back; frozen, they are freed without the sweep.
        gc.freeze()


def keep_freed_memory() -> None:
    """Has glibc reuse freed memory instead of handing it back to the system: arrays of a few
    MB (a column of a log) otherwise get pages of their own, mapped and zeroed anew each time,
    at the cost of page faults and system time; the peak does not grow (bench/README.md)."""
    if sys.platform != "linux":
        return
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")  # glibc; another libc (musl) keeps its own ways
    except OSError:
        return
    trim_threshold, top_pad, mmap_threshold = -1, -2, -3  # mallopt's parameters (malloc.h)
    libc.mallopt(mmap_threshold, 32 << 20)  # larger allocations only get their own pages
    libc.mallopt(trim_threshold, 1 << 30)  # keep up to 1 GiB freed at the heap's top
    libc.mallopt(top_pad, 64 << 20)  # and grow the heap 64 MiB at a time


@app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="The events file to write (Parquet).")],
    customers: Annotated[int, typer.Option(min=1, help="How many customers.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same log.")] = 0,
    start: Annotated[str, typer.Option(help="First day of the simulated window.")] = "2025-01-01",
    days: Annotated[int, typer.Option(min=30, help="Length of the window in days.")] = 365,
    campaign: Annotated[
        bool,
        typer.Option(
            "--campaign",
            help="Plant a randomised discount campaign (8 weekly waves from day 180, 10 % "
            "held out) whose effect differs by customer; its truth goes beside the log.",
        ),
    ] = False,
    follow_ups: Annotated[
        bool,
        typer.Option(
            "--follow-ups",
            help="With --campaign: also follow up each customer's first ticket of the campaign "
            "weeks (10 % held out); it helps tickets bounced between teams.",
        ),
    ] = False,
) -> None:
    """Simulate post-purchase journeys with a known, planted truth."""
    from journeyguard.features.sources.simulate import Campaign, write_simulation
    from journeyguard.features.sources.simulate import simulate as run_simulation

    if follow_ups and not campaign:
        raise typer.BadParameter("goes with --campaign", param_hint="--follow-ups")
    planted = Campaign(follow_ups=follow_ups) if campaign else None
    simulation = run_simulation(customers, seed, start=start, days=days, campaign=planted)
    written = write_simulation(simulation, out)
    typer.echo(f"simulated {len(simulation.events):,} events of {customers:,} customers")
    for kind, path in written.items():
        typer.echo(f"  {kind:<10} {path}")


@app.command()
def validate(
    config: ConfigOption,
    quarantine: Annotated[
        Path | None,
        typer.Option(help="Where to write rejected rows; default the workspace's quarantine.csv."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Load the configured source, print the load summary and write rejected rows aside."""
    settings = load_config(config)
    summary = validate_source(settings, quarantine)
    typer.echo(json.dumps(summary, indent=2) if as_json else summary["text"])


def validate_source(settings: Config, quarantine: Path | None = None) -> dict[str, Any]:
    """Loads the source of `settings`, writes its quarantine and returns the summary."""
    from journeyguard.features.sources.load import load_events
    from journeyguard.features.sources.quarantine import write_quarantine

    result = load_events(settings.source)
    path = quarantine or settings.workspace.quarantine
    write_quarantine(result.quarantine, path)
    summary = result.summary.to_dict()
    unknown = _unknown_task_events(settings, set(result.log.steps))
    summary |= {"quarantine_file": str(path), "unknown_task_events": unknown}
    text = result.summary.to_text() + f"\nquarantine    {path}"
    for task, events in unknown.items():
        text += f"\nwarning: task {task!r} matches events never seen in the log: {events}"
    return summary | {"text": text}


@app.command()
def ingest(
    config: ConfigOption,
    full: Annotated[
        bool, typer.Option("--full", help="Ingest from scratch even if the source only grew.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Validate the file source once into the output folder's store (appending new rows)."""
    from journeyguard.features.sources.store import ingest as ingest_source

    result = ingest_source(load_config(config), full=full)
    typer.echo(json.dumps(result.to_dict(), indent=2) if as_json else result.to_text())


@app.command()
def analyze(
    config: ConfigOption,
    out: Annotated[Path, typer.Option(help="Folder for analysis.json and report.html.")],
    task: Annotated[
        str | None, typer.Option(help="A task of the config: adds the critical path analysis.")
    ] = None,
    as_of: PastOption = None,
    engine: EngineOption = None,
) -> None:
    """Paths, variants, funnels, bottlenecks and the critical path analysis of a task.
    On Spark: the path counts (transitions, variants, start and end steps, step matrix,
    funnels) merged across partitions, in transitions.parquet, variants.parquet and
    path-counts.json."""
    settings = load_config(config).with_engine(engine)
    if settings.engine.kind == "spark":
        if task is not None or as_of is not None:
            raise ConfigError("--engine spark: analyze counts paths; --task and --as-of are local")
        typer.echo(run_spark_analysis(settings, out))
        return
    summary = run_analysis(settings, out, task, parse_as_of(as_of))
    typer.echo(summary)


def run_analysis(
    settings: Config, out: Path, task: str | None, as_of: "pd.Timestamp | None"
) -> str:
    """Loads the source, analyses it and writes analysis.json and report.html into `out`."""
    from journeyguard.features.analysis.assemble import analyze as analyze_log
    from journeyguard.features.analysis.assemble import write_analysis

    task_config = settings.task(task) if task else None
    # Path analysis needs journeys, steps and times only; a task may match on a column.
    wanted = [task_config.match.column] if task_config and task_config.match.column else []
    wanted += _kpi_columns(settings) if task_config else []
    log = load_log(settings, columns=wanted)
    try:
        analysis = analyze_log(
            log,
            settings.analysis,
            source=settings.source.display_name,
            task=task_config,
            as_of=as_of,
            kpis=settings.kpis,
        )
    except ValueError as error:
        raise ConfigError(f"{settings.path}: {error}") from None
    write_analysis(analysis, out)
    summary = analysis.summary
    lines = [
        f"analysed {summary['meta']['events']:,} events of "
        f"{summary['meta']['journeys']:,} journeys: {summary['meta']['variants']:,} variants",
        *(f"  {out / name}" for name in ("analysis.json", "variants.csv", "report.html")),
    ]
    if summary["critical"]:
        top = summary["critical"]["steps"][:3]
        lines.append(
            f"  critical steps for {task}: "
            + ", ".join(
                f"{row['item']} ({row['rate_with']:.0%} vs {row['rate_without']:.0%})"
                for row in top
            )
        )
    return "\n".join(lines)


def run_spark_analysis(settings: Config, out: Path) -> str:
    """The path counts of the configured source on Spark, written into `out`."""
    from journeyguard.features.engine.analysis import spark_path_counts, write_path_counts
    from journeyguard.features.engine.session import spark_session
    from journeyguard.features.engine.source import load_spark_log

    log = load_spark_log(spark_session(settings.engine), settings)
    funnels = {name: list(steps) for name, steps in settings.analysis.funnels.items()}
    tables = spark_path_counts(log, settings.analysis, funnels)
    written = write_path_counts(tables, out)
    return "\n".join(
        [
            f"counted paths of {log.n_events:,} events of {log.n_journeys:,} journeys on Spark: "
            f"{len(tables['variants']):,} variants, {len(tables['transitions']):,} transitions",
            _quarantine_line(settings, log.quarantined),
            *(f"  {path}" for path in written),
        ]
    )


def _quarantine_line(settings: Config, quarantined: dict[str, int]) -> str:
    total, path = sum(quarantined.values()), settings.workspace.quarantine_table
    reasons = f" {quarantined}" if quarantined else ""
    return f"  quarantined {total:,} rows{reasons} -> {path}"


def _kpi_columns(settings: Config) -> list[str]:
    """The columns the critical steps' KPI effects read: survey scores and the case id."""
    kpis = settings.kpis
    surveys = [kpi.column for kpi in (kpis.csat, kpis.nps) if kpi is not None]
    case = [kpis.resolution.case_column] if kpis.resolution and kpis.resolution.case_column else []
    return [*surveys, *case]


@app.command()
def kpis(
    config: ConfigOption,
    out: Annotated[Path, typer.Option(help="Folder for kpis.json and kpis.html.")],
    by: Annotated[
        str | None,
        typer.Option(help="Groups: month, week, variant or attribute:<column> (default: none)."),
    ] = None,
    as_of: PastOption = None,
) -> None:
    """CSAT, NPS, resolution time, churn and repeat purchase rates, with 95 % intervals."""
    from journeyguard.features.kpis.compute import parse_grouping

    settings = load_config(config)
    try:
        grouping = parse_grouping(by)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--by") from None
    typer.echo(run_kpis(settings, out, by=grouping, as_of=parse_as_of(as_of)))


def run_kpis(
    settings: Config, out: Path, by: Any = None, as_of: "pd.Timestamp | None" = None
) -> str:
    """Loads the source, computes the KPIs and writes kpis.json and kpis.html into `out`."""
    from journeyguard.features.kpis.compute import Grouping, compute_kpis
    from journeyguard.features.kpis.page import summary_lines, write_kpis

    result = compute_kpis(load_log(settings), settings, by or Grouping(), as_of)
    json_path, html_path = write_kpis(result, out)
    meta = result["meta"]
    head = f"KPIs as of {meta['as_of']} by {meta['by']}, {meta['journeys']:,} journeys:"
    return "\n".join([head, *summary_lines(result), f"  {json_path}", f"  {html_path}"])


@app.command()
def features(
    config: ConfigOption,
    as_of: Annotated[str, typer.Option("--as-of", help="ISO 8601; UTC if no offset.")],
    out: Annotated[
        Path, typer.Option(help="The features file (Parquet or CSV; on Spark a Parquet folder).")
    ],
    engine: EngineOption = None,
) -> None:
    """Features of every journey active at --as-of, from events at or before it only."""
    from journeyguard.features.current import features_table

    settings = load_config(config).with_engine(engine)
    if settings.engine.kind == "spark":
        typer.echo(run_spark_features(settings, parse_as_of(as_of), out))
        return
    table = features_table(load_log(settings), parse_as_of_utc(as_of))
    write_table(table, out)
    typer.echo(f"{table.num_rows:,} journeys x {table.num_columns - 2} features -> {out}")


def run_spark_features(settings: Config, as_of: Any, out: Path) -> str:
    """`features` on Spark: a folder of Parquet parts at `out`."""
    from journeyguard.features.engine.commands import spark_features, write_parquet
    from journeyguard.features.engine.session import spark_session
    from journeyguard.features.engine.source import load_spark_log

    spark = spark_session(settings.engine)
    log = load_spark_log(spark, settings)
    rows = write_parquet(spark_features(spark, log, as_of, settings.engine), out)
    return f"{rows:,} journeys on Spark -> {out}\n" + _quarantine_line(settings, log.quarantined)


@app.command()
def dataset(
    config: ConfigOption,
    task: Annotated[str, typer.Option(help="A task of the config.")],
    out: Annotated[Path, typer.Option(help="The dataset file (Parquet or CSV).")],
    test_from: Annotated[
        str | None,
        typer.Option("--test-from", help="Start of the test period (default: the last fifth)."),
    ] = None,
    engine: EngineOption = None,
) -> None:
    """The task's labelled snapshots with their features and train/gap/test split."""
    from journeyguard.features.dataset import build_dataset

    settings = load_config(config).with_engine(engine)
    task_config = settings.task(task)
    if settings.engine.kind == "spark":
        typer.echo(run_spark_dataset(settings, task_config, parse_as_of(test_from), out))
        return
    log = load_log(settings)
    try:
        data = build_dataset(log, task_config, test_from=parse_as_of(test_from))
    except ValueError as error:
        raise ConfigError(f"{settings.path}: {error}") from None
    write_table(data.frame, out)
    typer.echo(_dataset_summary(data, out))


def run_spark_dataset(settings: Config, task: Any, test_from: Any, out: Path) -> str:
    """`dataset` on Spark: a folder of Parquet parts at `out`."""
    from journeyguard.features.engine.commands import spark_dataset, write_parquet
    from journeyguard.features.engine.session import spark_session
    from journeyguard.features.engine.source import load_spark_log

    spark = spark_session(settings.engine)
    log = load_spark_log(spark, settings)
    try:
        data = spark_dataset(spark, log, task, settings.engine, test_from)
    except ValueError as error:
        raise ConfigError(f"{settings.path}: {error}") from None
    rows = write_parquet(data.frame, out)
    return (
        f"{rows:,} snapshots on Spark, test from {data.test_from.isoformat()}; "
        f"excluded {data.excluded} -> {out}\n" + _quarantine_line(settings, log.quarantined)
    )


def _dataset_summary(data: "Dataset", out: Path) -> str:
    counts = data.frame["split"].value_counts().to_dict()
    return (
        f"{len(data.frame):,} snapshots {counts}, positive rate {data.frame['y'].mean():.1%}, "
        f"{len(data.feature_names)} features, test from {data.test_from.isoformat()}; "
        f"excluded {data.excluded} -> {out}"
    )


@app.command()
def demo(
    config: Annotated[
        Path,
        typer.Option("--config", "-c", help="A configuration whose source is the simulated log."),
    ] = SIMULATOR_CONFIG,
    customers: Annotated[int, typer.Option(min=100)] = 20_000,
    seed: Annotated[int, typer.Option()] = 7,
) -> None:
    """Run every stage on a simulated log: simulate, validate, then each later stage."""
    settings = load_config(config)
    if settings.source.path is None:
        raise ConfigError(f"{settings.path}: the demo simulates into [source] path; none is set")
    typer.secho("== simulate", bold=True)
    simulate(out=settings.source.path, customers=customers, seed=seed)
    # A new simulated world: outreach written back about the previous one does not belong in it.
    settings.workspace.outreach_events.unlink(missing_ok=True)
    typer.secho("== validate", bold=True)
    typer.echo(validate_source(settings)["text"])
    for task in settings.tasks:
        typer.secho(f"== analyze --task {task}", bold=True)
        out = settings.workspace.analysis(task)
        typer.echo(run_analysis(settings, out, task, None))
    typer.secho("== kpis --by month", bold=True)
    from journeyguard.features.kpis.compute import Grouping

    typer.echo(run_kpis(settings, settings.workspace.kpis, Grouping("month")))
    _demo_features(settings)
    for name, entry in sorted(_registered(DEMO_GROUP).items()):
        typer.secho(f"== {name.split('_', 1)[-1]}", bold=True)
        entry.load()(settings)
    typer.echo(
        f"console: run `make serve` (or `.venv/bin/journeyguard serve --config {settings.path}`)"
        " and open http://127.0.0.1:3000/console"
    )


def _demo_features(settings: Config) -> None:
    """Features at the last event, and each task's snapshot dataset."""
    import pandas as pd

    from journeyguard.features.dataset import build_dataset, features_at

    log = load_log(settings)
    out = settings.workspace.features
    typer.secho("== features (as of the last event)", bold=True)
    table = features_at(log, pd.Timestamp(log.last_time, tz="UTC"))
    write_table(table, out)
    typer.echo(f"{len(table):,} journeys x {table.shape[1] - 2} features -> {out}")
    for name, task_config in settings.tasks.items():
        typer.secho(f"== dataset --task {name}", bold=True)
        data = build_dataset(log, task_config)
        out = settings.workspace.dataset(name)
        write_table(data.frame, out)
        typer.echo(_dataset_summary(data, out))


def _unknown_task_events(settings: Config, steps: set[str]) -> dict[str, list[str]]:
    unknown = {
        name: [e for e in task.match.events if e not in steps]
        for name, task in settings.tasks.items()
    }
    return {name: events for name, events in unknown.items() if events}


def _registered(group: str) -> dict[str, "EntryPoint"]:
    from importlib.metadata import entry_points  # slow to import: only for other packages

    return {entry.name: entry for entry in entry_points(group=group)}


def _as_click(target: typer.Typer | Callable[..., Any], name: str) -> "click.Command":
    """A registered typer app, or a plain function with typer annotations, as a click command
    (typer's own: typer 0.28 carries a copy of click, so importing the click package as well
    would cost every command about 10 ms more)."""
    if not isinstance(target, typer.Typer):
        single = typer.Typer()
        single.command(name=name)(target)
        target = single
    return typer.main.get_command(target)
