"""PNG charts of a training run, logged as MLflow artifacts: feature importance, calibration,
lift. matplotlib is imported (with its file-only backend) only when a chart is drawn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from journeyguard.training.metrics import calibration_curve, lift_curve


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no screen here
    import matplotlib.pyplot as plt

    return plt


def _finish(plt, figure, axes, labels: tuple[str, str, str], path: Path) -> Path:
    """Axis labels, title and legend; the file written and the figure closed."""
    axes.set_xlabel(labels[0])
    axes.set_ylabel(labels[1])
    axes.set_title(labels[2])
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def feature_importance(
    names: list[str], importance: np.ndarray, path: Path, measure: str, top: int = 20
) -> Path:
    """The `top` features by `importance`, a bar each; `measure` says what it is."""
    plt = _pyplot()
    order = np.argsort(importance)[::-1][:top][::-1]
    figure, axes = plt.subplots(figsize=(8, 0.3 * len(order) + 1.2))
    axes.barh([names[i] for i in order], importance[order], color="#4c72b0")
    axes.set_xlabel(measure)
    axes.set_title(f"Top {len(order)} features")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def calibration(y: np.ndarray, score: np.ndarray, path: Path, title: str) -> Path:
    plt = _pyplot()
    table: pd.DataFrame = calibration_curve(y, score, bins=10)
    figure, axes = plt.subplots(figsize=(5, 5))
    axes.plot([0, 1], [0, 1], color="#999999", linestyle="--", label="perfect")
    axes.errorbar(
        table["mean_score"],
        table["observed_rate"],
        yerr=[  # clipped: rounding can make a bound cross the rate by 1e-17
            (table["observed_rate"] - table["observed_low"]).clip(lower=0),
            (table["observed_high"] - table["observed_rate"]).clip(lower=0),
        ],
        marker="o",
        color="#4c72b0",
        label="test period",
    )
    return _finish(plt, figure, axes, ("predicted risk", "observed rate", title), path)


def lift(y: np.ndarray, scores: dict[str, np.ndarray], path: Path, title: str) -> Path:
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6, 4))
    for name, score in scores.items():
        table = lift_curve(y, score, points=20)
        axes.plot(table["share"], table["lift"], marker=".", label=name)
    axes.axhline(1.0, color="#999999", linestyle="--")
    labels = ("share of journeys targeted, riskiest first", "lift", title)
    return _finish(plt, figure, axes, labels, path)


def qini(curve: pd.DataFrame, path: Path, title: str) -> Path:
    """The Qini curve of the uplift ranking, of the risk ranking, and of random targeting."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot(curve["share"], curve["qini"], label="by predicted uplift")
    if "risk" in curve:
        axes.plot(curve["share"], curve["risk"], label="by risk")
    axes.plot(curve["share"], curve["random"], color="#999999", linestyle="--", label="random")
    labels = ("share of customers targeted", "added good outcomes per customer", title)
    return _finish(plt, figure, axes, labels, path)
