"""`journeyguard train`, `score` and `monitor` (registered in pyproject.toml's entry points),
and the training stage of `journeyguard demo`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console

from journeyguard.features.config.model import Config
from journeyguard.features.config.reader import load_config
from journeyguard.features.errors import ConfigError
from journeyguard.features.options import ConfigOption, EngineOption, parse_as_of
from journeyguard.features.sources.log import load_log

status = Console(stderr=True)  # a spinner naming training's current step


def train(
    config: ConfigOption,
    task: Annotated[str, typer.Option(help="A task of the config.")],
    test_from: Annotated[
        str | None,
        typer.Option("--test-from", help="Start of the test period (default: the last fifth)."),
    ] = None,
    predictions_out: Annotated[
        Path | None,
        typer.Option(
            "--predictions-out", help="Write the test rows with their scores (Parquet or CSV)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same model.")] = 0,
    engine: EngineOption = None,
) -> None:
    """Train the task's candidate models, register the one with the best validation log loss,
    log them all to MLflow, promote it if it beats the champion. On Spark the dataset is built
    there and the models train on a stratified sample of its journeys ([engine] train_rows)."""
    settings = load_config(config).with_engine(engine)
    from journeyguard.training.champion import train_and_register

    sample = _spark_sample(settings, task, parse_as_of(test_from))
    with status.status("training") as spinner:
        result = train_and_register(
            settings,
            task,
            parse_as_of(test_from),
            seed,
            predictions_out,
            progress=spinner.update,
            sample=sample,
        )
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        typer.echo(_summary(result))


def _spark_sample(settings: Config, task: str, test_from: Any) -> Any:
    """On Spark, the stratified training sample of the task's dataset; None locally."""
    if settings.engine.kind != "spark":
        return None
    from journeyguard.features.engine.session import spark_session
    from journeyguard.features.engine.source import load_spark_log
    from journeyguard.training.spark_train import training_sample

    spark = spark_session(settings.engine)
    log = load_spark_log(spark, settings)
    try:
        return training_sample(spark, log, settings.task(task), settings.engine, test_from)
    except ValueError as error:
        raise ConfigError(f"{settings.path}: {error}") from None


def score(
    config: ConfigOption,
    task: Annotated[str, typer.Option(help="A task of the config.")],
    as_of: Annotated[str, typer.Option("--as-of", help="ISO 8601; UTC if no offset.")],
    out: Annotated[
        Path | None,
        typer.Option(
            help="The risk list (Parquet, or CSV by suffix); default the workspace's "
            "risk-<task>.parquet, the list the prediction service's /risk_list reads; on "
            "Spark a folder of Parquet parts."
        ),
    ] = None,
    engine: EngineOption = None,
) -> None:
    """Score every journey the task is for at --as-of with its champion, with its top reasons;
    the journeys that lapsed (quiet past the task's `active_within`) go to a list of their own."""
    from journeyguard.training.risk_lists import write_risk_lists

    settings = load_config(config).with_engine(engine)
    out = out or settings.workspace.risk_list(task)
    if settings.engine.kind == "spark":
        typer.echo(_spark_score(settings, task, parse_as_of(as_of), out))
        return
    table, lapsed = write_risk_lists(settings, task, parse_as_of(as_of), out=out)
    typer.echo(
        f"scored {len(table):,} journeys with {table['task'].iloc[0] if len(table) else task}"
        f" v{table['model_version'].iloc[0] if len(table) else '?'}; "
        f"{(table['band'] == 'high').sum():,} high risk -> {out}; {len(lapsed):,} lapsed -> "
        f"{settings.workspace.lapsed_list(task)}"
    )


def _spark_score(settings: Config, task: str, as_of: Any, out: Path) -> str:
    """`score` on Spark: the risk list as a folder of Parquet parts (the lapsed list is the
    local command's)."""
    from journeyguard.features.engine.commands import write_parquet
    from journeyguard.features.engine.session import spark_session
    from journeyguard.features.engine.source import load_spark_log
    from journeyguard.training.champion import load_champion
    from journeyguard.training.spark_score import spark_scores

    model, logged = load_champion(settings, task)
    spark = spark_session(settings.engine)
    log = load_spark_log(spark, settings)
    frame = spark_scores(
        spark, log, model, as_of, settings.task(task), settings.engine, version=logged.version
    )
    rows = write_parquet(frame, out)
    return f"scored {rows:,} journeys with {task} v{logged.version} on Spark -> {out}"


