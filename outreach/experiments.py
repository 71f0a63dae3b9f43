"""The outbox's own decisions as a randomised experiment: per action, the contacted customers
are the treated and the control group (holdout) the control, each at its first such decision
(as the effect report counts them); suppressed customers were in neither arm."""

from __future__ import annotations

import numpy as np
import pandas as pd

from journeyguard.features.config.model import Config
from journeyguard.features.eventlog.columns import CUSTOMER_ID
from journeyguard.features.experiments import Arms, first_arms
from journeyguard.outreach.policy import CONTACT, HOLDOUT


def arms_from_decisions(decisions: pd.DataFrame, action: str) -> Arms:
    """The action's arms from stored decisions (`outbox.decisions_frame`)."""
    chosen = decisions[
        (decisions["action"] == action) & decisions["decision"].isin([CONTACT, HOLDOUT])
    ]
    if chosen.empty:
        raise ValueError(
            f"the outbox holds no contact or holdout decision of the action {action!r} yet: "
            "run outreach cycles first"
        )
    moments = pd.to_datetime(chosen["as_of"], utc=True).dt.as_unit("ns")
    return first_arms(
        chosen[CUSTOMER_ID].astype(str).to_numpy(),
        moments.to_numpy(dtype="datetime64[ns]").view(np.int64),
        (chosen["decision"] == CONTACT).to_numpy(),
    )


def outbox_arms(settings: Config, action: str) -> Arms:
    """`arms_from_decisions` of the configured outbox's decisions of the campaign."""
    from journeyguard.outreach.outbox import decisions_frame, open_outbox, outbox_url

    engine = open_outbox(outbox_url(settings))
    try:
        decisions = decisions_frame(engine, settings.outreach.campaign)
    finally:
        engine.dispose()
    return arms_from_decisions(decisions, action)
