"""The expected gain of an action for a customer, as the outreach policy ranks by it and
explains it: `rank_by = "uplift"` ranks by the predicted uplift, `"uplift_value"` by uplift x
what the customer is worth - the action's cost."""

from __future__ import annotations

import numpy as np
import pandas as pd

from journeyguard.features.config.model import ActionConfig

GAIN_RANKINGS = ("uplift", "uplift_value")


def worth(rows: pd.DataFrame) -> np.ndarray:
    """What a customer is worth to `uplift_value`: the expected spend over the task's horizon
    where the scores carry it, else the spend so far."""
    spend = rows["value"].to_numpy(np.float64)
    if "expected_value" not in rows:
        return spend
    expected = rows["expected_value"].to_numpy(np.float64)
    return np.where(np.isfinite(expected), expected, spend)


def gain_text(action: ActionConfig, champion: bool, uplift: float, worth: float) -> str:
    """The expected gain, for an action ranked by it: "; expected gain +4.2 points of the good
    outcome", or with value "; expected gain 2.60 (+4.2 points x 300.00 - cost 10.00)"; or why
    the action still ranks by risk."""
    if action.rank_by not in GAIN_RANKINGS:
        return ""
    if not champion:
        return f"; ranked by risk: {action.name} has no uplift champion yet"
    if not np.isfinite(uplift):
        return "; ranked by risk: no uplift predicted for this customer"
    points = f"{uplift * 100:+.1f} points of the good outcome"
    if action.rank_by == "uplift":
        return f"; expected gain {points}"
    gain = uplift * worth - action.cost
    return f"; expected gain {gain:.2f} ({points} x value {worth:.2f} - cost {action.cost:.2f})"
