"""The ingested store's files: generations of the log and its source rows, the parts appended
to a generation, the manifest that names them, and the lock of an ingest.

A generation is the whole log as one full ingest (or a compaction) wrote it. An append writes
only its new events, as a part beside the generation, so that a day costs the day; a reader
merges the parts into the generation (`sources.merge`, the rules of a full load), as a
log-structured store does, and the append that would make `MAX_PARTS` parts writes a new
generation of everything instead. Every write replaces the manifest last, so a reader sees one
whole store; the generation before stays, for a reader still on it.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from journeyguard.features.eventlog.canonical import (
    read_canonical_arrow,
    read_canonical_arrow_near,
    write_canonical_arrow,
)
from journeyguard.features.eventlog.log import EventLog
from journeyguard.features.sources.growth import Watermark
from journeyguard.features.sources.merge import journeys_named, merge_events

STORE_VERSION = 4  # part of the mapping digest: a store of another layout or watermark is rebuilt
MANIFEST = "manifest.json"
MAX_PARTS = 7  # a week of daily appends; each part costs every reader a merge of the log


def write_generation(
    folder: Path,
    log: EventLog,
    rows: np.ndarray,
    mapping: str,
    mark: Watermark,
    quarantined: dict[str, int],
) -> dict[str, Any]:
    """Writes a new generation (without parts) and its manifest; removes the generations
    before the last."""
    previous = read_manifest(folder)
    generation = (previous or {}).get("generation", 0) + 1
    log_name, rows_name = _write_log(folder, f"{generation}", log, rows)
    manifest = {
        "version": STORE_VERSION,
        "generation": generation,
        "mapping": mapping,
        "log": log_name,
        "rows": rows_name,
        "parts": [],
    }
    manifest = _replace_manifest(folder, manifest, mark, log.n_events, log.n_journeys, quarantined)
    for old in folder.glob("*-*.*"):  # keep the one before: a reader may be on it
        if old.suffix in {".arrow", ".npy"} and _generation_of(old) < generation - 1:
            old.unlink(missing_ok=True)
    return manifest


def add_part(
    folder: Path,
    manifest: dict[str, Any],
    log: EventLog,
    rows: np.ndarray,
    mark: Watermark,
    totals: tuple[int, int],
    quarantined: dict[str, int],
) -> dict[str, Any]:
    """Writes `log` (an append's validated events, duplicates included: the merge drops them)
    as a new part of the manifest's generation; `totals` are the merged store's events and
    journeys."""
    parts = list(manifest["parts"])
    log_name, rows_name = _write_log(
        folder, f"{manifest['generation']}-{len(parts) + 1}", log, rows
    )
    parts.append({"log": log_name, "rows": rows_name, "events": log.n_events})
    body = {key: manifest[key] for key in ("version", "generation", "mapping", "log", "rows")}
    return _replace_manifest(folder, body | {"parts": parts}, mark, *totals, quarantined)


def _write_log(folder: Path, name: str, log: EventLog, rows: np.ndarray) -> tuple[str, str]:
    log_name, rows_name = f"log-{name}.arrow", f"rows-{name}.npy"
    write_canonical_arrow(log, partial(folder / log_name))
    os.replace(partial(folder / log_name), folder / log_name)
    with partial(folder / rows_name).open("wb") as file:
        np.save(file, rows.astype(np.int64))
    os.replace(partial(folder / rows_name), folder / rows_name)
    return log_name, rows_name


def _replace_manifest(
    folder: Path,
    body: dict[str, Any],
    mark: Watermark,
    events: int,
    journeys: int,
    quarantined: dict[str, int],
) -> dict[str, Any]:
    manifest = body | {
        "watermark": mark.to_dict(),
        "events": events,
        "journeys": journeys,
        "quarantined": dict(sorted(quarantined.items(), key=lambda kv: (-kv[1], kv[0]))),
        "written_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    partial(folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(partial(folder / MANIFEST), folder / MANIFEST)
    return manifest


def _generation_of(path: Path) -> int:
    """The generation a store file belongs to (`log-3.arrow`, `rows-3-2.npy`: 3)."""
    number = path.stem.split("-")[1]
    return int(number) if number.isdigit() else 0


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The current manifest; None without one, or for one of another layout."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return manifest if manifest.get("version") == STORE_VERSION else None


def read_stored_log(
    folder: Path, manifest: dict[str, Any], columns: list[str] | None
) -> EventLog | None:
    """The manifest's log, its parts merged in; None when its generation is gone (a reader
    two writes behind)."""
    stored = read_stored_parts(folder, manifest, columns)
    return None if stored is None else stored.merged_log()


class StoredParts(NamedTuple):
    """A store as its files hold it: the generation's log and source rows, and its parts
    merged among themselves (None without parts)."""

    log: EventLog
    rows: np.ndarray
    added: tuple[EventLog, np.ndarray] | None

    def merged(self) -> tuple[EventLog, np.ndarray]:
        """The whole log and its source rows, as one full ingest would give them."""
        if self.added is None:
            return self.log, self.rows
        return _merge(self.log, self.rows, *self.added)

    def merged_log(self) -> EventLog:
        """The whole log, without its source rows (what a reader needs, for less)."""
        if self.added is None:
            return self.log
        return merge_events(self.log, self.rows, *self.added, with_rows=False).log

    def merged_with(self, log: EventLog, rows: np.ndarray) -> tuple[EventLog, np.ndarray]:
        """The whole log with `log` merged in, events that come after every stored row."""
        if self.added is not None:
            log, rows = _merge(*self.added, log, rows)
        return _merge(self.log, self.rows, log, rows)


def read_stored_parts(
    folder: Path,
    manifest: dict[str, Any],
    columns: list[str] | None = None,
    near: EventLog | None = None,
) -> StoredParts | None:
    """The manifest's files, read (the generation's source rows memory-mapped), or only what
    events of `near` could equal: the generation's events that share journey and time with
    one, and the parts' events of its journeys; every journey of `near` the store holds is
    named. None when a file is gone (a reader two writes behind)."""
    try:
        rows = np.load(folder / manifest["rows"], mmap_mode="r")
        if near is None:
            log = read_canonical_arrow(folder / manifest["log"], columns=columns)
        else:
            log, taken = read_canonical_arrow_near(folder / manifest["log"], near)
            rows = rows[taken]
        parts = [
            (read_canonical_arrow(folder / part["log"], columns), np.load(folder / part["rows"]))
            for part in manifest["parts"]
        ]
    except (FileNotFoundError, KeyError):
        return None
    if near is not None:
        parts = [journeys_named(*part, near.journey_ids) for part in parts]
    added = parts[0] if parts else None
    for part in parts[1:]:  # small: merged among themselves first
        added = _merge(*added, *part)
    return StoredParts(log, rows, added)


def _merge(
    log: EventLog, rows: np.ndarray, later: EventLog, later_rows: np.ndarray
) -> tuple[EventLog, np.ndarray]:
    merged = merge_events(log, rows, later, later_rows)
    assert merged.source_rows is not None
    return merged.log, merged.source_rows


def partial(path: Path) -> Path:
    """Where a file is written before it replaces `path`."""
    return path.with_name(path.name + ".partial")


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Holds the store's lock: a second ingest waits for the first."""
    with (folder / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
