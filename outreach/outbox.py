"""The durable outbox: decisions and the messages they cause, written in one transaction.

A decision and its message are committed together, so a crash between deciding and sending loses
nothing; the dispatcher (`outreach.dispatch`) later sends what is pending. Keys make every write
idempotent: a decision already stored, or a message already queued, is skipped, so running a
window twice sends nothing twice.

SQLAlchemy Core; SQLite by default (a file, writers serialised by `BEGIN IMMEDIATE` and a 30 s
busy timeout), PostgreSQL by URL. Times are stored as naive UTC (`timestamp without time zone`
on PostgreSQL, ISO text on SQLite, which then sorts and compares in time order) and read back as
aware UTC datetimes; naive datetimes are refused on the way in.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Mapping
from typing import Any

import pandas as pd
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    case,
    create_engine,
    delete,
    event,
    false,
    func,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.types import TypeDecorator

from journeyguard.features.config.model import Config
from journeyguard.features.eventlog.columns import CUSTOMER_ID, EVENT, TIME_DTYPE, TIMESTAMP
from journeyguard.outreach.policy import CONTACT, DECISION_COLUMNS, DECISIONS

UTC = datetime.UTC
# ambiguous: given up on, but an attempt may have reached the receiver (it timed out, or the
# connection was lost, after the request was sent); dead: given up on, never received.
STATUSES = ("pending", "delivered", "ambiguous", "dead")
SENT_EVENT = "outreach_sent"
SQLITE_BUSY_SECONDS = 30
_AFTER = pd.Timedelta(microseconds=1)  # the least an event can follow the decision causing it
_CREATE_LOCK = 4_217_301_166  # any constant: the PostgreSQL advisory lock around CREATE TABLE


class UtcDateTime(TypeDecorator[datetime.datetime]):
    """Aware UTC datetimes in and out, stored as naive UTC so both databases compare alike."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> datetime.datetime | None:
        if value is None or value is pd.NaT:
            return None
        if isinstance(value, pd.Timestamp):
            value = value.to_pydatetime()
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware UTC time")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Any) -> datetime.datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


metadata = MetaData()

decisions = Table(
    "decisions",
    metadata,
    Column("decision_key", String(200), primary_key=True),
    Column("campaign", String(100), nullable=False),
    Column("window_start", UtcDateTime, nullable=False),
    Column("customer_id", String(200), nullable=False),
    Column("action", String(100)),
    Column("task", String(100), nullable=False),
    Column("risk", Float, nullable=False),
    Column("decision", String(20), nullable=False),
    Column("reason", Text, nullable=False),
    Column("cost", Float, nullable=False),
    Column("as_of", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_decisions_campaign_window", "campaign", "window_start"),
    Index("ix_decisions_campaign_customer", "campaign", "customer_id", "as_of"),
)

messages = Table(
    "messages",
    metadata,
    Column("idempotency_key", String(200), primary_key=True),  # also the `webhook-id`
    Column("decision_key", String(200), nullable=False),
    Column("customer_id", String(200), nullable=False),
    Column("action", String(100)),
    Column("payload", Text, nullable=False),  # serialised once; sent byte for byte
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("last_error", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("delivered_at", UtcDateTime),
    Column("lease_owner", String(200)),
    Column("lease_until", UtcDateTime),
    # Some attempt ended after the request went out but before an answer came back.
    Column("possibly_delivered", Boolean, nullable=False, server_default=false()),
    Index("ix_messages_due", "status", "next_attempt_at"),
)

leases = Table(
    "leases",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("until", UtcDateTime, nullable=False),
)

_STORED_COLUMNS = tuple(c.name for c in decisions.columns if c.name != "created_at")


def outbox_url(settings: Config) -> str:
    """The outbox database: `[outreach] database`, else SQLite in the workspace."""
    if settings.outreach.database:
        return settings.outreach.database
    settings.output_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{settings.workspace.outbox}"


def open_outbox_to_read(settings: Config) -> Engine | None:
    """The configured outbox for reading only (the console), None while it has no tables: it
    never creates the database or its tables just to show that they are empty."""
    url = settings.outreach.database
    if url is None:
        if not settings.workspace.outbox.exists():
            return None
        url = f"sqlite:///file:{settings.workspace.outbox}?mode=ro&uri=true"
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_SECONDS})
    else:
        engine = create_engine(url, pool_pre_ping=True)
    if not inspect(engine).has_table(messages.name):
        engine.dispose()
        return None
    return engine


