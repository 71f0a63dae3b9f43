"""`journeyguard train`, `score` and `monitor` (registered in pyproject.toml's entry points),
and the training stage of `journeyguard demo`."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import pandas as pd
import typer
from rich.console import Console

from journeyguard.features.cli import ConfigOption, load_log, parse_as_of, write_table
from journeyguard.features.config.model import Config
from journeyguard.features.config.reader import load_config
from journeyguard.features.errors import ConfigError

if TYPE_CHECKING:
    from journeyguard.features.eventlog.log import EventLog

PROMOTION_METRIC = "roc_auc"
status = Console(stderr=True)


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
) -> None:
    """Train the task's LightGBM model and baselines, log them to MLflow, promote if better."""
    settings = load_config(config)
    result = train_and_register(settings, task, parse_as_of(test_from), seed, predictions_out)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        typer.echo(_summary(result))


def score(
    config: ConfigOption,
    task: Annotated[str, typer.Option(help="A task of the config.")],
    as_of: Annotated[str, typer.Option("--as-of", help="ISO 8601; UTC if no offset.")],
    out: Annotated[
        Path | None,
        typer.Option(
            help="The risk list (Parquet, or CSV by suffix); default <output dir>/risk-<task>"
            ".parquet, the list the prediction service's /risk_list reads."
        ),
    ] = None,
) -> None:
    """Score every journey active at --as-of with the task's champion, with its top reasons."""
    from journeyguard.training.score import risk_list_path

    settings = load_config(config)
    out = out or risk_list_path(settings, task)
    table = score_with_champion(settings, task, parse_as_of(as_of))
    write_table(table, out)
    typer.echo(
        f"scored {len(table):,} journeys with {table['task'].iloc[0] if len(table) else task}"
        f" v{table['model_version'].iloc[0] if len(table) else '?'}; "
        f"{(table['band'] == 'high').sum():,} high risk -> {out}"
    )


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
    settings = load_config(config)
    result = monitor_champion(settings, task, parse_as_of(as_of))
    typer.echo(json.dumps(result, indent=2, default=str) if as_json else monitor_summary(result))


