"""A vectorised post-purchase journey simulator with a known, planted causal truth.

Every customer places a first order, then lives through cycles: delivery (sometimes late),
onboarding (first cycle only), maybe a support ticket, chat, refund, surveys. After each cycle
the customer churns with probability sigmoid(base + planted effects of that cycle); otherwise
a repeat purchase after an exponential gap starts the next cycle. The data ends at the window
end: customers still active then are censored, not churned.

With a `Campaign`, a randomised discount campaign is planted too, with effects that differ by
customer (see `Campaign`), its truth beside each customer.

All customers move through each step at once (arrays per step; loops only over cycles and
steps), drawing from one `np.random.default_rng(seed)` in a fixed order, so a seed fixes the
output exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy.special import gammaincinv

from journeyguard.features.eventlog.canonical import write_canonical
from journeyguard.features.eventlog.frames import log_from_frame
from journeyguard.features.sources.campaign import (
    CAMPAIGN_STEPS,
    Campaign,
    Planted,
    PlantedFollowUps,
)

STEPS = (
    "order_placed", "order_shipped", "delivery_delayed", "delivered", "onboarding_started",
    "onboarding_completed", "ticket_opened", "ticket_reassigned", "ticket_reopened", "escalated",
    "ticket_resolved", "chat_started", "refund_requested", "refund_approved", "refund_denied",
    "csat_submitted", "nps_submitted", "repeat_purchase",
)  # fmt: skip
ALL_STEPS = STEPS + CAMPAIGN_STEPS
CHANNELS = ("web", "email", "phone", "chat", "team_billing", "team_logistics", "team_technical")
WEB, EMAIL, PHONE, CHAT = range(4)  # codes of the contact channels in CHANNELS
TEAMS = (4, 5, 6)  # codes of the support teams in CHANNELS
SEGMENTS = ("consumer", "business")
COUNTRIES = ("US", "GB", "DE", "FR", "NL")
COUNTRY_SHARES = (0.40, 0.20, 0.18, 0.12, 0.10)
BUSINESS_SHARE = 0.2
PINGPONG = "ticket_reassigned>ticket_reassigned"
LOW_CSAT = "csat_submitted<=2"

CHURN_BASE_LOGIT = -2.0  # a clean repeat cycle churns with probability ~0.12
# "order_placed" marks the first cycle: new customers leave more readily than repeat ones
# (a clean first cycle churns ~0.20 with onboarding completed, ~0.38 without).
CHURN_EFFECTS = {
    "delivery_delayed": 1.0, "refund_denied": 1.6, "ticket_reopened": 0.9, PINGPONG: 0.8,
    "escalated": 0.6, LOW_CSAT: 0.7, "onboarding_completed": -0.9, "order_placed": 1.5,
}  # fmt: skip
ESCALATION_BASE_LOGIT = -2.7  # a clean ticket escalates with probability ~0.063
ESCALATION_EFFECTS = {PINGPONG: 1.5, "ticket_reopened": 1.2, "delivery_delayed": 0.6}
# How far below its usual level (CSAT ~4.4; NPS 1.8x this below ~8.3) each experience puts a score.
SURVEY_PENALTIES = {
    "delivery_delayed": 1.2, "refund_denied": 1.6, PINGPONG: 0.7, "ticket_reopened": 0.8,
    "escalated": 0.5,
}  # fmt: skip

# Gamma (shape, scale in hours) of the time from one step to the next.
# "ticket>" is from the ticket's latest step, "cycle>" from the cycle's latest event.
DELAYS = {
    "order_placed>order_shipped": (2.0, 12.0), "order_shipped>delivered": (4.0, 18.0),
    "order_shipped>delivery_delayed": (2.0, 10.0), "delivered>onboarding_started": (1.5, 12.0),
    "onboarding_started>onboarding_completed": (2.0, 24.0),
    "delivered>ticket_opened": (1.5, 30.0), "delivery_delayed>ticket_opened": (1.5, 12.0),
    "ticket_opened>ticket_reassigned": (2.0, 5.0), "ticket>ticket_resolved": (2.0, 14.0),
    "ticket_resolved>ticket_reopened": (2.0, 30.0), "ticket>escalated": (1.5, 3.0),
    "delivered>chat_started": (1.5, 30.0), "delivered>refund_requested": (2.0, 40.0),
    "refund_requested>refund_decision": (2.0, 20.0), "cycle>csat_submitted": (2.0, 12.0),
    "csat_submitted>nps_submitted": (2.0, 30.0),
}  # fmt: skip
LATE_BY_HOURS = (72.0, 240.0)  # a delayed order arrives 3-10 days after it would have
P_DELAY = 0.15
REPEAT_GAP_MEAN_DAYS = 40.0
FIRST_ORDER_SPAN = 0.75  # first orders fall uniformly over this share of the window
MAX_CYCLES = 200  # a safety bound only: the window ends long before
SECOND_NS = 1_000_000_000

Array = np.ndarray
Rng = np.random.Generator


_EXTRA_COLUMNS = {"case": -1, "channel": -1, "value": np.nan, "score": np.nan}  # -1: none
Flags = dict[str, Array]  # per-customer bools of one cycle, keyed like CHURN_EFFECTS


@dataclass(frozen=True)
class Simulation:
    """A simulated event log with the hidden truth that generated it."""

    events: pd.DataFrame  # canonical event columns plus `segment` and `country`
    customers: pd.DataFrame  # one row per customer: the hidden per-customer truth
    truth: dict  # JSON-serialisable: the planted causal structure


def simulate(
    n_customers: int,
    seed: int,
    *,
    start: str = "2025-01-01",
    days: int = 365,
    late_share: float = P_DELAY,
    campaign: Campaign | None = None,
) -> Simulation:
    """Simulates `n_customers` journeys over `days` days from `start` (UTC); a seed fixes all.
    `late_share`, the share of late deliveries, changes the mix (e.g. to test drift checks);
    `campaign` plants a randomised discount campaign with known effects."""
    if n_customers < 1 or days < 1:
        raise ValueError(f"need n_customers >= 1 and days >= 1; got {n_customers}, {days}")
    if not 0.0 <= late_share <= 1.0:
        raise ValueError(f"need 0 <= late_share <= 1; got {late_share}")
    rng = np.random.default_rng(seed)
    start_ts = _utc(start)
    horizon = days * 24.0
    segment = (rng.random(n_customers) < BUSINESS_SHARE).astype(np.int64)
    country = rng.choice(len(COUNTRIES), n_customers, p=COUNTRY_SHARES)
    follow_ups = (
        PlantedFollowUps(campaign, n_customers, seed)
        if campaign is not None and campaign.follow_ups
        else None
    )
    journeys = _Journeys(rng, late_share, follow_ups)
    churned = np.zeros(n_customers, dtype=bool)
    max_logit = np.full(n_customers, -np.inf)
    who = np.arange(n_customers)
    begin = rng.uniform(0.0, FIRST_ORDER_SPAN * horizon, n_customers)
    planted = Planted(campaign, n_customers, EMAIL) if campaign is not None else None
    for cycle in range(MAX_CYCLES):
        if who.size == 0:
            break
        flags, end = journeys.cycle(who, begin, segment[who], first=cycle == 0)
        logit = CHURN_BASE_LOGIT + sum(CHURN_EFFECTS[key] * flags[key] for key in CHURN_EFFECTS)
        draw = rng.random(who.size)
        gap = rng.exponential(REPEAT_GAP_MEAN_DAYS * 24.0, who.size)
        if planted is not None:
            consumer = segment[who] == SEGMENTS.index("consumer")
            denied = flags["refund_denied"]
            logit = planted.treat(journeys, who, (begin, end, gap), consumer, denied, logit)
        churns = draw < _sigmoid(logit)
        max_logit[who] = np.maximum(max_logit[who], logit)
        # A churn decided after a cycle the window cut short is never seen: that is censoring.
        churned[who[churns & (end < horizon)]] = True
        stays = ~churns & (end + gap < horizon)
        if planted is not None:
            planted.last_event[who] = end
        who, begin = who[stays], (end + gap)[stays]
    if planted is not None:
        planted.reach_lapsed(journeys, churned)
    start_ns = start_ts.value
    rows = _sorted_rows(journeys, start_ns, start_ns + int(horizon * 3600) * SECOND_NS)
    ids = _ids("C", n_customers)
    events = _events_frame(rows, ids, segment, country)
    customers = _customers_frame(rows, ids, segment, country, churned, max_logit)
    end_ts = start_ts + pd.Timedelta(days=days)
    truth = _truth(seed, n_customers, start_ts, end_ts, events, customers, late_share)
    if planted is not None:
        customers = planted.truth_columns(customers, start_ns, SECOND_NS)
        if follow_ups is not None:
            customers = follow_ups.truth_columns(customers, start_ns, SECOND_NS)
        truth["campaign"] = planted.describe(start_ts)
    return Simulation(events=events, customers=customers, truth=truth)


def write_simulation(simulation: Simulation, out: Path) -> dict[str, Path]:
    """Writes out (Parquet, events), out.with_suffix('.truth.json') and <stem>.customers.parquet
    beside it; returns the paths by kind."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = {
        "events": out,
        "truth": out.with_suffix(".truth.json"),
        "customers": out.with_name(f"{out.stem}.customers.parquet"),
    }
    # The canonical form: the log is valid by construction, so commands read it without
    # validating it again.
    write_canonical(log_from_frame(simulation.events), paths["events"])
    simulation.customers.to_parquet(paths["customers"], index=False)
    paths["truth"].write_text(json.dumps(simulation.truth, indent=2) + "\n", encoding="utf-8")
    return paths


