"""The ingested store's files: generations of the log and its source rows, the manifest that
names the current one, and the lock of an ingest.

A write makes a new generation beside the current one and replaces the manifest last, so a
reader sees one whole generation; the one before stays, for a reader still on it.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from journeyguard.features.eventlog.canonical import read_canonical_arrow, write_canonical_arrow
from journeyguard.features.eventlog.log import EventLog
from journeyguard.features.sources.growth import Watermark

STORE_VERSION = 2  # part of the mapping digest: a store of another layout is rebuilt
MANIFEST = "manifest.json"


def write_generation(
    folder: Path,
    log: EventLog,
    rows: np.ndarray,
    mapping: str,
    mark: Watermark,
    quarantined: dict[str, int],
) -> dict[str, Any]:
    """Writes a new generation and its manifest; removes the generations before the last."""
    previous = read_manifest(folder)
    generation = (previous or {}).get("generation", 0) + 1
    log_name, rows_name = f"log-{generation}.arrow", f"rows-{generation}.npy"
    write_canonical_arrow(log, partial(folder / log_name))
    os.replace(partial(folder / log_name), folder / log_name)
    with partial(folder / rows_name).open("wb") as file:
        np.save(file, rows.astype(np.int64))
    os.replace(partial(folder / rows_name), folder / rows_name)
    manifest = {
        "version": STORE_VERSION,
        "generation": generation,
        "mapping": mapping,
        "watermark": mark.to_dict(),
        "log": log_name,
        "rows": rows_name,
        "events": log.n_events,
        "journeys": log.n_journeys,
        "quarantined": dict(sorted(quarantined.items(), key=lambda kv: (-kv[1], kv[0]))),
        "written_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    partial(folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(partial(folder / MANIFEST), folder / MANIFEST)
    for old in range(1, generation - 1):  # keep the one before: a reader may be on it
        (folder / f"log-{old}.arrow").unlink(missing_ok=True)
        (folder / f"rows-{old}.npy").unlink(missing_ok=True)
    return manifest


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
    """The manifest's log; None when its generation is gone (a reader two writes behind)."""
    try:
        return read_canonical_arrow(folder / manifest["log"], columns=columns)
    except (FileNotFoundError, KeyError):
        return None


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