def monitor_champion(
    settings: Config, task: str, as_of: pd.Timestamp | None = None
) -> dict[str, Any]:
    """Runs `training.monitor.monitor` on the champion at `as_of` (default: the log's last
    event), writes the result file and logs its numbers to the champion's run."""
    import time

    from journeyguard.training import registry
    from journeyguard.training.monitor import monitor as run_monitor
    from journeyguard.training.monitor import result_path, write_result

    task_config = settings.task(task)
    uri = registry.tracking_uri()
    loaded = registry.load_model(task, registry.CHAMPION, uri=uri)
    if loaded is None:
        raise ConfigError(
            f"no champion model for task {task!r} yet: run `journeyguard train "
            f"--config {settings.path} --task {task}` first"
        )
    model, logged = loaded
    log = load_log(settings)
    as_of = as_of if as_of is not None else pd.Timestamp(log.last_time, tz="UTC")
    try:
        result = run_monitor(model, log, as_of, task_config, settings.monitoring)
    except ValueError as error:  # e.g. a champion without a reference profile
        raise ConfigError(f"{settings.path}: {error}") from None
    result = {"model_version": logged.version, "run_id": logged.run_id, **result}
    result["path"] = str(write_result(result, result_path(settings.output_dir, task)))
    registry.log_monitoring(
        logged.run_id,
        {
            "monitor_score_psi": result["score_psi"],
            "monitor_max_feature_psi": result["max_feature_psi"],
            "monitor_breach": float(result["breach"]),
            "monitor_realised_roc_auc": result["outcomes"]["roc_auc"],
        },
        uri=uri,
        step=int(as_of.value // 86_400_000_000_000),  # the day of as_of: history in data time
        timestamp_ms=int(time.time() * 1000),
    )
    return result


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


def train_and_register(
    settings: Config,
    task: str,
    test_from: pd.Timestamp | None,
    seed: int,
    predictions_out: Path | None = None,
) -> dict[str, Any]:
    """Trains, evaluates, logs to MLflow and applies the promotion rule; returns the result."""
    from journeyguard.training import registry
    from journeyguard.training.train import train_task

    task_config = settings.task(task)
    # MLflow warns on every custom model that it is pickled; we know, and chose it.
    logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)
    with status.status(f"loading the log of {settings.name}"):
        log = load_log(settings)
    with status.status(f"training {task}: dataset, LightGBM, baseline, evaluation"):
        try:
            run = train_task(
                log,
                task_config,
                test_from=test_from,
                seed=seed,
                reference_bins=settings.monitoring.bins,
            )
        except ValueError as error:
            raise ConfigError(f"{settings.path}: {error}") from None
    uri = registry.tracking_uri()
    with status.status("logging to MLflow"), tempfile.TemporaryDirectory() as folder:
        logged = registry.log_model(
            run.model,
            uri=uri,
            params=_params(run, settings),
            metrics=_metrics(run),
            tags={"dataset_fingerprint": run.fingerprint, "config": str(settings.path)},
            artifacts=_artifacts(run, Path(folder)),
            input_example=run.test_features.head(5),
        )
    test = run.dataset.frame["split"].to_numpy() == "test"
    champion_score, unusable = _champion_score(task, uri, run, test)
    promoted, rule = registry.promote(
        task,
        logged,
        challenger_score=run.metrics[PROMOTION_METRIC],
        champion_score=champion_score,
        metric=PROMOTION_METRIC,
        uri=uri,
    )
    if unusable:
        rule = f"{rule} (the champion could not be scored with this code: {unusable})"
    if predictions_out is not None:
        write_table(run.predictions, predictions_out)
    return {
        "task": task,
        "model_name": logged.model_name,
        "version": logged.version,
        "promoted": promoted,
        "rule": rule,
        "metrics": run.metrics,
        "baseline": run.baseline_metrics,
        "bgnbd": run.bgnbd_metrics,
        "by_prefix": run.by_prefix.to_dict(orient="records"),
        "run_id": logged.run_id,
        "test_from": run.dataset.test_from.isoformat(),
    }


def _champion_score(task: str, uri: str, run: Any, test: np.ndarray) -> tuple[float | None, str]:
    """The champion's metric on this run's test rows, or None and why it has none: a champion
    saved by an incompatible version of the code cannot be loaded or scored, and then the new
    model replaces it rather than training failing."""
    from journeyguard.training import registry
    from journeyguard.training.metrics import evaluate

    try:
        champion = registry.load_model(task, "champion", uri=uri)
        if champion is None:
            return None, ""
        snapshots = run.dataset.snapshots.subset(test)
        scores = champion[0].predict(snapshots)
    except Exception as error:  # any failure of an old pickle: report it, do not crash
        return None, f"{type(error).__name__}: {error}"
    return evaluate(run.dataset.frame.loc[test, "y"].to_numpy(), scores)[PROMOTION_METRIC], ""


def score_with_champion(
    settings: Config, task: str, as_of: pd.Timestamp, log: EventLog | None = None
) -> pd.DataFrame:
    """The task's journeys active at `as_of` scored by its champion, with their top reasons;
    `log` is the settings' log (`load_log`) unless given."""
    from journeyguard.training import registry
    from journeyguard.training.score import score_log

    settings.task(task)
    loaded = registry.load_model(task, "champion", uri=registry.tracking_uri())
    if loaded is None:
        raise ConfigError(
            f"no champion model for task {task!r} yet: run `journeyguard train "
            f"--config {settings.path} --task {task}` first"
        )
    model, logged = loaded
    log = load_log(settings) if log is None else log
    return score_log(log, model, as_of, version=logged.version)