def open_outbox(url: str) -> Engine:
    """An engine on the outbox database, with its tables created if absent.

    Safe when several processes open a new database at once: on SQLite the check and the
    CREATEs run in one `BEGIN IMMEDIATE` transaction, on PostgreSQL under an advisory lock.
    """
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_SECONDS})
        _take_write_lock_on_begin(engine)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CREATE_LOCK})
        metadata.create_all(connection)
        _add_new_columns(connection)
    return engine


def _add_new_columns(connection: Connection) -> None:
    """Adds the columns this version added to an outbox made by an older one (CREATE TABLE
    leaves an existing table as it is)."""
    present = {column["name"] for column in inspect(connection).get_columns(messages.name)}
    if "possibly_delivered" not in present:
        connection.exec_driver_sql(
            "ALTER TABLE messages ADD COLUMN possibly_delivered BOOLEAN NOT NULL DEFAULT false"
        )


def _take_write_lock_on_begin(engine: Engine) -> None:
    """Every SQLite transaction starts with `BEGIN IMMEDIATE`.

    pysqlite's own BEGIN comes late (before the first write, never before DDL), so a
    read-then-write transaction could interleave with another writer, and CREATE TABLE would
    not be transactional. Taking the write lock up front serialises writers; the busy timeout
    makes the others wait for it instead of failing.
    """

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _insert_new(connection: Connection, table: Table, rows: list[dict]) -> list:
    """Inserts rows whose primary key is new; returns the keys actually inserted.

    `ON CONFLICT DO NOTHING` makes a repeated run (or two racing runs) a no-op for the rows
    already there; RETURNING says which rows were new, which rowcount cannot reliably do for
    many rows at once.
    """
    if not rows:
        return []
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    key = table.primary_key.columns.values()[0]
    statement = (
        dialect.insert(table).on_conflict_do_nothing(index_elements=[key.name]).returning(key)
    )
    return list(connection.execute(statement, rows).scalars())


class LeaseLost(RuntimeError):
    """A write made under a lease found it held by another owner (or expired): not written."""


def enqueue(
    engine: Engine,
    decisions_frame: pd.DataFrame,
    *,
    now: datetime.datetime,
    lease: tuple[str, str] | None = None,
) -> int:
    """Stores every decision, and a pending message for each "contact", in one transaction.

    Rows already stored (same decision_key / idempotency_key) are skipped, so enqueuing a
    window twice queues nothing new. Returns the number of new messages.

    With `lease` (name, owner), stores only while that owner holds that lease, checked in the
    same transaction with the lease's row locked (raises LeaseLost otherwise): a cycle whose
    lease expired while it decided must not store decisions made against a cooldown and a
    budget that its successor may since have read and used.
    """
    decision_rows, message_rows = _rows(decisions_frame, now)
    with engine.begin() as connection:
        if lease is not None:
            _check_lease(connection, *lease, now=now)
        _insert_new(connection, decisions, decision_rows)
        return len(_insert_new(connection, messages, message_rows))


def _check_lease(connection: Connection, name: str, owner: str, *, now: datetime.datetime) -> None:
    query = select(leases.c.owner, leases.c.until).where(leases.c.name == name).with_for_update()
    row = connection.execute(query).one_or_none()
    if row is None or row.owner != owner or row.until < now:
        holder = "nobody" if row is None else f"{row.owner} until {row.until.isoformat()}"
        raise LeaseLost(f"lease {name!r} is not {owner}'s any more: {holder}")


def _rows(frame: pd.DataFrame, now: datetime.datetime) -> tuple[list[dict], list[dict]]:
    """The decision rows and message rows of a decisions frame, checked."""
    if now.tzinfo is None:
        raise ValueError(f"naive `now` {now!r}: pass an aware UTC time")
    missing = [c for c in DECISION_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"decisions frame: missing columns {missing}; expected {DECISION_COLUMNS}")
    unknown = set(frame["decision"]) - set(DECISIONS)
    if unknown:
        raise ValueError(f"decisions frame: unknown decisions {sorted(unknown)}; use {DECISIONS}")
    aware = [isinstance(frame[c].dtype, pd.DatetimeTZDtype) for c in ("window_start", "as_of")]
    if len(frame) and not all(aware):
        raise ValueError("decisions frame: window_start and as_of must be aware (UTC) datetimes")
    decision_rows, message_rows = [], []
    for record in frame.to_dict("records"):
        row = {name: _missing_to_none(record[name]) for name in _STORED_COLUMNS}
        row |= {
            "customer_id": str(row["customer_id"]),
            "risk": float(row["risk"]),
            "cost": float(row["cost"]),
            "created_at": now,
        }
        decision_rows.append(row)
        if row["decision"] == CONTACT:
            message_rows.append(_message_row(row, record, now))
    return decision_rows, message_rows


