"""Builtin plugin: CSV dispensing exports (comma, semicolon, tab or pipe separated).

Recognised columns (header names are case-insensitive; aliases in
:data:`b12drugs.read.tabular.ALIASES`):

==============  ==============================================================
patient_id      patient identifier [patient, patientid, mrn, member_id]
rx_id           order/prescription id [order_id, rx_number, prescription_id, id]
drug_name       drug text as the system prints it [drug, medication, description]
rxcui           RxNorm concept id [rxnorm, rxnorm_code]
ndc             NDC, any layout (normalised to 11 digits) [ndc11, ndc_code]
atc             WHO ATC code [atc_code, who_atc]
status          order status (active, stopped, completed, cancelled, ...)
start_date      ISO date the drug was started [fill_date, date_written, written_date]
days_supply     days of supply of this fill [days]
daily_dose_mg   daily dose in mg, when known (used by dose-dependent classes)
route           route of administration [route_of_administration]
birth_date      patient birth date, ISO [dob, date_of_birth]
sex             patient sex [gender]
diet            omnivore | vegetarian | vegan
conditions      patient conditions, ``;``-separated text or ``SYSTEM:CODE`` items
==============  ==============================================================

At least one of ``drug_name``, ``rxcui``, ``ndc`` and ``atc`` must be present.  The
delimiter is taken from the header line.

Why pyarrow's CSV reader: it streams a file in blocks of a few MiB in native code,
handles quoted fields (also with line breaks in them) and every line ending (``\\n``,
``\\r\\n`` and a bare ``\\r``, mixed in one file), and it hands each row it cannot
split into the header's width to a callback with the row's physical line number, so
that a bad row is rejected as ``file:line`` and reading goes on.  Its batches are Arrow
memory that polars takes over without a copy (:mod:`b12drugs.read.tabular`).

Line numbers are physical lines (the header is line 1): each row's line follows from
the rows before it, the line breaks inside their quoted fields and the rejected lines
between them.  Blank lines are not records.

Text encoding: bytes are taken as UTF-8 where they are, and bytes that are not UTF-8
as Windows-1252 (Latin-1 for the five bytes Windows-1252 leaves undefined), before
the reader sees them (:class:`~b12drugs.read.encoding.Utf8Text`); an ``info`` notice
says so once per file.  UTF-16 files (with a BOM)
and ``--encoding`` are decoded before the reader sees them
(:mod:`b12drugs.read.encoding`).
"""

from __future__ import annotations

import bisect
import csv
import io
import itertools
from collections.abc import Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any

from ..errors import InputError
from ..hookspecs import hookimpl
from ..models import Notice
from ..records import InputFormat, Record
from .columns import DRUG_COLUMNS, delimiter, header_columns

if TYPE_CHECKING:
    import polars as pl

    from .tabular import TableBatch

#: Bytes of the file read and parsed at once.
BLOCK_BYTES = 16 << 20


def sniff(head: bytes, filename: str) -> float:
    first = head.split(b"\n", 1)[0].split(b"\r", 1)[0].lower()
    if not first or first.lstrip()[:1] in (b"{", b"[", b"<") or first.startswith(b"msh|"):
        return 0.0
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = first.decode("cp1252", "replace")
    try:
        cols = header_columns(next(csv.reader([text], delimiter=delimiter(text))))
    except (csv.Error, StopIteration):  # e.g. NUL bytes
        return 0.0
    if any(c in cols for c in DRUG_COLUMNS):
        return 0.9
    if filename.lower().endswith((".csv", ".tsv")):
        return 0.5
    return 0.0


class _Lines:
    """Works out each row's physical line as batches come (see the module doc)."""

    def __init__(self) -> None:
        self.next = 2  # the line the next row starts on
        #: rows the reader refused, by line: (line, fields, text), in reading order
        self.refused: list[tuple[int, int, str]] = []

    def of(self, n: int, breaks: list[int] | None,
           ) -> tuple[list[int], list[tuple[int, int, str]]]:
        """Lines of a batch's ``n`` rows (``breaks``: line breaks inside each row's
        fields, None for none), and the refused rows that stand before the batch's end."""
        start = self.next
        if breaks is None:
            lines = list(range(start, start + n))
            end = start + n
        else:
            lines = [start + i + before for i, before in
                     enumerate(itertools.accumulate(breaks, initial=0))][:n]
            end = (lines[-1] + 1 + breaks[-1]) if n else start
        before: list[tuple[int, int, str]] = []
        if self.refused:
            pending = sorted(self.refused)
            while pending and pending[0][0] <= (lines[-1] if lines else start - 1):
                line, fields, text = pending.pop(0)
                before.append((line, fields, text))
                span = 1 + _breaks(text)
                at = bisect.bisect_left(lines, line)
                lines[at:] = [x + span for x in lines[at:]]
                end += span
            self.refused = pending
        self.next = end
        return lines, before


def _breaks(text: str) -> int:
    return text.count("\n") + text.count("\r") - text.count("\r\n")


