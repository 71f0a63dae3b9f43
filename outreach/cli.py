"""`journeyguard outreach`: the schedule, dispatcher workers, one cycle by hand, the effect
report and a receiver to try things with (registered in pyproject.toml's entry points); and the
demo's outreach stage. Also `journeyguard schedule`, the whole pipeline on its crons, and the
demo's simulated week."""

from __future__ import annotations

import base64
import json
import math
import os
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np  # loaded already: journeyguard.features.config needs it
import typer

from journeyguard.features.config.model import Config
from journeyguard.features.config.reader import load_config
from journeyguard.features.errors import ConfigError
from journeyguard.features.options import ConfigOption, parse_as_of
from journeyguard.features.sources.log import load_log
from journeyguard.outreach import SECRET_VARIABLE, URL_VARIABLE

if TYPE_CHECKING:
    import pandas as pd

    from journeyguard.features.eventlog.log import EventLog

app = typer.Typer(
    name="outreach",
    no_args_is_help=True,
    add_completion=False,
    help="Proactive outreach: scheduled, budgeted, measured, and never sent twice.",
)

AsOfOption = Annotated[
    str | None,
    typer.Option("--as-of", help="ISO 8601; UTC if no offset. Default: now."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
DEMO_MESSAGES = 5  # how many received messages the demo shows


@app.command()
def schedule(config: ConfigOption) -> None:
    """Run the outreach cycle on the configured cron schedule (UTC) until stopped."""

    from journeyguard.outreach.cycle import utc_now
    from journeyguard.outreach.dispatch import webhook_target
    from journeyguard.outreach.outbox import outbox_url
    from journeyguard.outreach.scheduler import build_scheduler, trigger

    settings = load_config(config)
    webhook_target(settings.outreach, os.environ)  # a missing webhook fails now, not at 6 am
    scheduler = build_scheduler(settings, str(settings.path))
    following = trigger(settings).get_next_fire_time(None, utc_now())
    typer.echo(
        f"outreach cycle on '{settings.outreach.schedule}' (UTC); next at "
        f"{following.isoformat()}; the job store is {_redacted(outbox_url(settings))}. "
        "Ctrl+C stops."
    )
    _run_until_stopped(scheduler, _echo_job_event, "a cycle under way finishes first")


def _run_until_stopped(scheduler: Any, listener: Callable[[Any], None], finishing: str) -> None:
    """Runs a blocking scheduler, one line per run from `listener`, until Ctrl+C or SIGTERM;
    then waits for the runs under way (`finishing` says which)."""
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED

    scheduler.add_listener(listener, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)
    _interrupt_on_sigterm()
    try:
        scheduler.start()
    except KeyboardInterrupt:
        typer.echo(f"stopping; {finishing}")
        scheduler.shutdown(wait=True)


def _echo_job_event(event: Any) -> None:
    """One line per scheduled run: its counts, its error or that it was missed."""
    if getattr(event, "exception", None) is not None:
        typer.secho(f"cycle failed: {type(event.exception).__name__}: {event.exception}", err=True)
    elif isinstance(getattr(event, "retval", None), dict):
        typer.echo(counts_text(event.retval))
    else:
        typer.secho(f"missed the run due at {event.scheduled_run_time.isoformat()}", err=True)


@app.command()
def dispatch(
    config: ConfigOption,
    once: Annotated[bool, typer.Option("--once", help="Send what is due now, then exit.")] = False,
) -> None:
    """A dispatcher worker: send the outbox's due messages until stopped.

    Run as many as needed: each message is claimed by one worker (FOR UPDATE SKIP LOCKED on
    PostgreSQL)."""
    import threading

    from journeyguard.outreach.cycle import utc_now
    from journeyguard.outreach.dispatch import webhook_target
    from journeyguard.outreach.outbox import open_outbox, outbox_url
    from journeyguard.outreach.worker import run_worker

    settings = load_config(config)
    webhook_target(settings.outreach, os.environ)  # a missing webhook fails now, with its name
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    engine = open_outbox(outbox_url(settings))
    if not once:
        typer.echo(f"dispatching from {_redacted(outbox_url(settings))}; Ctrl+C stops.")
    try:
        totals = run_worker(settings.outreach, engine, now=utc_now, stop=stop, once=once)
    except KeyboardInterrupt:
        return
    finally:
        engine.dispose()
    typer.echo(
        f"attempted {totals.attempted:,}: delivered {totals.delivered:,}, "
        f"retrying {totals.retrying:,}, ambiguous {totals.ambiguous:,}, dead {totals.dead:,}"
    )


@app.command("run-once")
def run_once_command(
    config: ConfigOption, as_of: AsOfOption = None, as_json: JsonOption = False
) -> None:
    """Run one cycle now: score, decide, store, send, write back (a rerun sends nothing new)."""
    import pandas as pd

    from journeyguard.outreach.cycle import run_once, utc_now

    settings = load_config(config)
    result = run_once(settings, as_of=parse_as_of(as_of) or pd.Timestamp(utc_now()), now=utc_now)
    typer.echo(json.dumps(result, indent=2) if as_json else counts_text(result))


@app.command()
def lease(
    config: ConfigOption,
    break_it: Annotated[
        bool,
        typer.Option("--break", help="Remove the lease if stale: expired, or its holder is gone."),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="With --break: remove it even if the holder runs.")
    ] = False,
) -> None:
    """Show who holds the outreach cycle's lease, and break a stale one."""
    from journeyguard.outreach.cycle import LEASE_NAME, utc_now
    from journeyguard.outreach.lease import break_lease, lease_state
    from journeyguard.outreach.outbox import open_outbox, outbox_url

    engine = open_outbox(outbox_url(load_config(config)))
    now = utc_now()
    try:
        if not break_it:
            typer.echo(lease_state(engine, LEASE_NAME, now).text(now))
            return
        try:
            broken = break_lease(engine, LEASE_NAME, now, force=force)
        except RuntimeError as error:
            typer.secho(str(error), err=True)
            raise typer.Exit(1) from None
        done = "nothing to break" if broken.owner is None else f"broke it; {broken.owner} held it"
        typer.echo(f"{broken.text(now)}\n{done}")
    finally:
        engine.dispose()


@app.command()
def report(config: ConfigOption, as_of: AsOfOption = None, as_json: JsonOption = False) -> None:
    """Contacted against control customers, per action, once their outcome is known."""
    import pandas as pd

    from journeyguard.outreach.cycle import utc_now

    settings = load_config(config)
    result = effect(settings, parse_as_of(as_of) or pd.Timestamp(utc_now()))
    typer.echo(json.dumps(result, indent=2) if as_json else report_text(result))


def effect(settings: Config, as_of: pd.Timestamp) -> dict[str, Any]:
    """The stored decisions and messages in numbers, and the effect report of each action."""
    from journeyguard.outreach.gains import uplift_by_action
    from journeyguard.outreach.outbox import decisions_frame, open_outbox, outbox_url, status_counts
    from journeyguard.outreach.report import effect_report

    engine = open_outbox(outbox_url(settings))
    try:
        decisions = decisions_frame(engine, settings.outreach.campaign)
        messages = status_counts(engine)
    finally:
        engine.dispose()
    log = load_log(settings)
    table = effect_report(decisions, log, settings.tasks, as_of=as_of)
    return {
        "as_of": as_of.isoformat(),
        "campaign": settings.outreach.campaign,
        "windows": int(decisions["window_start"].nunique()),
        "decisions": {k: int(v) for k, v in decisions["decision"].value_counts().items()},
        "messages": messages,
        "actions": [
            {key: _plain(value) for key, value in row.items()}
            for row in table.to_dict(orient="records")
        ],
        "uplift": uplift_by_action(settings, decisions, log, as_of),
    }


@app.command()
def receive(
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Loopback port; 0: any free one.")
    ] = 0,
    secret: Annotated[
        str | None,
        typer.Option(help=f"The whsec_ secret; default ${SECRET_VARIABLE}, else a new one."),
    ] = None,
) -> None:
    """A loopback webhook receiver that checks signatures and prints each message."""
    from journeyguard.outreach.receiver import Receiver

    secret = secret or os.environ.get(SECRET_VARIABLE) or new_secret()
    with Receiver(secret, port=port) as receiver:
        typer.echo(
            f"receiving on {receiver.url}; send with\n  export {URL_VARIABLE}={receiver.url}\n"
            f"  export {SECRET_VARIABLE}={secret}\nCtrl+C stops."
        )
        shown = 0
        _interrupt_on_sigterm()
        try:
            while True:
                for _, payload in receiver.received[shown:]:
                    typer.echo(message_text(payload))
                    shown += 1
                time.sleep(0.2)
        except KeyboardInterrupt:
            typer.echo(f"stopped after {shown} messages")


