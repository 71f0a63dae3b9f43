"""The event log: `EventLog` and `Snapshots`, frames in and out, records, canonical files."""

from journeyguard.features.exports import lazy_exports

_PUBLIC = {
    "EventLog": "log",
    "Snapshots": "log",
    "Coded": "log",
    "log_from_frame": "frames",
    "log_to_frame": "frames",
    "read_log": "frames",
    "concat_logs": "frames",
    "log_from_records": "records",
    "read_canonical": "canonical",
    "write_canonical": "canonical",
}
__all__ = sorted(_PUBLIC)
__getattr__ = lazy_exports(__name__, _PUBLIC)
