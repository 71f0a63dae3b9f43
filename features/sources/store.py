"""The ingested log store: a file source validated once, kept canonical under the output folder.

`ingest` validates the configured file (`sources.load`) into the workspace's `store` folder: the
log in canonical form (sorted and dictionary-encoded, in an uncompressed Arrow file that is
written and memory-mapped back at the speed of a copy), each
event's source row, and a manifest naming the source, a digest of its mapping and a watermark
(`sources.growth`); rejected rows go to the workspace's quarantine. Then, in this order:

1. a store whose mapping digest and source file are unchanged is current: nothing to do;
2. a source that only grew is appended: only the rows after the watermark are validated, their
   duplicates found by merging them with the stored events they could equal, those of their
   journeys at their times (the rules of a full load, `sources.merge`), their rejects added
   to the quarantine, and they are
   kept as a part beside the stored log that readers merge in (`sources.generations`);
3. anything else (no store, another mapping, a changed file, an append a full load could read
   differently, `full=True`) is ingested again from scratch.

A source already in canonical form (what `journeyguard simulate` writes) needs no store: every
command reads it directly, and `ingest` says so and writes nothing.

Every write adds files (a generation, or a part) and replaces the manifest last, so a reader
sees one whole store or the one before; a lock keeps two ingests from running together.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from journeyguard.features.config.model import Config, SourceConfig
from journeyguard.features.errors import LoadError
from journeyguard.features.eventlog.canonical import (
    read_canonical,
)
from journeyguard.features.eventlog.log import EventLog
from journeyguard.features.sources.canonical import is_canonical_source
from journeyguard.features.sources.generations import (
    MAX_PARTS,
    STORE_VERSION,
    add_part,
    locked,
    partial,
    read_manifest,
    read_stored_log,
    read_stored_parts,
    write_generation,
)
from journeyguard.features.sources.growth import (
    Watermark,
    change_since,
    is_parquet,
    watermark,
    write_new_rows,
)

Action = Literal["current", "appended", "ingested", "canonical"]


@dataclass(frozen=True)
class IngestResult:
    """What one `ingest` did, and the store it left."""

    action: Action
    reason: str  # why, in words
    store: Path
    rows_read: int  # source rows validated by this run (the new ones, for an append)
    rows_total: int  # source rows the store holds, loaded or quarantined
    events: int  # events in the store
    journeys: int
    new_events: int  # events this run added
    quarantined: dict[str, int]  # every quarantined row of the store, by reason
    seconds: float
    # The whole log, when this run wrote it (not for an append of a part).
    log: EventLog | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body.pop("log")
        return body | {"store": str(self.store)}

    def to_text(self) -> str:
        lines = [
            f"{self.action}: {self.reason} ({self.seconds:.2f} s)",
            f"store         {self.store}",
            f"rows read     {self.rows_read:,} (of {self.rows_total:,} in the store)",
            f"events        {self.events:,} (+{self.new_events:,}) of {self.journeys:,} journeys",
            f"quarantined   {sum(self.quarantined.values()):,}",
        ]
        lines += [f"  {count:>10,}  {reason}" for reason, count in self.quarantined.items()]
        return "\n".join(lines)


def ingest(settings: Config, *, full: bool = False) -> IngestResult:
    """Brings the store of `settings`' file source up to date: nothing, an append, or a full
    ingest (always with `full`). Raises `LoadError` as a load would."""
    source = settings.source
    if source.path is None:
        raise LoadError(f"{source.display_name}: only file sources are ingested into a store")
    if not source.path.is_file():
        raise LoadError(f"{source.path}: file not found")
    folder = settings.workspace.store
    started = time.perf_counter()
    if is_canonical_source(source):
        return _canonical(settings, started)
    folder.mkdir(parents=True, exist_ok=True)
    with locked(folder):
        manifest = read_manifest(folder)
        mapping = mapping_digest(source)
        if full or manifest is None or manifest["mapping"] != mapping:
            reason = "asked for" if full else "no store yet" if manifest is None else "new mapping"
            return _full(settings, mapping, reason, started)
        mark = Watermark(**manifest["watermark"])
        change = change_since(source, mark)
        if change == "current":
            return _unchanged(folder, manifest, started)
        if change == "changed":
            return _full(settings, mapping, "the source changed", started)
        try:
            return _append(settings, manifest, mark, started)
        except _NeedsFullIngest as why:
            return _full(settings, mapping, f"the source grew, but {why}", started)


def current_log(settings: Config, columns: list[str] | None = None) -> EventLog | None:
    """The log of the store when it is current (says so on stderr), else None; of the source
    it reads only the size and time, so a current store is read before anything else."""
    folder = settings.workspace.store
    manifest = read_manifest(folder)
    source = settings.source
    if (
        manifest is None
        or source.path is None
        or not source.path.is_file()  # `ingest` names the missing file
        or manifest["mapping"] != mapping_digest(source)
        or change_since(source, Watermark(**manifest["watermark"])) != "current"
    ):
        return None
    log = read_stored_log(folder, manifest, columns)
    if log is not None:
        _say(f"the ingested store {folder} ({log.n_events:,} events), source unchanged")
    return log


def ingested_log(settings: Config, columns: list[str] | None = None) -> EventLog:
    """The log of the store when it is current, else after `ingest` brought it up to date; says
    which on stderr. `columns` limits the optional columns (default: all)."""
    log = current_log(settings, columns)
    if log is not None:
        return log
    folder = settings.workspace.store
    result = ingest(settings)
    _say(f"{result.action} into {folder}: {result.reason} ({result.seconds:.2f} s)")
    if result.log is None:  # an append of a part, or another process's ingest meanwhile
        log = read_stored_log(folder, read_manifest(folder) or {}, columns)
        if log is None:
            raise LoadError(f"{folder}: the ingested store vanished while it was read")
        return log
    return _only(result.log, columns)


def mapping_digest(source: SourceConfig) -> str:
    """A digest of everything that shapes the ingested log besides the file's rows: the
    mapping, formats, time zone, defaults and attributes (and the attribute table's state)."""
    body: dict[str, Any] = {"version": STORE_VERSION, "source": asdict(source)}
    table = source.attributes.path
    if table is not None and table.is_file():
        stat = table.stat()
        body["attribute_table"] = [stat.st_size, stat.st_mtime_ns]
    text = json.dumps(body, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# -- the three outcomes -------------------------------------------------------------------------


class _NeedsFullIngest(Exception):
    """An append that only a full ingest can do right; the message says why."""


def _canonical(settings: Config, started: float) -> IngestResult:
    """A canonical source needs no store: every command reads it directly."""
    assert settings.source.path is not None
    log = read_canonical(settings.source.path, columns=[])
    assert log is not None
    return IngestResult(
        action="canonical",
        reason="the source is in canonical form: commands read it directly, no store needed",
        store=settings.source.path,
        rows_read=0,
        rows_total=log.n_events,
        events=log.n_events,
        journeys=log.n_journeys,
        new_events=0,
        quarantined={},
        seconds=time.perf_counter() - started,
    )


def _unchanged(folder: Path, manifest: dict[str, Any], started: float) -> IngestResult:
    return _result("current", "source unchanged", folder, manifest, 0, 0, started, None)


def _full(settings: Config, mapping: str, reason: str, started: float) -> IngestResult:
    source = settings.source
    assert source.path is not None
    for _ in range(3):  # a file written to while it is read: read it again
        before = source.path.stat()
        loaded = _validated(source)
        after = source.path.stat()
        if (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns):
            break
    else:
        raise LoadError(f"{source.display_name}: the file kept changing while it was read")
    folder = settings.workspace.store
    quarantine = settings.workspace.quarantine
    loaded.write_quarantine(partial(quarantine))
    mark = watermark(source, loaded.rows_read, before)
    manifest = write_generation(
        folder, loaded.log, loaded.source_rows, mapping, mark, loaded.quarantined
    )
    os.replace(partial(quarantine), quarantine)
    rows = loaded.rows_read
    return _result(
        "ingested", reason, folder, manifest, rows, loaded.log.n_events, started, loaded.log
    )


class _Validated(NamedTuple):
    """A file's load: its log, each event's source row, the rows read, the reasons rows were
    set aside (counts) and the quarantine frame (None when nothing was: a typed load's)."""

    log: EventLog
    source_rows: np.ndarray
    rows_read: int
    quarantined: dict[str, int]
    quarantine: Any
    columns_read: list[str]

    def write_quarantine(self, path: Path) -> None:
        from journeyguard.features.sources import quarantine

        if self.quarantine is None:
            quarantine.write_empty_quarantine(self.columns_read, path)
        else:
            quarantine.write_quarantine(self.quarantine, path)


def _validated(source: SourceConfig) -> _Validated:
    """The file's load: straight from Arrow when it is typed and nothing is set aside
    (`sources.typed`), else through the validating load."""
    from journeyguard.features.sources.typed import load_typed

    clean = load_typed(source)
    if clean is not None:
        rows, columns = clean.source_rows, clean.columns_read
        return _Validated(clean.log, rows, clean.rows_read, {}, None, columns)
    from journeyguard.features.sources.load import load_events

    loaded = load_events(source)
    assert loaded.source_rows is not None
    return _Validated(
        loaded.log,
        loaded.source_rows,
        loaded.summary.rows_read,
        dict(loaded.summary.quarantined),
        loaded.quarantine,
        [],
    )


def _append(
    settings: Config, manifest: dict[str, Any], mark: Watermark, started: float
) -> IngestResult:
    source = settings.source
    assert source.path is not None
    folder = settings.workspace.store
    before = source.path.stat()
    suffix = ".parquet" if is_parquet(source) else ".csv"
    new_rows_file = folder / f"new-rows{suffix}"
    try:
        new_source = write_new_rows(source, mark, new_rows_file, before.st_size)
        return _merge_new_rows(settings, manifest, mark, new_source, before, started)
    finally:
        new_rows_file.unlink(missing_ok=True)


def _merge_new_rows(
    settings: Config,
    manifest: dict[str, Any],
    mark: Watermark,
    new_source: SourceConfig,
    before: os.stat_result,
    started: float,
) -> IngestResult:
    """Validates the new rows and keeps them as a part of the store (or, at `MAX_PARTS`, a new
    generation of everything); only the stored events they could equal (same journey and
    time) are merged with them to find duplicates."""
    from journeyguard.features.sources.merge import IncompatibleColumns, merge_events

    source, folder = settings.source, settings.workspace.store
    try:
        loaded = _validated(new_source)
    except LoadError as error:  # e.g. no usable new row: a full load words it for the source
        raise _NeedsFullIngest(f"its new rows alone do not load ({error})") from None
    new_rows = loaded.source_rows + mark.rows
    # The stored events a new row could equal (its journey and time): what decides the
    # duplicates; the stored journeys it touches are named, so the new ones can be counted.
    touched = read_stored_parts(folder, manifest, near=loaded.log)
    if touched is None:
        raise _NeedsFullIngest("the stored log is missing")
    earlier, earlier_rows = touched.merged()
    try:
        merged = merge_events(earlier, earlier_rows, loaded.log, new_rows)
    except IncompatibleColumns as error:
        raise _NeedsFullIngest(f"a column's kind differs: {error}") from None
    counts = dict(manifest["quarantined"])
    quarantine = None  # a typed load with no duplicate among its rows sets nothing aside
    if loaded.quarantine is not None or len(merged.duplicates):
        quarantine = _new_quarantine(loaded, mark.rows, merged, new_source)
        for reason, count in quarantine["reason"].value_counts().items():
            counts[str(reason)] = counts.get(str(reason), 0) + int(count)
    new_mark = watermark(source, mark.rows + loaded.rows_read, before, grown_from=mark)
    path = settings.workspace.quarantine
    if quarantine is not None:
        _append_quarantine(path, quarantine)
    added = merged.log.n_events - earlier.n_events
    log = None
    if len(manifest["parts"]) + 1 < MAX_PARTS:
        totals = (
            manifest["events"] + added,
            manifest["journeys"] + merged.log.n_journeys - earlier.n_journeys,
        )
        written = add_part(folder, manifest, loaded.log, new_rows, new_mark, totals, counts)
    else:
        stored = read_stored_parts(folder, manifest)
        assert stored is not None  # the lock keeps other ingests out
        log, rows = stored.merged_with(loaded.log, new_rows)
        written = write_generation(folder, log, rows, manifest["mapping"], new_mark, counts)
    if quarantine is not None and len(quarantine):
        os.replace(partial(path), path)
    new = loaded.rows_read
    reason = f"the source grew by {new:,} row{'' if new == 1 else 's'}"
    return _result("appended", reason, folder, written, new, added, started, log)


def _new_quarantine(loaded: _Validated, offset: int, merged: Any, new_source: SourceConfig) -> Any:
    """The new rows' quarantine in source rows: their own rejects, and those equal to an
    earlier event (a duplicate of a duplicate names the first row, as a full load does)."""
    import pandas as pd

    from journeyguard.features.sources.quarantine import DETAIL, DUPLICATE, REASON, SOURCE_ROW
    from journeyguard.features.sources.read import read_columns

    if loaded.quarantine is None:  # a typed load: only the merge's duplicates
        own = pd.DataFrame(columns=[SOURCE_ROW, REASON, DETAIL, *loaded.columns_read])
    else:
        own = loaded.quarantine.copy()
    own[SOURCE_ROW] = own[SOURCE_ROW].astype(np.int64) + offset
    first_of = dict(zip(merged.duplicates.tolist(), merged.first_rows.tolist(), strict=True))
    duplicate = own[REASON] == DUPLICATE
    if duplicate.any():
        earlier = own.loc[duplicate, DETAIL].map(_row_named).astype(np.int64) + offset
        own.loc[duplicate, DETAIL] = [f"same as row {first_of.get(r, r)}" for r in earlier]
    if len(merged.duplicates):
        raw_columns = [c for c in own.columns if c not in (SOURCE_ROW, REASON, DETAIL)]
        raw = read_columns(new_source, raw_columns).frame  # indexed by source row
        picked = raw.loc[merged.duplicates - offset].reset_index(drop=True)
        repeats = pd.DataFrame(
            {
                SOURCE_ROW: merged.duplicates,
                REASON: DUPLICATE,
                DETAIL: [f"same as row {row}" for row in merged.first_rows],
            }
        )
        own = pd.concat([own, pd.concat([repeats, picked], axis=1)], ignore_index=True)
    return own.sort_values(SOURCE_ROW, kind="stable").reset_index(drop=True)


def _row_named(detail: str) -> int:
    match = re.fullmatch(r"same as row (\d+)", str(detail))
    assert match is not None, detail
    return int(match.group(1))


def _append_quarantine(path: Path, rows: Any) -> None:
    """A copy of the quarantine with `rows` after it, beside it (replaced after the store)."""
    import shutil

    if not len(rows):
        return
    if path.is_file():
        shutil.copyfile(path, partial(path))
        rows.to_csv(partial(path), mode="a", header=False, index=False)
    else:
        rows.to_csv(partial(path), index=False)


# -- files --------------------------------------------------------------------------------------


def _result(
    action: Action,
    reason: str,
    folder: Path,
    manifest: dict[str, Any],
    rows_read: int,
    new_events: int,
    started: float,
    log: EventLog | None,
) -> IngestResult:
    return IngestResult(
        action=action,
        reason=reason,
        store=folder,
        rows_read=rows_read,
        rows_total=manifest["watermark"]["rows"],
        events=manifest["events"],
        journeys=manifest["journeys"],
        new_events=new_events,
        quarantined=dict(manifest["quarantined"]),
        seconds=time.perf_counter() - started,
        log=log,
    )


def _only(log: EventLog, columns: list[str] | None) -> EventLog:
    """The log with only the optional `columns` (all when None), as a store read gives it."""
    if columns is None:
        return log
    return replace(log, columns={k: v for k, v in log.columns.items() if k in columns})


def _say(message: str) -> None:
    """Where the log came from, for the person running the command (stderr: stdout is theirs)."""
    print(f"log: {message}", file=sys.stderr)
