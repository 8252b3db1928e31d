"""Builtin plugin: CSV dispensing exports.

Recognised columns (header names are case-insensitive; aliases in brackets):

==============  ==============================================================
patient_id      patient identifier [patient, patientid, mrn, member_id]
rx_id           order/prescription id [order_id, rx_number, prescription_id, id]
drug_name       drug text as the system prints it [drug, medication, description]
rxcui           RxNorm concept id [rxnorm, rxnorm_code]
ndc             NDC, any layout (normalised to 11 digits) [ndc11, ndc_code]
status          order status (active, stopped, completed, cancelled, ...)
start_date      ISO date the drug was started [fill_date, date_written, written_date]
days_supply     days of supply of this fill [days]
daily_dose_mg   daily dose in mg, when known (used by dose-dependent classes)
birth_date      patient birth date, ISO [dob, date_of_birth]
sex             patient sex
diet            omnivore | vegetarian | vegan
conditions      patient conditions, ``;``-separated text or ``SYSTEM:CODE`` items
==============  ==============================================================

At least one of ``drug_name``, ``rxcui`` and ``ndc`` must be present.  The delimiter
(comma, semicolon, tab or pipe) is taken from the header line.  Each data row becomes
one order (handed on in fast :class:`~b12drugs.models.OrderBlock` columns); a row that
cannot be read (wrong number of fields, a bad date, bytes that are not UTF-8, an over-long field)
becomes a rejection naming ``file:line`` and the reason, and reading goes on.

Lines are read in batches of about 64 KiB.  A batch without quotes whose every line has
the header's width (most exports) is split at the delimiter in one pass and its columns
taken as slices (:meth:`_Reader._split`); any other batch is read by the ``csv`` module,
which handles quoted fields, also those whose line breaks run into the next batch.  Both
read a file alike (a property-based test compares them).

Size bound, and its limit: an over-long field is rejected (the ``csv`` module's field
size limit), but a physical line is read whole before that check, so one huge line (no
line break for gigabytes) is held in memory once.  Bounding it would mean reading lines
in pieces in Python, off the C fast path every row takes; callers that accept untrusted
uploads should bound the input's total size.
"""

from __future__ import annotations

import csv
import functools
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date
from typing import IO, Any, NamedTuple, TypeVar

from ..errors import InputError
from ..hookspecs import hookimpl
from ..models import (
    MAX_TEXT,
    NDC_SYSTEM,
    RXNORM_SYSTEM,
    Coding,
    Condition,
    OrderBlock,
    OrderRow,
    PatientContext,
    Rejection,
    SourceLocation,
    normalize_ndc,
)
from ..records import InputFormat, Record

ALIASES: dict[str, tuple[str, ...]] = {
    "patient_id": ("patient_id", "patient", "patientid", "mrn", "member_id"),
    "rx_id": ("rx_id", "order_id", "rx_number", "prescription_id", "id"),
    "drug_name": ("drug_name", "drug", "medication", "description", "drug_description"),
    "rxcui": ("rxcui", "rxnorm", "rxnorm_code"),
    "ndc": ("ndc", "ndc11", "ndc_code"),
    "status": ("status", "order_status"),
    "start_date": ("start_date", "fill_date", "date_written", "written_date"),
    "days_supply": ("days_supply", "days"),
    "daily_dose_mg": ("daily_dose_mg",),
    "birth_date": ("birth_date", "dob", "date_of_birth"),
    "sex": ("sex", "gender"),
    "diet": ("diet",),
    "conditions": ("conditions", "diagnoses"),
}
DRUG_COLUMNS = ("drug_name", "rxcui", "ndc")
DIETS = ("omnivore", "vegetarian", "vegan")
_DIET_VALUES = frozenset(("", *DIETS))
_T = TypeVar("_T")
MAX_LINE_FIELDS = 200


def _columns(header: list[str]) -> dict[str, int]:
    lowered = [h.strip().lower().lstrip("\ufeff") for h in header]
    found: dict[str, int] = {}
    for canon, names in ALIASES.items():
        for name in names:
            if name in lowered:
                found[canon] = lowered.index(name)
                break
    return found


