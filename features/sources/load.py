"""Reading an event source into an `EventLog`, with validation that loses nothing.

Rows that cannot be used are kept aside in a quarantine frame with a reason per row: malformed
rows of a CSV file (`sources.rows`), then empty ids or steps, bad or out-of-range timestamps,
numbers that do not parse or are not finite and plausible (|x| <= NUMBER_LIMIT). Exact duplicates
are kept once (the first in source order) and the others quarantined as duplicates. A problem
no row can escape (a mapped column absent, an empty or unreadable file, no usable rows) raises
`LoadError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from journeyguard.features.config.model import SourceConfig
from journeyguard.features.errors import LoadError
from journeyguard.features.eventlog.columns import (
    CUSTOMER_ID,
    EVENT,
    NUMBER_LIMIT,
    OPTIONAL_NUMBER_COLUMNS,
    OPTIONAL_TEXT_COLUMNS,
    REQUIRED_COLUMNS,
    TIMESTAMP,
)
from journeyguard.features.eventlog.frames import canonical_order, encode, log_from_encoded
from journeyguard.features.eventlog.log import EventLog
from journeyguard.features.sources.canonical import read_if_canonical
from journeyguard.features.sources.mapping import (
    column_mapping,
    missing_column_message,
    require_unique,
)
from journeyguard.features.sources.quarantine import DETAIL, DUPLICATE, REASON, SOURCE_ROW
from journeyguard.features.sources.read import read_attribute_table, read_columns, source_columns
from journeyguard.features.sources.timestamps import parse_timestamps

_LIMIT_TEXT = f"{NUMBER_LIMIT:.0e}".replace("e+", "e")  # "1e15"


@dataclass(frozen=True)
class LoadSummary:
    source: str
    rows_read: int
    rows_loaded: int
    journeys: int
    event_types: int
    first_event: pd.Timestamp
    last_event: pd.Timestamp
    quarantined: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "rows_read": self.rows_read,
            "rows_loaded": self.rows_loaded,
            "journeys": self.journeys,
            "event_types": self.event_types,
            "first_event": self.first_event.isoformat(),
            "last_event": self.last_event.isoformat(),
            "quarantined": dict(self.quarantined),
        }

    def to_text(self) -> str:
        lines = [
            f"source        {self.source}",
            f"rows read     {self.rows_read:,}",
            f"rows loaded   {self.rows_loaded:,}",
            f"journeys      {self.journeys:,}",
            f"event types   {self.event_types:,}",
            f"time span     {self.first_event.isoformat()} .. {self.last_event.isoformat()}",
            f"quarantined   {sum(self.quarantined.values()):,}",
        ]
        lines += [f"  {count:>10,}  {reason}" for reason, count in self.quarantined.items()]
        return "\n".join(lines)


@dataclass(frozen=True)
class LoadResult:
    log: EventLog
    quarantine: pd.DataFrame
    summary: LoadSummary
    source_rows: np.ndarray | None = None  # each event's source row (1-based), in log order


def load_events(source: SourceConfig) -> LoadResult:
    """Reads, validates and canonicalises the configured source."""
    name = source.display_name
    canonical = read_if_canonical(source)
    if canonical is not None:
        missing = [c for c in source.attributes.columns if c not in canonical.columns]
        if missing:
            raise LoadError(
                missing_column_message(
                    source,
                    missing[0],
                    "listed in [source.attributes] columns",
                    list(canonical.columns),
                )
            )
        empty = pd.DataFrame({SOURCE_ROW: [], REASON: [], DETAIL: []})
        summary = _summary(name, canonical.n_events, canonical, empty)
        return LoadResult(canonical, empty, summary, np.arange(1, canonical.n_events + 1))
    available = source_columns(source)
    mapping = column_mapping(source, available)
    require_unique(name, available, list(mapping.values()))
    records = read_columns(source, list(dict.fromkeys(mapping.values())))
    raw, malformed = records.frame, records.rejected.set_index(SOURCE_ROW)  # raw: by source row
    rows_read = len(raw) + len(malformed)
    log, quarantine, rows = validate_rows(raw, mapping, source, malformed)
    if log is None:
        raise LoadError(
            f"{name}: no usable rows among {rows_read:,}; reasons: "
            f"{quarantine[REASON].value_counts().to_dict()}"
        )
    return LoadResult(log, quarantine, _summary(name, rows_read, log, quarantine), rows)


def validate_rows(
    raw: pd.DataFrame,
    mapping: dict[str, str],
    source: SourceConfig,
    malformed: pd.DataFrame | None = None,
) -> tuple[EventLog | None, pd.DataFrame, np.ndarray]:
    """The log of the usable rows of `raw` (indexed by source row, in source order; None when no
    row is usable), the quarantine of the others and of the `malformed` records (indexed by
    source row), and each event's source row in log order. Spark's engine runs it on each
    journey partition (`features.engine.spark`): duplicates share a journey, so nothing crosses
    one."""
    if malformed is None:
        malformed = pd.DataFrame({REASON: [], DETAIL: []}, index=pd.Index([], name=SOURCE_ROW))
    canonical, problems = _canonical_frame(raw, mapping, source)
    if source.attributes.path is not None:
        canonical = _join_attributes(canonical, source)
    usable = ~problems.flagged
    if not usable.any():
        return None, _quarantine_frame(raw, problems, malformed), np.array([], dtype=np.int64)
    ordered = encode(canonical[usable])
    ordered = ordered.iloc[canonical_order(ordered)]
    repeat, first_row = _repeats(ordered)
    duplicate = pd.Series(False, index=raw.index)
    duplicate[ordered.index[repeat]] = True
    problems.flag(
        duplicate,
        DUPLICATE,
        pd.Series([f"same as row {row}" for row in first_row[repeat]], index=ordered.index[repeat]),
    )
    log = log_from_encoded(ordered[~repeat])
    quarantine = _quarantine_frame(raw, problems, malformed)
    return log, quarantine, ordered.index[~repeat].to_numpy(np.int64)


class _Problems:
    """Per source row, the first problem found: a reason and a detail (most rows have none)."""

    def __init__(self, index: pd.Index) -> None:
        self.index = index
        self.flagged = np.zeros(len(index), dtype=bool)
        self._found: list[pd.DataFrame] = []

    def flag(
        self, bad: pd.Series | np.ndarray, reason: pd.Series | str, detail: pd.Series | str
    ) -> None:
        """Records `reason` and `detail` (aligned on the index) for bad rows not yet flagged."""
        new = np.asarray(bad, dtype=bool) & ~self.flagged
        if not new.any():
            return
        self.flagged |= new
        rows = self.index[new]
        self._found.append(
            pd.DataFrame(
                {
                    REASON: reason.reindex(rows) if isinstance(reason, pd.Series) else reason,
                    DETAIL: detail.reindex(rows) if isinstance(detail, pd.Series) else detail,
                },
                index=rows,
            )
        )

    def table(self) -> pd.DataFrame:
        """reason and detail of every flagged row, in source order."""
        empty = pd.DataFrame({REASON: [], DETAIL: []}, index=self.index[:0], dtype=object)
        return pd.concat([empty, *self._found]).sort_index()


def _canonical_frame(
    raw: pd.DataFrame, mapping: dict[str, str], source: SourceConfig
) -> tuple[pd.DataFrame, _Problems]:
    """The canonical columns, and the problems of each row."""
    problems = _Problems(raw.index)
    canonical = pd.DataFrame(index=raw.index)
    for column in (CUSTOMER_ID, EVENT, *OPTIONAL_TEXT_COLUMNS):
        if column in mapping:
            canonical[column] = _clean_text(raw[mapping[column]])
            if column in REQUIRED_COLUMNS:
                problems.flag(
                    canonical[column].isna(),
                    f"missing {column}",
                    f"column {mapping[column]!r} is empty",
                )
        elif column in source.defaults:
            canonical[column] = source.defaults[column]
    parsed = parse_timestamps(raw[mapping[TIMESTAMP]], source)
    problems.flag(parsed.reason.notna(), parsed.reason, parsed.detail)
    canonical[TIMESTAMP] = parsed.times
    for column in OPTIONAL_NUMBER_COLUMNS:
        if column in mapping:
            numbers, bad = _parse_numbers(raw[mapping[column]])
            got = raw.loc[bad, mapping[column]].astype(str)
            problems.flag(
                bad,
                f"unparsable {column}",
                f"column {mapping[column]!r}: expected a number, got " + got,
            )
            absurd = numbers.notna() & ~(numbers.abs() <= NUMBER_LIMIT)  # infinities too
            problems.flag(
                absurd,
                f"out-of-range {column}",
                f"column {mapping[column]!r}: expected a finite number within "
                f"±{_LIMIT_TEXT}, got " + raw.loc[absurd, mapping[column]].astype(str),
            )
            canonical[column] = numbers
    for attribute in source.attributes.columns:
        if attribute in mapping:
            canonical[attribute] = _attribute_values(raw[attribute])
    return canonical, problems


def _clean_text(column: pd.Series) -> pd.Series:
    """Text without surrounding spaces, empty cells missing, dictionary-encoded and sorted.

    Cleaning works on the distinct values only, which are few beside the rows.
    """
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes, uniques = column.cat.codes.to_numpy(), column.cat.categories
    else:
        codes, uniques = pd.factorize(column)
    cleaned = pd.Index(uniques).astype("string").str.strip()
    kept = cleaned.notna() & (cleaned != "")
    categories, new_code = np.unique(cleaned[kept].to_numpy(dtype=str), return_inverse=True)
    recode = np.full(len(uniques) + 1, -1)  # the extra last slot maps missing (-1) to missing
    recode[np.flatnonzero(kept)] = new_code.reshape(-1)
    return pd.Series(
        pd.Categorical.from_codes(recode[codes], categories=categories),
        index=column.index,
        name=column.name,
    )


def _parse_numbers(column: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Numbers, and which non-empty cells did not parse."""
    if pd.api.types.is_numeric_dtype(column):
        return column.astype("float64"), pd.Series(False, index=column.index)
    text = _clean_text(column)
    numbers = _category_numbers(text)
    return numbers, text.notna() & numbers.isna()