def monitor(
    config: ConfigOption,
    task: Annotated[str, typer.Option(help="A task of the config.")],
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="ISO 8601; UTC if no offset (default: the log's last event)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Check the task's champion for drift and decay: PSI of its features and risk score against
    its training reference, new or vanished steps, and on the latest closed horizon calibration
    by band and realised ROC AUC. Writes <output dir>/monitor-<task>.json and logs the numbers
    to the champion's MLflow run. Exits 0 on a breach too (a breach is a finding, not an error):
    read `breach` in the JSON."""
    from journeyguard.training.champion import monitor_champion

    settings = load_config(config)
    result = monitor_champion(settings, task, parse_as_of(as_of))
    typer.echo(json.dumps(result, indent=2, default=str) if as_json else monitor_summary(result))


def monitor_summary(result: dict[str, Any]) -> str:
    """A monitor result for people: the verdict first, then what moved and how outcomes went."""
    lines = [
        f"{result['task']} v{result['model_version']} at {result['as_of']}: "
        f"{'BREACH' if result['breach'] else 'no breach'} "
        f"({len(result['breaches'])} finding(s)); {result['rows']:,} journeys vs "
        f"{result['reference_rows']:,} at {result['reference_as_of']}",
        f"  risk score PSI {result['score_psi']:.3f} "
        f"(threshold {result['thresholds']['score_psi']:g})",
        f"  features that moved most (PSI, threshold {result['thresholds']['feature_psi']:g}):",
        *(f"    {row['psi']:.3f}  {row['feature']}" for row in result["top_features"][:5]),
        f"  steps: new {result['steps']['new'] or 'none'}; "
        f"vanished {result['steps']['vanished'] or 'none'}",
    ]
    outcomes = result["outcomes"]
    if not outcomes["rows"]:
        lines.append(f"  outcomes: none yet ({outcomes.get('reason', '')})")
        return "\n".join(lines)
    auc, test_auc = outcomes["roc_auc"], outcomes["test_roc_auc"]
    lines.append(
        f"  outcomes of {outcomes['rows']:,} journeys at {outcomes['as_of']}: realised "
        f"{outcomes['realised_rate']:.1%} vs predicted {outcomes['predicted_rate']:.1%}; ROC AUC "
        f"{'n/a' if auc is None else f'{auc:.3f}'} vs test "
        f"{'n/a' if test_auc is None else f'{test_auc:.3f}'}"
    )
    lines += [
        f"    {row['band']:<6} {row['rows']:>7,}  predicted {row['predicted']:.1%}  realised "
        f"{row['realised']:.1%} [{row['realised_low']:.1%}, {row['realised_high']:.1%}]"
        f"{'  BREACH' if row['breach'] else ''}"
        for row in outcomes["by_band"]
    ]
    return "\n".join(lines)


def demo_stage(settings: Config) -> None:
    """The demo's training stage: train every task, score the log at its last event, then
    monitor each champion there."""
    from journeyguard.training.champion import monitor_champion, train_and_register
    from journeyguard.training.risk_lists import write_risk_lists

    for task in settings.tasks:
        with status.status("training") as spinner:
            result = train_and_register(settings, task, None, seed=0, progress=spinner.update)
        typer.echo(_summary(result))
        log = load_log(settings)
        table, lapsed = write_risk_lists(settings, task, pd.Timestamp(log.last_time, tz="UTC"), log)
        typer.echo(
            f"scored {len(table):,} journeys -> {settings.workspace.risk_list(task)}; "
            f"{(table['band'] == 'high').sum():,} high risk; {len(lapsed):,} lapsed"
        )
        for row in table.head(3).itertuples():
            typer.echo(
                f"  {row.customer_id} {task} risk {row.risk:.1%}: {row.reason_1}; "
                f"{row.reason_2}; {row.reason_3}"
            )
    for task in settings.tasks:  # after every task is trained: monitor at the log's end
        typer.echo(monitor_summary(monitor_champion(settings, task)))


def _summary(result: dict[str, Any]) -> str:
    """The registered version and the rule; one line per candidate (validation log loss, then
    test metrics), the winner marked, and why it won; BG/NBD alone for comparison."""

    def line(mark: str, name: str, validation: str, test: dict[str, float]) -> str:
        return (
            f"\n{mark} {name:<15}{validation:>8}  ROC AUC {test['roc_auc']:.3f}  PR AUC "
            f"{test['pr_auc']:.3f}  Brier {test['brier']:.4f}  lift@10% {test['lift_top10']:.2f}"
        )

    lines = "".join(
        line(
            "*" if c["name"] == result["winner"] else " ",
            c["name"],
            f"{c['validation_log_loss']:.4f}",
            {k.removeprefix("test_"): v for k, v in c.items()},
        )
        for c in result["candidates"]
    )
    bgnbd = line(" ", "bg/nbd alone", "", result["bgnbd"]) if result["bgnbd"] else ""
    return (
        f"{result['model_name']} v{result['version']} "
        f"({'promoted to champion' if result['promoted'] else 'not promoted'}: "
        f"{result['rule']})"
        f"\n  {'candidate':<15}{'val loss':>8}  test period"
        + lines
        + bgnbd
        + f"\n  winner {result['winner']}: {result['winner_reason']}"
        + _sample_line(result.get("sample"))
    )


def _sample_line(sample: dict[str, Any] | None) -> str:
    """How much of the population a Spark-built dataset's sample kept, when there was one."""
    if not sample:
        return ""
    return (
        f"\n  trained on a stratified sample: {sample['sample_rate']:.2%} of "
        f"{sample['population_journeys']:,} journeys ({sample['sample_rows']:,} of "
        f"{sample['population_rows']:,} snapshots)"
    )