def _message_row(decision: dict, record: dict, now: datetime.datetime) -> dict:
    key, payload = _missing_to_none(record["idempotency_key"]), record["payload"]
    if key is None or not isinstance(payload, Mapping):
        raise ValueError(
            f"decision {decision['decision_key']!r}: a contact needs an idempotency_key and a "
            f"payload dict, got {key!r} and {type(payload).__name__}"
        )
    return {
        "idempotency_key": str(key),
        "decision_key": decision["decision_key"],
        "customer_id": decision["customer_id"],
        "action": decision["action"],
        "payload": payload_text(payload),
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


def payload_text(payload: Mapping[str, Any]) -> str:
    """The one serialisation of a message body: compact, keys sorted, ASCII only."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=_json_value)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy and pandas scalars
        return value.item()
    raise TypeError(f"cannot put {type(value).__name__} {value!r} in a message")


def _missing_to_none(value: Any) -> Any:
    """None for pandas' missing markers (NaN in a text column, NaT), else the value."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def nearest_contacts(
    engine: Engine, campaign: str, as_of: datetime.datetime, window_start: datetime.datetime
) -> dict[str, datetime.datetime]:
    """Per customer, the `as_of` of the campaign's contact decision nearest to `as_of`, before
    or after it, in any window but the one starting at `window_start` (the cooldown).

    Both sides, because windows need not run in time order (a backfill, a rerun of a missed
    day): a window run after a later one must see that later contact too, or it contacts the
    customer again inside the cooldown.
    """
    contact = (
        decisions.c.campaign == campaign,
        decisions.c.decision == CONTACT,
        decisions.c.window_start != window_start,
    )
    customer = decisions.c.customer_id
    before = select(customer, func.max(decisions.c.as_of)).where(
        *contact, decisions.c.as_of <= as_of
    )
    after = select(customer, func.min(decisions.c.as_of)).where(*contact, decisions.c.as_of > as_of)
    nearest: dict[str, datetime.datetime] = {}
    with engine.connect() as connection:
        for query in (before, after):
            for who, when in connection.execute(query.group_by(customer)):
                known = nearest.get(who)
                if known is None or abs(when - as_of) < abs(known - as_of):
                    nearest[who] = when
    return nearest


def spent(engine: Engine, campaign: str, window_start: datetime.datetime) -> tuple[int, float]:
    """How many contacts the window has made and what they cost (the budget already used)."""
    query = select(func.count(), func.coalesce(func.sum(decisions.c.cost), 0.0)).where(
        decisions.c.campaign == campaign,
        decisions.c.window_start == window_start,
        decisions.c.decision == CONTACT,
    )
    with engine.connect() as connection:
        count, money = connection.execute(query).one()
    return int(count), float(money)


def status_counts(engine: Engine) -> dict[str, int]:
    """Messages by state. `pending` counts every undelivered live message; `retrying` is the
    part of it that has been tried at least once."""
    tried = func.sum(case((messages.c.attempts > 0, 1), else_=0))
    query = select(messages.c.status, func.count(), tried).group_by(messages.c.status)
    counts = dict.fromkeys((*STATUSES, "retrying"), 0)
    with engine.connect() as connection:
        for status, count, retried in connection.execute(query):
            counts[status] = int(count)
            if status == "pending":
                counts["retrying"] = int(retried)
    return counts