def sniff(head: bytes, filename: str) -> float:
    first = head.split(b"\n", 1)[0].lower()
    if not first or first.lstrip()[:1] in (b"{", b"[", b"<") or first.startswith(b"msh|"):
        return 0.0
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        return 0.0
    delim = _delimiter(text)
    try:
        cols = _columns(next(csv.reader([text], delimiter=delim)))
    except csv.Error:  # e.g. NUL bytes (refused by the csv module before Python 3.11)
        return 0.0
    if any(c in cols for c in DRUG_COLUMNS):
        return 0.9
    if filename.lower().endswith((".csv", ".tsv")):
        return 0.5
    return 0.0


def _delimiter(line: str) -> str:
    counts = {d: line.count(d) for d in (",", ";", "\t", "|")}
    return max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","


def _decoded(first: int, raw: list[bytes]) -> tuple[list[str], set[int]]:
    """Lines as text, and the numbers of those that are not UTF-8 (decoded with
    replacement characters; one bad byte rejects one row, not the file).  ``first`` is
    the number of the first line."""
    try:
        return list(map(bytes.decode, raw)), set()  # one C loop: the usual case
    except UnicodeDecodeError:
        pass
    out, bad = [], set()
    for n, line in enumerate(raw, first):
        try:
            out.append(line.decode())
        except UnicodeDecodeError:
            bad.add(n)
            out.append(line.decode("utf-8", "replace"))
    return out, bad


class _Block(NamedTuple):
    """Good rows of the file as columns: ``columns[i][r]`` is field ``i`` of row ``r``,
    which starts on line ``starts[r]``.  ``short``: no line is longer than 256 bytes, so
    no field can exceed a length limit (the checks are skipped)."""

    starts: Sequence[int]
    columns: list[Sequence[str]]
    short: bool = False

    def rows(self) -> list[tuple[str, ...]]:
        return list(zip(*self.columns))  # noqa: B905 (equal lengths)


@functools.lru_cache(maxsize=1024)
def _conditions(value: str) -> tuple[Condition, ...]:
    """Parse a conditions cell.  Cached: an export repeats few distinct condition lists,
    and the (frozen) Condition objects are then shared by the patients that have them."""
    out = []
    for item in value.split(";"):
        item = item.strip()
        if not item:
            continue
        system, sep, code = item.partition(":")
        if sep and system.lower() in ("snomed", "sct", "icd10", "icd-10", "icd10cm"):
            out.append(Condition(system=system.lower(), code=code.strip()))
        else:
            out.append(Condition(text=item))
    return tuple(out)


def _date(value: str, column: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise ValueError(f"{column}: {value[:40]!r} is not an ISO date (YYYY-MM-DD)") from None


def _plain_dates(values: Iterable[str]) -> bool:
    """True when every value is an ISO date as it is (no blank, no padding): then each
    passes :func:`_date`.  One C loop that touches nothing but the values; a set of the
    valid cells seen so far is the fallback, but probing it for every row cost 0.25 s
    per 1,000,000 rows (a big table, cold in the CPU caches)."""
    try:
        return all(map(date.fromisoformat, values))
    except ValueError:  # a blank, a padded or a bad value: the exact check decides
        return False


def _bounded_int(value: str, column: str, high: int) -> int | None:
    if not value:
        return None
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"{column}: {value[:40]!r} is not a whole number") from None
    if not 0 <= n <= high:
        raise ValueError(f"{column}: {n} is outside 0..{high}")
    return n


def _dose(value: str) -> float | None:
    if not value:
        return None
    try:
        n = float(value)
    except ValueError:
        raise ValueError(f"daily_dose_mg: {value[:40]!r} is not a number") from None
    if not n >= 0:  # also refuses NaN
        raise ValueError(f"daily_dose_mg: {value[:40]!r} must be 0 or more")
    return n


def _check_patient(fields: tuple[str, ...]) -> None:
    """Validate the raw patient columns cheaply; the context itself is built later,
    only for patients with findings (see :class:`~b12drugs.models.OrderRow`)."""
    birth, _, diet, conditions = map(str.strip, fields)
    _date(birth, "birth_date")
    if diet and diet.lower() not in DIETS:
        raise ValueError(f"diet: {diet[:40]!r} is not one of {', '.join(DIETS)}")
    if len(conditions) > MAX_TEXT:
        raise ValueError(f"conditions: longer than {MAX_TEXT} characters")


