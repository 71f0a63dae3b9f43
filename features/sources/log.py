"""The configured source's log, as every command and the service read it.

Outreach write-back: when the workspace's `outreach_events` file exists, its events join the log.
The outreach cycle rewrites that file from its outbox after every run, one `outreach_sent` event
(with the message's `action` as an attribute) per contact decision, delivered or not (intention
to treat), so later scoring, analysis and retraining see who was chosen for treatment and when.
Without the file the log is the source's, unchanged, at the cost of one file check.
"""

from __future__ import annotations

from pathlib import Path

from journeyguard.features.config.model import Config
from journeyguard.features.eventlog.canonical import read_canonical
from journeyguard.features.eventlog.log import EventLog
from journeyguard.features.sources.canonical import read_if_canonical


def load_log(settings: Config, columns: list[str] | None = None) -> EventLog:
    """The configured source's log: straight from a canonical file (validated when written); for
    another file, from the ingested store (`sources.store`), brought up to date first when the
    file changed; a database source loaded with validation. Rejected rows go to the workspace's
    quarantine. `columns` limits the optional columns (`action` included)."""
    log = None
    if settings.source.path is not None:  # a current store first: it needs no Parquet reader
        from journeyguard.features.sources.store import current_log

        log = current_log(settings, columns)
    if log is None:
        log = read_if_canonical(settings.source, columns=columns)
    if log is None and settings.source.path is not None:
        from journeyguard.features.sources.store import ingested_log

        log = ingested_log(settings, columns)
    elif log is None:
        from journeyguard.features.sources.load import load_events
        from journeyguard.features.sources.quarantine import write_quarantine

        loaded = load_events(settings.source)
        write_quarantine(loaded.quarantine, settings.workspace.quarantine)
        log = loaded.log
    return _with_outreach_events(log, settings.workspace.outreach_events, columns)


def _with_outreach_events(log: EventLog, path: Path, columns: list[str] | None) -> EventLog:
    """The log with the written-back outreach events, if there are any."""
    if not path.is_file():
        return log
    from journeyguard.features.eventlog.frames import concat_logs, read_log

    # The cycle writes the file in canonical form; read any other Parquet file the slow way.
    sent = read_canonical(path, columns=columns)
    if sent is None:
        sent = read_log(path)
    return concat_logs(log, sent)