class _Journeys:
    """Moves all active customers through one cycle at a time, step by step, appending arrays
    per step to a log; holds the one generator (draws happen in a fixed order) and the number
    of tickets opened so far."""

    def __init__(
        self, rng: Rng, late_share: float = P_DELAY, follow_ups: PlantedFollowUps | None = None
    ) -> None:
        self.rng = rng
        self.late_share = late_share
        self.follow_ups = follow_ups
        self.parts: list[tuple] = []
        self.tickets = 0

    def add(self, who: Array, hours: Array, step: str, **columns: Array | float) -> None:
        """Logs `step` for customers `who` at `hours`; case, channel, value, score optional."""
        extra = [columns.pop(name, default) for name, default in _EXTRA_COLUMNS.items()]
        assert not columns, f"unknown event columns {sorted(columns)}"
        self.parts.append((who, hours, ALL_STEPS.index(step), *extra))

    def columns(self) -> list[Array]:
        """who, hours, step, case, channel, value, score: the whole log, scalars broadcast."""
        dtypes = (np.int64, np.float64, np.int8, np.int64, np.int8, np.float64, np.float64)
        return [
            np.concatenate([np.broadcast_to(part[i], len(part[0])) for part in self.parts])
            .astype(dtype, copy=False)
            for i, dtype in enumerate(dtypes)
        ]  # fmt: skip

    def gamma(self, transition: str, size: int) -> Array:
        shape, scale = DELAYS[transition]
        return self.rng.gamma(shape, scale, size)

    def pick(self, size: int, shares: dict[int, float]) -> Array:
        """Channel codes drawn with the given shares, e.g. {WEB: 0.8, PHONE: 0.2}."""
        return self.rng.choice(list(shares), size, p=list(shares.values()))

    def cycle(
        self, who: Array, begin: Array, segment: Array, *, first: bool
    ) -> tuple[Flags, Array]:
        """One purchase cycle of every active customer: what happened in it, keyed like
        CHURN_EFFECTS, and when its last event is."""
        n, rng = who.size, self.rng
        value = np.round(rng.lognormal(np.where(segment == 1, np.log(400), np.log(60)), 0.6), 2)
        step = "order_placed" if first else "repeat_purchase"
        self.add(who, begin, step, channel=self.pick(n, {WEB: 0.8, PHONE: 0.2}), value=value)
        delivered, delayed, notice = self.deliver(who, begin)
        flags = {"order_placed": np.full(n, first), "delivery_delayed": delayed}
        flags["onboarding_completed"] = np.zeros(n, dtype=bool)
        end = delivered
        if first:
            flags["onboarding_completed"], end = self.onboard(who, delivered, delayed)
        ticket, ticket_end, has_ticket = self.ticket(who, delivered, notice, delayed)
        flags.update(ticket)
        chat = rng.random(n) < 0.08 + 0.15 * delayed
        chat_at = delivered + self.gamma("delivered>chat_started", n)
        self.add(who[chat], chat_at[chat], "chat_started", channel=CHAT)
        flags["refund_denied"], refund_end = self.refund(
            who, delivered, value, delayed | has_ticket
        )
        end = np.maximum.reduce([end, ticket_end, np.where(chat, chat_at, 0.0), refund_end])
        flags[LOW_CSAT], end = self.surveys(who, end, flags)
        return flags, end

    def deliver(self, who: Array, placed: Array) -> tuple[Array, Array, Array]:
        """Shipping and delivery; a delayed order gets a notice and arrives 3-10 days late."""
        n = who.size
        shipped = placed + self.gamma("order_placed>order_shipped", n)
        on_time = shipped + self.gamma("order_shipped>delivered", n)
        delayed = self.rng.random(n) < self.late_share
        notice = shipped + self.gamma("order_shipped>delivery_delayed", n)
        late = np.maximum(on_time, notice) + self.rng.uniform(*LATE_BY_HOURS, n)
        delivered = np.where(delayed, late, on_time)
        self.add(who, shipped, "order_shipped")
        self.add(who[delayed], notice[delayed], "delivery_delayed")
        self.add(who, delivered, "delivered")
        return delivered, delayed, notice

    def onboard(self, who: Array, delivered: Array, delayed: Array) -> tuple[Array, Array]:
        """First cycle only: all start onboarding, ~70 % finish (fewer after a late order)."""
        n = who.size
        started = delivered + self.gamma("delivered>onboarding_started", n)
        completed = self.rng.random(n) < 0.74 - 0.15 * delayed
        done_at = started + self.gamma("onboarding_started>onboarding_completed", n)
        self.add(who, started, "onboarding_started", channel=WEB)
        self.add(who[completed], done_at[completed], "onboarding_completed", channel=WEB)
        return completed, np.where(completed, done_at, started)

    def ticket(self, who: Array, delivered: Array, notice: Array, delayed: Array) -> tuple:
        """Maybe one support ticket per cycle (likelier after a late order), reassigned back
        and forth between two teams. Returns per-customer flags, when the ticket closed (0 if
        none) and whether there was one."""
        n, rng = who.size, self.rng
        has = rng.random(n) < 0.13 + 0.35 * delayed
        rows = np.flatnonzero(has)
        m, late = rows.size, delayed[rows]
        tk = _Tickets(who[rows], self.tickets + np.arange(m), np.zeros(m, dtype=np.int64))
        self.tickets += m
        from_notice = notice[rows] + self.gamma("delivery_delayed>ticket_opened", m)
        from_delivery = delivered[rows] + self.gamma("delivered>ticket_opened", m)
        at = np.where(late, from_notice, from_delivery)
        # Late orders go to logistics; other tickets to billing or technical, some misrouted.
        home = np.where(late & (rng.random(m) < 0.8), 1, rng.choice([0, 2], m))
        away = (home + rng.integers(1, 3, m)) % 3
        self.emit(tk, np.ones(m, dtype=bool), at, "ticket_opened", home)
        moves = rng.choice(4, m, p=[0.55, 0.25, 0.13, 0.07])
        for k in range(3):  # A -> B -> A -> B: two or more moves is ping-pong
            at = np.where(moves > k, at + self.gamma("ticket_opened>ticket_reassigned", m), at)
            self.emit(tk, moves > k, at, "ticket_reassigned", away if k % 2 == 0 else home)
        tk.team = np.where(moves % 2 == 1, away, home)
        flags, at = self.resolve(tk, at, moves >= 2, late)
        flags = {key: _spread(rows, n, values) for key, values in flags.items()}
        return flags, _spread(rows, n, at), has

    def resolve(self, tk: _Tickets, at: Array, pingpong: Array, late: Array) -> tuple:
        """Open tickets get resolved: some are reopened after a first fix, some escalate."""
        m = at.size
        reopen = self.rng.random(m) < 0.10 + 0.08 * pingpong + 0.05 * late
        first_fix = at + self.gamma("ticket>ticket_resolved", m)
        reopened_at = first_fix + self.gamma("ticket_resolved>ticket_reopened", m)
        self.emit(tk, reopen, first_fix, "ticket_resolved")
        self.emit(tk, reopen, reopened_at, "ticket_reopened")
        at = np.where(reopen, reopened_at, at)
        effects = {PINGPONG: pingpong, "ticket_reopened": reopen, "delivery_delayed": late}
        logit = ESCALATION_BASE_LOGIT + sum(ESCALATION_EFFECTS[k] * effects[k] for k in effects)
        if self.follow_ups is not None:
            logit = self.follow_ups.treat(self, tk, at, pingpong, logit)
        escalated = self.rng.random(m) < _sigmoid(logit)
        at = np.where(escalated, at + self.gamma("ticket>escalated", m), at)
        self.emit(tk, escalated, at, "escalated")
        at = at + self.gamma("ticket>ticket_resolved", m)
        self.emit(tk, np.ones(m, dtype=bool), at, "ticket_resolved")
        return {PINGPONG: pingpong, "ticket_reopened": reopen, "escalated": escalated}, at

    def emit(
        self, tk: _Tickets, mask: Array, at: Array, step: str, team: Array | None = None
    ) -> None:
        """Logs a ticket step for the tickets in `mask`, handled by `team` (default: theirs)."""
        channel = np.take(TEAMS, (tk.team if team is None else team)[mask])
        self.add(tk.owner[mask], at[mask], step, case=tk.case[mask], channel=channel)

    def refund(self, who: Array, delivered: Array, value: Array, troubled: Array) -> tuple:
        """Some customers ask for a refund (more after trouble); ~70 % are approved. Returns
        who was denied and when the decision came (0 if none)."""
        n, rng = who.size, self.rng
        asks = rng.random(n) < 0.05 + 0.10 * troubled
        asked_at = delivered + self.gamma("delivered>refund_requested", n)
        decided_at = asked_at + self.gamma("refund_requested>refund_decision", n)
        approved = rng.random(n) < 0.7
        share = np.where(rng.random(n) < 0.6, 1.0, rng.uniform(0.2, 0.6, n))
        channel = self.pick(n, {WEB: 0.5, EMAIL: 0.3, PHONE: 0.2})
        self.add(who[asks], asked_at[asks], "refund_requested", channel=channel[asks])
        ok, no = asks & approved, asks & ~approved
        self.add(who[ok], decided_at[ok], "refund_approved", value=np.round(value * share, 2)[ok])
        self.add(who[no], decided_at[no], "refund_denied")
        return no, np.where(asks, decided_at, 0.0)

    def surveys(self, who: Array, after: Array, flags: Flags) -> tuple[Array, Array]:
        """CSAT (1-5) and NPS (0-10) after the cycle, lower after bad experiences. Returns
        who gave a low CSAT and when the cycle's last event is."""
        n, rng = who.size, self.rng
        bad = sum(weight * flags[key] for key, weight in SURVEY_PENALTIES.items())
        csat = np.clip(np.rint(4.4 - bad + rng.normal(0.0, 0.8, n)), 1, 5)
        nps = np.clip(np.rint(8.3 - 1.8 * bad + rng.normal(0.0, 1.6, n)), 0, 10)
        rated, promoted = rng.random(n) < 0.35, rng.random(n) < 0.15
        csat_at = after + self.gamma("cycle>csat_submitted", n)
        nps_at = csat_at + self.gamma("csat_submitted>nps_submitted", n)
        channel = self.pick(n, {EMAIL: 0.7, WEB: 0.3})
        self.add(who[rated], csat_at[rated], "csat_submitted", channel=channel[rated],
                 score=csat[rated])  # fmt: skip
        self.add(who[promoted], nps_at[promoted], "nps_submitted", channel=EMAIL,
                 score=nps[promoted])  # fmt: skip
        latest = [after, np.where(rated, csat_at, 0.0), np.where(promoted, nps_at, 0.0)]
        return rated & (csat <= 2), np.maximum.reduce(latest)


