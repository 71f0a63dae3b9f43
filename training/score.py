"""Batch scoring: every journey active at `as_of`, with its risk, band and top reasons."""

from __future__ import annotations

import pandas as pd

from features.schema import EventLog, Snapshots
from training.models import JourneyModel
from training.reasons import top_reasons

# Bands by how many times the training base rate a risk is: clear to a person, and meaningful
# for a rare outcome (escalation) as for a common one (churn).
HIGH_LIFT, MEDIUM_LIFT = 2.0, 1.25


def band(risk: pd.Series, base_rate: float) -> pd.Series:
    """'high', 'medium' or 'low' by the risk's multiple of the base rate (capped below 1)."""
    high = min(HIGH_LIFT * base_rate, 0.9)
    medium = min(MEDIUM_LIFT * base_rate, high)
    labels = pd.cut(risk, [-0.1, medium, high, 1.1], labels=["low", "medium", "high"], right=False)
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
    snapshots = Snapshots.at(log, as_of)
    features = model.features(snapshots)
    risk = pd.Series(model.predict_features(features), index=features.index)
    explained = top_reasons(
        features, model.contributions(features), reasons, model.transformer.vocabulary_
    )
    table = pd.DataFrame(
        {
            "customer_id": snapshots.customer_ids.astype(str),
            "as_of": pd.Timestamp(as_of),
            "task": model.task,
            "risk": risk,
            "band": band(risk, model.info.get("base_rate", float(risk.mean()))),
        }
    )
    table = pd.concat([table, explained], axis=1).assign(model_version=version)
    return table.sort_values(["risk", "customer_id"], ascending=[False, True], ignore_index=True)
