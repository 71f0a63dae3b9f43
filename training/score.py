"""Batch scoring: every journey a task is for at `as_of`, with its risk, band and top reasons."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

import numpy as np
import pandas as pd

from journeyguard.features.config.model import TaskConfig
from journeyguard.features.eventlog.log import EventLog, Snapshots
from journeyguard.features.parallel import InChild, worth_a_child
from journeyguard.features.population import eligible_snapshots
from journeyguard.training.reasons import reason_arrays
from journeyguard.training.scoring_model import ScoringModel
from journeyguard.training.value import ValueModels, customer_values, value_models

if TYPE_CHECKING:
    from journeyguard.training.models import JourneyModel

# A trained model or its exported form (`JourneyModel.exported`): the same answers.
Model: TypeAlias = "ScoringModel | JourneyModel"

BANDS = ("high", "medium", "low")


def bands(risk: np.ndarray, base_rate: float) -> np.ndarray:
    """'high', 'medium' or 'low' against the training base rate b: high from min(2b, b + half
    the way to 1), medium from min(1.25b, b + a fifth of the way). Multiples of b read well for
    a rare outcome (escalation); for a common one (churn at 80 %) they would pass 1, hence the
    cap by the distance to certainty."""
    b = min(max(base_rate, 1e-6), 1 - 1e-6)
    high = min(2.0 * b, b + 0.5 * (1 - b))
    medium = min(1.25 * b, b + 0.2 * (1 - b))
    return np.where(risk >= high, "high", np.where(risk >= medium, "medium", "low")).astype(object)


def model_bands(model: Model, risk: np.ndarray) -> np.ndarray:
    """`bands` against the base rate of the model's training rows."""
    return bands(risk, model.info["base_rate"])


@dataclass(frozen=True)
class Scores:
    """Scored snapshots as arrays: risk, band, and for each rank the reason texts (None where
    fewer features push the risk up) and their contributions (n x k, NaN there); each risk's
    95 % interval from its calibration block (`risk_low`, `risk_high`)."""

    risk: np.ndarray
    band: np.ndarray
    reasons: list[list[str | None]]
    contributions: np.ndarray
    risk_low: np.ndarray
    risk_high: np.ndarray


def score_arrays(snapshots: Snapshots, model: Model, reasons: int = 3) -> Scores:
    """Risks, bands and top reasons of snapshots: the one scoring path of batch scoring and
    the prediction service, on arrays (a frame per request would cost more than the model)."""
    matrix = model.feature_matrix(snapshots)
    risk, low, high, contributions = model.predict_interval_and_contributions(matrix)
    contributions = contributions[:, :-1]  # without the expected value
    texts, values = reason_arrays(
        matrix, contributions, model.feature_names, reasons, model.vocabulary
    )
    return Scores(risk, model_bands(model, risk), texts, values, low, high)


def score_log(
    log: EventLog,
    model: Model,
    as_of: pd.Timestamp,
    task: TaskConfig,
    *,
    version: int | None = None,
    reasons: int = 3,
    parallel: bool | None = None,
) -> pd.DataFrame:
    """One row per journey the task is for at `as_of` (its population), riskiest first:
    customer_id, as_of, task, risk, band, reason_1..k, contribution_1..k, model_version, and
    what is at stake: `expected_value` (spend expected over the horizon, `training.value`) and
    `value_at_risk` = risk x value (NaN where the log has no purchase values).

    With `parallel` (by default on a large log, `features.parallel.worth_a_child`), the value
    models are fitted in a second process while this one scores: the same values, sooner on
    a second core."""
    snapshots = eligible_snapshots(Snapshots.at(log, as_of), task)
    if parallel is None:
        parallel = worth_a_child(log.n_events)
    with InChild(value_models, log, pd.Timestamp(as_of).value, fork=parallel) as fitted:
        table = score_snapshots(snapshots, model, version=version, reasons=reasons)
        table = _with_values(table, snapshots, as_of, task, fitted.result())
    return table.sort_values(["risk", "customer_id"], ascending=[False, True], ignore_index=True)


def risk_table(
    snapshots: Snapshots,
    model: Model,
    as_of: pd.Timestamp,
    task: TaskConfig,
    *,
    version: int | None = None,
    reasons: int = 3,
    value_models: ValueModels | str | None = None,
) -> pd.DataFrame:
    """The rows of `score_log` of these snapshots, in their order; `value_models` default to
    those of the snapshots' log (`training.value`)."""
    table = score_snapshots(snapshots, model, version=version, reasons=reasons)
    return _with_values(table, snapshots, as_of, task, value_models)


def _with_values(
    table: pd.DataFrame,
    snapshots: Snapshots,
    as_of: pd.Timestamp,
    task: TaskConfig,
    value_models: ValueModels | str | None,
) -> pd.DataFrame:
    value = customer_values(snapshots, task.horizon, as_of, value_models).value
    return table.assign(expected_value=value, value_at_risk=table["risk"].to_numpy() * value)


def score_snapshots(
    snapshots: Snapshots, model: Model, *, version: int | None = None, reasons: int = 3
) -> pd.DataFrame:
    """One row per snapshot, in their order: the columns of `score_log` and the risk's
    interval (`risk_low`, `risk_high`), from `score_arrays`, the path the prediction service
    scores through too."""
    scores = score_arrays(snapshots, model, reasons)
    table = pd.DataFrame(
        {
            "customer_id": snapshots.customer_ids.astype(str),
            "as_of": pd.to_datetime(snapshots.as_of, utc=True),
            "task": model.task,
            "risk": scores.risk,
            "risk_low": scores.risk_low,
            "risk_high": scores.risk_high,
            "band": scores.band.astype(str),
        }
    )
    for rank in range(reasons):
        table[f"reason_{rank + 1}"] = scores.reasons[rank]
        table[f"contribution_{rank + 1}"] = scores.contributions[:, rank]
    return table.assign(model_version=version)
