"""Batch scoring: every journey active at `as_of`, with its risk, band and top reasons."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from features.config import Config
from features.schema import EventLog, Snapshots
from training.models import JourneyModel
from training.reasons import top_reasons


def risk_list_path(settings: Config, task: str) -> Path:
    """Where `journeyguard score` writes a task's risk list unless told otherwise, and where
    the prediction service reads it."""
    return settings.output_dir / f"risk-{task}.parquet"


def band(risk: pd.Series, base_rate: float) -> pd.Series:
    """'high', 'medium' or 'low' against the training base rate b: high from min(2b, b + half
    the way to 1), medium from min(1.25b, b + a fifth of the way). Multiples of b read well for
    a rare outcome (escalation); for a common one (churn at 80 %) they would pass 1, hence the
    cap by the distance to certainty."""
    b = min(max(base_rate, 1e-6), 1 - 1e-6)
    high = min(2.0 * b, b + 0.5 * (1 - b))
    medium = min(1.25 * b, b + 0.2 * (1 - b))
    labels = pd.cut(
        risk, [-np.inf, medium, high, np.inf], labels=["low", "medium", "high"], right=False
    )
    return labels.astype(str)


def score_log(
    log: EventLog,
    model: JourneyModel,
    as_of: pd.Timestamp,
    *,
    version: int | None = None,
    reasons: int = 3,
) -> pd.DataFrame:
    """One row per journey active at `as_of`, riskiest first: customer_id, as_of, task, risk,
    band, reason_1..k, contribution_1..k, model_version."""
    table = score_snapshots(Snapshots.at(log, as_of), model, version=version, reasons=reasons)
    return table.sort_values(["risk", "customer_id"], ascending=[False, True], ignore_index=True)


def score_snapshots(
    snapshots: Snapshots, model: JourneyModel, *, version: int | None = None, reasons: int = 3
) -> pd.DataFrame:
    """One row per snapshot, in their order: the columns of `score_log`. Batch scoring and the
    prediction service both score through here."""
    features = model.features(snapshots)
    risk = pd.Series(model.predict_features(features), index=features.index)
    explained = top_reasons(
        features, model.contributions(features), reasons, model.transformer.vocabulary_
    )
    table = pd.DataFrame(
        {
            "customer_id": snapshots.customer_ids.astype(str),
            "as_of": pd.to_datetime(snapshots.as_of, utc=True),
            "task": model.task,
            "risk": risk,
            "band": band(risk, model.info.get("base_rate", float(risk.mean()))),
        }
    )
    return pd.concat([table, explained], axis=1).assign(model_version=version)