@dataclass
class _Tickets:
    """The tickets opened in one cycle: each one's customer, number and team (0, 1, 2)."""

    owner: Array
    case: Array
    team: Array


def _sorted_rows(journeys: _Journeys, start_ns: int, end_ns: int) -> dict[str, Array]:
    """Whole-second timestamps, sorted by customer then time, ties nudged apart, cut at the end."""
    who, hours, step, case, channel, value, score = journeys.columns()
    seconds = np.rint(hours * 3600.0).astype(np.int64)
    # One int64 key (customer, second), sorted stably: equal to np.lexsort((seconds, who)), but
    # each logged step is already a sorted run, which the stable sort merges much faster.
    # Stability keeps generation order on ties, and within a customer that is causal order.
    order = np.argsort(who * (int(seconds.max()) + 1) + seconds, kind="stable")
    who, ns = who[order], start_ns + seconds[order] * SECOND_NS
    while True:  # one pass per extra tie at the same second; almost always one pass or none
        tied = (who[1:] == who[:-1]) & (ns[1:] <= ns[:-1])
        if not tied.any():
            break
        ns[1:][tied] = ns[:-1][tied] + SECOND_NS
    kept = ns < end_ns
    rows = {
        "who": who,
        "ns": ns,
        "step": step[order],
        "case": case[order],
        "channel": channel[order],
        "value": value[order],
        "score": score[order],
    }
    rows = {key: column[kept] for key, column in rows.items()}
    rows["case"] = _renumber(rows["case"])
    return rows