def make_patient(pid: str, fields: tuple[str, ...], where: SourceLocation) -> PatientContext:
    """Build a patient context from the raw CSV patient cells (birth, sex, diet,
    conditions); they are kept unstripped so that rows without findings cost nothing."""
    birth, sex, diet, conditions = map(str.strip, fields)
    # the model's own validator: model_validate without its Python frame (hot path)
    context: PatientContext = PatientContext.__pydantic_validator__.validate_python({
        "id": pid,
        "birth_date": _date(birth, "birth_date"),
        "sex": sex or None,
        "diet": diet.lower() or None,
        "conditions": _conditions(conditions),
        "source": where,
    })
    return context


class _Memo(dict[str, _T]):
    """``raw value -> converted value``, converting each distinct value once.

    A dispensing export repeats few distinct dates, day counts, statuses and birth
    dates across millions of rows, so looking them up (``map(memo.__getitem__,
    column)``, a C loop) is several times cheaper than parsing every cell.  The
    converter is the slow path's own function, so both paths agree; it raises
    ``ValueError`` for a bad value, which sends the chunk to the slow path.  Bounded: past
    ``limit`` distinct values new ones are converted but no longer remembered.  Keys are
    raw cells; the converter sees them stripped (so columns need no strip pass).
    """

    def __init__(self, convert: Callable[[str], _T], limit: int = 100_000):
        super().__init__()
        self.convert = convert
        self.limit = limit

    def __missing__(self, raw: str) -> _T:
        value = self.convert(raw.strip())
        if len(self) < self.limit:
            self[raw] = value
        return value


def _status(value: str) -> str | None:
    if not value:
        return None
    status = value.lower()
    if len(status) > 64:
        raise ValueError("status: longer than 64 characters")
    return status


