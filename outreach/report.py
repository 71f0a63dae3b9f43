"""Did the outreach work? Contacted customers against the control group, once outcomes are known.

Pure: decisions (as the outbox stores them) and the event log in, one row per action out.
Decisions, not deliveries (intention to treat): a customer decided "contact" is contacted
whatever became of the message (delivered, ambiguous, dead), so a lost answer never moves a
customer to the control group. A customer counts once per action, at its first contact or
holdout decision: a control-group customer is held out again in every window it qualifies in,
a contacted one only once per cooldown, and counting every decision would weigh the groups
differently and count one person as many independent trials. The outcome is the one the
action's task predicts (churn for a discount), labelled by `features.labels` over the task's
horizon after the decision's as_of.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from journeyguard.features.config.model import TaskConfig, nanoseconds
from journeyguard.features.eventlog.columns import CUSTOMER_ID
from journeyguard.features.eventlog.log import EventLog
from journeyguard.features.labels import label_snapshots
from journeyguard.features.stats import newcombe_interval
from journeyguard.outreach.policy import CONTACT, HOLDOUT, utc
from journeyguard.training.uplift_metrics import (
    average_effect,
    qini_coefficient,
    qini_curve,
    uplift_by_decile,
)

REPORT_COLUMNS = (
    "action", "task", "contacted_n", "contacted_rate", "holdout_n", "holdout_rate",
    "difference", "difference_low", "difference_high", "waiting", "missing", "excluded",
)  # fmt: skip


def effect_report(
    decisions: pd.DataFrame,
    log: EventLog,
    tasks: Mapping[str, TaskConfig],
    *,
    as_of: pd.Timestamp,
) -> pd.DataFrame:
    """Per action: how many contacted and control customers were measured, the share of each
    with the task's outcome, their difference (contacted - holdout) with its 95 % Newcombe
    interval, and how many customers were not measured:

    - `waiting`: the horizon after their decision has not closed by `as_of` (or by the end of
      the log, if that comes first);
    - `missing`: the customer is not in the log;
    - `excluded`: the outcome had already happened at the decision (an `occurs` task).

    Events after `as_of` never count. Rates and differences are NaN where a group is empty.
    """
    first = _first_decisions(decisions)
    measured_until = utc(as_of).value
    if log.n_events:
        measured_until = min(measured_until, log.last_time)
    rows = [
        _action_effect(action, group, log, _task(tasks, task), measured_until)
        for (action, task), group in first.groupby(["action", "task"], sort=True)
    ]
    return pd.DataFrame(rows, columns=list(REPORT_COLUMNS))


def _first_decisions(decisions: pd.DataFrame) -> pd.DataFrame:
    """Each customer's first contact or holdout decision per action; suppressed ones never
    reached either group and do not count."""
    missing = [
        c for c in ("action", "task", CUSTOMER_ID, "decision", "as_of") if c not in decisions
    ]
    if missing:
        raise ValueError(f"decisions lack the columns {missing}; got {list(decisions.columns)}")
    chosen = decisions[decisions["decision"].isin([CONTACT, HOLDOUT])]
    chosen = chosen.assign(
        customer_id=chosen[CUSTOMER_ID].astype(str),
        as_of_ns=_nanoseconds(chosen["as_of"]),
    )
    ordered = chosen.sort_values(["as_of_ns", CUSTOMER_ID, "decision"], kind="stable")
    return ordered.drop_duplicates(["action", CUSTOMER_ID], keep="first")


def _action_effect(
    action: str, group: pd.DataFrame, log: EventLog, task: TaskConfig, measured_until: int
) -> dict[str, object]:
    """One report row: the outcome rates of the action's contacted and control customers."""
    decided = group["as_of_ns"].to_numpy(np.int64)
    closed = decided + nanoseconds(task.horizon) <= measured_until
    journeys = _journey_codes(log, group[CUSTOMER_ID].to_numpy()[closed])
    known = journeys >= 0
    contacted = (group["decision"].to_numpy()[closed] == CONTACT)[known]
    positive, counted = _outcomes(
        log, task, journeys[known], decided[closed][known], measured_until
    )
    contact_n, holdout_n = int((counted & contacted).sum()), int((counted & ~contacted).sum())
    contact_pos = int((positive & counted & contacted).sum())
    holdout_pos = int((positive & counted & ~contacted).sum())
    low, high = newcombe_interval(
        np.array([contact_pos]),
        np.array([contact_n]),
        np.array([holdout_pos]),
        np.array([holdout_n]),
    )
    both = contact_n > 0 and holdout_n > 0
    return {
        "action": action,
        "task": task.name,
        "contacted_n": contact_n,
        "contacted_rate": _rate(contact_pos, contact_n),
        "holdout_n": holdout_n,
        "holdout_rate": _rate(holdout_pos, holdout_n),
        "difference": _rate(contact_pos, contact_n) - _rate(holdout_pos, holdout_n),
        "difference_low": float(low[0]) if both else np.nan,
        "difference_high": float(high[0]) if both else np.nan,
        "waiting": int((~closed).sum()),
        "missing": int((~known).sum()),
        "excluded": int((~counted).sum()),
    }


