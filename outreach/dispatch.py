"""The dispatcher: sends the outbox's pending messages as signed webhooks (Standard Webhooks).

Delivery is at least once and never lost: a message is claimed with a short lease (a conditional
UPDATE, so two dispatchers never claim one message), sent, and only then marked. A dispatcher
that dies between sending and marking leaves the lease to expire; the next one sends again with
the same `webhook-id`, which the receiver uses to drop the duplicate. The network call runs
outside any database transaction, so a slow receiver never holds a lock.

`attempts` counts sends started (it grows at claim time): a message that kills its dispatcher
still uses up its attempts instead of being retried forever.

A failure is definite (refused, an error status, no connection made) or ambiguous: the request
went out and then the answer timed out or the connection was lost, so the receiver may have it
(a slow receiver that answers after the timeout has accepted the message). So is an attempt
whose dispatcher died before recording its outcome (the next claim finds its lease behind). A
message given up on after any ambiguous attempt is `ambiguous`, not `dead`: possibly delivered.
"""

from __future__ import annotations

import datetime
import email.utils
import logging
import math
import random
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Literal

import httpx
from sqlalchemy import Engine, Row, case, exists, or_, select, update
from standardwebhooks import Webhook
from standardwebhooks.webhooks import EmptyWebhookSecretError

from journeyguard.features.errors import ConfigError
from journeyguard.outreach import SECRET_VARIABLE, URL_VARIABLE
from journeyguard.outreach.outbox import UTC, messages

if TYPE_CHECKING:
    from journeyguard.features.config.model import OutreachConfig

RETRY_AFTER_STATUSES = frozenset({429, 502, 503, 504})
GONE = 410
CLAIM_TRIES = 20
# Failures before any byte of the request left: the receiver cannot have the message.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DispatchResult:
    """What one dispatch run did: attempts made and how each ended."""

    delivered: int = 0
    retrying: int = 0
    dead: int = 0
    attempted: int = 0
    ambiguous: int = 0

    def __add__(self, other: DispatchResult) -> DispatchResult:
        """Both runs' counts together (a worker's batches)."""
        return DispatchResult(
            *(getattr(self, f.name) + getattr(other, f.name) for f in fields(self))
        )


@dataclass(frozen=True)
class Attempt:
    """The outcome of one send: delivered, retry (after `retry_after` seconds if the receiver
    said so), or dead; with the error text of a failure, and whether the failed request may
    have reached the receiver all the same."""

    outcome: Literal["delivered", "retry", "dead"]
    error: str | None = None
    retry_after: float | None = None
    possibly_delivered: bool = False


def dispatch(
    engine: Engine,
    *,
    url: str,
    secret: str,
    now: Callable[[], datetime.datetime],
    worker: str,
    max_attempts: int = 8,
    timeout: float = 5.0,
    lease: datetime.timedelta = datetime.timedelta(seconds=60),
    base_delay: float = 1.0,
    max_delay: float = 3600.0,
    rng: random.Random | None = None,
    client: httpx.Client | None = None,
    after_send: Callable[[str], None] | None = None,
    limit: int | None = None,
) -> DispatchResult:
    """Sends every message due at `now()` (at most `limit`), one claim at a time, and records
    each outcome; returns when nothing is due.

    `worker` names this dispatcher in the leases; `lease` must outlast `timeout` so a message
    is never sent by two dispatchers at once while the first is still waiting. `after_send` is
    called with the idempotency key after each send and before its outcome is committed.
    `now()` also stamps the signature, and receivers refuse a timestamp more than five minutes
    from their own clock: outside tests, pass the real clock.
    """
    if lease <= datetime.timedelta(seconds=timeout):
        raise ValueError(f"lease ({lease}) must be longer than the HTTP timeout ({timeout} s)")
    if not _is_http_url(url):
        raise ValueError(f"webhook URL {url!r}: expected http:// or https://")
    webhook = Webhook(secret)
    retries = Retries(max_attempts, base_delay, max_delay, rng or random.Random())
    counts: Counter[str] = Counter()
    owned = client is None
    client = client or httpx.Client(timeout=timeout)
    try:
        while limit is None or counts["attempted"] < limit:
            message = claim(engine, worker, now=now(), lease=lease)
            if message is None:
                break
            key = message.idempotency_key
            attempt = send(client, url, webhook, key, message.payload, at=now(), timeout=timeout)
            if after_send is not None:
                after_send(key)
            counts[record(engine, key, worker, attempt, message.attempts, retries, at=now())] += 1
            counts["attempted"] += 1
    finally:
        if owned:
            client.close()
    return DispatchResult(
        counts["delivered"],
        counts["retry"],
        counts["dead"],
        counts["attempted"],
        counts["ambiguous"],
    )