def _interrupt_on_sigterm() -> None:
    """SIGTERM (how service managers stop a process) stops as Ctrl+C does, cleanly."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def demo_stage(settings: Config) -> None:
    """The demo's outreach stage: one cycle at the log's last event, sent to a receiver on a
    free loopback port with a new secret, signed with the real clock."""
    import pandas as pd

    from journeyguard.outreach.cycle import run_once, utc_now
    from journeyguard.outreach.receiver import Receiver

    if not settings.outreach.actions:
        typer.echo(f"no [outreach.actions] in {settings.path}: nothing to do")
        return
    if settings.outreach.database is None:  # the demo's own outbox: new log, new outbox
        settings.workspace.outbox.unlink(missing_ok=True)
    as_of = pd.Timestamp(last_source_event(load_log(settings)), tz="UTC")
    secret = new_secret()
    with Receiver(secret) as receiver:
        result = run_once(settings, as_of=as_of, now=utc_now, url=receiver.url, secret=secret)
    typer.echo(counts_text(result))
    for _, payload in receiver.received[:DEMO_MESSAGES]:
        typer.echo("  " + message_text(payload))
    if not receiver.received and result["already_decided"]:
        typer.echo("  nothing new: the outbox had decided this window already (never sent twice)")


def counts_text(result: dict[str, Any]) -> str:
    """A cycle's counts in two lines."""
    head = f"outreach window {result['window_start']} (as of {result['as_of']})"
    if result.get("skipped"):
        return f"{head}: skipped, {result['skipped']}"
    return (
        f"{head}\n  scored {result['scored']:,} customers; {result['selected']:,} selected: "
        f"{result['contact']:,} contact, {result['holdout']:,} holdout, "
        f"{result['suppressed']:,} suppressed; {result['already_decided']:,} decided before\n"
        f"  enqueued {result['enqueued']:,}; delivered {result['delivered']:,}, retrying "
        f"{result['retrying']:,}, ambiguous {result['ambiguous']:,}, dead {result['dead']:,}; "
        f"{result['pending']:,} pending"
    )