def demo_stage(settings: Config) -> None:
    """The demo's training stage: train every task, score the log at its last event, then
    monitor each champion there."""
    from journeyguard.training.score import risk_list_path

    for task in settings.tasks:
        result = train_and_register(settings, task, None, seed=0)
        typer.echo(_summary(result))
        as_of = pd.Timestamp(load_log(settings).last_time, tz="UTC")
        table = score_with_champion(settings, task, as_of)
        out = risk_list_path(settings, task)
        write_table(table, out)
        top = table.iloc[0]
        typer.echo(
            f"scored {len(table):,} journeys -> {out}; riskiest {top['customer_id']} "
            f"({top['risk']:.0%}): {top['reason_1']}; {top['reason_2']}; "
            f"{top['reason_3']}"
        )
    for task in settings.tasks:  # after every task is trained: monitor at the log's end
        typer.echo(monitor_summary(monitor_champion(settings, task)))


def _summary(result: dict[str, Any]) -> str:
    def line(name: str, metrics: dict[str, float] | None) -> str:
        if not metrics:
            return ""
        return (
            f"\n  {name:<10} ROC AUC {metrics['roc_auc']:.3f}  PR AUC {metrics['pr_auc']:.3f}"
            f"  Brier {metrics['brier']:.4f}  lift@10% {metrics['lift_top10']:.2f}"
        )

    return (
        f"{result['model_name']} v{result['version']} "
        f"({'promoted to champion' if result['promoted'] else 'not promoted'}: "
        f"{result['rule']})"
        + line("lightgbm", result["metrics"])
        + line("baseline", result["baseline"])
        + line("bg/nbd", result["bgnbd"])
    )


def _params(run: Any, settings: Config) -> dict[str, Any]:
    task = run.task
    return {
        "task": task.name,
        "label": task.label,
        "horizon": str(task.horizon),
        "snapshots": str(task.snapshots),
        "match": str(task.match),
        "seed": run.seed,
        "test_from": run.dataset.test_from.isoformat(),
        "features": len(run.model.feature_names),
        "best_iteration": run.model.info["best_iteration"],
        "calibration": run.model.info["calibration"],
        "source": settings.source.display_name,
        **{f"rows_{k}": v for k, v in run.model.info["rows"].items()},
    }


def _metrics(run: Any) -> dict[str, float]:
    metrics = {f"test_{k}": v for k, v in run.metrics.items()}
    metrics |= {f"baseline_test_{k}": v for k, v in run.baseline_metrics.items()}
    metrics |= {f"bgnbd_test_{k}": v for k, v in (run.bgnbd_metrics or {}).items()}
    return {k: float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)}


def _artifacts(run: Any, folder: Path) -> dict[str, Path]:
    from journeyguard.training import plots

    y = run.predictions["y"].to_numpy()
    score = run.predictions["score"].to_numpy()
    baseline = run.baseline.predict_proba(run.test_features)[:, 1]
    gains = run.model.classifier.booster_.feature_importance(importance_type="gain")
    run.by_prefix.to_csv(folder / "metrics_by_prefix.csv", index=False)
    run.by_days.to_csv(folder / "metrics_by_days_since_first.csv", index=False)
    critical = {
        "critical_items": run.model.transformer.vocabulary_.critical,
        "routes": run.model.transformer.vocabulary_.routes,
    }
    (folder / "path_summary.json").write_text(json.dumps(critical, indent=2))
    return {
        "feature_importance.png": plots.feature_importance(
            run.model.feature_names, gains, folder / "feature_importance.png"
        ),
        "calibration.png": plots.calibration(
            y, score, folder / "calibration.png", f"{run.task.name}: calibration on the test period"
        ),
        "lift.png": plots.lift(
            y,
            {"lightgbm": score, "baseline": baseline},
            folder / "lift.png",
            f"{run.task.name}: lift on the test period",
        ),
        "metrics_by_prefix.csv": folder / "metrics_by_prefix.csv",
        "metrics_by_days_since_first.csv": folder / "metrics_by_days_since_first.csv",
        "path_summary.json": folder / "path_summary.json",
    }