def _renumber(case: Array) -> Array:
    """Ticket numbers in order of first appearance in the sorted log (-1 stays missing)."""
    valid = case >= 0
    unique, first, inverse = np.unique(case[valid], return_index=True, return_inverse=True)
    rank = np.empty(unique.size, dtype=np.int64)
    rank[np.argsort(first)] = np.arange(unique.size)
    case = case.copy()
    case[valid] = rank[inverse]
    return case


def _events_frame(
    rows: dict[str, Array], ids: Array, segment: Array, country: Array
) -> pd.DataFrame:
    who = rows["who"]
    n_cases = int(rows["case"].max()) + 1 if rows["case"].size else 0
    return pd.DataFrame(
        {
            "customer_id": _text(who, ids),
            "timestamp": pd.to_datetime(rows["ns"], unit="ns", utc=True),
            "event": _text(rows["step"], ALL_STEPS),
            "case_id": _text(rows["case"], _ids("T", n_cases)),
            "channel": _text(rows["channel"], CHANNELS),
            "value": rows["value"],
            "score": rows["score"],
            "segment": _text(segment[who], SEGMENTS),
            "country": _text(country[who], COUNTRIES),
        }
    )


def _customers_frame(
    rows: dict[str, Array],
    ids: Array,
    segment: Array,
    country: Array,
    churned: Array,
    max_logit: Array,
) -> pd.DataFrame:
    """The per-customer truth; what happened is read off the events as they were kept."""
    n, who, step, case = ids.size, rows["who"], rows["step"], rows["case"]
    bounds = np.searchsorted(who, np.arange(n + 1))
    times = pd.to_datetime(rows["ns"], unit="ns", utc=True)
    starts = np.isin(step, [STEPS.index("order_placed"), STEPS.index("repeat_purchase")])
    reassigned = step == STEPS.index("ticket_reassigned")
    n_cases = int(case.max()) + 1 if case.size else 0
    pingpong_case = np.bincount(case[reassigned], minlength=n_cases) >= 2
    owner = np.zeros(n_cases, dtype=np.int64)
    owner[case[case >= 0]] = who[case >= 0]
    return pd.DataFrame(
        {
            "customer_id": _text(np.arange(n), ids),
            "segment": _text(segment, SEGMENTS),
            "country": _text(country, COUNTRIES),
            "first_order_at": times[bounds[:-1]],
            "n_cycles": np.bincount(who[starts], minlength=n).astype(np.int64),
            "churned": churned,
            "churned_at": times[bounds[1:] - 1].where(churned),
            "censored": ~churned,
            "had_delay": _any(who, step == STEPS.index("delivery_delayed"), n),
            "had_refund_denied": _any(who, step == STEPS.index("refund_denied"), n),
            "had_pingpong": _any(owner, pingpong_case, n),
            "had_reopen": _any(who, step == STEPS.index("ticket_reopened"), n),
            "escalated": _any(who, step == STEPS.index("escalated"), n),
            "max_planted_churn_logit": max_logit,
        }
    )