def read_batches(stream: IO[bytes], source: str) -> Iterator[TableBatch | Notice]:
    """The file's rows as checked batches (:func:`~b12drugs.read.tabular.checked`),
    with an ``info`` notice when some bytes were not UTF-8.

    :raises InputError: no header line, or no drug column in it.
    """
    import polars as pl
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from .encoding import Utf8Text, as_utf8
    from .tabular import TableBatch, checked

    if not hasattr(stream, "peek"):
        stream = io.BufferedReader(stream)  # type: ignore[arg-type,type-var]
    first = _header_line(stream, source)
    if not first.strip():
        raise InputError("empty file", source)
    header_text = as_utf8(first).lstrip("\ufeff").rstrip("\r\n")
    delim = delimiter(header_text)
    try:
        header = next(csv.reader([header_text], delimiter=delim))
    except (csv.Error, StopIteration) as exc:
        raise InputError(f"unreadable header: {exc}", f"{source}:1") from None
    cols = header_columns(header)
    if not any(c in cols for c in DRUG_COLUMNS):
        raise InputError(
            f"no drug column in the header (need one of drug_name, rxcui, ndc, atc; found "
            f"{', '.join(h.strip() for h in header[:20])})", f"{source}:1")
    width = len(header)
    names = [f"c{i}" for i in range(width)]
    lines = _Lines()
    if not stream.peek(1):  # type: ignore[attr-defined]
        return
    text = Utf8Text(stream)

    def refused(row: Any) -> str:
        if row.text.strip():  # a blank line is no record
            lines.refused.append((row.number + 1, row.actual_columns, row.text))
        return "skip"

    try:
        reader = _open(pacsv, pa, text, names, delim, refused)
    except pa.ArrowInvalid as exc:
        if "Empty CSV" in str(exc):  # nothing but line breaks after the header
            return
        raise InputError(f"unreadable CSV: {exc}", source) from None
    wanted = {canon: names[i] for canon, i in cols.items()}
    said = False
    held: pl.DataFrame | None = None  # the last batch, until the file's end is known
    try:
        for batch in reader:
            if text.fell_back and not said:
                said = True
                yield _encoding_notice(source)
            # no quote read yet: no field can hold a line break
            raw = _frame(batch, wanted, width, delim, names, lines, text.quotes > 0)
            if held is not None and held.height:
                yield TableBatch(checked(held), source)
            held = raw
    except pa.ArrowInvalid as exc:  # e.g. a row too long for a block
        raise InputError(f"unreadable CSV after line {lines.next - 1}: {exc}", source) from None
    if text.fell_back and not said:
        yield _encoding_notice(source)
    if lines.refused:
        refused_rows = _with_refused(pl.DataFrame(schema={"_line": pl.Int64}),
                                     sorted(lines.refused), width)
        held = refused_rows if held is None else pl.concat(
            [held, refused_rows], how="diagonal_relaxed").sort("_line")
        lines.refused = []
    if held is not None and held.height:
        if text.quotes % 2:
            held = _open_at_end(held)
        yield TableBatch(checked(held), source)


def _open(pacsv: Any, pa: Any, text: Any, names: list[str], delim: str, refused: Any) -> Any:
    """pyarrow's streaming reader: every cell as text, blank cells null, rows that do not
    split into the header's width handed to ``refused``."""
    return pacsv.open_csv(
        text,
        read_options=pacsv.ReadOptions(column_names=names, block_size=BLOCK_BYTES,
                                       use_threads=False),
        parse_options=pacsv.ParseOptions(delimiter=delim, newlines_in_values=True,
                                         ignore_empty_lines=False,
                                         invalid_row_handler=refused),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=True,
            quoted_strings_can_be_null=True, null_values=[""]),
    )


def _header_line(stream: IO[bytes], source: str) -> bytes:
    """The first line, ended by LF, CRLF or a bare CR (old Mac exports)."""
    head = stream.peek(1 << 16)[: 1 << 16]  # type: ignore[attr-defined]
    ends = [i for i in (head.find(b"\n"), head.find(b"\r")) if i >= 0]
    if not ends:
        line = stream.readline(1 << 20)
        if len(line) >= 1 << 20:
            raise InputError("the header line is longer than 1 MiB", f"{source}:1")
        return line
    end = min(ends) + 1
    if head[end - 1:end + 1] == b"\r\n":
        end += 1
    return stream.read(end)


def _frame(batch: Any, wanted: dict[str, str], width: int, delim: str, names: list[str],
           lines: _Lines, quoted: bool) -> pl.DataFrame:
    """One batch of the reader as raw text columns with each row's line (``quoted``:
    whether the file has held a quote so far, which a line break in a field needs)."""
    import polars as pl

    n = batch.num_rows
    breaks = _row_breaks(batch) if n and quoted else None
    row_lines, before = lines.of(n, breaks)
    raw = pl.DataFrame({**{canon: pl.from_arrow(batch.column(name))
                           for canon, name in wanted.items()}, "_line": row_lines},
                       schema_overrides={"_line": pl.Int64})
    if breaks is not None:
        raw = _swallowed(raw, batch, breaks, width, delim, names)
    if before:
        raw = _with_refused(raw, before, width)
    blank = pl.all_horizontal(pl.col(c).is_null() for c in wanted)  # a blank line
    keep = ~blank | pl.col("_reject").is_not_null() if "_reject" in raw.columns else ~blank
    return raw.filter(keep)


