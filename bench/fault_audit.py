"""The audit of `faults.py`'s campaign: the outbox against what the receiver recorded.

Imported as `fault_audit`: running `python bench/faults.py` puts bench/ first on sys.path.
Each contact decision gets one verdict, the worst first: lost (its message is missing, still
pending, or marked delivered yet never received), duplicated (the decision was received under
two webhook ids), dead but received (an ambiguous case not recorded as such), dead, ambiguous
(received or not), delivered. Cooldown breaches are counted apart: one customer received twice
within the cooldown.
"""

from __future__ import annotations

import datetime
import itertools
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import Engine, select

from journeyguard.outreach import outbox

OUTCOME_COLUMNS = (
    "delivered", "ambiguous_received", "ambiguous_not_received", "dead", "lost", "duplicated",
    "dead_but_received",
)  # fmt: skip
FAILURES = ("lost", "duplicated", "dead_but_received", "cooldown_breaches", "stuck")


@dataclass(frozen=True)
class Observed:
    """What the campaign saw: the receiver's record and the faults it injected."""

    received: list[tuple[str, dict[str, Any]]]  # (webhook id, payload), each id once
    requests: int
    receiver_faults: list[tuple[str | None, str]]  # (webhook id, fault kind)
    kills: list[dict[str, Any]]  # {"kind", "key", "role"}
    round_faults: list[tuple[str, pd.Timestamp]]  # (scenario, window start)


def audit(
    engine: Engine,
    seen: Observed,
    *,
    campaign: str,
    cooldown: datetime.timedelta,
    kinds: tuple[str, ...],
) -> dict[str, Any]:
    """Totals, and per fault kind (in the order of `kinds`) the messages it touched."""
    decisions = outbox.decisions_frame(engine, campaign)
    contacts = decisions[decisions["decision"] == "contact"]
    with engine.connect() as connection:
        rows = connection.execute(select(outbox.messages)).all()
    message_of = {row.decision_key: row for row in rows}
    received_ids = {key for key, _ in seen.received}
    ids_by_decision: dict[tuple[str, str], set[str]] = defaultdict(set)
    for key, payload in seen.received:
        ids_by_decision[(payload["customer_id"], payload["window_start"])].add(key)
    outcome: dict[str, str] = {}  # idempotency key (or decision key if none): its verdict
    for decision in contacts.itertuples(index=False):
        message = message_of.get(decision.decision_key)
        if message is None:
            outcome[decision.decision_key] = "lost"
            continue
        window = pd.Timestamp(decision.window_start).isoformat()
        got = message.idempotency_key in received_ids
        outcome[message.idempotency_key] = verdict(
            message.status, got, len(ids_by_decision[(decision.customer_id, window)])
        )
    met = kinds_by_message(seen, contacts, message_of)
    totals = Counter(outcome.values())
    return {
        "contact_decisions": len(contacts),
        "decisions": len(decisions),
        "received": len(seen.received),
        "requests": seen.requests,
        "statuses": outbox.status_counts(engine),
        "injected": len(seen.receiver_faults) + len(seen.kills),
        "receiver_faults": len(seen.receiver_faults),
        "kills": len(seen.kills),
        "lost": totals["lost"],
        "duplicated": totals["duplicated"],
        "dead_but_received": totals["dead_but_received"],
        "ambiguous": totals["ambiguous_received"] + totals["ambiguous_not_received"],
        "ambiguous_received": totals["ambiguous_received"],
        "cooldown_breaches": cooldown_breaches(seen.received, cooldown),
        "by_fault": fault_table(seen, met, outcome, kinds),
    }


def verdict(status: str, received: bool, webhook_ids: int) -> str:
    """One message's verdict, the worst first."""
    if status == "pending" or (status == "delivered" and not received):
        return "lost"
    if webhook_ids > 1:
        return "duplicated"
    if status == "dead":
        return "dead_but_received" if received else "dead"
    if status == "ambiguous":
        return "ambiguous_received" if received else "ambiguous_not_received"
    return "delivered"


def kinds_by_message(
    seen: Observed, contacts: pd.DataFrame, message_of: dict[str, Any]
) -> dict[str, set[str]]:
    """The fault kinds each message met: its own requests' and kills', and its window's."""
    kinds: dict[str, set[str]] = defaultdict(set)
    for key, kind in seen.receiver_faults:
        kinds[key or "?"].add(kind)
    for kill in seen.kills:
        if kill["key"]:
            kinds[kill["key"]].add(kill["kind"])
    by_window: dict[pd.Timestamp, list[str]] = defaultdict(list)
    for decision in contacts.itertuples(index=False):
        message = message_of.get(decision.decision_key)
        by_window[pd.Timestamp(decision.window_start)].append(
            message.idempotency_key if message is not None else decision.decision_key
        )
    for kind, start in seen.round_faults:
        for key in by_window.get(start, []):
            kinds[key].add(kind)
    return kinds


def fault_table(
    seen: Observed, met: dict[str, set[str]], outcome: dict[str, str], kinds: tuple[str, ...]
) -> list[dict[str, Any]]:
    """Per fault kind: how often injected, the messages it touched and how they ended."""
    injected = Counter(kind for _, kind in seen.receiver_faults)
    injected.update(kill["kind"] for kill in seen.kills)
    injected.update(kind for kind, _ in seen.round_faults)
    rows = []
    for kind in kinds:
        touched = [key for key, kinds_met in met.items() if kind in kinds_met and key in outcome]
        ends = Counter(outcome[key] for key in touched)
        rows.append(
            {"fault": kind, "injected": injected[kind], "messages": len(touched)}
            | {name: ends[name] for name in OUTCOME_COLUMNS}
        )
    return rows


def cooldown_breaches(
    received: list[tuple[str, dict[str, Any]]], cooldown: datetime.timedelta
) -> int:
    """Pairs of received messages to one customer, of two windows, closer than the cooldown."""
    times: dict[str, set[pd.Timestamp]] = defaultdict(set)
    for _, payload in received:
        times[payload["customer_id"]].add(pd.Timestamp(payload["as_of"]))
    gap = pd.Timedelta(cooldown)
    return sum(
        b - a < gap for moments in times.values() for a, b in itertools.pairwise(sorted(moments))
    )


def failed(result: dict[str, Any]) -> bool:
    """Whether the campaign broke a promise (or could not finish its drain)."""
    return any(result[key] for key in FAILURES) or not result["drained"]


def report_text(result: dict[str, Any], store: str) -> str:
    """Two lines of totals and the per-kind table, in Markdown."""
    header = ["fault", "injected", "messages", *OUTCOME_COLUMNS]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(str(row[c]) for c in header) + " |" for row in result["by_fault"]),
    ]
    summary = (
        f"{store}: {result['injected']} faults ({result['receiver_faults']} by the receiver, "
        f"{result['kills']} SIGKILLs) in {result['rounds']} rounds, "
        f"{result['seconds']} s; {result['contact_decisions']} contact decisions "
        f"({result['decisions']} decisions), {result['requests']} requests, "
        f"{result['received']} received; outbox {result['statuses']}\n"
        f"lost {result['lost']}, duplicated {result['duplicated']}, dead but received "
        f"{result['dead_but_received']}, ambiguous {result['ambiguous']} (received "
        f"{result['ambiguous_received']}), cooldown breaches {result['cooldown_breaches']}, "
        f"stuck processes {result['stuck']}, drained {result['drained']}"
    )
    return summary + "\n\n" + "\n".join(lines)