class _Reader:
    """One CSV file: header, columns, blocks of rows (split or read by the ``csv``
    module, see :meth:`blocks`), and two ways to turn rows into orders.

    ``convert_block`` is the fast path: column-wise conversion of a block of rows with
    C-level loops (``map`` over columns, memoised conversions), which raises at the
    first problem; the block is then redone row by row with ``convert``, which names
    the row and the reason.  Both give the same result for good rows (a test checks
    this).
    """

    #: Bytes of lines read at once: one block on the fast path (a few hundred rows).
    BATCH_BYTES = 64 * 1024
    #: Rows per block on the ``csv`` module's path; small blocks keep few rows alive at
    #: once, which matters more to the garbage collector than per-block overhead.
    CHUNK = 512

    def __init__(self, stream: IO[bytes], source: str):
        self.stream = stream
        raw = stream.readline()
        if not raw:
            raise InputError("empty file", source)
        first = raw.decode("utf-8", "replace").lstrip("\ufeff")
        self.delim = _delimiter(first)
        self.delim_bytes = self.delim.encode()
        self.open_quote: int | None = None  # see _csv_blocks
        try:
            header = next(csv.reader([first], delimiter=self.delim))
        except csv.Error as exc:
            raise InputError(f"unreadable header: {exc}", f"{source}:1") from None
        cols = _columns(header)
        if not any(c in cols for c in DRUG_COLUMNS):
            raise InputError(
                f"no drug column in the header (need one of {', '.join(DRUG_COLUMNS)}; "
                f"found {', '.join(h.strip() for h in header[:20])})",
                f"{source}:1",
            )
        self.width = len(header)
        self.file = source[:256]
        self.col = {k: cols.get(k) for k in ALIASES}
        self.patient_cols = (self.col["birth_date"], self.col["sex"], self.col["diet"],
                             self.col["conditions"])
        self.has_patient = any(i is not None for i in self.patient_cols)
        self.rxcui_codings: dict[str, Coding] = {}
        self.ndc_codings: dict[str, Coding] = {}
        self.start_dates = _Memo(functools.partial(_date, column="start_date"))
        self.days = _Memo(functools.partial(_bounded_int, column="days_supply", high=36500))
        self.doses = _Memo(_dose)
        self.statuses = _Memo(_status)
        self.valid_births: set[str] = set()  # raw birth cells already checked

    # -- rows ------------------------------------------------------------------
    def _batches(self) -> Iterator[tuple[int, list[bytes]]]:
        """``(number of the first line, raw lines)`` of about ``BATCH_BYTES`` each."""
        first = 2
        while raw := self.stream.readlines(self.BATCH_BYTES):
            yield first, raw
            first += len(raw)

    def blocks(self) -> Iterator[_Block | Rejection]:
        """The data rows as blocks of columns, and a rejection for each unreadable row,
        in file order.  Line numbers are physical lines (the header is line 1).

        Each batch of lines takes the fast path when it can (:meth:`_split`: no quotes,
        every line the header's width; what most exports are), and the ``csv`` module
        otherwise (:meth:`_parsed`).
        """
        batches = self._batches()
        for first, raw in batches:
            longest = max(map(len, raw))
            columns = self._split(raw, longest)
            if columns is not None:
                yield _Block(range(first, first + len(raw)), columns, longest <= 256)
            else:
                yield from self._parsed(first, raw, batches)

    def _split(self, raw: list[bytes], longest: int | None = None,
               ) -> list[Sequence[str]] | None:
        """The batch's columns by splitting at the delimiter, when that reads exactly as
        the ``csv`` module would: every line has the header's width of fields (counted
        on the bytes, one C loop), and there is no quote (no quoted field, no line break
        inside a field), no carriage return but at a line's end, no NUL, no bad UTF-8
        and no line over the csv module's field size limit.  Otherwise None.

        The whole batch is split at once and each column is a slice of the result:
        no Python step and no list per row.  ``longest``: the longest line's length,
        when the caller has it.
        """
        width, delim = self.width, self.delim
        if longest is None:
            longest = max(map(len, raw))
        if width < 2 or longest > csv.field_size_limit():
            return None  # width 1: a blank line would be a row (the csv module drops it)
        counts = list(map(bytes.count, raw, itertools.repeat(self.delim_bytes)))
        if counts.count(width - 1) != len(counts):
            return None
        # Each line's end becomes a field end.  The csv module ends a row at the first
        # CR or LF and ignores the ones that follow, so a line's trailing run of them
        # goes; a CR anywhere else (it would end a row mid-line) is left to the csv module.
        data = self.delim_bytes.join(map(bytes.rstrip, raw, itertools.repeat(b"\r\n")))
        if b'"' in data or b"\0" in data or b"\r" in data:
            return None
        try:
            text = data.decode()
        except UnicodeDecodeError:
            return None
        flat = text.split(delim)
        if len(flat) != width * len(raw):
            return None
        return [flat[i::width] for i in range(width)]

    def _parsed(self, first: int, raw: list[bytes], batches: Iterator[tuple[int, list[bytes]]],
                ) -> Iterator[_Block | Rejection]:
        """A batch read by the ``csv`` module (quoted fields, odd lines).  When its last
        row holds a quoted field still open at the batch's end, the field goes on in the
        next batch: the rows before it are final, and reading starts again at that row
        with the next batch added."""
        lines, bad = _decoded(first, raw)
        while True:
            out = list(self._csv_blocks(lines, first, bad))
            open_at = self.open_quote
            if open_at is None or (more := next(batches, None)) is None:
                yield from out
                return
            yield from out[:-1]  # the last one is the open row's rejection
            lines, first = lines[open_at - first:], open_at
            more_lines, more_bad = _decoded(*more)
            lines += more_lines
            bad = {n for n in bad if n >= first} | more_bad

    def _csv_blocks(self, lines: list[str], first: int, bad: set[int],
                    ) -> Iterator[_Block | Rejection]:
        """``lines`` (line ``first`` onwards) through the ``csv`` module, in blocks of up
        to ``CHUNK`` rows.

        A quoted field may span lines; the ``csv`` module keeps those line breaks in the
        field, so a row spans ``1 + (newlines in its fields)`` lines.  Blocks without such
        rows (almost all) are recognised by the reader's line count alone.
        """
        # strict: a quote left open at the end of the file is an error, not a field that
        # silently swallows every following line.
        reader = csv.reader(lines, delimiter=self.delim, strict=True)
        last = first - 1  # the last physical line consumed
        self.open_quote = None
        while True:
            rows: list[list[str]] = []
            error: csv.Error | None = None
            try:  # extend keeps the rows read before an error
                rows.extend(itertools.islice(reader, self.CHUNK))
            except csv.Error as exc:
                error = exc
            end = first - 1 + reader.line_num
            multiline = not (error is None and end - last == len(rows))
            if not multiline:
                starts = list(range(last + 1, end + 1))
                after = end + 1
            else:
                starts, after = _row_starts(rows, last + 1)
            if rows:
                yield from self._checked(starts, rows, after, bad, multiline)
            if error is not None:
                if "unexpected end of data" in str(error):  # always the last row
                    self.open_quote = after
                yield _reject(self.file, after, _unreadable(error, after, end))
            elif len(rows) < self.CHUNK:
                return
            last = end

    def _checked(self, starts: list[int], rows: list[list[str]], after: int,
                 bad: set[int], multiline: bool = False) -> Iterator[_Block | Rejection]:
        """The block as it is when every row has the header's width, no line has bad
        bytes and no row spans lines; otherwise row by row: blank lines dropped, bad rows
        rejected (a row whose quoted field swallowed what look like further rows too)."""
        width = self.width
        if bad:
            bad = {n for n in bad if starts[0] <= n < after}
        if not bad and not multiline and all(map(width.__eq__, map(len, rows))):
            yield _Block(starts, list(zip(*rows)))  # noqa: B905 (equal widths)
            return
        ends = [s - 1 for s in starts[1:]] + [after - 1]
        good_starts: list[int] = []
        good_rows: list[list[str]] = []
        for start, end, row in zip(starts, ends, rows, strict=True):
            reason = None
            if end > start and self._swallows_rows(row):
                reason = (f"unbalanced quote: a quoted field runs over lines {start}-{end}; "
                          "the rows on those lines were not read")
            elif len(row) != width:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                reason = f"{len(row)} fields, header has {width}"
            elif bad and any(n in bad for n in range(start, end + 1)):
                reason = "bytes that are not valid UTF-8"
            if reason is None:
                good_starts.append(start)
                good_rows.append(row)
                continue
            if good_rows:
                yield _Block(good_starts, list(zip(*good_rows)))  # noqa: B905
                good_starts, good_rows = [], []
            yield _reject(self.file, start, reason)
        if good_rows:
            yield _Block(good_starts, list(zip(*good_rows)))  # noqa: B905

    def _swallows_rows(self, row: list[str]) -> bool:
        """Whether a quoted field spanning lines holds a line that splits, at the
        delimiter, into a whole row: the mark of a quote left open, which makes the csv
        module read the following rows into one field.  (Genuine multi-line cells, such
        as an address or a note, rarely hold a header's width of delimiters per line.)"""
        width, delim = self.width, self.delim
        if width < 2:
            return False
        return any(len(line.split(delim)) >= width
                   for f in row if "\n" in f for line in f.split("\n")[1:])

    def rows(self) -> Iterator[tuple[int, Sequence[str]] | Rejection]:
        """``(first line, fields)`` per data row, or a rejection for an unreadable one."""
        for item in self.blocks():
            if isinstance(item, Rejection):
                yield item
            else:
                yield from zip(item.starts, item.rows(), strict=True)

    # -- codings ---------------------------------------------------------------
    def _rxcui(self, code: str) -> Coding:
        c = self.rxcui_codings.get(code)
        if c is None:
            if not (code.isdigit() and len(code) <= 10):
                raise ValueError(f"rxcui: {code[:40]!r} is not an RxCUI")
            c = self.rxcui_codings[code] = Coding(system=RXNORM_SYSTEM, code=code)
        return c

    def _ndc(self, raw: str) -> Coding:
        c = self.ndc_codings.get(raw)
        if c is None:
            try:
                c = Coding(system=NDC_SYSTEM, code=normalize_ndc(raw))
            except ValueError as exc:
                raise ValueError(f"ndc: {exc}") from None
            self.ndc_codings[raw] = c
        return c

    def _codings(self, row: Sequence[str]) -> tuple[Coding, ...]:
        i_rxcui, i_ndc = self.col["rxcui"], self.col["ndc"]
        return self._codings_of(row[i_rxcui] if i_rxcui is not None else "",
                                row[i_ndc] if i_ndc is not None else "")

    def _codings_of(self, rxcui: str, ndc: str) -> tuple[Coding, ...]:
        """The codings of a row's raw ``rxcui`` and ``ndc`` cells."""
        out: tuple[Coding, ...] = ()
        if code := rxcui.strip():
            out = (self._rxcui(code),)
        if raw := ndc.strip():
            out = (*out, self._ndc(raw))
        return out

    # -- slow path: one row, precise errors ------------------------------------
    def convert(self, start: int, row: Sequence[str]) -> OrderRow:
        col = self.col
        rx_id = row[col["rx_id"]].strip() if col["rx_id"] is not None else ""
        text = _opt(row, col["drug_name"])
        if text is not None and len(text) > MAX_TEXT:
            raise ValueError(f"drug_name: longer than {MAX_TEXT} characters")
        pid = _opt(row, col["patient_id"])
        if len(rx_id) > 256 or (pid is not None and len(pid) > 256):
            raise ValueError("rx_id/patient_id: longer than 256 characters")
        i_status = col["status"]
        status = _status(row[i_status].strip()) if i_status is not None else None
        fields = None
        if self.has_patient and pid:
            fields = tuple(row[i] if i is not None else "" for i in self.patient_cols)
            _check_patient(fields)
        i_start, i_days, i_dose = col["start_date"], col["days_supply"], col["daily_dose_mg"]
        return OrderRow(
            rx_id or f"{self.file}:{start}",
            pid,
            text,
            self._codings(row),
            status,
            _date(row[i_start].strip(), "start_date") if i_start is not None else None,
            _bounded_int(row[i_days].strip(), "days_supply", 36500) if i_days is not None
            else None,
            _dose(row[i_dose].strip()) if i_dose is not None else None,
            self.file,
            start,
            fields,
            make_patient if fields else None,
        )

    # -- fast path: a block at once --------------------------------------------
    def convert_chunk(self, chunk: list[tuple[int, Sequence[str]]]) -> list[OrderRow]:
        """:meth:`convert_block` for ``(first line, row)`` pairs (as :meth:`rows` gives),
        as rows."""
        block = _Block([s for s, _ in chunk], list(zip(*(r for _, r in chunk))))  # noqa: B905
        return list(self.convert_block(block).rows())

    def convert_block(self, block: _Block) -> OrderBlock:
        """Convert a block column by column; raises at the first bad value (the caller
        then converts row by row to name the row and the reason)."""
        starts, table = block.starts, block.columns
        n = len(starts)
        nothing: list[Any] = [None] * n
        short = block.short

        def column(name: str, limit: int = 0) -> list[str] | None:
            i = self.col[name]
            if i is None:
                return None
            values = list(map(str.strip, table[i]))
            if limit and not short and max(map(len, values)) > limit:
                raise ValueError(f"{name}: too long")
            return values

        def optional(values: list[str] | None) -> list[str | None]:
            """Empty cells as None (most columns are full: then the list as it is)."""
            if values is None:
                return nothing
            return values if all(values) else [v or None for v in values]  # type: ignore[return-value]

        def lookup(memo: _Memo[Any], name: str) -> list[Any]:
            i = self.col[name]
            return nothing if i is None else list(map(memo.__getitem__, table[i]))

        ids = column("rx_id", 256)
        if ids is None:
            ids = [f"{self.file}:{s}" for s in starts]
        elif not all(ids):
            ids = [i or f"{self.file}:{s}" for i, s in zip(ids, starts, strict=True)]
        texts = optional(column("drug_name", MAX_TEXT))
        pids = optional(column("patient_id", 256))
        codings: list[tuple[Coding, ...]] = [()] * n
        i_rxcui, i_ndc = self.col["rxcui"], self.col["ndc"]
        if i_rxcui is not None or i_ndc is not None:
            blank = itertools.repeat("", n)
            codings = list(map(self._codings_of,
                               table[i_rxcui] if i_rxcui is not None else blank,
                               table[i_ndc] if i_ndc is not None else blank))
        fields: list[tuple[str, ...] | None] = nothing
        if self.has_patient:
            cols = [table[i] if i is not None else ("",) * n for i in self.patient_cols]
            self._check_patients(cols, pids, short)
            fields = list(zip(*cols, strict=True))
            if not all(pids):
                fields = [f if p else None for f, p in zip(fields, pids, strict=True)]
        return OrderBlock(
            ids, pids, texts, codings, lookup(self.statuses, "status"),
            lookup(self.start_dates, "start_date"), lookup(self.days, "days_supply"),
            lookup(self.doses, "daily_dose_mg"), starts, fields, self.file,
            make_patient if self.has_patient else None)

    def _check_patients(self, cols: list[Sequence[str]], pids: list[str | None],
                        short: bool = False) -> None:
        """:func:`_check_patient` column-wise, for the rows with a patient id (raw cells:
        a conditions cell too long only with its blanks goes to the slow path, which
        decides)."""
        births, _, diets, conditions = cols
        if not all(pids):
            births, diets, conditions = (tuple(itertools.compress(c, pids))
                                         for c in (births, diets, conditions))
        valid = self.valid_births
        if not _plain_dates(births) and not valid.issuperset(births):
            for birth in set(births).difference(valid):
                _date(birth.strip(), "birth_date")  # raises for a bad one
                if len(valid) < 100_000:
                    valid.add(birth)
        if not {d.strip().lower() for d in set(diets)} <= _DIET_VALUES or \
                (not short and max(map(len, conditions), default=0) > MAX_TEXT):
            raise ValueError("a patient field is not valid")

    def records(self) -> Iterator[Record]:
        for item in self.blocks():
            if isinstance(item, Rejection):
                yield item
                continue
            try:
                yield self.convert_block(item)
            except (ValueError, TypeError, IndexError):
                yield from self._convert_rows(item.starts, item.rows())

    def _convert_rows(self, starts: Sequence[int], rows: list[tuple[str, ...]]) -> list[Record]:
        """The slow path for a block with a bad row: each row an order or a rejection."""
        out: list[Record] = []
        for start, row in zip(starts, rows, strict=True):
            rx_id = row[self.col["rx_id"]].strip() if self.col["rx_id"] is not None else ""
            try:
                out.append(self.convert(start, row))
            except ValueError as exc:
                out.append(_reject(self.file, start, str(exc), rx_id))
        return out


