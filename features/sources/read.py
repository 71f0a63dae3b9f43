"""Reading raw columns from a CSV file, a Parquet file or a SQL database.

CSV cells are read as text, so validation sees exactly what the file holds (leading zeros of ids
stay, an unparsable date stays visible); Parquet and SQL keep their own types.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from journeyguard.features.config.model import WHITESPACE, AttributeSource, SourceConfig
from journeyguard.features.errors import LoadError


def source_columns(source: SourceConfig) -> list[str]:
    """The column names the source offers, without reading its rows."""
    if source.path is None:
        return list(_read_sql(source, limit=0).columns)
    _check_exists(source.path)
    if _is_parquet(source.path, source.format):
        return pq.read_schema(source.path).names
    if source.separator == WHITESPACE:
        return list(_read_whitespace(source.path, source.encoding, nrows=0).columns)
    return _csv_reader(source.path, source.separator, source.encoding).schema.names


def read_columns(source: SourceConfig, columns: list[str]) -> pd.DataFrame:
    """The named columns of every row, in source order."""
    if source.path is None:
        return _read_sql(source)[columns]
    if _is_parquet(source.path, source.format):
        return _read_parquet(source.path, columns)
    return _read_csv(source.path, columns, source.separator, source.encoding)


def read_attribute_table(attributes: AttributeSource) -> pd.DataFrame:
    """A per-journey table of attributes: its key column and the listed columns, as text."""
    assert attributes.path is not None and attributes.key is not None
    _check_exists(attributes.path)
    wanted = [attributes.key, *attributes.columns]
    if _is_parquet(attributes.path, "auto"):
        available = pq.read_schema(attributes.path).names
    else:
        available = _csv_reader(attributes.path, attributes.separator, "utf-8").schema.names
    missing = [c for c in wanted if c not in available]
    if missing:
        raise LoadError(
            f"{attributes.path}: columns {missing} not found ([source.attributes]); "
            f"available columns: {available}"
        )
    if _is_parquet(attributes.path, "auto"):
        return _read_parquet(attributes.path, wanted)
    return _read_csv(attributes.path, wanted, attributes.separator, "utf-8")


def _check_exists(path: Path) -> None:
    if not path.is_file():
        raise LoadError(f"{path}: file not found")


def _is_parquet(path: Path, declared: str) -> bool:
    if declared != "auto":
        return declared == "parquet"
    return path.suffix.lower() in {".parquet", ".pq"}


def _read_parquet(path: Path, columns: list[str]) -> pd.DataFrame:
    """Text columns come dictionary-encoded (pandas categoricals): ids and step names repeat."""
    schema = pq.read_schema(path)
    text = [
        c
        for c in columns
        if pa.types.is_string(schema.field(c).type)
        or pa.types.is_large_string(schema.field(c).type)
    ]
    return pq.read_table(path, columns=columns, read_dictionary=text).to_pandas()


def _csv_reader(path: Path, separator: str, encoding: str) -> pa_csv.CSVStreamingReader:
    return pa_csv.open_csv(
        path,
        read_options=pa_csv.ReadOptions(encoding=encoding),
        parse_options=pa_csv.ParseOptions(delimiter=separator),
        convert_options=pa_csv.ConvertOptions(column_types={}, strings_can_be_null=False),
    )


def _read_csv(path: Path, columns: list[str], separator: str, encoding: str) -> pd.DataFrame:
    if separator == WHITESPACE:
        return _read_whitespace(path, encoding)[columns]
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


def _read_whitespace(path: Path, encoding: str, nrows: int | None = None) -> pd.DataFrame:
    # Columns padded with runs of spaces (CDNOW's format) need pandas' whitespace splitter.
    return pd.read_csv(
        path, sep=r"\s+", dtype=str, keep_default_na=False, encoding=encoding, nrows=nrows
    )


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
