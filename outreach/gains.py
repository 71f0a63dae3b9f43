"""Uplift predictions for outreach: the expected gain of each action ranked by it (its uplift
champion's prediction for every scored customer at `as_of`, from the same path features as the
risk, events up to `as_of`), and the uplift at past decisions for the report.

An action whose `rank_by` is "uplift" or "uplift_value" uses the champion of its experiment
(`Config.experiment_of`); without one it gets no entry, and the policy ranks it by risk and
says so in every decision's reason."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from journeyguard.features.config.model import Config
from journeyguard.features.eventlog.columns import CUSTOMER_ID
from journeyguard.features.eventlog.log import EventLog, Snapshots
from journeyguard.features.experiments import with_offers
from journeyguard.outreach.expected_gain import GAIN_RANKINGS
from journeyguard.outreach.report import measured, uplift_evidence


def uplift_gains(
    settings: Config, log: EventLog, as_of: pd.Timestamp, scores: pd.DataFrame
) -> tuple[dict[str, pd.Series], dict[str, str]]:
    """Per action ranked by gain with an uplift champion, each scored customer's predicted
    uplift (indexed by customer_id); and per such action, how it ranks, in words."""
    from journeyguard.training.uplift_champion import load_uplift_champion

    gains, ranking = {}, {}
    for name, action in settings.outreach.actions.items():
        if action.rank_by not in GAIN_RANKINGS:
            continue
        experiment = settings.experiment_of(name).name
        champion = load_uplift_champion(experiment)
        if champion is None:
            ranking[name] = f"by risk: no champion of journeyguard-uplift-{experiment} yet"
            continue
        model, logged = champion
        ids = scores.loc[scores["task"] == action.task, CUSTOMER_ID].astype(str).unique()
        gains[name] = pd.Series(_predict(model, log, as_of, ids), index=ids, dtype=np.float64)
        ranking[name] = f"by {action.rank_by}: {logged.model_name} v{logged.version}"
    return gains, ranking


def _predict(model, log: EventLog, as_of: pd.Timestamp, ids: np.ndarray) -> np.ndarray:
    """The model's uplift of each customer in `ids` seen at `as_of` with the action offered
    then (an `OFFER` event, as its experiment's rows saw theirs); NaN if not in the log."""
    known = np.isin(ids, log.journey_ids.astype(str))
    result = np.full(len(ids), np.nan)
    if not known.any():
        return result
    moment = np.full(int(known.sum()), pd.Timestamp(as_of).value, dtype=np.int64)
    offered = with_offers(log, ids[known], moment)
    codes = pd.Index(offered.journey_ids.astype(str)).get_indexer(pd.Index(ids[known]))
    result[known] = model.uplift(Snapshots(offered, codes.astype(np.int64), moment))
    return result


def predicted_at_decisions(
    settings: Config, log: EventLog, action: str, customer_ids: np.ndarray, as_of: np.ndarray
) -> tuple[np.ndarray, str] | None:
    """The uplift the action's champion predicts for each customer at its decision time (ns),
    and the champion's name; None without a champion."""
    from journeyguard.training.uplift_champion import load_uplift_champion

    experiment = settings.experiment_of(action).name
    champion = load_uplift_champion(experiment)
    if champion is None:
        return None
    model, logged = champion
    ids = np.asarray(customer_ids).astype(str)
    offered = with_offers(log, ids, as_of)
    codes = pd.Index(offered.journey_ids.astype(str)).get_indexer(pd.Index(ids))
    uplift = model.uplift(Snapshots(offered, codes.astype(np.int64), np.asarray(as_of)))
    return uplift, f"{logged.model_name} v{logged.version}"


def uplift_by_action(
    settings: Config, decisions: pd.DataFrame, log: EventLog, as_of: pd.Timestamp
) -> dict[str, Any]:
    """Per action with an uplift champion: the customers the effect report measures, ranked
    by the uplift its champion predicts at their decision against ranked by their risk then
    (`report.uplift_evidence`), in plain JSON types; per action without one, why not."""
    result: dict[str, Any] = {}
    for action, rows in measured(decisions, log, settings.tasks, as_of=as_of).items():
        if action not in settings.outreach.actions or rows.empty:
            continue
        predicted = predicted_at_decisions(
            settings, log, action, rows[CUSTOMER_ID].to_numpy(), rows["as_of"].to_numpy()
        )
        if predicted is None:
            experiment = settings.experiment_of(action).name
            result[action] = {"model": None, "reason": f"no uplift champion of {experiment} yet"}
            continue
        uplift, model = predicted
        experiment = settings.experiment_of(action)
        evidence = uplift_evidence(rows, uplift, experiment.goal)
        result[action] = {"model": model, "outcome": experiment.outcome, **_json_ready(evidence)}
    return result


def _json_ready(value: Any) -> Any:
    """Nested dicts and lists with plain Python numbers, NaN as None."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    return None if isinstance(value, float) and np.isnan(value) else value
