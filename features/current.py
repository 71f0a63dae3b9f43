"""Features of every journey active at one `as_of`, as the `features` command writes them.

The snapshots and the vocabulary come from the log cut at `as_of` once; `features_table` puts
the feature arrays into an Arrow table without pandas, whose import was a sixth of the
command's time. `dataset.features_at` gives the same rows as a frame.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from journeyguard.features.build import feature_columns
from journeyguard.features.eventlog.log import EventLog, Snapshots
from journeyguard.features.tables import arrow_table
from journeyguard.features.vocabulary import Vocabulary, learn_vocabulary

if TYPE_CHECKING:
    import pyarrow as pa


def active_at(
    log: EventLog, as_of_ns: int, transformer_params: dict[str, Any] | None = None
) -> tuple[Snapshots, Vocabulary]:
    """The snapshot at `as_of_ns` of every journey with an event at or before it, and the
    vocabulary learned from those same events."""
    # Cut once here: fitting and building would each cut the later events away.
    snapshots = Snapshots.at(log.until(as_of_ns), as_of_ns)
    return snapshots, learn_vocabulary(snapshots, **(transformer_params or {}))


def features_table(
    log: EventLog, as_of: np.datetime64, transformer_params: dict[str, Any] | None = None
) -> pa.Table:
    """One row per journey active at `as_of` (naive UTC, the unit of the file's as_of column):
    customer_id, as_of and the features, the vocabulary learned from those same events."""
    snapshots, vocabulary = active_at(log, _nanoseconds(as_of), transformer_params)
    keys = {
        "customer_id": snapshots.customer_ids.astype(str),
        "as_of": np.full(len(snapshots), as_of),
    }
    return arrow_table(keys | feature_columns(snapshots, vocabulary))


def _nanoseconds(moment: np.datetime64) -> int:
    return int(moment.astype("datetime64[ns]").astype(np.int64))
