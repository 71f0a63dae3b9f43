"""Monitoring a champion: has the population it scores moved away from what it was trained on,
and, once outcomes are known, does it still rank and calibrate as it did on its test period?

Pure computations on arrays and an `EventLog`; `journeyguard monitor` reads the configuration,
loads the champion, writes the result beside the risk lists and logs its numbers to MLflow.

The reference profile is recorded at training time on the population that scoring sees: every
journey the task is for at the training log's last event (`features.population`), not the
training rows. Those
are snapshots at many times (or after the first k events), so journeys are younger and shorter
than at any one scoring moment: compared with them, an unchanged log would look drifted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from journeyguard.features.config.model import MonitoringConfig, TaskConfig
from journeyguard.features.eventlog.log import EventLog, Snapshots
from journeyguard.features.labels import label_snapshots
from journeyguard.features.population import eligible_snapshots
from journeyguard.features.stats import Z_95, wilson_interval
from journeyguard.training.models import JourneyModel
from journeyguard.training.score import BANDS, model_bands

PSI_EPSILON = 1e-4  # a share of 0 in one bin would make the PSI infinite
PSI_DRAWS = 4_000  # pairs of samples drawn for a PSI's noise level
PSI_NOISE_SEED = 0  # the same result for the same log and champion
TOP_FEATURES = 10
SCORE = "risk_score"  # the score's name among the features of a result (and in the gauges)


def psi(expected: np.ndarray, actual: np.ndarray, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index sum((a - e) * ln(a / e)) of two sets of bin shares; shares
    below `epsilon` count as `epsilon`, so an emptied or a new bin weighs heavily but finitely."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), epsilon)
    a = np.maximum(np.asarray(actual, dtype=np.float64), epsilon)
    if e.shape != a.shape:
        raise ValueError(f"expected and actual need the same bins: {e.shape} != {a.shape}")
    return float(np.sum((a - e) * np.log(a / e)))


def psi_noise(
    shares: list[float],
    rows: int,
    reference_rows: int,
    rng: np.random.Generator,
    quantile: float = 0.999,
) -> float:
    """The PSI that two samples of `rows` and `reference_rows` drawn from the reference's bin
    `shares` (each bin given half a row more) exceed only with probability 1 - `quantile`, by
    drawing them (`PSI_DRAWS` pairs). On a few dozen rows it passes any fixed threshold (empty
    bins weigh heavily), so a drift within it is no breach; on thousands it is far below one.
    0 for a `quantile` of 0. (With some 160 features checked at once, 1 in 1,000 each keeps an
    unchanged population mostly unflagged.)"""
    p = np.asarray(shares, dtype=np.float64)
    if rows == 0 or reference_rows == 0 or p.sum() <= 0 or quantile == 0:
        return 0.0
    # Half a row more in every bin (Jeffreys): a bin a few dozen reference rows left empty
    # may still hold a few percent, so one row landing there is no breach.
    p = (p / p.sum() * reference_rows + 0.5) / (reference_rows + 0.5 * len(p))
    current = rng.multinomial(rows, p, size=PSI_DRAWS) / rows
    reference = rng.multinomial(reference_rows, p, size=PSI_DRAWS) / reference_rows
    e, a = np.maximum(reference, PSI_EPSILON), np.maximum(current, PSI_EPSILON)
    return float(np.quantile(np.sum((a - e) * np.log(a / e), axis=1), quantile))


def bin_shares(values: np.ndarray, edges: np.ndarray | list[float]) -> np.ndarray:
    """Shares of `values` in the bins (-inf, e0], (e0, e1], ..., (ek, inf), then missing (NaN):
    len(edges) + 2 shares summing to 1 (all 0 for no values)."""
    values = np.asarray(values, dtype=np.float64)
    missing = np.isnan(values)
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), values[~missing], side="left")
    counts = np.append(np.bincount(index, minlength=len(edges) + 1), missing.sum())
    return counts / max(len(values), 1)


def profile(values: np.ndarray, bins: int, *, categorical: bool = False) -> dict[str, list]:
    """Bin edges at the reference's quantiles (each distinct value for a categorical feature)
    and its shares in them. Repeated quantiles collapse, so a constant feature has one edge (its
    value: anything else lands in the bin above) and one with no values none."""
    values = np.asarray(values, dtype=np.float64)
    present = values[~np.isnan(values)]
    if categorical or len(present) == 0:
        edges = np.unique(present)
    else:
        edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]))
    return {"edges": edges.tolist(), "shares": bin_shares(values, edges).tolist()}


def reference_profile(
    model: JourneyModel, snapshots: Snapshots, bins: int, test_roc_auc: float | None = None
) -> dict[str, Any]:
    """What a monitor compares with, stored in `model.info["reference"]`: per feature and for
    the risk score, bin edges and shares on `snapshots` (the journeys scored at the training
    log's end), plus the test ROC AUC to hold realised outcomes against."""
    matrix = model.feature_matrix(snapshots)
    categorical = set(model.info.get("categorical_features", ()))
    as_of = int(snapshots.as_of.max()) if len(snapshots) else None
    return {
        "as_of": pd.Timestamp(as_of, tz="UTC").isoformat() if as_of is not None else None,
        "rows": len(snapshots),
        "bins": bins,
        "features": {
            name: profile(matrix[:, j], bins, categorical=name in categorical)
            for j, name in enumerate(model.feature_names)
        },
        SCORE: profile(model.predict_matrix(matrix), bins),
        "test_roc_auc": _finite(test_roc_auc),
    }


def step_changes(
    log: EventLog, as_of: pd.Timestamp, known: tuple[str, ...], outcome: tuple[str, ...] = ()
) -> dict[str, list[str]]:
    """Steps in the log up to `as_of` that the model never saw in training (`new`: they count as
    'other'), and steps it learned that no longer occur (`vanished`: renamed or dropped). The
    task's `outcome` steps are never new: an `occurs` task trains only on journeys before them."""
    seen = log.step_codes[log.times <= as_of.value]
    present = {str(s) for s in log.steps[np.bincount(seen, minlength=len(log.steps)) > 0]}
    return {
        "new": sorted(present - set(known) - set(outcome)),
        "vanished": sorted(set(known) - present),
    }


def calibration_by_band(
    y: np.ndarray, predicted: np.ndarray, band: np.ndarray, max_gap: float
) -> list[dict[str, Any]]:
    """Per risk band: rows, mean predicted risk, realised outcome rate with its 95 % Wilson
    interval, the gap realised - predicted, and a breach when the gap exceeds `max_gap` and the
    predicted rate lies outside the interval (a small band's noise is no breach)."""
    y, predicted, band = np.asarray(y, dtype=np.float64), np.asarray(predicted), np.asarray(band)
    rows = []
    for name in BANDS:
        member = band == name
        n = int(member.sum())
        if n == 0:
            continue
        positives = float(y[member].sum())
        low, high = wilson_interval(np.array([positives]), np.array([n]))
        realised, mean_risk = positives / n, float(predicted[member].mean())
        gap = realised - mean_risk
        outside = not low[0] <= mean_risk <= high[0]
        rows.append(
            {
                "band": name, "rows": n, "predicted": mean_risk, "realised": realised,
                "realised_low": float(low[0]), "realised_high": float(high[0]), "gap": gap,
                "breach": bool(abs(gap) > max_gap and outside),
            }
        )  # fmt: skip
    return rows


def realised_outcomes(
    model: JourneyModel, log: EventLog, task: TaskConfig, end: pd.Timestamp, max_gap: float
) -> dict[str, Any]:
    """The latest snapshot whose horizon has closed by `end` (every journey the task was for at
    end - horizon), labelled from events up to `end` only, against the model's risks then."""
    as_of = end - task.horizon
    base = {"as_of": as_of.isoformat(), "rows": 0, "roc_auc": None, "by_band": []}
    if as_of.value < log.first_time:
        return base | {"reason": f"the data up to {end.isoformat()} is shorter than a horizon"}
    snapshots = eligible_snapshots(Snapshots.at(log, as_of), task)
    outcomes = label_snapshots(log, task, snapshots.journeys, snapshots.as_of, data_end=end)
    snapshots = snapshots.subset(outcomes.labelled)
    y = outcomes.positive[outcomes.labelled].astype(np.int64)
    if len(y) == 0:
        return base | {"reason": "no journey with a known outcome"}
    risk = model.predict(snapshots)
    band = model_bands(model, risk)
    two_classes = 0 < y.sum() < len(y)
    auc = float(roc_auc_score(y, risk)) if two_classes else None
    return base | {
        "rows": len(y),
        "realised_rate": float(y.mean()),
        "predicted_rate": float(risk.mean()),
        "roc_auc": auc,
        "roc_auc_high": auc_upper_bound(auc, int(y.sum()), int(len(y) - y.sum())),
        "by_band": calibration_by_band(y, risk, band, max_gap),
    }


def auc_upper_bound(auc: float | None, positives: int, negatives: int) -> float | None:
    """The upper end of a ROC AUC's 95 % interval (Hanley and McNeil 1982): with a few
    outcomes the realised AUC swings widely, and such a swing is no breach."""
    if auc is None:
        return None
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    variance = (
        auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)
    ) / (positives * negatives)
    return min(1.0, auc + Z_95 * float(np.sqrt(max(variance, 0.0))))


