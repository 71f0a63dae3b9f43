"""Event sources: reading files and databases, validation, quarantine, timestamps, the ingested
store, the simulator."""

from journeyguard.features.exports import lazy_exports

_PUBLIC = {
    "load_log": "log",
    "ingest": "store",
    "IngestResult": "store",
    "load_events": "load",
    "write_quarantine": "load",
    "LoadResult": "load",
    "LoadSummary": "load",
    "read_if_canonical": "canonical",
    "parse_timestamps": "timestamps",
    "simulate": "simulate",
    "write_simulation": "simulate",
}
__all__ = sorted(_PUBLIC)
__getattr__ = lazy_exports(__name__, _PUBLIC)