def message_text(payload: dict[str, Any]) -> str:
    """One received message: who, what, how risky and why."""
    reasons = "; ".join(payload.get("reasons") or []) or "no reasons given"
    risk = payload.get("risk")
    risk_text = f"{risk:.1%}" if isinstance(risk, int | float) else "?"
    return (
        f"{payload.get('customer_id')}  {payload.get('action')}  "
        f"{payload.get('task')} risk {risk_text}: {reasons}"
    )


def report_text(result: dict[str, Any]) -> str:
    """The effect report as a readable table, after a line on what the outbox holds."""
    import pandas as pd

    decisions = ", ".join(f"{n:,} {kind}" for kind, n in sorted(result["decisions"].items()))
    messages = ", ".join(f"{n:,} {status}" for status, n in result["messages"].items())
    lines = [
        f"campaign {result['campaign']} as of {result['as_of']}: {result['windows']} "
        f"window{'' if result['windows'] == 1 else 's'}; "
        f"decisions: {decisions or 'none yet'}; messages: {messages}"
    ]
    if not result["actions"]:
        return lines[0] + "\nno contact or holdout decisions to measure yet"
    table = pd.DataFrame(
        {
            "action": [r["action"] for r in result["actions"]],
            "task": [r["task"] for r in result["actions"]],
            "contacted": [_group(r["contacted_n"], r["contacted_rate"]) for r in result["actions"]],
            "holdout": [_group(r["holdout_n"], r["holdout_rate"]) for r in result["actions"]],
            "difference (95 % CI)": [_difference(r) for r in result["actions"]],
            "waiting": [r["waiting"] for r in result["actions"]],
            "missing": [r["missing"] for r in result["actions"]],
            "excluded": [r["excluded"] for r in result["actions"]],
        }
    )
    return "\n".join([*lines, table.to_string(index=False), *_uplift_lines(result)])


