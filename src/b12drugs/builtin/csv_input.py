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
one order (a fast :class:`~b12drugs.models.OrderRow`); a row that cannot be read
(wrong number of fields, a bad date, bytes that are not UTF-8, an over-long field)
becomes a rejection naming ``file:line`` and the reason, and reading goes on.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import date
from typing import IO

from ..errors import InputError
from ..hookspecs import hookimpl
from ..models import (
    MAX_TEXT,
    NDC_SYSTEM,
    RXNORM_SYSTEM,
    Coding,
    Condition,
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


def _decoded_lines(stream: IO[bytes], bad: set[int]) -> Iterator[str]:
    """Decode line by line so one bad byte rejects one row, not the file."""
    for n, raw in enumerate(stream, 1):
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:
            bad.add(n)
            yield raw.decode("utf-8", "replace")


def _conditions(value: str) -> tuple[Condition, ...]:
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
    _date(fields[0], "birth_date")
    diet = fields[2].lower()
    if diet and diet not in DIETS:
        raise ValueError(f"diet: {fields[2][:40]!r} is not one of {', '.join(DIETS)}")
    if len(fields[3]) > MAX_TEXT:
        raise ValueError(f"conditions: longer than {MAX_TEXT} characters")


def make_patient(pid: str, fields: tuple[str, ...], where: SourceLocation) -> PatientContext:
    """Build a patient context from the CSV patient columns (birth, sex, diet, conditions)."""
    birth, sex, diet, conditions = fields
    return PatientContext(
        id=pid,
        birth_date=_date(birth, "birth_date"),
        sex=sex or None,
        diet=diet.lower() or None,  # type: ignore[arg-type]
        conditions=_conditions(conditions),
        source=where,
    )


class _Reader:
    """One CSV file: header, columns, and two ways to turn rows into orders.

    ``convert_chunk`` is the fast path: column-wise list comprehensions over a chunk
    of rows, which raise at the first problem; the chunk is then redone row by row
    with ``convert``, which names the row and the reason.  Both give the same result
    for good rows (a test checks this).
    """

    CHUNK = 2048

    def __init__(self, stream: IO[bytes], source: str):
        self.bad: set[int] = set()
        self.lines = _decoded_lines(stream, self.bad)
        try:
            first = next(self.lines)
        except StopIteration:
            raise InputError("empty file", source) from None
        first = first.lstrip("\ufeff")
        self.delim = _delimiter(first)
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
        self.checked_patients: set[tuple[str, ...]] = set()

    # -- rows ------------------------------------------------------------------
    def rows(self) -> Iterator[tuple[int, list[str]] | Rejection]:
        """``(first line, fields)`` per data row, or a rejection for an unreadable one.

        The reader counts physical lines after the header; a quoted field may span
        lines, so a row runs from the line after the previous row to the current line.
        """
        reader = csv.reader(self.lines, delimiter=self.delim)
        width, bad, prev = self.width, self.bad, 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield _reject(self.file, prev + 1, f"unreadable CSV row: {exc}")
                prev = reader.line_num + 1
                continue
            start, prev = prev + 1, reader.line_num + 1
            if len(row) != width:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                yield _reject(self.file, start, f"{len(row)} fields, header has {width}")
                continue
            if bad and any(n in bad for n in range(start, prev + 1)):
                yield _reject(self.file, start, "bytes that are not valid UTF-8")
                continue
            yield start, row

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

    def _codings(self, row: list[str]) -> tuple[Coding, ...]:
        i_rxcui, i_ndc = self.col["rxcui"], self.col["ndc"]
        out: tuple[Coding, ...] = ()
        if i_rxcui is not None and (code := row[i_rxcui].strip()):
            out = (self._rxcui(code),)
        if i_ndc is not None and (raw := row[i_ndc].strip()):
            out = (*out, self._ndc(raw))
        return out

    def _patient(self, fields: tuple[str, ...]) -> None:
        if fields not in self.checked_patients:
            _check_patient(fields)
            if len(self.checked_patients) > 100_000:
                self.checked_patients.clear()
            self.checked_patients.add(fields)

    # -- slow path: one row, precise errors ------------------------------------
    def convert(self, start: int, row: list[str]) -> OrderRow:
        col = self.col
        rx_id = row[col["rx_id"]].strip() if col["rx_id"] is not None else ""
        text = _opt(row, col["drug_name"])
        if text is not None and len(text) > MAX_TEXT:
            raise ValueError(f"drug_name: longer than {MAX_TEXT} characters")
        pid = _opt(row, col["patient_id"])
        if len(rx_id) > 256 or (pid is not None and len(pid) > 256):
            raise ValueError("rx_id/patient_id: longer than 256 characters")
        status = _opt(row, col["status"])
        if status is not None:
            status = status.lower()
            if len(status) > 64:
                raise ValueError("status: longer than 64 characters")
        fields = None
        if self.has_patient and pid:
            fields = tuple(row[i].strip() if i is not None else "" for i in self.patient_cols)
            self._patient(fields)
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

    # -- fast path: a chunk at once --------------------------------------------
    def convert_chunk(self, chunk: list[tuple[int, list[str]]]) -> list[OrderRow]:
        col, n = self.col, len(chunk)
        rows = [r for _, r in chunk]
        starts = [s for s, _ in chunk]

        def column(i: int | None) -> list[str] | list[None]:
            return [r[i].strip() for r in rows] if i is not None else [None] * n

        ids: list[str] = column(col["rx_id"])  # type: ignore[assignment]
        if col["rx_id"] is None or not all(ids):
            ids = [i or f"{self.file}:{s}" for i, s in zip(ids, starts, strict=True)]
        texts = [t or None for t in column(col["drug_name"])]
        pids = [p or None for p in column(col["patient_id"])]
        statuses = [t.lower() or None if t else None for t in column(col["status"])]
        if max(map(len, filter(None, texts)), default=0) > MAX_TEXT or max(
            map(len, ids), default=0) > 256 or max(map(len, filter(None, pids)), default=0) > 256 \
                or max(map(len, filter(None, statuses)), default=0) > 64:
            raise ValueError("a field is too long")
        fromiso = date.fromisoformat
        dates = [fromiso(d[:10]) if d else None for d in column(col["start_date"])]
        days = [int(d) if d else None for d in column(col["days_supply"])]
        if any(d is not None and not 0 <= d <= 36500 for d in days):
            raise ValueError("days_supply out of range")
        doses = [_dose(d) if d else None for d in column(col["daily_dose_mg"])]
        if col["rxcui"] is not None or col["ndc"] is not None:
            codings = [self._codings(r) for r in rows]
        else:
            codings = [()] * n
        if self.has_patient:
            cols = [column(i) if i is not None else [""] * n for i in self.patient_cols]
            fields: list[tuple[str, ...] | None] = [
                f if p else None for f, p in zip(zip(*cols, strict=True), pids, strict=True)]  # type: ignore[misc]
            for f in set(fields):
                if f is not None:
                    self._patient(f)
            makers = [make_patient if f else None for f in fields]
        else:
            fields = [None] * n
            makers = [None] * n
        return list(map(OrderRow._make, zip(ids, pids, texts, codings, statuses, dates, days,
                                            doses, [self.file] * n, starts, fields, makers,
                                            strict=True)))

    def records(self) -> Iterator[Record]:
        chunk: list[tuple[int, list[str]]] = []
        for item in self.rows():
            if type(item) is tuple:
                chunk.append(item)
                if len(chunk) >= self.CHUNK:
                    yield from self._flush(chunk)
                    chunk = []
            else:
                yield from self._flush(chunk)
                chunk = []
                yield item  # type: ignore[misc]
        yield from self._flush(chunk)

    def _flush(self, chunk: list[tuple[int, list[str]]]) -> Iterator[Record]:
        if not chunk:
            return
        try:
            yield from self.convert_chunk(chunk)
            return
        except (ValueError, TypeError, IndexError):
            pass
        for start, row in chunk:
            rx_id = row[self.col["rx_id"]].strip() if self.col["rx_id"] is not None else ""
            try:
                yield self.convert(start, row)
            except ValueError as exc:
                yield _reject(self.file, start, str(exc), rx_id)


def _opt(row: list[str], i: int | None) -> str | None:
    return (row[i].strip() or None) if i is not None else None


def parse(stream: IO[bytes], source: str) -> Iterator[Record]:
    """Yield one :class:`OrderRow` per data row (the fast path: the engine validates
    the rows that matter) and a :class:`Rejection` per unreadable row."""
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