def monitor(
    model: JourneyModel,
    log: EventLog,
    as_of: pd.Timestamp,
    task: TaskConfig,
    thresholds: MonitoringConfig,
    data_end: pd.Timestamp | None = None,
) -> dict[str, Any]:
    """Drift of the population scored at `as_of` (PSI of each feature and of the risk score
    against the champion's reference), new and vanished steps, and, from the latest horizon
    closed by `as_of` (or `data_end` if earlier), calibration by band and realised ROC AUC;
    every value past a threshold is listed in `breaches`, and `breach` says if there is any."""
    reference = model.info.get("reference")
    if reference is None:
        raise ValueError(
            f"the {model.task} champion has no reference profile (it was trained before "
            f"monitoring existed): retrain it with `journeyguard train --task {model.task}`"
        )
    as_of = pd.Timestamp(as_of)
    end = min(as_of, pd.Timestamp(data_end)) if data_end is not None else as_of
    snapshots = eligible_snapshots(Snapshots.at(log, as_of), task)
    matrix = model.feature_matrix(snapshots)
    profiles = {name: reference["features"][name] for name in model.feature_names}
    profiles[SCORE] = reference[SCORE]
    columns = [*matrix.T, model.predict_matrix(matrix)]
    shares = {
        name: bin_shares(values, profiles[name]["edges"])
        for name, values in zip(profiles, columns, strict=True)
    }
    drift = {name: psi(profiles[name]["shares"], shares[name]) for name in profiles}
    rng = np.random.default_rng(PSI_NOISE_SEED)
    noise = {
        name: psi_noise(
            profiles[name]["shares"],
            len(snapshots),
            reference["rows"],
            rng,
            thresholds.psi_noise_quantile,
        )
        for name in profiles
    }
    score_psi = drift.pop(SCORE)
    feature_psi = drift
    moved = sorted(feature_psi.items(), key=lambda item: (-item[1], item[0]))
    steps = step_changes(log, as_of, model.transformer.vocabulary_.steps, task.match.events)
    outcomes = realised_outcomes(model, log, task, end, thresholds.calibration_gap)
    outcomes["test_roc_auc"] = reference.get("test_roc_auc")
    result = {
        "task": model.task,
        "as_of": as_of.isoformat(),
        "rows": len(snapshots),
        "reference_as_of": reference["as_of"],
        "reference_rows": reference["rows"],
        "score_psi": score_psi,
        "max_feature_psi": moved[0][1] if moved else 0.0,
        "top_features": [{"feature": n, "psi": v} for n, v in moved[:TOP_FEATURES]],
        "feature_psi": feature_psi,
        "psi_noise": noise,  # by feature and for the score: drift below it is no breach
        "steps": steps,
        "outcomes": outcomes,
        "thresholds": {
            "feature_psi": thresholds.feature_psi, "score_psi": thresholds.score_psi,
            "calibration_gap": thresholds.calibration_gap, "auc_drop": thresholds.auc_drop,
        },
    }  # fmt: skip
    result["breaches"] = breaches(result, thresholds)
    result["breach"] = bool(result["breaches"])
    return result


