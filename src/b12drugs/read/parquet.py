"""Builtin plugin: Parquet tables of dispensing rows (the usual data-lake export).

The columns are those of a CSV export (:mod:`b12drugs.read.delimited`), found by the
same names; typed columns are read as their values (a ``date`` column as ISO dates, an
integer ``days_supply`` as whole days).  Rows are read a batch at a time
(``iter_batches``), so a Parquet file of any size is read in bounded memory; a row's
location is ``file row N`` (1-based).

Parquet needs a seekable file: from standard input it is read into memory first.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import IO, TYPE_CHECKING

from ..errors import InputError
from ..hookspecs import hookimpl
from ..records import InputFormat, Record
from .columns import DRUG_COLUMNS, header_columns

if TYPE_CHECKING:
    import polars as pl

    from ..models import Notice
    from .tabular import TableBatch

MAGIC = b"PAR1"
BATCH_ROWS = 65_536


def sniff(head: bytes, filename: str) -> float:
    return 1.0 if head.startswith(MAGIC) else 0.0


def read_batches(stream: IO[bytes], source: str) -> Iterator[TableBatch | Notice]:
    """The file's rows as checked batches.

    :raises InputError: not a Parquet file, or no drug column.
    """
    import polars as pl
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .tabular import TableBatch, checked

    seekable = getattr(stream, "seekable", lambda: False)()
    try:
        handle = pq.ParquetFile(stream if seekable else io.BytesIO(stream.read()))
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"unreadable Parquet file: {exc}", source) from None
    names = handle.schema_arrow.names
    cols = header_columns(names)
    if not any(c in cols for c in DRUG_COLUMNS):
        raise InputError(f"no drug column (need one of drug_name, rxcui, ndc, atc; found "
                         f"{', '.join(names[:20])})", source)
    picked = {canon: names[i] for canon, i in cols.items()}
    first = 1
    try:
        for batch in handle.iter_batches(batch_size=BATCH_ROWS, columns=list(picked.values())):
            frame = pl.from_arrow(batch)
            assert isinstance(frame, pl.DataFrame)
            raw = frame.select(_as_text(pl.col(name), frame.schema[name]).alias(canon)
                               for canon, name in picked.items())
            raw = raw.with_columns(pl.int_range(first, first + raw.height, dtype=pl.Int64)
                                   .alias("_line"))
            first += raw.height
            yield TableBatch(checked(raw), source, "row")
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"unreadable Parquet data after row {first - 1}: {exc}", source) \
            from None


def _as_text(col: pl.Expr, dtype: object) -> pl.Expr:
    """A typed column as the text a CSV export would hold (whole floats as integers,
    dates and times as ISO)."""
    import polars as pl

    if isinstance(dtype, pl.Float32 | pl.Float64) or dtype in (pl.Float32, pl.Float64):
        return (pl.when(col == col.round()).then(col.cast(pl.Int64, strict=False)
                                                 .cast(pl.String))
                .otherwise(col.cast(pl.String)))
    if isinstance(dtype, pl.Datetime) or dtype == pl.Date:
        return col.dt.strftime("%Y-%m-%d")
    return col.cast(pl.String)


def parse(stream: IO[bytes], source: str) -> Iterator[Record]:
    """The file's rows as records (the record engine, ``--engine record``)."""
    from .tabular_records import records_of

    return records_of(read_batches(stream, source))


@hookimpl(trylast=True)
def b12drugs_input_formats() -> Iterable[InputFormat]:
    return [
        InputFormat(
            name="parquet",
            description="Parquet table of dispensing rows (the columns of a CSV export)",
            parse=parse, sniff=sniff, extensions=(".parquet", ".pq"),
            read_table=read_batches,
        )
    ]