def _truth(
    seed: int,
    n_customers: int,
    start: pd.Timestamp,
    end: pd.Timestamp,
    events: pd.DataFrame,
    customers: pd.DataFrame,
    late_share: float = P_DELAY,
) -> dict:
    """The planted structure and parameters, plus a few statistics of what came out."""
    delays = {
        key: _quantiles(shape, scale) | {"distribution": f"gamma({shape}, {scale}h)"}
        for key, (shape, scale) in DELAYS.items()
    }
    low, high = LATE_BY_HOURS
    delays["late_by"] = {
        "median": (low + high) / 2,
        "p90": round(low + 0.9 * (high - low), 2),
        "distribution": f"uniform({low}h, {high}h)",
    }
    return {
        "description": (
            "Post-purchase journeys in cycles (order or repeat purchase, shipping, delivery, "
            "onboarding in the first cycle, maybe a ticket, chat, refund, CSAT/NPS). After each "
            "cycle a customer churns (goes silent) with probability sigmoid(churn.base_logit + "
            "sum of churn.effects of what happened in that cycle; 'order_placed' marks the "
            "first cycle), else buys again after an exponential gap; a ticket escalates with "
            "sigmoid(escalation.base_logit + escalation.effects). Customers still active at "
            "the end are censored."
        ),
        "seed": int(seed),
        "n_customers": int(n_customers),
        "start": start.isoformat(),
        "end": end.isoformat(),
        "steps": list(STEPS),
        "churn": {"base_logit": CHURN_BASE_LOGIT, "effects": dict(CHURN_EFFECTS)},
        "escalation": {"base_logit": ESCALATION_BASE_LOGIT, "effects": dict(ESCALATION_EFFECTS)},
        "delays_hours": delays,
        "repeat_gap_mean_days": REPEAT_GAP_MEAN_DAYS,
        "delay_probability": late_share,
        "stats": {
            "n_events": len(events),
            "events_per_customer": round(len(events) / n_customers, 3),
            "churned_share": round(float(customers["churned"].mean()), 4),
            "tickets": int(events["event"].eq("ticket_opened").sum()),
        },
    }


