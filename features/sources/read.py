"""Reading raw columns from a CSV file, a Parquet file or a SQL database.

CSV cells are read as text, so validation sees exactly what the file holds (leading zeros of ids
stay, an unparsable date stays visible); Parquet and SQL keep their own types. A CSV file that
the fast reader refuses is read again record by record (`rows`), its malformed rows set aside.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from journeyguard.features.config.model import (
    WHITESPACE,
    AttributeSource,
    SourceConfig,
    is_parquet_file,
)
from journeyguard.features.errors import LoadError
from journeyguard.features.sources.mapping import require_unique
from journeyguard.features.sources.rows import Records, open_bytes, read_header, read_records

_CHUNK = 1 << 24  # bytes read at a time when counting a file's quotes


def source_columns(source: SourceConfig) -> list[str]:
    """The column names the source offers, without reading its rows."""
    if source.path is None:
        return list(_read_sql(source, limit=0).columns)
    _check_exists(source.path)
    if is_parquet_file(source.path, source.format):
        return parquet_schema(source.path).names
    return read_header(source.path, _splitter(source.separator), source.encoding)


def read_columns(source: SourceConfig, columns: list[str]) -> Records:
    """The named columns of every usable row, in source order, and the rows set aside."""
    if source.path is None:
        return _all_rows(_read_sql(source)[columns])
    if is_parquet_file(source.path, source.format):
        return _all_rows(_read_parquet(source.path, columns))
    return _read_csv(source.path, columns, source.separator, source.encoding)


def parquet_schema(path: Path) -> pa.Schema:
    """A Parquet file's schema; `LoadError` when the file is not one."""
    try:
        return pq.read_schema(path)
    except (pa.ArrowException, OSError) as error:
        raise not_parquet(path, error) from None


def read_attribute_table(attributes: AttributeSource) -> pd.DataFrame:
    """A per-journey table of attributes: its key column and the listed columns, as text."""
    assert attributes.path is not None and attributes.key is not None
    _check_exists(attributes.path)
    wanted = [attributes.key, *attributes.columns]
    if is_parquet_file(attributes.path, "auto"):
        available = parquet_schema(attributes.path).names
    else:
        available = read_header(attributes.path, _splitter(attributes.separator), "utf-8")
    missing = [c for c in wanted if c not in available]
    if missing:
        raise LoadError(
            f"{attributes.path}: columns {missing} not found ([source.attributes]); "
            f"available columns: {available}"
        )
    require_unique(str(attributes.path), available, wanted)
    if is_parquet_file(attributes.path, "auto"):
        return _read_parquet(attributes.path, wanted)
    table = _read_csv(attributes.path, wanted, attributes.separator, "utf-8")
    if len(table.rejected):  # a journey's attributes cannot be set aside like an event
        first = table.rejected.iloc[0]
        raise LoadError(f"{attributes.path}: {first['detail']} ({first['reason']})")
    return table.frame


def _check_exists(path: Path) -> None:
    if not path.is_file():
        raise LoadError(f"{path}: file not found")


def _read_parquet(path: Path, columns: list[str]) -> pd.DataFrame:
    """Text columns come dictionary-encoded (pandas categoricals): ids and step names repeat."""
    schema = parquet_schema(path)
    text = [
        c
        for c in columns
        if pa.types.is_string(schema.field(c).type)
        or pa.types.is_large_string(schema.field(c).type)
    ]
    try:
        return pq.read_table(path, columns=columns, read_dictionary=text).to_pandas()
    except (pa.ArrowException, OSError) as error:  # a footer intact over damaged pages
        raise not_parquet(path, error) from None


def not_parquet(path: Path, error: Exception) -> LoadError:
    """The error of a file read as Parquet that is not one (empty, text, cut short)."""
    detail = str(error).splitlines()[0] if str(error) else type(error).__name__
    return LoadError(
        f"{path}: not a readable Parquet file ({detail}); expected a complete Parquet file "
        "(set [source] format = 'csv' if it is text)"
    )


def _all_rows(frame: pd.DataFrame) -> Records:
    frame.index = pd.RangeIndex(1, len(frame) + 1, name="source_row")
    return Records(frame, pd.DataFrame({"source_row": [], "reason": [], "detail": []}))


def _splitter(separator: str) -> str | None:
    return None if separator == WHITESPACE else separator


def _read_csv(path: Path, columns: list[str], separator: str, encoding: str) -> Records:
    """The fast readers first; the record-by-record one when they refuse the file or when a
    quote may be open at its end (they would read the rest of the file as one value)."""
    try:
        if separator == WHITESPACE:
            frame = _read_whitespace(path, encoding)
            # Split on whitespace no cell is empty: an empty one is a field the row lacks.
            if not (frame.isna() | frame.eq("")).to_numpy().any():
                return _all_rows(frame[columns])
        elif _quotes_balanced(path, encoding):
            return _all_rows(_read_csv_fast(path, columns, separator, encoding))
    except (pa.ArrowInvalid, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        pass
    return read_records(path, columns, _splitter(separator), encoding)


def _read_csv_fast(path: Path, columns: list[str], separator: str, encoding: str) -> pd.DataFrame:
    table = pa_csv.read_csv(
        path,
        read_options=pa_csv.ReadOptions(encoding=encoding),
        parse_options=pa_csv.ParseOptions(delimiter=separator),
        convert_options=pa_csv.ConvertOptions(
            include_columns=columns,
            column_types=dict.fromkeys(columns, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    return table.to_pandas()


def _quotes_balanced(path: Path, encoding: str) -> bool:
    """An even count of double quotes: no quoted field can be open at the end of the file.
    (Unknown, so False, for encodings that do not write a quote as one byte.)"""
    one, two = ('"'.encode(encoding, errors="ignore"), '""'.encode(encoding, errors="ignore"))
    if not (one.endswith(b'"') and len(two) == len(one) + 1):
        return False
    count = 0
    with open_bytes(path) as handle:
        while chunk := handle.read(_CHUNK):
            count += chunk.count(b'"')
    return count % 2 == 0


def _read_whitespace(path: Path, encoding: str) -> pd.DataFrame:
    # Columns padded with runs of spaces (CDNOW's format) need pandas' whitespace splitter.
    return pd.read_csv(path, sep=r"\s+", dtype=str, keep_default_na=False, encoding=encoding)


def _read_sql(source: SourceConfig, limit: int | None = None) -> pd.DataFrame:
    import sqlalchemy  # only database sources need it

    sql = f"SELECT * FROM {_quoted(source.table)}" if source.table else source.query.rstrip("; \n")
    if limit is not None:
        sql = f"SELECT * FROM ({sql}) AS source_rows LIMIT {int(limit)}"
    engine = sqlalchemy.create_engine(source.url)
    try:
        with engine.connect() as connection:
            return pd.read_sql_query(sqlalchemy.text(sql), connection)
    except (sqlalchemy.exc.SQLAlchemyError, pd.errors.DatabaseError) as error:
        cause = error.__cause__ or error
        detail = str(getattr(cause, "orig", None) or cause).splitlines()[0]
        raise LoadError(f"{source.display_name}: the database refused the read: {detail}") from None
    finally:
        engine.dispose()


def _quoted(table: str) -> str:
    """A table name, possibly schema-qualified, quoted for SQL."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in table.split("."))