def breaches(result: dict[str, Any], thresholds: MonitoringConfig) -> list[dict[str, Any]]:
    """Each check past its threshold: {check, name, value, threshold}. A PSI counts past its
    threshold only beyond its noise on so few rows (`psi_noise`), as a band's calibration gap
    and an AUC drop do. New or vanished steps are reported, not breaches: they have no
    threshold, and where they matter to the model their count features move past one."""
    noise = result.get("psi_noise", {})
    found = [
        {"check": "feature_psi", "name": n, "value": v, "threshold": thresholds.feature_psi}
        for n, v in result["feature_psi"].items()
        if v > max(thresholds.feature_psi, noise.get(n, 0.0))
    ]
    found.sort(key=lambda b: -b["value"])
    if result["score_psi"] > max(thresholds.score_psi, noise.get(SCORE, 0.0)):
        found.append(
            {"check": "score_psi", "name": SCORE, "value": result["score_psi"],
             "threshold": thresholds.score_psi}
        )  # fmt: skip
    outcomes = result["outcomes"]
    found += [
        {"check": "calibration_gap", "name": row["band"], "value": row["gap"],
         "threshold": thresholds.calibration_gap}
        for row in outcomes["by_band"] if row["breach"]
    ]  # fmt: skip
    realised, expected = outcomes.get("roc_auc"), outcomes.get("test_roc_auc")
    dropped = (
        realised is not None
        and expected is not None
        and realised < expected - thresholds.auc_drop
        and expected > outcomes["roc_auc_high"]  # beyond what its few outcomes can say
    )
    if dropped:
        found.append(
            {"check": "auc_drop", "name": "roc_auc", "value": expected - realised,
             "threshold": thresholds.auc_drop}
        )  # fmt: skip
    return found


def write_result(result: dict[str, Any], path: Path) -> Path:
    """Writes a result as JSON, atomically: the service may read the file at any moment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(".json.tmp")
    staging.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    staging.replace(path)
    return path


def gauge_values(result: dict[str, Any], top: int = TOP_FEATURES) -> dict[str, float]:
    """The PSIs a dashboard shows for one result: the risk score's and the top features'."""
    values = {SCORE: float(result["score_psi"])}
    values |= {row["feature"]: float(row["psi"]) for row in result["top_features"][:top]}
    return values


def _finite(value: float | None) -> float | None:
    """A number for JSON: None for a missing or NaN one."""
    return float(value) if value is not None and np.isfinite(value) else None