def _quantiles(shape: float, scale: float) -> dict[str, float]:
    return {
        name: round(float(gammaincinv(shape, q) * scale), 2)
        for name, q in (("median", 0.5), ("p90", 0.9))
    }


def _spread(rows: Array, n: int, values: Array) -> Array:
    out = np.zeros(n, dtype=values.dtype)
    out[rows] = values
    return out


def _any(who: Array, mask: Array, n: int) -> Array:
    return np.bincount(who[mask], minlength=n) > 0


def _sigmoid(x: Array) -> Array:
    return 1.0 / (1.0 + np.exp(-x))


def _ids(prefix: str, n: int) -> Array:
    """Zero-padded ids so that text order is numeric order: C0000000, C0000001, ..."""
    width = max(7, len(str(max(n - 1, 0))))
    return np.array([f"{prefix}{i:0{width}d}" for i in range(n)], dtype=object)


def _text(codes: Array, vocabulary: Array | tuple[str, ...]) -> pd.api.extensions.ExtensionArray:
    """A `str` column from integer codes into a vocabulary (-1 is missing), without per-row
    Python strings."""
    vocabulary = pa.array(np.asarray(vocabulary, dtype=object), type=pa.string())
    return pd.array(vocabulary.take(pa.array(codes, mask=codes < 0)), dtype="str")


def _utc(text: str) -> pd.Timestamp:
    stamp = pd.Timestamp(text)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