def _outcomes(
    log: EventLog, task: TaskConfig, journeys: np.ndarray, as_of: np.ndarray, measured_until: int
) -> tuple[np.ndarray, np.ndarray]:
    """Whether each (journey, as_of) had the outcome, and whether it counts at all."""
    if len(journeys) == 0:
        return np.zeros(0, dtype=bool), np.zeros(0, dtype=bool)
    end = pd.Timestamp(measured_until, tz="UTC")
    outcomes = label_snapshots(log, task, journeys, as_of, data_end=end)
    return outcomes.positive, outcomes.labelled


def _journey_codes(log: EventLog, customer_ids: np.ndarray) -> np.ndarray:
    """The log's journey code of each customer; -1 for customers the log does not know."""
    known = pd.Index(log.journey_ids.astype(str))
    return known.get_indexer(pd.Index(customer_ids.astype(str))).astype(np.int64)


def _nanoseconds(moments: pd.Series) -> np.ndarray:
    """Times as int64 UTC nanoseconds, whatever their type (text from a database included)."""
    times = pd.to_datetime(moments, utc=True).dt.as_unit("ns")
    return times.to_numpy(dtype="datetime64[ns]").view(np.int64)


def _task(tasks: Mapping[str, TaskConfig], name: str) -> TaskConfig:
    if name not in tasks:
        raise ValueError(f"decisions name the task {name!r}, not in the config: {sorted(tasks)}")
    return tasks[name]


def _rate(positives: int, n: int) -> float:
    return positives / n if n else np.nan


def measured(
    decisions: pd.DataFrame,
    log: EventLog,
    tasks: Mapping[str, TaskConfig],
    *,
    as_of: pd.Timestamp,
) -> dict[str, pd.DataFrame]:
    """Per action, the customers `effect_report` measures: customer_id, as_of (of the first
    decision, ns), risk (at that decision), contacted, positive (the task's outcome after it)."""
    first = _first_decisions(decisions)
    measured_until = utc(as_of).value
    if log.n_events:
        measured_until = min(measured_until, log.last_time)
    tables = {}
    for (action, task_name), group in first.groupby(["action", "task"], sort=True):
        task = _task(tasks, task_name)
        decided = group["as_of_ns"].to_numpy(np.int64)
        closed = decided + nanoseconds(task.horizon) <= measured_until
        journeys = _journey_codes(log, group[CUSTOMER_ID].to_numpy()[closed])
        known = journeys >= 0
        at = decided[closed][known]
        positive, counted = _outcomes(log, task, journeys[known], at, measured_until)
        rows = group[closed][known][counted]
        tables[action] = pd.DataFrame(
            {
                CUSTOMER_ID: rows[CUSTOMER_ID].to_numpy(),
                "as_of": at[counted],
                "risk": pd.to_numeric(rows["risk"]).to_numpy(np.float64),
                "contacted": (rows["decision"] == CONTACT).to_numpy(),
                "positive": positive[counted],
            }
        )
    return tables


def uplift_evidence(rows: pd.DataFrame, uplift: np.ndarray, goal: str) -> dict[str, object]:
    """What ranking by predicted uplift gains against ranking by risk on the same measured
    customers: the realised effect on the good outcome overall and by decile of each ranking,
    the Qini coefficient and curve of each."""
    good = rows["positive"].to_numpy(bool)
    good = good if goal == "increase" else ~good
    treated, risk = rows["contacted"].to_numpy(bool), rows["risk"].to_numpy(np.float64)
    by_risk = qini_curve(good, treated, risk)["qini"]
    return {
        "rows": len(rows),
        "goal": goal,
        "realised": average_effect(good, treated),
        "qini": qini_coefficient(good, treated, uplift),
        "risk_qini": qini_coefficient(good, treated, risk),
        "deciles": uplift_by_decile(good, treated, uplift).to_dict(orient="records"),
        "risk_deciles": uplift_by_decile(good, treated, risk).to_dict(orient="records"),
        "qini_curve": qini_curve(good, treated, uplift).assign(risk=by_risk).to_dict("list"),
    }