def _attribute_values(column: pd.Series) -> pd.Series:
    """Numbers when every non-empty cell is one, text otherwise."""
    if pd.api.types.is_numeric_dtype(column):
        return column
    text = _clean_text(column)
    numbers = _category_numbers(text)
    return numbers if numbers.notna().sum() == text.notna().sum() else text


def _category_numbers(text: pd.Series) -> pd.Series:
    """The numbers written in a dictionary-encoded text column (NaN where none)."""
    values = pd.to_numeric(pd.Series(text.cat.categories), errors="coerce").to_numpy(np.float64)
    lookup = np.append(values, np.nan)  # code -1 (missing) takes the last slot
    return pd.Series(lookup[text.cat.codes.to_numpy()], index=text.index)


def _join_attributes(canonical: pd.DataFrame, source: SourceConfig) -> pd.DataFrame:
    attributes = read_attribute_table(source.attributes)
    key = source.attributes.key
    table = attributes.assign(**{key: _clean_text(attributes[key])})
    duplicated = table[key].duplicated(keep=False) & table[key].notna()
    if duplicated.any():
        examples = table.loc[duplicated, key].unique()[:5].tolist()
        raise LoadError(
            f"{source.attributes.path}: column {key!r} must identify one journey per "
            f"row; {duplicated.sum()} rows share ids such as {examples}"
        )
    values = table.set_index(key)[list(source.attributes.columns)]
    values = values.apply(_attribute_values)
    joined = values.reindex(canonical[CUSTOMER_ID].astype(object).to_numpy())
    return pd.concat([canonical, joined.set_axis(canonical.index)], axis=1)