def _uplift_lines(result: dict[str, Any]) -> list[str]:
    """Per action: ranking by predicted uplift against ranking by risk, on the same customers."""
    lines = []
    for action, entry in result.get("uplift", {}).items():
        if entry.get("model") is None:
            lines.append(f"{action}: {entry['reason']}")
            continue
        realised = entry["realised"]
        lines += [
            f"{action} ({entry['model']}, {entry['rows']:,} customers, good outcome: "
            f"{'' if entry['goal'] == 'increase' else 'no '}{entry['outcome']}): realised "
            f"uplift {_signed(realised['effect'])}; Qini by predicted uplift "
            f"{_signed(entry['qini'], '.4f')}, by risk {_signed(entry['risk_qini'], '.4f')}",
            "  decile   by uplift: predicted  realised   |   by risk: realised",
        ]
        for up, risk in zip(entry["deciles"], entry["risk_deciles"], strict=True):
            lines.append(
                f"  {up['decile']:>6}   {_signed(up['predicted']):>19}  "
                f"{_signed(up['effect']):>8}   |   {_signed(risk['effect']):>17}"
            )
    return lines


def _signed(value: float | None, spec: str = "+.1%") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return format(value, spec if spec.startswith("+") else "+" + spec)


def _group(n: int, rate: float | None) -> str:
    return f"{n:,} at {rate:.1%}" if rate is not None else f"{n:,}"


def _difference(row: dict[str, Any]) -> str:
    if row["difference"] is None:
        return "n/a"
    if row["difference_low"] is None:
        return f"{row['difference']:+.1%}"
    return f"{row['difference']:+.1%} [{row['difference_low']:+.1%}, {row['difference_high']:+.1%}]"


def last_source_event(log: EventLog) -> int:
    """The time of the log's last event other than written-back outreach: "as of the last event"
    must not move because the outreach of the last run was merged in."""
    from journeyguard.outreach.outbox import SENT_EVENT

    sent = np.flatnonzero(log.steps == SENT_EVENT)
    own = log.step_codes != sent[0] if len(sent) else np.ones(log.n_events, dtype=bool)
    return int(log.times[own].max())