def sent_events(engine: Engine, campaign: str) -> pd.DataFrame:
    """One `outreach_sent` event per contact decision of the campaign (customer_id, timestamp,
    event, action), so the next scoring sees who was contacted and when.

    Decisions, not deliveries (intention to treat): a customer decided "contact" is in the
    contacted group whatever became of the message, so an ambiguous delivery (the receiver
    may have it) or a failed one never moves a customer between the contacted and the control
    groups, and the features, the report and the console agree on who was treated.

    An event sits on the log's clock: at its decision's `as_of` plus the time delivery took
    after the decision was stored (nothing for a message not delivered; at least a
    microsecond, so a score at `as_of` never sees the consequence of its own decision). In
    production `as_of` is the moment of the run and this is about the delivery time; when the
    log runs behind the wall clock (the demo's simulated year, a backfill) wall-clock times
    would land months after the log's end and drag every "as of the last event" with them.
    """
    query = (
        select(
            decisions.c.customer_id,
            decisions.c.action,
            decisions.c.as_of,
            messages.c.created_at,
            messages.c.delivered_at,
        )
        .outerjoin(messages, messages.c.decision_key == decisions.c.decision_key)
        .where(decisions.c.decision == CONTACT, decisions.c.campaign == campaign)
        .order_by(decisions.c.as_of, decisions.c.decision_key)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    delay = pd.Series(
        [r.delivered_at - r.created_at if r.delivered_at else _AFTER for r in rows],
        dtype="timedelta64[ns]",
    )
    as_of = pd.Series([r.as_of for r in rows], dtype=object)
    times = pd.to_datetime(as_of, utc=True).astype(TIME_DTYPE) + delay.clip(lower=_AFTER)
    return pd.DataFrame(
        {
            CUSTOMER_ID: pd.Series([r.customer_id for r in rows], dtype=object),
            TIMESTAMP: times,
            EVENT: SENT_EVENT,
            "action": pd.Series([r.action for r in rows], dtype=object),
        }
    )


def customer_messages(engine: Engine, customer_id: str) -> list[dict[str, Any]]:
    """A customer's messages, oldest first: action, status, attempts, times and last error."""
    columns = ("action", "status", "attempts", "created_at", "delivered_at", "last_error")
    query = (
        select(*(messages.c[name] for name in columns))
        .where(messages.c.customer_id == customer_id)
        .order_by(messages.c.created_at, messages.c.idempotency_key)
    )
    with engine.connect() as connection:
        return [row._asdict() for row in connection.execute(query)]


def decisions_frame(engine: Engine, campaign: str | None = None) -> pd.DataFrame:
    """All stored decisions (of one campaign, if named), in window then key order, times UTC."""
    query = select(decisions).order_by(decisions.c.window_start, decisions.c.decision_key)
    if campaign is not None:
        query = query.where(decisions.c.campaign == campaign)
    with engine.connect() as connection:
        rows = [row._asdict() for row in connection.execute(query)]
    frame = pd.DataFrame(rows, columns=[c.name for c in decisions.columns])
    for name in ("window_start", "as_of", "created_at"):
        frame[name] = pd.to_datetime(frame[name], utc=True).astype(TIME_DTYPE)
    return frame


def acquire_lease(
    engine: Engine, name: str, owner: str, *, now: datetime.datetime, ttl: datetime.timedelta
) -> bool:
    """Takes (or renews) the named lease until `now + ttl`; False while another owner holds it.

    One conditional UPDATE (expired, or already mine) or else an insert of a new lease: two
    processes racing for it cannot both win, on SQLite (serialised writers) or PostgreSQL (the
    row lock makes the loser re-check the condition; the primary key stops a second insert).
    """
    until = now + ttl
    take = (
        update(leases)
        .where(leases.c.name == name, (leases.c.until < now) | (leases.c.owner == owner))
        .values(owner=owner, until=until)
    )
    with engine.begin() as connection:
        if connection.execute(take).rowcount == 1:
            return True
        row = {"name": name, "owner": owner, "until": until}
        return bool(_insert_new(connection, leases, [row]))


def release_lease(engine: Engine, name: str, owner: str) -> bool:
    """Gives the lease back, if this owner still holds it; False if it did not."""
    with engine.begin() as connection:
        statement = delete(leases).where(leases.c.name == name, leases.c.owner == owner)
        return connection.execute(statement).rowcount == 1


def lease_holder(engine: Engine, name: str) -> tuple[str, datetime.datetime] | None:
    """Who holds the named lease and until when; None when nobody does."""
    query = select(leases.c.owner, leases.c.until).where(leases.c.name == name)
    with engine.connect() as connection:
        row = connection.execute(query).one_or_none()
    return None if row is None else (row.owner, row.until)
