"""`journeyguard uplift`: learn from a randomised experiment which customers an action helps
(registered in pyproject.toml's entry points). It lives beside outreach because an experiment
may be the outbox's own contact and holdout decisions; nothing imports it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from journeyguard.features.config.reader import load_config
from journeyguard.features.errors import ConfigError
from journeyguard.features.options import ConfigOption

app = typer.Typer(
    name="uplift",
    no_args_is_help=True,
    add_completion=False,
    help="Uplift models: who an action helps, learnt from its control group.",
)
status = Console(stderr=True)


@app.callback()
def uplift() -> None:
    """Uplift models: who an action helps, learnt from its control group."""


@app.command()
def train(
    config: ConfigOption,
    experiment: Annotated[
        str,
        typer.Option(
            help="The name of an experiments table of the config, or of an outreach action "
            "(its outbox contact and holdout decisions)."
        ),
    ],
    predictions_out: Annotated[
        Path | None,
        typer.Option(
            "--predictions-out",
            help="Write the test rows: customer_id, uplift, treated, outcome (Parquet or CSV).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same model.")] = 0,
) -> None:
    """Train the experiment's uplift learners (two-model and transformed outcome, each with
    the logistic model and LightGBM), choose on validation, evaluate on the test rows (Qini,
    deciles, average effect), register journeyguard-uplift-<experiment> and promote it when its
    Qini is at least the champion's on the same rows."""
    from journeyguard.outreach.experiments import outbox_arms
    from journeyguard.training.uplift_champion import train_and_register_uplift

    settings = load_config(config)
    chosen = settings.experiment(experiment)
    arms = None
    if chosen.outbox:
        assert chosen.action is not None
        try:
            arms = outbox_arms(settings, chosen.action)
        except ValueError as error:
            raise ConfigError(f"{settings.path}: {error}") from None
    with status.status("training uplift") as spinner:
        result = train_and_register_uplift(
            settings,
            experiment,
            arms=arms,
            seed=seed,
            predictions_out=predictions_out,
            progress=spinner.update,
        )
    typer.echo(json.dumps(result, indent=2, default=_plain) if as_json else summary_text(result))


def summary_text(result: dict[str, Any]) -> str:
    """The registered version and rule, one line per learner, the winner, the average effect
    and the test rows' uplift by decile beside ranking by risk."""
    effect = result["average_effect"]
    lines = [
        f"{result['model_name']} v{result['version']} "
        f"({'promoted to champion' if result['promoted'] else 'not promoted'}: {result['rule']})",
        f"  rows: {result['rows']}; left out: {result['excluded']}",
        f"  {'learner':<30}{'val Qini':>10}{'test Qini':>11}",
        *(
            f"{'*' if c['name'] == result['winner'] else ' '} {c['name']:<30}"
            f"{c['validation_qini']:>10.4f}{c['test_qini']:>11.4f}  {c['detail']}"
            for c in result["candidates"]
        ),
        f"  winner {result['winner']}: {result['winner_reason']}",
        f"  ranking by risk instead: test Qini {result['metrics']['risk_qini']:.4f}",
        f"  average effect on the test rows: {effect['effect']:+.1%} "
        f"[{effect['effect_low']:+.1%}, {effect['effect_high']:+.1%}] "
        f"({effect['treated_n']:,} treated at {effect['treated_rate']:.1%}, "
        f"{effect['control_n']:,} control at {effect['control_rate']:.1%})",
        "  decile  predicted  realised (95 % CI)            by risk: realised",
    ]
    for row, risk in zip(result["deciles"], result["risk_deciles"], strict=True):
        lines.append(
            f"  {row['decile']:>6}  {row['predicted']:>+9.1%}  {row['effect']:>+7.1%} "
            f"[{row['effect_low']:+.1%}, {row['effect_high']:+.1%}]"
            f"{risk['effect']:>+20.1%}"
        )
    return "\n".join(lines)


def _plain(value: Any) -> Any:
    """JSON for numpy numbers."""
    return value.item() if hasattr(value, "item") else str(value)