def _open_at_end(held: pl.DataFrame) -> pl.DataFrame:
    """The file ends inside a quoted field (an odd number of quotes): its last row is
    where the quote was opened, and it swallowed the lines after it."""
    import polars as pl

    last = int(held["_line"].max())  # type: ignore[arg-type]
    reason = (f"unbalanced quote: a quoted field runs from line {last} to the end of the "
              "file; the rows on those lines were not read")
    if "_reject" not in held.columns:
        held = held.with_columns(pl.lit(None, pl.String).alias("_reject"))
    return held.with_columns(
        pl.when((pl.col("_line") == last) & pl.col("_reject").is_null()).then(pl.lit(reason))
        .otherwise(pl.col("_reject")).alias("_reject"))


def _row_breaks(batch: Any) -> list[int] | None:
    """Line breaks inside each row's fields (all columns: any may hold a quoted one),
    or None when no field holds one (nearly always)."""
    import pyarrow.compute as pc

    total = None
    for column in batch.columns:
        if not pc.any(pc.match_substring_regex(column, "[\\r\\n]")).as_py():
            continue
        count = pc.subtract(pc.add(pc.count_substring(column, "\n"),
                                   pc.count_substring(column, "\r")),
                            pc.count_substring(column, "\r\n"))
        total = count if total is None else pc.add(total, count)
    if total is None:
        return None
    return [int(v or 0) for v in total.to_pylist()]


def _swallowed(raw: pl.DataFrame, batch: Any, breaks: list[int], width: int, delim: str,
               names: list[str]) -> pl.DataFrame:
    """Reject rows whose quoted field holds lines that split into whole rows: the mark
    of a quote left open, which reads the rows after it into one field.  (Genuine
    multi-line cells, an address or a note, rarely hold a header's width of
    delimiters per line.)"""
    reasons: list[str | None] = [None] * raw.height
    lines = raw["_line"].to_list()
    for i, extra in enumerate(breaks):
        if not extra:
            continue
        cells = [batch.column(name)[i].as_py() or "" for name in names]
        if any(len(part.split(delim)) >= width for cell in cells
               for part in cell.replace("\r\n", "\n").replace("\r", "\n").split("\n")[1:]):
            span = sum(_breaks(cell.rstrip("\r\n")) for cell in cells)
            reasons[i] = (f"unbalanced quote: a quoted field runs over lines {lines[i]}-"
                          f"{lines[i] + span}; the rows on those lines were not read")
    if not any(reasons):
        return raw
    import polars as pl

    return raw.with_columns(pl.Series("_reject", reasons, pl.String))


def _with_refused(raw: pl.DataFrame, refused: list[tuple[int, int, str]],
                  width: int) -> pl.DataFrame:
    """The batch with the rows the reader refused put in at their lines."""
    import polars as pl

    rows = pl.DataFrame({
        "_line": [line for line, _, _ in refused],
        "_reject": [_refusal(line, fields, text, width) for line, fields, text in refused],
    }, schema={"_line": pl.Int64, "_reject": pl.String})
    if "_reject" not in raw.columns:
        raw = raw.with_columns(pl.lit(None, pl.String).alias("_reject"))
    return pl.concat([raw, rows], how="diagonal_relaxed").sort("_line")


def _refusal(line: int, fields: int, text: str, width: int) -> str:
    breaks = _breaks(text.rstrip("\r\n"))
    if breaks and '"' in text:
        return (f"unbalanced quote: a quoted field runs over lines {line}-{line + breaks}; "
                "the rows on those lines were not read")
    return f"{fields} fields, header has {width}"


def _encoding_notice(source: str) -> Notice:
    return Notice(kind="info", source=source[:256] or None,
                  message="some cells are not UTF-8: they were read as Windows-1252")


def parse(stream: IO[bytes], source: str) -> Iterator[Record]:
    """The file's rows as records, for the record engine (the same batches the
    columnar engine reads, row by row)."""
    from .tabular_records import records_of

    return records_of(read_batches(stream, source))


@hookimpl(trylast=True)
def b12drugs_input_formats() -> Iterable[InputFormat]:
    return [
        InputFormat(
            name="csv",
            description="CSV dispensing export (columns: patient_id, rx_id, drug_name, rxcui, "
            "ndc, atc, status, start_date, days_supply, birth_date, conditions ...)",
            parse=parse,
            sniff=sniff,
            extensions=(".csv", ".tsv", ".txt"),
            read_table=read_batches,
        )
    ]