def _row_starts(rows: list[list[str]], first: int) -> tuple[list[int], int]:
    """First line of each row, and the line after the last, counting the line breaks
    kept inside quoted fields."""
    starts = []
    line = first
    for row in rows:
        starts.append(line)
        line += 1 + sum(f.count("\n") for f in row)
    return starts, line


def _unreadable(error: csv.Error, first: int, last: int) -> str:
    """The reason for a row the csv module refused (``first`` its first line, ``last``
    the last line read)."""
    if "unexpected end of data" in str(error):
        return (f"unbalanced quote: a quoted field runs from line {first} to the end of the "
                f"file (line {last}); the rows on those lines were not read")
    if last > first:
        return (f"unreadable CSV row spanning lines {first}-{last} (unbalanced quote?); "
                f"the rows on those lines were not read: {error}")
    return f"unreadable CSV row: {error}"


def _opt(row: Sequence[str], i: int | None) -> str | None:
    return (row[i].strip() or None) if i is not None else None


def parse(stream: IO[bytes], source: str) -> Iterator[Record]:
    """Yield an :class:`OrderBlock` per block of good rows (the fast path: the engine
    validates the rows that matter), and for a block holding a bad row one
    :class:`OrderRow` per good row and a :class:`Rejection` per bad one."""
    return _Reader(stream, source).records()


def _reject(source: str, line: int, reason: str, record_id: str | None = None) -> Rejection:
    return Rejection(
        location=SourceLocation(file=source[:256], line=line),
        reason=reason[:500],
        record_id=(record_id or None) and record_id[:256],
    )


@hookimpl(trylast=True)
def b12drugs_input_formats() -> Iterable[InputFormat]:
    return [
        InputFormat(
            name="csv",
            description="CSV dispensing export (columns: patient_id, rx_id, drug_name, rxcui, "
            "ndc, status, start_date, days_supply, birth_date, conditions ...)",
            parse=parse,
            sniff=sniff,
            extensions=(".csv", ".tsv", ".txt"),
        )
    ]
