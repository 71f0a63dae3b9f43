"""A randomised e-mail experiment exported as events, with its planted effect: a test fixture.

Each customer has a few purchases before the campaign, then one `campaign_email` event whose
`cell` column says whether the e-mail went out (`email`) or was held back (`none`), half and half
at random; a `visit` within 14 days follows with a probability that the e-mail raises for the
`frequent` customers (three or more purchases), leaves alone for the others, and lowers for
`vip` segment ones: the planted uplift is written beside each customer.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CAMPAIGN = pd.Timestamp("2024-06-01", tz="UTC")
CONFIG = """
[source]
path = "events.csv"

[source.columns]
customer_id = "customer"
timestamp = "time"
event = "step"

[source.attributes]
columns = ["cell", "segment"]

[output]
dir = "out"

[tasks.visit]
label = "occurs"
match = { event = ["visit"] }
horizon = "14d"
snapshots = { every = "7d" }

[experiments.email]
treatment = { event = ["campaign_email"], column = "cell", values = ["email"] }
control = { event = ["campaign_email"], column = "cell", values = ["none"] }
outcome = "visit"
goal = "increase"
action = "mail"

[outreach]
holdout = 0.2

[outreach.actions.mail]
task = "visit"
min_risk = 0.0
rank_by = "uplift"
"""


def experiment_log(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The events (customer, time, step, cell, segment) and the truth (customer, treated,
    planted_uplift)."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"K{i:05d}" for i in range(n)])
    purchases = rng.integers(1, 6, n)
    vip = rng.random(n) < 0.25
    segment = np.where(vip, "vip", "regular")
    treated = rng.random(n) < 0.5
    base = 0.15 + 0.05 * (purchases >= 3)
    lift = np.where(purchases >= 3, 0.25, 0.0) - np.where(vip, 0.10, 0.0)
    p_treated, p_control = np.clip(base + lift, 0.01, 0.99), base
    visits = rng.random(n) < np.where(treated, p_treated, p_control)
    rows = []
    for i in range(n):
        days = np.sort(rng.uniform(5, 120, purchases[i]))
        for d in days:
            rows.append((ids[i], CAMPAIGN - pd.Timedelta(days=float(d)), "purchase", None))
        cell = "email" if treated[i] else "none"
        rows.append((ids[i], CAMPAIGN + pd.Timedelta(hours=float(i % 24)), "campaign_email", cell))
        if visits[i]:
            visit = CAMPAIGN + pd.Timedelta(days=float(rng.uniform(1, 13)))
            rows.append((ids[i], visit, "visit", None))
    events = pd.DataFrame(rows, columns=["customer", "time", "step", "cell"])
    events["segment"] = events["customer"].map(dict(zip(ids, segment, strict=True)))
    # The log runs past every outcome window: a last quiet event closes it.
    closing = pd.DataFrame(
        {
            "customer": ["K_end"],
            "time": [CAMPAIGN + pd.Timedelta(days=30)],
            "step": ["purchase"],
            "cell": [None],
            "segment": ["regular"],
        }
    )
    events = pd.concat([events, closing], ignore_index=True)
    truth = pd.DataFrame(
        {"customer_id": ids, "treated": treated, "planted_uplift": p_treated - p_control}
    )
    return events, truth