@dataclass(frozen=True)
class Retries:
    """When to give up, and how long to wait before the next attempt."""

    max_attempts: int
    base_delay: float
    max_delay: float
    rng: random.Random

    def wait(self, attempt: Attempt, attempts: int) -> float:
        """The receiver's `Retry-After` if it gave one, else jittered exponential backoff."""
        if attempt.retry_after is not None:
            return attempt.retry_after
        return backoff_delay(
            attempts, base_delay=self.base_delay, max_delay=self.max_delay, rng=self.rng
        )


def claim(
    engine: Engine, worker: str, *, now: datetime.datetime, lease: datetime.timedelta
) -> Row | None:
    """Leases the message due first to `worker`, or returns None when none is due.

    The UPDATE repeats the "due and free" condition, so of two dispatchers racing for a row
    only one changes it (PostgreSQL re-checks the condition after the row lock; SKIP LOCKED
    lets the other pick the next row instead of waiting; SQLite serialises the writers). The
    key is compared with `=` to a scalar subquery, run once: PostgreSQL may re-run an
    `IN (... LIMIT 1)` subquery per row and so claim many rows.
    On PostgreSQL the race can also leave the loser with no row although others are due (the
    re-check drops the one row its LIMIT had picked), so a miss is retried while rows are due.
    Taking over an expired lease marks the message possibly delivered: whoever held it never
    recorded an outcome, and may have died after its request reached the receiver.
    """
    due = (
        (messages.c.status == "pending")
        & (messages.c.next_attempt_at <= now)
        & or_(messages.c.lease_until.is_(None), messages.c.lease_until <= now)
    )
    first = (
        select(messages.c.idempotency_key)
        .where(due)
        .order_by(messages.c.next_attempt_at, messages.c.idempotency_key)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    statement = (
        update(messages)
        .where(messages.c.idempotency_key == first.scalar_subquery(), due)
        .values(
            lease_owner=worker,
            lease_until=now + lease,
            attempts=messages.c.attempts + 1,
            # A lease left behind: its dispatcher died after claiming, perhaps after sending.
            possibly_delivered=messages.c.possibly_delivered | messages.c.lease_owner.is_not(None),
        )
        .returning(messages.c.idempotency_key, messages.c.payload, messages.c.attempts)
    )
    any_due = select(exists().where(due))
    for _ in range(CLAIM_TRIES):
        with engine.begin() as connection:
            claimed = connection.execute(statement).one_or_none()
            if claimed is not None or not connection.execute(any_due).scalar():
                return claimed
    return None  # due rows exist but other dispatchers keep winning them: theirs to send


def send(
    client: httpx.Client,
    url: str,
    webhook: Webhook,
    key: str,
    payload: str,
    *,
    at: datetime.datetime,
    timeout: float,
) -> Attempt:
    """Posts the stored payload bytes, signed as of `at`, and classifies the answer."""
    if at.tzinfo is None:
        raise ValueError(f"naive send time {at!r}: the clock must give aware UTC datetimes")
    at = at.astimezone(UTC)  # sign() replaces the zone instead of converting it
    headers = {
        "webhook-id": key,
        "webhook-timestamp": str(math.floor(at.timestamp())),
        "webhook-signature": webhook.sign(key, at, payload),
        "content-type": "application/json",
    }
    try:
        response = client.post(url, content=payload.encode(), headers=headers, timeout=timeout)
    except NOT_SENT as error:
        return Attempt("retry", f"not sent: {type(error).__name__}: {error}")
    except httpx.TimeoutException as error:
        return Attempt(
            "retry", f"timeout after {timeout} s ({type(error).__name__})", possibly_delivered=True
        )
    except httpx.TransportError as error:
        return Attempt(
            "retry",
            f"connection lost after sending: {type(error).__name__}: {error}",
            possibly_delivered=True,
        )
    return classify(response.status_code, response.headers, response.text, at=at)


def classify(
    status: int, headers: Mapping[str, str], body: str, *, at: datetime.datetime
) -> Attempt:
    """2xx delivered; 410 dead (the endpoint is gone); anything else a retry, after
    `Retry-After` for 429/502/503/504 when the receiver gives one."""
    if 200 <= status < 300:
        return Attempt("delivered")
    if status == GONE:
        return Attempt("dead", "HTTP 410: endpoint gone")
    error = f"HTTP {status}: {body[:200]}" if body else f"HTTP {status}"
    retry_after = None
    if status in RETRY_AFTER_STATUSES:
        retry_after = parse_retry_after(headers.get("retry-after"), now=at)
    return Attempt("retry", error, retry_after)


def parse_retry_after(value: str | None, *, now: datetime.datetime) -> float | None:
    """Seconds to wait from a `Retry-After` header (delay seconds or an HTTP date); None when
    absent or unreadable, so the caller backs off as usual."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC as well
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def backoff_delay(
    attempts: int, *, base_delay: float, max_delay: float, rng: random.Random
) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(max_delay, base * 2**(n-1))].

    The jitter spreads the retries of many messages that failed together (an outage) so they
    do not all hit the receiver again at the same instant.
    """
    exponent = min(max(attempts - 1, 0), 64)  # beyond 2**64 the cap applies anyway
    return rng.uniform(0.0, min(max_delay, base_delay * 2.0**exponent))


def record(
    engine: Engine,
    key: str,
    worker: str,
    attempt: Attempt,
    attempts: int,
    retries: Retries,
    *,
    at: datetime.datetime,
) -> str:
    """Commits the outcome of one send and frees the lease; returns "delivered", "retry",
    "dead", "ambiguous", or "lost" when another dispatcher took the message over meanwhile.

    A delivery is recorded whoever holds the lease now (the receiver has it, whatever else
    happens); a failure only by the lease holder, so a late dispatcher cannot undo the work
    of the one that took over. A message given up on is `ambiguous` when this attempt or an
    earlier one may have reached the receiver (`possibly_delivered`), else `dead`.
    """
    outcome = attempt.outcome
    if outcome == "retry" and attempts >= retries.max_attempts:
        outcome = "dead"
    values: dict[str, object] = {"lease_owner": None, "lease_until": None}
    where = [messages.c.idempotency_key == key, messages.c.status == "pending"]
    if outcome == "delivered":
        values |= {"status": "delivered", "delivered_at": at}
    else:
        where.append(messages.c.lease_owner == worker)
        values["last_error"] = attempt.error
        if attempt.possibly_delivered:
            values["possibly_delivered"] = True
        if outcome == "dead":
            earlier = case((messages.c.possibly_delivered, "ambiguous"), else_="dead")
            values["status"] = "ambiguous" if attempt.possibly_delivered else earlier
        else:
            wait = retries.wait(attempt, attempts)
            values["next_attempt_at"] = at + datetime.timedelta(seconds=wait)
    statement = update(messages).where(*where).values(values).returning(messages.c.status)
    with engine.begin() as connection:
        changed = connection.execute(statement).scalar_one_or_none()
    if changed is None:
        return "lost"
    if outcome == "dead":
        outcome = changed  # "dead", or "ambiguous" if some attempt may have got through
        logger.warning(
            "message %s is %s after %d attempts: %s", key, changed, attempts, attempt.error
        )
    return outcome


def webhook_target(config: OutreachConfig, environ: Mapping[str, str]) -> tuple[str, str]:
    """The webhook URL and secret: from the config, else from the environment (so the secret
    need not sit in a file). Raises ConfigError naming the missing key and variable."""
    url = config.webhook_url or environ.get(URL_VARIABLE)
    if not url:
        raise ConfigError(f"no webhook URL: set [outreach] webhook_url or {URL_VARIABLE}")
    if not _is_http_url(url):
        raise ConfigError(f"[outreach] webhook_url: expected http:// or https://, got {url!r}")
    secret = config.webhook_secret or environ.get(SECRET_VARIABLE)
    if not secret:
        raise ConfigError(f"no webhook secret: set [outreach] webhook_secret or {SECRET_VARIABLE}")
    try:
        Webhook(secret)
    except (ValueError, EmptyWebhookSecretError):
        raise ConfigError(
            f"[outreach] webhook_secret (or {SECRET_VARIABLE}): expected a Standard Webhooks "
            "secret, 'whsec_' followed by base64"
        ) from None
    return url, secret


def _is_http_url(url: str) -> bool:
    try:
        return httpx.URL(url).scheme in ("http", "https")
    except httpx.InvalidURL:
        return False
