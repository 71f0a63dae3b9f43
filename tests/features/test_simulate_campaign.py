"""The simulator's planted discount campaign: randomised arms as events, truth beside the log."""

from __future__ import annotations

import numpy as np
import pandas as pd

from journeyguard.features.sources.campaign import CAMPAIGN_STEPS, Campaign
from journeyguard.features.sources.simulate import simulate


def test_without_a_campaign_the_log_has_no_campaign_steps_nor_truth():
    plain = simulate(300, seed=5)
    assert not plain.events["event"].isin(CAMPAIGN_STEPS).any()
    assert "campaign_arm" not in plain.customers and "campaign" not in plain.truth


def test_the_campaign_writes_each_arm_as_an_event_with_its_truth_beside():
    campaign = Campaign(holdout=0.3)
    simulation = simulate(2_000, seed=5, campaign=campaign)
    customers, events = simulation.customers, simulation.events
    entered = customers["campaign_arm"].notna()
    assert 0.2 < (customers.loc[entered, "campaign_arm"] == "control").mean() < 0.4
    sent = events[events["event"].isin(CAMPAIGN_STEPS)]
    assert sent["customer_id"].is_unique and len(sent) == entered.sum()
    arm = sent.set_index("customer_id")["event"].map(
        {"discount_sent": "treatment", "discount_holdout": "control"}
    )
    truth = customers.set_index("customer_id")
    assert arm.tolist() == truth.loc[arm.index, "campaign_arm"].tolist()
    at = sent.set_index("customer_id")["timestamp"]
    assert (at == truth.loc[at.index, "campaign_at"]).all()
    waves = pd.to_datetime(simulation.truth["campaign"]["waves"], utc=True)
    assert at.isin(waves).all()


def test_the_planted_effect_helps_recent_consumers_and_annoys_business_customers():
    customers = simulate(2_000, seed=6, campaign=Campaign()).customers
    entered = customers[customers["campaign_arm"].notna()]
    effect, gain = entered["planted_effect_logit"], entered["planted_gain"]
    assert set(np.unique(effect)) <= {Campaign.HELPS, 0.0, Campaign.ANNOYS}
    business = entered["segment"] == "business"
    annoyed = effect == Campaign.ANNOYS
    assert (~business | annoyed | (effect == 0.0)).all()  # the lapsed feel nothing
    assert business[annoyed].all() and (gain[annoyed] < 0).all() and annoyed.any()
    assert (gain[effect == Campaign.HELPS] > 0).all() and (gain[effect == 0.0] == 0).all()
    # Those whose refund was denied in the cycle the discount reached are never helped.
    assert (effect == Campaign.HELPS).sum() > 0.3 * len(entered)


def test_follow_ups_are_planted_on_tickets_with_their_truth_beside():
    alone = simulate(1_500, seed=8, campaign=Campaign())
    both = simulate(1_500, seed=8, campaign=Campaign(holdout=0.3, follow_ups=True))
    assert "follow_up_arm" not in alone.customers
    customers, events = both.customers, both.events
    sent = events[events["event"].isin(["follow_up_sent", "follow_up_holdout"])]
    assert sent["customer_id"].is_unique and sent["case_id"].notna().all()
    entered = customers.set_index("customer_id").loc[sent["customer_id"]]
    arm = sent["event"].map({"follow_up_sent": "treatment", "follow_up_holdout": "control"})
    assert arm.tolist() == entered["follow_up_arm"].tolist()
    assert (entered["follow_up_gain"][~entered["had_pingpong"].to_numpy()] == 0).all()
    assert (entered["follow_up_gain"] >= 0).all() and (entered["follow_up_gain"] > 0).any()