def _repeats(ordered: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Rows equal in every column to the row before them in canonical order (exact duplicates
    are adjacent there, the earliest source row first), and each row's first source row."""
    same = np.ones(max(len(ordered) - 1, 0), dtype=bool)
    for column in ordered.columns:
        values = _comparable(ordered[column])
        equal = values[1:] == values[:-1]
        if values.dtype.kind in "fO":  # missing equals missing here
            missing = pd.isna(values)
            equal |= missing[1:] & missing[:-1]
        same &= equal
    repeat = np.concatenate(([False], same))
    run_start = np.maximum.accumulate(np.where(repeat, 0, np.arange(len(ordered))))
    return repeat, ordered.index.to_numpy()[run_start]


def _comparable(column: pd.Series) -> np.ndarray:
    """A column as a numpy array whose == compares values: codes, nanoseconds or numbers."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.codes.to_numpy()
    if pd.api.types.is_datetime64_any_dtype(column):
        return column.to_numpy(dtype="datetime64[ns]").view(np.int64)
    return column.to_numpy()


def _quarantine_frame(
    raw: pd.DataFrame, problems: _Problems, malformed: pd.DataFrame
) -> pd.DataFrame:
    """Rows set aside, in source order: reason, detail and the raw values (none for a row
    whose fields could not be told apart)."""
    found = problems.table().join(raw[problems.flagged])
    if len(malformed):
        found = pd.concat([found, malformed]).sort_index()
    return found.rename_axis(SOURCE_ROW).reset_index()


def _summary(name: str, rows_read: int, log: EventLog, quarantine: pd.DataFrame) -> LoadSummary:
    counts = quarantine[REASON].value_counts(sort=True)
    return LoadSummary(
        source=name,
        rows_read=rows_read,
        rows_loaded=log.n_events,
        journeys=log.n_journeys,
        event_types=len(log.steps),
        first_event=pd.Timestamp(log.first_time, tz="UTC"),
        last_event=pd.Timestamp(log.last_time, tz="UTC"),
        quarantined={str(k): int(v) for k, v in counts.items()},
    )
