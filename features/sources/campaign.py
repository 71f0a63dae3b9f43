"""A randomised discount campaign planted in the simulator, with effects that differ by
customer and the truth written beside each one (`Campaign`, `Planted`).

`features.sources.simulate` calls `Planted` from its cycle loop: `treat` moves the churn log-odds
of the cycles a wave reaches, `reach_lapsed` brings in those who churned before the first wave.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

DISCOUNT_STEPS = ("discount_sent", "discount_holdout")  # the treatment and control events
FOLLOW_UP_STEPS = ("follow_up_sent", "follow_up_holdout")
CAMPAIGN_STEPS = DISCOUNT_STEPS + FOLLOW_UP_STEPS
Array = np.ndarray


@dataclass(frozen=True)
class Campaign:
    """A discount e-mail campaign planted in the simulation, randomised, with a known effect.

    Every `week_days` for `weeks` waves from day `start_day`, each customer not yet in the
    campaign whose current purchase cycle (from its order to the next, or to `RECENT_DAYS`
    after its last event when it churns or waits longer) holds the wave enters it: a random
    `holdout` share gets `discount_holdout` (control), the rest `discount_sent`. Customers who
    churned before the first wave enter it then too (lapsed). The discount moves the churn
    log-odds of the cycle it falls in (one random draw decides both potential outcomes):
    - `HELPS` for consumers reached during the cycle or within `RECENT_DAYS` of its last event
      whose cycle had no refund denied (recently active, price-sensitive);
    - nothing for a customer whose refund was denied (gone whatever we do), for a consumer
      reached later than that, and for the lapsed;
    - `ANNOYS` for business customers (an unwanted discount e-mail).

    With `follow_ups`, each customer's first support ticket of the campaign's weeks also gets
    a proactive follow-up a minute after its latest step (before it can escalate), or is held
    out (`follow_up_sent` / `follow_up_holdout`, the ticket's case and team): it lowers the
    escalation log-odds by `FOLLOW_UP_HELPS` for a ticket bounced between teams (ping-pong),
    and does nothing for the others (`PlantedFollowUps`).
    """

    start_day: float = 180.0
    weeks: int = 8
    week_days: float = 7.0
    holdout: float = 0.10
    follow_ups: bool = False

    HELPS = -1.5
    ANNOYS = 0.8
    RECENT_DAYS = 21.0
    FOLLOW_UP_HELPS = -1.5

    def waves(self) -> Array:
        """Wave times in hours from the window's start."""
        return 24.0 * (self.start_day + self.week_days * np.arange(self.weeks))

    def effect(
        self, consumer: Array, refund_denied: Array, wave: Array, last_event: Array
    ) -> Array:
        """The planted change of the churn log-odds if treated."""
        recent = wave <= last_event + 24.0 * self.RECENT_DAYS
        helps = consumer & ~refund_denied & recent
        return np.where(helps, self.HELPS, np.where(consumer, 0.0, self.ANNOYS))


class Planted:
    """The campaign as it unfolds: who entered it, when, in which arm, and its planted effect
    (on the churn log-odds, and as the gain in the probability of staying)."""

    def __init__(self, campaign: Campaign, n: int, channel: int) -> None:
        self.campaign = campaign
        self.channel = channel  # the code of the e-mail channel
        self.wave = np.full(n, np.nan)  # hours from the start; NaN: never in the campaign
        self.treated = np.zeros(n, dtype=bool)
        self.effect = np.zeros(n)
        self.gain = np.zeros(n)  # P(stay | treated) - P(stay | control) in that cycle
        self.last_event = np.full(n, np.nan)

    def treat(
        self,
        journeys: Any,
        who: Array,
        cycle: tuple[Array, Array, Array],
        consumer: Array,
        refund_denied: Array,
        logit: Array,
    ) -> Array:
        """The churn log-odds of this cycle, moved for the treated it reaches."""
        begin, end, gap = cycle  # the cycle's order, last event, and gap to the next order
        waves = self.campaign.waves()
        week = 24.0 * self.campaign.week_days
        k = np.clip(np.ceil((begin - waves[0]) / week), 0, None).astype(np.int64)
        reach = np.minimum(gap, 24.0 * self.campaign.RECENT_DAYS)
        enters = (k < len(waves)) & np.isnan(self.wave[who])
        wave = np.where(enters, waves[np.minimum(k, len(waves) - 1)], np.nan)
        enters &= wave < end + reach
        treated = journeys.rng.random(who.size) >= self.campaign.holdout
        effect = self.campaign.effect(consumer, refund_denied, wave, end)
        self._enter(journeys, who[enters], wave[enters], treated[enters])
        self.effect[who[enters]] = effect[enters]
        self.gain[who[enters]] = _sigmoid(logit[enters]) - _sigmoid(logit[enters] + effect[enters])
        return logit + np.where(enters & treated, effect, 0.0)

    def reach_lapsed(self, journeys: Any, churned: Array) -> None:
        """Customers who churned before the first wave enter it then: no effect."""
        first = self.campaign.waves()[0]
        lapsed = np.flatnonzero(churned & np.isnan(self.wave) & (self.last_event < first))
        treated = journeys.rng.random(lapsed.size) >= self.campaign.holdout
        self._enter(journeys, lapsed, np.full(lapsed.size, first), treated)

    def _enter(self, journeys: Any, who: Array, wave: Array, treated: Array) -> None:
        self.wave[who], self.treated[who] = wave, treated
        journeys.add(who[treated], wave[treated], "discount_sent", channel=self.channel)
        journeys.add(who[~treated], wave[~treated], "discount_holdout", channel=self.channel)

    def truth_columns(self, customers: pd.DataFrame, start_ns: int, second: int) -> pd.DataFrame:
        """The customers' table with the campaign's truth: arm, time, planted effect, gain."""
        arm, at = _arm_and_time(self.wave, self.treated, start_ns, second)
        return customers.assign(
            campaign_arm=arm,
            campaign_at=at,
            planted_effect_logit=self.effect,
            planted_gain=self.gain,
        )

    def describe(self, start: pd.Timestamp) -> dict:
        c = self.campaign
        waves = [(start + pd.Timedelta(hours=float(h))).isoformat() for h in c.waves()]
        return {
            "description": Campaign.__doc__.strip(),
            "waves": waves,
            "holdout": c.holdout,
            "effects_logit": {"helps": c.HELPS, "annoys": c.ANNOYS},
            "recent_days": c.RECENT_DAYS,
            "entered": int((~np.isnan(self.wave)).sum()),
            "treated": int(self.treated.sum()),
            "planted_gain_mean": round(float(self.gain[~np.isnan(self.wave)].mean()), 4),
            "follow_ups": c.follow_ups,
            "follow_up_helps_logit": c.FOLLOW_UP_HELPS,
        }


class PlantedFollowUps:
    """The follow-ups as they unfold, per customer: when its first campaign ticket got one (or
    was held out), and the planted effect on that ticket's escalation. The arms come from a
    generator of their own: drawing them shifts none of the simulator's own draws (though the
    escalations they prevent change what follows)."""

    def __init__(self, campaign: Campaign, n: int, seed: int) -> None:
        self.campaign = campaign
        self.rng = np.random.default_rng([seed, 19])
        self.at = np.full(n, np.nan)  # hours from the start; NaN: no follow-up decision
        self.treated = np.zeros(n, dtype=bool)
        self.gain = np.zeros(n)  # P(escalation | held out) - P(escalation | followed up)

    def treat(self, journeys: Any, tickets: Any, at: Array, pingpong: Array, logit: Array) -> Array:
        """The escalation log-odds of these tickets, moved for those followed up."""
        c = self.campaign
        start = 24.0 * c.start_day
        moment = at + 1.0 / 60.0
        owner = tickets.owner
        enters = (moment >= start) & (moment < start + 24.0 * c.week_days * c.weeks)
        enters &= np.isnan(self.at[owner])
        treated = self.rng.random(at.size) >= c.holdout
        effect = np.where(pingpong, c.FOLLOW_UP_HELPS, 0.0)
        self.at[owner[enters]] = moment[enters]
        self.treated[owner[enters]] = treated[enters]
        self.gain[owner[enters]] = (_sigmoid(logit) - _sigmoid(logit + effect))[enters]
        journeys.emit(tickets, enters & treated, moment, "follow_up_sent")
        journeys.emit(tickets, enters & ~treated, moment, "follow_up_holdout")
        return logit + np.where(enters & treated, effect, 0.0)

    def truth_columns(self, customers: pd.DataFrame, start_ns: int, second: int) -> pd.DataFrame:
        arm, at = _arm_and_time(self.at, self.treated, start_ns, second)
        return customers.assign(follow_up_arm=arm, follow_up_at=at, follow_up_gain=self.gain)


def _arm_and_time(
    hours: Array, treated: Array, start_ns: int, second: int
) -> tuple[pd.api.extensions.ExtensionArray, pd.DatetimeIndex]:
    """Each customer's arm ("treatment", "control", missing if never entered) and the time
    they entered, from the hours after the start at which they did (NaN: never)."""
    entered = ~np.isnan(hours)
    arm = np.where(entered, np.where(treated, "treatment", "control"), None)
    at = start_ns + np.rint(np.nan_to_num(hours) * 3600.0).astype(np.int64) * second
    return pd.array(arm, dtype="str"), pd.to_datetime(at, unit="ns", utc=True).where(entered)


def _sigmoid(x: Array) -> Array:
    return 1.0 / (1.0 + np.exp(-x))