def new_secret() -> str:
    """A fresh Standard Webhooks secret: whsec_ and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def _plain(value: Any) -> Any:
    """JSON-ready: None for NaN, Python numbers for numpy ones."""
    if isinstance(value, np.generic):
        value = value.item()
    return None if isinstance(value, float) and math.isnan(value) else value


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def schedule_pipeline(config: ConfigOption) -> None:
    """Run the whole pipeline until stopped, each job on its cron of the config's schedule
    table (UTC): ingest, the weekly retrain, scores, monitoring, the outreach cycle; a failed
    run is retried."""

    from journeyguard.outreach.cycle import utc_now
    from journeyguard.outreach.dispatch import webhook_target
    from journeyguard.outreach.outbox import outbox_url
    from journeyguard.outreach.pipeline_scheduler import build_pipeline_scheduler, next_runs

    settings = load_config(config)
    if settings.outreach.actions:  # a missing webhook fails now, not at 6 am
        webhook_target(settings.outreach, os.environ)
    scheduler = build_pipeline_scheduler(settings, str(settings.path))
    typer.echo(f"the pipeline of {settings.path} (UTC); next runs:")
    for job, moment in next_runs(settings, utc_now()).items():
        cron = settings.schedule.cron(job, settings.outreach)
        typer.echo(f"  {job:<9} {cron!r:<16} {moment.isoformat()}")
    typer.echo(f"job store and run records: {_redacted(outbox_url(settings))}. Ctrl+C stops.")
    _run_until_stopped(scheduler, _echo_pipeline_event, "runs under way finish first")


def _echo_pipeline_event(event: Any) -> None:
    """One line per scheduled run: its outcome and counts, or that it was missed."""
    result = getattr(event, "retval", None)
    if isinstance(result, dict) and "outcome" in result:
        typer.echo(run_text(event.scheduled_run_time, result))
    elif getattr(event, "exception", None) is not None:
        typer.secho(f"{event.job_id} failed: {event.exception}", err=True)
    elif result is None:
        typer.secho(f"{event.job_id}: missed the run due at {event.scheduled_run_time}", err=True)


def run_text(at: Any, result: dict[str, Any]) -> str:
    """One run in a line: when, which job, how it ended, and its counts or error."""
    detail = result["error"] or json.dumps(result["counts"], default=str)
    if len(detail) > 160:
        detail = detail[:157] + "..."
    return f"{at:%a %Y-%m-%d %H:%M}  {result['job']:<15} {result['outcome']:<7} {detail}"


DEMO_DAYS = 7


def schedule_demo_stage(settings: Config) -> None:
    """The demo's schedule stage: the pipeline over the simulated log's last week, on a
    simulated clock. The log reaches it as a warehouse's daily export would: a CSV file of the
    events before the week, to which each day's ingest job first appends the day's events
    (`outreach.daily_export`), then appends them to the ingested store; every later job reads
    the store. The outreach cycles send to a loopback receiver, signed with the real clock."""
    import dataclasses
    import datetime
    import shutil

    import pandas as pd

    from journeyguard.features.sources.canonical import read_if_canonical
    from journeyguard.outreach.cycle import run_once, utc_now
    from journeyguard.outreach.daily_export import DailyExport
    from journeyguard.outreach.outbox import open_outbox, outbox_url
    from journeyguard.outreach.pipeline import Pipeline, ingest_append
    from journeyguard.outreach.pipeline_scheduler import SteppedClock, run_simulated
    from journeyguard.outreach.receiver import Receiver
    from journeyguard.outreach.runs import create_runs_table

    log = read_if_canonical(settings.source)  # the simulated log, without written-back outreach
    if log is None:
        raise ConfigError(f"{settings.path}: the demo's week needs the simulated log as its source")
    end = pd.Timestamp(log.last_time, tz="UTC").ceil("D").to_pydatetime()
    start = end - datetime.timedelta(days=DEMO_DAYS)
    # The week starts before the outreach stage's cycle: its decisions would be events from
    # the future for the week's first days, so the week gets an outbox of its own.
    if settings.outreach.database is None:
        settings.workspace.outbox.unlink(missing_ok=True)
    settings.workspace.outreach_events.unlink(missing_ok=True)
    export = DailyExport(log, settings.workspace.daily_export)
    export.path.unlink(missing_ok=True)
    shutil.rmtree(settings.workspace.store, ignore_errors=True)
    export.export_until(pd.Timestamp(start))
    settings = dataclasses.replace(
        settings, source=dataclasses.replace(settings.source, path=export.path, format="csv")
    )

    def ingest(config: Config, as_of: pd.Timestamp) -> dict[str, Any]:
        return {"exported": export.export_until(as_of)} | ingest_append(config, as_of)

    engine = open_outbox(outbox_url(settings))
    create_runs_table(engine)
    secret = new_secret()
    typer.echo(
        f"one simulated week, {start:%Y-%m-%d} to {end:%Y-%m-%d}, on the crons of [schedule]"
    )
    with Receiver(secret) as receiver:

        def outreach(config: Config, as_of: pd.Timestamp) -> dict[str, Any]:
            return run_once(config, as_of=as_of, now=utc_now, url=receiver.url, secret=secret)

        clock = SteppedClock(start)
        pipeline = Pipeline(settings, engine, clock, outreach, ingest=ingest)
        try:
            run_simulated(
                pipeline,
                clock,
                end,
                on_run=lambda due, outcome: typer.echo(
                    run_text(
                        due.at,
                        {"job": due.job, "outcome": outcome.outcome}
                        | {"counts": outcome.counts, "error": outcome.error},
                    )
                ),
            )
        finally:
            engine.dispose()
    typer.echo(
        f"{len(receiver.received):,} messages received; the console's models page shows "
        "each job's last run"
    )
