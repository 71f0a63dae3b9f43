"""The outreach policy: who gets which message in a window, and why the others do not.

Pure and deterministic: risk scores, customer facts and the settings go in; one decision per
candidate customer comes out, each with its reason in words. The rules, in order:

1. Candidates. A customer qualifies for an action when the risk of the action's task reaches
   `min_risk` (and its spend `min_value`, and it has an open case when the action requires one).
   Of the actions a customer qualifies for, the one not blocked by an open case comes first,
   then the lowest `priority` number, then the higher risk. Customers qualifying for nothing
   are no decisions; `summary` only counts them.
2. Suppression: opted out; contacted within the cooldown (before or after `as_of`: windows may
   run out of order); an open case blocks the action.
3. Budget. The eligible customers, ranked by priority, then by their action's `rank_by` (risk;
   value at risk: risk x expected spend, where the scores carry it; the expected gain of the
   action, `uplift` (the incremental probability of the good outcome, from the action's uplift
   champion) or `uplift_value` (uplift x the customer's expected spend, or spend so far where
   that is unknown, minus the action's cost); risk where the number is unknown, and for an
   action without an uplift champion, saying so), highest first, then customer id, take the
   day's budget (less what `spent` says this window already used) in rank order; the rest are
   suppressed. The budget is a prefix of the ranking: the first customer who does not fit ends
   it, so no cheaper customer further down jumps the queue.
4. Holdout. Customers of the persistent control group inside the budget are not contacted.
   They take their budget place as if contacted (a message and the action's cost), so the
   contacted and the control customers come from the same ranked population and compare
   fairly; yet they cost nothing, so the money actually spent stays within the budget. An
   action ranked by gain draws its control group from every eligible customer instead, before
   the budget (they take no place): a control group of only the top of the uplift ranking
   would teach the next uplift model nothing about the rest.

Every decision carries a `decision_key` (campaign, customer, window) and every contact an
`idempotency_key` (campaign, customer, action, window): the same inputs always give the same
keys, which is what lets the outbox store a decision once and send a message once.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from journeyguard.features.config.model import ActionConfig, OutreachConfig, nanoseconds
from journeyguard.features.eventlog.columns import CUSTOMER_ID, TIME_DTYPE
from journeyguard.outreach.expected_gain import GAIN_RANKINGS, gain_text, worth
from journeyguard.outreach.facts import FACT_COLUMNS

CONTACT, HOLDOUT, SUPPRESSED = "contact", "holdout", "suppressed"
DECISIONS = (CONTACT, HOLDOUT, SUPPRESSED)
DECISION_COLUMNS = (
    "decision_key", "idempotency_key", "campaign", "window_start", "customer_id", "action",
    "task", "risk", "decision", "reason", "cost", "as_of", "payload",
)  # fmt: skip
_TEXT_COLUMNS = ("decision_key", "campaign", "customer_id", "action", "task", "decision", "reason")
SCORE_COLUMNS = (CUSTOMER_ID, "task", "risk")
_REASON_COLUMN = re.compile(r"^reason_(\d+)$")
_MONEY_TOLERANCE = 1e-9  # relative: sums of costs such as 0.1 are not exact in binary


def holdout_share_of(customer_ids: Iterable[str], campaign: str) -> np.ndarray:
    """Each customer's place in [0, 1) for the campaign's control group: a cryptographic hash
    of "campaign:customer_id", so it is the same in every run, process and row order (unlike
    Python's salted `hash`) and independent between campaigns."""
    return np.array([_unit_interval(f"{campaign}:{c}") for c in customer_ids], dtype=np.float64)


def in_holdout(customer_ids: Iterable[str], campaign: str, share: float) -> np.ndarray:
    """Whether each customer belongs to the campaign's control group of about `share`."""
    return holdout_share_of(customer_ids, campaign) < share


def window_start(as_of: pd.Timestamp, window: datetime.timedelta) -> pd.Timestamp:
    """The start of the decision window holding `as_of`: windows tile time from the Unix epoch
    (UTC), so every run inside one window names the same window."""
    width = nanoseconds(window)
    if width <= 0:
        raise ValueError(f"the outreach window must be positive, got {window}")
    moment = utc(as_of).value
    return pd.Timestamp(moment - moment % width, tz="UTC")


def decision_key(campaign: str, customer_id: str, start: pd.Timestamp) -> str:
    """The key of a customer's one decision in a window of a campaign."""
    return _decision_key(campaign, customer_id, utc(start).isoformat())


def idempotency_key(campaign: str, customer_id: str, action: str, start: pd.Timestamp) -> str:
    """The key a receiver deduplicates one message by: the same on every retry and rerun."""
    return _idempotency_key(campaign, customer_id, action, utc(start).isoformat())


# The keys from the window start as text: a table of decisions converts it once, not per row.
def _decision_key(campaign: str, customer_id: str, window: str) -> str:
    return _digest([campaign, str(customer_id), window])


def _idempotency_key(campaign: str, customer_id: str, action: str, window: str) -> str:
    return "msg_" + _digest([campaign, str(customer_id), action, window])


def decide(
    scores: pd.DataFrame,
    facts: pd.DataFrame,
    settings: OutreachConfig,
    *,
    as_of: pd.Timestamp,
    nearest_contact: Mapping[str, datetime.datetime],
    opted_out: set[str] | frozenset[str],
    spent: tuple[int, float] = (0, 0.0),
    gains: Mapping[str, pd.Series] | None = None,
) -> pd.DataFrame:
    """The window's decisions, one per candidate customer, in rank order (see the module's
    docstring for the rules).

    `scores` is the long table of `training.score.score_log` over all tasks (one row per
    customer and task); `facts` that of `outreach.facts.customer_facts`; `nearest_contact` the
    contact of each customer nearest to `as_of`, before or after it, in another window (naive
    times are UTC); `spent` the contacts and money this
    window already used. Holdouts need no entry there: the control group is persistent and not
    in a cooldown, so a rerun ranks them again and they take their places again. `gains` holds,
    per action with an uplift champion, each customer's predicted uplift (indexed by id).
    Columns: `DECISION_COLUMNS`.
    """
    as_of = utc(as_of)
    with_facts = _with_facts(scores, facts)
    chosen = _choose(_candidates(with_facts, settings.actions, gains or {}))
    ranked = _rank(chosen, settings.actions)
    blocked = _suppression(ranked, settings.cooldown, as_of, nearest_contact, opted_out)
    eligible = blocked.isna().to_numpy()
    ids = ranked[CUSTOMER_ID]
    # Rule 4 for actions ranked by gain: the control group of everyone eligible, before the budget.
    spread = eligible & ranked["by_gain"].to_numpy(bool)
    everywhere = np.zeros(len(ranked), dtype=bool)
    everywhere[spread] = in_holdout(ids[spread], settings.campaign, settings.holdout)
    compete = eligible & ~everywhere
    fits = np.zeros(len(ranked), dtype=bool)
    fits[compete] = _within_budget(ranked["cost"].to_numpy()[compete], settings, spent)
    in_budget = fits & ~spread
    control = np.zeros(len(ranked), dtype=bool)
    control[in_budget] = in_holdout(ids[in_budget], settings.campaign, settings.holdout)
    conditions = [~eligible, everywhere, ~fits, control]
    decision = np.select(conditions, [SUPPRESSED, HOLDOUT, SUPPRESSED, HOLDOUT], CONTACT)
    reason = np.select(
        conditions,
        [
            blocked.to_numpy(dtype=object),
            _constant(len(ranked), _holdout_everywhere_text(settings.holdout)),
            _constant(len(ranked), "over the daily budget (" + _budget_text(settings, spent) + ")"),
            _constant(len(ranked), _holdout_text(settings.holdout)),
        ],
        ranked["rule"].to_numpy(dtype=object),
    )
    chosen = ranked.assign(decision=decision, reason=reason)
    return _decision_table(chosen, settings, as_of, window_start(as_of, settings.window))


def summary(decisions: pd.DataFrame, n_scored: int) -> dict[str, int]:
    """How many customers were scored, selected (candidates), contacted, held out, suppressed."""
    counts = decisions["decision"].value_counts()
    return {
        "scored": int(n_scored),
        "selected": len(decisions),
        "contact": int(counts.get(CONTACT, 0)),
        "holdout": int(counts.get(HOLDOUT, 0)),
        "suppressed": int(counts.get(SUPPRESSED, 0)),
    }


def utc(moment: Any) -> pd.Timestamp:
    """A moment as an aware UTC timestamp; naive moments are taken to be UTC already."""
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _with_facts(scores: pd.DataFrame, facts: pd.DataFrame) -> pd.DataFrame:
    """The scores with each customer's facts; customers without facts spent 0, no open case."""
    _require(scores, SCORE_COLUMNS, "scores")
    _require(facts, FACT_COLUMNS, "facts")
    twice = scores.duplicated([CUSTOMER_ID, "task"])
    if twice.any():
        examples = scores.loc[twice, [CUSTOMER_ID, "task"]].head(3).to_dict("records")
        raise ValueError(f"scores hold a customer twice for one task, e.g. {examples}")
    ids = scores[CUSTOMER_ID].astype(str)
    index = facts.index.astype(str)
    return scores.assign(
        customer_id=ids,
        risk=scores["risk"].astype(np.float64),
        value=pd.Series(facts["value"].to_numpy(np.float64), index)
        .reindex(ids, fill_value=0.0)
        .to_numpy(),
        open_case=pd.Series(facts["open_case"].to_numpy(bool), index)
        .reindex(ids, fill_value=False)
        .to_numpy(),
    )


def _candidates(
    scores: pd.DataFrame, actions: Mapping[str, ActionConfig], gains: Mapping[str, pd.Series]
) -> pd.DataFrame:
    """One row per customer and action it qualifies for, with the rule in words."""
    parts = [_qualifying(scores, action, gains.get(action.name)) for action in actions.values()]
    if not parts:
        nothing = ActionConfig(name="", task="", min_risk=0.0)
        return _qualifying(scores.iloc[:0], nothing, None)
    return pd.concat(parts, ignore_index=True)


def _qualifying(scores: pd.DataFrame, action: ActionConfig, gain: pd.Series | None) -> pd.DataFrame:
    keep = (scores["task"] == action.task) & (scores["risk"] >= action.min_risk)
    if action.min_value is not None:
        keep &= scores["value"] >= action.min_value
    if action.requires_open_case:
        keep &= scores["open_case"]
    rows = scores[keep]
    uplift = (
        np.full(len(rows), np.nan)
        if gain is None
        else gain.rename(index=str).reindex(rows[CUSTOMER_ID]).to_numpy(np.float64)
    )
    value = worth(rows)
    expected = uplift * value - action.cost if action.rank_by == "uplift_value" else uplift
    by_gain = action.rank_by in GAIN_RANKINGS and gain is not None
    rules = [
        _rule_text(action, r, v) + gain_text(action, gain is not None, u, w)
        for r, v, u, w in zip(rows["risk"], rows["value"], uplift, value, strict=True)
    ]
    return rows.assign(
        action=action.name,
        priority=action.priority,
        cost=float(action.cost),
        blocked=rows["open_case"].to_numpy(bool) & action.blocked_by_open_case,
        by_gain=by_gain,
        expected_gain=expected if by_gain else np.nan,
        rule=rules,
    )


def _rule_text(action: ActionConfig, risk: float, value: float) -> str:
    """Why a customer qualifies: "churn risk 82 % >= 60 %; spend 240.00 >= 100.00"."""
    parts = [f"{action.task} risk {_percent(risk)} >= {_percent(action.min_risk)}"]
    if action.min_value is not None:
        parts.append(f"spend {value:.2f} >= {action.min_value:.2f}")
    if action.requires_open_case:
        parts.append("a case is open")
    return "; ".join(parts)


def _choose(candidates: pd.DataFrame) -> pd.DataFrame:
    """Each customer's one action: an action an open case does not block before one it does
    (which would only be suppressed), then the lowest priority number, then the higher risk."""
    ordered = candidates.sort_values(
        ["blocked", "priority", "risk", "action"], ascending=[True, True, False, True]
    )
    return ordered.drop_duplicates(CUSTOMER_ID, keep="first")


def _rank(chosen: pd.DataFrame, actions: Mapping[str, ActionConfig]) -> pd.DataFrame:
    """The order the budget is given out in: priority, then the action's `rank_by` (highest
    first), then id. Value at risk and the expected gain fall back to risk where unknown."""
    by_value = chosen["action"].map(lambda name: actions[name].rank_by == "value_at_risk")
    at_stake = chosen.get("value_at_risk", pd.Series(np.nan, index=chosen.index))
    known = by_value.to_numpy(bool) & np.isfinite(at_stake.to_numpy(np.float64))
    rank = np.where(known, at_stake.to_numpy(np.float64), chosen["risk"].to_numpy(np.float64))
    gain = chosen["expected_gain"].to_numpy(np.float64)
    rank = np.where(np.isfinite(gain), gain, rank)
    return (
        chosen.assign(_rank=rank)
        .sort_values(["priority", "_rank", CUSTOMER_ID], ascending=[True, False, True])
        .drop(columns="_rank")
        .reset_index(drop=True)
    )


def _suppression(
    ranked: pd.DataFrame,
    cooldown: datetime.timedelta,
    as_of: pd.Timestamp,
    nearest_contact: Mapping[str, datetime.datetime],
    opted_out: set[str] | frozenset[str],
) -> pd.Series:
    """Why each customer may not be contacted, None where it may. The weightiest reason wins:
    opted out, then the cooldown, then an open case."""
    reasons = pd.Series(None, index=ranked.index, dtype=object)
    blocked = ranked["blocked"].to_numpy(bool)
    reasons[blocked] = "an open case blocks " + ranked.loc[blocked, "action"]
    contacted = pd.to_datetime(
        pd.Series([nearest_contact.get(c) for c in ranked[CUSTOMER_ID]], dtype=object), utc=True
    )
    since = as_of - contacted
    # A contact after as_of counts as much as one before it (windows may run out of order).
    cooling = (since.abs() < pd.Timedelta(cooldown)).to_numpy()  # NaT: never contacted, False
    reasons[cooling] = [
        f"contacted {_since_text(s)}; cooldown {_duration_text(pd.Timedelta(cooldown))}"
        for s in since[cooling]
    ]
    reasons[ranked[CUSTOMER_ID].isin(opted_out).to_numpy()] = "opted out"
    return reasons


def _within_budget(
    costs: np.ndarray, settings: OutreachConfig, spent: tuple[int, float]
) -> np.ndarray:
    """For customers in rank order, whether each is within the budget left: a prefix."""
    spent_count, spent_money = spent
    fits = np.ones(len(costs), dtype=bool)
    if settings.budget_count is not None:
        fits &= np.arange(1, len(costs) + 1) <= settings.budget_count - spent_count
    if settings.budget_money is not None:
        slack = _MONEY_TOLERANCE * max(1.0, settings.budget_money)
        fits &= np.cumsum(costs) <= settings.budget_money - spent_money + slack
    return fits  # a prefix: costs are not negative, so the running totals only grow


def _decision_table(
    chosen: pd.DataFrame, settings: OutreachConfig, as_of: pd.Timestamp, start: pd.Timestamp
) -> pd.DataFrame:
    """The decisions with their keys, costs and message payloads, in `DECISION_COLUMNS`."""
    campaign, window = settings.campaign, utc(start).isoformat()
    ids = chosen[CUSTOMER_ID].to_numpy(dtype=object)
    actions = chosen["action"].to_numpy(dtype=object)
    contact = (chosen["decision"] == CONTACT).to_numpy()
    messages = np.full(len(chosen), None, dtype=object)
    messages[contact] = [
        _idempotency_key(campaign, c, a, window)
        for c, a in zip(ids[contact], actions[contact], strict=True)
    ]
    payloads = np.full(len(chosen), None, dtype=object)
    payloads[contact] = [
        _payload(row, settings.actions[row.action], campaign, as_of, start)
        for row in chosen[contact].itertuples(index=False)
    ]
    return pd.DataFrame(
        {
            "decision_key": [_decision_key(campaign, c, window) for c in ids],
            "idempotency_key": messages,
            "campaign": campaign,
            "window_start": start,
            "customer_id": ids,
            "action": actions,
            "task": chosen["task"].to_numpy(dtype=object),
            "risk": chosen["risk"].to_numpy(np.float64),
            "decision": chosen["decision"].to_numpy(dtype=object),
            "reason": chosen["reason"].to_numpy(dtype=object),
            "cost": np.where(contact, chosen["cost"].to_numpy(np.float64), 0.0),
            "as_of": as_of,
            "payload": payloads,
        },
        columns=list(DECISION_COLUMNS),
    ).astype({**dict.fromkeys(_TEXT_COLUMNS, str), "window_start": TIME_DTYPE, "as_of": TIME_DTYPE})


def _payload(
    row: Any, action: ActionConfig, campaign: str, as_of: pd.Timestamp, start: pd.Timestamp
) -> dict[str, Any]:
    """The message body: who, what and why, in plain JSON types. The action's `message` fields
    come first, so they can never overwrite the fields the receiver relies on."""
    fields = row._asdict()
    numbered = sorted(
        (int(m.group(1)), name) for name in fields if (m := _REASON_COLUMN.match(name))
    )
    reasons = [fields[name] for _, name in numbered if isinstance(fields[name], str)]
    return {
        **action.message,
        "customer_id": str(row.customer_id),
        "action": action.name,
        "campaign": campaign,
        "task": str(row.task),
        "risk": round(float(row.risk), 4),
        "band": _plain(fields.get("band")),
        "reasons": [text for text in reasons if text],
        "model_version": _plain(fields.get("model_version")),
        "as_of": as_of.isoformat(),
        "window_start": start.isoformat(),
    }


def _plain(value: Any) -> Any:
    """A value as a plain JSON type: None for missing, Python numbers for numpy ones."""
    if value is None or (np.ndim(value) == 0 and pd.isna(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def _require(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lack the columns {missing}; got {list(frame.columns)}")


def _digest(parts: list[str]) -> str:
    # JSON keeps the parts apart: ("a:b", "c") and ("a", "b:c") give different keys.
    return hashlib.sha256(json.dumps(parts).encode("utf-8")).hexdigest()[:32]


def _unit_interval(text: str) -> float:
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> 11) / 2**53  # 53 bits: exact in a float, < 1


def _constant(n: int, text: str) -> np.ndarray:
    return np.full(n, text, dtype=object)


def _percent(share: float) -> str:
    return f"{share * 100:.0f} %"


def _holdout_text(share: float) -> str:
    return f"control group: {share * 100:g} % of customers, not contacted"


def _holdout_everywhere_text(share: float) -> str:
    return (
        f"control group: {share * 100:g} % of every eligible customer, not contacted (the "
        "action ranks by expected gain: its control spans the whole ranking)"
    )


def _budget_text(settings: OutreachConfig, spent: tuple[int, float]) -> str:
    """The budget in words: "500 messages, 5000.00 in money; 1 message and 10.00 already used"."""
    limits = []
    if settings.budget_count is not None:
        limits.append(_messages_text(settings.budget_count))
    if settings.budget_money is not None:
        limits.append(f"{settings.budget_money:.2f} in money")
    used = [_messages_text(spent[0])] if spent[0] else []
    used += [f"{spent[1]:.2f}"] if spent[1] else []
    return ", ".join(limits) + (f"; {' and '.join(used)} already used" if used else "")


def _messages_text(n: int) -> str:
    return f"{n} message" + ("" if n == 1 else "s")


def _since_text(elapsed: pd.Timedelta) -> str:
    if elapsed < pd.Timedelta(0):
        return f"{_duration_text(-elapsed)} after this as_of"
    return f"{_duration_text(elapsed)} ago"


def _duration_text(duration: pd.Timedelta) -> str:
    days = duration // pd.Timedelta(days=1)
    if days >= 1:
        return f"{days} day" + ("" if days == 1 else "s")
    hours = duration // pd.Timedelta(hours=1)
    return "less than an hour" if hours < 1 else f"{hours} hour" + ("" if hours == 1 else "s")
